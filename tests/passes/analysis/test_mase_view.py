"""MASE's per-module view, with the figures MASE's formulas give for jsc-tiny on a batch of 8."""

from __future__ import annotations

import torch
from torch import nn

from quantsearch.graph import trace
from quantsearch.models import build_model
from quantsearch.passes.analysis import compute_cost, mase_stats


def test_jsc_tiny_batch_8_matches_mase_formulas() -> None:
    gm = trace(build_model("jsc-tiny").eval(), torch.ones(8, 16))
    s = mase_stats(gm)
    assert s.unsupported == ()
    bn, relu1, lin, relu2 = (s.stats[f"seq_blocks.{i}"] for i in range(4))
    # BatchNorm1d(16) on 8 x 16: 4 per element (MASE's BatchNorm2d formula; MASE skipped 1d).
    assert bn == {
        "total_parameters": 32,
        "computations": 512,
        "backward_computations": 512,
        "input_buffer_size": 128,
        "output_buffer_size": 128,
    }
    assert (relu1["computations"], relu2["computations"]) == (128, 40)
    # Linear(16, 5): weight.numel x rows = 80 x 8; backward twice that; bias left out.
    assert (lin["computations"], lin["backward_computations"], lin["total_parameters"]) == (
        640,
        1280,
        80,
    )
    assert (lin["input_buffer_size"], lin["output_buffer_size"]) == (128, 40)

    # Where quantsearch's convention differs on the same graph: FLOPs = 2 x MACs + bias adds,
    # backward = dx + dw (4 x MACs) + bias grad, BN backward 6 per element, params with bias.
    assert compute_cost(gm).macs == 640
    ours = {n.name: n.meta["quantsearch"].cost for n in gm.graph.nodes}
    assert (ours["seq_blocks_2"]["macs"], ours["seq_blocks_2"]["flops"]) == (640, 1320)
    assert ours["seq_blocks_2"]["flops_backward"] == 2600
    assert (ours["seq_blocks_0"]["flops"], ours["seq_blocks_0"]["flops_backward"]) == (512, 768)


def test_mase_conv_formula_ignores_groups_and_unsupported_ops_are_listed() -> None:
    model = nn.Sequential(nn.Conv2d(4, 8, 3, padding=1, groups=2), nn.Hardswish(), nn.MaxPool2d(2))
    gm = trace(model, torch.ones(2, 4, 6, 6))
    s = mase_stats(gm)
    conv = s.stats["0"]
    # MASE: output.numel x kh x kw x C_in (the full C_in, not C_in / groups).
    assert conv["computations"] == 2 * 8 * 36 * 3 * 3 * 4
    assert conv["backward_computations"] == 2 * 4 * 36 * 3 * 3 * 4 * 2
    assert s.stats["2"]["computations"] == 2 * 8 * 9 * 4
    assert [(u.node, u.op_kind) for u in s.unsupported] == [("_1", "hardswish")]
