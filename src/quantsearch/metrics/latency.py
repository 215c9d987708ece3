"""Inference latency, measured the way benchmark harnesses do.

``warmup`` untimed calls (allocator, caches, lazy initialisation), then ``repeats`` timed calls,
each timed on its own: with ``time.perf_counter_ns`` on the CPU, with CUDA events around the call
and a synchronisation after it on a GPU (kernel launches are asynchronous, so a host clock alone
would time the launch, not the work). The median and interquartile range are reported because a
timing distribution has a long right tail (interrupts, frequency scaling); the minimum is the
least-disturbed run.

.. warning::
    Fake-quantized models run float kernels: their weights and activations are float32 values
    on a quantized grid, so their measured latency is the float model's (or slower, for the
    quantize/dequantize arithmetic) and says nothing about integer hardware. Use ``bitops`` and
    ``model_size_bits`` as the cost proxies for that.

Example:
    >>> import torch
    >>> r = measure_latency(torch.nn.Linear(16, 5), torch.ones(8, 16), warmup=2, repeats=5)
    >>> r.repeats, r.batch_size, r.device, r.min_ms <= r.median_ms
    (5, 8, 'cpu', True)
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import fx, nn

from quantsearch.data import Split
from quantsearch.errors import MetricError
from quantsearch.graph import META_KEY, NodeInfo
from quantsearch.metrics.quality import device_of

__all__ = ["LatencyOptions", "LatencyResult", "latency_inputs", "measure_latency"]


@dataclass(frozen=True)
class LatencyOptions:
    """How :func:`quantsearch.metrics.compute_metrics` measures ``latency_ms``.

    Attributes:
        warmup: untimed calls before timing.
        repeats: timed calls.
        batch_size: samples per call (1: single-stream latency).
        threads: CPU threads during the measurement (``None``: leave torch's setting).
        device: where to run (``None``: where the model's parameters are).
    """

    warmup: int = 10
    repeats: int = 50
    batch_size: int = 1
    threads: int | None = None
    device: str | None = None


@dataclass(frozen=True)
class LatencyResult:
    """Timing statistics of one measurement, in milliseconds per call."""

    median_ms: float
    iqr_ms: float  # q3 - q1
    q1_ms: float
    q3_ms: float
    min_ms: float
    mean_ms: float
    per_sample_ms: float  # median_ms / batch_size
    batch_size: int
    repeats: int
    warmup: int
    device: str
    threads: int
    timer: str  # "perf_counter_ns" or "cuda_event"
    times_ms: tuple[float, ...]

    def metrics(self) -> dict[str, float]:
        """The registered metrics it gives, ``latency_ms`` and ``latency_per_sample_ms``, each
        with its spread (``<name>_iqr``)."""
        per = self.iqr_ms / self.batch_size if self.batch_size else self.iqr_ms
        return {
            "latency_ms": self.median_ms,
            "latency_per_sample_ms": self.per_sample_ms,
            "latency_ms_iqr": self.iqr_ms,  # the spread, kept beside the noisy metric
            "latency_per_sample_ms_iqr": per,
        }

    def as_dict(self, *, with_times: bool = False) -> dict[str, Any]:
        d = asdict(self)
        if not with_times:
            d.pop("times_ms")
        return d


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise MetricError(f"latency {name}: got {value!r}, allowed: an integer >= {minimum}")


def measure_latency(
    model: nn.Module,
    inputs: torch.Tensor | tuple[torch.Tensor, ...],
    *,
    warmup: int = 10,
    repeats: int = 50,
    device: str | torch.device | None = None,
    threads: int | None = None,
) -> LatencyResult:
    """Time ``model(*inputs)`` in eval mode under ``torch.inference_mode()``.

    Args:
        model: the model; it is not modified (a copy is moved when ``device`` differs, and its
            training mode is restored).
        inputs: one tensor or a tuple, one per ``forward`` argument; the first one's leading
            dimension is the batch size.
        warmup: untimed calls first.
        repeats: timed calls.
        device: run there (``None``: the model's device).
        threads: CPU threads while timing (``None``: torch's current setting), restored after.

    Returns:
        Median, interquartile range, minimum, mean and per-sample time, with the device, thread
        count, batch size and timer recorded.

    Raises:
        MetricError: on a bad count, an unavailable device or inputs without a batch dimension.
    """
    _check_int("warmup", warmup, 0)
    _check_int("repeats", repeats, 1)
    if threads is not None:
        _check_int("threads", threads, 1)
    xs = (inputs,) if isinstance(inputs, torch.Tensor) else tuple(inputs)
    if not xs or not isinstance(xs[0], torch.Tensor) or xs[0].ndim == 0:
        raise MetricError("latency inputs must start with a tensor that has a batch dimension")
    try:
        dev = torch.device(device) if device is not None else device_of(model)
    except RuntimeError as exc:
        raise MetricError(
            f"latency device: got {device!r}, allowed: a torch device ({exc})"
        ) from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise MetricError(f"latency device is {str(dev)!r} but no CUDA device is available")
    here = device_of(model)
    if dev.type != here.type or (dev.index is not None and dev.index != (here.index or 0)):
        model = copy.deepcopy(model).to(dev)
    else:
        dev = here
    xs = tuple(x.to(dev) for x in xs)
    old_threads = torch.get_num_threads()
    was_training = model.training
    cuda = dev.type == "cuda"
    times: list[float] = []
    try:
        if threads is not None:
            torch.set_num_threads(threads)
        model.eval()
        with torch.inference_mode():
            for _ in range(warmup):
                model(*xs)
            if cuda:
                torch.cuda.synchronize(dev)
                for _ in range(repeats):
                    start = torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call, unused-ignore]
                    end = torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call, unused-ignore]
                    start.record()
                    model(*xs)
                    end.record()
                    end.synchronize()
                    times.append(float(start.elapsed_time(end)))
            else:
                for _ in range(repeats):
                    t0 = time.perf_counter_ns()
                    model(*xs)
                    times.append((time.perf_counter_ns() - t0) / 1e6)
        used_threads = torch.get_num_threads()
    finally:
        model.train(was_training)
        if threads is not None:
            torch.set_num_threads(old_threads)
    q1, median, q3 = (float(v) for v in np.percentile(times, [25, 50, 75]))
    batch = int(xs[0].shape[0])
    return LatencyResult(
        median_ms=median,
        iqr_ms=q3 - q1,
        q1_ms=q1,
        q3_ms=q3,
        min_ms=min(times),
        mean_ms=sum(times) / len(times),
        per_sample_ms=median / batch if batch else median,
        batch_size=batch,
        repeats=repeats,
        warmup=warmup,
        device=str(dev),
        threads=used_threads,
        timer="cuda_event" if cuda else "perf_counter_ns",
        times_ms=tuple(times),
    )


def latency_inputs(
    gm: fx.GraphModule, batch_size: int, data: Split | None = None
) -> tuple[torch.Tensor, ...]:
    """Inputs for timing: the first ``batch_size`` samples of ``data``, else seeded random
    tensors shaped like the traced inputs with the batch dimension set to ``batch_size``."""
    if data is not None:
        return (data.x[:batch_size],)
    gen = torch.Generator().manual_seed(0)
    xs = []
    for node in gm.graph.nodes:
        if node.op != "placeholder":
            continue
        ni = node.meta.get(META_KEY)
        if not isinstance(ni, NodeInfo) or not ni.outputs:
            raise MetricError(
                f"latency_ms needs data or a graph traced by quantsearch.trace (input {node.name!r} "
                "has no recorded shape)"
            )
        meta = ni.outputs[0]
        shape = (batch_size, *meta.shape[1:])
        dtype = getattr(torch, meta.dtype)
        if dtype.is_floating_point:
            xs.append(torch.randn(shape, generator=gen).to(dtype))
        else:
            xs.append(torch.zeros(shape, dtype=dtype))
    return tuple(xs)
