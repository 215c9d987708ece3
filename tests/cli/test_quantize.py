"""``quantsearch quantize``, run in-process on a briefly trained mlp-digits."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import nn

from quantsearch.checkpoint import load_checkpoint, save_checkpoint
from quantsearch.cli import main
from quantsearch.data import DataSplits
from quantsearch.models import build_model
from quantsearch.passes.transform import ResolvedConfig

CONFIG = """
seed = 0
[model]
name = "mlp-digits"
[data]
name = "digits"
calibration_samples = 128
[quantize.default]
format = "fixed"
data_in = { width = 8, frac_width = "auto" }
weight  = { width = 8, frac_width = "auto" }
bias    = { width = 8, frac_width = "auto" }
[quantize.by_name."seq_blocks.6"]
weight = { width = 4, frac_width = 3 }
"""


@pytest.fixture(scope="module")
def checkpoint(digits: DataSplits, tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    model = build_model("mlp-digits")
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(60):
        opt.zero_grad()
        nn.functional.cross_entropy(model(digits.train.x), digits.train.y).backward()
        opt.step()
    path = tmp_path_factory.mktemp("ckpt") / "mlp.pt"
    return save_checkpoint(path, model.eval(), model_name="mlp-digits", dataset="digits")


def test_writes_checkpoint_resolved_config_and_metrics(
    checkpoint: Path,
    write_config: Callable[[str], Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cfg = write_config(CONFIG)
    out = tmp_path / "q"
    main(["quantize", "--config", str(cfg), "--load", str(checkpoint), "--out", str(out), "--json"])
    printed = json.loads(capsys.readouterr().out)
    assert sorted(p.name for p in out.iterdir()) == [
        "metrics.json",
        "quantized.pt",
        "resolved_config.json",
    ]

    resolved = json.loads((out / "resolved_config.json").read_text())
    assert resolved["seq_blocks_6"]["weight"]["frac_width"] == 3
    assert all(isinstance(r["frac_width"], int) for n in resolved.values() for r in n.values())
    assert resolved["seq_blocks_2"]["data_in"]["signed"] is False  # a ReLU input: unsigned
    assert ResolvedConfig.from_dict(resolved).to_dict() == resolved

    metrics = json.loads((out / "metrics.json").read_text())
    before, after = metrics["before"], metrics["after"]
    assert metrics["split"] == "val" and metrics["calibration"]["samples"] == 128
    assert before["model_size_bits"] > after["model_size_bits"] > 0
    assert before["avg_weight_bits"] == 32 and after["avg_weight_bits"] < 8
    assert before["accuracy"] > 0.85 and after["accuracy"] > before["accuracy"] - 0.1
    assert printed["after"] == after

    ckpt = load_checkpoint(out / "quantized.pt")
    assert ckpt.model_name == "mlp-digits" and ckpt.config["quantize"] == resolved
    w = ckpt.state_dict["seq_blocks.6.weight"]
    assert torch.equal(w * 8, torch.round(w * 8)) and w.abs().max() <= 1  # fixed(4,3)
    float_model = build_model("mlp-digits")
    float_model.load_state_dict(ckpt.state_dict)  # the same keys as the float model
    assert torch.equal(
        float_model.seq_blocks[1].running_var, ckpt.state_dict["seq_blocks.1.running_var"]
    )


def test_table_output(
    checkpoint: Path,
    write_config: Callable[[str], Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cfg = write_config(CONFIG)
    main(["quantize", "-c", str(cfg), "--load", str(checkpoint), "--out", str(tmp_path / "q")])
    text = capsys.readouterr().out
    assert "seq_blocks_6" in text and "fixed(4,3)" in text and "accuracy" in text


def test_a_config_without_a_quantize_table_is_a_one_line_error(
    checkpoint: Path,
    write_config: Callable[[str], Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cfg = write_config(CONFIG.split("[quantize.default]")[0])
    with pytest.raises(SystemExit) as exc:
        main(["quantize", "-c", str(cfg), "--load", str(checkpoint), "--out", str(tmp_path / "q")])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no [quantize] table" in err
    assert not (tmp_path / "q").exists()


def test_an_unknown_layer_name_is_a_one_line_error(
    checkpoint: Path,
    write_config: Callable[[str], Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cfg = write_config(CONFIG.replace('"seq_blocks.6"', '"seq_blocks.60"'))
    with pytest.raises(SystemExit):
        main(["quantize", "-c", str(cfg), "--load", str(checkpoint), "--out", str(tmp_path / "q")])
    err = capsys.readouterr().err.strip()
    assert err.startswith(
        "error: quantize.by_name.\"seq_blocks.60\": got 'seq_blocks.60', which names no node"
    )


def test_the_command_module_does_not_import_torch() -> None:
    code = "import sys, quantsearch.cli.quantize; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
