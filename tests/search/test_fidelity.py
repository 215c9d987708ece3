"""Multi-fidelity: rungs over prefixes of the validation split, pruned trials recorded as PRUNED
with their samples, the bound checked against scipy's exact binomial interval."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from scipy.stats import binomtest

from quantsearch.data import DataSplits
from quantsearch.errors import ConfigError
from quantsearch.search import SearchResult, search
from quantsearch.search.config import FidelitySpec, parse_search_config
from quantsearch.search.fidelity import accuracy_upper_bound, rungs
from tests.search.counting import Counter, counting_mlp
from tests.search.spaces import LAB_SPACE

OBJ = {"accuracy": {"direction": "maximize"}}
SMALL = {"model_size_bits": {"direction": "minimize"}}
FIDELITY = {"method": "successive_halving", "min_samples": 40, "eta": 3, "confidence": 0.95}


@pytest.mark.parametrize(("k", "n"), [(0, 10), (5, 10), (37, 40), (90, 120), (39, 40)])
def test_upper_bound_is_the_exact_one_sided_binomial_bound(k: int, n: int) -> None:
    referee = binomtest(k, n, alternative="less").proportion_ci(0.95, method="exact").high
    assert accuracy_upper_bound(k, n, 0.95) == pytest.approx(referee, abs=1e-9)
    assert accuracy_upper_bound(n, n, 0.95) == 1.0


def test_rungs() -> None:
    assert rungs(360, FidelitySpec("successive_halving", 40, 3)) == [40, 120, 360]
    assert rungs(360, FidelitySpec("successive_halving")) == [22, 88, 360]  # 360 // 16, x4
    assert rungs(360, FidelitySpec()) == [360]


def test_pruned_trials_are_recorded_never_best_and_their_samples_counted(
    digits: DataSplits,
) -> None:
    gm = counting_mlp(digits)
    # An objective without accuracy: only the constraint can prune.
    kw = {"space": LAB_SPACE, "objectives": SMALL, "strategy": "brute_force", "n_trials": 16}
    bound = {"accuracy_drop": {"max": 0.02}}
    result = search(gm, digits.val, constraints=bound, fidelity=FIDELITY, **kw)  # type: ignore[arg-type]
    n = len(digits.val)
    pruned = [t for t in result.trials if t.state == "PRUNED"]
    done = [t for t in result.trials if t.state == "COMPLETE"]
    assert pruned and done and len(result.trials) == 16  # pruned trials use up the budget
    for t in pruned:
        assert t.pruned_by == "accuracy_drop" and t.samples in (40, 40 + 120)
        assert not t.is_feasible
    for t in done:
        assert t.samples == 40 + 120 + n
    # The counting model is the referee: every sample forwarded is on some trial's record.
    assert Counter.samples == n + sum(t.samples or 0 for t in result.trials)
    assert result.best is not None and result.best.state == "COMPLETE"
    # Pruned at 95% confidence; measured in full, each pruned config indeed breaks the bound.
    full = search(gm, digits.val, constraints=bound, **kw)  # type: ignore[arg-type]
    infeasible = {t.config_hash for t in full.trials if not t.is_feasible}
    assert {t.config_hash for t in pruned} <= infeasible
    assert result.best.config_hash == full.best.config_hash  # nothing feasible was lost


def test_incumbent_rule_prunes_without_constraints(digits: DataSplits) -> None:
    gm = counting_mlp(digits)
    result = search(
        gm, digits.val, space=LAB_SPACE, objectives=OBJ, strategy="brute_force", n_trials=16,
        fidelity=FIDELITY,
    )  # fmt: skip
    pruned = [t for t in result.trials if t.state == "PRUNED"]
    assert pruned and all(t.pruned_by == "incumbent" for t in pruned)
    best = max(t.values[0] for t in result.trials if t.state == "COMPLETE" and t.values)
    assert result.best is not None and result.best.values == (best,)
    full = search(gm, digits.val, space=LAB_SPACE, objectives=OBJ, strategy="brute_force",
                  n_trials=16)  # fmt: skip
    assert full.best is not None and full.best.values == (best,)  # the optimum was not pruned


def test_fidelity_config_errors() -> None:
    base = {"space": LAB_SPACE, "objectives": OBJ}
    assert parse_search_config({**base, "fidelity": "successive_halving"}).fidelity == (
        FidelitySpec("successive_halving")
    )
    with pytest.raises(
        ConfigError,
        match=r"search\.fidelity\.method: got 'hyperband', allowed: one of \['full', 'successive_halving'\]",
    ):
        parse_search_config({**base, "fidelity": "hyperband"})
    with pytest.raises(ConfigError, match=r"search\.fidelity\.confidence"):
        parse_search_config({**base, "fidelity": {"confidence": 1.0}})


def test_a_pruned_config_proposed_again_is_not_measured_again(digits: DataSplits) -> None:
    """Random search over the 16-point space for 48 trials proposes pruned configs again. A
    rung's accuracy is a function of the config alone, so a repeat replays the rungs it
    measured (the pruner judges them anew, against the study as it is now) and measures only
    the rungs past them. The counting model is the referee: no config's prefix is forwarded
    twice."""
    gm = counting_mlp(digits)
    result = search_random(gm, digits, 48)
    _repeats_measured_once(digits, result)
    assert Counter.samples == len(digits.val) + sum(t.samples or 0 for t in result.trials)


def test_a_resumed_search_does_not_measure_a_pruned_config_again(
    digits: DataSplits, tmp_path: Path
) -> None:
    """The rungs a config measured before a resume are in the study (each rung's accuracy is
    the trial's intermediate value): the resumed search replays them, as in one process."""
    gm = counting_mlp(digits)
    search_random(gm, digits, 20, tmp_path)
    Counter.reset()
    result = search_random(gm, digits, 48, tmp_path)
    _repeats_measured_once(digits, result)
    new = sum(t.samples or 0 for t in result.trials if t.number >= 20)
    assert Counter.samples in (new, new + len(digits.val))  # (and the baseline, if measured)


def search_random(
    gm: torch.fx.GraphModule, digits: DataSplits, n_trials: int, run_dir: Path | None = None
) -> SearchResult:
    bound = {"accuracy_drop": {"max": 0.02}}
    return search(
        gm, digits.val, space=LAB_SPACE, objectives=SMALL, strategy="random", n_trials=n_trials,
        constraints=bound, fidelity=FIDELITY, seed=0, run_dir=run_dir,  # type: ignore[arg-type]
    )  # fmt: skip


def _repeats_measured_once(digits: DataSplits, result: SearchResult) -> None:
    n = len(digits.val)
    by_config: dict[str | None, list[int]] = {}
    for t in result.trials:
        by_config.setdefault(t.config_hash, []).append(t.samples or 0)
    pruned = {t.config_hash for t in result.trials if t.state == "PRUNED"}
    repeated = [k for k in pruned if len(by_config[k]) > 1]
    assert repeated, "the seed must propose a pruned config again"
    for k in repeated:  # each prefix once: the repeats sum to one path through the rungs
        assert sum(by_config[k]) in (40, 40 + 120, 40 + 120 + n), (k, by_config[k])
    for t in result.trials:
        if t.state == "PRUNED" and t.samples == 0:  # a replay: its record names the first
            assert t.duplicate_of is not None and t.pruned_by == "accuracy_drop"
