"""One trial's evaluation: configure the prepared model with a config, then measure it.

The pristine traced model is never modified. Each thread prepares it once
(:class:`~quantsearch.passes.transform.slots.PreparedModel`): a trial fills the quantizer slots
of that module (weights memoised per node, role and format) instead of building and compiling a
new graph, and gives outputs bit-identical to ``quantize(gm, config)``. The validation tensors
are materialised once, so a trial costs a slot fill and one forward pass.
"""

from __future__ import annotations

import copy
import hashlib
import math
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import fx

from quantsearch.data import Split
from quantsearch.metrics import compute_metrics
from quantsearch.passes.transform import ResolvedConfig, resolve
from quantsearch.passes.transform.slots import PreparedModel

__all__ = ["Evaluation", "Evaluator", "config_hash"]


def config_hash(canonical: str) -> str:
    """A short, stable digest of a canonical config string (the cache key)."""
    return hashlib.sha1(canonical.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Evaluation:
    metrics: dict[str, float] | None
    error: str | None
    seconds: float


def _device(device: str | torch.device) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class Evaluator:
    """Evaluates per-layer format choices on a fixed validation split.

    Args:
        gm: the traced float model (pristine; shared by every trial, never mutated).
        data: the validation samples every trial is measured on.
        metrics: metric names to compute for every trial.
        quantize_config: an optional ``[quantize]`` config; the search's choices override it.
        calibration: activation statistics for ``frac_width = "auto"``, gathered once.
        batch_size: evaluation batch size.
        device: where trials run: ``"auto"`` (CUDA when there is one, else the CPU), ``"cpu"``,
            ``"cuda"``... Off the CPU the evaluator holds copies of ``gm`` and ``data`` moved
            there once (``gm`` itself is untouched), so a trial makes no host transfer.
    """

    def __init__(
        self,
        gm: fx.GraphModule,
        data: Split,
        metrics: Sequence[str],
        *,
        quantize_config: Any = None,
        calibration: Any = None,
        batch_size: int = 1024,
        device: str | torch.device = "auto",
    ) -> None:
        self.device = _device(device)
        on_cpu = self.device.type == "cpu"
        self.gm = gm if on_cpu else copy.deepcopy(gm).to(self.device)
        self.data = data if on_cpu else Split(data.x.to(self.device), data.y.to(self.device))
        self.metrics = tuple(metrics)
        self.calibration = calibration
        self.batch_size = batch_size
        self._base: dict[str, dict[str, Any]] = (
            resolve(gm, quantize_config, calibration=calibration).to_dict()
            if quantize_config is not None
            else {}
        )
        self._baseline: dict[str, float] | None = None
        self._baseline_lock = threading.Lock()
        self._local = threading.local()  # one PreparedModel per thread: apply_ mutates it

    def prepared(self) -> PreparedModel:
        """This thread's prepared model (built on first use)."""
        pm: PreparedModel | None = getattr(self._local, "pm", None)
        if pm is None:
            pm = self._local.pm = PreparedModel(self.gm, self.calibration)
        return pm

    def resolve(
        self, layer_formats: Mapping[str, Mapping[str, Mapping[str, Any]]]
    ) -> ResolvedConfig:
        """The full per-node config: the ``[quantize]`` base with the search's choices on top."""
        merged: dict[str, dict[str, Any]] = {n: dict(r) for n, r in self._base.items()}
        for node, roles in layer_formats.items():
            merged.setdefault(node, {}).update(roles)
        return ResolvedConfig.from_dict(
            merged, gm=self.gm, calibration=self.calibration, key="search"
        )

    def baseline(self) -> dict[str, float]:
        """Metrics of the float model, measured once per evaluator: every study and every run
        of a comparison that shares this evaluator shares the one measurement."""
        with self._baseline_lock:
            if self._baseline is None:
                self._baseline = compute_metrics(
                    self.gm, self.metrics, data=self.data, batch_size=self.batch_size
                )
            return dict(self._baseline)

    def evaluate(self, resolved: ResolvedConfig) -> Evaluation:
        """Quantize and measure; an exception or a NaN becomes an :class:`Evaluation` error."""
        t0 = time.perf_counter()
        try:
            qgm = self.prepared().apply_(resolved)
            metrics = compute_metrics(qgm, self.metrics, data=self.data, batch_size=self.batch_size)
        except Exception as exc:  # recorded on the trial with its config; the search goes on
            return Evaluation(None, f"{type(exc).__name__}: {exc}", time.perf_counter() - t0)
        bad = sorted(k for k, v in metrics.items() if not math.isfinite(v))
        if bad:
            return Evaluation(metrics, f"non-finite metric(s) {bad}", time.perf_counter() - t0)
        return Evaluation(metrics, None, time.perf_counter() - t0)

    def evaluate_many(self, resolved: Sequence[ResolvedConfig]) -> list[Evaluation]:
        """Evaluate several configs known in advance; ``result[i]`` is ``evaluate(resolved[i])``.

        The metrics equal those of one-at-a-time :meth:`evaluate` calls exactly (an error too
        is reported per config). Each evaluation's ``seconds`` is its share of the wall time.
        """
        return [self.evaluate(rc) for rc in resolved]
