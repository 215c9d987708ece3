"""Quality metrics of many configs' outputs at once, equal to one evaluation per config.

:func:`quantsearch.metrics.quality.evaluate` keeps one running accumulator per evaluation; a
population keeps one set of running sums for all its configs and fills them from all outputs
together. Exactness: what is batched is exact in any order or shape (``argmax``, which picks
the first maximum whatever the layout, and integer class counts, sums of zeros
and ones below ``2^24`` from one float32 product with the labels' one-hot matrix) or
shares its arithmetic with the single path whatever the number of outputs
(:func:`~quantsearch.metrics.quality.loss_sums`: row-local per-sample losses on the stacked
outputs, each output's summed in sample order); ``topk``, whose order among ties is the
kernel's, is the single path's call on the same tensor, once per *distinct* output (configs
whose outputs are the same object share it). Each config's
:class:`~quantsearch.metrics.quality.Quality` then comes from the single path's own formula
(:func:`~quantsearch.metrics.quality.quality_of`) on its exact counts and loss sum.

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

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from quantsearch.errors import MetricError

# The single path's own arithmetic and checks: each config's result is computed as its is.
from quantsearch.metrics.quality import (
    Quality,
    _check,
    classes_first,
    loss_sums,
    quality_of,
)
from quantsearch.passes.transform.batched import stacked_views

__all__ = ["PopulationQuality"]


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

    def add(self, logits: Sequence[torch.Tensor], labels: torch.Tensor) -> None:
        """One batch: ``logits[i]`` is config ``i``'s output for the samples labelled ``labels``."""
        if len(logits) != self.k:
            raise MetricError(f"expected {self.k} outputs (got {len(logits)})")
        slot: dict[int, int] = {}  # id of a distinct output -> its row
        distinct: list[torch.Tensor] = []
        rows: list[int] = []
        for t in logits:
            row = slot.get(id(t))
            if row is None:
                if not distinct or t.shape != distinct[0].shape:
                    _check(t, labels)  # equal shapes pass alike
                row = slot[id(t)] = len(distinct)
                distinct.append(t)
            rows.append(row)
        c = self.num_classes
        lo, hi = (int(v) for v in torch.aminmax(labels))
        if lo < 0 or hi >= c:
            raise MetricError(f"labels must be in [0, {c - 1}] (got labels in [{lo}, {hi}])")
        if any(not 1 <= k <= c for k in self.ks):
            raise MetricError(f"top<k>_accuracy needs 1 <= k <= {c}")
        whole = stacked_views(distinct)  # a batched layer's outputs are one tensor already
        stacked = torch.stack(distinct) if whole is None else whole  # (distinct, samples, C)
        correct = stacked.argmax(2) == labels  # first maximum, as argmax(1) of each
        d = len(distinct)
        if labels.shape[0] < 2**24:
            # hits of each output per class as one product with the labels' one-hot matrix:
            # sums of at most 2^24 zeros and ones, every partial sum an integer float32
            # holds, so exact in any order, as the bincount below (numpy's argmax counts
            # referee it in the tests)
            onehot = F.one_hot(labels, c).to(torch.float32)  # [samples, C]
            per_class = torch.mm(correct.to(torch.float32), onehot).to(torch.int64)
        else:
            offset = torch.arange(d, device=labels.device)[:, None] * c + labels
            bins = torch.where(correct, offset, d * c)  # a miss counts in one extra bin
            per_class = torch.bincount(bins.flatten(), minlength=d * c + 1)[:-1].view(d, c)
        counts = torch.bincount(labels, minlength=c)
        losses = loss_sums(classes_first(stacked), labels)
        hits: dict[int, list[torch.Tensor]] = {k: [] for k in self.ks}
        for t in distinct if self.ks else ():
            top = t.topk(max(self.ks), dim=1).indices == labels[:, None]
            for k in self.ks:
                hits[k].append(top[:, :k].any(1).sum())
        same = rows == list(range(len(distinct)))
        index = None if same else torch.tensor(rows, device=labels.device)
        by_config = [per_class, losses, *(torch.stack(h) for h in hits.values())]
        if index is not None:
            by_config = [t[index] for t in by_config]
        if self.correct is None or self.count is None or self.loss is None:
            self.correct, self.loss = by_config[0], by_config[1]
            self.count = counts
            self.hits = dict(zip(self.ks, by_config[2:], strict=True))
        else:  # integer counts add exactly; each loss adds in batch order, as the single path's
            self.correct = self.correct + by_config[0]
            self.count = self.count + counts
            self.loss = self.loss + by_config[1]
            for k, h in zip(self.ks, by_config[2:], strict=True):
                self.hits[k] = self.hits[k] + h
        self.n += int(labels.shape[0])

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
