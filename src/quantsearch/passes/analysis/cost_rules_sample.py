"""Cost rules for resampling, in :mod:`~quantsearch.passes.analysis.cost_rules`' convention
(read it first): ``F.interpolate`` / ``nn.Upsample`` and ``F.grid_sample``. Registered into
:data:`~quantsearch.passes.analysis.cost_rules.COST_RULES` on import (the package does).

Cross-check: ``torch.utils.flop_counter.FlopCounterMode`` counts neither (0), so each is
counted by hand in ``tests/passes/analysis/test_flops_ops.py`` (interpolation) and
``tests/passes/analysis/test_flops_sample.py`` (grid sampling).
"""

from __future__ import annotations

from quantsearch.passes.analysis.cost_rules import COST_RULES, OpArgs, OpCost

__all__: list[str] = []

_LINEAR_DIMS = {"linear": 1, "bilinear": 2, "trilinear": 3}


def _interpolate(a: OpArgs) -> OpCost:
    # nearest: a copy, 0. (bi/tri)linear over d dims: 2^d - 1 lerps a + t (b - a) per output
    # (subtract, multiply, add = 3): fwd = 3 (2^d - 1) N; bwd: db += t dy, da += dy - t dy
    # (4 per lerp) = 4 (2^d - 1) N. bicubic: 4 cubic rows and 1 column of 4 taps (4 multiplies,
    # 3 adds) = 35 per output; bwd: dy times the 4 column weights, times the 4 row weights
    # (16) and added into 16 inputs (16) = 36 per output; the tap weights depend only on an
    # output's row or column and are not counted. area: adaptive average pooling's rule.
    mode = a.module.mode if a.module is not None else a.arg(3, "mode", "nearest")
    if mode in ("bilinear", "bicubic") and a.module is None and a.arg(6, "antialias", False):
        return _antialiased(a, 2 if mode == "bilinear" else 4)
    if mode in ("nearest", "nearest-exact"):
        return OpCost()
    if mode == "bicubic":
        return OpCost(0, 35 * a.n_out, 36 * a.n_out)
    if mode == "area":
        return COST_RULES.get(f"adaptive_avg_pool{len(a.out.shape) - 2}d")(a)
    if mode not in _LINEAR_DIMS:
        raise ValueError(f"counted for nearest, (bi/tri)linear, bicubic and area, not {mode!r}")
    lerps = 2 ** _LINEAR_DIMS[mode] - 1
    return OpCost(0, 3 * lerps * a.n_out, 4 * lerps * a.n_out)


COST_RULES.add("interpolate", _interpolate, aliases=("upsample",))


def _taps(i_len: int, o_len: int, interp: int) -> list[int]:
    """The input elements each output reads along one dim in torch's antialiased resampling
    (ATen's _compute_indices_min_size_weights_aa): the filter's half-width is ``interp`` / 2
    input steps, stretched by the scale when downsampling."""
    scale = i_len / o_len
    support = max(scale, 1.0) * interp / 2
    taps = []
    for i in range(o_len):
        center = scale * (i + 0.5)
        lo, hi = max(int(center - support + 0.5), 0), min(int(center + support + 0.5), i_len)
        taps.append(hi - lo)
    return taps


def _antialiased(a: OpArgs, interp: int) -> OpCost:
    # antialias=True (bilinear: a 2-tap triangle, bicubic: 4 taps, widened by the scale when
    # downsampling): torch resamples the width, then the height, each dim whose size changes;
    # an output of a pass reading T inputs costs T multiplies and T - 1 adds, 2 T back (dy
    # times each weight, added into each input). The weights depend on an output's index
    # only and are not counted (as bicubic's above).
    x = a.first_input()
    (h_in, w_in), (h_out, w_out) = x.shape[-2:], a.out.shape[-2:]
    planes = x.numel // (h_in * w_in)
    fwd = bwd = 0
    for i_len, o_len, rows in ((w_in, w_out, planes * h_in), (h_in, h_out, planes * w_out)):
        if i_len != o_len:
            taps = sum(_taps(i_len, o_len, interp))
            fwd, bwd = fwd + rows * (2 * taps - o_len), bwd + rows * 2 * taps
    return OpCost(0, fwd, bwd)


def _grid_sample(a: OpArgs) -> OpCost:
    # F.grid_sample of a 4-d input (B, C, H, W) at L = B Ho Wo grid locations, N = C L
    # outputs. Per location, each of its 2 coordinates unnormalised as torch writes it
    # (((g + 1) size - 1) / 2: 4; align_corners=True (g + 1) / 2 (size - 1): 3), clamped for
    # padding_mode='border' (+ 2); zeros padding's bounds tests go with the gather, free.
    # bilinear: floor and t = x - x0 per coordinate (+ 2 each); per output 3 lerps as
    # interpolate's (9). bwd: d(input) 4 per lerp (12); d(grid) per output: along y the two
    # rows' difference times dy, summed over C (3), along x the two differences lerped in y,
    # times dy, summed (7); per location the chain through the unnormalisation (1 per
    # coordinate, + 1 for border's mask): 22 N + 2 L (+ 2 L border).
    # nearest: a round per coordinate, then a copy; bwd: dy added into the input, N.
    # bicubic, padding_mode='reflection' and 5-d inputs are not in these formulas: uncounted.
    x = a.first_input()
    mode, pad = a.arg(2, "mode", "bilinear"), a.arg(3, "padding_mode", "zeros")
    if len(x.shape) != 4 or mode not in ("bilinear", "nearest") or pad not in ("zeros", "border"):
        raise ValueError("counted for 4-d bilinear or nearest sampling, zeros or border padding")
    n = a.n_out
    locations = n // x.shape[1]
    border = pad == "border"
    coordinate = (3 if a.arg(4, "align_corners") else 4) + 2 * border
    if mode == "nearest":
        return OpCost(0, 2 * (coordinate + 1) * locations, n)
    fwd = 9 * n + 2 * (coordinate + 2) * locations
    return OpCost(0, fwd, 22 * n + (2 + 2 * border) * locations)


COST_RULES.add("grid_sample", _grid_sample)
