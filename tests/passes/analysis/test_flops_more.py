"""The rules of cost_rules_more: attention and transposed convolutions against
``torch.utils.flop_counter.FlopCounterMode`` (referee), the elementwise ops by hand."""

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


class Attention(nn.Module):
    def __init__(self, mask: bool, causal: bool) -> None:
        super().__init__()
        self.qkv = nn.Linear(8, 3 * 8)
        self.causal = causal
        self.register_buffer("mask", torch.ones(5, 5, dtype=torch.bool).tril() if mask else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (batch x 2 heads, 5 tokens, 8): FlopCounterMode counts the 3-d form's kernel, not
        # the fused 4-d CPU one (as LSTM's)
        q, k, v = self.qkv(x.view(-1, 5, 8)).split(8, -1)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=self.mask, is_causal=self.causal)


def _agree(model: nn.Module, x: torch.Tensor) -> dict[str, dict]:
    gm = trace(model.eval(), x)
    cost = compute_cost(gm)
    assert cost.uncounted == ()
    with FlopCounterMode(display=False) as fcm, torch.no_grad():
        model(x)
    assert 2 * cost.macs == fcm.get_total_flops()
    return {n.name: info(n).cost for n in gm.graph.nodes if n.op.startswith("call")}


@pytest.mark.parametrize(("mask", "causal"), [(False, False), (True, False), (False, True)])
def test_attention_matches_flop_counter_mode(mask: bool, causal: bool) -> None:
    costs = _agree(Attention(mask, causal), torch.randn(3, 80))
    c = costs["scaled_dot_product_attention"]
    p = 3 * 2 * 5 * 5  # batch x heads x L x S scores
    assert c["macs"] == p * 8 + p * 8
    assert c["flops"] == 2 * c["macs"] + 6 * p + p * (mask or causal)
    assert c["flops_backward"] == 4 * c["macs"] + 5 * p


@pytest.mark.parametrize(
    ("layer", "shape"),
    [
        (nn.ConvTranspose1d(3, 4, 3, stride=2, padding=1), (2, 3, 7)),
        (nn.ConvTranspose2d(3, 2, 2, stride=2), (2, 3, 4, 4)),
        (nn.ConvTranspose2d(4, 6, 3, padding=1, bias=False), (1, 4, 5, 5)),
        # groups, dilation and output_padding only shape the output and W's second dim
        (nn.ConvTranspose1d(4, 6, 3, stride=2, output_padding=1, groups=2, dilation=2), (2, 4, 5)),
        (
            nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1, groups=2),
            (1, 4, 5, 5),
        ),
        (nn.ConvTranspose3d(2, 4, 2, stride=2, dilation=2), (1, 2, 3, 3, 3)),
    ],
)
def test_transposed_convolutions_match_flop_counter_mode(
    layer: nn.Module, shape: tuple[int, ...]
) -> None:
    costs = _agree(nn.Sequential(layer), torch.randn(shape))
    c, n_out = costs["_0"], layer(torch.randn(shape)).numel()
    w = layer.weight
    assert c["macs"] == torch.Size(shape).numel() * w[0].numel()
    bias = n_out if layer.bias is not None else 0
    assert (c["flops"], c["flops_backward"]) == (2 * c["macs"] + bias, 4 * c["macs"] + bias)


def test_function_form_transposed_convolution_with_groups_and_output_padding() -> None:
    """F.conv_transpose2d with groups 2, dilation 2 and output_padding 1: MACs = input elements
    x C_out / groups x prod(kernel), FlopCounterMode's forward; its backward too without
    groups (with groups its grad-weight formula takes the full channels: docs/metrics.md)."""
    x, w = torch.randn(1, 4, 5, 5), torch.randn(4, 3, 3, 3)

    class Up(nn.Module):
        def __init__(self, groups: int) -> None:
            super().__init__()
            self.groups = groups
            self.w = nn.Parameter(w if groups == 2 else torch.randn(4, 6, 3, 3))

        def forward(self, t: torch.Tensor) -> torch.Tensor:
            return F.conv_transpose2d(
                t, self.w, stride=2, output_padding=1, groups=self.groups, dilation=2
            )

    for groups in (1, 2):
        model = Up(groups)
        costs = _agree(model, x)
        assert costs["conv_transpose2d"]["macs"] == x.numel() * model.w[0].numel()
        if groups == 1:
            xg = x.clone().requires_grad_(True)
            y = model(xg)
            with FlopCounterMode(display=False) as fcm:
                y.sum().backward()
            assert fcm.get_total_flops() == costs["conv_transpose2d"]["flops_backward"]


N = 2 * 5


@pytest.mark.parametrize(
    ("fn", "fwd", "bwd"),
    [
        (nn.ELU(), 4, 3),
        (nn.Hardswish(), 5, 6),
        (F.hardsigmoid, 4, 3),
        (nn.Softplus(), 4, 5),
        (nn.Mish(), 6, 15),
        (nn.PReLU(), 2, 4),
        (lambda x: F.log_softmax(x, dim=-1), 5, 4),
        (torch.abs, 1, 2),
        (torch.neg, 1, 1),
        (torch.exp, 1, 1),
        (lambda x: x.abs().sqrt(), 1 + 1, 2 + 2),
        (lambda x: x.pow(2), 1, 3),
        (lambda x: torch.where(x > 0, x, 0.1 * x), 1 + 1 + 1, 0 + 1 + 2),  # gt, mul, where
        (lambda x: x.masked_fill(x < 0, 0.0), 1 + 1, 0 + 1),
        (lambda x: torch.clamp(x, -1, 1), 2, 2),
        (lambda x: x.clamp(min=0), 1, 1),
        (lambda x: torch.max(x, torch.zeros_like(x)), 1, 2),  # zeros_like: 0
    ],
)
def test_elementwise_by_hand(
    fn: Callable[[torch.Tensor], torch.Tensor], fwd: int, bwd: int
) -> None:
    """Per element (N = 10): the sum over the nodes the op traces to."""
    model = fn if isinstance(fn, nn.Module) else Fn(fn)
    gm = trace(model, torch.randn(2, 5))
    cost = compute_cost(gm)
    assert cost.uncounted == ()
    assert (cost.flops, cost.flops_backward) == (fwd * N, bwd * N)


def test_reductions_compare_every_input_but_one_per_output() -> None:
    gm = trace(Fn(lambda x: x.max(dim=1)[0] + x.amin(1)), torch.randn(4, 6))
    compute_cost(gm)
    c = {n.name: info(n).cost for n in gm.graph.nodes if n.op.startswith("call")}
    assert (c["max_1"]["flops"], c["max_1"]["flops_backward"]) == (24 - 4, 4)
    assert (c["amin"]["flops"], c["amin"]["flops_backward"]) == (24 - 4, 4)


@pytest.mark.parametrize(
    ("layer", "shape", "rows", "affine"),
    [
        (nn.GroupNorm(2, 4), (3, 4, 5), 3 * 2, True),  # a row per sample and group
        (nn.InstanceNorm2d(4), (2, 4, 3, 3), 2 * 4, False),  # per sample and channel
        (nn.InstanceNorm1d(4, affine=True), (2, 4, 6), 2 * 4, True),
    ],
)
def test_group_and_instance_norms_by_hand(
    layer: nn.Module, shape: tuple[int, ...], rows: int, affine: bool
) -> None:
    """LayerNorm's arithmetic over their rows: 5 N + 4 R (+ 2 N), 9 N + 2 R (+ 4 N)."""
    cost = compute_cost(trace(nn.Sequential(layer).eval(), torch.randn(shape)))
    n = torch.Size(shape).numel()
    assert cost.uncounted == ()
    assert cost.flops == 5 * n + 4 * rows + 2 * n * affine
    assert cost.flops_backward == 9 * n + 2 * rows + 4 * n * affine


def test_an_instance_norm_with_running_statistics_is_listed_uncounted() -> None:
    layer = nn.InstanceNorm2d(4, track_running_stats=True)
    cost = compute_cost(trace(nn.Sequential(layer).eval(), torch.randn(2, 4, 3, 3)))
    assert [u.op_kind for u in cost.uncounted] == ["instance_norm2d"]
