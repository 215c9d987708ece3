"""The Pareto front and hypervolume against pymoo, a referee that shares no code with Optuna's
WFG (which ``search/pareto.py`` calls): ``NonDominatedSorting``'s first front and the ``HV``
indicator (moocore's exact algorithm), on seeded random point sets of 2 to 4 objectives, with
ties, duplicates and points beyond the reference."""

from __future__ import annotations

import numpy as np
import pytest
from pymoo.indicators.hv import HV
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

from quantsearch.search.pareto import (
    hypervolume,
    hypervolume_reference_point,
    pareto_front,
    to_loss,
)


def _points(rng: np.random.Generator, n: int, m: int) -> np.ndarray:
    """``n`` points of ``m`` objectives on a coarse grid (ties and duplicates are common)."""
    return rng.integers(0, 6, size=(n, m)).astype(float) / 2


@pytest.mark.parametrize("m", [2, 3, 4])
@pytest.mark.parametrize("seed", range(8))
def test_pareto_front_is_pymoos_first_front(m: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    points = _points(rng, 30, m)
    directions = list(rng.choice(["minimize", "maximize"], size=m))
    losses = np.array([to_loss(p, directions) for p in points])
    want = NonDominatedSorting().do(losses, only_non_dominated_front=True)
    assert pareto_front(points.tolist(), directions) == sorted(want.tolist())


@pytest.mark.parametrize("m", [2, 3, 4])
@pytest.mark.parametrize("seed", range(8))
def test_hypervolume_is_pymoos(m: int, seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    points = _points(rng, 25, m)
    ref = np.asarray(hypervolume_reference_point(points.tolist()))
    got = hypervolume(points.tolist(), ref.tolist())
    want = HV(ref_point=ref)(points)
    assert got == pytest.approx(want, rel=1e-12, abs=1e-12)
    # a reference inside the cloud: points not strictly better in every objective add nothing
    inner = np.median(points, axis=0)
    inside = points[(points < inner).all(axis=1)]
    want_inner = HV(ref_point=inner)(inside) if len(inside) else 0.0
    assert hypervolume(points.tolist(), inner.tolist()) == pytest.approx(want_inner, abs=1e-12)
