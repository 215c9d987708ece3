"""Wilcoxon's signed-rank test, two-sided, as SciPy computes it for a comparison's seeds.

``scipy.stats.wilcoxon(x, y, zero_method="wilcox")`` (method ``"auto"``) takes the differences
``d = x - y``, drops the zeros and ranks the rest by ``|d|`` (ties: average ranks). Its
p-value is exact for up to 50 pairs without ties or zeros (the distribution of the sum of the
positive ranks, ``r_plus``, under random signs) and for up to 13 pairs with them (every sign
pattern, SciPy's ``permutation_test``); both are ``min(1, 2 min(P(T <= r_plus), P(T >= r_plus)))``
over that distribution, which :func:`wilcoxon_p` counts by subset sums of the ranks. Otherwise
SciPy uses a normal approximation: those cases are handed to SciPy itself, imported then.

The reports' paired tests have one pair per seed (usually 5-20), so they need no SciPy, whose
import costs over a second and about 70 MiB (issue 15). ``tests/compare/test_wilcoxon.py``
checks the p-values against SciPy's.
"""

from __future__ import annotations

from collections.abc import Sequence

from quantsearch.compare.correlation import average_ranks

__all__ = ["signed_rank_counts", "wilcoxon_p"]


def signed_rank_counts(ranks: Sequence[float]) -> dict[int, int]:
    """How many of the ``2**len(ranks)`` sign patterns give each sum of positive ranks (the
    sums doubled, so that average ranks of ties, halves, stay integers).

    Example:
        >>> signed_rank_counts([1.0, 2.0])  # sums 0, 1, 2, 3 (doubled: 0, 2, 4, 6)
        {0: 1, 2: 1, 4: 1, 6: 1}
    """
    counts = {0: 1}
    for r in ranks:
        step = round(2 * r)
        nxt = dict(counts)
        for s, c in counts.items():
            nxt[s + step] = nxt.get(s + step, 0) + c
        counts = nxt
    return counts


def wilcoxon_p(x: Sequence[float], y: Sequence[float]) -> float:
    """Two-sided p-value of Wilcoxon's signed-rank test of the pairs ``(x[i], y[i])``, zeros
    dropped: ``scipy.stats.wilcoxon(x, y, zero_method="wilcox").pvalue``.

    Example:
        >>> round(wilcoxon_p([1, 2, 3, 4, 5, 6], [0, 0, 0, 0, 0, 0]), 5)  # 2 / 2**6
        0.03125
    """
    d = [float(a) - float(b) for a, b in zip(x, y, strict=True)]
    nonzero = [v for v in d if v != 0]
    if not nonzero:
        raise ValueError("every difference is zero: the test is undefined")
    ranks = average_ranks([abs(v) for v in nonzero])
    ties = len(set(ranks)) < len(ranks)
    exact = len(d) <= 50 and not ties and len(nonzero) == len(d)
    if not (exact or len(d) <= 13):
        from scipy.stats import wilcoxon  # the normal approximation: SciPy's own

        return float(wilcoxon(x, y, alternative="two-sided", zero_method="wilcox").pvalue)
    r_plus = round(2 * sum(r for r, v in zip(ranks, nonzero, strict=True) if v > 0))
    counts = signed_rank_counts(ranks)
    total = sum(counts.values())
    below = sum(c for s, c in counts.items() if s <= r_plus)
    above = sum(c for s, c in counts.items() if s >= r_plus)
    return min(1.0, 2 * min(below, above) / total)
