"""The per-op cost formulas behind :func:`quantsearch.passes.analysis.count_flops`.

Each op kind maps to one rule in :data:`COST_RULES` that turns a node into an :class:`OpCost`
(MACs, forward FLOPs, backward FLOPs and BitOPs for the traced batch), with its formula written
next to it. A new op costs one rule here and one known-answer test.

The convention, stated once for the whole package:

* A **MAC** is one multiply-accumulate ``acc += a * b``. Only the layers made of them have MACs:
  ``linear``, ``conv1d/2d/3d``, ``matmul``, ``mm``, ``bmm``, ``addmm``, the recurrent
  ``rnn``, ``gru`` and ``lstm`` and their cells (the gates' dot products), and, in the other
  rule modules, attention, transformer layers, transposed convolutions, ``bilinear``, the
  products of ``cost_rules_linalg`` (``einsum``, ``dot``, ``mv``, ``tensordot`` ... ``cov``)
  and ``cdist``'s matmul path.
* **FLOPs** = 2 x MACs for those layers (one multiply and one add per MAC), plus one FLOP per
  bias add. Every other op costs its stated FLOPs per element, written next to its rule;
  a comparison, ``exp``, ``erf``, ``tanh`` or ``rsqrt`` counts as one FLOP.
* **Backward** = gradient w.r.t. the input(s) + gradient w.r.t. the weights, for every node
  (including the first layer's input gradient, which training could skip). Each forward MAC
  ``y += w * x`` gives exactly one MAC in ``dx += w * dy`` and one in ``dw += x * dy``, so a
  MAC layer's backward is 2 x its forward MACs = 4 x MACs FLOPs, plus one add per output
  element for the bias gradient. This is exact for any stride, padding, dilation or groups.
* Normalisations are counted in eval mode: running statistics, per-channel constants such as
  ``1 / sqrt(var + eps)`` computed once and not per inference.
* Data movement (flatten, reshape, view, permute, cat, getitem, dropout in eval ...) costs 0 and
  is *counted* as 0. An op without a rule is listed in ``ComputeCost.uncounted`` with its
  node name and its cost is ``None`` in ``NodeInfo.cost``: never a silent zero, never a crash.
* **BitOPs** = MACs x bits of one operand x bits of the other, per MAC layer, each operand at
  the format the node applies to it (:func:`~quantsearch.passes.analysis.tensors.arg_bits`):
  a layer's weight at its ``weight`` precision and its input at ``data_in``; both operands of a
  ``matmul``/``bmm`` at ``data_in``, whether an activation or a parameter fetched by
  ``get_attr``; the tensor's dtype width where nothing is applied.
* Counts are for the batch the graph was traced on; ``quantsearch.metrics`` divides by it.

Cross-check: the MAC layers' FLOPs equal ``torch.utils.flop_counter.FlopCounterMode``'s, which
counts 2 FLOPs per MAC of matmuls and convolutions only (no bias, normalisation, activation or
pooling FLOPs); see ``tests/passes/analysis/test_flops.py`` for the comparison.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from quantsearch.graph import TensorMeta
from quantsearch.passes.analysis.op_args import OpArgs, OpCost
from quantsearch.registry import Registry

__all__ = ["COST_RULES", "CostRule", "OpArgs", "OpCost", "norm_affine", "norm_flops"]


CostRule = Callable[[OpArgs], OpCost]
COST_RULES: Registry[CostRule] = Registry("cost rule")


def _rule(*kinds: str) -> Callable[[CostRule], CostRule]:
    def deco(fn: CostRule) -> CostRule:
        for k in kinds:
            COST_RULES.add(k, fn)
        return fn

    return deco


def _prod(xs: Sequence[int]) -> int:
    return math.prod(int(x) for x in xs)


def _weight_bias(a: OpArgs) -> tuple[tuple[int, ...], str, bool]:
    """Weight shape, weight dtype and whether there is a bias, from a module or a function call."""
    w = getattr(a.module, "weight", None)  # none: a function-form layer, made a module or not
    if w is not None:
        return tuple(w.shape), str(w.dtype).removeprefix("torch."), a.module.bias is not None
    wm = a.tensor_arg(1, "weight")
    if wm is None:
        raise ValueError("weight argument is not a traced tensor")
    return wm.shape, wm.dtype, a.arg(2, "bias") is not None


# --- MAC layers ------------------------------------------------------------------------------


@_rule("linear")
def _linear(a: OpArgs) -> OpCost:
    # y = x W^T + b, W: (out_features, in_features); N output elements.
    # MACs = N * in_features;  fwd = 2 * MACs + N (bias);  bwd = 4 * MACs + N (bias grad).
    w_shape, w_dtype, bias = _weight_bias(a)
    n = a.n_out
    macs = n * w_shape[1]
    return OpCost(macs, 2 * macs + n * bias, 4 * macs + n * bias, a.bitops(macs, w_dtype))


@_rule("conv1d", "conv2d", "conv3d")
def _conv(a: OpArgs) -> OpCost:
    # W: (C_out, C_in / groups, *kernel). Each output element is a dot product over
    # (C_in / groups) * prod(kernel) inputs: MACs = N * W.numel / C_out. Stride, padding and
    # dilation only shape N; groups shrink W's second dimension.
    # fwd = 2 * MACs + N (bias);  bwd = 4 * MACs + N (bias grad).
    w_shape, w_dtype, bias = _weight_bias(a)
    n = a.n_out
    macs = n * _prod(w_shape[1:])
    return OpCost(macs, 2 * macs + n * bias, 4 * macs + n * bias, a.bitops(macs, w_dtype))


@_rule("matmul", "mm", "bmm")
def _matmul(a: OpArgs) -> OpCost:
    # (..., M, K) @ (..., K, N'): MACs = N * K;  fwd = 2 * MACs;  bwd = 4 * MACs (dA and dB).
    # BitOPs = MACs x lhs bits x rhs bits, each operand at the format applied to it.
    lhs, rhs = a.tensor_arg(0, "input"), a.tensor_arg(1, "other")
    if lhs is None or rhs is None:
        raise ValueError("expected two tensor operands")
    macs = a.n_out * lhs.shape[-1]
    x_bits, y_bits = a.operand_bits(0, 1)
    return OpCost(macs, 2 * macs, 4 * macs, macs * x_bits * y_bits)


@_rule("addmm")
def _addmm(a: OpArgs) -> OpCost:
    # beta * C + alpha * (A @ B), A: (M, K): MACs = N * K;  fwd = 2 * MACs + N (adding C);
    # bwd = 4 * MACs + N - numel(C) (summing dy back to C's broadcast shape); alpha or beta
    # other than 1 as OpArgs.scalings says.
    c, mat1 = a.tensor_arg(0, "input"), a.tensor_arg(1, "mat1")
    if c is None or mat1 is None or a.tensor_arg(2, "mat2") is None:
        raise ValueError("expected three tensor operands")
    n = a.n_out
    macs = n * mat1.shape[-1]
    x_bits, y_bits = a.operand_bits(1, 2)
    fwd, bwd = a.scalings(n, _reduce(n, c))
    return OpCost(macs, 2 * macs + n + fwd, 4 * macs + _reduce(n, c) + bwd, macs * x_bits * y_bits)


# Recurrent cells, per hidden unit per time step (one layer, one direction): gates, their
# elementwise work E (forward) and E' (backward, with the output gradient's add).
#   rnn:  1 gate;  E = tanh or relu 1;  E' = dh (1 - h^2) 3 (relu 1) + 1.
#   gru:  3 gates; E = 2 sigmoids 8, r * (W_hn h + b_hn) + W_in x 2, tanh 1, (1 - z) n + z h 4
#         = 15;  E' = dn, dz, dh 6, tanh' 3, sigmoid' 3 + 3, d(hn), dr 2, + 1 = 18.
#   lstm: 4 gates; E = 3 sigmoids 12, tanh 1, c' = f c + i g 3, h' = o tanh(c') 2 = 18;
#         E' = do 4, dc 5, df 4, di 4, dg 4, dc_prev 1, + 1 = 23.
_CELLS = {"rnn": (1, 1, 4), "gru": (3, 15, 18), "lstm": (4, 18, 23)}


@_rule(*_CELLS, *(f"{k}cell" for k in _CELLS))
def _recurrent(a: OpArgs) -> OpCost:
    # Gate pre-activations are one dot product over [x; h]: MACs = steps * gates * H * (I + R)
    # per layer and direction (R = H, the state's width; I = R * directions above the first
    # layer). An LSTM's proj_size P: h = W_hr (o * tanh(c)), R = P, + P * H MACs a step.
    # fwd = 2 * MACs + units * (2 bias adds per gate + E), bwd = 4 * MACs + units * (2 per
    # gate + E'), units = steps * H per layer and direction. FlopCounterMode counts RNN's,
    # GRU's and a projected LSTM's matmuls (2 * MACs); LSTM's fused CPU kernel it does not.
    # A cell (nn.RNNCell, GRUCell, LSTMCell) is one step of one layer and direction; its
    # state, given or not (zeros), goes through W_hh all the same.
    m = a.module
    if m is None:
        raise ValueError("counted for nn.RNN, nn.GRU and nn.LSTM modules and their cells")
    gates, e_fwd, e_bwd = _CELLS[a.info.op_kind.removesuffix("cell")]
    e_fwd, e_bwd = (e_fwd, e_bwd) if getattr(m, "nonlinearity", "tanh") == "tanh" else (1, 2)
    h, d, i0 = m.hidden_size, 2 if getattr(m, "bidirectional", False) else 1, m.input_size
    p, layers = getattr(m, "proj_size", 0), getattr(m, "num_layers", 1)
    r = p or h
    steps = a.first_input().numel // i0  # batch x time, batched or not
    per_layer = [gates * h * ((i0 if k == 0 else r * d) + r) + p * h for k in range(layers)]
    macs = steps * d * sum(per_layer)
    units = steps * d * layers * h
    bias = 2 * gates if m.bias else 0
    w_ih = m.weight_ih_l0 if hasattr(m, "weight_ih_l0") else m.weight_ih
    bitops = a.bitops(macs, str(w_ih.dtype).removeprefix("torch."))
    return OpCost(
        macs, 2 * macs + units * (bias + e_fwd), 4 * macs + units * (bias + e_bwd), bitops
    )


# --- normalisation ---------------------------------------------------------------------------


def norm_affine(a: OpArgs, weight_at: int) -> tuple[bool, bool]:
    """Whether a norm node scales (has a weight) and shifts (has a bias): a module's own
    ``weight`` and ``bias``, or the function's arguments at ``weight_at`` and the next."""
    if a.module is not None:
        m = a.module
        return getattr(m, "weight", None) is not None, getattr(m, "bias", None) is not None
    return a.arg(weight_at, "weight") is not None, a.arg(weight_at + 1, "bias") is not None


@_rule("batch_norm", "batch_norm1d", "batch_norm2d", "batch_norm3d", "syncbatchnorm")
def _batch_norm(a: OpArgs) -> OpCost:
    # Eval mode: y = (x - mean) * inv_std [* gamma] [+ beta], inv_std per channel (a constant).
    # nn.SyncBatchNorm is a BatchNorm whose training statistics cross processes: in eval, one.
    # fwd = 2 N, + N for a weight, + N for a bias.
    # bwd: dx = dy * (gamma * inv_std): N;  a weight adds dgamma = sum(dy * xhat) with xhat
    # recomputed (2 + 2 per element), a bias dbeta = sum(dy) (1): 6 N with both, N plain.
    n = a.n_out
    w, b = norm_affine(a, 3)
    return OpCost(0, (2 + w + b) * n, (1 + 4 * w + b) * n)


def norm_flops(n: int, rows: int, weight: bool, bias: bool) -> tuple[int, int]:
    """LayerNorm's arithmetic (forward, backward FLOPs) on N = ``n`` elements in ``rows`` rows
    normalised together; see ``_layer_norm``. GroupNorm, InstanceNorm and the transformer
    layers' norms use it too.

    Example:
        >>> norm_flops(12, 3, weight=True, bias=False)  # 5 N + 4 R + N, 9 N + 2 R + 3 N
        (84, 150)
    """
    return (5 * n + 4 * rows + n * weight + n * bias, 9 * n + 2 * rows + 3 * n * weight + n * bias)


@_rule("layer_norm")
def _layer_norm(a: OpArgs) -> OpCost:
    # Over the last D elements, R = N / D rows. Per element: mean add, x - mu, square, var add,
    # times rstd = 5; per row: two divides by D, + eps, rsqrt = 4; * gamma 1, + beta 1.
    # fwd = 5 N + 4 R (+ N weight, + N bias).
    # bwd: recompute xhat (2), dx = rstd * (g - mean(g) - xhat * mean(g * xhat)) (7) per element,
    # two divides per row; weight: g = dy * gamma (1), dgamma (2); bias: dbeta (1).
    # bwd = 9 N + 2 R (+ 3 N weight, + N bias).
    shape = a.module.normalized_shape if a.module is not None else a.arg(1, "normalized_shape")
    d = _prod([shape] if isinstance(shape, int) else shape)
    n = a.n_out
    return OpCost(0, *norm_flops(n, n // d, *norm_affine(a, 2)))


# --- activations (per element: forward, backward) ---------------------------------------------


def _elementwise(fwd: int, bwd: int) -> CostRule:
    def rule(a: OpArgs) -> OpCost:
        return OpCost(0, fwd * a.n_out, bwd * a.n_out)

    return rule


# relu: max(x, 0) = 1 comparison; dx = dy * (x > 0) = 1.
COST_RULES.add("relu", _elementwise(1, 1))
# relu6: min(max(x, 0), 6) = 2 comparisons; dx = dy * (0 < x < 6) = 2.
COST_RULES.add("relu6", _elementwise(2, 2))
# sigmoid: 1 / (1 + exp(-x)) = negate, exp, add, divide = 4; dx = dy * y * (1 - y) = 3.
COST_RULES.add("sigmoid", _elementwise(4, 3))
# tanh: 1 transcendental; dx = dy * (1 - y * y) = 3.
COST_RULES.add("tanh", _elementwise(1, 3))
# softmax along D: max (1 comparison), x - max, exp, sum (1 add), divide = 5;
# dx = y * (dy - sum(dy * y)) = multiply, add, subtract, multiply = 4.
COST_RULES.add("softmax", _elementwise(5, 4), aliases=("softmax2d",))  # nn.Softmax2d: over C
# leaky_relu: x > 0 ? x : a * x = comparison, multiply = 2; dx = dy * (x > 0 ? 1 : a) = 2.
COST_RULES.add("leaky_relu", _elementwise(2, 2))
# hardtanh: clamp(x, lo, hi) = 2 comparisons; dx = dy * (lo < x < hi) = 2 (as relu6).
COST_RULES.add("hardtanh", _elementwise(2, 2))
# silu: x * sigmoid(x) = 4 + 1 = 5; dx = dy * s * (1 + x * (1 - s)), s recomputed (4) + 5 = 9.
COST_RULES.add("silu", _elementwise(5, 9))


@_rule("gelu")
def _gelu(a: OpArgs) -> OpCost:
    # exact: 0.5 * x * (1 + erf(x / sqrt2)) = divide, erf, add, multiply, multiply = 5;
    #   dx = dy * (Phi(x) + x * phi(x)): Phi 4, phi = c * exp(-x * x / 2) 4, x * phi 1, add 1,
    #   times dy 1 = 11.
    # tanh approximation: 0.5 * x * (1 + tanh(c * (x + 0.044715 x^3))) = 9;
    #   dx recomputes t = tanh(u) (7), 1 - t^2 (2), du/dx (4), product rule (6), times dy (1) = 20.
    approx = getattr(a.module, "approximate", None) if a.module is not None else None
    if approx is None:
        approx = a.arg(1, "approximate", "none")
    return (
        OpCost(0, 9 * a.n_out, 20 * a.n_out)
        if approx == "tanh"
        else OpCost(0, 5 * a.n_out, 11 * a.n_out)
    )


# --- pooling ---------------------------------------------------------------------------------


def _per_dim(value: object, dims: int, default: object) -> tuple[int, ...]:
    """A pool's int-or-sequence argument as one int per spatial dim."""
    value = default if value is None or value == [] else value
    if isinstance(value, int):
        return (value,) * dims
    vals = tuple(int(v) for v in value)  # type: ignore[attr-defined]
    return vals if len(vals) == dims else vals * dims


def _window_reads(a: OpArgs, dims: int) -> int:
    """Input elements all output windows read: torch clamps each window to the input, so
    padding, and a ceil_mode window past the end, add none. Per spatial dim (input L, output
    O, kernel k, stride s, padding p, dilation d) window o reads the j < k with
    0 <= o s - p + j d < L; the dims are independent, so the count is their product, times
    the batch and channels."""
    m, names = a.module, ("kernel_size", "stride", "padding", "dilation")
    if m is not None:
        given = [getattr(m, k, None) for k in names]
    else:  # max_poolNd(x, kernel, stride, padding, dilation); avg_poolNd has no dilation
        given = [a.arg(i, k) for i, k in enumerate(names[:3], 1)]
        given.append(a.arg(4, "dilation") if a.info.op_kind.startswith("max") else None)
    k = _per_dim(given[0], dims, 1)
    s, p, d = _per_dim(given[1], dims, k), _per_dim(given[2], dims, 0), _per_dim(given[3], dims, 1)
    ins, outs = a.first_input().shape[-dims:], a.out.shape[-dims:]
    total = 1
    for i in range(dims):
        total *= sum(
            sum(0 <= o * s[i] - p[i] + j * d[i] < ins[i] for j in range(k[i]))
            for o in range(outs[i])
        )
    return total * (a.n_out // max(_prod(outs), 1))


def _max_pool(dims: int) -> CostRule:
    def rule(a: OpArgs) -> OpCost:
        # R elements read over all windows (W per output where no window is clipped):
        # R - N comparisons; bwd routes dy to the argmax: N adds.
        return OpCost(0, _window_reads(a, dims) - a.n_out, a.n_out)

    return rule


def _avg_pool(dims: int) -> CostRule:
    def rule(a: OpArgs) -> OpCost:
        # R - N adds and N divides = R; bwd: dy divided (N) and added into the R elements read.
        reads = _window_reads(a, dims)
        return OpCost(0, reads, a.n_out + reads)

    return rule


def _adaptive_window_sum(a: OpArgs, dims: int) -> int:
    """Total input elements read over all output windows of an adaptive pool."""
    x = a.first_input()
    ins, outs = x.shape[-dims:], a.out.shape[-dims:]
    total = 1
    for i_len, o_len in zip(ins, outs, strict=True):
        # PyTorch's adaptive window i spans [floor(i * I / O), ceil((i + 1) * I / O)).
        total *= sum(-((-(j + 1) * i_len) // o_len) - (j * i_len) // o_len for j in range(o_len))
    return total * (a.n_out // max(_prod(outs), 1))


def _adaptive_avg(dims: int) -> CostRule:
    def rule(a: OpArgs) -> OpCost:
        # Windows vary; S = sum of window sizes. fwd = S (W - 1 adds + 1 divide each);
        # bwd = N divides + S adds.
        s = _adaptive_window_sum(a, dims)
        return OpCost(0, s, s + a.n_out)

    return rule


def _adaptive_max(dims: int) -> CostRule:
    def rule(a: OpArgs) -> OpCost:
        # fwd = S - N comparisons; bwd = N (route dy to the argmax).
        s = _adaptive_window_sum(a, dims)
        return OpCost(0, s - a.n_out, a.n_out)

    return rule


for _d in (1, 2, 3):  # F.max_pool2d(..., return_indices=True) traces to *_with_indices
    _mp, _amp = f"max_pool{_d}d", f"adaptive_max_pool{_d}d"
    COST_RULES.add(_mp, _max_pool(_d), aliases=(f"maxpool{_d}d", f"{_mp}_with_indices"))
    COST_RULES.add(f"avg_pool{_d}d", _avg_pool(_d), aliases=(f"avgpool{_d}d",))
    COST_RULES.add(f"adaptive_avg_pool{_d}d", _adaptive_avg(_d), aliases=(f"adaptiveavgpool{_d}d",))
    COST_RULES.add(
        _amp, _adaptive_max(_d), aliases=(f"adaptivemaxpool{_d}d", f"{_amp}_with_indices")
    )


# --- elementwise arithmetic ------------------------------------------------------------------


def _reduce(n: int, t: TensorMeta | None) -> int:
    """Adds to sum a broadcast gradient back to an operand's shape."""
    return n - t.numel if t is not None else 0


@_rule("add", "iadd")
def _add(a: OpArgs) -> OpCost:
    # fwd = N; bwd: dy passes through, broadcast operands sum it back: sum(N - numel_i).
    # alpha != 1 (x + alpha y): + N multiplies, and d(y) = alpha dy + N for a tensor y.
    n, ops, scaled = a.n_out, a.operands(), bool(a.node.kwargs.get("alpha", 1) != 1)
    tensor_y = scaled and len(ops) > 1 and ops[1] is not None
    return OpCost(0, n + n * scaled, sum(_reduce(n, t) for t in ops) + n * tensor_y)


@_rule("sub", "isub")
def _sub(a: OpArgs) -> OpCost:
    # fwd = N (+ N multiplies for alpha != 1); bwd as add, plus N negations (or multiplies by
    # -alpha) for a tensor subtrahend.
    n, ops, scaled = a.n_out, a.operands(), bool(a.node.kwargs.get("alpha", 1) != 1)
    neg = n if len(ops) > 1 and ops[1] is not None else 0
    return OpCost(0, n + n * scaled, sum(_reduce(n, t) for t in ops) + neg)


@_rule("mul", "imul")
def _mul(a: OpArgs) -> OpCost:
    # fwd = N; bwd: d(a) = dy * b for each tensor operand (N) plus its broadcast sum.
    n = a.n_out
    return OpCost(0, n, sum(n + _reduce(n, t) for t in a.operands() if t is not None))


@_rule("div", "truediv", "itruediv")
def _div(a: OpArgs) -> OpCost:
    # y = p / q; fwd = N. bwd: dp = dy / q (N), dq = -dy * y / q (3 N), each plus its broadcast sum.
    n = a.n_out
    ops = [*a.operands(), None, None]
    p, q = ops[0], ops[1]
    bwd = (n + _reduce(n, p) if p is not None else 0) + (
        3 * n + _reduce(n, q) if q is not None else 0
    )
    return OpCost(0, n, bwd)


@_rule("sum")
def _sum(a: OpArgs) -> OpCost:
    # I inputs to N outputs: I - N adds; bwd broadcasts dy (free).
    i = a.first_input().numel
    return OpCost(0, i - a.n_out, 0)


@_rule("mean")
def _mean(a: OpArgs) -> OpCost:
    # I - N adds + N divides = I; bwd: dy / count per output = N (the broadcast is free).
    return OpCost(0, a.first_input().numel, a.n_out)


@_rule("embedding")
def _embedding(a: OpArgs) -> OpCost:
    # A table lookup: fwd = 0. bwd: scatter-add dy into the weight rows = N adds
    # (integer indices have no gradient).
    return OpCost(0, 0, a.n_out)


# --- data movement: zero cost, counted --------------------------------------------------------

_FREE = (
    "flatten", "reshape", "view", "dropout", "identity", "getitem", "getattr", "size", "cat",
    "contiguous", "permute", "transpose", "t", "unsqueeze", "squeeze", "expand", "chunk", "split",
    "clone", "to", "stack", "pad",
    # tensors made from nothing but a shape
    "zeros_like", "ones_like", "full_like", "empty_like",
)  # fmt: skip
for _k in _FREE:
    COST_RULES.add(_k, lambda a: OpCost())

# In place (x.relu_(), torch.relu_(x), F.leaky_relu_(x), x.mul_(2)): the arithmetic of the op
# it names, on the same elements.
for _k in ("relu", "sigmoid", "tanh", "leaky_relu", "hardtanh", "add", "sub", "mul", "div"):
    COST_RULES.add(f"{_k}_", COST_RULES.get(_k))
