"""``quantsearch quantize --json`` of a zoo model against an external referee.

``quantsearch summary`` prices the float model (it does not apply ``[quantize]``), so the
quantized model's figures are read from ``quantize``'s ``after`` metrics (those a search of the
config records).

The referee counts from the torch module alone: every parameter (``named_parameters``) at the
width its format's definition gives (fixed: ``width``; minifloat: 1 + E + M; log: 1 + E;
block_fp: ``mantissa_width`` an element plus ``exponent_width`` per block, the blocks counted
with ``ceil`` along ``block_dim`` of the tensor's real shape; float: 32), and BitOPs as
docs/metrics.md defines them: each MAC layer's MACs, from ``FlopCounterMode`` on the layer
alone, times its weight's and its input's bits (``bits_per_element``: block_fp's nominal
``mantissa_width + exponent_width / block_size``), per sample.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from quantsearch.checkpoint import save_checkpoint
from quantsearch.cli import main
from quantsearch.models import build_model

CONFIG = """
seed = 0
[model]
name = "cnn-digits"
[data]
name = "digits"
[quantize.by_type.conv2d]
data_in = { width = 8, frac_width = "auto" }
weight = { format = "block_fp", mantissa_width = 4, exponent_width = 5, block_size = 5 }
bias = { width = 6, frac_width = 2 }
[quantize.by_type.batch_norm2d]
weight = { format = "minifloat", exponent_width = 3, mantissa_width = 2 }
bias = { format = "log", exponent_width = 3 }
[quantize.by_type.linear]
data_in = { width = 8, frac_width = "auto" }
weight = { width = 6, frac_width = "auto", signed = true }
bias = { format = "block_fp", mantissa_width = 3, exponent_width = 4, block_size = 4 }
[quantize.by_name.conv2]
skip = true
"""


def _bits(kind: str, role: str, shape: torch.Size, name: str) -> float:
    """The referee's storage of one tensor under CONFIG, by each format's definition."""
    n = math.prod(shape)
    if name == "conv2":
        return 32.0 * n
    if kind == "conv2d" and role == "weight":  # block_fp m4 e5, 5 along the last dim (3 wide)
        return 4 * n + 5 * (n // shape[-1]) * math.ceil(shape[-1] / 5)
    if kind == "conv2d":
        return 6.0 * n
    if kind == "batch_norm2d":
        return (1 + 3 + 2) * n if role == "weight" else (1 + 3) * n
    if role == "weight":  # linear
        return 6.0 * n
    return 3 * n + 4 * math.ceil(n / 4)  # the linear bias: block_fp m3 e4 in blocks of 4


def test_quantize_reports_the_referees_size_and_bitops(
    write_config: Callable[[str], Path], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    torch.manual_seed(0)
    model = build_model("cnn-digits").eval()
    ckpt = tmp_path / "m.pt"
    save_checkpoint(ckpt, model, model_name="cnn-digits", dataset="digits")
    config = str(write_config(CONFIG))
    main(
        [
            "quantize",
            "--config",
            config,
            "--load",
            str(ckpt),
            "--out",
            str(tmp_path / "q"),
            "--json",
        ]
    )
    out = json.loads(capsys.readouterr().out)
    kinds = {nn.Conv2d: "conv2d", nn.BatchNorm2d: "batch_norm2d", nn.Linear: "linear"}
    size = 0.0
    w_bits = w_elems = 0.0
    for name, mod in model.named_modules():
        kind = kinds.get(type(mod))
        for role, p in mod.named_parameters(recurse=False):
            assert kind is not None, name
            size += _bits(kind, role, p.shape, name)
            if role == "weight" and kind != "batch_norm2d":
                w_bits += _bits(kind, role, p.shape, name)
                w_elems += p.numel()
    x = torch.randn(4, 1, 8, 8)
    calls: list[tuple[str, nn.Module, torch.Tensor]] = []
    hooks = [
        mod.register_forward_pre_hook(lambda m, a, n=name: calls.append((n, m, a[0])))
        for name, mod in model.named_modules()
        if isinstance(mod, (nn.Conv2d, nn.Linear))
    ]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    bitops = 0.0
    for name, mod, inp in calls:
        with FlopCounterMode(display=False) as fc, torch.no_grad():
            mod(inp)
        macs = fc.get_total_flops() // 2
        if name == "conv2":
            bitops += macs * 32 * 32
        elif isinstance(mod, nn.Conv2d):
            bitops += macs * (4 + 5 / 5) * 8
        else:
            bitops += macs * 6 * 8
    metrics = out["after"]
    assert metrics["model_size_bits"] == size
    assert math.isclose(metrics["avg_weight_bits"], w_bits / w_elems, rel_tol=1e-12)
    assert math.isclose(metrics["bitops"], bitops / 4, rel_tol=1e-12)
