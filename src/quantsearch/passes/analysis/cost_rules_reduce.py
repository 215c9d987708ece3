"""Cost rules for norms and other reductions, in
:mod:`~quantsearch.passes.analysis.cost_rules`' convention (read it first): vector norms in
every form torch spells them (``torch.linalg.vector_norm``, ``torch.linalg.norm``,
``torch.norm``, ``Tensor.norm``), ``F.normalize``, statistics and scans (``nansum``,
``var_mean``, ``cumprod``, ``logcumsumexp``, ``histc`` ...), ``torch.dist``, ``renorm``,
``index_put``,
``scatter``/``scatter_reduce`` and ``F.fold``.
Registered into
:data:`~quantsearch.passes.analysis.cost_rules.COST_RULES` on import (the package does).

I is the input's elements, N the output's, R = N / D rows of D elements reduced together (or
normalised together, for ``F.normalize``). As ``sum``: I - N adds reduce I elements to N, and
the backward's broadcast of dy is free.

Cross-check: ``torch.utils.flop_counter.FlopCounterMode`` counts none of these (0), so each is
counted by hand in ``tests/passes/analysis/test_flops_reduce.py``.
"""

from __future__ import annotations

import math
from typing import Any

from quantsearch.passes.analysis.cost_rules import COST_RULES, OpArgs, OpCost

__all__: list[str] = []

# --- norms -----------------------------------------------------------------------------------


def _p_norm(i: int, n: int, p: float) -> OpCost:
    """The p-norm of I elements reduced to N outputs.

    p = 2: square I, sum I - N, sqrt N: fwd = 2 I; bwd: dx = dy x / norm: divide, multiply = 2 I.
    p = 1: abs I, sum I - N: fwd = 2 I - N; bwd: dx = dy sign(x): sign, multiply = 2 I.
    p = inf (-inf): abs I, max (min) I - N comparisons: fwd = 2 I - N; bwd: dy routed to the
      argmax (N, as max's) times its sign (N) = 2 N.
    p = 0: x != 0 I, sum I - N: fwd = 2 I - N; no gradient (a count).
    other p: abs I, pow I, sum I - N, root N: fwd = 3 I; bwd: dx = dy sign(x) |x|^(p-1) /
      norm^(p-1): per element abs, pow, sign, 2 multiplies = 5 I, per output norm^(p-1) and
      dy divided by it = 2 N.
    """
    if p == 2:
        return OpCost(0, 2 * i, 2 * i)
    if p == 1:
        return OpCost(0, 2 * i - n, 2 * i)
    if math.isinf(p):
        return OpCost(0, 2 * i - n, 2 * n)
    if p == 0:
        return OpCost(0, 2 * i - n, 0)
    return OpCost(0, 3 * i, 5 * i + 2 * n)


def _order(a: OpArgs) -> float:
    """The vector norm's p, from any of torch's spellings; a matrix norm raises ValueError."""
    kind, x = a.info.op_kind, a.first_input()
    if kind == "linalg_vector_norm":
        p: Any = a.arg(1, "ord", 2)
    elif kind == "norm":  # torch.norm, Tensor.norm: p = 'fro' (the 2-norm of the elements)
        p = a.arg(1, "p", "fro")
        p = 2 if p == "fro" else p
    else:  # linalg_norm: no ord is the 2-norm of the elements; an ord over two dims a matrix's
        p, dim = a.arg(1, "ord"), a.arg(2, "dim")
        vector = isinstance(dim, int) or (dim is None and len(x.shape) == 1)
        vector = vector or (isinstance(dim, list | tuple) and len(dim) == 1)
        p = 2 if p is None or p == "fro" else p if vector else None
    if not isinstance(p, int | float):
        raise ValueError(f"counted for vector norms, not ord {p!r} over a matrix")
    return float(p)


def _vector_norm(a: OpArgs) -> OpCost:
    return _p_norm(a.first_input().numel, a.n_out, _order(a))


COST_RULES.add("linalg_vector_norm", _vector_norm, aliases=("norm", "linalg_norm"))


def _normalize(a: OpArgs) -> OpCost:
    # F.normalize: x / max(||x||_p, eps) along dim, R rows of D: the p-norm of the rows,
    # max(norm, eps) R, divide N. p = 2: fwd = 2 N + R + N = 3 N + R; p = 1: 2 N - R + R + N
    # = 3 N. bwd: dx = (dy - g sum(dy y)) / norm, g = y for p = 2 (multiply D, sum D - 1,
    # multiply D, subtract D, divide D: 5 N - R) and sign(x) for p = 1 (+ N: 6 N - R).
    p = float(a.arg(1, "p", 2.0))
    if p not in (1.0, 2.0):
        raise ValueError("counted for p = 1 and 2")
    x, n = a.first_input(), a.n_out
    rows = n // x.shape[a.arg(2, "dim", 1)]
    norm = _p_norm(n, rows, p)
    return OpCost(0, norm.flops + rows + n, 5 * n - rows + n * (p == 1.0))


COST_RULES.add("normalize", _normalize)

# --- other reductions and scans ---------------------------------------------------------------


def _nan_reduce(a: OpArgs) -> OpCost:
    # nansum: a NaN test and select per element (1, as relu's) I, I - N adds: fwd = 2 I - N;
    # bwd: dy masked where x is NaN = I. nanmean: also the non-NaN count (I - N adds) and a
    # divide per output: fwd = 3 I - N; bwd: dy / count N, masked I = I + N.
    i, n = a.first_input().numel, a.n_out
    if a.info.op_kind == "nansum":
        return OpCost(0, 2 * i - n, i)
    return OpCost(0, 3 * i - n, i + n)


COST_RULES.add("nansum", _nan_reduce, aliases=("nanmean",))


def _var_std_mean(a: OpArgs) -> OpCost:
    # var_mean, std_mean: var's (std's) arithmetic, whose mean is the one returned
    # (cost_rules_ops: fwd = 4 I, + N sqrt for std); bwd: var's 3 I (+ 2 N for std) and the
    # mean's gradient, dy / D per output (N) added into dx (I).
    i, n = a.first_input().numel, a.n_out
    std = a.info.op_kind == "std_mean"
    return OpCost(0, 4 * i + n * std, 4 * i + n + 2 * n * std)


COST_RULES.add("var_mean", _var_std_mean, aliases=("std_mean",))


def _aminmax(a: OpArgs) -> OpCost:
    # The min and the max of D elements per output: 2 (I - N) comparisons; bwd: each dy routed
    # to its argmin or argmax = 2 N.
    i, n = a.first_input().numel, a.n_out
    return OpCost(0, 2 * (i - n), 2 * n)


COST_RULES.add("aminmax", _aminmax)


def _logical_reduce(a: OpArgs) -> OpCost:
    # all, any: I - N ANDs (ORs); count_nonzero: x != 0 I and I - N adds = 2 I - N. Boolean
    # or integer outputs: no gradient.
    i, n = a.first_input().numel, a.n_out
    return OpCost(0, i - n + i * (a.info.op_kind == "count_nonzero"), 0)


COST_RULES.add("all", _logical_reduce, aliases=("any", "count_nonzero"))


def _scan(a: OpArgs) -> OpCost:
    # Along a dim of D, R = N / D rows. cumprod: N - R multiplies; bwd: dx = the reversed
    # prefix sums of dy y, divided by x: multiply N, N - R adds, divide N = 3 N - R.
    # cummax, cummin: N - R comparisons; bwd: dy scatter-added to the indices = N.
    x, n = a.first_input(), a.n_out
    d = x.shape[a.arg(1, "dim")] if x.shape else 1
    steps = n - n // max(d, 1)
    if a.info.op_kind == "cumprod":
        return OpCost(0, steps, 3 * n - n // max(d, 1))
    return OpCost(0, steps, n)


COST_RULES.add("cumprod", _scan, aliases=("cummax", "cummin"))


def _logcumsumexp(a: OpArgs) -> OpCost:
    # Running log(exp(s) + exp(x)) along a dim, R rows: N - R steps of logaddexp's 8
    # (cost_rules_math); bwd: dx = exp(x) * reversed prefix sums of dy exp(-y): exp and
    # multiply (2 N), N - R adds, exp and multiply (2 N) = 5 N - R.
    x, n = a.first_input(), a.n_out
    rows = n // max(x.shape[a.arg(1, "dim")] if x.shape else 1, 1)
    return OpCost(0, 8 * (n - rows), 5 * n - rows)


COST_RULES.add("logcumsumexp", _logcumsumexp)


def _histc(a: OpArgs) -> OpCost:
    # I values into B bins: range tests (2), the bin (subtract, multiply, floor: 3) and its
    # count's add (1) = 6 I; with min = max (the default 0, 0) the data's min and max first,
    # 2 (I - 1) comparisons. Counts: no gradient.
    i = a.first_input().numel
    lo, hi = a.arg(2, "min", 0), a.arg(3, "max", 0)
    return OpCost(0, 6 * i + 2 * (i - 1) * (lo == hi), 0)


COST_RULES.add("histc", _histc)


def _index_put(a: OpArgs) -> OpCost:
    # x.index_put(indices, values, accumulate): writes the values at the indices, free; with
    # accumulate=True one add per value element. bwd: dy to x (masked or passed) and to the
    # values (a gather): free.
    values = a.tensor_arg(2, "values")
    adds = values.numel if values is not None and a.arg(3, "accumulate", False) else 0
    return OpCost(0, adds, 0)


COST_RULES.add("index_put", _index_put, aliases=("index_put_",))


def _scatter(a: OpArgs) -> OpCost:
    # scatter(dim, index, src) writes S = index's elements, free; with reduce ('add',
    # 'multiply') one op per written element. scatter_reduce(dim, index, src, reduce): 'sum',
    # 'prod', 'amax', 'amin' one op per element (S), 'mean' and a count and divide per
    # output (+ 2 N). bwd: dy to src is a gather, free; 'prod' dy y / x (2 S), 'amax'/'amin'
    # dy routed to the winners (S), 'mean' dy / count (N).
    index = a.tensor_arg(2, "index")
    if index is None:
        raise ValueError("expected a traced index")
    s, n = index.numel, a.n_out
    reduce = a.arg(4, "reduce") if a.info.op_kind.startswith("scatter_reduce") else None
    reduce = a.node.kwargs.get("reduce") if reduce is None else reduce
    if reduce is None:
        return OpCost()
    if reduce == "mean":
        return OpCost(0, s + 2 * n, n)
    bwd = {"prod": 2 * s, "multiply": 2 * s, "amax": s, "amin": s}.get(str(reduce), 0)
    return OpCost(0, s, bwd)


for _k in ("scatter", "scatter_", "scatter_reduce", "scatter_reduce_"):
    COST_RULES.add(_k, _scatter)


def _dist(a: OpArgs) -> OpCost:
    # torch.dist(x, y, p): the p-norm of x - y over all I elements (broadcast): I subtracts and
    # the norm's rule above (one output); bwd: the norm's, and its negation for y (I).
    p, x, y = a.arg(2, "p", 2), a.tensor_arg(0, "input"), a.tensor_arg(1, "other")
    if x is None or y is None or not isinstance(p, int | float):
        raise ValueError("expected two traced tensors and a number p")
    rank = max(len(x.shape), len(y.shape))
    dims = [(1,) * (rank - len(t.shape)) + t.shape for t in (x, y)]
    i = math.prod(max(d) for d in zip(*dims, strict=True))  # the broadcast shape's elements
    norm = _p_norm(i, 1, float(p))
    return OpCost(0, i + norm.flops, norm.flops_backward + i)


COST_RULES.add("dist", _dist)


def _renorm(a: OpArgs) -> OpCost:
    # x.renorm(p, dim, maxnorm): each of the S slices along dim (I / S elements) rescaled to a
    # p-norm of at most maxnorm: the slices' p-norms (the rule above, I elements to S), then
    # per slice a comparison and maxnorm / (norm + eps) (3 S), all elements times it (I).
    # bwd: dy times the factor (I), the slice's sum of dy x (2 I - S), x times the norm's
    # derivative coefficient (per slice 4 S: power, divides, times maxnorm) and subtracted
    # (2 I), masked where the slice was not rescaled (I): 6 I - S + 4 S.
    x, p = a.first_input(), a.arg(1, "p")
    if not isinstance(p, int | float):
        raise ValueError("expected a number p")
    i, s = x.numel, x.shape[a.arg(2, "dim")]
    norm = _p_norm(i, s, float(p))
    return OpCost(0, norm.flops + 3 * s + i, 6 * i + 3 * s)


COST_RULES.add("renorm", _renorm)


def _diff(a: OpArgs) -> OpCost:
    # First differences (n = 1): N subtractions; bwd: each dy added into one input and
    # subtracted from its neighbour = 2 N. Higher n repeats it on shrinking lengths: uncounted.
    if a.arg(1, "n", 1) != 1:
        raise ValueError("counted for n = 1")
    return OpCost(0, a.n_out, 2 * a.n_out)


COST_RULES.add("diff", _diff)


def _trace(a: OpArgs) -> OpCost:
    # The diagonal of an (M, K) matrix summed: min(M, K) - 1 adds; bwd: dy written on the
    # diagonal, free.
    x = a.first_input()
    return OpCost(0, max(min(x.shape) - 1, 0), 0)


COST_RULES.add("trace", _trace)

# --- fold (col2im) ---------------------------------------------------------------------------


def _pair(v: Any) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _fold(a: OpArgs) -> OpCost:
    # nn.Fold / F.fold sums sliding blocks into an image of B C channels: the blocks' values
    # that land inside it (padding drops the rest) are added per output position, the first
    # a copy: fwd = landed - covered positions, per channel, as sum's I - N. Per spatial dim
    # (size O, kernel k, dilation d, padding p, stride s) block l's element j lands at
    # l s - p + j d; the two dims are independent, so landed and covered are products.
    # bwd: unfold (im2col) of dy, a copy: free.
    m = a.module
    names = ("output_size", "kernel_size", "dilation", "padding", "stride")
    if m is not None:
        vals = [getattr(m, k) for k in names]
    else:
        vals = [
            a.arg(i, k, d)
            for i, (k, d) in enumerate(zip(names, (None, None, 1, 0, 1), strict=True), 1)
        ]
    size, k, dil, pad, stride = (_pair(v) for v in vals)
    landed = covered = 1
    for o, kk, d, p, s in zip(size, k, dil, pad, stride, strict=True):
        blocks = (o + 2 * p - d * (kk - 1) - 1) // s + 1
        hits = [0] * o
        for block in range(blocks):
            for j in range(kk):
                at = block * s - p + j * d
                if 0 <= at < o:
                    hits[at] += 1
        landed, covered = landed * sum(hits), covered * sum(h > 0 for h in hits)
    channels = a.n_out // (size[0] * size[1])
    return OpCost(0, channels * (landed - covered), 0)


COST_RULES.add("fold", _fold)
