"""Straight-through estimators: exact forward values, identity (or clipped identity) gradients.

Rounding has zero gradient almost everywhere, so quantization-aware training replaces it with
the identity in the backward pass (Bengio et al., 2013; Brevitas' ``round_ste``). The forward
value is exactly ``torch.round`` (or ``floor``), never ``x + (round(x) - x).detach()``, whose
float arithmetic can land one ulp off the grid. Tensors that do not require gradients take the
plain op, so evaluation pays nothing for autograd.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import torch
from torch import Tensor

from quantsearch.formats.base import ROUNDINGS

__all__ = ["ROUNDINGS", "round_ste", "straight_through"]


def _round(y: Tensor, rounding: str, generator: torch.Generator | None) -> Tensor:
    if rounding == "nearest":
        return torch.round(y)  # round half to even
    if rounding == "floor":
        return torch.floor(y)
    if rounding == "stochastic":
        # floor(y + u), u ~ U[0, 1): rounds up with probability frac(y), so E[q] = y.
        u = torch.rand(y.shape, generator=generator, dtype=y.dtype, device=y.device)
        return torch.floor(y + u)
    raise ValueError(f"rounding must be one of {list(ROUNDINGS)} (got {rounding!r})")


class _RoundSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, y: Tensor, rounding: str, generator: torch.Generator | None) -> Tensor:
        return _round(y, rounding, generator)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None]:
        return grad, None, None


class _StraightThrough(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor, q: Tensor, passes: Tensor | None) -> Tensor:
        ctx.save_for_backward(passes)
        return q.clone()

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None]:
        (passes,) = ctx.saved_tensors
        return (grad if passes is None else grad * passes), None, None


# torch leaves Function.apply untyped; these are the signatures of the two forwards above
_apply_round = cast("Callable[[Tensor, str, torch.Generator | None], Tensor]", _RoundSTE.apply)
_apply_straight_through = cast(
    "Callable[[Tensor, Tensor, Tensor | None], Tensor]", _StraightThrough.apply
)


def round_ste(
    y: Tensor, rounding: str = "nearest", generator: torch.Generator | None = None
) -> Tensor:
    """Round ``y`` to integers; the gradient passes straight through.

    Args:
        y: values already scaled onto the integer grid.
        rounding: ``nearest`` (half to even), ``floor`` or ``stochastic``.
        generator: the random source for ``stochastic`` (the global one when ``None``).

    Example:
        >>> y = torch.tensor([0.5, 1.5, 2.7], requires_grad=True)
        >>> r = round_ste(y)
        >>> r.tolist()
        [0.0, 2.0, 3.0]
        >>> r.sum().backward(); y.grad.tolist()
        [1.0, 1.0, 1.0]
    """
    if y.requires_grad:
        return _apply_round(y, rounding, generator)
    return _round(y, rounding, generator)


def straight_through(x: Tensor, q: Tensor, passes: Tensor | None = None) -> Tensor:
    """Return ``q`` (computed from ``x`` without gradients) with gradient ``passes`` w.r.t. ``x``.

    For quantizers that are not a scale-round-clamp chain (the log format), this attaches the
    clipped straight-through gradient: 1 where ``passes`` is true (the value was not saturated),
    0 elsewhere; ``passes=None`` means 1 everywhere.

    Example:
        >>> x = torch.tensor([0.3, 9.0], requires_grad=True)
        >>> q = straight_through(x, torch.tensor([0.25, 4.0]), x.detach().abs() <= 4)
        >>> q.sum().backward(); x.grad.tolist()
        [1.0, 0.0]
    """
    if not x.requires_grad:
        return q
    mask = None if passes is None else passes.to(x.dtype)
    return _apply_straight_through(x, q, mask)
