"""Cost rules of the loss functions a model may compute in its own forward (an autoencoder
returning its reconstruction error, a model returning its training loss), in
:mod:`~quantsearch.passes.analysis.cost_rules`' convention (read it first). Registered into
:data:`~quantsearch.passes.analysis.cost_rules.COST_RULES` on import (the package does).

I is the input's (the prediction's) elements. A ``sum`` or ``mean`` reduction adds I: I - 1
adds and the mean's one divide. In the backward the incoming gradient dy (divided by I once
for a mean) multiplies each element: 1 FLOP per element, counted in each rule. None of these
has MACs: FlopCounterMode counts them as 0.
"""

from __future__ import annotations

from quantsearch.passes.analysis.cost_rules import COST_RULES, CostRule, OpArgs, OpCost

__all__: list[str] = []

# op kind -> the position of ``reduction`` in the functional form's arguments
_REDUCTION_AT = {
    "mse_loss": 4,
    "l1_loss": 4,
    "smooth_l1_loss": 4,
    "huber_loss": 2,
    "binary_cross_entropy_with_logits": 5,
    "cross_entropy": 6,
    "nll_loss": 6,
    "kl_div": 4,
    "cosine_embedding_loss": 6,
    "binary_cross_entropy": 5,
    "soft_margin_loss": 4,
    "hinge_embedding_loss": 5,
    "margin_ranking_loss": 6,
    "gaussian_nll_loss": 5,
    "poisson_nll_loss": 7,
    "multilabel_soft_margin_loss": 5,
    "triplet_margin_loss": 8,
    "multi_margin_loss": 7,
}
# the module forms (nn.MSELoss ...) and their functions
_MODULES = {
    "mseloss": "mse_loss",
    "l1loss": "l1_loss",
    "smoothl1loss": "smooth_l1_loss",
    "huberloss": "huber_loss",
    "bcewithlogitsloss": "binary_cross_entropy_with_logits",
    "crossentropyloss": "cross_entropy",
    "nllloss": "nll_loss",
    "kldivloss": "kl_div",
    "cosineembeddingloss": "cosine_embedding_loss",
    "bceloss": "binary_cross_entropy",
    "softmarginloss": "soft_margin_loss",
    "hingeembeddingloss": "hinge_embedding_loss",
    "marginrankingloss": "margin_ranking_loss",
    "gaussiannllloss": "gaussian_nll_loss",
    "poissonnllloss": "poisson_nll_loss",
    "multilabelsoftmarginloss": "multilabel_soft_margin_loss",
    "tripletmarginloss": "triplet_margin_loss",
    "multimarginloss": "multi_margin_loss",
}


def _reduced(a: OpArgs, kind: str) -> bool:
    """Whether the loss sums or averages its elements (``reduction`` not ``"none"``)."""
    if a.module is not None:
        return str(a.module.reduction) != "none"
    return str(a.arg(_REDUCTION_AT[kind], "reduction", "mean")) != "none"


def _unweighted(a: OpArgs, names: dict[str, int]) -> None:
    """Refuse class weights, ``pos_weight`` and label smoothing (``names``: their positions in
    the functional form): their arithmetic is not in these formulas."""
    for name, at in names.items():
        given = getattr(a.module, name, None) if a.module is not None else a.arg(at, name)
        if given is not None and not (isinstance(given, int | float) and given == 0):
            raise ValueError(f"counted without {name}")


def _pointwise(fwd: int, bwd: int) -> CostRule:
    def rule(a: OpArgs) -> OpCost:
        kind = _MODULES.get(a.info.op_kind, a.info.op_kind)
        _unweighted(a, {"weight": 2, "pos_weight": 6} if "entropy" in kind else {})
        i = a.first_input().numel
        return OpCost(0, (fwd + _reduced(a, kind)) * i, bwd * i)

    return rule


# Per input element (forward before the reduction, backward):
# mse_loss: x - y, square = 2; dx = 2 (x - y) dy: subtract, 2 multiplies = 3.
# l1_loss: x - y, abs = 2; dx = sign(x - y) dy: subtract, sign, multiply = 3.
# smooth_l1_loss, huber_loss: d = x - y, |d|, |d| < beta, 0.5 d^2 / beta (square, multiply),
#   |d| - 0.5 beta, select = 7; dx: d, compare, d / beta, sign, select, times dy = 6.
# binary_cross_entropy_with_logits, computed stably as (1 - y) x + m + log(exp(-m) +
#   exp(-x - m)), m = max(-x, 0): 1 - y, multiply, negate, max, 2 exps, 2 subtracts, add,
#   log, 2 adds = 12; dx = (sigmoid(x) - y) dy: 4 + 1 + 1 = 6.
# binary_cross_entropy: -(t log x + (1 - t) log(1 - x)), each log clamped at -100: log,
#   clamp, 1 - x, log, clamp, t times, 1 - t, times, add, negate = 10; dx = dy (x - t) /
#   max(x (1 - x), eps): subtract, 1 - x, multiply, max, divide, times dy = 6.
# soft_margin_loss: log(1 + exp(-y x)): multiply, negate, exp, add, log = 5; dx = -y dy
#   exp(-y x) / (1 + exp(-y x)): y x and its negation recomputed, exp, add, divide, times -y,
#   times dy = 7.
# hinge_embedding_loss: (margin - x) clamped at 0 where y != 1, plus x where y != -1:
#   subtract, clamp, 2 comparisons, 2 selects, add = 7; dx: dy masked for each branch (2),
#   the clamp's mask (1), the two subtracted (1) = 4.
# margin_ranking_loss (per element of x1): max(0, -y (x1 - x2) + margin): subtract, multiply,
#   negate, add, max = 5; d(x1) = -y dy where positive: multiply, mask = 2; d(x2) its
#   negation = 1.
_POINTWISE = {
    "mse_loss": (2, 3),
    "l1_loss": (2, 3),
    "smooth_l1_loss": (7, 6),
    "huber_loss": (7, 6),
    "binary_cross_entropy_with_logits": (12, 6),
    "binary_cross_entropy": (10, 6),
    "soft_margin_loss": (5, 7),
    "hinge_embedding_loss": (7, 4),
    "margin_ranking_loss": (5, 3),
}
for _k, (_f, _b) in _POINTWISE.items():
    COST_RULES.add(_k, _pointwise(_f, _b))


def _cross_entropy(a: OpArgs) -> OpCost:
    # Class-index targets, logits (N, C, ...) of I elements, R = I / C rows (one per target):
    # log_softmax along C 5 I (cost_rules_more's), the target's entry picked (free), negated R
    # (+ R reduced). bwd: dx = (softmax(x) - onehot) dy: exp of the kept log_softmax, times
    # dy = 2 I, minus 1 at each target = R.
    # Probability targets (t shaped as x, R = I / C rows): log_softmax 5 I, times t I, summed
    # over C (I - R), negated R: 7 I (+ R reduced). bwd: g = -t dy I, then log_softmax's
    # g - exp(y) sum(g): sum I - R, exp, multiply, subtract 3 I = 5 I - R.
    _unweighted(a, {"weight": 2, "label_smoothing": 7})
    x, t = a.first_input(), a.tensor_arg(1, "target")
    if t is None:
        raise ValueError("counted for a traced target")
    i, reduced = x.numel, _reduced(a, "cross_entropy")
    if t.shape == x.shape:
        rows = i // (x.shape[1] if len(x.shape) > 1 else x.shape[0])
        return OpCost(0, 7 * i + rows * reduced, 5 * i - rows)
    rows = max(t.numel, 1)
    return OpCost(0, 5 * i + rows + rows * reduced, 2 * i + rows)


def _nll(a: OpArgs) -> OpCost:
    # Log-probabilities (N, C, ...), R targets: each one's entry picked (free), negated R
    # (+ R reduced); bwd: -dy into R entries = R.
    _unweighted(a, {"weight": 2})
    t = a.tensor_arg(1, "target")
    if t is None:
        raise ValueError("counted for a traced target")
    rows = max(t.numel, 1)
    return OpCost(0, rows + rows * _reduced(a, "nll_loss"), rows)


def _kl_div(a: OpArgs) -> OpCost:
    # Log-probabilities x and probabilities t, I elements: t (log t - x), as torch computes it
    # xlogy(t, t) - t x: compare, log, multiply, select, multiply, subtract = 6 (a log_target
    # t: exp(t) (t - x): exp, subtract, multiply = 3), + I reduced (any of sum, mean,
    # batchmean). bwd: dx = -t dy, dy negated once: 1 (log_target: -exp(t) dy: 2).
    log_target = a.module.log_target if a.module is not None else a.arg(5, "log_target", False)
    i = a.first_input().numel
    fwd, bwd = (3, 2) if log_target else (6, 1)
    return OpCost(0, (fwd + _reduced(a, "kl_div")) * i, bwd * i)


def _cosine_embedding(a: OpArgs) -> OpCost:
    # x1, x2 of R rows of D features and targets y = 1 or -1, as torch computes it: the
    # dot products x1 x2, x1 x1, x2 x2 (3 (2 D - 1)), + eps twice, their product, sqrt,
    # divide (5) = cos; 1 - cos, cos - margin, clamp at 0, y == 1, y == -1, two selects and
    # their sum (8): 6 D + 10 per row (+ R reduced). bwd: d(cos) = dy masked by y and by
    # cos > margin, the two added (3), then cosine_similarity's 6 D + 4 (cost_rules_select):
    # R (6 D + 7).
    x1 = a.first_input()
    d = x1.shape[-1] if x1.shape else 1
    rows = x1.numel // max(d, 1)
    fwd = rows * (6 * d + 10) + rows * _reduced(a, "cosine_embedding_loss")
    return OpCost(0, fwd, rows * (6 * d + 7))


def _option(a: OpArgs, at: int, name: str, default: object) -> object:
    """A loss's option from its module's attribute or the function's argument."""
    return getattr(a.module, name) if a.module is not None else a.arg(at, name, default)


def _gaussian_nll(a: OpArgs) -> OpCost:
    # 0.5 (log(max(var, eps)) + (x - t)^2 / max(var, eps)), I elements of x: clamp, log,
    # subtract, square, divide, add, halve = 7 (full: + 0.5 log(2 pi), 8), + I reduced.
    # bwd: dx = dy (x - t) / var: 3; d(var) = dy (1 / var - (x - t)^2 / var^2) / 2: (x - t)^2
    # recomputed 2, divide, reciprocal, subtract, halve, times dy = 7: 10 I.
    i, full = a.first_input().numel, bool(_option(a, 3, "full", False))
    return OpCost(0, (7 + full + _reduced(a, "gaussian_nll_loss")) * i, 10 * i)


def _poisson_nll(a: OpArgs) -> OpCost:
    # log_input: exp(x) - t x = 3, dx = dy (exp(x) - t) = 3; else x - t log(x + eps): add, log,
    # multiply, subtract = 4, dx = dy (1 - t / (x + eps)) = 4; + I reduced. full=True adds
    # Stirling's term of the target (not in these formulas): uncounted.
    if _option(a, 3, "full", False):
        raise ValueError("counted without full")
    i, per = a.first_input().numel, 3 if _option(a, 2, "log_input", True) else 4
    return OpCost(0, (per + _reduced(a, "poisson_nll_loss")) * i, per * i)


def _multilabel_soft_margin(a: OpArgs) -> OpCost:
    # Logits (R, C), I elements: -(y logsigmoid(x) + (1 - y) logsigmoid(-x)): 2 log-sigmoids
    # (4 each), negate x, y times, 1 - y, times, add, negate = 13, averaged over C per row (I:
    # adds and a divide per row), + R reduced over the rows. bwd: dx = dy / C (sigmoid(x) - y):
    # sigmoid 4, subtract, multiply = 6 (dy / C once per row, not counted).
    _unweighted(a, {"weight": 2})
    x = a.first_input()
    rows = x.numel // max(x.shape[-1] if x.shape else 1, 1)
    return OpCost(0, 14 * x.numel + rows * _reduced(a, "multilabel_soft_margin_loss"), 6 * x.numel)


def _triplet_margin(a: OpArgs) -> OpCost:
    # Anchor, positive, negative of R rows of D: two pairwise distances (p = 2, 4 D per row,
    # cost_rules_select's rule), d(a, p) - d(a, n) + margin clamped at 0 (3 per row), + R
    # reduced. bwd: dy masked (1 per row), then the distances' 5 D + 1 each: R (10 D + 3).
    # swap=True (a third distance, a min) is not in these formulas: uncounted.
    p = _option(a, 4, "p", 2.0)
    if not isinstance(p, int | float) or float(p) != 2.0 or _option(a, 6, "swap", False):
        raise ValueError("counted for p = 2 without swap")
    x = a.first_input()
    d = x.shape[-1] if x.shape else 1
    rows = x.numel // max(d, 1)
    fwd = rows * (8 * d + 3) + rows * _reduced(a, "triplet_margin_loss")
    return OpCost(0, fwd, rows * (10 * d + 3))


def _multi_margin(a: OpArgs) -> OpCost:
    # Scores (R, C), I elements, class-index targets: per element margin - x[y] + x[i] (2),
    # clamped at 0 (1), squared for p = 2 (1), the target's own term dropped (1) = 4 (5); per
    # row summed and divided by C (I); + R reduced. bwd: per element the hinge's mask times
    # dy / C (2; p = 2: times 2 h, + 2), and x[y] minus its row's sum (I - R): 3 I - R
    # (5 I - R).
    _unweighted(a, {"weight": 4})
    i, x = a.first_input().numel, a.first_input()
    rows, sq = i // max(x.shape[-1] if x.shape else 1, 1), int(_option(a, 2, "p", 1) == 2)
    fwd = (5 + sq) * i + rows * _reduced(a, "multi_margin_loss")
    return OpCost(0, fwd, (3 + 2 * sq) * i - rows)


COST_RULES.add("multi_margin_loss", _multi_margin)
COST_RULES.add("gaussian_nll_loss", _gaussian_nll)
COST_RULES.add("poisson_nll_loss", _poisson_nll)
COST_RULES.add("multilabel_soft_margin_loss", _multilabel_soft_margin)
COST_RULES.add("triplet_margin_loss", _triplet_margin)
COST_RULES.add("cross_entropy", _cross_entropy)
COST_RULES.add("nll_loss", _nll)
COST_RULES.add("kl_div", _kl_div)
COST_RULES.add("cosine_embedding_loss", _cosine_embedding)
for _module, _function in _MODULES.items():
    COST_RULES.add(_module, COST_RULES.get(_function))
