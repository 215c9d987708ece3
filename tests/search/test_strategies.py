"""The contract every registered strategy keeps (as Optuna runs one suite over its samplers)."""

from __future__ import annotations

import pytest
from torch import nn

from quantsearch.data import DataSplits
from quantsearch.errors import ConfigError
from quantsearch.search import STRATEGIES, search

SPACE = {
    "choices": {
        "linear": {"data_in": [[16, 8], [8, 4], [4, 2]], "weight": [[16, 8], [8, 4], [4, 2]]}
    }
}
WEIGHTED = {
    "accuracy": {"direction": "maximize"},
    "bitops": {"direction": "minimize", "weight": 0.1, "relative_to_baseline": True},
}
PARETO = {
    "combine": "pareto",
    "accuracy": {"direction": "maximize"},
    "bitops": {"direction": "minimize"},
}


def run(mlp: nn.Module, digits: DataSplits, strategy: str, **kw: object):  # type: ignore[no-untyped-def]
    args: dict[str, object] = {"space": SPACE, "objectives": WEIGHTED, "n_trials": 12, "seed": 0}
    args.update(kw)
    return search(mlp, digits.val, strategy=strategy, **args)  # type: ignore[arg-type]


@pytest.mark.parametrize("strategy", STRATEGIES.names())
def test_contract(mlp: nn.Module, digits: DataSplits, strategy: str) -> None:
    a = run(mlp, digits, strategy)
    b = run(mlp, digits, strategy)
    # the budget, or fewer when the 9-point space ran out
    assert len(a.trials) <= 12 and (len(a.trials) == 12 or a.n_evaluations == 9)
    assert all(t.state == "COMPLETE" for t in a.trials)
    # every proposal lies in the space: a label, or an index into the cheapest-first choices
    allowed = {"fixed(16,8)", "fixed(8,4)", "fixed(4,2)"}
    for t in a.trials:
        for value in t.params.values():
            assert value in allowed if isinstance(value, str) else 0 <= value < 3
    hashes = [t.config_hash for t in a.trials if t.evaluated]
    assert len(hashes) == len(set(hashes))
    # seeded: the same seed gives the same sequence
    assert [t.params for t in a.trials] == [t.params for t in b.trials]
    assert a.best is not None and a.best.feasible is not False
    if STRATEGIES.get(strategy).exhaustive:
        full = run(mlp, digits, strategy, n_trials=50)
        assert len(full.trials) == full.n_evaluations == 9  # every point once, then stop


@pytest.mark.parametrize(
    "strategy", [s for s in STRATEGIES.names() if STRATEGIES.get(s).multi_objective]
)
def test_pareto_mode(mlp: nn.Module, digits: DataSplits, strategy: str) -> None:
    result = run(mlp, digits, strategy, objectives=PARETO)
    assert result.pareto and result.best is None
    assert all(t.values is not None and len(t.values) == 2 for t in result.complete)


def test_options_pass_through_and_unknown_options_are_named(
    mlp: nn.Module, digits: DataSplits
) -> None:
    run(mlp, digits, {"name": "tpe", "options": {"n_startup_trials": 3}})  # type: ignore[arg-type]
    with pytest.raises(
        ConfigError,
        match=r"search\.strategy\.options\.n_startup: got 3, allowed: options \[",
    ):
        run(mlp, digits, {"name": "tpe", "options": {"n_startup": 3}})  # type: ignore[arg-type]


@pytest.mark.parametrize("strategy", STRATEGIES.names())
def test_registry_entry_describes_itself(strategy: str) -> None:
    s = STRATEGIES.get(strategy)
    assert s.name == strategy and s.description and s.encoding in ("categorical", "ordinal")
    assert all(STRATEGIES.canonical(alias) == strategy for alias in s.aliases)
    assert (
        STRATEGIES.canonical("brute-force") == STRATEGIES.canonical("exhaustive") == "brute_force"
    )
