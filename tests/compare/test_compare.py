"""Strategy comparison measures, checked against hand replays of the recorded trial sequences."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from torch import nn

from quantsearch.compare import (
    ComparisonResult,
    auto_budgets,
    quantile,
    run_comparison,
)
from quantsearch.data import DataSplits
from quantsearch.errors import ConfigError, StorageError
from quantsearch.search import search
from quantsearch.search.trial import TrialInfo
from tests.compare.fixtures import (  # noqa: F401  (fixtures)
    CONSTRAINTS,
    N_TRIALS,
    SEEDS,
    STRATEGIES,
    WEIGHTED,
    Lab,
    lab,
    lab_comparison,
    pareto_comparison,
)
from tests.search.spaces import LAB_SPACE


def replay(trials: Sequence[TrialInfo], optimum: float) -> dict[str, object]:
    """Walk one run's trials in order, as a person would with trials.csv in hand."""
    k = distinct = 0
    seen: set[str] = set()
    best = -math.inf
    first_hit = first_hit_evals = None
    curve = []
    for t in sorted(trials, key=lambda t: t.number):
        if not (t.state == "COMPLETE" or (t.state == "FAIL" and t.error)):
            continue
        k += 1
        if t.config_hash not in seen:
            seen.add(t.config_hash)  # type: ignore[arg-type]
            distinct += 1
        if t.state == "COMPLETE" and t.feasible and t.values[0] > best:  # type: ignore[index]
            best = t.values[0]  # type: ignore[index]
        curve.append(best)
        if first_hit is None and best >= optimum:
            first_hit, first_hit_evals = k, distinct
    return {
        "trials": k,
        "distinct": distinct,
        "first_hit": first_hit,
        "first_hit_evals": first_hit_evals,
        "curve": curve,
        "duplicates": (k - distinct) / k,
    }


@pytest.fixture(scope="module")
def true_optimum(mlp: nn.Module, digits: DataSplits) -> float:
    """An independent enumeration of the 16 points, with its own cache."""
    result = search(
        mlp, digits.val, space=LAB_SPACE, objectives=WEIGHTED, constraints=CONSTRAINTS,
        strategy="brute_force", n_trials=16,
    )  # fmt: skip
    assert len(result.trials) == result.n_evaluations == 16
    assert result.best is not None
    return result.best.values[0]  # type: ignore[index]


def test_reference_is_the_enumerated_optimum(
    lab_comparison: ComparisonResult,  # noqa: F811
    true_optimum: float,
) -> None:
    assert lab_comparison.reference == "exhaustive"
    assert lab_comparison.optimum == true_optimum
    assert lab_comparison.ground_truth is not None
    assert len(lab_comparison.ground_truth.trials) == 16


def test_trials_to_optimum_match_a_hand_replay(
    lab_comparison: ComparisonResult,  # noqa: F811
    true_optimum: float,
) -> None:
    assert [(r.strategy, r.seed) for r in lab_comparison.results] == [
        (s, seed) for s in STRATEGIES for seed in SEEDS
    ]
    for result, run in zip(lab_comparison.results, lab_comparison.runs, strict=True):
        hand = replay(result.trials, true_optimum)
        assert (run.strategy, run.seed) == (result.strategy, result.seed)
        assert run.trials == hand["trials"]
        assert run.evaluations == hand["distinct"]
        assert run.trials_to_optimum == hand["first_hit"]
        assert run.evaluations_to_optimum == hand["first_hit_evals"]
        assert run.duplicate_share == pytest.approx(hand["duplicates"])
        assert list(run.quality_by_trial) == hand["curve"]
    # brute force walks the stable order: its first hit is the optimum's position in it
    gt = lab_comparison.ground_truth
    assert gt is not None
    position = next(t.number for t in gt.trials if t.values == (true_optimum,) and t.feasible)
    for run in lab_comparison.runs:
        if run.strategy == "brute_force":
            assert run.trials_to_optimum == position + 1


def test_per_run_distinct_counts_ignore_the_shared_cache_flag(
    lab_comparison: ComparisonResult,  # noqa: F811
) -> None:
    # After the ground truth every config is in the shared cache, so every trial is `cached`;
    # the runs' distinct evaluations must still be counted from their own sequences.
    for result, run in zip(lab_comparison.results, lab_comparison.runs, strict=True):
        assert all(t.cached for t in result.trials)
        assert run.evaluations == len({t.config_hash for t in result.trials}) > 0


def test_shared_cache_evaluates_each_config_once(lab_comparison: ComparisonResult) -> None:  # noqa: F811
    everything = [lab_comparison.ground_truth, *lab_comparison.results]
    hashes = {t.config_hash for r in everything if r for t in r.trials}
    assert lab_comparison.evaluations == len(hashes) <= lab_comparison.space_size == 16
    assert lab_comparison.evaluations_unshared == sum(
        len({t.config_hash for t in r.trials}) for r in everything if r
    )


def test_sharing_never_changes_a_run(lab: Lab, mlp: nn.Module, digits: DataSplits) -> None:  # noqa: F811
    """Shared, unshared and standalone runs make the same trials; only the cost differs."""
    kw = {"strategies": ["tpe", "random"], "seeds": [1], "n_trials": 30}
    shared = run_comparison(lab.space, lab.evaluator, lab.cfg, **kw)  # type: ignore[arg-type]
    alone = run_comparison(lab.space, lab.evaluator, lab.cfg, shared_cache=False, **kw)  # type: ignore[arg-type]
    for a, b in zip(shared.results, alone.results, strict=True):
        assert [t.params for t in a.trials] == [t.params for t in b.trials]
    assert shared.evaluations <= 16 < alone.evaluations == alone.evaluations_unshared
    # and as a search on its own: a run after the full enumeration still makes its trials
    # (it stops when *it* has seen every point, not when the shared cache holds them all)
    own = search(
        mlp, digits.val, space=LAB_SPACE, objectives=WEIGHTED, constraints=CONSTRAINTS,
        strategy="tpe", seed=1, n_trials=30,
    )  # fmt: skip
    assert [t.params for t in own.trials] == [t.params for t in shared.results[0].trials]


def test_regret_and_curves_are_median_and_iqr_of_the_replays(
    lab_comparison: ComparisonResult,  # noqa: F811
    true_optimum: float,
) -> None:
    assert lab_comparison.budgets == auto_budgets(N_TRIALS, 16) == (4, 8, 16, 24)
    for stats in lab_comparison.stats:
        results = [r for r in lab_comparison.results if r.strategy == stats.strategy]
        curves = []
        for r in results:
            c = replay(r.trials, true_optimum)["curve"]
            assert isinstance(c, list)
            curves.append(c + [c[-1]] * (N_TRIALS - len(c)))  # runs that saw every point stop
        for b in lab_comparison.budgets:
            regrets = [true_optimum - c[b - 1] for c in curves]
            q = stats.at_budget[b]
            assert (q.q1, q.median, q.q3) == pytest.approx(
                tuple(np.percentile(regrets, [25, 50, 75]))
            )
        k = 5
        assert stats.by_trial.median[k - 1] == pytest.approx(np.median([c[k - 1] for c in curves]))
        hits = [replay(r.trials, true_optimum)["first_hit"] for r in results]
        assert stats.reached == sum(h is not None for h in hits)
        assert stats.trials_to_optimum.median == np.median(
            [math.inf if h is None else h for h in hits]
        )


def test_tolerance_counts_near_misses_as_reached(lab: Lab) -> None:  # noqa: F811
    exact = run_comparison(lab.space, lab.evaluator, lab.cfg, strategies=["brute_force"],
                           seeds=[0], n_trials=16)  # fmt: skip
    loose = run_comparison(lab.space, lab.evaluator, lab.cfg, strategies=["brute_force"],
                           seeds=[0], n_trials=16, tolerance=0.01)  # fmt: skip
    assert exact.optimum is not None and exact.ground_truth is not None
    values = [t.values[0] if t.feasible else -math.inf for t in exact.ground_truth.trials]  # type: ignore[index]
    first_within = next(i for i, v in enumerate(values) if v >= exact.optimum - 0.01) + 1
    assert loose.runs[0].trials_to_optimum == first_within <= exact.runs[0].trials_to_optimum  # type: ignore[operator]


def test_pareto_hypervolume_and_front_share_against_a_hand_computation(
    pareto_comparison: ComparisonResult,  # noqa: F811
) -> None:
    cmp = pareto_comparison
    gt = cmp.ground_truth
    assert gt is not None and cmp.mode == "pareto"
    feasible = [(t.values[0], t.values[1]) for t in gt.trials if t.feasible]  # type: ignore[index]
    # true front by hand: maximise accuracy, minimise size
    front = sorted(
        {p for p in feasible
         if not any(q[0] >= p[0] and q[1] <= p[1] and q != p for q in feasible)}
    )  # fmt: skip
    assert list(cmp.front) == front
    losses = [(-a, s) for a, s in feasible]
    span = [max(c) - min(c) for c in zip(*losses, strict=True)]
    ref = [max(c) + 0.1 * (sp if sp > 0 else max(abs(max(c)), 1)) for c, sp in
           zip(zip(*losses, strict=True), span, strict=True)]  # fmt: skip
    assert cmp.reference_point == pytest.approx(ref)

    def sweep(points: list[tuple[float, float]]) -> float:  # 2-D union of rectangles
        area, y_prev = 0.0, ref[1]
        for x, y in sorted(points):
            if y < y_prev:
                area += (ref[0] - x) * (y_prev - y)
                y_prev = y
        return area

    assert cmp.reference_hypervolume == pytest.approx(sweep([(-a, s) for a, s in front]))
    for result, run in zip(cmp.results, cmp.runs, strict=True):
        pts: list[tuple[float, float]] = []
        found: set[tuple[float, float]] = set()
        for i, t in enumerate(sorted(result.trials, key=lambda t: t.number)):
            if t.state == "COMPLETE" and t.feasible:
                a, s = t.values  # type: ignore[misc]
                pts.append((-a, s))
                if (a, s) in front:
                    found.add((a, s))
            assert run.quality_by_trial[i] == pytest.approx(sweep(pts) / sweep(
                [(-a, s) for a, s in front]))  # fmt: skip
        assert run.front_share == pytest.approx(len(found) / len(front))


def test_quantile_matches_numpy_and_handles_infinity() -> None:
    rng = np.random.default_rng(0)
    for n in (1, 2, 5, 10):
        v = rng.normal(size=n).tolist()
        for q in (0.25, 0.5, 0.75):
            assert quantile(v, q) == pytest.approx(np.quantile(v, q))
    assert quantile([3, 5, math.inf, math.inf], 0.5) == math.inf  # most seeds never reached it
    assert quantile([3, 5, 7, math.inf], 0.5) == 6
    assert quantile([-math.inf, 1.0, 2.0], 0.25) == -math.inf
    assert math.isnan(quantile([], 0.5))


def test_written_files_round_trip(lab_comparison: ComparisonResult, tmp_path: Path) -> None:  # noqa: F811
    paths = lab_comparison.write(tmp_path)
    for name in ("comparison.json", "comparison.csv", "runs.jsonl", "configs.jsonl"):
        assert tmp_path / name in paths
    assert (tmp_path / "ground_truth" / "trials.jsonl").is_file()
    back = ComparisonResult.from_dict(json.loads((tmp_path / "comparison.json").read_text()))
    assert back.stats == lab_comparison.stats
    assert back.runs == lab_comparison.runs
    lines = (tmp_path / "runs.jsonl").read_text().splitlines()
    assert len(lines) == len(STRATEGIES) * len(SEEDS)
    assert len((tmp_path / "configs.jsonl").read_text().splitlines()) == 16
    csv_head = (tmp_path / "comparison.csv").read_text().splitlines()[0].split(",")
    assert csv_head[:3] == ["strategy", "runs", "reached"]
    assert "trials_to_optimum_median" in csv_head and "regret_at_24_q3" in csv_head


def test_a_write_stopped_midway_leaves_no_comparison_beside_other_files(
    lab_comparison: ComparisonResult,  # noqa: F811
    tmp_path: Path,
) -> None:
    # comparison.json (what read and the report take) is removed first and written last: a
    # write that fails after it began (here configs.jsonl cannot be replaced: a folder holds
    # its name) leaves no comparison.json of the earlier write beside the new files
    lab_comparison.write(tmp_path)
    assert ComparisonResult.read(tmp_path).stats == lab_comparison.stats
    (tmp_path / "configs.jsonl").unlink()
    (tmp_path / "configs.jsonl").mkdir()
    with pytest.raises(StorageError):
        lab_comparison.write(tmp_path)
    assert not (tmp_path / "comparison.json").exists()
    (tmp_path / "configs.jsonl").rmdir()
    lab_comparison.write(tmp_path)  # run again: every file written anew
    assert ComparisonResult.read(tmp_path).runs == lab_comparison.runs


def test_bad_strategy_is_a_config_error(lab: Lab) -> None:  # noqa: F811
    with pytest.raises(ConfigError, match=r"compare\.strategies: got 'tpee', allowed: one of \["):
        run_comparison(lab.space, lab.evaluator, lab.cfg, strategies=["tpee"], seeds=[0],
                       n_trials=4)  # fmt: skip
    with pytest.raises(ConfigError, match=r"compare\.seeds"):
        run_comparison(lab.space, lab.evaluator, lab.cfg, strategies=["tpe"], seeds=[],
                       n_trials=4)  # fmt: skip


def test_large_space_uses_the_best_found_as_reference(lab: Lab) -> None:  # noqa: F811
    cmp = run_comparison(lab.space, lab.evaluator, lab.cfg, strategies=["random"], seeds=[0, 1],
                         n_trials=5, ground_truth_budget=8)  # fmt: skip
    assert cmp.reference == "best_found" and cmp.ground_truth is None
    best = max(t.values[0] for r in cmp.results for t in r.trials if t.feasible)  # type: ignore[index]
    assert cmp.optimum == best
    assert cmp.evaluations <= 10


def test_a_budget_far_past_the_space_costs_no_memory(lab: Lab) -> None:  # noqa: F811
    # --trials 2**31 - 1 on the 16-point space: brute force stops exhausted at 16 trials; the
    # curve by trial keeps one point past its run and one at the budget (it was padded to
    # 2**31 points: a MemoryError traceback or the OOM killer)
    n = 2**31 - 1
    got = run_comparison(lab.space, lab.evaluator, lab.cfg, strategies=("brute_force",),
                         seeds=(0,), n_trials=n)  # fmt: skip
    (stats,) = got.stats
    curve = stats.by_trial
    assert curve.x == (*range(1, 18), n)
    assert curve.median[-1] == curve.median[-2] == curve.median[15]
    assert stats.at_budget[n].median == pytest.approx(got.optimum - curve.median[-1], abs=1e-12)
