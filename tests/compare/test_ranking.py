"""Comparisons that rank: the lowest median regret at each budget with a paired Wilcoxon test
(scipy is the referee), repeated shares over equal numbers of trials, brute force's order, and
budgets in evaluations."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

import pytest
from scipy.stats import wilcoxon

from quantsearch.compare import ComparisonResult, run_comparison
from quantsearch.compare.ranking import rank_at_budgets, repeated_shares
from quantsearch.errors import ConfigError
from quantsearch.report.findings import comparison_findings
from quantsearch.search import search
from quantsearch.search.strategies.brute_force import permute
from quantsearch.search.trial import TrialInfo
from tests.compare.fixtures import Lab, lab  # noqa: F401  (fixture)
from tests.search.spaces import LAB_SPACE

SEEDS = list(range(8))


def best_after(trials: Sequence[TrialInfo], k: int) -> float:
    """By hand: the best feasible objective among a run's first k counted trials."""
    done = [t for t in sorted(trials, key=lambda t: t.number) if t.state == "COMPLETE"][:k]
    vals = [t.values[0] for t in done if t.feasible is not False and t.values]
    return max(vals, default=-math.inf)


@pytest.fixture(scope="module")
def best_found(lab: Lab) -> ComparisonResult:  # noqa: F811
    # No ground truth (ground_truth_budget=0): the reference is the best any run found.
    return run_comparison(
        lab.space, lab.evaluator, lab.cfg, strategies=["random", "tpe"], seeds=SEEDS,
        n_trials=8, ground_truth_budget=0, budgets=[2, 4, 8],
    )  # fmt: skip


def test_lowest_median_regret_and_wilcoxon_match_a_hand_replay(best_found: ComparisonResult):
    cmp = best_found
    assert cmp.reference == "best_found"
    opt = max(best_after(r.trials, 8) for r in cmp.results)
    assert cmp.optimum == opt
    rankings = rank_at_budgets(cmp)
    assert [r.budget for r in rankings] == [2, 4, 8]
    for r in rankings:
        regret = {
            s: {res.seed: opt - best_after(res.trials, r.budget)
                for res in cmp.results if res.strategy == s}
            for s in ("random", "tpe")
        }  # fmt: skip
        medians = {s: statistics.median(v.values()) for s, v in regret.items()}
        assert dict(r.medians) == pytest.approx(medians)
        assert medians[r.leader] == min(medians.values())
        (test,) = r.tests
        a = [regret[r.leader][k] for k in SEEDS]
        b = [regret[test.other][k] for k in SEEDS]
        finite = [x for x in a + b if math.isfinite(x)]
        cap = max(finite, default=0.0) + 1
        a = [x if math.isfinite(x) else cap for x in a]
        b = [x if math.isfinite(x) else cap for x in b]
        assert test.n == len(SEEDS)
        if a == b:
            assert test.p is None
        else:
            assert test.p == pytest.approx(wilcoxon(a, b).pvalue)
            assert test.wins == sum(x < y for x, y in zip(a, b, strict=True))


def test_findings_rank_instead_of_did_not_reach(best_found: ComparisonResult) -> None:
    text = " ".join(comparison_findings(best_found))
    assert "did not reach" not in text
    assert "has the lowest median regret" in text or "tie for the lowest median" in text
    assert "Wilcoxon signed-rank" in text
    for r in rank_at_budgets(best_found):
        for t in r.tests:
            if t.p is not None:
                assert f"p = {t.p:.2g}" in text


def test_repeated_shares_over_equal_numbers_of_trials(best_found: ComparisonResult) -> None:
    m, shares = repeated_shares(best_found)
    assert m == min(len([t for t in r.trials if t.state == "COMPLETE"]) for r in best_found.results)
    for s, q in shares.items():
        by_hand = []
        for r in best_found.results:
            if r.strategy == s:
                hashes = [t.config_hash for t in sorted(r.trials, key=lambda t: t.number)][:m]
                by_hand.append(1 - len(set(hashes)) / m)
        assert q.median == pytest.approx(statistics.median(by_hand))
    assert f"Over the first {m} trials of every run" in " ".join(comparison_findings(best_found))


def test_permute_is_a_seeded_bijection() -> None:
    for size in (1, 2, 16, 1000, 22**3):
        order = [permute(i, size, 7) for i in range(size)]
        assert sorted(order) == list(range(size))
    assert [permute(i, 1000, 1) for i in range(20)] != [permute(i, 1000, 2) for i in range(20)]


def test_brute_force_shuffle_visits_every_point_once_in_a_seeded_order(lab: Lab) -> None:  # noqa: F811
    def order(seed: int, shuffle: bool) -> list[dict[str, object]]:
        res = search(
            lab.evaluator.gm, lab.evaluator.data, space=LAB_SPACE,
            objectives={"accuracy": {"direction": "maximize"}}, n_trials=16, seed=seed,
            strategy={"name": "brute_force", "options": {"shuffle": shuffle}},
        )  # fmt: skip
        return [t.params for t in res.trials]

    stable, a, a2, b = order(0, False), order(0, True), order(0, True), order(1, True)
    assert len(a) == 16 and sorted(map(str, a)) == sorted(map(str, stable))
    assert a == a2 and a != b and a != stable
    with pytest.raises(ConfigError, match=r"search\.strategy\.options\.shuffle"):
        order(0, "yes")  # type: ignore[arg-type]


def test_compare_budgets_in_evaluations(lab: Lab) -> None:  # noqa: F811
    cmp = run_comparison(
        lab.space, lab.evaluator, lab.cfg, strategies=["random", "tpe"], seeds=[0, 1],
        n_trials=200, n_evaluations=5, ground_truth_budget=0,
    )  # fmt: skip
    assert cmp.budget_unit == "evaluations"
    assert all(r.evaluations == 5 for r in cmp.runs)  # equal cost: five distinct configs each
    assert max(cmp.budgets) == 5
    text = " ".join(comparison_findings(cmp))
    assert "distinct evaluations, " in text
