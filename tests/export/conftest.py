"""Briefly trained zoo models and the configs the export is checked on.

The referees are hls4ml's bit-accurate C simulation (``hls_model.predict``, compiled with g++)
and the ``qonnx`` package's executor (``execute_onnx``): not code of this project. quantsearch's
side is its own quantized model; for hls4ml it runs in float64, where the formats quantize
exactly as in float32 and the sums of products stay exact (see
:func:`quantsearch.export.reference_outputs`).
"""

from __future__ import annotations

import copy
import random
from typing import Any

import pytest
import torch
from torch import fx, nn

from quantsearch.data import DataSplits
from quantsearch.graph import trace
from quantsearch.models import build_model
from quantsearch.passes.transform import ResolvedConfig, quantize

pytest.importorskip("hls4ml", reason="the export extra: pip install 'quantsearch[export]'")
pytest.importorskip("qonnx", reason="the export extra: pip install 'quantsearch[export]'")

MODELS = ("jsc-tiny", "jsc-toy", "mlp-digits")
LAB_PAIRS = [(16, 8), (8, 6), (8, 4), (4, 2)]
LAB = [(a, w) for a in LAB_PAIRS for w in LAB_PAIRS]  # (data_in, weight) for every layer


def fixed(width: int, frac: int, **extra: Any) -> dict[str, Any]:
    return {"format": "fixed", "width": width, "frac_width": frac, **extra}


def every_layer(
    gm: fx.GraphModule, data_in: tuple[int, int], weight: tuple[int, int]
) -> ResolvedConfig:
    """A lab pair on every layer: data_in on each, weight and bias (as weight) where present."""
    layers: dict[str, Any] = {}
    for n in gm.graph.nodes:
        if n.op == "call_module":
            layers[n.name] = {"data_in": fixed(*data_in)}
            if getattr(gm.get_submodule(str(n.target)), "weight", None) is not None:
                layers[n.name] |= {"weight": fixed(*weight), "bias": fixed(*weight)}
    return ResolvedConfig.from_dict(layers, gm=gm)


def random_per_layer(gm: fx.GraphModule, seed: int) -> ResolvedConfig:
    """Every role of every layer a random fixed format (some floor), so that consecutive layers
    disagree; a data_out only on a last Linear (a data_out followed by another node's data_in
    on a different grid is two roundings in a row, which hls4ml's one result type per layer
    cannot do: see test_two_roundings_in_a_row_are_reported); ReLUs stay unquantized, for the
    same reason."""
    rng = random.Random(seed)

    def pick() -> dict[str, Any]:
        width = rng.choice([4, 6, 8, 10, 12, 16])
        extra = {"rounding": "floor"} if rng.random() < 0.2 else {}
        return fixed(width, rng.randint(1, width - 1), **extra)

    layers: dict[str, Any] = {}
    calls = [n for n in gm.graph.nodes if n.op == "call_module"]
    for n in calls:
        if isinstance(gm.get_submodule(str(n.target)), nn.ReLU):
            continue  # its input's rounding would be a second one before the next layer's
        roles = {"data_in": pick()}
        if getattr(gm.get_submodule(str(n.target)), "weight", None) is not None:
            roles |= {"weight": pick(), "bias": pick()}
            if n is calls[-1]:
                roles["data_out"] = pick()
        layers[n.name] = roles
    return ResolvedConfig.from_dict(layers, gm=gm)


def _train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int) -> nn.Module:
    torch.manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    # one thread: on a busy 2-core machine idle OpenMP workers made these 60 tiny steps take
    # 10-15 s per model instead of 0.3 s
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for _ in range(steps):
            opt.zero_grad()
            torch.autograd.backward(nn.functional.cross_entropy(model(x), y))
            opt.step()
    finally:
        torch.set_num_threads(threads)
    return model.eval()


@pytest.fixture(scope="session")
def zoo(digits: DataSplits) -> dict[str, tuple[fx.GraphModule, torch.Tensor]]:
    """name -> (traced trained model, validation inputs). JSC models learn a synthetic rule on
    seeded Gaussian features (no downloads); mlp-digits learns scikit-learn's digits."""
    out: dict[str, tuple[fx.GraphModule, torch.Tensor]] = {}
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1024, 16, generator=g) * 2
    y = (x[:, :5] + 0.5 * x[:, 5:10]).argmax(1)
    for name in MODELS:
        torch.manual_seed(0)
        if name == "mlp-digits":
            model = _train(build_model(name), digits.train.x, digits.train.y, 60)
            val = digits.val.x
        else:
            model = _train(build_model(name), x[:768], y[:768], 60)
            val = x[768:]
        out[name] = (trace(copy.deepcopy(model), val[:8]), val)
    return out


def quantized(gm: fx.GraphModule, rc: ResolvedConfig) -> fx.GraphModule:
    return quantize(gm.eval(), rc).eval()
