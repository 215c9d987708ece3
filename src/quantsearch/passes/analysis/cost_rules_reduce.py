"""Cost rules for norms and other reductions, in
:mod:`~quantsearch.passes.analysis.cost_rules`' convention (read it first): vector norms in
every form torch spells them (``torch.linalg.vector_norm``, ``torch.linalg.norm``,
``torch.norm``, ``Tensor.norm``) and ``F.normalize``. Registered into
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
