"""The contract every registered metric keeps (as tests/search/test_strategies.py does for
strategies): described, computed by its own registry entry, finite, of its declared kind."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from quantsearch.data import Split
from quantsearch.graph import trace
from quantsearch.metrics import (
    METRICS,
    LatencyOptions,
    MetricInputs,
    compute_metrics,
    metric_names,
    metric_spec,
)

FAST_LATENCY = LatencyOptions(warmup=1, repeats=3)


@pytest.fixture(scope="module")
def inputs() -> MetricInputs:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 5)).eval()
    x = torch.randn(20, 6)
    gm = trace(model, x[:4])
    return MetricInputs(gm, Split(x, torch.arange(20) % 5), latency=FAST_LATENCY, top_k=(5,))


@pytest.mark.parametrize("name", metric_names())
def test_described(name: str) -> None:
    s = METRICS.get(name)
    assert s.name == name and s.label and s.unit and s.description
    assert s.direction in ("maximize", "minimize")
    assert s.kind in ("static", "data", "latency")
    assert s.deterministic == (s.kind != "latency")  # only timed metrics are noisy


@pytest.mark.parametrize("name", metric_names())
def test_computes_a_finite_value_of_its_kind(inputs: MetricInputs, name: str) -> None:
    s = METRICS.get(name)
    if s.unit.startswith("target unit"):  # a regression metric: float targets of the output's shape
        targets = torch.randn(20, 5, generator=torch.Generator().manual_seed(1))
        inputs = MetricInputs(inputs.gm, Split(inputs.data.x, targets), latency=FAST_LATENCY)
    value = s.compute(inputs)[name]
    assert isinstance(value, float) and math.isfinite(value)
    if s.unit == "fraction":
        assert 0.0 <= value <= 1.0
    elif s.unit == "count":
        assert value >= 0 and value.is_integer()
    elif s.direction == "minimize" and s.name != "loss":
        assert value > 0  # a size, a cost or a time of a non-empty model
    if s.deterministic:
        assert METRICS.get(name).compute(inputs)[name] == value
    # compute_metrics asks the registry entry, nothing else
    via_api = compute_metrics(
        inputs.gm, [name], data=inputs.data, batch_size=inputs.batch_size, latency=FAST_LATENCY
    )[name]
    assert via_api == value if s.deterministic else via_api > 0


def test_any_top_k_accuracy_is_a_data_metric_computed_with_the_others(
    inputs: MetricInputs,
) -> None:
    s = metric_spec("top3_accuracy")
    assert (s.kind, s.direction, s.unit, s.label) == (
        "data",
        "maximize",
        "fraction",
        "top3 accuracy",
    )
    assert s.compute is METRICS.get("accuracy").compute
    out = s.compute(MetricInputs(inputs.gm, inputs.data, top_k=(3,)))
    assert 0.0 <= out["top3_accuracy"] <= 1.0
