"""compute_metrics: names, laziness, one forward pass, per-sample values, errors."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

import quantsearch.metrics.latency as latency_mod
import quantsearch.metrics.quality as quality_mod
import quantsearch.passes.analysis as analysis_mod
from quantsearch.data import Split
from quantsearch.errors import MetricError
from quantsearch.graph import trace
from quantsearch.metrics import (
    METRICS,
    LatencyOptions,
    UncountedOpsWarning,
    compute_metrics,
    metric_names,
    metric_spec,
    metric_specs,
)
from quantsearch.models import build_model
from quantsearch.passes.analysis import compute_cost, param_cost


@pytest.fixture
def jsc() -> tuple[torch.fx.GraphModule, Split]:
    torch.manual_seed(0)
    x = torch.randn(64, 16)
    y = torch.randint(0, 5, (64,))
    return trace(build_model("jsc-tiny").eval(), x[:8]), Split(x, y)


def test_names_are_stable_snake_case_with_units_and_directions() -> None:
    expected = {
        "accuracy", "balanced_accuracy", "loss", "top5_accuracy", "mse", "mae", "params",
        "trainable_params",
        "buffers", "model_size_bits", "model_size_bytes", "buffer_bits", "avg_weight_bits",
        "avg_param_bits", "macs", "flops", "flops_backward", "bitops", "activation_bits",
        "peak_activation_bits", "latency_ms", "latency_per_sample_ms",
    }  # fmt: skip
    assert set(metric_names()) == expected
    for s in metric_specs():
        assert s.name == s.name.lower() and " " not in s.name
        assert s.direction in ("maximize", "minimize") and s.kind in ("static", "data", "latency")
        assert s.unit and s.description
    assert METRICS.get("accuracy").direction == "maximize"
    assert metric_spec("top3_accuracy").kind == "data"


def test_every_metric_computes(jsc: tuple[torch.fx.GraphModule, Split]) -> None:
    gm, data = jsc  # class labels: the regression metrics have tests/metrics/test_regression.py
    names = [*(n for n in metric_names() if n not in ("mse", "mae")), "top2_accuracy"]
    out = compute_metrics(gm, names, data=data, latency=LatencyOptions(warmup=1, repeats=3))
    spreads = [f"{n}_iqr" for n in names if not metric_spec(n).deterministic]  # noisy: + spread
    assert spreads == ["latency_ms_iqr", "latency_per_sample_ms_iqr"]
    assert list(out) == [*names, *spreads]
    assert all(isinstance(v, float) for v in out.values())


def test_static_values_are_per_sample(jsc: tuple[torch.fx.GraphModule, Split]) -> None:
    gm, _ = jsc  # traced on 8 samples
    out = compute_metrics(
        gm, ["macs", "flops", "flops_backward", "bitops", "params", "model_size_bits"]
    )
    c = compute_cost(gm)
    assert out["macs"] == 80.0 == c.macs / 8
    assert out["flops"] == c.flops / 8 and out["flops_backward"] == c.flops_backward / 8
    assert out["bitops"] == 80 * 32 * 32
    assert out["params"] == 117.0 and out["model_size_bits"] == param_cost(gm).model_size_bits
    other = trace(build_model("jsc-tiny").eval(), torch.randn(32, 16))
    assert compute_metrics(other, ["macs", "flops"]) == {"macs": 80.0, "flops": out["flops"]}


def test_unknown_metric_names_it_and_lists_the_valid_ones(
    jsc: tuple[torch.fx.GraphModule, Split],
) -> None:
    gm, _ = jsc
    with pytest.raises(
        MetricError,
        match=r"metric: got 'acuracy', allowed: one of \['accuracy', .*\] or top<k>_accuracy; did you mean 'accuracy'\?",
    ):
        compute_metrics(gm, ["flops", "acuracy"])
    with pytest.raises(MetricError, match=r"not a string \(got 'flops'\)"):
        compute_metrics(gm, "flops")
    with pytest.raises(MetricError, match=r"data is required for metrics \['accuracy'\]"):
        compute_metrics(gm, ["flops", "accuracy"])
    with pytest.raises(
        MetricError, match=r"need a graph traced by quantsearch.trace \(got Linear\)"
    ):
        compute_metrics(nn.Linear(2, 2), ["flops"])  # type: ignore[arg-type]


def test_computes_only_what_is_asked(
    jsc: tuple[torch.fx.GraphModule, Split], monkeypatch: pytest.MonkeyPatch
) -> None:
    gm, data = jsc

    def boom(*args: object, **kwargs: object) -> None:
        raise AssertionError("not asked for")

    monkeypatch.setattr(latency_mod, "measure_latency", boom)
    monkeypatch.setattr(quality_mod, "evaluate", boom)
    monkeypatch.setattr(analysis_mod, "activation_cost", boom)
    assert set(compute_metrics(gm, ["flops", "params"], data=data)) == {"flops", "params"}
    assert compute_metrics(gm, []) == {}


def test_one_forward_pass_for_all_data_metrics(jsc: tuple[torch.fx.GraphModule, Split]) -> None:
    gm, data = jsc
    calls = []
    gm.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    out = compute_metrics(
        gm,
        ["accuracy", "balanced_accuracy", "loss", "top2_accuracy", "top5_accuracy"],
        data=data,
        batch_size=50,
    )
    assert calls == [50, 14]  # one pass over 64 samples
    assert out["top5_accuracy"] == 1.0  # 5 classes
    again = compute_metrics(gm, ["accuracy"], data=data.head(10))
    expected = float((gm(data.x[:10]).argmax(1) == data.y[:10]).float().mean())
    assert again["accuracy"] == pytest.approx(expected)


def test_uncounted_ops_warn_but_do_not_crash() -> None:
    # nn.CrossMapLRN2d: a module kind without a cost rule (Softshrink, used before, is priced)
    model = nn.Sequential(nn.Linear(4, 4), nn.Unflatten(1, (4, 1, 1)), nn.CrossMapLRN2d(3))
    gm = trace(model, torch.ones(2, 4))
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        out = compute_metrics(gm, ["flops"])
    assert out["flops"] == (2 * 32 + 8) / 2
    assert any(
        issubclass(x.category, UncountedOpsWarning) and "_2 (crossmaplrn2d)" in str(x.message)
        for x in w
    )


def test_latency_without_data_uses_traced_shapes(jsc: tuple[torch.fx.GraphModule, Split]) -> None:
    gm, _ = jsc
    shapes = []
    gm.register_forward_hook(lambda m, i, o: shapes.append(tuple(i[0].shape)))
    out = compute_metrics(
        gm,
        ["latency_ms", "latency_per_sample_ms"],
        latency=LatencyOptions(warmup=1, repeats=2, batch_size=3),
    )
    assert shapes == [(3, 16)] * 3
    assert out["latency_per_sample_ms"] == pytest.approx(out["latency_ms"] / 3)


def test_with_the_quantize_pass() -> None:
    quantize_mod = pytest.importorskip("quantsearch.passes.transform.quantize")
    config_mod = pytest.importorskip("quantsearch.passes.transform.config")
    gm = trace(build_model("jsc-tiny").eval(), torch.randn(8, 16))
    fixed8 = {"width": 8, "frac_width": 4}
    cfg = config_mod.parse_quantize_config(
        {"by_type": {"linear": {"weight": fixed8, "data_in": fixed8}}}
    )
    q = quantize_mod.quantize(gm, cfg)
    out = compute_metrics(q, ["model_size_bits", "avg_weight_bits", "bitops", "macs"])
    # BN 32 float32 + Linear(16, 5): 80 weights at 8 bits + 5 float32 biases.
    assert out == {
        "model_size_bits": 32 * 32 + 80 * 8 + 5 * 32,
        "avg_weight_bits": 8.0,
        "bitops": 80 * 8 * 8,  # per sample: 80 MACs x 8-bit weights x 8-bit inputs
        "macs": 80.0,
    }
    assert compute_metrics(gm, ["model_size_bits"]) == {"model_size_bits": 117 * 32}  # untouched
