"""The Pareto front and hypervolume (search/pareto.py), against hand-computed answers."""

from __future__ import annotations

import pytest

from quantsearch.search.pareto import (
    hypervolume,
    hypervolume_reference_point,
    pareto_front,
    to_loss,
)


def test_hypervolume_of_known_sets() -> None:
    assert hypervolume([(1.0, 2.0), (2.0, 1.0)], (3.0, 3.0)) == 3.0
    assert hypervolume([(1.0, 1.0), (2.0, 2.0)], (3.0, 3.0)) == 4.0  # dominated point adds 0
    assert hypervolume([(4.0, 0.0)], (3.0, 3.0)) == 0.0  # beyond the reference: nothing
    assert hypervolume([(0.0, 0.0, 0.0)], (1.0, 2.0, 3.0)) == 6.0
    assert hypervolume_reference_point([(0.0, 4.0), (2.0, 2.0)]) == pytest.approx((2.2, 4.2))
    assert hypervolume_reference_point([(1.0, 5.0)]) == pytest.approx((1.1, 5.5))


def test_pareto_front_keeps_duplicates_and_follows_directions() -> None:
    points = [(0.9, 10.0), (0.8, 5.0), (0.7, 8.0), (0.9, 10.0)]
    assert pareto_front(points, ["maximize", "minimize"]) == [0, 1, 3]
    assert pareto_front(points, ["minimize", "maximize"]) == [0, 2, 3]


def test_to_loss_negates_what_is_maximised() -> None:
    assert to_loss((0.9, 10.0), ("maximize", "minimize")) == (-0.9, 10.0)
