"""Wilcoxon's signed-rank p-values without SciPy, checked against ``scipy.stats.wilcoxon``
(the referee) on seeded random pairs: with and without ties and zeros, from 1 to 60 pairs
(the exact, the permutation and the normal-approximation regimes)."""

from __future__ import annotations

import random

import pytest
from scipy.stats import wilcoxon

from quantsearch.compare.wilcoxon import signed_rank_counts, wilcoxon_p


def _pairs(rng: random.Random, n: int, kind: str) -> tuple[list[float], list[float]]:
    if kind == "continuous":
        x = [rng.random() for _ in range(n)]
        y = [rng.random() for _ in range(n)]
    else:  # regrets on a small grid: ties and zero differences, as seeds of a comparison give
        grid = [0.0, 0.0028, 0.0056, 0.0083, 0.0111, float(rng.randint(1, 3)) / 100]
        x = [rng.choice(grid) for _ in range(n)]
        y = [rng.choice(grid) for _ in range(n)]
    return x, y


@pytest.mark.parametrize("kind", ["continuous", "grid"])
@pytest.mark.parametrize("n", [1, 2, 3, 5, 6, 10, 13, 14, 20, 50, 51, 60])
def test_p_values_equal_scipy(n: int, kind: str) -> None:
    rng = random.Random(1000 * n + len(kind))
    # SciPy's permutation test calls its statistic once per sign pattern, 2**n times a p-value:
    # at 13 pairs with ties (8192 calls, about a second a p-value) 8 samples, the last exact
    # size before its normal approximation; 25 elsewhere
    samples = 8 if kind == "grid" and n == 13 else 25
    checked = 0
    for _ in range(samples):
        x, y = _pairs(rng, n, kind)
        if all(a == b for a, b in zip(x, y, strict=True)):
            with pytest.raises(ValueError, match="every difference is zero"):
                wilcoxon_p(x, y)
            continue
        expected = float(wilcoxon(x, y, alternative="two-sided", zero_method="wilcox").pvalue)
        assert wilcoxon_p(x, y) == pytest.approx(expected, rel=1e-12, abs=1e-15), (x, y)
        checked += 1
    assert checked >= min(10, samples)


def test_signed_rank_counts_enumerate_every_sign_pattern() -> None:
    ranks = [1.0, 2.5, 2.5, 4.0]
    counts = signed_rank_counts(ranks)
    assert sum(counts.values()) == 2 ** len(ranks)
    by_hand: dict[int, int] = {}
    for mask in range(2 ** len(ranks)):
        s = round(2 * sum(r for i, r in enumerate(ranks) if mask >> i & 1))
        by_hand[s] = by_hand.get(s, 0) + 1
    assert counts == by_hand
