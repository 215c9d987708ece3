"""More cost rules, in :mod:`~quantsearch.passes.analysis.cost_rules`' convention (read it
first): attention (``F.scaled_dot_product_attention``), transposed convolutions and the
elementwise ops users' models write besides the common activations. Registered into
:data:`~quantsearch.passes.analysis.cost_rules.COST_RULES` on import (the package does).

Cross-check: the MAC layers here equal ``torch.utils.flop_counter.FlopCounterMode`` (2 FLOPs
per MAC of the attention's two batched matmuls and of a transposed convolution); see
``tests/passes/analysis/test_flops_more.py``.
"""

from __future__ import annotations

import math

from quantsearch.passes.analysis.cost_rules import (
    COST_RULES,
    CostRule,
    OpArgs,
    OpCost,
    norm_affine,
    norm_flops,
)
from quantsearch.passes.analysis.tensors import dtype_bits

__all__: list[str] = []


def _sdpa(a: OpArgs) -> OpCost:
    # q (..., L, E), k (..., S, E), v (..., S, Ev); P = prod(...) * L * S attention scores.
    # scores = q k^T: P * E MACs; out = softmax(scores * scale [+ mask]) v: P * Ev MACs.
    # fwd = 2 * MACs + P (scale) + 5 P (softmax) [+ P (mask or causal)];
    # bwd = 4 * MACs + P (scale) + 4 P (softmax). Dropout: taken as 0 (eval).
    q, k, v = a.tensor_arg(0, "query"), a.tensor_arg(1, "key"), a.tensor_arg(2, "value")
    if q is None or k is None or v is None:
        raise ValueError("expected query, key and value tensors")
    e, s = q.shape[-1], k.shape[-2]
    p = q.numel // e * s
    macs = p * e + p * v.shape[-1]
    masked = a.arg(3, "attn_mask") is not None or bool(a.arg(5, "is_causal", False))
    q_bits, k_bits, v_bits = a.operand_bits(0, 1, 2)
    bitops = p * e * q_bits * k_bits + p * v.shape[-1] * dtype_bits(q.dtype) * v_bits
    return OpCost(macs, 2 * macs + 6 * p + p * masked, 4 * macs + 5 * p, bitops)


COST_RULES.add("scaled_dot_product_attention", _sdpa)


def _conv_transpose(a: OpArgs) -> OpCost:
    # W: (C_in, C_out / groups, *kernel): every input element is multiplied into
    # C_out / groups * prod(kernel) outputs: MACs = input elements * prod(W.shape[1:]).
    # fwd = 2 * MACs + N (bias, N output elements);  bwd = 4 * MACs + N (bias grad).
    w = getattr(a.module, "weight", None)
    if w is not None:
        shape, dtype, bias = tuple(w.shape), str(w.dtype), a.module.bias is not None
    else:
        wm = a.tensor_arg(1, "weight")
        if wm is None:
            raise ValueError("weight argument is not a traced tensor")
        shape, dtype, bias = wm.shape, wm.dtype, a.arg(2, "bias") is not None
    macs = a.first_input().numel * math.prod(shape[1:])
    n = a.n_out
    bitops = a.bitops(macs, dtype.removeprefix("torch."))
    return OpCost(macs, 2 * macs + n * bias, 4 * macs + n * bias, bitops)


for _d in (1, 2, 3):
    COST_RULES.add(f"conv_transpose{_d}d", _conv_transpose, aliases=(f"convtranspose{_d}d",))


def _elementwise(fwd: int, bwd: int) -> CostRule:
    def rule(a: OpArgs) -> OpCost:
        return OpCost(0, fwd * a.n_out, bwd * a.n_out)

    return rule


# Per output element (forward, backward):
_ELEMENTWISE = {
    # elu: x > 0 ? x : a (exp(x) - 1) = compare, exp, subtract, multiply = 4;
    #   dx = dy * (x > 0 ? 1 : y + a) = compare, add, multiply = 3.
    "elu": (4, 3),
    # hardswish: x * relu6(x + 3) / 6 = add, 2 comparisons, multiply, divide = 5;
    #   dx = dy * (2 x + 3) / 6 inside (-3, 3) = 2 comparisons, multiply, add, divide, times dy = 6.
    "hardswish": (5, 6),
    # hardsigmoid: relu6(x + 3) / 6 = add, 2 comparisons, divide = 4; dx = dy / 6 inside = 3.
    "hardsigmoid": (4, 3),
    # mish: x * tanh(softplus(x)) = 4 + 1 + 1 = 6; dx = dy * (t + x sigmoid(x) (1 - t^2)):
    #   t recomputed 5, sigmoid 4, 1 - t^2 2, two multiplies, add, times dy = 15.
    "mish": (6, 15),
    # prelu: x > 0 ? x : a x = 2; dx = dy * (x > 0 ? 1 : a) 2, da += dy * x where x < 0 2 = 4.
    "prelu": (2, 4),
    # log_softmax along D: max, x - max, exp, sum, - log(sum) = 5 (the log once per row, not
    #   counted); dx = dy - exp(y) * sum(dy) = exp, multiply, add, subtract = 4.
    "log_softmax": (5, 4),
    # abs: 1; dx = dy * sign(x) = compare, multiply = 2.  neg: 1; dx = -dy = 1.
    "abs": (1, 2),
    "neg": (1, 1),
    # exp: 1 transcendental; dx = dy * y = 1.  sqrt: 1; dx = dy / (2 y) = 2.
    "exp": (1, 1),
    "sqrt": (1, 2),
    # pow(x, p): 1; dx = dy * p * x^(p - 1) = pow, 2 multiplies = 3.
    "pow": (1, 3),
    # comparisons: 1 each; no gradient.
    **{k: (1, 0) for k in ("gt", "lt", "ge", "le", "eq", "ne")},
    # masked_fill: 1 select; dx = dy masked = 1.
    "masked_fill": (1, 1),
}
for _k, (_f, _b) in _ELEMENTWISE.items():
    COST_RULES.add(_k, _elementwise(_f, _b))


def _where(a: OpArgs) -> OpCost:
    # where(c, x, y): 1 select per element; bwd: dy masked for each tensor branch (N), summed
    # back to its shape if broadcast (N - numel); a scalar branch gets no gradient.
    # x.where(c, y) is where(c, x, y).
    n, first = a.n_out, 0 if a.node.op == "call_method" else 1
    branches = (a.tensor_arg(first, "input"), a.tensor_arg(2, "other"))
    return OpCost(0, n, sum(2 * n - t.numel for t in branches if t is not None))


COST_RULES.add("where", _where)


def _softplus(a: OpArgs) -> OpCost:
    # softplus: x > threshold ? x : log(1 + exp(x)) = compare, exp, add, log = 4;
    #   dx = dy * sigmoid(x) = 4 + 1 = 5. beta != 1: log(1 + exp(beta x)) / beta, + 2;
    #   dx = dy * sigmoid(beta x), + 1.
    beta = a.module.beta if a.module is not None else a.arg(1, "beta", 1.0)
    scaled = int(beta != 1)
    return OpCost(0, (4 + 2 * scaled) * a.n_out, (5 + scaled) * a.n_out)


COST_RULES.add("softplus", _softplus)


def _clamp(a: OpArgs) -> OpCost:
    # clamp(x, lo, hi): one comparison per bound given; dx = dy * (lo < x < hi): the same.
    bounds = sum(a.arg(i, name) is not None for i, name in ((1, "min"), (2, "max")))
    return OpCost(0, bounds * a.n_out, bounds * a.n_out)


COST_RULES.add("clamp", _clamp, aliases=("clip",))


def _max_min(a: OpArgs) -> OpCost:
    # Of two tensors: N comparisons; dy routed to the larger (smaller) = 2 N.
    # A reduction (over a dim, or all): I - N comparisons for I inputs; dy routed to the
    # argmax = N.
    if a.tensor_arg(1, "other") is not None:
        return OpCost(0, a.n_out, 2 * a.n_out)
    i = a.first_input().numel
    return OpCost(0, i - a.n_out, a.n_out)


COST_RULES.add("max", _max_min, aliases=("min", "amax", "amin"))


def _norm_rows(a: OpArgs) -> tuple[int, int]:
    """Rows (groups of elements normalised together) and the function form's weight position."""
    x, m = a.first_input(), a.module
    if a.info.op_kind in ("group_norm", "groupnorm"):
        groups = m.num_groups if m is not None else a.arg(1, "num_groups")
        return x.shape[0] * groups, 2
    if m is not None and m.track_running_stats:
        raise ValueError("counted for instance norms without running statistics")
    return x.shape[0] * x.shape[1], 3  # instance norm: one row per sample and channel


def _group_norm(a: OpArgs) -> OpCost:
    # LayerNorm's arithmetic over R rows (per sample and group; per sample and channel for an
    # instance norm, whose statistics are the input's own): fwd = 5 N + 4 R (+ N weight, + N
    # bias), bwd = 9 N + 2 R (+ 3 N weight, + N bias); see cost_rules' layer_norm.
    rows, weight_at = _norm_rows(a)
    return OpCost(0, *norm_flops(a.n_out, rows, *norm_affine(a, weight_at)))


COST_RULES.add("group_norm", _group_norm, aliases=("groupnorm",))
for _d in (1, 2, 3):
    COST_RULES.add(f"instance_norm{_d}d", _group_norm, aliases=(f"instancenorm{_d}d",))
COST_RULES.add("instance_norm", _group_norm)
