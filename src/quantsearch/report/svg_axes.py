"""Axes of the native SVG figures: scales, readable ticks, tick labels and text widths.

Plain Python (no matplotlib, no numpy), so that a report draws its pictures without importing
a plotting library. The rules are matplotlib's, so a picture reads the same in SVG and PNG:

- limits: the data's range with a 5% margin on each side (``axes.xmargin``);
- ticks: matplotlib's ``MaxNLocator`` with the steps of its ``AutoLocator`` (1, 2, 2.5, 5, 10
  times a power of ten), at most 9 intervals and fewer on a short axis (its ``nbins="auto"``),
  integers only on count axes (``integer=True``); ``tests/report/test_svg.py`` checks the ticks
  against matplotlib's own over many spans;
- the symmetric-log axis: matplotlib's ``SymmetricalLogTransform`` (base 10, ``linscale``
  0.5), ticks at 0 and at each decade.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = [
    "STEPS",
    "Axis",
    "Scale",
    "data_limits",
    "decade_label",
    "linear_axis",
    "max_n_ticks",
    "symlog",
    "symlog_axis",
    "text_width",
    "tick_labels",
]

STEPS = (1.0, 2.0, 2.5, 5.0, 10.0)  # matplotlib's AutoLocator
MARGIN = 0.05  # matplotlib's axes.xmargin and axes.ymargin

# Advance widths of DejaVu Sans (the font the SVG names first) for ASCII 32-126, in em, read
# from the font with matplotlib's FT2Font; other characters are taken as 0.65 em.
_WIDTHS = (
    0.318,
    0.401,
    0.46,
    0.838,
    0.636,
    0.95,
    0.78,
    0.275,
    0.39,
    0.39,
    0.5,
    0.838,
    0.318,
    0.361,
    0.318,
    0.337,
    0.636,
    0.636,
    0.636,
    0.636,
    0.636,
    0.636,
    0.636,
    0.636,
    0.636,
    0.636,
    0.337,
    0.337,
    0.838,
    0.838,
    0.838,
    0.531,
    1.0,
    0.684,
    0.686,
    0.698,
    0.77,
    0.631,
    0.575,
    0.775,
    0.752,
    0.295,
    0.295,
    0.656,
    0.557,
    0.863,
    0.748,
    0.787,
    0.603,
    0.787,
    0.695,
    0.635,
    0.611,
    0.732,
    0.684,
    0.989,
    0.685,
    0.611,
    0.685,
    0.39,
    0.337,
    0.39,
    0.838,
    0.5,
    0.5,
    0.613,
    0.635,
    0.55,
    0.635,
    0.615,
    0.352,
    0.635,
    0.634,
    0.278,
    0.279,
    0.579,
    0.278,
    0.974,
    0.634,
    0.611,
    0.635,
    0.635,
    0.412,
    0.521,
    0.392,
    0.634,
    0.592,
    0.818,
    0.592,
    0.592,
    0.525,
    0.637,
    0.337,
    0.636,
    0.838,
)


def text_width(text: str, size: float) -> float:
    """The width in px of ``text`` at font size ``size`` px (for layout, not typesetting).

    Example:
        >>> round(text_width("10", 10.0), 2)
        12.72
    """
    return size * sum(_WIDTHS[o - 32] if 32 <= (o := ord(c)) < 127 else 0.65 for c in text)


def data_limits(values: Iterable[float], margin: float = MARGIN) -> tuple[float, float]:
    """The finite values' range widened by ``margin`` of it on each side; a single value is
    widened by 5% of itself (``(-0.05, 0.05)`` for zero), as matplotlib's ``nonsingular`` does;
    ``(0, 1)`` when there is none."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return 0.0, 1.0
    lo, hi = min(finite), max(finite)
    if hi - lo <= 1e-14 * max(abs(lo), abs(hi)):
        return (-0.05, 0.05) if hi == 0 else (lo - 0.05 * abs(lo), hi + 0.05 * abs(hi))
    pad = (hi - lo) * margin
    return lo - pad, hi + pad


def _scale_range(vmin: float, vmax: float, n: int) -> tuple[float, float]:
    # matplotlib.ticker.scale_range: the power of ten of a step, and an offset for large values
    dv = abs(vmax - vmin)
    meanv = (vmax + vmin) / 2
    offset = 0.0
    if abs(meanv) / dv >= 100:
        offset = math.copysign(10 ** (math.log10(abs(meanv)) // 1), meanv)
    return 10 ** (math.log10(dv / n) // 1), offset


def _edge(step: float, offset: float) -> tuple[float, float]:
    # matplotlib.ticker._Edge_integer: the tolerance of "a multiple of step"
    if offset:
        return step, min(0.4999, max(1e-10, 10 ** (math.log10(abs(offset) / step) - 12)))
    return step, 1e-10


def _le(x: float, step: float, tol: float) -> float:
    d, m = divmod(x, step)
    return d + 1 if abs(m / step - 1) < tol else d


def _ge(x: float, step: float, tol: float) -> float:
    d, m = divmod(x, step)
    return d if abs(m / step) < tol else d + 1


def max_n_ticks(
    vmin: float,
    vmax: float,
    nbins: int = 9,
    *,
    integer: bool = False,
    steps: Sequence[float] = STEPS,
    min_n_ticks: int = 2,
) -> list[float]:
    """Ticks within ``[vmin, vmax]`` at a "nice" step: matplotlib's ``MaxNLocator`` (the same
    algorithm and floating-point steps), its ticks outside the range left out.

    Example:
        >>> max_n_ticks(0.0, 1.0, 5)
        [0.0, 0.2, 0.4, 0.6000000000000001, 0.8, 1.0]
    """
    if vmax < vmin:
        vmin, vmax = vmax, vmin
    if vmax - vmin <= 1e-14 * max(abs(vmin), abs(vmax), 1e-300):
        vmin, vmax = (
            (-1e-13, 1e-13) if vmax == 0 else (vmin - 1e-13 * abs(vmin), vmax + 1e-13 * abs(vmax))
        )
    scale, offset = _scale_range(vmin, vmax, nbins)
    lo, hi = vmin - offset, vmax - offset
    staircase = [0.1 * s for s in steps[:-1]] + list(steps) + [10 * steps[1]]
    scaled = [s * scale for s in staircase]
    if integer:
        scaled = [s for s in scaled if s < 1 or abs(s - round(s)) < 0.001]
    raw = (hi - lo) / nbins
    large = [i for i, s in enumerate(scaled) if s >= raw]
    top = large[0] if large else len(scaled) - 1
    ticks: list[float] = []
    for step in reversed(scaled[: top + 1]):
        if integer and math.floor(hi) - math.ceil(lo) >= min_n_ticks - 1:
            step = max(1.0, step)
        best = (lo // step) * step
        step, tol = _edge(step, offset)
        low, high = _le(lo - best, step, tol), _ge(hi - best, step, tol)
        ticks = [(low + i) * step + best for i in range(int(high - low) + 1)]
        if sum(1 for t in ticks if lo <= t <= hi) >= min_n_ticks:
            break
    slack = (vmax - vmin) * 1e-9  # a tick at the edge, off by rounding, is still on the axis
    return [t + offset for t in ticks if vmin - slack <= t + offset <= vmax + slack]


def tick_labels(ticks: Sequence[float], thousands: bool = False) -> list[str]:
    """Labels with as many decimals as the ticks need, the same for all of them; ticks that
    would need more than five decimals in scientific notation, zero as ``0``; ``thousands``:
    whole numbers with separators (``12,000``), as the PNG's thousands axes.

    Example:
        >>> tick_labels([0.0, 0.25, 0.5]), tick_labels([0.0, 20000.0], thousands=True)
        (['0.00', '0.25', '0.50'], ['0', '20,000'])
        >>> tick_labels([-2e-7, 0.0, 2e-7, 4e-7])
        ['-2e-07', '0', '2e-07', '4e-07']
    """
    if thousands:
        return [_nozero(f"{t:,.0f}") for t in ticks]
    span = max((abs(t) for t in ticks), default=0.0)
    step = min((abs(b - a) for a, b in itertools.pairwise(ticks) if b != a), default=span or 1.0)
    digits = 0  # enough that every label is within a millionth of a step of its tick
    while digits < 15 and any(abs(round(t, digits) - t) > step * 1e-6 for t in ticks):
        digits += 1
    fixed = [_nozero(f"{t:.{digits}f}") for t in ticks]
    if digits <= 5:
        return fixed
    sig = 1  # significant digits: as few as read back within a millionth of a step
    while sig < 17 and any(abs(float(f"{t:.{sig}g}") - t) > step * 1e-6 for t in ticks):
        sig += 1
    small = ["0" if abs(t) < step * 1e-6 else f"{t:.{sig}g}" for t in ticks]
    return small if any("e" in label for label in small) else fixed


def _nozero(text: str) -> str:
    """``-0`` and ``-0.00`` are written without their sign."""
    return text[1:] if text.startswith("-") and not text.strip("-0.,") else text


def decade_label(v: float) -> str:
    """A symmetric-log tick: ``0``, a decade as a plain number from 1e-4 to 1e4, else as a
    power of ten (``10⁻⁵``).

    Example:
        >>> decade_label(0.0), decade_label(0.01), decade_label(1e-6), decade_label(-1e5)
        ('0', '0.01', '10⁻⁶', '−10⁵')
    """
    if v == 0:
        return "0"
    k = round(math.log10(abs(v)))
    sign = "−" if v < 0 else ""
    if -4 <= k <= 4:
        return sign + (f"{10.0**k:.{max(0, -k)}f}")
    return f"{sign}10" + str(k).translate(str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹"))


def symlog(v: float, linthresh: float, linscale: float = 0.5) -> float:
    """matplotlib's ``SymmetricalLogTransform`` with base 10: linear within ``linthresh`` of
    zero, logarithmic beyond; ``linscale`` is the length of the linear half-range in decades.

    Example:
        >>> symlog(0.0, 1e-3), round(symlog(1e-3, 1e-3) / symlog(1e-2, 1e-3), 6)
        (0.0, 0.357143)
    """
    adj = linscale / (1.0 - 10.0**-1)
    a = abs(v)
    if a <= linthresh:
        return v * adj
    return math.copysign(linthresh * (adj + math.log10(a / linthresh)), v)


@dataclass(frozen=True)
class Scale:
    """The data range ``[lo, hi]`` of an axis; symmetric-log when ``linthresh`` > 0."""

    lo: float
    hi: float
    linthresh: float = 0.0
    linscale: float = 0.5

    def _t(self, v: float) -> float:
        return symlog(v, self.linthresh, self.linscale) if self.linthresh > 0 else v

    def frac(self, v: float) -> float:
        """Where ``v`` lies along the axis: 0 at ``lo``, 1 at ``hi``.

        Example:
            >>> Scale(0.0, 4.0).frac(1.0)
            0.25
        """
        lo, hi = self._t(self.lo), self._t(self.hi)
        return (self._t(v) - lo) / (hi - lo) if hi != lo else 0.5


@dataclass(frozen=True)
class Axis:
    """A scale with its ticks, their labels, and unlabelled minor ticks."""

    scale: Scale
    ticks: tuple[float, ...]
    labels: tuple[str, ...]
    minor: tuple[float, ...] = ()


def n_bins(length: float, font: float, vertical: bool) -> int:
    """matplotlib's ``nbins="auto"``: as many intervals as labels fit (a label takes three
    font sizes across, two up), from 1 to 9."""
    return max(1, min(9, math.floor(length / (font * (2 if vertical else 3)))))


def linear_axis(
    lo: float,
    hi: float,
    length: float,
    font: float,
    *,
    vertical: bool = False,
    integer: bool = False,
    thousands: bool = False,
) -> Axis:
    """A linear axis over ``[lo, hi]`` drawn ``length`` px long with tick labels of ``font`` px."""
    ticks = max_n_ticks(lo, hi, n_bins(length, font, vertical), integer=integer)
    return Axis(Scale(lo, hi), tuple(ticks), tuple(tick_labels(ticks, thousands)))


def symlog_axis(lo: float, hi: float, linthresh: float, length: float, font: float) -> Axis:
    """A symmetric-log axis over ``[lo, hi]``: ticks at zero and at the decades in range (every
    second or third one if they would crowd), labelled by :func:`decade_label`; minor ticks at
    2-9 times each decade on the logarithmic part (matplotlib's ``subs``), unless crowded."""
    decades = []
    if hi > 0:
        k0 = math.ceil(math.log10(linthresh) - 1e-9)
        decades = [10.0**k for k in range(k0, math.floor(math.log10(hi) + 1e-9) + 1)]
    negative = []
    if lo < 0:
        k0 = math.ceil(math.log10(linthresh) - 1e-9)
        negative = [-(10.0**k) for k in range(k0, math.floor(math.log10(-lo) + 1e-9) + 1)]
    room = n_bins(length, font, vertical=True) + 1
    stride = max(1, math.ceil((len(decades) + len(negative) + 1) / room))
    ticks = [
        *negative[::-1][::-stride][::-1],
        *([0.0] if lo <= 0 <= hi else []),
        *decades[::stride],
    ]
    minor: list[float] = []
    if stride == 1:
        k0 = math.floor(math.log10(linthresh) + 1e-9)
        for top, sign in ((hi, 1.0), (-lo, -1.0)):
            if top > linthresh:
                minor += [
                    sign * m * 10.0**k
                    for k in range(k0, math.floor(math.log10(top)) + 1)
                    for m in range(2, 10)
                    if linthresh < m * 10.0**k <= top
                ]
    labels = tuple(decade_label(t) for t in ticks)
    return Axis(Scale(lo, hi, linthresh), tuple(ticks), labels, tuple(sorted(minor)))
