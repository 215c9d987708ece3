"""PopulationQuality against quality.evaluate, one output at a time (the referee)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from quantsearch.data import Split
from quantsearch.errors import MetricError
from quantsearch.metrics.population import BatchLabels, PopulationQuality
from quantsearch.metrics.quality import evaluate
from quantsearch.passes.transform.blocks import Blocks


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


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
def test_hits_equal_numpy_argmax_with_non_finite_logits(dtype: torch.dtype) -> None:
    """The hits read from maxima over the classes (outputs with a finite loss) or from
    ``argmax`` (the others) against numpy's ``argmax`` (first maximum; NaN counts as the
    maximum, its first occurrence, as torch's): outputs with ``-inf``, ``+inf`` and NaN logits,
    ties among them, ``-0.0`` against ``0.0``, and whole metrics against one evaluation each."""
    g = torch.Generator().manual_seed(3)
    n, c = 200, 5
    y = torch.randint(0, c, (n,), generator=g)
    x = torch.round(torch.randn(8, n, c, generator=g) * 2).to(dtype)  # many ties
    x[1, ::7, 2] = -torch.inf  # finite loss: -inf is a logit like the others
    x[2, ::5] = -torch.inf
    x[2, ::5, 1] = 0.0
    x[3, 3, 1] = torch.inf  # infinite loss: argmax
    x[4, ::11, 3] = torch.nan  # NaN loss: argmax
    x[5] = torch.where(x[5] == 0, -0.0, x[5])  # -0.0 ties 0.0
    x[5, :, 0] = 0.0
    x[6, :, :] = 1.0  # every class tied
    pq = PopulationQuality(len(x), c)
    pq.add(list(x), BatchLabels.of(y, c))
    pred = np.argmax(x.numpy(), axis=2)
    lab = y.numpy()
    want = [[int(((pred[v] == lab) & (lab == k)).sum()) for k in range(c)] for v in range(len(x))]
    assert pq.correct is not None and pq.correct.tolist() == want
    data = Split(torch.zeros(n, 1), y)
    for got, o in zip(pq.results(), x, strict=True):
        single = evaluate(_Outputs(o), data, batch_size=n)
        assert (got.accuracy, got.balanced_accuracy) == (single.accuracy, single.balanced_accuracy)
        assert got.loss == single.loss or (math.isnan(got.loss) and math.isnan(single.loss))


def test_batch_labels_checks_once_and_add_reads_them() -> None:
    """A :class:`BatchLabels` refuses a label outside the classes, and ``add`` with it gives
    what ``add`` with the plain labels gives; its picks, one-hot matrix and mask are as documented."""
    with pytest.raises(MetricError, match=r"labels must be in \[0, 2\]"):
        BatchLabels.of(torch.tensor([0, 3]), 3)
    y = torch.tensor([2, 0, 1, 2])
    lab = BatchLabels.of(y, 3)
    inf = -math.inf
    assert lab.picks.tolist() == [2 * 4 + 0, 0 * 4 + 1, 1 * 4 + 2, 2 * 4 + 3]  # c * N + i
    assert lab.onehot is not None and lab.onehot.T.tolist() == torch.eye(3)[y].tolist()
    assert lab.before[0].T.tolist() == [[0, 0, inf], [inf] * 3, [0, inf, inf], [0, 0, inf]]
    outs = [torch.randn(4, 3, generator=torch.Generator().manual_seed(i)) for i in range(3)]
    a, b = PopulationQuality(3, 3), PopulationQuality(3, 3)
    a.add(outs, y)
    b.add(outs, lab)
    assert a.results() == b.results()


def test_blocks_of_one_tensor_count_as_distinct_outputs() -> None:
    """Outputs handed as :class:`Blocks` (a batched layer's) give what the same values as
    separate tensors give, each referee'd by ``evaluate`` of that output alone."""
    g = torch.Generator().manual_seed(3)
    whole = torch.randn(4, 30, 5, generator=g)
    whole[1] = torch.round(whole[1])  # ties
    y = torch.randint(0, 5, (30,), generator=g)
    a, b = PopulationQuality(4, 5, (2,)), PopulationQuality(4, 5, (2,))
    a.add(Blocks(whole), BatchLabels.of(y, 5))
    b.add([t.clone() for t in whole], y)
    assert a.results() == b.results()
    for got, o in zip(a.results(), whole, strict=True):
        assert got == evaluate(_Outputs(o), Split(o, y), batch_size=30, top_k=(2,))
