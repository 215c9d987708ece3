"""Block floating point: one shared exponent per block of elements, a signed mantissa each."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from quantsearch.errors import ConfigError
from quantsearch.formats.base import BiasedExponent, NumberFormat, largest_at_most, match_short
from quantsearch.formats.registry import FORMATS

if TYPE_CHECKING:
    import torch
    from torch import Tensor

__all__ = ["BlockFP"]

_SHORT = re.compile(
    r"block_fp\(m(?P<m>\d+),e(?P<e>\d+),b(?P<b>-?\d+),(?P<size>\d+)@(?P<dim>-?\d+)\)"
)


BLOCK_SIZE_MAX = 2**16  # MSFP uses 16; a block longer than its dimension is the whole dimension
BLOCK_DIM_MAX = 64  # torch tensors have at most 64 dimensions


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
    elementwise: ClassVar[bool] = False

    mantissa_width: int
    exponent_width: int = 8
    exponent_bias: int | None = None
    block_size: int = 16
    block_dim: int = -1

    def __post_init__(self) -> None:
        if not 2 <= self.mantissa_width <= 24:
            raise self._invalid("mantissa_width", "an integer in [2, 24]")
        if not 1 <= self.exponent_width <= 8:
            raise self._invalid("exponent_width", "an integer in [1, 8]")
        if not 1 <= self.block_size <= BLOCK_SIZE_MAX:
            # a block is padded to block_size: 10**14 allocated ~400 TB per row
            raise self._invalid("block_size", f"an integer in [1, {BLOCK_SIZE_MAX}]")
        if not -BLOCK_DIM_MAX <= self.block_dim < BLOCK_DIM_MAX:
            raise self._invalid(
                "block_dim", f"an integer in [{-BLOCK_DIM_MAX}, {BLOCK_DIM_MAX - 1}]"
            )
        self._default_bias()

    @property
    def bits_per_element(self) -> float:
        return self.mantissa_width + self.exponent_width / self.block_size

    def storage_bits(self, shape: Sequence[int]) -> float:
        """``mantissa_width`` bits an element plus one shared exponent per block that ``shape``
        really has: a row along ``block_dim`` that ``block_size`` does not divide ends in a
        shorter block, which still stores a whole exponent (``bits_per_element`` assumes full
        blocks). A 0-d tensor is one block of one element.

        Example:
            >>> BlockFP(mantissa_width=4, block_size=16).storage_bits((4, 10))  # 4 blocks
            192
        """
        dims = list(shape) or [1]
        n = math.prod(dims)
        if n == 0 or not -len(dims) <= self.block_dim < len(dims):
            return n * self.bits_per_element  # nothing stored, or quantize refuses the shape
        along = dims[self.block_dim]
        blocks = n // along * -(-along // self.block_size)
        return self.mantissa_width * n + self.exponent_width * blocks

    def quantize(self, x: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        # lazy: parsing and printing a format must not load torch (see formats.base)
        import torch
        import torch.nn.functional as F

        from quantsearch.formats.ste import round_ste

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
        blocks = F.pad(xt, (0, pad)).reshape(*xt.shape[:-1], -1, self.block_size)
        with torch.no_grad():
            exp = self._block_exponent(blocks.detach())
            step = torch.ldexp(torch.ones_like(exp, dtype=x.dtype), exp - (self.mantissa_width - 2))
        top = 2 ** (self.mantissa_width - 1)
        scaled = round_ste(blocks / step)
        if 2.0 ** (self.max_exponent + 1) <= largest_at_most(math.inf, x.dtype):
            q = torch.clamp(scaled, -top, top - 1) * step
        else:  # -top * step = -2^(e+1) overflows the dtype: such blocks stop at -(top - 1)
            with torch.no_grad():
                low = torch.where(torch.isinf(step * top), 1 - top, -top).to(x.dtype)
            q = torch.clamp(scaled, low, torch.full_like(low, top - 1)) * step
        return q.flatten(-2)[..., :n].movedim(-1, self.block_dim)

    def _block_exponent(self, blocks: Tensor) -> Tensor:
        """Per block, the smallest ``e`` whose step ``2^(e - M + 2)`` holds every element.

        A positive element ``v`` needs ``e >= floor(log2 v)`` (``top - 1`` steps stay below
        ``2^(e+1)``); a negative one only ``e >= ceil(log2 |v|) - 1``, since ``-top`` steps
        reach ``-2^(e+1)`` exactly. Without that second rule a block whose extreme is ``-2^k``
        (what quantizing often produces) would take a larger exponent the second time, and
        quantizing twice would not give the same values.
        """
        import torch  # lazy: see quantize

        none = torch.iinfo(torch.int32).min  # zeros need no exponent
        pos_m, pos_e = torch.frexp(blocks.clamp(min=0).amax(dim=-1, keepdim=True))
        neg_m, neg_e = torch.frexp((-blocks).clamp(min=0).amax(dim=-1, keepdim=True))
        pos = torch.where(pos_m > 0, pos_e - 1, none)  # floor(log2 v) = e - 1
        neg = torch.where(neg_m > 0, neg_e - 1 - (neg_m == 0.5).to(neg_e.dtype), none)
        return torch.maximum(pos, neg).clamp_(-self.bias, self.max_exponent)

    def short(self) -> str:
        return (
            f"block_fp(m{self.mantissa_width},e{self.exponent_width},b{self.bias},"
            f"{self.block_size}@{self.block_dim})"
        )

    @classmethod
    def from_str(cls, text: str) -> BlockFP | None:
        """Read :meth:`short` back: ``block_fp(m4,e8,b127,16@-1)``."""
        g = match_short(_SHORT, text)
        if g is None:
            return None
        return cls(int(g["m"]), int(g["e"]), int(g["b"]), int(g["size"]), int(g["dim"]))
