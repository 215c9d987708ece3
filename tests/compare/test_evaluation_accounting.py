"""A comparison counts a run's evaluations as its ``n_evaluations`` budget charges them: a config
pre-checked infeasible (no forward pass) is a trial and a config seen, not an evaluation.

Referee: the counting model (:mod:`tests.search.counting`), whose forward passes count the
validation samples actually run, with a cache per run.
"""

from __future__ import annotations

import pytest

from quantsearch.compare import run_comparison
from quantsearch.data import DataSplits
from quantsearch.search.config import parse_search_config
from quantsearch.search.prepare import prepare_search
from tests.search.counting import Counter, counting_mlp
from tests.search.spaces import LAB_SPACE

OBJ = {"accuracy": {"direction": "maximize"}}
# In brute force's order every fourth point has 16-bit weights: pre-checked, never evaluated.
SMALL = {"model_size_bits": {"max": 1210 * 8}}
LAB_CHOICES = [[16, 8], [8, 6], [8, 4], [4, 2]]


def test_pre_checked_configs_are_not_counted_as_evaluations(digits: DataSplits) -> None:
    """brute force and random search with ``n_evaluations = 8``: each run evaluated 8 configs,
    but the comparison counted 11 (brute force: 3 pre-checked configs among its first 11) and
    measured regret at 8 "evaluations" after 5 real ones."""
    gm = counting_mlp(digits)
    cfg = parse_search_config({"space": LAB_SPACE, "objectives": OBJ, "constraints": SMALL})
    space, evaluator = prepare_search(gm, cfg, digits.val)
    evaluator.baseline()
    Counter.reset()
    res = run_comparison(
        space, evaluator, cfg, strategies=["brute_force", "random"], seeds=[0, 1], n_trials=40,
        n_evaluations=8, shared_cache=False, ground_truth_budget=0, budgets=(8,),
    )  # fmt: skip
    assert Counter.samples == len(digits.val) * 8 * 4  # four runs of 8 evaluations each
    for run in res.runs:
        result = next(r for r in res.results if (r.strategy, r.seed) == (run.strategy, run.seed))
        prechecked = {t.config_hash for t in result.trials if t.prechecked}
        configs = {t.config_hash for t in result.trials}
        assert run.evaluations == 8 == len(configs - prechecked)
        assert len(run.quality_by_evaluation) == 8
        assert run.duplicate_share == pytest.approx(1 - len(configs) / run.trials)
        if run.strategy == "brute_force":
            assert (run.trials, len(prechecked)) == (11, 3)
    assert res.evaluations_unshared == res.evaluations == 8 * 4


def test_the_ground_truth_does_not_measure_pre_checked_configs(digits: DataSplits) -> None:
    """The ground truth's population held every point, the 4 of 16 that its brute-force run
    then pre-checks infeasible too: 4 forward passes of the validation split nobody read."""
    gm = counting_mlp(digits)
    cfg = parse_search_config({"space": LAB_SPACE, "objectives": OBJ, "constraints": SMALL})
    space, evaluator = prepare_search(gm, cfg, digits.val)
    evaluator.baseline()
    Counter.reset()
    res = run_comparison(
        space, evaluator, cfg, strategies=["brute_force"], seeds=[0], n_trials=16
    )  # fmt: skip
    assert res.ground_truth is not None and res.evaluations == 12
    assert sum(t.prechecked for t in res.ground_truth.trials) == 4
    assert Counter.samples == len(digits.val) * 12


def test_nsga_takes_a_quarter_of_an_evaluation_budget(digits: DataSplits) -> None:
    """With ``n_evaluations = 8`` the trial budget is a cap of 20 x 8; NSGA-II's population was
    a quarter of that cap (40), more than the run's 8 evaluations, so in an equal-cost
    comparison it was random search trial for trial. Referee: random search's run of the seed,
    which NSGA-II's first generation (4 trials) repeats and its later ones leave."""
    gm = counting_mlp(digits)
    space = {"by": "name", "choices": {"linear": {"data_in": LAB_CHOICES, "weight": LAB_CHOICES}}}
    cfg = parse_search_config({"space": space, "objectives": OBJ})
    prepared, evaluator = prepare_search(gm, cfg, digits.val)
    res = run_comparison(
        prepared, evaluator, cfg, strategies=["random", "nsga2"], seeds=[0], n_trials=160,
        n_evaluations=8, ground_truth_budget=0,
    )  # fmt: skip
    random_run, nsga_run = ([t.params for t in r.trials] for r in res.results)
    assert nsga_run[:4] == random_run[:4]
    assert nsga_run != random_run[: len(nsga_run)]


def test_each_run_is_charged_the_samples_of_its_own_evaluations(digits: DataSplits) -> None:
    """With one shared cache the configs a run meets were measured by the ground truth (or by
    another run first): each run recorded 0 validation samples, whichever strategy it was, and
    the findings said "median 0". A run is charged the samples its new configs cost, measured
    by whichever run measured them. Referee: a cache per run, where each run measures its own."""
    gm = counting_mlp(digits)
    cfg = parse_search_config({"space": LAB_SPACE, "objectives": OBJ, "constraints": SMALL})
    space, evaluator = prepare_search(gm, cfg, digits.val)
    kw = {"strategies": ["brute_force", "random"], "seeds": [0, 1], "n_trials": 12}
    shared = run_comparison(space, evaluator, cfg, **kw)  # type: ignore[arg-type]
    own = run_comparison(space, evaluator, cfg, shared_cache=False, **kw)  # type: ignore[arg-type]
    assert [r.samples for r in shared.runs] == [r.samples for r in own.runs]
    assert [r.samples for r in own.runs] == [len(digits.val) * r.evaluations for r in own.runs]
