"""F.grid_sample (a spatial transformer's sampler; listed uncounted), counted by hand from the
formula next to its rule in cost_rules_sample. Referee: ``FlopCounterMode`` counts it as 0
(checked); the forms outside the formula stay listed uncounted, with the reason."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from quantsearch.graph import info, trace
from quantsearch.passes.analysis import compute_cost


class Sampler(nn.Module):
    """Samples x at a grid made from x's own first values (a traced operand, as an STN's)."""

    def __init__(self, sample: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.sample = sample
        self.register_buffer("grid", torch.rand(1, 2, 6, 2) * 2 - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.sample(x, self.grid)


# x (1, 3, 4, 5) at a (1, 2, 6) grid: L = 12 locations, N = 3 L = 36 outputs
@pytest.mark.parametrize(
    ("kw", "fwd", "bwd"),
    [
        # per output 3 lerps (9); per location 2 coordinates x (unnormalise 4, floor, t) = 12
        # bwd: 12 (input) + 10 (grid) per output, 2 per location
        ({"align_corners": False}, 9 * 36 + 12 * 12, 22 * 36 + 2 * 12),
        # align_corners: unnormalise 3; border: a clamp (2) per coordinate, its mask back
        ({"align_corners": True, "padding_mode": "border"}, 9 * 36 + 14 * 12, 22 * 36 + 4 * 12),
        # nearest: unnormalise and round per coordinate, a copy; dy added into the input
        ({"mode": "nearest", "align_corners": False}, 10 * 12, 36),
    ],
)
def test_grid_sample_by_hand(kw: dict[str, object], fwd: int, bwd: int) -> None:
    model, x = Sampler(lambda t, g: F.grid_sample(t, g, **kw)).eval(), torch.randn(1, 3, 4, 5)
    with FlopCounterMode(display=False) as fcm:
        model(x)
    assert fcm.get_total_flops() == 0
    gm = trace(model, x)
    assert compute_cost(gm).uncounted == ()
    (c,) = [info(n).cost for n in gm.graph.nodes if info(n).op_kind == "grid_sample"]
    assert (c["macs"], c["flops"], c["flops_backward"]) == (0, fwd, bwd)


@pytest.mark.parametrize(
    "kw", [{"mode": "bicubic"}, {"padding_mode": "reflection"}], ids=["bicubic", "reflection"]
)
def test_grid_sample_outside_the_formula_stays_uncounted(kw: dict[str, object]) -> None:
    model = Sampler(lambda t, g: F.grid_sample(t, g, align_corners=False, **kw)).eval()
    (u,) = compute_cost(trace(model, torch.randn(1, 3, 4, 5))).uncounted
    assert "counted for 4-d bilinear or nearest sampling" in u.reason


def _taps(i_len: int, o_len: int, mode: str) -> list[int]:
    """Input elements each output reads along one dim, from torch: resample one-hot rows and
    count each output's nonzero weights (the referee; bilinear's weights are nonzero wherever
    its window reaches)."""
    eye = torch.eye(i_len).reshape(i_len, 1, 1, i_len)
    y = F.interpolate(eye, size=(1, o_len), mode=mode, antialias=True).reshape(i_len, o_len)
    return (y != 0).sum(0).tolist()


class Resize(nn.Module):
    def __init__(self, size: tuple[int, int]) -> None:
        super().__init__()
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, size=self.size, mode="bilinear", antialias=True)


@pytest.mark.parametrize(
    ("shape", "size"),
    [((1, 2, 8, 8), (2, 2)), ((2, 1, 9, 6), (4, 6)), ((1, 1, 5, 7), (8, 3))],
)
def test_antialiased_bilinear_reads_its_widened_window(
    shape: tuple[int, ...], size: tuple[int, int]
) -> None:
    """F.interpolate(..., antialias=True) was priced as plain bilinear (3 lerps an output: 36
    FLOPs for 8x8 to 2x2, which reads all 64 inputs). torch resamples the width, then the
    height; an output reading T inputs costs 2 T - 1 forward and 2 T back; a dim whose size
    does not change is not resampled."""
    x = torch.randn(shape)
    (h, w), (ho, wo) = shape[-2:], size
    planes = shape[0] * shape[1]
    fwd = bwd = 0
    if w != wo:
        t = sum(_taps(w, wo, "bilinear"))
        fwd, bwd = fwd + planes * h * (2 * t - wo), bwd + planes * h * 2 * t
    if h != ho:
        t = sum(_taps(h, ho, "bilinear"))
        fwd, bwd = fwd + planes * wo * (2 * t - ho), bwd + planes * wo * 2 * t
    gm = trace(Resize(size).eval(), x)
    cost = compute_cost(gm)
    assert (cost.uncounted, cost.macs, cost.flops, cost.flops_backward) == ((), 0, fwd, bwd)
