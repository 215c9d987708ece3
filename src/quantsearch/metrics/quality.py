"""Accuracy, balanced accuracy, cross-entropy loss and top-k accuracy, in plain tensor code.

:func:`evaluate` makes one forward pass over a validation split and computes every quality
metric from it. Its running sums live in the call and start at zero on every call: MASE kept one
torchmetrics object for the whole search and never reset it, so each trial's accuracy averaged
in every earlier trial's.

Definitions (``n`` samples, ``C`` classes, prediction = ``argmax`` of the logits, first index on
ties):

* ``accuracy`` = correct / n (micro).
* ``balanced_accuracy`` = mean over the classes present in the labels of correct_c / n_c
  (macro recall; scikit-learn's ``balanced_accuracy_score``).
* ``loss`` = mean over samples of ``-log softmax(logits)[label]`` (nats); each sample's term
  in float32, summed in float64 in sample order (:func:`loss_sums`).
* ``top<k>_accuracy`` = fraction of samples whose label is among the ``k`` highest logits
  (ties ranked by class index, as ``argmax`` breaks them: :func:`label_ranks`).

Example:
    >>> import torch
    >>> logits = torch.tensor([[2.0, 1.0, 0.0], [0.0, 2.0, 1.0], [0.0, 1.0, 2.0], [2.0, 0.0, 1.0]])
    >>> labels = torch.tensor([0, 1, 1, 1])
    >>> accuracy(logits, labels), balanced_accuracy(logits, labels), top_k_accuracy(logits, labels, 2)
    (0.5, 0.6666666666666666, 0.75)
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from quantsearch.data import Split
from quantsearch.errors import MetricError

__all__ = [
    "Quality",
    "accuracy",
    "balanced_accuracy",
    "class_labels",
    "classes_first",
    "device_of",
    "evaluate",
    "label_picks",
    "label_ranks",
    "loss_sums",
    "quality_of",
    "top_k_accuracy",
]


@dataclass(frozen=True)
class Quality:
    """Quality metrics of one evaluation over ``samples`` samples."""

    accuracy: float
    balanced_accuracy: float
    loss: float
    samples: int
    top_k: dict[int, float] = field(default_factory=dict)


def class_labels(y: torch.Tensor) -> torch.Tensor:
    """``y`` as int64 class indices; floating-point labels must be whole numbers (as
    :func:`quantsearch.data.user.is_classes` has them), never truncated: ``0.7`` is not class 0.

    Raises:
        MetricError: a floating-point label is not a whole number (regression targets).

    Example:
        >>> class_labels(torch.tensor([0.0, 2.0])).tolist()
        [0, 2]
    """
    if y.is_floating_point() and not torch.equal(y, y.round()):
        bad = y[y != y.round()].flatten()[0]
        raise MetricError(
            f"data.y: got fractional float labels (e.g. {float(bad)!r}), allowed: whole-number "
            f"class labels for the classification metrics (accuracy, balanced_accuracy, loss, "
            f"top<k>_accuracy); for regression targets use mse/mae or an evaluate function"
        )
    return y.long()


def _check(logits: torch.Tensor, labels: torch.Tensor) -> None:
    if not isinstance(logits, torch.Tensor):  # a user model may return a tuple or dict
        raise MetricError(
            f"the classification metrics need a model that returns one tensor of logits (got "
            f"{type(logits).__name__}); use an evaluate function for several outputs"
        )
    if logits.ndim != 2:
        raise MetricError(
            f"model output must be logits of shape (samples, classes) (got shape {tuple(logits.shape)})"
        )
    if labels.shape != logits.shape[:1]:
        raise MetricError(
            f"labels must have shape ({logits.shape[0]},) to match the logits "
            f"(got {tuple(labels.shape)}); the classification metrics need class labels: for "
            f"regression targets use mse/mae or an evaluate function"
        )
    class_labels(labels)


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Top-1 (micro) accuracy: the fraction of rows whose argmax equals the label."""
    _check(logits, labels)
    return float((logits.argmax(1) == labels).float().mean())


def balanced_accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean per-class recall over the classes present in ``labels``."""
    _check(logits, labels)
    acc = _Accumulator(logits.shape[1], ())
    acc.add(logits, labels)
    return acc.result().balanced_accuracy


def top_k_accuracy(logits: torch.Tensor, labels: torch.Tensor, k: int) -> float:
    """The fraction of rows whose label is among the ``k`` highest logits."""
    _check(logits, labels)
    if not 1 <= k <= logits.shape[1]:
        raise MetricError(
            f"k must be in [1, {logits.shape[1]}] for {logits.shape[1]} classes (got {k})"
        )
    return int((label_ranks(logits, labels) < k).sum()) / int(labels.shape[0])


def label_ranks(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """How many classes rank above each row's label: a larger logit, or an equal one at a
    smaller class index (``argmax``'s rule, the first maximum wins). A top-k hit is ``rank <
    k``, the same on every device and layout (``topk``'s order among ties is its kernel's).

    Example:
        >>> logits = torch.tensor([[1.0, 3.0, 3.0], [1.0, 3.0, 3.0]])
        >>> label_ranks(logits, torch.tensor([2, 0])).tolist()
        [1, 2]
    """
    own = logits.gather(1, labels.view(-1, 1))
    before = torch.arange(logits.shape[1], device=logits.device) < labels.view(-1, 1)
    return ((logits > own) | ((logits == own) & before)).sum(1)


def classes_first(logits: torch.Tensor) -> torch.Tensor:
    """``V`` outputs' logits ``[V, N, C]`` laid out ``[V, C, N]`` (a contiguous copy): the
    layout :func:`loss_sums` reduces over classes in, along dim 1."""
    return logits.transpose(1, 2).contiguous()


def loss_sums(
    by_class: torch.Tensor, labels: torch.Tensor, picks: torch.Tensor | None = None
) -> torch.Tensor:
    """The summed cross-entropy of each of ``V`` outputs for the samples labelled ``labels``
    (``[N]``), from their logits laid out ``[V, C, N]`` (:func:`classes_first`), float64 ``[V]``.

    One evaluation and a population of them share this arithmetic, so their losses are
    equal (``==``) whatever ``V``. Each sample's loss ``-log_softmax(row)[label]`` is computed
    in float32 with the classes along dim 1: ATen's CPU kernel for a softmax over a dim that
    is not the last one vectorizes across the samples of one output, in chunks that depend on
    ``C`` and ``N`` only, never on ``V`` (the outputs are its outer dimension), so a sample's
    value does not depend on the outputs beside it, and it is 10-15x faster than the last-dim
    kernel for a few classes (which runs a scalar ``exp`` per logit).
    ``tests/metrics/test_quality.py`` checks the independence on many shapes, with ties and
    large logits. Each output's samples are then summed in float64 in sample order:
    ``cumsum``, a sequential scan along each row on the CPU. On another device the logits
    (``V x C x N`` values a batch) are copied to the CPU first and the same CPU arithmetic
    runs: a GPU's softmax and its ``cumsum`` (which PyTorch lists as nondeterministic on
    CUDA) may order their sums by launch shape, and so by ``V``.

    ``picks``: optionally, :func:`label_picks` of ``labels`` (kept by a caller that meets
    the same labels often): each sample's term is then read by one ``index_select`` of the
    flat ``[V, C * N]`` log-probabilities instead of a ``gather`` along the classes, the
    same values (both only copy them).

    Example:
        >>> logits = torch.tensor([[[2.0, 0.0], [0.0, 2.0]], [[0.0, 0.0], [1.0, 0.0]]])
        >>> sums = loss_sums(classes_first(logits), torch.tensor([0, 1]))
        >>> [round(v, 4) for v in sums.tolist()]
        [0.2539, 2.0064]
    """
    if by_class.device.type != "cpu":
        return loss_sums(by_class.cpu(), labels.cpu()).to(by_class.device)
    v, c, n = by_class.shape
    logp = F.log_softmax(by_class.float(), dim=1)
    if picks is None:
        picked = logp.gather(1, labels.view(1, 1, n).expand(v, 1, n))
    else:  # logp is contiguous: sample i's term of output j is logp.view(v, c * n)[j, picks[i]]
        picked = logp.view(v, c * n).index_select(1, picks)
    # -log p summed as -(sum of log p): round-to-nearest is symmetric in sign, so negating
    # the sum gives the very bits of summing the negated terms (one op fewer on [V, N]);
    # each term widened to float64 (exact) before the sequential scan
    return picked.view(v, n).double().cumsum(1)[:, -1].neg()


def label_picks(labels: torch.Tensor) -> torch.Tensor:
    """Where each sample's label logit lies in one output's flat classes-first logits
    (``[C * N]``: class ``c`` of sample ``i`` at ``c * N + i``): ``labels * N + arange(N)``,
    for :func:`loss_sums`.

    Example:
        >>> label_picks(torch.tensor([1, 0, 2])).tolist()
        [3, 1, 8]
    """
    n = int(labels.shape[0])
    return labels * n + torch.arange(n, device=labels.device)


def quality_of(
    correct: Sequence[int],
    count: Sequence[int],
    loss_sum: float,
    n: int,
    top_k_hits: Mapping[int, int],
) -> Quality:
    """The :class:`Quality` of ``n`` samples from per-class correct and sample counts, the
    summed loss and the top-k hit counts: plain float64 arithmetic on exact integer counts
    (the balanced accuracy's mean of recalls through ``math.fsum``, a correctly rounded sum
    whatever the order), shared by one evaluation and a population."""
    if n == 0:
        raise MetricError("data must hold at least one sample (got an empty split)")
    recalls = [a / b for a, b in zip(correct, count, strict=True) if b > 0]
    return Quality(
        accuracy=sum(correct) / n,
        balanced_accuracy=math.fsum(recalls) / len(recalls),
        loss=loss_sum / n,
        samples=n,
        top_k={k: h / n for k, h in top_k_hits.items()},
    )


class _Accumulator:
    """Per-evaluation running sums; a new one per evaluation, so nothing leaks between trials."""

    def __init__(self, num_classes: int, ks: Sequence[int]) -> None:
        self.num_classes = num_classes
        self.ks = tuple(ks)
        self.n = 0
        self.loss_sum: torch.Tensor | float = 0.0
        self.correct_per_class: torch.Tensor | int = 0
        self.count_per_class: torch.Tensor | int = 0
        self.top_k_hits: dict[int, torch.Tensor | int] = dict.fromkeys(self.ks, 0)

    def add(self, logits: torch.Tensor, labels: torch.Tensor) -> None:
        c = self.num_classes
        correct = logits.argmax(1) == labels
        self.correct_per_class = self.correct_per_class + torch.bincount(
            labels[correct], minlength=c
        )
        self.count_per_class = self.count_per_class + torch.bincount(labels, minlength=c)
        self.loss_sum = self.loss_sum + loss_sums(classes_first(logits[None]), labels)[0]
        if self.ks:
            rank = label_ranks(logits, labels)
            for k in self.ks:
                self.top_k_hits[k] = self.top_k_hits[k] + (rank < k).sum()
        self.n += int(labels.shape[0])

    def result(self) -> Quality:
        if self.n == 0:
            raise MetricError("data must hold at least one sample (got an empty split)")
        assert isinstance(self.correct_per_class, torch.Tensor)
        assert isinstance(self.count_per_class, torch.Tensor)
        return quality_of(
            self.correct_per_class.tolist(),
            self.count_per_class.tolist(),
            float(self.loss_sum),
            self.n,
            {k: int(v) for k, v in self.top_k_hits.items()},
        )


def device_of(model: nn.Module) -> torch.device:
    """Where ``model``'s first parameter or buffer lives (the CPU for a model with none)."""
    t = next(itertools.chain(model.parameters(), model.buffers()), None)
    return t.device if t is not None else torch.device("cpu")


def evaluate(
    model: nn.Module,
    data: Split,
    *,
    batch_size: int = 1024,
    top_k: Sequence[int] = (),
    samples: int | None = None,
) -> Quality:
    """One forward pass over ``data`` in eval mode under ``torch.inference_mode()``.

    Args:
        model: returns logits of shape ``(batch, classes)``; its training mode is restored after.
        data: the validation split; batches move to the model's device, and its logits
            come back to the CPU, where the metrics are counted.
        batch_size: samples per forward call.
        top_k: the ``k`` of each ``top<k>_accuracy`` wanted (``()`` for none).
        samples: evaluate the first ``samples`` samples only (``None``: all).

    Returns:
        Fresh metrics for this evaluation only.

    Raises:
        MetricError: on a bad argument, an empty split, non-2-D logits, a label outside the
            model's classes or a fractional float label (:func:`class_labels`).
    """
    if batch_size < 1:
        raise MetricError(f"batch_size: got {batch_size}, allowed: an integer >= 1")
    if samples is not None and samples < 1:
        raise MetricError(f"samples: got {samples}, allowed: an integer >= 1 or None")
    data = data.head(samples)
    if len(data) == 0:
        raise MetricError("data must hold at least one sample (got an empty split)")
    device = device_of(model)
    # The counts and the loss's float64 sums are taken on the CPU (loss_sums), so a model on
    # another device sends nothing: its labels come back once, each batch's logits after it.
    host_labels = data.y.cpu()
    was_training = model.training
    model.eval()
    acc: _Accumulator | None = None
    try:
        with torch.inference_mode():
            for start in range(0, len(data), batch_size):
                x = data.x[start : start + batch_size]
                logits = model(x.to(device, non_blocking=True))
                if isinstance(logits, torch.Tensor):
                    logits = logits.cpu()
                labels = host_labels[start : start + batch_size]
                if acc is None:
                    _check(logits, labels)
                    c = int(logits.shape[1])
                    lo, hi = int(host_labels.min()), int(host_labels.max())
                    if lo < 0 or hi >= c:
                        raise MetricError(
                            f"data.y labels must be in [0, {c - 1}] for a model with {c} outputs "
                            f"(got labels in [{lo}, {hi}])"
                        )
                    bad = [k for k in top_k if not 1 <= k <= c]
                    if bad:
                        raise MetricError(
                            f"top<k>_accuracy needs 1 <= k <= {c} for {c} classes (got k={bad[0]})"
                        )
                    acc = _Accumulator(c, sorted(set(top_k)))
                acc.add(logits, class_labels(labels))  # every batch: none truncated
    finally:
        model.train(was_training)
    assert acc is not None
    return acc.result()
