"""Cost rules for the rest of the ops users' models write, in
:mod:`~quantsearch.passes.analysis.cost_rules`' convention (read it first):
``nn.MultiheadAttention``, ``nn.Transformer``, ``nn.Transformer{Encoder,Decoder}[Layer]``
and ``baddbmm`` (MAC layers), activations beyond the common ones, elementwise math,
statistics (``var``, ``std``, ``cumsum``), and data movement that costs nothing. Registered
into :data:`~quantsearch.passes.analysis.cost_rules.COST_RULES` on import (the package does).

Cross-check: the MAC layers here equal ``torch.utils.flop_counter.FlopCounterMode`` (2 FLOPs
per MAC of the attention's projections and batched matmuls, and of ``baddbmm``); the other
rules are checked by hand in ``tests/passes/analysis/test_flops_ops.py``.
"""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import nn

from quantsearch.graph import TensorMeta
from quantsearch.passes.analysis.cost_rules import (
    COST_RULES,
    CostRule,
    OpArgs,
    OpCost,
    norm_flops,
)

__all__: list[str] = []


def _elementwise(fwd: int, bwd: int) -> CostRule:
    def rule(a: OpArgs) -> OpCost:
        return OpCost(0, fwd * a.n_out, bwd * a.n_out)

    return rule


# --- MAC layers ------------------------------------------------------------------------------


def _attention(m: Any, q_rows: int, k_rows: int, s: int, extra: int) -> tuple[int, int, int]:
    # nn.MultiheadAttention, query (L, N, E) (batch_first: (N, L, E); unbatched: (L, E)), key
    # and value with S rows of kdim and vdim features, H heads. P = N * H * L * S scores.
    # MACs = projections N L E^2 (q) + N S kdim E (k) + N S vdim E (v) + N L E^2 (out)
    #      + scores N L S E + weights times values N L S E (E = H x head dim).
    # fwd = 2 * MACs + bias adds B + P (scale) + 5 P (softmax) [+ P mask] [+ P averaging the
    # heads' weights, need_weights=True, the default]; bwd = 4 * MACs + B + P + 4 P.
    # B = N L E (q) + N S E (k) + N S E (v) + N L E (out) when the module has biases.
    # ``extra``: how many of the optional P terms (mask, averaging) apply. Returns MACs, fwd, bwd.
    if m.bias_k is not None or m.add_zero_attn:
        raise ValueError("counted for nn.MultiheadAttention without add_bias_kv, add_zero_attn")
    e = m.embed_dim
    macs = q_rows * e * e * 2 + k_rows * (m.kdim + m.vdim) * e + 2 * q_rows * s * e
    p = q_rows * s * m.num_heads
    bias = (2 * q_rows + 2 * k_rows) * e if m.in_proj_bias is not None else 0
    return macs, 2 * macs + bias + (6 + extra) * p, 4 * macs + bias + 5 * p


def _mha(a: OpArgs) -> OpCost:
    m = a.module
    q, k = a.tensor_arg(0, "query"), a.tensor_arg(1, "key")
    if m is None or q is None or k is None:
        raise ValueError("expected an nn.MultiheadAttention with query and key tensors")
    time = 1 if m.batch_first and len(q.shape) == 3 else 0
    masked = a.arg(3, "key_padding_mask") is not None or a.arg(5, "attn_mask") is not None
    averaged = bool(a.arg(4, "need_weights", True)) and bool(a.arg(6, "average_attn_weights", True))
    macs, fwd, bwd = _attention(
        m, q.numel // m.embed_dim, k.numel // m.kdim, k.shape[time], masked + averaged
    )
    return OpCost(macs, fwd, bwd, a.bitops(macs, str(m.out_proj.weight.dtype)[6:]))


COST_RULES.add("multiheadattention", _mha)


def _layer_cost(m: Any, x: TensorMeta, masked: bool) -> tuple[int, int, int]:
    # nn.TransformerEncoderLayer on R = N L rows of E features: self-attention (above, its
    # weights not returned) + feed-forward of F units: 2 R E F MACs, R F + R E bias adds,
    # ReLU (1, 1) or exact GELU (5, 11) on R F; two LayerNorms over E (cost_rules' layer_norm,
    # with the layer's biases or not) and two residual adds (N = R E each forward, free
    # backward); dropout as in eval.
    if m.activation_relu_or_gelu not in (1, 2):
        raise ValueError("counted for nn.TransformerEncoderLayer with relu or gelu")
    rows, n = x.numel // m.linear1.in_features, x.numel
    time = 1 if m.self_attn.batch_first and len(x.shape) == 3 else 0
    macs, fwd, bwd = _attention(m.self_attn, rows, rows, x.shape[time], int(masked))
    f_macs, f_fwd, f_bwd = _feed_forward(
        m, rows, n, (1, 1) if m.activation_relu_or_gelu == 1 else (5, 11)
    )
    norms_fwd, norms_bwd = _layer_norms([m.norm1, m.norm2], n, rows)
    return macs + f_macs, fwd + f_fwd + norms_fwd + 2 * n, bwd + f_bwd + norms_bwd


def _feed_forward(m: Any, rows: int, n: int, act: tuple[int, int]) -> tuple[int, int, int]:
    """A transformer layer's feed-forward (linear1, the activation's ``act`` FLOPs forward and
    backward per unit, linear2) on R = ``rows`` rows of E features, N = ``n`` values, F units:
    2 R E F MACs, R F + N bias adds; (MACs, forward, backward FLOPs)."""
    e, f = m.linear1.in_features, m.linear1.out_features
    macs = 2 * rows * e * f
    bias = rows * f * (m.linear1.bias is not None) + n * (m.linear2.bias is not None)
    return macs, 2 * macs + bias + act[0] * rows * f, 4 * macs + bias + act[1] * rows * f


def _layer_norms(norms: list[Any], n: int, rows: int) -> tuple[int, int]:
    """The LayerNorms ``norms`` over E on N = ``n`` values in R = ``rows`` rows (cost_rules'
    layer_norm, each with its own weight and bias or not: 7 N + 4 R FLOPs forward and
    13 N + 2 R backward with both), summed."""
    costs = [
        norm_flops(n, rows, getattr(m, "weight", None) is not None, m.bias is not None)
        for m in norms
    ]
    return sum(c[0] for c in costs), sum(c[1] for c in costs)


def _encoder(a: OpArgs) -> OpCost:
    # nn.TransformerEncoderLayer, or nn.TransformerEncoder: its layers in turn (each on the
    # same shape) and its final LayerNorm, if any (7 N + 4 R, 13 N + 2 R with a bias).
    m, x = a.module, a.tensor_arg(0, "src")
    if m is None or x is None:
        raise ValueError("expected a transformer encoder module and its src tensor")
    mask = a.arg(1, "src_mask") if a.arg(1, "mask") is None else a.arg(1, "mask")
    masked = mask is not None or a.arg(2, "src_key_padding_mask") is not None
    layers = list(m.layers) if hasattr(m, "layers") else [m]
    return _stack(a, m, x, layers, [_layer_cost(layer, x, masked) for layer in layers])


def _stack(
    a: OpArgs, m: Any, x: TensorMeta, layers: list[Any], costs: list[tuple[int, int, int]]
) -> OpCost:
    """A transformer stack's cost: its layers' (MACs, forward, backward FLOPs) summed, plus its
    final LayerNorm over E, if any."""
    macs, fwd, bwd = (sum(c[i] for c in costs) for i in range(3))
    if getattr(m, "norm", None) is not None:
        rows = x.numel // layers[0].linear1.in_features
        norm_fwd, norm_bwd = _layer_norms([m.norm], x.numel, rows)
        fwd, bwd = fwd + norm_fwd, bwd + norm_bwd
    dtype = str(layers[0].linear1.weight.dtype)[6:]
    return OpCost(macs, fwd, bwd, a.bitops(macs, dtype))


COST_RULES.add("transformerencoderlayer", _encoder)
COST_RULES.add("transformerencoder", _encoder)


def _decoder_layer(
    m: Any, x: TensorMeta, mem: TensorMeta, masks: tuple[bool, bool]
) -> tuple[int, int, int]:
    # nn.TransformerDecoderLayer on R = N T rows of E features against a memory of N S rows:
    # self-attention over T, cross-attention over S (above, weights not returned), the
    # encoder layer's feed-forward, three LayerNorms over E (7 N + 4 R, 13 N + 2 R each with
    # biases) and
    # three residual adds (N each forward).
    act, e = m.activation, m.linear1.in_features
    if act is F.relu or isinstance(act, nn.ReLU):
        act_flops = (1, 1)
    elif act is F.gelu or (isinstance(act, nn.GELU) and act.approximate == "none"):
        act_flops = (5, 11)
    else:
        raise ValueError("counted for nn.TransformerDecoderLayer with relu or gelu")
    rows, n = x.numel // e, x.numel
    time = 1 if m.self_attn.batch_first and len(x.shape) == 3 else 0
    sm, sf, sb = _attention(m.self_attn, rows, rows, x.shape[time], int(masks[0]))
    cm, cf, cb = _attention(m.multihead_attn, rows, mem.numel // e, mem.shape[time], int(masks[1]))
    f_macs, f_fwd, f_bwd = _feed_forward(m, rows, n, act_flops)
    norms_fwd, norms_bwd = _layer_norms([m.norm1, m.norm2, m.norm3], n, rows)
    return sm + cm + f_macs, sf + cf + f_fwd + norms_fwd + 3 * n, sb + cb + f_bwd + norms_bwd


def _decoder(a: OpArgs) -> OpCost:
    # nn.TransformerDecoderLayer, or nn.TransformerDecoder: its layers in turn and its final
    # LayerNorm, if any. A mask on the self-attention (tgt_mask, tgt_key_padding_mask) or the
    # cross-attention (memory_mask, memory_key_padding_mask) adds P to that attention.
    m, x, mem = a.module, a.tensor_arg(0, "tgt"), a.tensor_arg(1, "memory")
    if m is None or x is None or mem is None:
        raise ValueError("expected a transformer decoder module, its tgt and memory tensors")
    masks = (
        a.arg(2, "tgt_mask") is not None or a.arg(4, "tgt_key_padding_mask") is not None,
        a.arg(3, "memory_mask") is not None or a.arg(5, "memory_key_padding_mask") is not None,
    )
    layers = list(m.layers) if hasattr(m, "layers") else [m]
    return _stack(a, m, x, layers, [_decoder_layer(layer, x, mem, masks) for layer in layers])


COST_RULES.add("transformerdecoderlayer", _decoder)
COST_RULES.add("transformerdecoder", _decoder)


def _transformer(a: OpArgs) -> OpCost:
    # nn.Transformer(src, tgt): its encoder stack on src (the encoder's rule above, final
    # LayerNorm included), then its decoder stack on tgt against the encoder's output, a
    # memory of src's shape (the decoder's rule). Masks as in each: src_mask and
    # src_key_padding_mask on the encoder's attention, tgt_* on the decoder's self-attention,
    # memory_* on its cross-attention.
    m, src, tgt = a.module, a.tensor_arg(0, "src"), a.tensor_arg(1, "tgt")
    if m is None or src is None or tgt is None or not hasattr(m.encoder, "layers"):
        raise ValueError("expected an nn.Transformer of torch's encoder and decoder, src and tgt")
    given = [a.arg(i, k) is not None for i, k in enumerate(_TRANSFORMER_MASKS, 2)]
    enc, dec = list(m.encoder.layers), list(m.decoder.layers)
    e = _stack(a, m.encoder, src, enc, [_layer_cost(x, src, given[0] or given[3]) for x in enc])
    masks = (given[1] or given[4], given[2] or given[5])
    d = _stack(a, m.decoder, tgt, dec, [_decoder_layer(x, tgt, src, masks) for x in dec])
    return OpCost(
        e.macs + d.macs, e.flops + d.flops, e.flops_backward + d.flops_backward, e.bitops + d.bitops
    )


_TRANSFORMER_MASKS = (
    "src_mask", "tgt_mask", "memory_mask",
    "src_key_padding_mask", "tgt_key_padding_mask", "memory_key_padding_mask",
)  # fmt: skip
COST_RULES.add("transformer", _transformer)


def _baddbmm(a: OpArgs) -> OpCost:
    # beta * C + alpha * (A @ B), A: (b, M, K): MACs = N * K; fwd = 2 * MACs + N (adding C);
    # bwd = 4 * MACs + N - numel(C) (dy summed to C's broadcast shape); alpha or beta other
    # than 1 as OpArgs.scalings says.
    c, b1 = a.tensor_arg(0, "input"), a.tensor_arg(1, "batch1")
    if c is None or b1 is None or a.tensor_arg(2, "batch2") is None:
        raise ValueError("expected three tensor operands")
    n = a.n_out
    macs = n * b1.shape[-1]
    x_bits, y_bits = a.operand_bits(1, 2)
    fwd, bwd = a.scalings(n, n - c.numel)
    return OpCost(macs, 2 * macs + n + fwd, 4 * macs + n - c.numel + bwd, macs * x_bits * y_bits)


COST_RULES.add("baddbmm", _baddbmm)

# --- activations and elementwise math (per output element: forward, backward) -----------------

_ELEMENTWISE = {
    # selu: scale * elu(x) = elu's 4 + 1 = 5; dx = dy * scale * (x > 0 ? 1 : y' + a) = 4.
    "selu": (5, 4),
    # celu: x > 0 ? x : a (exp(x / a) - 1) = compare, divide, exp, subtract, multiply = 5;
    #   dx = dy * (x > 0 ? 1 : exp(x / a)) = compare, divide, exp, multiply = 4.
    "celu": (5, 4),
    # softsign: x / (1 + |x|) = abs, add, divide = 3; dx = dy / (1 + |x|)^2 = 4.
    "softsign": (3, 4),
    # log_sigmoid: -softplus(-x) = negate, exp, add, log = 4; dx = dy * (1 - sigmoid(x)) = 6.
    "log_sigmoid": (4, 6),
    "logsigmoid": (4, 6),
    # tanhshrink: x - tanh(x) = 2; dx = dy * tanh(x)^2 = tanh, square, multiply = 3.
    "tanhshrink": (2, 3),
    # threshold: x > t ? x : v = 1 comparison; dx = dy * (x > t) = 1.
    "threshold": (1, 1),
    # softmin: softmax(-x) = 1 + 5; dx = softmax's 4 + 1 negation = 5.
    "softmin": (6, 5),
    # glu: a * sigmoid(b), N outputs from 2 N inputs = 4 + 1 = 5;
    #   da = dy * s (1), db = dy * a * s * (1 - s) (4), s kept from the forward = 5.
    "glu": (5, 5),
    # square: 1; dx = 2 x dy = 2.  rsqrt: 1; dx = -dy y^3 / 2 = 4.  reciprocal: 1; -dy y^2 = 3.
    "square": (1, 2),
    "rsqrt": (1, 4),
    "reciprocal": (1, 3),
    # log: 1; dx = dy / x = 1.  log1p: add, log = 2; dx = dy / (1 + x) = 2.
    "log": (1, 1),
    "log1p": (2, 2),
    # erf, erfc: 1 transcendental; dx = (-)dy * 2 / sqrt(pi) * exp(-x^2): square, negate, exp,
    #   times the constant, times dy = 5.  expm1: 1; dx = dy * (y + 1) = 2.
    "erf": (1, 5),
    "erfc": (1, 5),
    "expm1": (1, 2),
    # atan: 1; dx = dy / (1 + x^2): square, add, divide = 3.
    "atan": (1, 3),
    # nan_to_num: NaN, +inf and -inf tests and selects = 3; dx = dy where finite = 1.
    "nan_to_num": (3, 1),
    # sin, cos: 1 transcendental; dx = dy * cos(x) (-sin(x)) = 2.
    "sin": (1, 2),
    "cos": (1, 2),
    # clamp_min, clamp_max: 1 comparison; dx = dy masked = 1.
    "clamp_min": (1, 1),
    "clamp_max": (1, 1),
    # tril, triu: zero one triangle, 1 select as masked_fill; dx = dy masked = 1.
    "tril": (1, 1),
    "triu": (1, 1),
    # softshrink: x > l ? x - l : x < -l ? x + l : 0 = 2 comparisons, 1 add = 3;
    #   dx = dy * (|x| > l) = 2 (as hardtanh).  hardshrink: |x| > l ? x : 0 = 2; dx the same 2.
    "softshrink": (3, 2),
    "hardshrink": (2, 2),
    # rrelu: in eval, leaky_relu with slope (lower + upper) / 2 = 2; dx = 2 (the graph is eval's).
    "rrelu": (2, 2),
    # fake quantization (per tensor or channel): x / s, + zero point, round, clamp to the
    #   integer range (2), - zero point, * s = 7; dx = dy masked to the range (STE) = 1.
    "fake_quantize_per_tensor_affine": (7, 1),
    "fake_quantize_per_channel_affine": (7, 1),
    # rounding (sign, floor, ceil, trunc): 1; their gradient is zero, nothing computed.
    # floordiv (x // y): divide, floor = 2; no gradient.
    **{k: (1, 0) for k in ("sign", "floor", "ceil", "trunc")},
    "floordiv": (2, 0),
}
for _k, (_f, _b) in _ELEMENTWISE.items():
    COST_RULES.add(_k, _elementwise(_f, _b))


def _round(a: OpArgs) -> OpCost:
    # round: 1; with decimals d != 0, x * 10^d, round, / 10^d = 3. Its gradient is zero.
    decimals = a.node.kwargs.get("decimals", 0)
    return OpCost(0, (3 if decimals else 1) * a.n_out, 0)


COST_RULES.add("round", _round)
for _k in ("erf", "erfc", "expm1", "log1p", "round"):  # torch.special's names of the same
    COST_RULES.add(f"special_{_k}", COST_RULES.get(_k))
# In place: the arithmetic of the op it names, on the same elements.
for _k in ("selu", "celu", "threshold", "clamp_min", "clamp_max", "tril", "triu"):
    COST_RULES.add(f"{_k}_", COST_RULES.get(_k))


def _index_add(a: OpArgs) -> OpCost:
    # index_add(input, dim, index, source, alpha=1) and scatter_add(input, dim, index, src):
    # one add into the output per source element (index_add: S = source's elements, times
    # alpha first if alpha != 1; scatter_add: S = index's elements, the ones it reads). bwd:
    # dy to the input is a copy and dy to the source a gather: free.
    if a.info.op_kind.startswith("scatter"):
        s, scale = a.tensor_arg(2, "index"), False
    else:
        s, scale = a.tensor_arg(3, "source"), a.arg(4, "alpha", 1) != 1
    if s is None:
        raise ValueError("expected a traced index and source")
    return OpCost(0, s.numel * (1 + scale), 0)


COST_RULES.add("index_add", _index_add, aliases=("index_add_", "scatter_add", "scatter_add_"))

# --- statistics ------------------------------------------------------------------------------


def _var_std(a: OpArgs) -> OpCost:
    # D elements per output, I inputs: mean D (D - 1 adds, 1 divide), x - mu D, square D,
    # sum D - 1, divide by D - correction 1 = 4 D per output: fwd = 4 I (+ N sqrt for std).
    # bwd: dx = dy * 2 (x - mu) / (D - correction): subtract, multiply, multiply = 3 I
    # (+ 2 N for std: dy / (2 std)).
    i = a.first_input().numel
    std = a.info.op_kind == "std"
    return OpCost(0, 4 * i + a.n_out * std, 3 * i + 2 * a.n_out * std)


def _logsumexp(a: OpArgs) -> OpCost:
    # D elements per output, I inputs: max D - 1, x - max D, exp D, sum D - 1, log 1, + max 1
    # = 4 D per output: fwd = 4 I. bwd: dx = dy * exp(x - y): subtract, exp, multiply = 3 I.
    i = a.first_input().numel
    return OpCost(0, 4 * i, 3 * i)


COST_RULES.add("logsumexp", _logsumexp)
COST_RULES.add("var", _var_std)
COST_RULES.add("std", _var_std)


def _cumsum(a: OpArgs) -> OpCost:
    # Prefix sums along a dim of length D: D - 1 adds per row, R = N / D rows: fwd = N - R;
    # bwd = the reversed prefix sums of dy = N - R.
    x = a.first_input()
    d = x.shape[a.arg(1, "dim")] if x.shape else 1
    adds = a.n_out - a.n_out // max(d, 1)
    return OpCost(0, adds, adds)


COST_RULES.add("cumsum", _cumsum)


def _arg_reduce(a: OpArgs) -> OpCost:
    # argmax, argmin: D - 1 comparisons per output: fwd = I - N; integer output, no gradient.
    return OpCost(0, a.first_input().numel - a.n_out, 0)


COST_RULES.add("argmax", _arg_reduce, aliases=("argmin",))

# --- data movement and dtype casts: zero cost, counted ---------------------------------------

_FREE = (
    "repeat", "tile", "repeat_interleave", "expand_as", "index_select", "gather", "narrow",
    "select", "unbind", "unflatten", "roll", "flip", "pixel_shuffle", "pixelshuffle",
    "hstack", "vstack", "dstack", "column_stack", "row_stack", "concat", "concatenate",
    "pixel_unshuffle", "pixelunshuffle", "view_as", "reshape_as", "movedim", "swapaxes",
    "float", "double", "half", "bfloat16", "long", "int", "bool", "type_as", "type", "detach",
    "item",
    "new_zeros", "new_ones", "new_full", "new_empty", "arange", "one_hot", "tuple",
    "zeropad1d", "zeropad2d", "zeropad3d", "constantpad1d", "constantpad2d", "constantpad3d",
    # the padding modules that copy edge values (F.pad of mode reflect, replicate, circular)
    "reflectionpad1d", "reflectionpad2d", "reflectionpad3d", "replicationpad1d",
    "replicationpad2d", "replicationpad3d", "circularpad1d", "circularpad2d", "circularpad3d",
    # MaxUnpool: each pooled value written back at its index, zeros elsewhere
    "maxunpool1d", "maxunpool2d", "maxunpool3d", "max_unpool1d", "max_unpool2d", "max_unpool3d",
    "dropout1d", "dropout2d", "dropout3d", "alpha_dropout", "feature_alpha_dropout",
    "alphadropout", "featurealphadropout",
    "ravel", "rot90", "fliplr", "flipud", "tensor_split", "hsplit", "vsplit", "dsplit",
    "diagonal", "diag", "diag_embed", "broadcast_to", "broadcast_tensors", "atleast_1d",
    "atleast_2d", "atleast_3d", "take_along_dim", "take", "masked_select", "masked_scatter",
    "meshgrid", "numel", "dim",
    # a constant made in forward on a traced device (torch.tensor(1.5, device=x.device))
    "tensor", "as_tensor", "scalar_tensor",
    # tensors made from a shape (random ones too: drawing numbers is not arithmetic on data)
    "full", "zeros", "ones", "empty", "eye", "linspace", "rand", "randn", "randint",
    "rand_like", "randn_like", "randint_like", "new_tensor", "uniform_", "normal_",
    # writes and views in place or not: a copy, a fill, values put at indices
    "copy_", "fill_", "zero_", "index_fill", "index_fill_", "index_copy", "index_copy_",
    "masked_scatter_", "unsqueeze_", "squeeze_", "t_", "transpose_", "as_strided",
    "split_with_sizes",
)  # fmt: skip
for _k in _FREE:
    COST_RULES.add(_k, lambda a: OpCost())
