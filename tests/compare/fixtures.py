"""Session fixtures for the comparison, report and plot tests: the lab's 16-point space on a
briefly trained mlp-digits, compared once per session (weighted sum and Pareto)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from torch import nn

from quantsearch.compare import ComparisonResult, run_comparison
from quantsearch.data import DataSplits
from quantsearch.search.config import SearchConfig, parse_search_config
from quantsearch.search.evaluate import Evaluator
from quantsearch.search.space import SearchSpace
from tests.search.spaces import LAB_SPACE

WEIGHTED = {
    "accuracy": {"direction": "maximize", "weight": 1.0},
    "model_size_bits": {"direction": "minimize", "weight": 0.2, "relative_to_baseline": True},
}
PARETO = {
    "combine": "pareto",
    "accuracy": {"direction": "maximize"},
    "model_size_bits": {"direction": "minimize"},
}
CONSTRAINTS = {"accuracy_drop": {"max": 0.05}}
STRATEGIES = ("brute_force", "tpe", "random", "nsga2")
SEEDS = (0, 1, 2)
N_TRIALS = 24


@dataclass
class Lab:
    space: SearchSpace
    evaluator: Evaluator
    cfg: SearchConfig


def make_lab(
    mlp: nn.Module,
    digits: DataSplits,
    objectives: dict[str, object],
    constraints: dict[str, object] = CONSTRAINTS,
) -> Lab:
    from quantsearch.graph import trace
    from quantsearch.search.api import prepare_search

    cfg = parse_search_config(
        {"space": LAB_SPACE, "objectives": objectives, "constraints": constraints}
    )
    gm = trace(mlp, digits.val.x[:8])
    space, evaluator = prepare_search(gm, cfg, digits.val)
    return Lab(space, evaluator, cfg)


@pytest.fixture(scope="session")
def lab(mlp: nn.Module, digits: DataSplits) -> Lab:
    return make_lab(mlp, digits, WEIGHTED)


@pytest.fixture(scope="session")
def lab_comparison(lab: Lab) -> ComparisonResult:
    return run_comparison(
        lab.space, lab.evaluator, lab.cfg, strategies=STRATEGIES, seeds=SEEDS, n_trials=N_TRIALS
    )


@pytest.fixture(scope="session")
def pareto_comparison(mlp: nn.Module, digits: DataSplits) -> ComparisonResult:
    p = make_lab(mlp, digits, PARETO)
    return run_comparison(
        p.space, p.evaluator, p.cfg, strategies=("brute_force", "tpe", "random"), seeds=(0, 1),
        n_trials=16,
    )  # fmt: skip


@pytest.fixture(scope="session")
def compare_dir(
    lab: Lab, lab_comparison: ComparisonResult, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The weighted comparison written with its report."""
    from dataclasses import asdict

    from quantsearch.report import write_report

    out = tmp_path_factory.mktemp("compare")
    meta = {"source": "test", "model": "mlp-digits", "dataset": "digits", "search": asdict(lab.cfg)}
    lab_comparison.write(out, meta)
    lab_comparison.report = write_report(out)
    return out
