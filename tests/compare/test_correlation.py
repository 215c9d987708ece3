"""Rank correlations without SciPy, checked against SciPy (the referee):
``scipy.stats.spearmanr``, ``kendalltau`` and ``t.sf`` on seeded samples with and without
ties, small (exact Kendall p-values) and large (normal approximation)."""

from __future__ import annotations

import random

import pytest
from scipy import stats

from quantsearch.compare.correlation import (
    average_ranks,
    kendall_tau_b,
    spearman,
    student_t_sf,
)


def samples() -> list[tuple[list[float], list[float]]]:
    rng = random.Random(0)
    out = []
    for n in (3, 4, 5, 8, 16, 33, 34, 60, 400):
        for levels in (None, 3, 10):  # None: continuous values, no ties
            for _ in range(3):
                if levels is None:
                    xs = [rng.random() for _ in range(n)]
                    ys = [x + rng.gauss(0, 0.5) for x in xs]
                else:
                    xs = [float(rng.randrange(levels)) for _ in range(n)]
                    ys = [float(rng.randrange(levels)) + x / 2 for x in xs]
                if len(set(xs)) > 1 and len(set(ys)) > 1:
                    out.append((xs, ys))
    out.append(([1.0, 2.0, 3.0, 4.0], [4.0, 3.0, 2.0, 1.0]))  # perfect: rho = tau = -1
    out.append(([float(i) for i in range(40)], [float(i) for i in range(40)]))  # exact, n > 33
    swapped = [float(i) for i in range(40)]
    swapped[3], swapped[4] = swapped[4], swapped[3]  # one discordant pair: exact, n > 33
    out.append(([float(i) for i in range(40)], swapped))
    return out


@pytest.mark.parametrize(("xs", "ys"), samples())
def test_equal_to_scipy(xs: list[float], ys: list[float]) -> None:
    assert average_ranks(xs) == pytest.approx(list(stats.rankdata(xs)), abs=0)
    rho, p = spearman(xs, ys)
    ref = stats.spearmanr(xs, ys)
    assert rho == pytest.approx(ref.statistic, rel=1e-12, abs=1e-12)
    assert p == pytest.approx(ref.pvalue, rel=1e-9, abs=1e-14)
    tau, p = kendall_tau_b(xs, ys)
    ref = stats.kendalltau(xs, ys)
    assert tau == pytest.approx(ref.statistic, rel=1e-12, abs=1e-12)
    assert p == pytest.approx(ref.pvalue, rel=1e-9, abs=1e-14)


@pytest.mark.parametrize("dof", [1, 2, 3, 7, 30, 398])
@pytest.mark.parametrize("t", [-5.0, -0.3, 0.0, 0.01, 1.0, 2.5, 8.0, 40.0])
def test_student_t_sf_equals_scipy(t: float, dof: int) -> None:
    assert student_t_sf(t, dof) == pytest.approx(stats.t.sf(t, dof), rel=1e-10, abs=1e-300)
