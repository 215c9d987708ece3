"""The study loop against real quantize + metrics passes on a trained mlp-digits."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import pytest
import torch
from torch import nn

from quantsearch.data import DataSplits
from quantsearch.search import search
from quantsearch.search.cache import EvaluationCache
from quantsearch.search.parallel import open_coordinator
from tests.search.spaces import LAB_SPACE

OBJ = {
    "accuracy": {"direction": "maximize", "weight": 1.0},
    "model_size_bits": {"direction": "minimize", "weight": 0.2, "relative_to_baseline": True},
}


def run(mlp: nn.Module, digits: DataSplits, **kw: object):  # type: ignore[no-untyped-def]
    args: dict[str, object] = {"space": LAB_SPACE, "objectives": OBJ, "n_trials": 16, "seed": 0}
    args.update(kw)
    return search(mlp, digits.val, **args)  # type: ignore[arg-type]


@pytest.mark.parametrize("strategy", ["brute_force", "brute-force", "grid"])
def test_exhaustive_strategies_evaluate_every_point_once_and_stop(
    mlp: nn.Module, digits: DataSplits, strategy: str
) -> None:
    result = run(mlp, digits, strategy=strategy, n_trials=100)
    assert len(result.trials) == 16  # stopped: the space is exhausted
    assert result.n_evaluations == 16
    assert len({t.config_hash for t in result.trials}) == 16
    assert sorted(tuple(t.params.values()) for t in result.trials) == sorted(
        {tuple(t.params.values()) for t in result.trials}
    )


def test_brute_force_follows_the_stable_order(mlp: nn.Module, digits: DataSplits) -> None:
    result = run(mlp, digits, strategy="brute_force", n_trials=3)
    assert [t.params for t in result.trials] == [
        {"linear.data_in": "fixed(16,8)", "linear.weight": "fixed(16,8)"},
        {"linear.data_in": "fixed(16,8)", "linear.weight": "fixed(8,6)"},
        {"linear.data_in": "fixed(16,8)", "linear.weight": "fixed(8,4)"},
    ]


def test_tpe_with_cache_never_evaluates_a_config_twice(mlp: nn.Module, digits: DataSplits) -> None:
    result = run(mlp, digits, strategy="tpe", n_trials=60, seed=1)
    evaluated = [t.config_hash for t in result.trials if t.evaluated]
    assert len(evaluated) == len(set(evaluated)) == result.n_evaluations <= 16
    cached = [t for t in result.trials if t.cached]
    assert cached, "TPE re-proposes configs on a 16-point space"
    by_hash = {t.config_hash: t for t in result.trials if t.evaluated}
    for t in cached:  # a cache hit reports exactly what the evaluation measured
        assert t.metrics == by_hash[t.config_hash].metrics
        assert t.duplicate_of == by_hash[t.config_hash].number


def test_same_seed_same_sequence(mlp: nn.Module, digits: DataSplits) -> None:
    a = run(mlp, digits, strategy="tpe", n_trials=20, seed=7)
    b = run(mlp, digits, strategy="tpe", n_trials=20, seed=7)
    c = run(mlp, digits, strategy="tpe", n_trials=20, seed=8)
    assert [t.params for t in a.trials] == [t.params for t in b.trials]
    assert [t.values for t in a.trials] == [t.values for t in b.trials]
    assert [t.params for t in a.trials] != [t.params for t in c.trials]


def test_constraints_exclude_infeasible_bests(mlp: nn.Module, digits: DataSplits) -> None:
    # Without constraints the size term makes a small config win at some accuracy; a bound
    # on the accuracy drop below that config's (about half of it, whatever the trained
    # weights make it: they differ between CPUs) must exclude it and every config past the
    # bound. Accuracies are multiples of 1/n: the bound lies halfway between two of them.
    heavy = {**OBJ, "model_size_bits": {**OBJ["model_size_bits"], "weight": 2.0}}
    free = run(mlp, digits, strategy="brute_force", objectives=heavy)
    assert free.best is not None
    n = len(digits.val)
    k = round((free.baseline["accuracy"] - free.best.metrics["accuracy"]) * n)
    assert k > 0, "the test needs an unconstrained best that costs accuracy"
    bound = (k // 2 + 0.5) / n
    bounded = run(
        mlp,
        digits,
        strategy="brute_force",
        objectives=heavy,
        constraints={"accuracy_drop": {"max": bound}},
    )
    base = bounded.baseline["accuracy"]
    assert bounded.best is not None and bounded.best.config_hash != free.best.config_hash
    assert base - bounded.best.metrics["accuracy"] <= bound
    infeasible = [t for t in bounded.trials if t.feasible is False]
    assert infeasible and all(t.number != bounded.best.number for t in infeasible)
    for t in bounded.trials:
        assert t.feasible == (base - t.metrics["accuracy"] <= bound)


def test_pareto_output_is_non_dominated(mlp: nn.Module, digits: DataSplits) -> None:
    objectives = {
        "accuracy": {"direction": "maximize"},
        "model_size_bits": {"direction": "minimize"},
        "combine": "pareto",
    }
    result = run(mlp, digits, strategy="brute_force", objectives=objectives)
    front = result.pareto
    assert front
    pts = [(t.metrics["accuracy"], t.metrics["model_size_bits"]) for t in result.complete]
    for t in front:
        a, s = t.metrics["accuracy"], t.metrics["model_size_bits"]
        assert not any((a2 >= a and s2 <= s) and (a2, s2) != (a, s) for a2, s2 in pts)
    # and every non-dominated point is on the front
    on_front = {(t.metrics["accuracy"], t.metrics["model_size_bits"]) for t in front}
    for a, s in pts:
        if not any((a2 >= a and s2 <= s) and (a2, s2) != (a, s) for a2, s2 in pts):
            assert (a, s) in on_front


class NaNWhenBiasVanishes(nn.Module):
    """Finite logits in float; NaN once bias quantization rounds the smallest |bias| to zero."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(64, 10)
        with torch.no_grad():
            self.fc.bias.fill_(0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.fc(x)
        return y + (y - y) / self.fc.bias.abs().min()


def test_nan_trial_is_recorded_as_failed_and_the_search_goes_on(digits: DataSplits) -> None:
    torch.manual_seed(0)
    space = {"choices": {"linear": {"weight": [[8, 4], [4, 2]], "bias": [[8, 4], [4, 2]]}}}
    result = search(
        NaNWhenBiasVanishes().eval(), digits.val, space=space, strategy="brute_force", n_trials=10,
        objectives={"accuracy": {"direction": "maximize"}},
    )  # fmt: skip
    failed = Counter(t.config_failed for t in result.trials)
    assert failed == {False: 2, True: 2}  # bias fixed(4,2) turns 0.1 into 0
    for t in result.trials:
        assert t.state == "COMPLETE"  # a failed config too: its sampler sees a bad result
        if t.config_failed:
            assert t.params["linear.bias"] == "fixed(4,2)"
            assert t.error is not None and "non-finite" in t.error
            assert not t.is_feasible and t.values is not None and math.isfinite(t.values[0])
        else:
            assert math.isfinite(t.metrics["accuracy"])
    assert result.best is not None and not result.best.config_failed


def test_shared_cache_across_searches_costs_one_evaluation_per_config(
    mlp: nn.Module, digits: DataSplits
) -> None:
    cache = EvaluationCache()
    first = run(mlp, digits, strategy="random", n_trials=10, seed=0, cache=cache)
    second = run(mlp, digits, strategy="brute_force", n_trials=16, seed=0, cache=cache)
    assert first.n_evaluations + second.n_evaluations == len(cache) == 16


def test_run_dir_files_and_resume_without_reevaluation(
    mlp: nn.Module, digits: DataSplits, tmp_path: Path
) -> None:
    first = run(mlp, digits, strategy="brute_force", n_trials=6, run_dir=tmp_path)
    for name in ("baseline.json", "trials.csv", "trials.jsonl", "best.json", "search_config.json"):
        assert (tmp_path / name).is_file(), name
    again = run(mlp, digits, strategy="brute_force", n_trials=10, run_dir=tmp_path)
    assert len(again.trials) == 10
    assert [t.values for t in again.trials[:6]] == [t.values for t in first.trials]
    assert again.n_evaluations == 10  # the 6 old ones plus 4 new, none twice
    assert len({t.config_hash for t in again.trials}) == 10


def test_a_leaked_ticket_comes_back_and_the_budget_is_met(
    mlp: nn.Module, digits: DataSplits, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker killed between taking its ticket and starting its trial leaks the ticket; the
    loop finds it once no trial runs and gives it back, so the study is not one trial short."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("quantsearch.search.study.STALLED_TICKET_GRACE", 0.3)
    url = f"sqlite:///{tmp_path / 'study.db'}"
    with open_coordinator(url, tmp_path, "search") as dead:
        assert dead.budget.take(4) == 1  # ... and dies before its trial starts
    result = run(mlp, digits, strategy="random", n_trials=4, storage=url)
    assert [t.state for t in result.trials] == ["COMPLETE"] * 4
