"""mse and mae against numpy (the referee): every output value, any batch size, any target
layout that has the output's values; and their registry lines."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from quantsearch.data import Split
from quantsearch.errors import MetricError
from quantsearch.graph import trace
from quantsearch.metrics import compute_metrics, metric_spec
from quantsearch.metrics.regression import regression_errors


@pytest.fixture(scope="module")
def model_and_data() -> tuple[nn.Module, Split]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 3)).eval()
    g = torch.Generator().manual_seed(1)
    return model, Split(torch.randn(50, 5, generator=g), torch.randn(50, 3, generator=g))


def _numpy_errors(model: nn.Module, data: Split) -> tuple[float, float]:
    with torch.no_grad():
        out = model(data.x).numpy().astype(np.float64)
    diff = out - data.y.numpy().astype(np.float64).reshape(out.shape)
    return float(np.mean(diff**2)), float(np.mean(np.abs(diff)))


@pytest.mark.parametrize("batch_size", [1, 7, 50, 1024])
def test_mse_and_mae_equal_numpys_over_every_output_value(
    model_and_data: tuple[nn.Module, Split], batch_size: int
) -> None:
    model, data = model_and_data
    mse, mae = _numpy_errors(model, data)
    got = regression_errors(model, data, batch_size=batch_size)
    # float32 outputs of a batch of 1 and of 50 differ in the last bit (other GEMM kernels)
    tol = 1e-12 if batch_size >= len(data) else 1e-6
    assert got["mse"] == pytest.approx(mse, rel=tol)
    assert got["mae"] == pytest.approx(mae, rel=tol)


def test_compute_metrics_gives_them_from_the_traced_graph(
    model_and_data: tuple[nn.Module, Split],
) -> None:
    model, data = model_and_data
    gm = trace(model, data.x[:8])
    mse, mae = _numpy_errors(model, data)
    out = compute_metrics(gm, ["mae", "mse", "params"], data=data, batch_size=64)
    assert list(out) == ["mae", "mse", "params"]
    assert out["mse"] == pytest.approx(mse, rel=1e-12)
    assert out["mae"] == pytest.approx(mae, rel=1e-12)


def test_a_1d_target_fits_a_single_output() -> None:
    model = nn.Linear(2, 1)
    x = torch.randn(9, 2, generator=torch.Generator().manual_seed(2))
    y = torch.randn(9, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = float(np.mean((model(x).numpy()[:, 0].astype(np.float64) - y.numpy()) ** 2))
    assert regression_errors(model, Split(x, y))["mse"] == pytest.approx(expected, rel=1e-12)


def test_targets_of_another_size_are_one_error_naming_both_shapes(
    model_and_data: tuple[nn.Module, Split],
) -> None:
    model, data = model_and_data
    with pytest.raises(
        MetricError, match=r"output's shape \(50, 3\) \(got targets of shape \(50,\)"
    ):
        regression_errors(model, Split(data.x, torch.zeros(50)), batch_size=64)


def test_registry_lines() -> None:
    for name, label in (("mse", "MSE"), ("mae", "MAE")):
        s = metric_spec(name)
        assert (s.label, s.direction, s.kind, s.deterministic) == (label, "minimize", "data", True)
        assert s.unit.startswith("target unit")
