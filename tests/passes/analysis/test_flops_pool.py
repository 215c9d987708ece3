"""Max and average pooling read only the input elements inside a window (torch clamps each
window to the input: padding and a ceil_mode window past the end add no element), so their
comparisons and adds are counted over those. They were counted over the whole kernel window
at every output, 44% too many for a 3x3, padding-1 pool on a 4x4 map.

Referees: the number of input elements each window reads, from torch itself: average
pooling of ones with ``divisor_override=1`` and ``count_include_pad=False`` (each output is its
window's count of elements read), and ``F.unfold`` of ones for a dilated window. FlopCounterMode
counts pooling as 0 (checked)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from quantsearch.graph import info, trace
from quantsearch.passes.analysis import compute_cost


class Fn(nn.Module):
    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


def _cost(model: nn.Module, x: torch.Tensor) -> tuple[int, int, int]:
    with FlopCounterMode(display=False) as fcm:
        model(x)
    assert fcm.get_total_flops() == 0
    gm = trace(model.eval(), x)
    assert compute_cost(gm).uncounted == ()
    (c,) = [info(n).cost for n in gm.graph.nodes if n.op.startswith("call")]
    return c["macs"], c["flops"], c["flops_backward"]


def _read(x: torch.Tensor, dims: int, k: int, stride: int, padding: int, ceil: bool) -> int:
    """Input elements all windows read, by torch: average pooling of ones with divisor 1 and
    padding left out (a 1-d pool as a 2-d one of height 1, whose pool takes the divisor)."""
    ones = torch.ones_like(x)
    if dims == 1:
        ones, kernel = ones.unsqueeze(-2), ((1, k), (1, stride), (0, padding))
    else:
        kernel = (k, stride, padding)
    pool = getattr(F, f"avg_pool{max(dims, 2)}d")
    out = pool(ones, *kernel, ceil_mode=ceil, count_include_pad=False, divisor_override=1)
    return int(out.sum())


@pytest.mark.parametrize(
    ("dims", "shape", "k", "stride", "padding", "ceil"),
    [
        (2, (1, 2, 4, 4), 3, 1, 1, False),  # every border window clipped
        (2, (2, 3, 7, 7), 3, 2, 1, False),  # ResNet's stem pool, small
        (2, (1, 2, 5, 5), 2, 2, 0, True),  # ceil_mode: the last window half outside
        (1, (2, 3, 9), 4, 3, 2, True),
        (3, (1, 1, 4, 5, 6), 2, 2, 1, False),
        (2, (1, 2, 6, 6), 2, 2, 0, False),  # no window clipped: W per output, as before
    ],
)
def test_pools_count_the_elements_their_windows_read(
    dims: int, shape: tuple[int, ...], k: int, stride: int, padding: int, ceil: bool
) -> None:
    x = torch.randn(shape)
    read = _read(x, dims, k, stride, padding, ceil)
    mx = getattr(nn, f"MaxPool{dims}d")(k, stride, padding, ceil_mode=ceil)
    n = mx(x).numel()
    # max: read - N comparisons; dy routed to the argmax, N
    assert _cost(nn.Sequential(mx), x)[1:] == (read - n, n)
    fmax = getattr(F, f"max_pool{dims}d")
    assert _cost(Fn(lambda t: fmax(t, k, stride, padding, ceil_mode=ceil)), x)[1:] == (read - n, n)
    # avg: read - N adds and N divides; dy divided (N) and added into the elements read
    av = getattr(nn, f"AvgPool{dims}d")(k, stride, padding, ceil_mode=ceil)
    assert _cost(nn.Sequential(av), x)[1:] == (read, n + read)


def test_a_dilated_max_pool_counts_the_elements_its_windows_read() -> None:
    """Referee: F.unfold of ones with the same kernel, dilation, padding and stride, whose
    padded places are 0: its sum is the elements the windows read."""
    x = torch.randn(1, 2, 7, 7)
    read = int(F.unfold(torch.ones_like(x), 3, dilation=2, padding=1, stride=2).sum())
    pool = nn.MaxPool2d(3, 2, 1, dilation=2)
    n = pool(x).numel()
    assert _cost(nn.Sequential(pool), x)[1:] == (read - n, n)
