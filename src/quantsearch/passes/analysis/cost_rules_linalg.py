"""Cost rules for the products of vectors and matrices besides ``matmul``/``mm``/``bmm``, in
:mod:`~quantsearch.passes.analysis.cost_rules`' convention (read it first): ``einsum``,
``dot``, ``vdot``, ``mv``, ``addmv``, ``addr``, ``inner``, ``tensordot``, ``addbmm``,
``linalg.matmul``, ``linalg.multi_dot``, ``F.affine_grid`` and ``cov``/``corrcoef``.
Registered into :data:`~quantsearch.passes.analysis.cost_rules.COST_RULES` on import (the
package does).

Each is a MAC layer as ``matmul`` is: MACs = output elements x the contracted length, fwd =
2 x MACs, bwd = 4 x MACs (one MAC in the gradient of each operand per forward MAC, as torch
computes them with the same products; ``affine_grid``'s 2 x: its other operand is made from
a shape, no input), BitOPs = MACs x the bits of each operand at the format applied to it;
the elementwise work around the product (``addmm``'s add, ``cov``'s centring) is written
next to each rule.

Cross-check: ``torch.utils.flop_counter.FlopCounterMode`` agrees on the MACs of ``einsum``,
``inner``, ``tensordot``, ``linalg.matmul``, ``multi_dot`` and ``cov`` forward and backward,
and on ``addbmm``'s and ``affine_grid``'s backward; it counts ``dot``, ``vdot``, ``mv``,
``addmv``, ``addr``, and ``addbmm``'s and ``affine_grid``'s forward as 0, so those are
counted by hand in ``tests/passes/analysis/test_flops_linalg.py``.
"""

from __future__ import annotations

import math
import string

from torch import fx

from quantsearch.graph import TensorMeta, info
from quantsearch.passes.analysis.cost_rules import COST_RULES, OpArgs, OpCost
from quantsearch.passes.analysis.tensors import arg_bits, dtype_bits

__all__: list[str] = []


def _operands(a: OpArgs, first: int, names: tuple[str, str]) -> tuple[TensorMeta, TensorMeta]:
    x, y = a.tensor_arg(first, names[0]), a.tensor_arg(first + 1, names[1])
    if x is None or y is None:
        raise ValueError("expected two tensor operands")
    return x, y


def _contraction(a: OpArgs, k: int, first: int = 0) -> OpCost:
    """MACs = N x ``k`` over the operands at ``first`` and ``first + 1``: fwd = 2 MACs,
    bwd = 4 MACs."""
    macs = a.n_out * k
    x_bits, y_bits = a.operand_bits(first, first + 1)
    return OpCost(macs, 2 * macs, 4 * macs, macs * x_bits * y_bits)


def _einsum_terms(eq: str, shapes: list[tuple[int, ...]]) -> tuple[list[str], str]:
    """The operands' letters and the output's, each '...' spelled out in letters the equation
    does not use (right-aligned across operands, as broadcasting aligns them)."""
    lhs, arrow, out = eq.replace(" ", "").partition("->")
    terms = lhs.split(",")
    spare = [c for c in string.ascii_letters if c not in eq]
    ell = [len(s) - len(t) + 3 if "..." in t else 0 for t, s in zip(terms, shapes, strict=True)]
    dots = spare[: max(ell, default=0)]
    terms = [
        t.replace("...", "".join(dots[len(dots) - k :])) for t, k in zip(terms, ell, strict=True)
    ]
    joined = "".join(terms)
    if arrow:
        return terms, out.replace("...", "".join(dots))
    once = sorted(c for c in set(joined) - set(dots) if joined.count(c) == 1)
    return terms, "".join(dots) + "".join(once)  # torch's implicit output


def _einsum(a: OpArgs) -> OpCost:
    # As torch runs it (one or two operands; '...' spelled out): a letter repeated in an
    # operand takes its diagonal (free), a letter in one operand only and not in the output
    # is summed out of it first (elements before - after adds, as sum's); then one batched
    # matmul over the letters left, MACs = the product of their sizes (a letter of size 1 in
    # one operand at its broadcast size): fwd = 2 MACs, bwd = 4 MACs. No letter contracted: N
    # multiplies (fwd N, bwd 2 N). One operand: the sums alone, bwd free (a broadcast).
    # Three or more operands are listed uncounted: their contraction order is torch's choice
    # (left to right, or opt_einsum's path where that is installed).
    eq, args = a.arg(0, "equation"), list(a.node.args[1:])
    args = list(args[0]) if len(args) == 1 and isinstance(args[0], list | tuple) else args
    ops = [o for o in args if isinstance(o, fx.Node)]
    if not isinstance(eq, str) or len(ops) != len(args) or len(ops) not in (1, 2):
        raise ValueError("counted for one or two traced operands")
    shapes = [info(o).outputs[0].shape for o in ops]
    terms, out = _einsum_terms(eq, shapes)
    sizes: dict[str, int] = {}  # a letter of size 1 in one operand broadcasts to the other's
    kept, adds = [], 0
    for i, (t, shape) in enumerate(zip(terms, shapes, strict=True)):
        own = dict(zip(t, shape, strict=True))
        for c, d in own.items():
            sizes[c] = max(sizes.get(c, 1), d)
        keep = set(t) & (set(out) | set("".join(terms[:i] + terms[i + 1 :])))
        kept.append(keep)
        adds += math.prod(own.values()) - math.prod(own[c] for c in keep)
    if len(ops) == 1:
        return OpCost(0, adds, 0)
    if not (kept[0] & kept[1]) - set(out):
        return OpCost(0, a.n_out + adds, 2 * a.n_out)
    macs = math.prod(sizes[c] for c in kept[0] | kept[1])
    x_bits, y_bits = (arg_bits(a.node, o) for o in ops)
    return OpCost(macs, 2 * macs + adds, 4 * macs, macs * x_bits * y_bits)


COST_RULES.add("einsum", _einsum)


def _dot(a: OpArgs) -> OpCost:
    # dot, vdot: u . v of K elements, one output: MACs = K.
    # mv: A (M, K) times v (K): MACs = M K.
    # inner: contracts the last dim K of both: MACs = N K (a 0-d operand: N multiplies).
    x, y = _operands(a, 0, ("input", "vec" if a.info.op_kind == "mv" else "other"))
    if not x.shape or not y.shape:
        return OpCost(0, a.n_out, 2 * a.n_out)
    return _contraction(a, x.shape[-1])


for _k in ("dot", "vdot", "mv", "inner"):
    COST_RULES.add(_k, _dot)


def _tensordot(a: OpArgs) -> OpCost:
    # torch reshapes both to matrices and runs one mm contracting K = the product of the
    # contracted dims' sizes: MACs = N K. dims = 0 is an outer product run as an mm with
    # K = 1 (N MACs, as FlopCounterMode counts it).
    x, _ = _operands(a, 0, ("a", "b"))
    dims = a.arg(2, "dims", 2)
    if isinstance(dims, int):
        contracted = list(range(len(x.shape) - dims, len(x.shape)))
    else:
        first = dims[0]
        contracted = [first] if isinstance(first, int) else list(first)
    return _contraction(a, math.prod(x.shape[d] for d in contracted))


COST_RULES.add("tensordot", _tensordot)


def _add_product(a: OpArgs) -> OpCost:
    # beta * C + alpha * P (as addmm): the product's MACs, + N adding C forward, + N -
    # numel(C) summing dy back to C's broadcast shape backward; alpha or beta other than 1
    # as OpArgs.scalings says.
    # addmv: P = A (M, K) v, MACs = N K.  addbmm: P = sum over b of A_b (n, K) B_b: each output
    # is b K products, MACs = N b K.  addr: P = u (x) v, N multiplies and no MACs; bwd as
    # outer's (du = dy v and dv = dy^T u: 4 N - M - K).
    c = a.tensor_arg(0, "input")
    names = {"addmv": ("mat", "vec"), "addbmm": ("batch1", "batch2"), "addr": ("vec1", "vec2")}
    kind = a.info.op_kind.removesuffix("_")  # addmv_ ... in place: the same arithmetic
    x, y = _operands(a, 1, names[kind])
    n = a.n_out
    reduce_c = n - c.numel if c is not None else 0
    fwd, bwd = a.scalings(n, reduce_c)
    if kind == "addr":
        return OpCost(0, 2 * n + fwd, 4 * n - x.numel - y.numel + reduce_c + bwd)
    k = x.shape[-1] * (x.shape[0] if kind == "addbmm" else 1)
    p = _contraction(a, k, first=1)
    return OpCost(p.macs, p.flops + n + fwd, p.flops_backward + reduce_c + bwd, p.bitops)


for _k in ("addmv", "addbmm", "addr"):
    COST_RULES.add(_k, _add_product, aliases=(f"{_k}_",))
COST_RULES.add("linalg_matmul", COST_RULES.get("matmul"))


def _multi_dot(a: OpArgs) -> OpCost:
    # A1 A2 ... An (a 1-d first operand a row, a 1-d last one a column): torch multiplies them
    # in the order of fewest scalar multiplications (for n = 3 by comparing the two orders,
    # above by the textbook dynamic programme, CLRS 15.2), so MACs = that minimum.
    # fwd = 2 MACs, bwd = 4 MACs; BitOPs per product, an intermediate at the output's dtype.
    tensors = a.arg(0, "tensors")
    if not isinstance(tensors, list | tuple) or not all(isinstance(t, fx.Node) for t in tensors):
        raise ValueError("expected a list of traced tensors")
    shapes = [info(t).outputs[0].shape for t in tensors]
    rows, cols = (
        shapes[0][0] if len(shapes[0]) == 2 else 1,
        shapes[-1][-1] if len(shapes[-1]) == 2 else 1,
    )
    dims = [rows, *(s[-1] for s in shapes[:-1]), cols]
    bits = [arg_bits(a.node, t) for t in tensors]
    inner_bits = dtype_bits(a.out.dtype)
    n = len(tensors)
    best: dict[tuple[int, int], tuple[int, float]] = {(i, i): (0, 0.0) for i in range(n)}
    for length in range(2, n + 1):
        for i in range(n - length + 1):
            j = i + length - 1
            options = []
            for s in range(i, j):
                macs = best[i, s][0] + best[s + 1, j][0] + dims[i] * dims[s + 1] * dims[j + 1]
                left = bits[i] if s == i else inner_bits
                right = bits[j] if s + 1 == j else inner_bits
                step = dims[i] * dims[s + 1] * dims[j + 1] * left * right
                options.append((macs, best[i, s][1] + best[s + 1, j][1] + step))
            best[i, j] = min(options, key=lambda o: o[0])
    macs, bitops = best[0, n - 1]
    return OpCost(macs, 2 * macs, 4 * macs, bitops)


COST_RULES.add("linalg_multi_dot", _multi_dot)


def _affine_grid(a: OpArgs) -> OpCost:
    # F.affine_grid(theta (B, 2, 3) or (B, 3, 4), size): torch multiplies its base grid of
    # homogeneous coordinates (B, H W, K) by theta's transpose: every output coordinate is a
    # K-term dot product, MACs = N K. fwd = 2 MACs; bwd = 2 MACs (d theta; the base grid is
    # made from the size, no input). BitOPs: theta at its bits, the grid at the output dtype's.
    theta = a.tensor_arg(0, "theta")
    if theta is None:
        raise ValueError("expected a traced theta")
    macs = a.n_out * theta.shape[-1]
    (theta_bits,) = a.operand_bits(0)
    return OpCost(macs, 2 * macs, 2 * macs, macs * theta_bits * dtype_bits(a.out.dtype))


COST_RULES.add("affine_grid", _affine_grid)


def _cov(a: OpArgs) -> OpCost:
    # torch.cov(x (V, O)) (a 1-d x: V = 1): each variable's mean (V O adds and divides),
    # centred (V O), X Xc^T: V^2 O MACs, divided by O - correction (V^2): fwd = 2 MACs + 2 V O
    # + V^2. bwd = 4 MACs + V^2 (dy scaled) + the centring's: dXc less its row mean (V O
    # adds, V divides, V O subtracts). corrcoef also divides by the standard deviations: their
    # V square roots, 2 V^2 divides and a clamp to [-1, 1] (2 V^2): + V + 4 V^2; back the
    # two divides and the roots' derivative, + 3 V^2 + 2 V. Frequency or analytic weights add
    # arithmetic these formulas leave out: uncounted. BitOPs: the centred operands are the
    # node's own intermediates, at the input dtype's width.
    x = a.first_input()
    if a.arg(2, "fweights") is not None or a.arg(3, "aweights") is not None:
        raise ValueError("counted without fweights and aweights")
    v, o = (x.shape[0], x.shape[1]) if len(x.shape) == 2 else (1, x.numel)
    macs = v * v * o
    fwd, bwd = 2 * macs + 2 * v * o + v * v, 4 * macs + v * v + 2 * v * o + v
    if a.info.op_kind == "corrcoef":
        fwd, bwd = fwd + v + 4 * v * v, bwd + 3 * v * v + 2 * v
    return OpCost(macs, fwd, bwd, macs * dtype_bits(x.dtype) ** 2)


COST_RULES.add("cov", _cov, aliases=("corrcoef",))
