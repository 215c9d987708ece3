"""PopulationQuality against quality.evaluate, one output at a time (the referee)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from quantsearch.data import Split
from quantsearch.errors import MetricError
from quantsearch.metrics.population import PopulationQuality
from quantsearch.metrics.quality import evaluate


class _Outputs(nn.Module):
    """Returns the fixed rows ``logits[start:start + len(x)]``: a model whose logits we choose."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.logits = logits
        self.start = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.logits[self.start : self.start + len(x)]
        self.start += len(x)
        return out


def test_every_quality_metric_equals_one_evaluation_per_output() -> None:
    g = torch.Generator().manual_seed(0)
    n, c, batch = 300, 6, 128
    labels = torch.randint(0, c, (n,), generator=g)
    outs = [torch.randn(n, c, generator=g) for _ in range(4)]
    outs.append(torch.round(outs[0] * 2) / 2)  # coarse logits: ties for argmax and topk
    outs.append(torch.zeros(n, c))  # every class tied
    outs.append(outs[1])  # the same output object twice: computed once, reported twice
    pq = PopulationQuality(len(outs), c, ks=(2, 3))
    for i in range(0, n, batch):  # several batches, the last one short
        pq.add([o[i : i + batch] for o in outs], labels[i : i + batch])
    data = Split(torch.zeros(n, 1), labels)
    for got, o in zip(pq.results(), outs, strict=True):
        want = evaluate(_Outputs(o), data, batch_size=batch, top_k=(2, 3))
        assert got == want


def test_labels_outside_the_classes_are_refused() -> None:
    pq = PopulationQuality(1, 3)
    with pytest.raises(MetricError, match=r"labels must be in \[0, 2\]"):
        pq.add([torch.zeros(2, 3)], torch.tensor([0, 3]))


@pytest.mark.parametrize("n", [1, 13, 512, 3001])
def test_per_class_hits_equal_numpy_argmax_counts_with_ties(n: int) -> None:
    """The per-class hit counts (one float32 product with the labels' one-hot matrix) against
    numpy: ``np.argmax`` (first maximum on ties, documented) and a Python count per class;
    rows of ties, all-equal rows and a class no label holds are included."""
    g = torch.Generator().manual_seed(n)
    c = 6
    x = torch.randn(9, n, c, generator=g)
    x[1::3] = torch.round(x[1::3])  # many ties
    x[2::3, ::2] = 0.0  # all-equal rows
    y = torch.randint(0, c - 1, (n,), generator=g)  # class c - 1 is never a label
    pq = PopulationQuality(len(x), c)
    pq.add(list(x), y)
    pred = np.argmax(x.numpy(), axis=2)
    lab = y.numpy()
    want = [[int(((pred[v] == lab) & (lab == k)).sum()) for k in range(c)] for v in range(len(x))]
    assert pq.correct is not None and pq.correct.dtype == torch.int64
    assert pq.correct.tolist() == want
