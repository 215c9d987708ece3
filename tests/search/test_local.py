"""The local-search strategy, checked by replaying its trial sequence by hand."""

from __future__ import annotations

from torch import nn

from quantsearch.data import DataSplits
from quantsearch.search import search
from tests.search.spaces import LAB_SPACE

OBJ = {
    "accuracy": {"direction": "maximize"},
    "model_size_bits": {"direction": "minimize", "weight": 0.2, "relative_to_baseline": True},
}


def test_climbs_from_the_dearest_point_through_neighbours(
    mlp: nn.Module, digits: DataSplits
) -> None:
    result = search(
        mlp, digits.val, space=LAB_SPACE, objectives=OBJ, strategy="local", n_trials=16, seed=0
    )
    points = [tuple(t.params.values()) for t in result.trials]
    assert points[0] == (3, 3)  # cheapest-first indices: both knobs at fixed(16,8)
    assert result.trials[0].params == {"linear.data_in": 3, "linear.weight": 3}
    assert len(set(points)) == len(points) == 16  # never a point twice: the space, exactly
    for k in range(1, len(points)):
        done = result.trials[:k]
        best = max(done, key=lambda t: (t.feasible is not False, t.values[0], -t.number))  # type: ignore[index]
        incumbent = tuple(best.params.values())
        neighbours = {
            (*incumbent[:i], incumbent[i] + d, *incumbent[i + 1 :])
            for i in range(2)
            for d in (-1, 1)
            if 0 <= incumbent[i] + d < 4
        }
        if points[k] not in neighbours:  # a restart: only once every neighbour is visited
            assert neighbours <= set(points[:k]), (k, incumbent, points[k])


def test_seeded(mlp: nn.Module, digits: DataSplits) -> None:
    runs = [
        [
            t.params
            for t in search(
                mlp,
                digits.val,
                space=LAB_SPACE,
                objectives=OBJ,
                strategy="local",
                n_trials=8,
                seed=s,
            ).trials
        ]
        for s in (1, 1)
    ]
    assert runs[0] == runs[1]
