"""Quality metrics of many configs' outputs at once, equal to one evaluation per config.

:func:`quantsearch.metrics.quality.evaluate` keeps one running accumulator per evaluation; a
population keeps one per config and fills them from all outputs together. Exactness: what is
batched is exact in any order or shape (``argmax``, which picks the first maximum whatever the
layout, and integer class counts from one ``bincount``); what is not (the float32 sum of the
cross-entropy, and ``topk``, whose order among ties is the kernel's) is computed by the same
call on the same tensor as the single path, once per *distinct* output (configs whose outputs
are the same object share it). Each config's :class:`~quantsearch.metrics.quality.Quality`
then comes from the single path's own accumulator arithmetic (``_Accumulator.result``).

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

# The single path's own accumulator and checks: each config's result is its arithmetic.
from quantsearch.metrics.quality import Quality, _Accumulator, _check

__all__ = ["PopulationQuality"]


class PopulationQuality:
    """Running sums of quality metrics for ``k`` configs over the same labelled samples.

    Args:
        k: configs in the population.
        num_classes: the models' output width.
        ks: the ``k`` of each ``top<k>_accuracy`` wanted.
    """

    def __init__(self, k: int, num_classes: int, ks: Sequence[int] = ()) -> None:
        self.num_classes = num_classes
        self.accs = [_Accumulator(num_classes, sorted(set(ks))) for _ in range(k)]

    def add(self, logits: Sequence[torch.Tensor], labels: torch.Tensor) -> None:
        """One batch: ``logits[i]`` is config ``i``'s output for the samples labelled ``labels``."""
        if len(logits) != len(self.accs):
            raise MetricError(f"expected {len(self.accs)} outputs (got {len(logits)})")
        slot: dict[int, int] = {}  # id of a distinct output -> its row
        distinct: list[torch.Tensor] = []
        for t in logits:
            if id(t) not in slot:
                _check(t, labels)
                slot[id(t)] = len(distinct)
                distinct.append(t)
        c = self.num_classes
        lo, hi = int(labels.min()), int(labels.max())
        if lo < 0 or hi >= c:
            raise MetricError(f"labels must be in [0, {c - 1}] (got labels in [{lo}, {hi}])")
        if any(not 1 <= k <= c for k in (self.accs[0].ks if self.accs else ())):
            raise MetricError(f"top<k>_accuracy needs 1 <= k <= {c}")
        stacked = torch.stack(distinct)  # (distinct, samples, classes)
        correct = stacked.argmax(2) == labels  # first maximum, as argmax(1) of each
        offset = torch.arange(len(distinct), device=labels.device)[:, None] * c + labels
        per_class = torch.bincount(offset[correct], minlength=len(distinct) * c).view(-1, c)
        counts = torch.bincount(labels, minlength=c)
        losses = [F.cross_entropy(t.float(), labels, reduction="sum").double() for t in distinct]
        ks = self.accs[0].ks if self.accs else ()
        hits: list[dict[int, torch.Tensor]] = []
        for t in distinct if ks else ():
            top = t.topk(max(ks), dim=1).indices == labels[:, None]
            hits.append({k: top[:, :k].any(1).sum() for k in ks})
        n = int(labels.shape[0])
        for acc, t in zip(self.accs, logits, strict=True):
            row = slot[id(t)]
            if acc.n == 0:  # integer counts: 0 + x is x (the loss keeps the single path's sum)
                acc.correct_per_class, acc.count_per_class = per_class[row], counts
                acc.top_k_hits = dict(hits[row]) if ks else acc.top_k_hits
            else:
                acc.correct_per_class = acc.correct_per_class + per_class[row]
                acc.count_per_class = acc.count_per_class + counts
                for k in ks:
                    acc.top_k_hits[k] = acc.top_k_hits[k] + hits[row][k]
            acc.loss_sum = acc.loss_sum + losses[row]
            acc.n += n

    def results(self) -> list[Quality]:
        """Each config's metrics, as :func:`~quantsearch.metrics.quality.evaluate` gives them."""
        return [acc.result() for acc in self.accs]
