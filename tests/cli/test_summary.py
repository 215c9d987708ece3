"""``quantsearch summary`` and ``quantsearch metrics``, run in-process."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from quantsearch.cli import main

CONFIG = """
seed = 0
[model]
name = "cnn-digits"
[data]
name = "digits"
"""


@pytest.fixture
def config(write_config: Callable[[str], Path]) -> str:
    return str(write_config(CONFIG))


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    main(list(args))
    return capsys.readouterr().out


def test_json_has_per_layer_and_total_costs(
    config: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from quantsearch.models import build_model

    out = json.loads(_run(capsys, "summary", "--config", config, "--batch", "4", "--json"))
    model = build_model("cnn-digits")
    costs = out["costs"]
    assert out["model"] == "cnn-digits" and out["batch_size"] == costs["batch_size"] == 4
    assert costs["totals"]["params"] == sum(p.numel() for p in model.parameters())
    assert costs["totals"]["param_bits"] == 32 * costs["totals"]["params"]
    layers = {r["node"]: r for r in costs["layers"]}
    # conv1: Conv2d(1 -> 16, 3x3, padding 1) on 4 x 1 x 8 x 8: N = 4 * 16 * 64, 9 MACs each.
    assert layers["conv1"]["macs"] == 4 * 16 * 64 * 9
    assert layers["conv1"]["flops"] == 2 * 4 * 16 * 64 * 9 + 4 * 16 * 64
    for key in ("macs", "flops", "flops_backward", "bitops", "in_elems", "out_bits", "buffers"):
        assert key in layers["fc"] and costs["totals"][key] is not None
    assert costs["totals"]["macs"] == sum(r["macs"] or 0 for r in costs["layers"])
    assert costs["uncounted"] == []
    assert out["metrics"]["macs"] == costs["totals"]["macs"] / 4  # metrics are per sample
    assert out["latency"] is None and "latency_ms" not in out["metrics"]
    assert [n["node"] for n in out["nodes"]][:2] == ["x", "conv1"]  # the graph table is kept


def test_json_with_latency(config: str, capsys: pytest.CaptureFixture[str]) -> None:
    out = json.loads(
        _run(
            capsys,
            "summary",
            "--config",
            config,
            "--batch",
            "2",
            "--json",
            "--latency",
            "--repeats",
            "3",
            "--warmup",
            "1",
        )
    )
    lat = out["latency"]
    assert (lat["repeats"], lat["warmup"], lat["batch_size"], lat["device"]) == (3, 1, 1, "cpu")
    assert lat["min_ms"] <= lat["median_ms"] and lat["threads"] >= 1
    assert out["metrics"]["latency_ms"] == lat["median_ms"]


def test_table_shows_costs_metrics_and_latency(
    config: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "220")  # rich would otherwise squeeze 14 columns into 80
    text = _run(
        capsys, "summary", "--config", config, "--batch", "2", "--latency", "--repeats", "2"
    )
    assert "costs for the traced batch of 2" in text
    total = next(line for line in text.splitlines() if "│ total" in line)
    assert "8,538" in total  # cnn-digits' parameters
    assert "model_size_bits" in text and "bitops" in text and "flops_backward" in text
    assert "latency: median" in text and "float kernels" in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--repeats", "0"], "error: --repeats: got 0, allowed: 1 to 100000"),
        (["--batch", "0"], "error: --batch: got 0, allowed: 1 to 2147483647"),
        (["--latency-batch", "-1"], "error: --latency-batch: got -1, allowed: 1 to 2147483647"),
    ],
)
def test_bad_input_is_one_error_line(
    config: str, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["summary", "--config", config, *args])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [message]


def test_missing_config_is_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["summary", "--config", str(tmp_path / "nope.toml")])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --config")


def test_metrics_command_lists_names_units_directions(capsys: pytest.CaptureFixture[str]) -> None:
    from quantsearch.metrics import metric_names

    rows = json.loads(_run(capsys, "metrics", "--json"))
    assert [r["name"] for r in rows] == metric_names()
    by_name = {r["name"]: r for r in rows}
    assert by_name["accuracy"]["direction"] == "maximize"
    assert (by_name["flops"]["unit"], by_name["flops"]["direction"]) == ("FLOP/sample", "minimize")
    assert by_name["latency_ms"]["kind"] == "latency"
    text = _run(capsys, "metrics")
    assert "model_size_bits" in text and "minimize" in text


def test_cli_modules_do_not_import_torch() -> None:
    code = (
        "import sys, quantsearch.cli.summary, quantsearch.cli.metrics, quantsearch.metrics.specs; "
        "sys.exit('torch' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_an_op_without_a_count_is_listed_with_its_reason_never_zero() -> None:
    """torch.median (its comparisons depend on the data) and a 3-operand einsum (its order is
    torch's choice) stay uncounted: summary's table lists each with its reason, shows None for
    its compute columns, and its totals leave them out rather than adding a zero."""
    import torch
    from torch import nn

    from quantsearch.graph import trace
    from quantsearch.summary import cost_table

    class Odd(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.fc(x)
            return torch.einsum("bi,ij,jk->bk", h, self.fc.weight, self.fc.weight) * h.median()

    table = cost_table(trace(Odd().eval(), torch.randn(2, 4)))
    reasons = {u["op_kind"]: u["reason"] for u in table["uncounted"]}
    assert set(reasons) == {"einsum", "median"}
    assert "depend on the data" in reasons["median"]
    assert "one or two traced operands" in reasons["einsum"]
    rows = {r["node"]: r for r in table["layers"]}
    assert rows["median"]["flops"] is None and rows["einsum"]["macs"] is None
    assert table["totals"]["macs"] == 2 * 4 * 4  # the Linear's alone


def test_a_quantized_checkpoint_is_summarised_with_its_formats(
    write_config: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`summary --load quantized.pt` is the quantized model's: each node's formats in the
    precision column, its parameters' bits at their formats, BitOPs at theirs (cnn-digits,
    untrained: the costs do not depend on the weights). Referee: the counts by hand from the
    torch module (conv1's weight at 4 bits, its bias at 32; MACs x 4 x 6), and the float
    model's summary for the layers the formats leave alone."""
    import warnings

    import torch

    from quantsearch.checkpoint import save_checkpoint
    from quantsearch.models import build_model
    from quantsearch.session import QuantizedCheckpointWarning

    torch.manual_seed(0)
    model = build_model("cnn-digits").eval()
    float_ckpt = save_checkpoint(
        tmp_path / "cnn.pt", model, model_name="cnn-digits", dataset="digits"
    )
    q = (
        CONFIG
        + """
[quantize.by_type.conv2d]
format = "fixed"
data_in = { width = 6, frac_width = 3 }
weight = { width = 4, frac_width = 2 }
"""
    )
    cfg = str(write_config(q, "q.toml"))
    main(["quantize", "-c", cfg, "--load", str(float_ckpt), "--out", str(tmp_path / "q")])
    capsys.readouterr()
    plain = str(write_config(CONFIG))
    load = str(tmp_path / "q" / "quantized.pt")
    with warnings.catch_warnings():
        warnings.simplefilter("error", QuantizedCheckpointWarning)  # formats applied: no warning
        out = json.loads(
            _run(capsys, "summary", "-c", plain, "--load", load, "--batch", "4", "--json")
        )
    floats = json.loads(_run(capsys, "summary", "-c", plain, "--batch", "4", "--json"))
    layers = {r["node"]: r for r in out["costs"]["layers"]}
    precision = {n["node"]: n["precision"] for n in out["nodes"]}
    assert "fixed(4,2)" in precision["conv1"] and "fixed(6,3)" in precision["conv1"]
    assert precision["fc"] == "float"
    conv = model.conv1
    assert layers["conv1"]["param_bits"] == conv.weight.numel() * 4 + conv.bias.numel() * 32
    assert layers["conv1"]["bitops"] == layers["conv1"]["macs"] * 4 * 6
    assert layers["fc"] == {r["node"]: r for r in floats["costs"]["layers"]}["fc"]
    assert out["batch_size"] == 4
    assert out["metrics"]["model_size_bits"] < floats["metrics"]["model_size_bits"]
