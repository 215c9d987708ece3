"""Minifloat: sign, ``exponent_width`` exponent bits, ``mantissa_width`` mantissa bits."""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from quantsearch.formats.base import BiasedExponent, NumberFormat, largest_at_most, match_short
from quantsearch.formats.registry import FORMATS

if TYPE_CHECKING:
    import torch
    from torch import Tensor

__all__ = ["Minifloat"]

_SHORT = re.compile(r"minifloat\(e(?P<e>\d+)m(?P<m>\d+),b(?P<b>-?\d+)(?P<nosub>,nosub)?\)")


@functools.cache
def _top(max_exponent: int, mantissa_width: int, dtype: torch.dtype) -> float:
    """The largest minifloat value ``dtype`` holds: the format's own largest unless the format
    reaches past the dtype (``E = 8`` past float32, ``E = 5`` past float16)."""
    import torch  # lazy: parsing and printing a format must not load torch (see formats.base)

    dtype_exp = math.frexp(torch.finfo(dtype).max)[1] - 1  # floor(log2(max))
    exp = min(max_exponent, dtype_exp)
    return largest_at_most(2.0**exp * (2.0 - 2.0**-mantissa_width), dtype)


@FORMATS.register("minifloat")
@dataclass(frozen=True)
class Minifloat(BiasedExponent, NumberFormat):
    """A small IEEE-like float without infinities or NaN, saturating, round half to even.

    Exponent codes ``1 .. 2^E - 1`` are normal: ``2^(code - bias) * (1 + m / 2^M)``. Code 0
    holds the subnormals ``2^(1 - bias) * m / 2^M`` when ``subnormals`` is true; otherwise it
    holds only zero, and magnitudes below the smallest normal round to 0 or to it. Ties go to
    the even mantissa, as in IEEE 754; with ``mantissa_width = 0`` (powers of two) to the larger
    magnitude, except that a tie between 0 and the smallest normal (no subnormals, or
    ``mantissa_width = 0``) goes to 0.

    Attributes:
        exponent_width: ``E``, at least 1.
        mantissa_width: ``M``, at least 0.
        exponent_bias: ``None`` means the IEEE bias ``2^(E-1) - 1``.
        subnormals: whether code 0 holds subnormal numbers.

    Example:
        >>> import torch
        >>> q = Minifloat(2, 1)   # bias 1: 0, 0.5, 1, 1.5, 2, 3, 4, 6
        >>> q.quantize(torch.tensor([0.3, 1.25, 1.75, 5.5, 100.0])).tolist()
        [0.5, 1.0, 2.0, 6.0, 6.0]
        >>> str(q), q.bits_per_element
        ('minifloat(e2m1,b1)', 4)
    """

    name: ClassVar[str] = "minifloat"

    exponent_width: int
    mantissa_width: int
    exponent_bias: int | None = None
    subnormals: bool = True

    def __post_init__(self) -> None:
        if not 1 <= self.exponent_width <= 8:
            raise self._invalid("exponent_width", "an integer in [1, 8]")
        if not 0 <= self.mantissa_width <= 23:
            raise self._invalid("mantissa_width", "an integer in [0, 23]")
        self._default_bias()

    @property
    def max_value(self) -> float:
        return 2.0**self.max_exponent * (2.0 - 2.0**-self.mantissa_width)

    @property
    def bits_per_element(self) -> int:
        return 1 + self.exponent_width + self.mantissa_width

    def quantize(self, x: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        # lazy: parsing and printing a format must not load torch (see formats.base)
        import torch

        from quantsearch.formats.ste import round_ste

        with torch.no_grad():
            a = x.detach().abs()
            _, e = torch.frexp(a)  # a = m * 2^e with m in [0.5, 1): floor(log2 a) = e - 1
            exp = (e - 1).clamp_(self.min_exponent, self.max_exponent)
            if self.subnormals:
                step = torch.ldexp(torch.ones_like(a), exp - self.mantissa_width)
            else:
                # below the smallest normal the only neighbours are 0 and 2^min_exponent
                tiny = a < 2.0**self.min_exponent
                step = torch.ldexp(
                    torch.ones_like(a), torch.where(tiny, exp, exp - self.mantissa_width)
                )
        q = round_ste(x / step) * step
        top = _top(self.max_exponent, self.mantissa_width, x.dtype)
        return torch.clamp(q, -top, top)

    def short(self) -> str:
        tail = "" if self.subnormals else ",nosub"
        return f"minifloat(e{self.exponent_width}m{self.mantissa_width},b{self.bias}{tail})"

    @classmethod
    def from_str(cls, text: str) -> Minifloat | None:
        """Read :meth:`short` back: ``minifloat(e4m3,b7)``."""
        g = match_short(_SHORT, text)
        if g is None:
            return None
        return cls(int(g["e"]), int(g["m"]), int(g["b"]), subnormals=not g["nosub"])
