"""Latency statistics are sane for a tiny model (no timing thresholds)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from quantsearch.errors import MetricError
from quantsearch.metrics import measure_latency


def test_sane_statistics() -> None:
    model = nn.Sequential(nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 5)).train()
    calls = []
    model.register_forward_hook(
        lambda m, i, o: calls.append((m.training, torch.is_inference_mode_enabled()))
    )
    r = measure_latency(model, torch.ones(4, 16), warmup=3, repeats=7)
    assert len(calls) == 10 and all(c == (False, True) for c in calls)
    assert model.training  # restored
    assert len(r.times_ms) == 7 and all(t > 0 for t in r.times_ms)
    assert r.min_ms <= r.q1_ms <= r.median_ms <= r.q3_ms <= max(r.times_ms)
    assert r.iqr_ms == pytest.approx(r.q3_ms - r.q1_ms) and r.iqr_ms >= 0
    assert r.per_sample_ms == pytest.approx(r.median_ms / 4)
    assert min(r.times_ms) <= r.mean_ms <= max(r.times_ms)
    assert (r.batch_size, r.repeats, r.warmup, r.device, r.timer) == (
        4,
        7,
        3,
        "cpu",
        "perf_counter_ns",
    )
    assert r.threads == torch.get_num_threads()
    assert "times_ms" not in r.as_dict() and len(r.as_dict(with_times=True)["times_ms"]) == 7


def test_threads_are_set_and_restored() -> None:
    before = torch.get_num_threads()
    r = measure_latency(nn.Linear(4, 2), (torch.ones(2, 4),), warmup=0, repeats=1, threads=1)
    assert r.threads == 1 and torch.get_num_threads() == before


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"repeats": 0}, r"^latency repeats: got 0, allowed: an integer >= 1$"),
        ({"warmup": -1}, r"^latency warmup: got -1, allowed: an integer >= 0$"),
        ({"threads": 0}, r"^latency threads: got 0, allowed: an integer >= 1$"),
        ({"device": "nonsense"}, r"^latency device: got 'nonsense', allowed: a torch device \("),
    ],
)
def test_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(MetricError, match=match):
        measure_latency(nn.Linear(4, 2), torch.ones(2, 4), **kwargs)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_events_on_gpu() -> None:
    model = nn.Linear(64, 64)
    r = measure_latency(model, torch.ones(8, 64), warmup=2, repeats=5, device="cuda")
    assert r.timer == "cuda_event" and r.device.startswith("cuda")
    assert all(t > 0 for t in r.times_ms)
    assert next(model.parameters()).device.type == "cpu"  # the caller's model is not moved
