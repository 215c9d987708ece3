"""Order statistics over seeds: quantiles, quartiles, and median curves with IQR bands.

Quantiles use linear interpolation between order statistics (NumPy's default) and are safe for
infinities: a run that never reached the optimum counts as ``inf``, so a median of ``inf`` means
most seeds did not reach it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Curve", "Quartiles", "median_curve", "quantile", "with_tail"]


def quantile(values: Sequence[float], q: float) -> float:
    """The ``q``-quantile with linear interpolation (NumPy's default), safe for infinities.

    Example:
        >>> quantile([1, 2, 3, 4], 0.25), quantile([1, 2, math.inf], 0.75)
        (1.75, inf)
    """
    v = sorted(float(x) for x in values)
    if not v:
        return math.nan
    pos = q * (len(v) - 1)
    lo, hi = math.floor(pos), math.ceil(pos)
    a, b = v[lo], v[hi]
    frac = pos - lo
    if frac == 0 or a == b:
        return a
    if math.isinf(a) or math.isinf(b):
        return a if math.isinf(a) else b
    return a + frac * (b - a)


@dataclass(frozen=True)
class Quartiles:
    """First quartile, median and third quartile of one measure over seeds."""

    q1: float
    median: float
    q3: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Quartiles:
        """Example:
        >>> Quartiles.of([1, 2, 3, 4, 5])
        Quartiles(q1=2.0, median=3.0, q3=4.0)
        """
        return cls(quantile(values, 0.25), quantile(values, 0.5), quantile(values, 0.75))


@dataclass(frozen=True)
class Curve:
    """Median and IQR of a per-run curve at each ``x``; ``n`` runs contribute at each point.

    Points where fewer than half of the runs have a value are ``nan`` (not drawn).
    """

    x: tuple[int, ...]
    median: tuple[float, ...]
    q1: tuple[float, ...]
    q3: tuple[float, ...]
    n: tuple[int, ...]


def with_tail(curve: Curve, length: int) -> Curve:
    """``curve`` with a last point at ``x = length`` repeating its last point, where it ends
    before ``length`` (its values are constant past its end).

    Example:
        >>> with_tail(median_curve([[1.0, 2.0]], 2), 10).x
        (1, 2, 10)
    """
    if not curve.x or curve.x[-1] >= length:
        return curve
    return Curve(
        (*curve.x, length),
        (*curve.median, curve.median[-1]),
        (*curve.q1, curve.q1[-1]),
        (*curve.q3, curve.q3[-1]),
        (*curve.n, curve.n[-1]),
    )


def median_curve(series: Sequence[Sequence[float]], length: int) -> Curve:
    """The median and IQR over ``series`` at ``x = 1 .. length`` (see :class:`Curve`).

    Example:
        >>> median_curve([[1.0, 2.0], [3.0]], 2).median
        (2.0, 2.0)
    """
    xs, med, lo, hi, ns = [], [], [], [], []
    runs = len(series)
    for i in range(length):
        vals = [s[i] for s in series if i < len(s)]
        xs.append(i + 1)
        ns.append(len(vals))
        if vals and 2 * len(vals) >= runs:
            q = Quartiles.of(vals)
            med.append(q.median)
            lo.append(q.q1)
            hi.append(q.q3)
        else:
            med.append(math.nan)
            lo.append(math.nan)
            hi.append(math.nan)
    return Curve(tuple(xs), tuple(med), tuple(lo), tuple(hi), tuple(ns))
