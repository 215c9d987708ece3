"""Quality metrics of many configs' outputs at once, equal to one evaluation per config.

:func:`quantsearch.metrics.quality.evaluate` keeps one running accumulator per evaluation; a
population keeps one set of running sums for all its configs and fills them from all outputs
together. Exactness: what is batched is exact in any order or shape, or shares its
arithmetic with the single path whatever the number of outputs
(:func:`~quantsearch.metrics.quality.loss_sums`: row-local per-sample losses on the stacked
outputs, each output's summed in sample order). The per-class hits are integer counts, sums
of zeros and ones below ``2^24`` from one float32 product with the labels' one-hot matrix.
Whether a sample is a hit is the single path's ``argmax(1) == label`` (the first maximum),
read from the classes-first copy the loss needs anyway by reductions over the classes
(:func:`_hits`): for an output whose summed loss is finite no logit is NaN or ``+inf``, so
``m = max_c x_c`` and the largest logit before the label are exact maxima (``x_label``
itself is read at the label's place, :attr:`BatchLabels.picks`), and the label is the
first maximum iff ``x_label == m`` and every earlier logit is below ``m``.
An output whose loss is not finite (NaN or infinite logits) takes ``argmax`` itself, as do
logits of another dtype than float32/float64. Top-k hits are the single path's
:func:`~quantsearch.metrics.quality.label_ranks` (ties ranked by class index), once per
*distinct* output (configs whose outputs are the same object share it). Each config's
:class:`~quantsearch.metrics.quality.Quality` then comes from the single path's own formula
(:func:`~quantsearch.metrics.quality.quality_of`) on its exact counts and loss sum.
What depends on the labels alone (their range check, class counts, one-hot matrix, the
label's place in each output and the mask :func:`_hits` adds) is a :class:`BatchLabels`, which an evaluator builds once per batch
of its data.

Example:
    >>> import torch
    >>> from quantsearch.metrics.quality import evaluate
    >>> from quantsearch.data import Split
    >>> y = torch.tensor([0, 1, 2, 1])
    >>> a, b = torch.randn(4, 3), torch.randn(4, 3)
    >>> pq = PopulationQuality(2, 3)
    >>> pq.add([a, b], y)
    >>> [q.loss for q in pq.results()] == [
    ...     evaluate(torch.nn.Identity(), Split(t, y)).loss for t in (a, b)]
    True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from quantsearch.errors import MetricError

# The single path's own arithmetic and checks: each config's result is computed as its is.
from quantsearch.metrics.quality import (
    Quality,
    _check,
    classes_first,
    label_picks,
    label_ranks,
    loss_sums,
    quality_of,
)
from quantsearch.passes.transform.blocks import Blocks, stacked_views

__all__ = ["BatchLabels", "PopulationQuality"]


@dataclass(frozen=True, eq=False)
class BatchLabels:
    """One batch's labels and what every population measured on them reads (build it with
    :meth:`of`, which checks them).

    Attributes:
        labels: the class of each of the ``N`` samples (int64).
        num_classes: the models' output width ``C``.
        counts: samples per class, ``[C]`` int64.
        onehot: ``[C, N]`` float32, the one-hot rows of the labels transposed (``onehot[c,
            i]`` is 1 where sample ``i`` is of class ``c``); ``None`` from ``2^24`` samples
            on, where a float32 count would no longer be exact (the hits are then counted by
            ``bincount``).
        picks: :func:`~quantsearch.metrics.quality.label_picks` of the labels (int64 ``[N]``).
        before: ``[1, C, N]`` float32: ``0`` at the classes before each sample's label,
            ``-inf`` from it on.
    """

    labels: torch.Tensor
    num_classes: int
    counts: torch.Tensor
    onehot: torch.Tensor | None
    picks: torch.Tensor
    before: torch.Tensor

    @classmethod
    def of(cls, labels: torch.Tensor, num_classes: int) -> BatchLabels:
        """The facts of ``labels`` (int64 class indices) for ``num_classes`` outputs.

        Raises:
            MetricError: a label outside ``[0, num_classes - 1]``.
        """
        c = num_classes
        lo, hi = (int(v) for v in torch.aminmax(labels))
        if lo < 0 or hi >= c:
            raise MetricError(f"labels must be in [0, {c - 1}] (got labels in [{lo}, {hi}])")
        n = int(labels.shape[0])
        classes = torch.arange(c, device=labels.device).view(1, c, 1)
        zero = torch.zeros((), dtype=torch.float32, device=labels.device)
        inf = torch.full((), -math.inf, dtype=torch.float32, device=labels.device)
        row = labels.view(1, 1, n)
        return cls(
            labels=labels,
            num_classes=c,
            counts=torch.bincount(labels, minlength=c),
            onehot=F.one_hot(labels, c).to(torch.float32).t().contiguous() if n < 2**24 else None,
            picks=label_picks(labels),
            before=torch.where(classes < row, zero, inf),
        )

    def nbytes(self) -> int:
        """The memory its tensors take."""
        ts = (self.labels, self.counts, self.onehot, self.picks, self.before)
        return sum(t.numel() * t.element_size() for t in ts if t is not None)


def _hits(
    stacked: torch.Tensor, by_class: torch.Tensor, losses: torch.Tensor, lab: BatchLabels
) -> torch.Tensor:
    """``stacked.argmax(2) == labels`` (``[V, N]`` bool: the first maximum is the label) of
    ``V`` outputs ``stacked`` (``[V, N, C]``), read from ``by_class``, their classes-first
    copy, where each output's summed loss ``losses`` is finite (see the module docstring).

    ``x_label`` is read by an ``index_select`` at ``lab.picks`` (a copy of the value). For
    such an output ``x + 0 == x`` and ``x + -inf == -inf`` for every logit (``-inf``
    included), so adding ``lab.before`` leaves the logits before the label (``-inf`` when
    there are none) as the candidates of their maximum; both maxima are exact. An output
    with a NaN or ``+inf`` logit has a loss that is NaN or infinite (its sample's
    log-softmax is), so it takes ``argmax``."""
    if by_class.dtype not in (torch.float32, torch.float64):
        return stacked.argmax(2) == lab.labels
    v, c, n = by_class.shape
    m = by_class.amax(1)
    label = by_class.reshape(v, c * n).index_select(1, lab.picks)
    hit = (label == m) & ((by_class + lab.before).amax(1) < m)
    if not math.isfinite(float(losses.sum())):  # a NaN or an infinity in some loss
        bad = (~torch.isfinite(losses)).nonzero().flatten()
        hit[bad] = stacked[bad].argmax(2) == lab.labels
    return hit


class PopulationQuality:
    """Running sums of quality metrics for ``k`` configs over the same labelled samples.

    Args:
        k: configs in the population.
        num_classes: the models' output width.
        ks: the ``k`` of each ``top<k>_accuracy`` wanted.
    """

    def __init__(self, k: int, num_classes: int, ks: Sequence[int] = ()) -> None:
        self.k = k
        self.num_classes = num_classes
        self.ks = tuple(sorted(set(ks)))
        self.n = 0
        self.correct: torch.Tensor | None = None  # [k, classes] int64
        self.count: torch.Tensor | None = None  # [classes] int64
        self.loss: torch.Tensor | None = None  # [k] float64
        self.hits: dict[int, torch.Tensor] = {}  # k -> [configs] int64

    def add(self, logits: Sequence[torch.Tensor], labels: torch.Tensor | BatchLabels) -> None:
        """One batch: ``logits[i]`` is config ``i``'s output for the samples labelled
        ``labels`` (class indices, or their :class:`BatchLabels` for this many classes)."""
        if len(logits) != self.k:
            raise MetricError(f"expected {self.k} outputs (got {len(logits)})")
        y = labels.labels if isinstance(labels, BatchLabels) else labels
        distinct: Sequence[torch.Tensor]
        if type(logits) is Blocks and logits:  # one tensor's blocks: distinct, alike
            _check(logits[0], y)
            distinct, rows = logits, list(range(len(logits)))
        else:
            slot: dict[int, int] = {}  # id of a distinct output -> its row
            found: list[torch.Tensor] = []
            rows = []
            for t in logits:
                row = slot.get(id(t))
                if row is None:
                    if not found or t.shape != found[0].shape:
                        _check(t, y)  # equal shapes pass alike
                    row = slot[id(t)] = len(found)
                    found.append(t)
                rows.append(row)
            distinct = found
        c = self.num_classes
        if not isinstance(labels, BatchLabels) or labels.num_classes != c:
            labels = BatchLabels.of(y, c)
        if any(not 1 <= k <= c for k in self.ks):
            raise MetricError(f"top<k>_accuracy needs 1 <= k <= {c}")
        # a batched layer's outputs are one tensor already (the logits themselves are the
        # distinct outputs, in order, when none repeats: a Blocks is then found at once)
        whole = stacked_views(logits if len(distinct) == len(logits) else distinct)
        stacked = torch.stack(distinct) if whole is None else whole  # (distinct, samples, C)
        by_class = classes_first(stacked)
        losses = loss_sums(by_class, y, labels.picks)
        correct = _hits(stacked, by_class, losses, labels)
        d = len(distinct)
        if labels.onehot is not None:
            # hits of each output per class as one product with the labels' one-hot matrix
            # (F.linear: correct @ onehot.T, a faster kernel here than mm with [N, C]): sums
            # of at most 2^24 zeros and ones, every partial sum an integer float32 holds, so
            # exact in any order, as the bincount below (numpy's argmax counts referee it in
            # the tests)
            per_class = F.linear(correct.to(torch.float32), labels.onehot).to(torch.int64)
        else:
            offset = torch.arange(d, device=y.device)[:, None] * c + y
            bins = torch.where(correct, offset, d * c)  # a miss counts in one extra bin
            per_class = torch.bincount(bins.flatten(), minlength=d * c + 1)[:-1].view(d, c)
        hits: dict[int, list[torch.Tensor]] = {k: [] for k in self.ks}
        for t in distinct if self.ks else ():
            rank = label_ranks(t, y)  # the single path's ranks: ties by class index
            for k in self.ks:
                hits[k].append((rank < k).sum())
        same = rows == list(range(len(distinct)))
        index = None if same else torch.tensor(rows, device=y.device)
        by_config = [per_class, losses, *(torch.stack(h) for h in hits.values())]
        if index is not None:
            by_config = [t[index] for t in by_config]
        if self.correct is None or self.count is None or self.loss is None:
            self.correct, self.loss = by_config[0], by_config[1]
            self.count = labels.counts
            self.hits = dict(zip(self.ks, by_config[2:], strict=True))
        else:  # integer counts add exactly; each loss adds in batch order, as the single path's
            self.correct = self.correct + by_config[0]
            self.count = self.count + labels.counts
            self.loss = self.loss + by_config[1]
            for k, h in zip(self.ks, by_config[2:], strict=True):
                self.hits[k] = self.hits[k] + h
        self.n += int(y.shape[0])

    def results(self) -> list[Quality]:
        """Each config's metrics, as :func:`~quantsearch.metrics.quality.evaluate` gives them."""
        if self.correct is None or self.count is None or self.loss is None:
            raise MetricError("data must hold at least one sample (got an empty split)")
        correct = self.correct.tolist()
        count = self.count.tolist()
        loss = self.loss.tolist()
        hits = {k: h.tolist() for k, h in self.hits.items()}
        return [
            quality_of(correct[i], count, loss[i], self.n, {k: h[i] for k, h in hits.items()})
            for i in range(self.k)
        ]
