"""The Pareto front and its hypervolume: one home for results, comparisons and reports.

Objective vectors are compared in the study's directions (``"maximize"`` / ``"minimize"`` per
objective). Hypervolumes take vectors with every objective minimised (negate the ones to
maximise first) and use Optuna's exact implementation (WFG; closed forms in 2-D and 3-D).
"""

from __future__ import annotations

from collections.abc import Sequence

from quantsearch.search.optuna_compat import compute_hypervolume

__all__ = ["dominates", "hypervolume", "hypervolume_reference_point", "pareto_front", "to_loss"]


def dominates(a: Sequence[float], b: Sequence[float], directions: Sequence[str]) -> bool:
    """``a`` is no worse than ``b`` in every objective and better in at least one.

    Example:
        >>> dominates((1, 1), (0, 2), ["maximize", "minimize"])
        True
    """
    better = False
    for x, y, d in zip(a, b, directions, strict=True):
        if d == "minimize":
            x, y = -x, -y
        if x < y:
            return False
        if x > y:
            better = True
    return better


def pareto_front(points: Sequence[Sequence[float]], directions: Sequence[str]) -> list[int]:
    """Indices of the non-dominated points (duplicates of a front point are all kept).

    Example:
        >>> pareto_front([(0.9, 10), (0.8, 5), (0.7, 8)], ["maximize", "minimize"])
        [0, 1]
    """
    return [
        i
        for i, p in enumerate(points)
        if not any(dominates(q, p, directions) for j, q in enumerate(points) if j != i)
    ]


def to_loss(values: Sequence[float], directions: Sequence[str]) -> tuple[float, ...]:
    """``values`` with every objective minimised (the ones to maximise negated)."""
    return tuple(-v if d == "maximize" else v for v, d in zip(values, directions, strict=True))


def hypervolume(points: Sequence[Sequence[float]], reference: Sequence[float]) -> float:
    """The hypervolume dominated by ``points`` (all objectives minimised) up to ``reference``.

    Points not strictly better than the reference in every objective add nothing.

    Example:
        >>> hypervolume([(1.0, 2.0), (2.0, 1.0)], (3.0, 3.0))
        3.0
    """
    import numpy as np  # here, not at the top: `quantsearch --help` imports this module

    ref = np.asarray(reference, dtype=float)
    pts = np.asarray([p for p in points if all(x < r for x, r in zip(p, ref, strict=True))])
    if len(pts) == 0:
        return 0.0
    return compute_hypervolume(pts, ref)


def hypervolume_reference_point(points: Sequence[Sequence[float]]) -> tuple[float, ...]:
    """The reference point rule: worst value plus 10% of the range, per (minimised) objective.

    When worst and best are equal, the margin is ``0.1 * max(|worst|, 1)``.

    Example:
        >>> hypervolume_reference_point([(0.0, 4.0), (2.0, 2.0)])
        (2.2, 4.2)
    """
    if not points:
        raise ValueError("a hypervolume reference point needs at least one point")
    ref = []
    for col in zip(*points, strict=True):
        worst, best = max(col), min(col)
        span = worst - best
        ref.append(worst + (0.1 * span if span > 0 else 0.1 * max(abs(worst), 1.0)))
    return tuple(ref)
