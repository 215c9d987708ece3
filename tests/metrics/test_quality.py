"""Accuracy, balanced accuracy, loss and top-k against hand-computed values and scikit-learn."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from quantsearch.data import Split
from quantsearch.errors import MetricError
from quantsearch.metrics import accuracy, balanced_accuracy, evaluate, top_k_accuracy
from quantsearch.metrics.quality import (
    classes_first,
    device_of,
    label_picks,
    loss_sums,
    quality_of,
)

# 6 samples, 3 classes. argmax per row: 0, 1, 2, 0, 2, 1.
LOGITS = torch.tensor(
    [
        [3.0, 1.0, 0.0],
        [0.0, 2.0, 1.0],
        [0.0, 1.0, 2.0],
        [2.0, 0.0, 1.0],
        [0.0, 1.0, 3.0],
        [1.0, 2.0, 0.0],
    ]
)
LABELS = torch.tensor([0, 1, 1, 0, 0, 1])


class Fixed(nn.Module):
    """Returns the stored logits row for each sample index in x."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("table", logits)
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.table[x.long().squeeze(1)]


def _split() -> Split:
    return Split(torch.arange(6, dtype=torch.float32)[:, None], LABELS)


def test_by_hand() -> None:
    # correct: rows 0, 1, 3, 5 -> 4 / 6.
    assert accuracy(LOGITS, LABELS) == pytest.approx(4 / 6)
    # class 0: rows 0, 3, 4 -> 2 right of 3; class 1: rows 1, 2, 5 -> 2 right of 3;
    # class 2 is absent from the labels and so not averaged.
    assert balanced_accuracy(LOGITS, LABELS) == pytest.approx((2 / 3 + 2 / 3) / 2)
    # top-2: row 2 (top-2 = {2, 1}) has label 1: hit; row 4 (top-2 = {2, 1}) has label 0: miss.
    assert top_k_accuracy(LOGITS, LABELS, 2) == pytest.approx(5 / 6)
    assert top_k_accuracy(LOGITS, LABELS, 3) == 1.0


def test_imbalanced_balanced_accuracy_against_sklearn() -> None:
    from sklearn.metrics import balanced_accuracy_score, log_loss

    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(200, 4, generator=gen)
    labels = torch.cat(
        [torch.zeros(150, dtype=torch.long), torch.randint(1, 4, (50,), generator=gen)]
    )
    pred = logits.argmax(1)
    expected = balanced_accuracy_score(labels.numpy(), pred.numpy())
    assert balanced_accuracy(logits, labels) == pytest.approx(expected)
    data = Split(torch.arange(200, dtype=torch.float32)[:, None], labels)
    q = evaluate(Fixed(logits), data, batch_size=64)
    assert q.balanced_accuracy == pytest.approx(expected)
    assert q.loss == pytest.approx(
        log_loss(labels.numpy(), torch.softmax(logits, 1).numpy()), rel=1e-5
    )


def test_evaluate_one_pass_all_metrics() -> None:
    model = Fixed(LOGITS)
    q = evaluate(model, _split(), batch_size=4, top_k=(2, 3))
    assert model.calls == 2  # ceil(6 / 4) batches, once
    assert q.samples == 6
    assert q.accuracy == pytest.approx(4 / 6)
    assert q.balanced_accuracy == pytest.approx(2 / 3)
    rows = LOGITS.tolist()
    expected_loss = (
        -sum(
            math.log(math.exp(rows[i][int(LABELS[i])]) / sum(math.exp(v) for v in rows[i]))
            for i in range(6)
        )
        / 6
    )
    assert q.loss == pytest.approx(expected_loss, rel=1e-6)
    assert q.top_k == {2: pytest.approx(5 / 6), 3: 1.0}


def test_fresh_per_evaluation_and_samples() -> None:
    model = Fixed(LOGITS)
    first = evaluate(model, _split(), samples=2)  # rows 0, 1: both right
    second = evaluate(model, _split().head(3).head(3), samples=3)  # rows 0-2: 2 of 3
    assert first.accuracy == 1.0 and first.samples == 2
    assert second.accuracy == pytest.approx(2 / 3)  # not averaged with the first call (MASE's bug)


def test_training_mode_restored_and_inference_mode_used() -> None:
    seen = []

    class Probe(Fixed):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            seen.append((torch.is_inference_mode_enabled(), self.training))
            return super().forward(x)

    model = Probe(LOGITS).train()
    evaluate(model, _split())
    assert seen == [(True, False)] and model.training


def test_errors() -> None:
    model = Fixed(LOGITS)
    with pytest.raises(MetricError, match=r"labels must be in \[0, 2\].*got labels in \[0, 7\]"):
        evaluate(model, Split(torch.arange(6.0)[:, None], torch.tensor([0, 1, 1, 0, 0, 7])))
    with pytest.raises(MetricError, match=r"k=4"):
        evaluate(model, _split(), top_k=(4,))
    with pytest.raises(MetricError, match=r"^batch_size: got 0, allowed: an integer >= 1$"):
        evaluate(model, _split(), batch_size=0)
    with pytest.raises(MetricError, match=r"shape \(samples, classes\)"):
        evaluate(nn.Flatten(0), _split())
    with pytest.raises(MetricError, match=r"at least one sample"):
        evaluate(model, Split(torch.zeros(0, 1), torch.zeros(0, dtype=torch.long)))
    regression = Split(torch.arange(6.0)[:, None], torch.rand(6, 2))  # float targets, 2 a sample
    with pytest.raises(MetricError, match=r"got \(6, 2\)\); .* for regression targets use mse/mae"):
        evaluate(model, regression)


FRACTIONAL = r"^data\.y: got fractional float labels \(e\.g\. 0\.25\), allowed: whole-number class labels .*; for regression targets use mse/mae or an evaluate function$"  # fmt: skip


def test_fractional_float_labels_are_refused_not_truncated() -> None:
    # truncated, [0.25, 0.9, ...] became class 0 and every metric looked perfect
    y = torch.tensor([0.25, 0.9, 0.5, 0.0, 0.1, 0.7])
    with pytest.raises(MetricError, match=FRACTIONAL):
        evaluate(Fixed(LOGITS), Split(torch.arange(6.0)[:, None], y))
    for metric in (accuracy, balanced_accuracy):
        with pytest.raises(MetricError, match=FRACTIONAL):
            metric(LOGITS, y)
    with pytest.raises(MetricError, match=FRACTIONAL):
        top_k_accuracy(LOGITS, y, 2)
    # whole-number float labels are class indices: the same metrics as the int64 labels
    whole = Split(torch.arange(6.0)[:, None], LABELS.double())
    assert evaluate(Fixed(LOGITS), whole) == evaluate(Fixed(LOGITS), _split())


def test_device_of_is_where_the_first_parameter_or_buffer_lives() -> None:
    """quality, latency and regression move inputs to this device; the referee is each
    tensor's own ``.device`` (``meta`` tells it apart from the CPU default)."""
    with_param = nn.Linear(2, 2, device="meta")
    assert device_of(with_param) == with_param.weight.device == torch.device("meta")
    only_buffer = nn.Module()
    only_buffer.register_buffer("scale", torch.ones(1, device="meta"))
    assert device_of(only_buffer) == torch.device("meta")
    assert device_of(nn.ReLU()) == torch.device("cpu")  # nothing to ask: the CPU


def _ties_and_large(g: torch.Generator, v: int, n: int, c: int) -> torch.Tensor:
    """``v`` outputs of ``n`` rows: Gaussian logits, rounded ones (ties), all-equal rows, and
    large magnitudes (where a softmax without its max shift would overflow)."""
    x = torch.randn(v, n, c, generator=g)
    x[1::4] = torch.round(x[1::4] * 2) / 2
    x[2::4, ::3] = 0.0
    x[3::4] *= 1e4
    return x


@pytest.mark.parametrize("c", [2, 5, 10, 100])
@pytest.mark.parametrize("n", [1, 7, 13, 500, 1029, 7000])
def test_loss_sums_are_the_same_stacked_or_one_output_at_a_time(n: int, c: int) -> None:
    """Row-locality, checked: each output's loss sum is the same bits whether its logits are
    computed alone or stacked among others (n from 1 to past the kernel's chunk of 6,552
    samples at 5 classes, not multiples of any vector width), and equals a float64 numpy
    referee to float32 accuracy; the sum is the sequential float64 sum of the per-sample
    terms (Python's left-to-right sum of the same floats as referee)."""
    g = torch.Generator().manual_seed(n * 1000 + c)
    x = _ties_and_large(g, 8, n, c)
    y = torch.randint(0, c, (n,), generator=g)
    together = loss_sums(classes_first(x), y)
    alone = torch.cat([loss_sums(classes_first(x[v : v + 1]), y) for v in range(len(x))])
    assert torch.equal(together, alone)
    a = x.double().numpy()
    m = a.max(2, keepdims=True)
    lse = np.log(np.exp(a - m).sum(2)) + m[..., 0]
    ref = (lse - np.take_along_axis(a, y.numpy()[None, :, None], 2)[..., 0]).sum(1)
    assert np.allclose(together.numpy(), ref, rtol=1e-5, atol=1e-5 * n)
    per = -torch.log_softmax(x[0].t().contiguous()[None], 1)[0].gather(0, y[None])[0]
    assert float(together[0]) == sum(per.double().tolist())


def test_one_evaluation_and_the_helpers_agree_exactly() -> None:
    """evaluate() of one output is quality_of over its counts and loss_sums of it alone."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(50, 4, generator=g)
    y = torch.randint(0, 4, (50,), generator=g)
    got = evaluate(Fixed(x), Split(torch.arange(50, dtype=torch.float32)[:, None], y))
    correct = [int(((x.argmax(1) == y) & (y == k)).sum()) for k in range(4)]
    count = [int((y == k).sum()) for k in range(4)]
    want = quality_of(correct, count, float(loss_sums(classes_first(x[None]), y)[0]), 50, {})
    assert got == want
    assert got.balanced_accuracy == math.fsum(
        a / b for a, b in zip(correct, count, strict=True) if b
    ) / sum(1 for b in count if b)


@pytest.mark.parametrize(("n", "c"), [(1, 2), (13, 5), (512, 5), (1029, 10)])
def test_loss_sums_read_by_label_picks_are_the_same_bits(n: int, c: int) -> None:
    """The population reads each sample's term at ``label_picks`` (one ``index_select`` of
    the flat log-probabilities) instead of a ``gather``: the same bits, with ties, large
    logits, -inf and NaN; the picks are numpy's ``ravel_multi_index`` of (label, sample)."""
    g = torch.Generator().manual_seed(n + c)
    x = _ties_and_large(g, 8, n, c)
    x[5, 0, 0] = -math.inf
    x[6, -1, -1] = math.nan
    y = torch.randint(0, c, (n,), generator=g)
    picks = label_picks(y)
    assert picks.tolist() == np.ravel_multi_index((y.numpy(), np.arange(n)), (c, n)).tolist()
    got, want = loss_sums(classes_first(x), y, picks), loss_sums(classes_first(x), y)
    assert torch.equal(got.nan_to_num(0.0, 1.0, -1.0), want.nan_to_num(0.0, 1.0, -1.0))
    assert torch.equal(got.isnan(), want.isnan()) and bool(got.isnan()[6])


def test_top_k_ranks_ties_by_class_index_like_a_stable_sort() -> None:
    """Referee: numpy's stable argsort of the negated logits, which orders equal logits by
    class index; a hit is the label within its first k. Logits of a few integer values tie
    often; all equal, the hit is ``label < k``. The population path counts the same hits."""
    from quantsearch.metrics.population import PopulationQuality

    g = torch.Generator().manual_seed(0)
    logits = torch.randint(0, 3, (400, 6), generator=g).float()
    logits[:50] = 0.0
    labels = torch.randint(0, 6, (400,), generator=g)
    order = np.argsort(-logits.numpy(), axis=1, kind="stable")
    for k in (1, 2, 3, 5):
        want = float(np.mean([labels[i].item() in order[i, :k] for i in range(len(labels))]))
        assert top_k_accuracy(logits, labels, k) == want
        got = evaluate(nn.Identity(), Split(logits, labels), top_k=(k,), batch_size=64)
        assert got.top_k[k] == want
        pq = PopulationQuality(2, 6, ks=(k,))
        pq.add([logits, logits.t().contiguous().t()], labels)  # a transposed layout too
        assert [q.top_k[k] for q in pq.results()] == [want, want]
    assert top_k_accuracy(torch.zeros(6, 6), torch.arange(6), 2) == 2 / 6
