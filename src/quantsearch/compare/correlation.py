"""Rank correlations with their two-sided p-values, as SciPy computes them, without SciPy.

Importing ``scipy.stats`` takes over a second and about 70 MiB, and a report needs only these
two statistics from it (issue 15). :func:`spearman` follows ``scipy.stats.spearmanr``:
Pearson's r of the average ranks, its p-value from Student's t with ``n - 2`` degrees of
freedom. :func:`kendall_tau_b` follows ``scipy.stats.kendalltau`` (variant b, method
``"auto"``): without ties and for ``n <= 33`` (or at most one pair out of order) the exact
p-value of the permutation distribution (Kendall, *Rank Correlation Methods*, 1970), else the
normal approximation with the tie-corrected variance. ``tests/compare/test_correlation.py``
checks both against SciPy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import groupby

__all__ = ["average_ranks", "kendall_tau_b", "spearman", "student_t_sf"]


def average_ranks(values: Sequence[float]) -> list[float]:
    """Ranks from 1, ties given the mean of the ranks they span (``scipy.stats.rankdata``).

    Example:
        >>> average_ranks([0.5, 0.1, 0.5, 0.9])
        [2.5, 1.0, 2.5, 4.0]
    """
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in order[i : j + 1]:
            ranks[k] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def _beta_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of the incomplete beta function (modified Lentz's method,
    Numerical Recipes, 3rd ed., section 6.4)."""
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 1000):
        for aa in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + aa * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + aa / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-16:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function ``I_x(a, b)``."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _beta_fraction(a, b, x) / a
    return 1.0 - front * _beta_fraction(b, a, 1.0 - x) / b


def student_t_sf(t: float, dof: float) -> float:
    """``P(T > t)`` for Student's t with ``dof`` degrees of freedom (``scipy.stats.t.sf``).

    Example:
        >>> round(student_t_sf(2.0, 10), 6)
        0.036694
    """
    if math.isinf(t):
        return 0.0 if t > 0 else 1.0
    tail = 0.5 * _betainc(dof / 2.0, 0.5, dof / (dof + t * t))
    return tail if t >= 0 else 1.0 - tail


def spearman(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float]:
    """Spearman's rho of ``ys`` against ``xs`` and its two-sided p-value.

    Neither sequence may be constant, and both need at least three values.

    Example:
        >>> rho, p = spearman([1, 2, 3, 4, 5], [2, 1, 4, 3, 5])
        >>> round(rho, 6), round(p, 6)
        (0.8, 0.104088)
    """
    rx, ry = average_ranks(xs), average_ranks(ys)
    n = len(rx)
    mx, my = math.fsum(rx) / n, math.fsum(ry) / n
    dx, dy = [r - mx for r in rx], [r - my for r in ry]
    sxy = math.fsum(a * b for a, b in zip(dx, dy, strict=True))
    rho = sxy / math.sqrt(math.fsum(a * a for a in dx) * math.fsum(b * b for b in dy))
    rho = max(-1.0, min(1.0, rho))
    dof = n - 2
    if abs(rho) == 1.0:
        return rho, 0.0
    t = rho * math.sqrt(max(dof / ((rho + 1.0) * (1.0 - rho)), 0.0))
    return rho, min(1.0, 2.0 * student_t_sf(abs(t), dof))


def _inversions(values: list[int]) -> int:
    """Pairs ``i < j`` with ``values[i] > values[j]`` (merge sort; sorts ``values``)."""
    if len(values) < 2:
        return 0
    mid = len(values) // 2
    left, right = values[:mid], values[mid:]
    count = _inversions(left) + _inversions(right)
    i = j = 0
    for k in range(len(values)):
        if j == len(right) or (i < len(left) and left[i] <= right[j]):
            values[k] = left[i]
            i += 1
        else:
            values[k] = right[j]
            j += 1
            count += len(left) - i
    return count


def _tie_sums(values: Sequence[float]) -> tuple[int, int, int]:
    """Over groups of equal values of size ``c``: sums of ``c(c-1)/2``, ``c(c-1)(c-2)`` and
    ``c(c-1)(2c+5)`` (the tie terms of tau-b and of its variance)."""
    sizes = [len(list(g)) for _, g in groupby(sorted(values))]
    return (
        sum(c * (c - 1) // 2 for c in sizes),
        sum(c * (c - 1) * (c - 2) for c in sizes),
        sum(c * (c - 1) * (2 * c + 5) for c in sizes),
    )


def _kendall_p_exact(n: int, concordant: int) -> float:
    """Two-sided p-value of ``concordant`` pairs among ``n`` untied values: twice the share of
    the ``n!`` permutations with at most ``min(c, n(n-1)/2 - c)`` inversions, counted exactly
    (Mahonian numbers) in integers."""
    c = min(concordant, n * (n - 1) // 2 - concordant)
    if n <= 2 or 4 * c == n * (n - 1):
        return 1.0
    counts = [1] + [0] * c  # permutations of 1 element, by number of inversions
    for j in range(2, n + 1):  # insert element j: it adds 0..j-1 inversions
        running, out = 0, []
        for k in range(c + 1):
            running += counts[k] - (counts[k - j] if k >= j else 0)
            out.append(running)
        counts = out
    return min(1.0, 2 * sum(counts) / math.factorial(n))


def kendall_tau_b(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float]:
    """Kendall's tau-b of ``ys`` against ``xs`` and its two-sided p-value.

    Neither sequence may be constant, and both need at least three values.

    Example:
        >>> tau, p = kendall_tau_b([1, 2, 3, 4, 5], [2, 1, 4, 3, 5])
        >>> round(tau, 6), round(p, 6)
        (0.6, 0.233333)
    """
    n = len(xs)
    pairs = sorted(zip(xs, ys, strict=True))  # by x, then y: equal x never count as discordant
    y_rank = {v: i for i, v in enumerate(sorted(set(ys)))}
    discordant = _inversions([y_rank[y] for _, y in pairs])
    joint = sum(c * (c - 1) // 2 for c in (len(list(g)) for _, g in groupby(pairs)))
    xtie, x0, x1 = _tie_sums(xs)
    ytie, y0, y1 = _tie_sums(ys)
    total = n * (n - 1) // 2
    con_minus_dis = total - xtie - ytie + joint - 2 * discordant
    tau = con_minus_dis / math.sqrt(total - xtie) / math.sqrt(total - ytie)
    tau = max(-1.0, min(1.0, tau))
    if xtie == 0 and ytie == 0 and (n <= 33 or min(discordant, total - discordant) <= 1):
        return tau, _kendall_p_exact(n, total - discordant)
    m = n * (n - 1.0)
    var = (m * (2 * n + 5) - x1 - y1) / 18 + 2 * xtie * ytie / m + x0 * y0 / (9 * m * (n - 2))
    return tau, math.erfc(abs(con_minus_dis) / math.sqrt(var) / math.sqrt(2.0))
