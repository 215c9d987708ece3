"""search() on any task: a Dataset or DataLoader gives the tensor path's results exactly, and
a user's evaluate function supplies metrics that objectives, constraints and results name,
with their declared directions; a failure inside it fails that trial only."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from quantsearch.errors import ConfigError
from quantsearch.graph import trace
from quantsearch.metrics.user import Batches
from quantsearch.search.api import prepare_search, search
from quantsearch.search.config import parse_search_config

SPACE = {"choices": {"linear": {"weight": [[8, 4], [6, 3], [4, 2]]}}}
G = torch.Generator().manual_seed(0)
X = torch.randn(96, 6, generator=G)
Y_REG = X[:, :2] @ torch.tensor([[1.0, -0.5], [0.25, 2.0]]) + 0.1  # two regression targets
Y_CLS = (X[:, 0] > X[:, 1]).long()  # two classes, as the model has two outputs


def regressor() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 12), nn.ReLU(), nn.Linear(12, 2)).eval()


class Rows(Dataset):  # type: ignore[type-arg]
    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[i], self.y[i]


def _run(data: Any, objectives: dict[str, Any], **kw: Any) -> list[tuple[Any, ...]]:
    r = search(
        regressor(), data, space=SPACE, objectives=objectives, strategy="brute_force",
        n_trials=10, batch_size=16, **kw,
    )  # fmt: skip
    return [(t.params, t.values, t.metrics) for t in r.trials]


@pytest.mark.parametrize("y", [Y_REG, Y_CLS], ids=["regression", "classes"])
def test_a_dataloader_and_a_dataset_give_the_tensor_paths_results_exactly(
    y: torch.Tensor,
) -> None:
    if y is Y_REG:
        obj: dict[str, Any] = {"mse": {}, "mae": {"weight": 0.5}}
        kw: dict[str, Any] = {"metrics": ["model_size_bits"]}
    else:
        obj, kw = {"accuracy": {"direction": "maximize"}}, {}
    want = _run((X, y), obj, **kw)
    assert len(want) == 3 and all(v is not None for _, v, _ in want)
    assert _run(DataLoader(TensorDataset(X, y), batch_size=10), obj, **kw) == want
    assert _run(Rows(X, y), obj, **kw) == want


@pytest.mark.parametrize("scale", [None, 0.9], ids=["randn", "fractions-in-0-1"])
def test_a_regression_objective_records_mse_and_no_classification_metrics(
    scale: float | None,
) -> None:
    # 1 output, 1-D float targets: randn failed on "labels must be in [0, 0]"; rand() * 0.9
    # recorded accuracy 1.0 on every trial (the targets truncated to class 0)
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1)).eval()
    x = torch.randn(64, 4, generator=torch.Generator().manual_seed(2))
    g = torch.Generator().manual_seed(3)
    y = torch.randn(64, generator=g) if scale is None else torch.rand(64, generator=g) * scale
    r = search(
        model, (x, y), space=SPACE, objectives={"mse": {"direction": "minimize"}},
        strategy="brute_force", n_trials=3, device="cpu",  # where the referee's model runs
    )  # fmt: skip
    assert len(r.trials) == 3
    for t in r.trials:
        assert set(t.metrics) == {"mse", "mae", "model_size_bits", "avg_weight_bits", "bitops"}
        with torch.no_grad():
            out = r.model(t)(x).double().numpy()[:, 0]
        err = out - y.double().numpy()  # referee: numpy's mean over the trial's own model
        assert t.metrics["mse"] == pytest.approx(float(np.mean(err**2)), rel=1e-9)
        assert t.metrics["mae"] == pytest.approx(float(np.mean(np.abs(err))), rel=1e-9)
    assert len({t.metrics["mse"] for t in r.trials}) == 3  # the formats differ, so do the errors


def score(model: nn.Module, batches: Batches) -> dict[str, Any]:
    err = torch.cat([(model(x) - y).abs().flatten() for x, y in batches])
    return {"max_abs_error": err.max(), "within_half": float((err < 0.5).float().mean())}


def test_evaluate_metrics_serve_objectives_and_constraints_with_their_directions() -> None:
    r = search(
        regressor(), DataLoader(TensorDataset(X, Y_REG), batch_size=32), space=SPACE,
        objectives={"max_abs_error": {"direction": "minimize"}, "model_size_bits": {},
                    "combine": "pareto"},
        constraints={"within_half": {"min": 0.0}, "mse": {"max": 1e6}},
        strategy="brute_force", n_trials=10, evaluate=score,
        evaluate_directions={"within_half": "maximize"},
    )  # fmt: skip
    assert r.objective_names == ["max_abs_error", "model_size_bits"]
    assert r.directions == ["minimize", "minimize"]
    assert len(r.trials) == 3 and all(t.error is None for t in r.trials)
    with torch.no_grad():  # the float model's values against numpy, the referee
        err = np.abs(regressor()(X).numpy() - Y_REG.numpy())
    assert r.baseline["max_abs_error"] == pytest.approx(float(err.max()))
    assert r.baseline["within_half"] == pytest.approx(float(np.mean(err < 0.5)))
    recorded = set(r.trials[0].metrics)
    assert {"max_abs_error", "within_half", "mse", "bitops"} <= recorded
    assert "accuracy" not in recorded  # classification metrics are not recorded by default
    front = {t.number for t in r.pareto}
    for t in r.trials:  # a trial dominated on (max_abs_error, size), both minimised, is off it
        dominated = any(
            o.metrics["max_abs_error"] <= t.metrics["max_abs_error"]
            and o.metrics["model_size_bits"] <= t.metrics["model_size_bits"]
            and o.number != t.number
            and (o.metrics["max_abs_error"], o.metrics["model_size_bits"])
            != (t.metrics["max_abs_error"], t.metrics["model_size_bits"])
            for o in r.trials
        )
        assert (t.number in front) == (not dominated)


def test_a_failure_inside_evaluate_fails_that_trial_and_the_search_goes_on() -> None:
    calls: list[int] = []

    def flaky(model: nn.Module, batches: Batches) -> dict[str, Any]:
        calls.append(1)
        if len(calls) == 3:  # the float baseline, trial 0, then trial 1 fails
            raise RuntimeError("sensor table missing")
        return score(model, batches)

    r = search(
        regressor(), (X, Y_REG), space=SPACE, objectives={"max_abs_error": {"direction": "minimize"}},
        strategy="brute_force", n_trials=10, evaluate=flaky,
    )  # fmt: skip
    assert len(r.trials) == 3
    errors = [t.error for t in r.trials]
    assert errors[0] is None and errors[2] is None
    assert errors[1] is not None and "RuntimeError: sensor table missing" in errors[1]
    assert r.best is not None and r.best.error is None


def test_the_evaluator_says_when_a_user_function_is_in_use() -> None:
    gm = trace(regressor(), X[:8])
    plain = parse_search_config({"space": SPACE, "objectives": {"mse": {}}})
    assert not prepare_search(gm, plain, _split())[1].user_evaluate
    cfg = parse_search_config(
        {"space": SPACE, "objectives": {"max_abs_error": {"direction": "minimize"}}},
        user_metrics={},
    )
    assert prepare_search(gm, cfg, _split(), evaluate=score)[1].user_evaluate
    with pytest.raises(ConfigError, match=r"^evaluate: got no evaluate function, allowed: one "):
        prepare_search(gm, cfg, _split())


def _split() -> Any:
    from quantsearch.data import Split

    return Split(X, Y_REG)


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"evaluate_directions": {"e": "minimize"}}, r"^evaluate_directions: got \['e'\] without evaluate=, allowed: "),
        ({"evaluate": "score.py:f"}, r"^evaluate: got a str, allowed: a function \(model, batches\) -> dict"),
        ({"evaluate": score, "evaluate_directions": {"e": "best"}}, r"^evaluate_directions\.e: got 'best', allowed: \['maximize', 'minimize'\]$"),
        ({"evaluate": score, "objectives": {"e": {"weight": 1}}}, r"^search\.objectives\.e\.direction: got no value for an evaluate function's metric"),
        ({"objectives": {"e": {"direction": "minimize"}}}, r"^search\.objectives: got an unknown metric 'e', allowed: one of \["),
        ({"evaluate": score, "evaluate_directions": {"qs": "minimize"}}, r"^evaluate_directions\.qs: got 'qs', a name the trial record uses, allowed: "),
        ({"evaluate": score, "objectives": {"metrics": {"direction": "minimize"}}}, r"^search\.objectives\.metrics: got 'metrics', a name the trial record uses, allowed: "),
    ],
)  # fmt: skip
def test_bad_arguments_are_one_line_naming_the_argument(kw: dict[str, Any], match: str) -> None:
    args: dict[str, Any] = {"space": SPACE, "objectives": {"mse": {}}, "n_trials": 1, **kw}
    with pytest.raises(ConfigError, match=match):
        search(regressor(), (X, Y_REG), **args)
