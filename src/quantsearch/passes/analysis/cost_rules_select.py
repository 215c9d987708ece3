"""Cost rules for bilinear forms, bags, selections and distances, in
:mod:`~quantsearch.passes.analysis.cost_rules`' convention (read it first): ``nn.Bilinear``
(a MAC layer), ``nn.EmbeddingBag``, ``torch.topk``, ``torch.sort``, ``searchsorted`` and
``bucketize`` (``median``, ``kthvalue`` and ``mode`` refused: data-dependent), fractional
max pooling, ``torch.cdist``,
``torch.pdist``, ``F.cosine_similarity``, ``F.pairwise_distance``, ``nn.LPPool1d/2d/3d``,
``torch.addcmul``/``addcdiv``, RMSNorm, local response norm, ``prod``, ``outer``, ``kron``,
``maximum``/``minimum``, and channel shuffles and ``unfold`` (free). Registered into
:data:`~quantsearch.passes.analysis.cost_rules.COST_RULES` on import (the package does).

Cross-check: ``torch.utils.flop_counter.FlopCounterMode`` counts none of these ops forward (0
FLOPs; the backward of cdist's matmul path it counts, 4 N M, checked);
``nn.Bilinear``'s MACs equal its count of the same product written as an outer product and a
matmul, the rest are checked by hand in ``tests/passes/analysis/test_flops_select.py``.
"""

from __future__ import annotations

import math

from quantsearch.graph import TensorMeta
from quantsearch.passes.analysis.cost_rules import COST_RULES, CostRule, OpArgs, OpCost
from quantsearch.passes.analysis.tensors import dtype_bits

__all__: list[str] = []

# --- a MAC layer -----------------------------------------------------------------------------


def _bilinear(a: OpArgs) -> OpCost:
    # y_k = x1^T W_k x2 + b_k, W: (out, in1, in2), R rows, N = R * out outputs. Computed as
    # z = x1 (x) x2 (the outer product, R * in1 * in2 multiplies), then y = z . W_k: every
    # weight used once per row, MACs = N * in1 * in2. fwd = 2 * MACs + R in1 in2 + N (bias).
    # bwd: dW = dy z (MACs), dz = sum_k dy_k W_k (MACs), dx1 = dz x2, dx2 = dz^T x1
    # (R in1 in2 MACs each): 4 * MACs + 4 R in1 in2 + N (bias grad).
    w = getattr(a.module, "weight", None)
    if w is not None:
        shape, dtype, bias = tuple(w.shape), str(w.dtype)[6:], a.module.bias is not None
    else:
        wm = a.tensor_arg(2, "weight")
        if wm is None:
            raise ValueError("weight argument is not a traced tensor")
        shape, dtype, bias = wm.shape, wm.dtype, a.arg(3, "bias") is not None
    n = a.n_out
    pairs = shape[1] * shape[2]
    macs, outer = n * pairs, n // shape[0] * pairs
    return OpCost(
        macs, 2 * macs + outer + n * bias, 4 * macs + 4 * outer + n * bias, a.bitops(macs, dtype)
    )


COST_RULES.add("bilinear", _bilinear)

# --- bags ------------------------------------------------------------------------------------


def _embedding_bag(a: OpArgs) -> OpCost:
    # I looked-up rows of D features summed into B bags (N = B D outputs; bags taken as
    # non-empty). sum: fwd = (I - B) D adds; bwd = I D adds (dy scattered into the rows).
    # mean: fwd = I D (adds and one divide per output); bwd = N divides + I D adds.
    # max: fwd = (I - B) D comparisons; bwd = N (dy routed to the argmax).
    # per_sample_weights (sum only): fwd + I D multiplies; bwd + I D (the scaled scatter) +
    # I (2 D - 1) (each weight's gradient, a dot product of dy with its row).
    m = a.module
    if m is not None:
        mode, pad, max_norm, psw = m.mode, m.padding_idx, m.max_norm, a.arg(2, "per_sample_weights")
    else:
        mode, pad, max_norm = (
            a.arg(6, "mode", "mean"),
            a.arg(10, "padding_idx"),
            a.arg(3, "max_norm"),
        )
        psw = a.arg(8, "per_sample_weights")
    if pad is not None or max_norm is not None:
        raise ValueError("counted without padding_idx and max_norm (their work depends on data)")
    idx = a.first_input()
    d, n = a.out.shape[-1], a.n_out
    looked = idx.numel * d
    if mode == "mean":
        return OpCost(0, looked, n + looked)
    adds = looked - n
    if mode == "max":
        return OpCost(0, adds, n)
    if psw is None:
        return OpCost(0, adds, looked)
    return OpCost(0, adds + looked, 2 * looked + idx.numel * (2 * d - 1))


COST_RULES.add("embedding_bag", _embedding_bag, aliases=("embeddingbag",))

# --- selections: comparisons of a worst-case merge sort ---------------------------------------


def _merge_sort(n: int) -> int:
    # Comparisons of a merge sort of n elements, worst case: n ceil(lg n) - 2^ceil(lg n) + 1
    # (Knuth, TAOCP vol. 3, 5.2.4, eq. (5)); 0 for n <= 1.
    if n <= 1:
        return 0
    c = math.ceil(math.log2(n))
    return n * c - (1 << c) + 1


def _dim_size(a: OpArgs, index: int, name: str) -> tuple[int, int]:
    """Length D of the dim an op selects along, and the rows R = input elements / D."""
    x = a.first_input()
    dim = a.arg(index, name, -1)
    d = x.shape[dim] if x.shape else 1
    return d, x.numel // max(d, 1)


def _sort(a: OpArgs) -> OpCost:
    # Along a dim of D elements, R rows: fwd = R * merge-sort comparisons of D; bwd: dy
    # scattered back to the elements' places = N (argsort: integer output, no gradient).
    d, rows = _dim_size(a, 1, "dim")
    bwd = a.n_out if a.info.op_kind == "sort" else 0
    return OpCost(0, rows * _merge_sort(d), bwd)


COST_RULES.add("sort", _sort)
COST_RULES.add("argsort", _sort)


def _topk(a: OpArgs) -> OpCost:
    # The k of D kept in a heap, R rows: the first k merge-sorted, then each of the other D - k
    # compared with the heap's least (1) and sifted in (ceil(lg k)), worst case:
    # fwd = R (sort(k) + (D - k)(1 + ceil(lg k))); k = 1 gives D - 1, as max. bwd: dy
    # scattered to the k places = R k (the indices have no gradient).
    k = int(a.arg(1, "k"))
    d, rows = _dim_size(a, 2, "dim")
    sift = math.ceil(math.log2(k)) if k > 1 else 0
    return OpCost(0, rows * (_merge_sort(k) + (d - k) * (1 + sift)), rows * k)


COST_RULES.add("topk", _topk)


def _search(a: OpArgs) -> OpCost:
    # searchsorted(sorted (..., B), values) and bucketize(values, boundaries (B)): a binary
    # search per value among B sorted entries, ceil(lg(B + 1)) comparisons each (its worst
    # case, as topk's and sort's); integer output, no gradient.
    first = a.info.op_kind == "searchsorted"
    table = a.tensor_arg(0 if first else 1, "sorted_sequence" if first else "boundaries")
    if table is None:
        raise ValueError("expected a traced sorted sequence")
    steps = math.ceil(math.log2(table.shape[-1] + 1)) if table.shape else 0
    return OpCost(0, a.n_out * steps, 0)


COST_RULES.add("searchsorted", _search, aliases=("bucketize",))


def _data_dependent(a: OpArgs) -> OpCost:
    # median, nanmedian, kthvalue, mode: torch selects with quickselect (or sorts, for mode),
    # whose comparisons depend on the values; no count holds for every input: uncounted.
    raise ValueError("its comparisons depend on the data (quickselect): no count for every input")


for _k in ("median", "nanmedian", "kthvalue", "mode"):
    COST_RULES.add(_k, _data_dependent)


def _fractional_max_pool(a: OpArgs) -> OpCost:
    # Max pooling over W-element windows at random offsets, every window inside the input:
    # W - 1 comparisons per output (drawing the offsets is not arithmetic on data); bwd: dy
    # routed to the argmax, N.
    k = a.module.kernel_size if a.module is not None else a.arg(1, "kernel_size")
    dims = len(a.out.shape) - 2
    w = math.prod((k,) * dims if isinstance(k, int) else tuple(k))
    return OpCost(0, a.n_out * (w - 1), a.n_out)


for _d in (2, 3):
    COST_RULES.add(
        f"fractional_max_pool{_d}d", _fractional_max_pool, aliases=(f"fractionalmaxpool{_d}d",)
    )

# --- distances -------------------------------------------------------------------------------


def _cdist(a: OpArgs) -> OpCost:
    # x1 (..., P, M), x2 (..., R, M): N = (...) P R distances of M features, computed directly
    # (p = 2 on more than 25 rows, torch's matmul path below).
    # p = 2: M subtracts, M squares, M - 1 adds, 1 sqrt = 3 M; p = 1: M subtracts, M abs,
    # M - 1 adds = 3 M - 1. bwd, both inputs: p = 2: dy / d (1), per feature the difference
    # (1), times it (1), added into dx1 (1) and subtracted from dx2 (1) = 4 M + 1;
    # p = 1: difference, sign, times dy, into dx1, from dx2 = 5 M.
    # pdist(x (P, M)): the N = P (P - 1) / 2 distances between its rows, the same per
    # distance (both rows' gradients land in the one input).
    pdist = a.info.op_kind == "pdist"
    x1 = a.tensor_arg(0, "input" if pdist else "x1")
    p = float(a.arg(1, "p", 2.0) if pdist else a.arg(2, "p", 2.0))
    if x1 is None or p not in (1.0, 2.0):
        raise ValueError("counted for traced inputs and p = 1 or 2")
    m, n = x1.shape[-1], a.n_out
    x2 = None if pdist else a.tensor_arg(1, "x2")
    if p == 2.0 and x2 is not None and _uses_mm(a, x1, x2):
        return _euclidean_mm(a, x1, x2)
    if p == 2.0:
        return OpCost(0, 3 * m * n, (4 * m + 1) * n)
    return OpCost(0, (3 * m - 1) * n, 5 * m * n)


def _uses_mm(a: OpArgs, x1: TensorMeta, x2: TensorMeta) -> bool:
    """Whether torch computes a p = 2 cdist as a matmul: compute_mode 'use_mm_for_euclid_dist',
    or the default '..._if_necessary' with more than 25 rows in either input."""
    mode = a.arg(3, "compute_mode", "use_mm_for_euclid_dist_if_necessary")
    if mode == "use_mm_for_euclid_dist":
        return True
    rows = max(x1.shape[-2] if len(x1.shape) > 1 else 1, x2.shape[-2] if len(x2.shape) > 1 else 1)
    return mode in (None, "use_mm_for_euclid_dist_if_necessary") and rows > 25


def _euclidean_mm(a: OpArgs, x1: TensorMeta, x2: TensorMeta) -> OpCost:
    # torch's matmul path (ATen's _euclidean_dist), B P R = N distances of M features: the
    # squared norms of the B (P + R) rows (2 M - 1 each), -2 x1 (B P M), one matmul of the
    # rows augmented with [norm, 1] and [1, norm]: N (M + 2) MACs; clamp at 0 and sqrt (2 N).
    # bwd (_euclidean_dist_backward): ratio = dy / d (N), zeroed where d = 0 (2 N), its sums
    # over each side (N - B P, N - B R), two matmuls with x2 and x1 (N M MACs each: 4 N M),
    # x1 and x2 scaled by the sums and the products subtracted (2 M B (P + R)). BitOPs: the
    # augmented operands are the node's own intermediates, at the input dtype's width.
    m, n = x1.shape[-1], a.n_out
    p, r = x1.numel // m, x2.numel // m  # rows of each side, over the batch
    macs = n * (m + 2)
    fwd = 2 * macs + (p + r) * (2 * m - 1) + p * m + 2 * n
    bwd = 4 * n * m + 3 * n + (2 * n - p - r) + 2 * m * (p + r)
    return OpCost(macs, fwd, bwd, macs * dtype_bits(x1.dtype) ** 2)


COST_RULES.add("cdist", _cdist, aliases=("pdist",))


def _cosine_similarity(a: OpArgs) -> OpCost:
    # Along D features (the inputs broadcast), N rows: w12 = x1 . x2, w1 = x1 . x1,
    # w2 = x2 . x2 (3 (2 D - 1)), w1 w2, max(., eps^2), sqrt, divide (4) = 6 D + 1 per row.
    # bwd: per row dy / n12, dy y, / w1, / w2 (4); per feature dx1 = a x2 - c1 x1 and
    # dx2 = a x1 - c2 x2 (6): N (6 D + 4).
    x1, x2 = a.tensor_arg(0, "x1"), a.tensor_arg(1, "x2")
    if x1 is None or x2 is None:
        raise ValueError("expected two tensor inputs")
    dim = a.module.dim if a.module is not None else a.arg(2, "dim", 1)
    nd = max(len(x1.shape), len(x2.shape))
    at = [dim % nd - nd + len(t.shape) for t in (x1, x2)]  # the dim in each, aligned right
    d = max(t.shape[i] if i >= 0 else 1 for t, i in zip((x1, x2), at, strict=True))
    return OpCost(0, a.n_out * (6 * d + 1), a.n_out * (6 * d + 4))


COST_RULES.add("cosine_similarity", _cosine_similarity, aliases=("cosinesimilarity",))


def _pairwise_distance(a: OpArgs) -> OpCost:
    # ||x1 - x2 + eps||_2 over the last D features (the inputs broadcast), N rows: subtract,
    # + eps, square (3 D), D - 1 adds, sqrt = 4 D per row. bwd: dy / d per row (1); per
    # feature the difference and eps (2), times it (1), into dx1 (1), from dx2 (1) = 5 D + 1.
    x1, x2 = a.tensor_arg(0, "x1"), a.tensor_arg(1, "x2")
    p = a.module.norm if a.module is not None else a.arg(2, "p", 2.0)
    if x1 is None or x2 is None or float(p) != 2.0:
        raise ValueError("counted for two tensor inputs and p = 2")
    d = max(x1.shape[-1] if x1.shape else 1, x2.shape[-1] if x2.shape else 1)
    return OpCost(0, a.n_out * 4 * d, a.n_out * (5 * d + 1))


COST_RULES.add("pairwise_distance", _pairwise_distance, aliases=("pairwisedistance",))

# --- power-average pooling -------------------------------------------------------------------


def _lp_pool(dims: int) -> CostRule:
    def rule(a: OpArgs) -> OpCost:
        # y = (sum over a W-element window of x^p)^(1/p): W powers, W - 1 adds, 1 root = 2 W
        # per output. bwd: dx = dy y^(1-p) x^(p-1): y^(1-p) and dy times it (2) per output,
        # x^(p-1), its product and the add into dx (3) per window element: 3 W + 2.
        k = a.module.kernel_size if a.module is not None else a.arg(2, "kernel_size")
        ks = (k,) * dims if isinstance(k, int) else tuple(k)
        w = math.prod(ks if len(ks) == dims else ks * dims)
        return OpCost(0, 2 * w * a.n_out, (3 * w + 2) * a.n_out)

    return rule


for _d in (1, 2, 3):
    COST_RULES.add(f"lp_pool{_d}d", _lp_pool(_d), aliases=(f"lppool{_d}d",))

# --- normalisation and products --------------------------------------------------------------


def _rms_norm(a: OpArgs) -> OpCost:
    # Over the last D elements, R = N / D rows: per element square, add, times rstd = 3; per
    # row divide by D, + eps, rsqrt = 3; affine: times gamma = 1. fwd = 3 N + 3 R (+ N).
    # bwd: dx = rstd (g - xhat mean(g xhat)): xhat recomputed, g xhat, its sum, xhat times
    # the mean, subtract, times rstd = 6 per element, divide by D per row; affine: g = dy
    # gamma (1), dgamma += dy xhat (2). bwd = 6 N + R (+ 3 N).
    if a.module is not None:
        shape, affine = a.module.normalized_shape, a.module.weight is not None
    else:
        shape, affine = a.arg(1, "normalized_shape"), a.arg(2, "weight") is not None
    d = math.prod([shape] if isinstance(shape, int) else shape)
    n = a.n_out
    rows = n // d
    return OpCost(0, 3 * n + 3 * rows + n * affine, 6 * n + rows + 3 * n * affine)


COST_RULES.add("rms_norm", _rms_norm, aliases=("rmsnorm",))


def _local_response_norm(a: OpArgs) -> OpCost:
    # AlexNet's LRN over n neighbouring channels: x^2 (1), their window average (n), times
    # alpha, + k, ^beta (3), x divided by it (1) = n + 5 per element. bwd: dy / D (1),
    # t = dy x D^(-beta-1) (3), t summed over the window (n), times 2 alpha beta / n and x
    # (2), subtracted (1) = n + 7.
    n = a.module.size if a.module is not None else a.arg(1, "size")
    return OpCost(0, (int(n) + 5) * a.n_out, (int(n) + 7) * a.n_out)


COST_RULES.add("local_response_norm", _local_response_norm, aliases=("localresponsenorm",))


def _prod(a: OpArgs) -> OpCost:
    # I inputs to N products: I - N multiplies; bwd: dx = dy * y / x: divide, multiply = 2 I.
    i = a.first_input().numel
    return OpCost(0, i - a.n_out, 2 * i)


COST_RULES.add("prod", _prod)


def _outer(a: OpArgs) -> OpCost:
    # u (M) times v (K): N = M K multiplies. bwd: du = dy v, dv = dy^T u: N multiplies and
    # N - M (N - K) adds each = 4 N - M - K. kron(A, B): every product of an element of A
    # (M of them) and one of B (K), the same count.
    second = "other" if a.info.op_kind == "kron" else "vec2"
    u, v = a.tensor_arg(0, "input"), a.tensor_arg(1, second)
    if u is None or v is None:
        raise ValueError("expected two tensor operands")
    n = a.n_out
    return OpCost(0, n, 4 * n - u.numel - v.numel)


COST_RULES.add("outer", _outer, aliases=("ger", "kron"))


def _maximum(a: OpArgs) -> OpCost:
    # maximum, minimum, fmax, fmin of two tensors: N comparisons; dy routed to the larger
    # (smaller) = 2 N, as max of two tensors.
    return OpCost(0, a.n_out, 2 * a.n_out)


COST_RULES.add("maximum", _maximum, aliases=("minimum", "fmax", "fmin"))
# channel_shuffle (ShuffleNet) and unfold (im2col) move data: 0, counted
for _k in ("channel_shuffle", "channelshuffle", "native_channel_shuffle", "unfold"):
    COST_RULES.add(_k, lambda a: OpCost())

# --- fused elementwise -----------------------------------------------------------------------


def _reduce(n: int, t: TensorMeta | None) -> int:
    return n - t.numel if t is not None else 0


def _addcmul(a: OpArgs) -> OpCost:
    # input + value * t1 * t2 (addcdiv: t1 / t2), N outputs: t1 op t2 (1), times value when
    # not 1 (s), add (1): fwd = (2 + s) N. bwd: dy summed to each operand's broadcast shape;
    # addcmul: dt1 = value dy t2, dt2 = value dy t1 = (1 + s) N each; addcdiv: dt1 =
    # value dy / t2 = (1 + s) N, dt2 = -dt1 t1 / t2 = 2 N.
    n = a.n_out
    s = int(a.arg(3, "value", 1) != 1)
    x, t1, t2 = a.tensor_arg(0, "input"), a.tensor_arg(1, "tensor1"), a.tensor_arg(2, "tensor2")
    if t1 is None or t2 is None:
        raise ValueError("expected two tensor factors")
    per = (1 + s, 1 + s) if a.info.op_kind.startswith("addcmul") else (1 + s, 2)
    bwd = _reduce(n, x) + sum(p * n + _reduce(n, t) for p, t in zip(per, (t1, t2), strict=True))
    return OpCost(0, (2 + s) * n, bwd)


for _k in ("addcmul", "addcdiv", "addcmul_", "addcdiv_"):
    COST_RULES.add(_k, _addcmul)
