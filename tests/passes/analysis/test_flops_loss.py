"""The rules of cost_rules_loss: a loss computed in the model's forward (an autoencoder
returning its reconstruction error, a classifier returning its cross-entropy), counted by hand
from the formulas written next to each rule; FlopCounterMode (referee) counts no MACs in them,
and neither do these."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from quantsearch.graph import info, trace
from quantsearch.passes.analysis import compute_cost

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class Scored(nn.Module):
    """A Linear of 6 x 8 and ``loss`` of its output against a target made from the input."""

    def __init__(self, loss: Loss | nn.Module, classes: bool = False) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 5)
        self.loss = loss
        self.classes = classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.fc(x)
        target = x[:, :5].argmax(1) if self.classes else torch.sigmoid(x[:, :5])
        return self.loss(y, target)


def _soft_targets(y: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(y, F.one_hot(t, 5).float())


def _bce(y: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return F.binary_cross_entropy(torch.sigmoid(y), t)


def _ranking(y: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return F.margin_ranking_loss(y, t, torch.ones_like(t))


def _gaussian(y: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return F.gaussian_nll_loss(y, t, t + 0.5)


def _gaussian_full(y: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return F.gaussian_nll_loss(y, t, t + 0.5, full=True)


N_IN, R = 6 * 5, 6  # the prediction's elements; its rows (one class-index target each)
CASES: list[tuple[str, Loss | nn.Module, bool, tuple[int, int]]] = [
    ("mse_loss", F.mse_loss, False, (3 * N_IN, 3 * N_IN)),
    ("mseloss", nn.MSELoss(reduction="sum"), False, (3 * N_IN, 3 * N_IN)),
    ("mse_loss", lambda y, t: F.mse_loss(y, t, reduction="none"), False, (2 * N_IN, 3 * N_IN)),
    ("l1_loss", F.l1_loss, False, (3 * N_IN, 3 * N_IN)),
    ("smooth_l1_loss", F.smooth_l1_loss, False, (8 * N_IN, 6 * N_IN)),
    ("huberloss", nn.HuberLoss(delta=0.5), False, (8 * N_IN, 6 * N_IN)),
    ("binary_cross_entropy_with_logits", F.binary_cross_entropy_with_logits, False, (13 * N_IN, 6 * N_IN)),
    ("cross_entropy", F.cross_entropy, True, (5 * N_IN + 2 * R, 2 * N_IN + R)),
    ("crossentropyloss", nn.CrossEntropyLoss(reduction="none"), True, (5 * N_IN + R, 2 * N_IN + R)),
    ("nll_loss", lambda y, t: F.nll_loss(F.log_softmax(y, 1), t), True, (2 * R, R)),
    # probability targets: log_softmax 5 I, times t, summed over C, negated = 7 I, + R mean;
    # bwd 5 I - R
    ("cross_entropy", _soft_targets, True, (7 * N_IN + R, 5 * N_IN - R)),
    # per element 4 (5 for p = 2), per row summed and divided (I), + R mean; 3 I - R back
    ("multi_margin_loss", F.multi_margin_loss, True, (5 * N_IN + R, 3 * N_IN - R)),
    ("multimarginloss", nn.MultiMarginLoss(p=2, reduction="none"), True, (6 * N_IN, 5 * N_IN - R)),
    # kl_div: xlogy(t, t) - t x = 6 (+ 1 reduced); dx = -t dy 1; log_target: 3 (+ 1), 2
    ("kl_div", lambda y, t: F.kl_div(y, t, reduction="sum"), False, (7 * N_IN, N_IN)),
    ("kl_div", lambda y, t: F.kl_div(y, t, reduction="none"), False, (6 * N_IN, N_IN)),
    ("kldivloss", nn.KLDivLoss(reduction="sum", log_target=True), False, (4 * N_IN, 2 * N_IN)),
    # each per element as written next to its rule, + 1 reduced
    ("binary_cross_entropy", _bce, False, (11 * N_IN, 6 * N_IN)),
    ("soft_margin_loss", F.soft_margin_loss, False, (6 * N_IN, 7 * N_IN)),
    ("softmarginloss", nn.SoftMarginLoss(reduction="none"), False, (5 * N_IN, 7 * N_IN)),
    ("hinge_embedding_loss", F.hinge_embedding_loss, False, (8 * N_IN, 4 * N_IN)),
    ("hingeembeddingloss", nn.HingeEmbeddingLoss(reduction="none"), False, (7 * N_IN, 4 * N_IN)),
    ("margin_ranking_loss", _ranking, False, (6 * N_IN, 3 * N_IN)),
    ("gaussian_nll_loss", _gaussian, False, (8 * N_IN, 10 * N_IN)),
    ("gaussian_nll_loss", _gaussian_full, False, (9 * N_IN, 10 * N_IN)),
    ("poisson_nll_loss", F.poisson_nll_loss, False, (4 * N_IN, 3 * N_IN)),
    ("poissonnllloss", nn.PoissonNLLLoss(log_input=False, reduction="none"), False,
     (4 * N_IN, 4 * N_IN)),
    # averaged over the 5 classes per row (I), + R reduced over the rows
    ("multilabel_soft_margin_loss", F.multilabel_soft_margin_loss, False,
     (14 * N_IN + R, 6 * N_IN)),
    ("multilabelsoftmarginloss", nn.MultiLabelSoftMarginLoss(reduction="none"), False,
     (14 * N_IN, 6 * N_IN)),
]  # fmt: skip


@pytest.mark.parametrize(("kind", "loss", "classes", "want"), CASES)
def test_losses_in_the_forward_are_priced(
    kind: str, loss: Loss | nn.Module, classes: bool, want: tuple[int, int]
) -> None:
    """Each loss (function and module form, reduced or not) costs its formula's FLOPs forward
    and backward; nothing is uncounted, and the MACs are the Linear's alone, as
    FlopCounterMode's."""
    model = Scored(loss, classes).eval()
    x = torch.randn(6, 8)
    gm = trace(model, x)
    total = compute_cost(gm)
    assert total.uncounted == ()
    node = next(n for n in gm.graph.nodes if info(n).op_kind == kind)
    cost = info(node).cost
    assert (cost["macs"], cost["flops"], cost["flops_backward"]) == (0, *want)
    with FlopCounterMode(display=False) as fcm:
        model(x)
    assert 2 * total.macs == fcm.get_total_flops() == 2 * 6 * 8 * 5


@pytest.mark.parametrize(
    ("loss", "reason"),
    [
        (nn.CrossEntropyLoss(weight=torch.ones(5)), "counted without weight"),
        (nn.CrossEntropyLoss(label_smoothing=0.1), "counted without label_smoothing"),
        (lambda y, t: F.cross_entropy(y, t, None, label_smoothing=0.2), "without label_smoothing"),
        (lambda y, t: F.cross_entropy(y, F.one_hot(t, 5).float(), label_smoothing=0.1), "smooth"),
    ],
)
def test_losses_outside_the_formulas_are_listed_uncounted(
    loss: Loss | nn.Module, reason: str
) -> None:
    """Class weights and label smoothing add arithmetic the formulas do not hold: listed
    uncounted with the reason, never a silent count nor a crash."""
    gm = trace(Scored(loss, classes=True).eval(), torch.randn(6, 8))
    (uncounted,) = compute_cost(gm).uncounted
    assert reason in uncounted.reason


class PairScored(nn.Module):
    """``loss(fc(x), sigmoid(x[:, :5]), +-1 by the sign of x[:, 0])``: R = 6 rows of D = 5."""

    def __init__(self, loss: Callable[..., torch.Tensor] | nn.Module) -> None:
        super().__init__()
        self.fc, self.loss = nn.Linear(8, 5), loss

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.where(x[:, 0] > 0, 1.0, -1.0)
        return self.loss(self.fc(x), torch.sigmoid(x[:, :5]), y)


@pytest.mark.parametrize(
    ("kind", "loss", "reduced"),
    [
        ("cosine_embedding_loss", F.cosine_embedding_loss, 1),
        ("cosine_embedding_loss", lambda *t: F.cosine_embedding_loss(*t, 0.1, reduction="none"), 0),
        ("cosineembeddingloss", nn.CosineEmbeddingLoss(margin=0.2, reduction="sum"), 1),
    ],
)  # fmt: skip
def test_cosine_embedding_loss_by_hand(
    kind: str, loss: Callable[..., torch.Tensor] | nn.Module, reduced: int
) -> None:
    """Per row the three dot products and the cosine (6 D + 2), then 1 - cos, the margin's
    hinge, the two target tests, selects and sum (8): 6 D + 10, + R reduced; bwd: the masks
    on dy (3) and cosine_similarity's 6 D + 4. R = 6, D = 5: 240 (+ 6) and 222. It was listed
    uncounted (FlopCounterMode: the Linear's MACs alone)."""
    model, x = PairScored(loss).eval(), torch.randn(6, 8)
    gm = trace(model, x)
    total = compute_cost(gm)
    assert total.uncounted == ()
    cost = info(next(n for n in gm.graph.nodes if info(n).op_kind == kind)).cost
    assert (cost["macs"], cost["flops"], cost["flops_backward"]) == (0, 240 + 6 * reduced, 222)
    with FlopCounterMode(display=False) as fcm:
        model(x)
    assert 2 * total.macs == fcm.get_total_flops() == 2 * 6 * 8 * 5


class SigmoidBCE(nn.Module):
    def __init__(self, **kw: object) -> None:
        super().__init__()
        self.bce = nn.BCELoss(**kw)  # type: ignore[arg-type]

    def forward(self, y: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.bce(torch.sigmoid(y), t)


def test_bce_and_triplet_margin_losses_by_hand() -> None:
    """nn.BCELoss: 10 per element + 1 summed, 6 back. F.triplet_margin_loss of R = 6 rows of
    D = 5: two 2-norm distances (4 D each), the hinge (3): R (8 D + 3) + R reduced = 264;
    bwd R (10 D + 3) = 318. Both were listed uncounted."""
    gm = trace(Scored(SigmoidBCE(reduction="sum")).eval(), torch.randn(6, 8))
    assert compute_cost(gm).uncounted == ()
    cost = info(next(n for n in gm.graph.nodes if info(n).op_kind == "bceloss")).cost
    assert (cost["flops"], cost["flops_backward"]) == (11 * N_IN, 6 * N_IN)
    model = PairScored(lambda a, b, y: F.triplet_margin_loss(a, b, b.flip(0)))
    gm = trace(model.eval(), torch.randn(6, 8))
    assert compute_cost(gm).uncounted == ()
    cost = info(next(n for n in gm.graph.nodes if info(n).op_kind == "triplet_margin_loss")).cost
    assert (cost["macs"], cost["flops"], cost["flops_backward"]) == (0, 264, 318)


@pytest.mark.parametrize(
    ("loss", "reason"),
    [
        (lambda y, t: F.poisson_nll_loss(y, t, full=True), "counted without full"),
        (lambda y, t: F.multi_margin_loss(y, t.argmax(1), weight=torch.ones(5)), "weight"),
        (lambda y, t: F.binary_cross_entropy(torch.sigmoid(y), t, torch.ones(5)), "without weight"),
        (lambda y, t: F.triplet_margin_loss(y, t, t, swap=True), "without swap"),
        (lambda y, t: F.triplet_margin_loss(y, t, t, p=1), "counted for p = 2"),
    ],
)
def test_loss_options_outside_the_formulas_are_listed_uncounted(loss: Loss, reason: str) -> None:
    gm = trace(Scored(loss).eval(), torch.randn(6, 8))
    (uncounted,) = compute_cost(gm).uncounted
    assert reason in uncounted.reason
