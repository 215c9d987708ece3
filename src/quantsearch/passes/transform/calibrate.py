"""Activation ranges from one float forward pass, for ``frac_width = "auto"``.

Like MASE's profile-statistics pass, :func:`calibrate` runs calibration samples through the
float graph once (an ``fx.Interpreter``, in eval mode, without gradients) and records, for
every call node, the range of its tensor inputs (``data_in``, all inputs together) and of its
output (``data_out``). A search calls it once per run, not per trial.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, fx, nn

from quantsearch.errors import ConfigError
from quantsearch.graph import _tensors  # tensors in nested args, as trace records them
from quantsearch.passes.transform.graph_view import CALL_OPS

__all__ = ["METHODS", "CalibrationStats", "calibrate"]

METHODS = ("minmax", "percentile")


@dataclass(frozen=True)
class CalibrationStats:
    """Per-node activation ranges: ``ranges[node][role] = (lo, hi)``.

    Attributes:
        method: ``minmax`` (the extreme values) or ``percentile`` (nearest-rank percentiles
            ``100 - p`` and ``p``, which ignore rare outliers).
        percentile: ``p`` for ``percentile``, else ``None``.
        samples: how many samples were run.
        ranges: node name -> ``{"data_in": (lo, hi), "data_out": (lo, hi)}``.
    """

    method: str
    percentile: float | None
    samples: int
    ranges: dict[str, dict[str, tuple[float, float]]] = field(default_factory=dict)

    def range(self, node: str, role: str) -> tuple[float, float] | None:
        """``(lo, hi)`` of ``role`` (``data_in``/``data_out``) at ``node``, if recorded."""
        return self.ranges.get(node, {}).get(role)

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "percentile": self.percentile,
            "samples": self.samples,
            "ranges": {
                n: {r: list(v) for r, v in roles.items()} for n, roles in self.ranges.items()
            },
        }


def _float_tensors(value: Any) -> list[Tensor]:
    return [t for t in _tensors(value) if t.is_floating_point()]


def _range(t: Tensor, percentile: float | None) -> tuple[float, float] | None:
    flat = t.detach().reshape(-1)
    n = flat.numel()
    if n == 0:
        return None
    if percentile is None:
        lo, hi = torch.aminmax(flat)
        return float(lo), float(hi)
    # nearest rank: the smallest value with at least p% of the data at or below it
    k_hi = min(n, max(1, math.ceil(percentile / 100 * n)))
    k_lo = min(n, max(1, n - k_hi + 1))
    return float(flat.kthvalue(k_lo).values), float(flat.kthvalue(k_hi).values)


def _union(ranges: list[tuple[float, float] | None]) -> tuple[float, float] | None:
    known = [r for r in ranges if r is not None]
    if not known:
        return None
    return min(r[0] for r in known), max(r[1] for r in known)


class _RangeRecorder(fx.Interpreter):
    def __init__(self, gm: fx.GraphModule, percentile: float | None) -> None:
        super().__init__(gm)
        self.percentile = percentile
        self.ranges: dict[str, dict[str, tuple[float, float]]] = {}

    def run_node(self, n: fx.Node) -> Any:
        if n.op != "call_module" or not _hooked(mod := self.fetch_attr(str(n.target))):
            result = super().run_node(n)
            if n.op in CALL_OPS:
                ins = [t for a in n.all_input_nodes for t in _float_tensors(self.env[a])]
                self._record(n, ins, result)
            return result
        # the quantized layer rounds what its forward gets (after the pre-hooks) and gives
        # (before the forward hooks): seen by hooks of our own, last and first, removed after
        seen: dict[str, Any] = {}

        def take_in(_: nn.Module, args: Any) -> None:
            seen["in"] = args

        def take_out(_: nn.Module, __: Any, out: Any) -> None:
            seen["out"] = out

        handles = [
            mod.register_forward_pre_hook(take_in),
            mod.register_forward_hook(take_out, prepend=True),
        ]
        try:
            result = super().run_node(n)
        finally:
            for h in handles:
                h.remove()
        self._record(n, _float_tensors(seen.get("in")), seen.get("out"))
        return result

    def _record(self, n: fx.Node, ins: list[Tensor], out: Any) -> None:
        p = self.percentile
        roles = {
            "data_in": _union([_range(t, p) for t in ins]),
            "data_out": _union([_range(t, p) for t in _float_tensors(out)]),
        }
        self.ranges[n.name] = {r: v for r, v in roles.items() if v is not None}


def _hooked(mod: nn.Module) -> bool:
    return bool(mod._forward_hooks or mod._forward_pre_hooks)


def calibrate(
    gm: fx.GraphModule,
    x: Tensor | tuple[Tensor, ...],
    *,
    method: str = "minmax",
    percentile: float = 99.9,
) -> CalibrationStats:
    """Record every node's input and output range over the samples ``x`` (one forward pass).

    Args:
        gm: the float graph (left unchanged; run in eval mode without gradients).
        x: calibration samples from the training split, batch first (a tuple of tensors for
            a graph with several inputs).
        method: ``minmax`` or ``percentile``.
        percentile: ``p`` in ``(50, 100]`` for ``percentile``: ranges ``[P(100-p), P(p)]``.

    Raises:
        ConfigError: an unknown method, a percentile out of range, or no samples.

    Example:
        >>> import torch
        >>> from quantsearch.graph import trace
        >>> gm = trace(torch.nn.Sequential(torch.nn.ReLU()), torch.ones(1, 3))
        >>> stats = calibrate(gm, torch.tensor([[-2.0, 0.5, 3.0]]))
        >>> stats.range("_0", "data_in"), stats.range("_0", "data_out")
        ((-2.0, 3.0), (0.0, 3.0))
    """
    if method not in METHODS:
        raise ConfigError(f"calibration method: got {method!r}, allowed: one of {list(METHODS)}")
    if method == "percentile" and not 50 < percentile <= 100:
        raise ConfigError(
            f"calibration percentile: got {percentile}, allowed: a number in (50, 100]"
        )
    inputs = x if isinstance(x, tuple) else (x,)
    if not inputs or not all(
        isinstance(t, Tensor) and t.ndim > 0 and t.shape[0] > 0 for t in inputs
    ):
        raise ConfigError("calibration needs tensors of at least one sample each (batch first)")
    modes = [(m, m.training) for m in gm.modules()]
    gm.eval()
    try:
        with torch.no_grad():
            recorder = _RangeRecorder(gm, percentile if method == "percentile" else None)
            recorder.run(*inputs)
    finally:
        for m, mode in modes:  # restore each module's own flag, not one for all
            m.training = mode
    return CalibrationStats(
        method=method,
        percentile=percentile if method == "percentile" else None,
        samples=int(inputs[0].shape[0]),
        ranges=recorder.ranges,
    )
