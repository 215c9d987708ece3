from __future__ import annotations

import itertools
import random

import pytest

from quantsearch.errors import MetricError
from quantsearch.search.config import ConstraintSpec, ObjectiveSpec, SearchConfig
from quantsearch.search.objective import constraint_values, objective_values
from quantsearch.search.pareto import dominates, pareto_front


def test_weighted_sum_takes_sign_from_direction() -> None:
    cfg = SearchConfig(
        objectives=(
            ObjectiveSpec("accuracy", "maximize", 1.0),
            ObjectiveSpec("model_size_bits", "minimize", 0.2, relative_to_baseline=True),
            ObjectiveSpec("loss", "minimize", 0.5),
        )
    )
    (v,) = objective_values(
        cfg, {"accuracy": 0.9, "model_size_bits": 250.0, "loss": 0.4}, {"model_size_bits": 1000.0}
    )
    assert v == pytest.approx(0.9 - 0.2 * 0.25 - 0.5 * 0.4)


def test_pareto_values_are_per_objective() -> None:
    cfg = SearchConfig(
        combine="pareto",
        objectives=(
            ObjectiveSpec("accuracy", "maximize"),
            ObjectiveSpec("bitops", "minimize", relative_to_baseline=True),
        ),
    )
    assert objective_values(cfg, {"accuracy": 0.5, "bitops": 10.0}, {"bitops": 40.0}) == (0.5, 0.25)


def test_relative_needs_a_nonzero_baseline() -> None:
    cfg = SearchConfig(objectives=(ObjectiveSpec("bitops", "minimize", relative_to_baseline=True),))
    with pytest.raises(MetricError, match="bitops"):
        objective_values(cfg, {"bitops": 1.0}, {"bitops": 0.0})


def test_constraint_forms() -> None:
    base = {"accuracy": 0.95, "bitops": 100.0, "loss": 0.2}
    m = {"accuracy": 0.93, "bitops": 30.0, "loss": 0.25}
    cons = [
        ConstraintSpec(
            "accuracy_drop", "accuracy", "drop", 0.01
        ),  # dropped 0.02 > 0.01: infeasible
        ConstraintSpec("bitops", "bitops", "max_ratio", 0.25),  # 0.30 > 0.25: infeasible
        ConstraintSpec("loss_increase", "loss", "increase", 0.1),  # 0.05 <= 0.1: feasible
        ConstraintSpec("accuracy", "accuracy", "min", 0.9),  # feasible
        ConstraintSpec("bitops", "bitops", "max", 50.0),  # feasible
    ]
    got = constraint_values(cons, m, base)
    assert got == pytest.approx([0.01, 0.05, -0.05, -0.03, -20.0])


def _brute_front(points: list[tuple[float, float]], dirs: list[str]) -> set[int]:
    def better_eq(a: float, b: float, d: str) -> bool:
        return a >= b if d == "maximize" else a <= b

    front = set()
    for i, p in enumerate(points):
        dominated = False
        for j, q in enumerate(points):
            if i != j and all(better_eq(q[k], p[k], dirs[k]) for k in range(2)) and q != p:
                dominated = True
        if not dominated:
            front.add(i)
    return front


@pytest.mark.parametrize("dirs", list(itertools.product(["maximize", "minimize"], repeat=2)))
def test_pareto_front_matches_brute_force_definition(dirs: tuple[str, str]) -> None:
    rng = random.Random(0)
    points = [(float(rng.randint(0, 6)), float(rng.randint(0, 6))) for _ in range(60)]
    assert set(pareto_front(points, list(dirs))) == _brute_front(points, list(dirs))


def test_dominates() -> None:
    assert dominates((1, 1), (0, 2), ["maximize", "minimize"])
    assert not dominates((1, 1), (1, 1), ["maximize", "maximize"])
