"""2-D max pooling in the faster of two memory layouts: the same values, chosen by timing.

On the CPU, torch's ``max_pool2d`` over a contiguous (NCHW) tensor works plane by plane, about
400 ns a plane of 8x8 on the 2-core machine of BENCHMARKS.md (torch 2.13): pooling cnn-digits'
360 validation samples of 16 channels takes 2.5 ms, more than its three convolutions. The same
call on a channels-last copy of its input vectorises over the channels and, both copies
included, takes 0.5 ms. Few channels or large planes reverse it (a (8, 3, 224, 224) input: 7 ms
NCHW against 12 ms), so :class:`MaxPoolLayout` times both ways per node and input (shape, dtype,
strides) on the calls the evaluation makes anyway, two each in turn, and then keeps the faster;
on other devices, and for any other call, it calls as given.

Exactness. Max pooling picks one element of each window, visiting the window in the same order
in both kernels, so the two layouts give the same bits: NaN, infinities and signed zeros
included (``tests/passes/transform/test_pool_layout.py``, against torch's own NCHW kernel). The
result is made contiguous, the layout the NCHW call returns, so later nodes see the same tensor.
The timing decides the speed of an evaluation, never its values.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn

from quantsearch.passes.transform.modules import submodule

__all__ = ["MaxPoolLayout"]

# channels-last must win by this factor (timing noise must not flip a near tie back and forth)
MARGIN = 0.8
TRIALS = 2  # calls each way, alternating, before a node's input is decided (minimum of each)
_FUNCTIONS = (F.max_pool2d, torch.max_pool2d)


class MaxPoolLayout:
    """Calls a float node, a 2-D max pooling in the faster layout (see the module docstring).

    ``force``: ``True`` or ``False`` always takes channels-last or not, instead of timing (for
    tests and for a benchmark's A/B); ``None`` times each node's input on its first calls.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> x, pool = torch.randn(8, 16, 6, 6), nn.MaxPool2d(2)
        >>> torch.equal(MaxPoolLayout(force=True).call("pool", pool, (x,), {}), pool(x))
        True
    """

    def __init__(self, force: bool | None = None) -> None:
        self.force = force
        self._faster: dict[tuple[Any, ...], bool] = {}  # (node, shape, dtype, strides)
        self._times: dict[tuple[Any, ...], tuple[list[float], list[float]]] = {}  # not yet

    def call(
        self, name: str, fn: Callable[..., Any], args: tuple[Any, ...], kw: dict[str, Any]
    ) -> Any:
        """``fn(*args, **kw)``, the call of the node named ``name``: a 2-D max pooling of a CPU
        batch may run on a channels-last copy of its input (the same values, contiguous)."""
        if args and _max_pool2d(fn, args, kw):
            return self.run(name, lambda t: fn(t, *args[1:], **kw), args[0])
        return fn(*args, **kw)

    def attach(self, gm: fx.GraphModule) -> None:
        """Route ``gm``'s own ``nn.MaxPool2d`` modules (not indices-returning) through
        :meth:`run`: each instance's ``forward`` is set, its class and attributes unchanged.
        For a module ``gm`` owns (a quantized copy), never a user's."""
        for node in gm.graph.nodes:
            if node.op == "call_module":
                module = submodule(gm, str(node.target))
                if type(module) is nn.MaxPool2d and not module.return_indices:
                    module.forward = _Routed(self, node.name, module)  # type: ignore[method-assign,assignment]

    def run(self, name: str, pool: Callable[[torch.Tensor], Any], x: Any) -> Any:
        """``pool(x)``, or ``pool`` of a channels-last copy of ``x`` made contiguous where
        that is faster (decided per node and input by its first :data:`TRIALS` calls)."""
        if not (isinstance(x, torch.Tensor) and x.dim() == 4 and x.device.type == "cpu"):
            return pool(x)
        key = (name, tuple(x.shape), x.dtype, x.stride())
        faster = self._faster.get(key)
        if faster is None and self.force is not None:
            faster = self._faster[key] = self.force
        if faster is not None:
            return _last(pool, x) if faster else pool(x)
        # Timed on the calls the evaluation makes anyway: each way in turn, no extra call.
        times = self._times.setdefault(key, ([], []))
        way = len(times[0]) > len(times[1])
        t0 = time.perf_counter()
        out = _last(pool, x) if way else pool(x)
        times[way].append(time.perf_counter() - t0)
        if len(times[1]) == TRIALS:
            self._faster[key] = min(times[1]) < MARGIN * min(times[0])
            self._times.pop(key, None)
        return out


def _last(pool: Callable[[torch.Tensor], Any], x: torch.Tensor) -> Any:
    """``pool`` on a channels-last copy of ``x``, its result made contiguous."""
    return pool(x.contiguous(memory_format=torch.channels_last)).contiguous()


class _Routed:
    """A ``MaxPool2d``'s ``forward`` through :meth:`MaxPoolLayout.run` (a class, not a
    closure, so a deep copy of the module routes the copy, not the original)."""

    def __init__(self, layout: MaxPoolLayout, name: str, module: nn.MaxPool2d) -> None:
        self.layout, self.name, self.module = layout, name, module

    def __call__(self, x: Any) -> Any:
        return self.layout.run(self.name, lambda t: nn.MaxPool2d.forward(self.module, t), x)


def _max_pool2d(fn: Callable[..., Any], args: tuple[Any, ...], kw: dict[str, Any]) -> bool:
    """Whether ``fn(*args, **kw)`` is a 2-D max pooling that returns one tensor."""
    if type(fn) is nn.MaxPool2d:
        return not fn.return_indices and len(args) == 1 and not kw
    if fn in _FUNCTIONS:
        return not kw.get("return_indices", False) and not (len(args) > 6 and args[6])
    return False
