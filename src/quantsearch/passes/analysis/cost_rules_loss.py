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
_POINTWISE = {
    "mse_loss": (2, 3),
    "l1_loss": (2, 3),
    "smooth_l1_loss": (7, 6),
    "huber_loss": (7, 6),
    "binary_cross_entropy_with_logits": (12, 6),
}
for _k, (_f, _b) in _POINTWISE.items():
    COST_RULES.add(_k, _pointwise(_f, _b))


def _cross_entropy(a: OpArgs) -> OpCost:
    # Class-index targets, logits (N, C, ...) of I elements, R = I / C rows (one per target):
    # log_softmax along C 5 I (cost_rules_more's), the target's entry picked (free), negated R
    # (+ R reduced). bwd: dx = (softmax(x) - onehot) dy: exp of the kept log_softmax, times
    # dy = 2 I, minus 1 at each target = R.
    _unweighted(a, {"weight": 2, "label_smoothing": 7})
    x, t = a.first_input(), a.tensor_arg(1, "target")
    if t is None or t.shape == x.shape:
        raise ValueError("counted for class-index targets")
    i, rows = x.numel, max(t.numel, 1)
    return OpCost(0, 5 * i + rows + rows * _reduced(a, "cross_entropy"), 2 * i + rows)


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


COST_RULES.add("cross_entropy", _cross_entropy)
COST_RULES.add("nll_loss", _nll)
COST_RULES.add("kl_div", _kl_div)
COST_RULES.add("cosine_embedding_loss", _cosine_embedding)
for _module, _function in _MODULES.items():
    COST_RULES.add(_module, COST_RULES.get(_function))
