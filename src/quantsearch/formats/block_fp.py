"""Block floating point: one shared exponent per block of elements, a signed mantissa each."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from quantsearch.errors import ConfigError
from quantsearch.formats.registry import FORMATS
from quantsearch.formats.base import BiasedExponent, NumberFormat
from quantsearch.formats.ste import round_ste

__all__ = ["BlockFP"]


@FORMATS.register("block_fp")
@dataclass(frozen=True)
class BlockFP(BiasedExponent, NumberFormat):
    """Blocks of ``block_size`` elements along ``block_dim`` share an exponent (MSFP-style).

    A block whose largest magnitude lies in ``[2^e, 2^(e+1))`` uses the step
    ``2^(e - mantissa_width + 2)``: each element is a ``mantissa_width``-bit two's-complement
    integer (sign included) times that step, rounded half to even and saturating. ``e`` is
    clamped to the ``exponent_width``-bit range ``[-bias, 2^E - 1 - bias]``. The last block of a
    dimension that ``block_size`` does not divide is shorter.

    Attributes:
        mantissa_width: bits per element, sign included, at least 2.
        exponent_width: bits of the shared exponent.
        exponent_bias: ``None`` means ``2^(E-1) - 1``.
        block_size: elements sharing one exponent.
        block_dim: the dimension blocks run along (``-1``: the last, the dot-product axis of a
            linear layer's weight).

    Example:
        >>> import torch
        >>> q = BlockFP(mantissa_width=4, block_size=4)
        >>> q.quantize(torch.tensor([1.0, 0.3, -0.55, 0.05, 3.9, 1.1, 0.125, -2.0])).tolist()
        [1.0, 0.25, -0.5, 0.0, 3.5, 1.0, 0.0, -2.0]
        >>> q.bits_per_element   # 4 mantissa bits + 8 exponent bits / 4 elements
        6.0
    """

    name: ClassVar[str] = "block_fp"

    mantissa_width: int
    exponent_width: int = 8
    exponent_bias: int | None = None
    block_size: int = 16
    block_dim: int = -1

    def __post_init__(self) -> None:
        if not 2 <= self.mantissa_width <= 24:
            raise self._invalid(
                f"mantissa_width must satisfy 2 <= mantissa_width <= 24 (got {self.mantissa_width})"
            )
        if not 1 <= self.exponent_width <= 8:
            raise self._invalid(
                f"exponent_width must satisfy 1 <= exponent_width <= 8 (got {self.exponent_width})"
            )
        if self.block_size < 1:
            raise self._invalid(f"block_size must be >= 1 (got {self.block_size})")
        self._default_bias()

    @property
    def bits_per_element(self) -> float:
        return self.mantissa_width + self.exponent_width / self.block_size

    def quantize(self, x: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        if x.ndim == 0:
            return self.quantize(x.reshape(1)).reshape(())
        if not -x.ndim <= self.block_dim < x.ndim:
            raise ConfigError(
                f"block_fp: block_dim {self.block_dim} is out of range for a {x.ndim}-d tensor "
                f"of shape {tuple(x.shape)}"
            )
        xt = x.movedim(self.block_dim, -1)
        n = xt.shape[-1]
        pad = -n % self.block_size
        blocks = F.pad(xt, (0, pad)).unflatten(-1, (-1, self.block_size))
        with torch.no_grad():
            amax = blocks.detach().abs().amax(dim=-1, keepdim=True)
            _, e = torch.frexp(amax)  # floor(log2 amax) = e - 1
            exp = (e - 1).clamp_(-self.bias, 2**self.exponent_width - 1 - self.bias)
            step = torch.ldexp(torch.ones_like(amax), exp - (self.mantissa_width - 2))
        top = 2 ** (self.mantissa_width - 1)
        q = torch.clamp(round_ste(blocks / step), -top, top - 1) * step
        return q.flatten(-2)[..., :n].movedim(-1, self.block_dim)

    def short(self) -> str:
        return (
            f"block_fp(m{self.mantissa_width},e{self.exponent_width},b{self.bias},"
            f"{self.block_size}@{self.block_dim})"
        )
