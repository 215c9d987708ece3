"""User models whose export said it was exact, or failed with a traceback, while the exported
arithmetic was not the searched one. Referees: hls4ml's own layers (the precisions its
converter took) and its bit-accurate C simulation (g++, slow)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import fx, nn

from quantsearch.errors import ConfigError
from quantsearch.export import compile_all, export_hls4ml, export_qonnx, plan
from quantsearch.graph import trace
from quantsearch.passes.transform import ResolvedConfig
from tests.export.conftest import fixed, quantized

LAYER = {"data_in": fixed(8, 4), "weight": fixed(8, 4), "bias": fixed(8, 4)}


class _LayerNamedX(nn.Module):
    """A layer named ``x`` (the float model hls4ml converts called its input ``x``: hls4ml
    named this layer ``x_1``, and it kept hls4ml's default types)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(16, 8)
        self.x = nn.Linear(8, 5)

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        return self.x(F.relu(self.fc(inp)))


def _inputs(*shape: int) -> torch.Tensor:
    return torch.randn(200, *shape, generator=torch.Generator().manual_seed(0)) * 2


def _quantized(model: nn.Module, x: torch.Tensor, table: dict[str, object]) -> fx.GraphModule:
    torch.manual_seed(0)
    gm = trace(model.eval(), x[:8])
    return quantized(gm, ResolvedConfig.from_dict(table, gm=gm))


def _layer_named_x() -> tuple[fx.GraphModule, torch.Tensor]:
    torch.manual_seed(0)
    x = _inputs(16)
    last = {**LAYER, "weight": fixed(6, 3), "data_out": fixed(6, 2)}
    return _quantized(_LayerNamedX(), x, {"fc": LAYER, "x": last}), x


def _data_out_then_relu() -> tuple[fx.GraphModule, torch.Tensor]:
    """A Linear's data_out, then the ReLU's data_in on another grid: two layers, two result
    types (the plan called it two roundings in a row in one type, not exact)."""
    torch.manual_seed(0)
    x = _inputs(16)
    model = nn.Sequential(nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 5))
    table = {
        "_0": {**LAYER, "data_out": fixed(12, 6)},
        "_1": {"data_in": fixed(6, 2)},
        "_2": {**LAYER, "data_in": fixed(8, 2)},  # holds every value of the ReLU's
    }
    return _quantized(model, x, table), x


def _relu_between_two_formats() -> tuple[fx.GraphModule, torch.Tensor]:
    """The ReLU's data_in ufixed(8,4), then the next Linear's data_in fixed(4,2): two roundings
    the ReLU's one type cannot do, but the Linear before it can take the first (the plan
    reported them not exact, on a chain where hls4ml's C simulation can be bit-exact)."""
    torch.manual_seed(0)
    x = _inputs(16)
    model = nn.Sequential(nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 5))
    table = {"_0": LAYER, "_1": {"data_in": fixed(8, 4)}, "_2": {**LAYER, "data_in": fixed(4, 2)}}
    return _quantized(model, x, table), x


def _floor_then_nearest() -> tuple[fx.GraphModule, torch.Tensor]:
    """A Linear's data_out fixed(8,4) floor, then the next Linear's data_in fixed(6,4): the
    second rounds nothing on the first's grid, only clamps (was reported not exact: the
    roundings differed)."""
    torch.manual_seed(0)
    x = _inputs(16)
    model = nn.Sequential(nn.Linear(16, 8), nn.Linear(8, 5))
    first = {**LAYER, "data_out": fixed(8, 4, rounding="floor")}
    return _quantized(model, x, {"_0": first, "_1": {**LAYER, "data_in": fixed(6, 4)}}), x


def _hls_precisions(e: object) -> dict[str, str]:
    layers = e.hls_model.get_layers()  # type: ignore[attr-defined]
    return {la.name: str(la.get_output_variable().type.precision) for la in layers}


def test_a_layer_named_x_keeps_its_formats(tmp_path: Path) -> None:
    """Referee: the types hls4ml's converter gave its layers. The last Linear's fixed(6, 2)
    result was hls4ml's default fixed<44,24> (92% the same class, 0.5 LSB, reported exact)."""
    qgm, _ = _layer_named_x()
    e = export_hls4ml(qgm, tmp_path / "p")
    assert e.plan.exact
    got = _hls_precisions(e)
    assert list(got)[1:] == [la.name for la in e.plan.layers][1:]
    assert got["x"] == "fixed<6,4,RND_CONV,SAT,0>"
    assert next(iter(got.values())) == "fixed<8,4,RND_CONV,SAT,0>"  # the input, any name


def test_a_relu_after_a_rounded_result_is_exact() -> None:
    """hls4ml rounds the Linear's data_out into the Linear's type and the ReLU's data_in into
    the ReLU's (they commute): the C simulation below is bit-exact, so no note."""
    qgm, _ = _data_out_then_relu()
    p = plan(qgm)
    assert p.exact, p.notes()
    assert str(p.layer("_0").result) == "ap_fixed<12,6,AP_RND_CONV,AP_SAT>"
    assert str(p.layer("_1").result) == "ap_ufixed<6,4,AP_RND_CONV,AP_SAT>"


def test_roundings_one_type_can_do_are_exact() -> None:
    p = plan(_relu_between_two_formats()[0])
    assert p.exact, p.notes()
    assert str(p.layer("_0").result) == "ap_ufixed<8,4,AP_RND_CONV,AP_SAT>"
    assert str(p.layer("_1").result) == "ap_fixed<4,2,AP_RND_CONV,AP_SAT>"
    p = plan(_floor_then_nearest()[0])
    assert p.exact, p.notes()
    assert str(p.layer("_0").result) == "ap_fixed<6,2,AP_TRN,AP_SAT>"


@pytest.mark.slow
def test_named_x_and_relu_roundings_are_bit_exact(tmp_path: Path) -> None:
    cases = {
        "named_x": _layer_named_x(),
        "relu": _data_out_then_relu(),
        "relu between": _relu_between_two_formats(),
        "floor then nearest": _floor_then_nearest(),
    }
    exports = {k: export_hls4ml(q, tmp_path / k) for k, (q, _) in cases.items()}
    compile_all(list(exports.values()))
    for k, (q, x) in cases.items():
        a = exports[k].verify(q, x)
        assert a.bit_exact, f"{k}: {a}"
        with torch.no_grad():
            assert (q(x).double().numpy() == exports[k].predict(x)).all(), k


class _Tokens(nn.Module):
    """Linear layers on the last dimension of a (tokens, features) sample."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


def _refused(qgm: fx.GraphModule, tmp_path: Path, pattern: str) -> None:
    for export in (export_qonnx, export_hls4ml):
        out = tmp_path / export.__name__
        with pytest.raises(ConfigError, match=pattern) as info:
            export(qgm, out)
        assert len(str(info.value).splitlines()) == 1
        assert not out.exists()


def test_an_input_of_several_dimensions_is_refused_in_one_line(tmp_path: Path) -> None:
    """Was hls4ml's ValueError, and a QONNX file declaring the input (batch, 3) that the
    qonnx executor could not run."""
    x = _inputs(3, 8)
    qgm = _quantized(_Tokens(), x, {"fc": LAYER})
    _refused(qgm, tmp_path, r"^export: got input x of shape \(3, 8\) a sample, allowed: one vector")


def test_a_batch_norm_without_running_statistics_is_refused_in_one_line(tmp_path: Path) -> None:
    """It normalizes each batch by its own statistics in eval mode too: was an
    AssertionError in both exports."""
    x = _inputs(16)
    model = nn.Sequential(nn.Linear(16, 8), nn.BatchNorm1d(8, track_running_stats=False))
    bn = {"data_in": fixed(10, 3), "weight": fixed(8, 5), "bias": fixed(8, 5)}
    qgm = _quantized(model, x, {"_0": LAYER, "_1": bn})
    _refused(qgm, tmp_path, r"^export: got _1 \(batch_norm1d\) without running statistics")


class _InputNamedOutput(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(16, 5)

    def forward(self, output: torch.Tensor) -> torch.Tensor:
        return self.fc(output)


def test_an_input_named_output_is_run_by_the_qonnx_executor(tmp_path: Path) -> None:
    """Referee: the qonnx executor. The file named its input and its output ``output``: two
    tensors of one name, which the executor refused (an AssertionError from --verify)."""
    from quantsearch.export import verify_qonnx

    x = _inputs(16)
    qgm = _quantized(_InputNamedOutput(), x, {"fc": LAYER})
    a = verify_qonnx(export_qonnx(qgm, tmp_path / "m.onnx"), qgm, x)
    assert a.bit_exact, a


def test_a_model_of_no_layers_is_refused_in_one_line(tmp_path: Path) -> None:
    """Dropout alone: was an IndexError (QONNX) and an AssertionError (hls4ml)."""
    x = _inputs(16)
    qgm = _quantized(nn.Sequential(nn.Dropout(0.25)), x, {})
    _refused(qgm, tmp_path, r"^export: got a model of no layers, allowed: at least one of kinds")
