"""The local-search strategy, checked by replaying its trial sequence by hand."""

from __future__ import annotations

import itertools

import optuna
import pytest
import torch
from torch import nn

from quantsearch.data import DataSplits
from quantsearch.graph import trace
from quantsearch.search import STRATEGIES, search
from quantsearch.search.space import SearchSpace, parse_space
from quantsearch.search.strategies import StrategyContext
from quantsearch.search.strategies.local import _cost_levels
from tests.search.spaces import LAB_SPACE

OBJ = {
    "accuracy": {"direction": "maximize"},
    "model_size_bits": {"direction": "minimize", "weight": 0.2, "relative_to_baseline": True},
}


# LAB_SPACE's cheapest-first ordinals: 0 = fixed(4,2), 1 and 2 = the two 8-bit choices (one cost
# level), 3 = fixed(16,8). A neighbour is any choice of the next cheaper, the same or the next
# dearer level.
LEVEL_NEIGHBOURS = {0: {1, 2}, 1: {0, 2, 3}, 2: {0, 1, 3}, 3: {1, 2}}


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
            (*incumbent[:i], j, *incumbent[i + 1 :])
            for i in range(2)
            for j in LEVEL_NEIGHBOURS[incumbent[i]]
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


# --- equal-cost plateaus ---------------------------------------------------------------------

N_KNOBS = 5
# three 16-bit choices of equal cost above the cheaper ones: the plateau of issue 12
PLATEAU = [[16, 8], [16, 10], [16, 12], [8, 4], [8, 6], [4, 2]]


def _plateau_space() -> SearchSpace:
    layers = [nn.Linear(4, 4) for _ in range(N_KNOBS)]
    gm = trace(nn.Sequential(*layers).eval(), torch.zeros(2, 4))
    spec = parse_space(
        {"by": "name", "choices": {f"_{i}": {"weight": PLATEAU} for i in range(N_KNOBS)}}
    )
    return SearchSpace(spec, gm)


def _bits(space: SearchSpace, params: dict[str, int]) -> list[int]:
    """Widths of the chosen formats, read from their labels by hand (``fixed(w,f)``)."""
    choice = space.decode(params)
    return [int(k.labels[choice[k.name]].split("(")[1].split(",")[0]) for k in space.knobs]


def _run_local(space: SearchSpace, n_trials: int, seed: int) -> list[list[int]]:
    """The widths of each trial's point, minimizing total bits (a pure cost objective)."""
    sampler = STRATEGIES.get("local").build(StrategyContext(space=space, seed=seed))
    study = optuna.create_study(direction="minimize", sampler=sampler)
    widths: list[list[int]] = []

    def objective(trial: optuna.Trial) -> float:
        params = {k.name: trial.suggest_int(k.name, 0, k.size - 1) for k in space.knobs}
        widths.append(_bits(space, params))
        return float(sum(widths[-1]))

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study.optimize(objective, n_trials=n_trials)
    return widths


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_leaves_a_16_bit_plateau_within_as_many_trials_as_knobs(seed: int) -> None:
    space = _plateau_space()
    widths = _run_local(space, N_KNOBS, seed)
    assert widths[0] == [16] * N_KNOBS  # the dearest point
    assert any(w < 16 for point in widths for w in point)
    # cost levels, not ordinal steps: every move after the start makes one knob cheaper
    for before, after in itertools.pairwise(widths):
        assert sum(after) < sum(before)


def test_reaches_the_cheapest_point_in_one_move_per_knob_and_level() -> None:
    space = _plateau_space()
    widths = _run_local(space, 1 + 2 * N_KNOBS, seed=0)  # start, then 16 -> 8 -> 4 per knob
    assert widths[-1] == [4] * N_KNOBS


def test_an_auto_binary_point_is_on_the_cost_level_of_its_width() -> None:
    """fixed(8,auto) stores 8 bits a weight, as fixed(8,4) does: one cost level, not its own."""
    gm = trace(nn.Sequential(nn.Linear(4, 3)), torch.ones(2, 4))
    spec = parse_space({"choices": {"linear": {"weight": [[8, "auto"], [4, 2], [8, 4], [6, 3]]}}})
    space = SearchSpace(spec, gm)
    (knob,) = space.knobs
    assert knob.bits == (8.0, 4.0, 8.0, 6.0)  # option order, as spelt
    assert knob.bits is knob.bits  # computed once per knob, not per read
    by_cost = [knob.labels[space.decode({knob.name: j})[knob.name]] for j in range(4)]
    assert by_cost == ["fixed(4,2)", "fixed(6,3)", "fixed(8,4)", "fixed(8,auto)"]
    assert _cost_levels(space, 0) == [[0], [1], [2, 3]]
