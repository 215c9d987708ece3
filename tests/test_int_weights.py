"""Integer weights: every quantized tensor as integers plus its format, read back exactly
(referee: numpy, from the quantized model's own weights)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from torch import nn

from quantsearch.data import DataSplits
from quantsearch.errors import ConfigError
from quantsearch.graph import trace
from quantsearch.int_weights import read_int_weights, save_int_weights
from quantsearch.passes.transform import ResolvedConfig, quantize

CONFIG = {
    "seq_blocks_0": {
        "weight": {"format": "fixed", "width": 4, "frac_width": 2},
        "bias": {"format": "fixed", "width": 12, "frac_width": 8, "rounding": "floor"},
    },
    "seq_blocks_1": {"weight": {"format": "fixed", "width": 8, "frac_width": 5, "signed": False}},
    "seq_blocks_3": {"weight": {"format": "fixed", "width": 20, "frac_width": 16}},
}


def test_export_and_read_back_exactly(mlp: nn.Module, digits: DataSplits, tmp_path: Path) -> None:
    gm = trace(mlp, digits.val.x[:8])
    qgm = quantize(gm, ResolvedConfig.from_dict(CONFIG, gm=gm))
    save_int_weights(qgm, tmp_path, model_name="mlp-digits")
    doc = json.loads((tmp_path / "weights.json").read_text())
    raw = np.load(tmp_path / "weights.npz")
    values = read_int_weights(tmp_path)
    state = {k: v.detach().numpy() for k, v in qgm.state_dict().items()}
    bn: Any = qgm.get_submodule("seq_blocks.1")
    scale, shift = bn.folded()  # BatchNorm: its fold is what is stored
    state["seq_blocks.1.scale"], state["seq_blocks.1.shift"] = (
        scale.detach().numpy(),
        shift.detach().numpy(),
    )
    assert set(values) == set(state) == set(doc["tensors"])
    for name, expected in state.items():
        assert values[name].dtype == expected.dtype
        assert np.array_equal(values[name], expected), name
    # the referee: numpy's own integers from the model's weights
    for name, (dtype, w, f) in {
        "seq_blocks.0.weight": ("int8", 4, 2),
        "seq_blocks.0.bias": ("int16", 12, 8),
        "seq_blocks.1.scale": ("uint8", 8, 5),
        "seq_blocks.3.weight": ("int32", 20, 16),
    }.items():
        entry = doc["tensors"][name]
        assert raw[name].dtype == np.dtype(dtype) == np.dtype(entry["int_dtype"])
        assert (entry["width"], entry["frac_width"], entry["scale"]) == (w, f, 2.0**-f)
        assert entry["overflow"] == "saturate"
        ints = state[name].astype(np.float64) * 2.0**f
        assert np.array_equal(ints, np.round(ints))
        assert np.array_equal(raw[name].astype(np.int64), ints.astype(np.int64))
    assert doc["tensors"]["seq_blocks.0.bias"]["rounding"] == "floor"
    assert doc["tensors"]["seq_blocks.6.weight"]["format"] is None  # left in float
    assert doc["tensors"]["seq_blocks.1.running_var"]["format"] is None
    assert doc["tensors"]["seq_blocks.1.shift"]["format"] is None  # no bias format given
    assert doc["tensors"]["seq_blocks.1.scale"]["folded"].startswith("BatchNorm folded")


@pytest.mark.parametrize(
    ("fmt", "shown"),
    [
        ({"format": "minifloat", "exponent_width": 4, "mantissa_width": 3}, "minifloat"),
        ({"format": "log", "exponent_width": 4}, "log"),
        (
            {"format": "block_fp", "exponent_width": 8, "mantissa_width": 4, "block_size": 8},
            "block_fp",
        ),
    ],
)
def test_formats_without_an_integer_encoding_are_refused(
    mlp: nn.Module, digits: DataSplits, tmp_path: Path, fmt: dict[str, object], shown: str
) -> None:
    gm = trace(mlp, digits.val.x[:8])
    qgm = quantize(gm, ResolvedConfig.from_dict({"seq_blocks_3": {"weight": fmt}}, gm=gm))
    with pytest.raises(
        ConfigError, match=rf"^seq_blocks_3\.weight: got {shown}.*, which is not fixed point"
    ):
        save_int_weights(qgm, tmp_path)


def test_reading_a_folder_without_the_files_is_one_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^weights: '.*' has no weights\.json"):
        read_int_weights(tmp_path)


def test_a_reloaded_tied_weight_exports_as_the_model_it_was_saved_from(tmp_path: Path) -> None:
    """load_quantized ties the rounded head to the embedding's float parameter again, which
    the head rounds in every pass: its integers were refused as 'off the grid'. Referee: the
    export of the model saved (tests/tied.py's TiedHead), checked above against numpy's."""
    import torch

    import tests.tied
    from quantsearch.models import build_model
    from quantsearch.quantized import load_quantized, save_quantized

    source = Path(tests.tied.__file__).read_text() + "\n\ndef build():\n    return TiedHead()\n"
    (tmp_path / "tied.py").write_text(source)
    torch.manual_seed(0)
    gm = trace(build_model("tied.py:build", base_dir=tmp_path).eval(), torch.zeros(2, 4).long())
    w42 = {"weight": {"format": "fixed", "width": 4, "frac_width": 2}}
    qgm = quantize(gm, ResolvedConfig.from_dict({"head": w42}, gm=gm))
    path = save_quantized(
        tmp_path / "q.pt", qgm, model_name="tied.py:build", dataset="user", sample_shape=(4,),
        base_dir=tmp_path,
    )  # fmt: skip
    reloaded = load_quantized(path)
    assert reloaded.head.weight is reloaded.emb.weight
    save_int_weights(qgm, tmp_path / "saved")
    save_int_weights(reloaded, tmp_path / "reloaded")
    want, got = read_int_weights(tmp_path / "saved"), read_int_weights(tmp_path / "reloaded")
    assert set(got) == set(want) == {"emb.weight", "fc.weight", "fc.bias", "head.weight"}
    for name, value in want.items():
        assert np.array_equal(got[name], value), name
    raw = np.load(tmp_path / "reloaded" / "weights.npz")
    assert raw["head.weight"].dtype == np.int8
