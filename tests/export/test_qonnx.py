"""QONNX files executed by the ``qonnx`` package's executor (the referee): bit-exact with
quantsearch's quantized model, both in float32."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import fx, nn

from quantsearch.cli.export import print_export
from quantsearch.errors import ConfigError
from quantsearch.export import (
    agreement,
    export_qonnx,
    qonnx_notes,
    reference_outputs,
    run_qonnx,
    verify_qonnx,
)
from quantsearch.graph import trace
from quantsearch.passes.transform import ResolvedConfig
from tests.export.conftest import LAB, MODELS, every_layer, fixed, quantized, random_per_layer

Zoo = dict[str, tuple[fx.GraphModule, torch.Tensor]]


def _exact(gm: fx.GraphModule, rc: ResolvedConfig, x: torch.Tensor, path: Path) -> None:
    qgm = quantized(gm, rc)
    a = verify_qonnx(export_qonnx(qgm, path), qgm, x)
    assert a.max_lsb == 0.0 and a.same_class == 1.0, a


@pytest.mark.parametrize("name", MODELS)
def test_one_lab_pair_and_one_random_config_per_model(zoo: Zoo, name: str, tmp_path: Path) -> None:
    gm, x = zoo[name]
    _exact(gm, every_layer(gm, (8, 4), (4, 2)), x, tmp_path / "lab.onnx")
    _exact(gm, random_per_layer(gm, 1), x, tmp_path / "random.onnx")


@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS)
def test_every_lab_pair_and_random_configs(zoo: Zoo, name: str, tmp_path: Path) -> None:
    gm, x = zoo[name]
    for i, (a, w) in enumerate(LAB):
        _exact(gm, every_layer(gm, a, w), x, tmp_path / f"lab{i}.onnx")
    for s in range(3):
        _exact(gm, random_per_layer(gm, s), x, tmp_path / f"random{s}.onnx")


def test_float_layers_and_chained_roundings_stay_exact(zoo: Zoo, tmp_path: Path) -> None:
    """QONNX holds float tensors and one Quant node per rounding: nothing to approximate."""
    gm, x = zoo["jsc-toy"]
    rc = every_layer(gm, (8, 4), (8, 6)).to_dict()
    rc["seq_blocks_2"]["data_out"] = fixed(10, 6)
    del rc["seq_blocks_0"]  # BatchNorm in float
    _exact(gm, ResolvedConfig.from_dict(rc, gm=gm), x, tmp_path / "mixed.onnx")


def test_quant_nodes_carry_the_formats(zoo: Zoo, tmp_path: Path) -> None:
    import onnx

    gm, _ = zoo["jsc-tiny"]
    rc = every_layer(gm, (8, 4), (8, 6)).to_dict()
    rc["seq_blocks_2"]["weight"] = fixed(6, 3, rounding="floor")
    path = export_qonnx(quantized(gm, ResolvedConfig.from_dict(rc, gm=gm)), tmp_path / "f.onnx")
    model = onnx.load(str(path))
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    quant = {n.name: n for n in model.graph.node if n.op_type == "Quant"}
    w = quant["seq_blocks_2_weight_q"]
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in w.attribute}
    assert attrs == {"signed": 1, "narrow": 0, "rounding_mode": b"FLOOR"}
    assert inits[w.input[1]] == 2.0**-3 and inits[w.input[2]] == 0 and inits[w.input[3]] == 6
    relu_in = {
        a.name: onnx.helper.get_attribute_value(a)
        for a in quant["seq_blocks_1_data_in_q"].attribute
    }
    assert relu_in["signed"] == 0 and relu_in["rounding_mode"] == b"ROUND"


@pytest.mark.parametrize(
    ("fmt", "name"),
    [
        ({"format": "minifloat", "exponent_width": 4, "mantissa_width": 3}, "minifloat"),
        ({"format": "log", "exponent_width": 4}, "log"),
        (
            {"format": "block_fp", "mantissa_width": 4, "exponent_width": 8, "block_size": 16},
            "block_fp",
        ),
    ],
)
def test_formats_qonnx_cannot_express_are_refused(
    zoo: Zoo, tmp_path: Path, fmt: dict[str, object], name: str
) -> None:
    gm, _ = zoo["jsc-tiny"]
    qgm = quantized(gm, ResolvedConfig.from_dict({"seq_blocks_2": {"weight": fmt}}, gm=gm))
    with pytest.raises(
        ConfigError, match=rf"^seq_blocks_2\.weight: got {name}.*, allowed: fixed or ufixed"
    ):
        export_qonnx(qgm, tmp_path / "no.onnx")


def test_a_regression_model_has_no_class_agreement(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Six regression outputs are no class scores: ``same_class`` is None (in the JSON and
    the printed line, not an argmax share), and bit-exact rests on the LSBs alone; the
    referee is the qonnx executor, then its outputs one LSB off on one value."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 6)).eval()
    x = torch.randn(64, 4, generator=torch.Generator().manual_seed(0))
    gm = trace(model, x[:8])
    qgm = quantized(gm, every_layer(gm, (8, 4), (8, 4)))
    path = export_qonnx(qgm, tmp_path / "r.onnx")
    a = verify_qonnx(path, qgm, x, classes=False)
    assert a.same_class is None and a.max_lsb == 0.0 and a.bit_exact, a
    assert a.to_dict()["same_class"] is None and a.to_dict()["bit_exact"]
    assert "no class agreement" in str(a) and "same class" not in str(a)
    record = {"model": "r", "to": "qonnx", "out": "r.onnx", "seconds": 0, "inexact": []}
    print_export({**record, "agreement": a.to_dict()})  # export's printed line
    line = capsys.readouterr().out.splitlines()[-1]
    assert line.endswith(
        "max |diff| 0 LSB (no class agreement: the outputs are not class scores) (bit-exact)"
    )
    theirs = run_qonnx(path, x)
    theirs[5, 2] += a.lsb
    with torch.no_grad():
        ours = qgm(x).numpy()
    off = agreement("qonnx executor", ours, theirs, a.lsb, classes=False)
    assert off.same_class is None and off.max_lsb == 1.0 and not off.bit_exact
    one_output = agreement("x", ours[:, :1], theirs[:, :1], a.lsb)  # classes, one column
    assert one_output.same_class is None and one_output.bit_exact


def test_notes_say_where_float32_is_no_proof_of_the_integer_arithmetic(
    zoo: Zoo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Both executors compute in float32: a format or exact sum wider than its 24-bit
    significand, and a role left in float, are named; narrow formats need no note. The
    referee is the same quantized model run in float64 (exact: every sum here is under 53
    bits): it equals the float32 run where no note is given, and not in the wide case."""
    gm, x = zoo["jsc-toy"]
    narrow = quantized(gm, every_layer(gm, (8, 4), (8, 6)))
    assert qonnx_notes(narrow) == []
    assert np.array_equal(_float32(narrow, x), reference_outputs(narrow, x))
    wide = quantized(gm, every_layer(gm, (24, 16), (24, 16)))
    notes = qonnx_notes(wide)
    assert notes and all("wider than float32's 24-bit significand" in n for n in notes)
    assert notes[0].startswith("seq_blocks_0 (batch_norm1d): holds ap_fixed<")
    assert not np.array_equal(_float32(wide, x), reference_outputs(wide, x))
    rc = every_layer(gm, (8, 4), (8, 6)).to_dict()
    del rc["seq_blocks_0"]  # BatchNorm in float
    floats = qonnx_notes(quantized(gm, ResolvedConfig.from_dict(rc, gm=gm)))
    assert len(floats) == 1 and floats[0].startswith("seq_blocks_0.data_in, seq_blocks_0.weight")
    record = {"model": "m", "to": "qonnx", "out": "m.onnx", "seconds": 0, "inexact": notes}
    print_export(record)  # the export command prints each
    assert f"  not exact: {notes[0]}" in capsys.readouterr().out


def _float32(qgm: fx.GraphModule, x: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return qgm(x).reshape(len(x), -1).double().numpy()
