"""Logarithmic format: zero and signed powers of two, rounded in the log domain."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from quantsearch.formats.base import BiasedExponent, NumberFormat, match_short
from quantsearch.formats.registry import FORMATS

if TYPE_CHECKING:
    import torch
    from torch import Tensor

__all__ = ["LogFormat"]

_SQRT_HALF = math.sqrt(0.5)
_SHORT = re.compile(r"log\(e(?P<e>\d+),b(?P<b>-?\d+)\)")


@FORMATS.register("log")
@dataclass(frozen=True)
class LogFormat(BiasedExponent, NumberFormat):
    """A sign bit and an ``E``-bit exponent code: code 0 is zero, code ``c`` is ``±2^(c - bias)``.

    ``log2|x|`` is rounded to the nearest integer (as MASE's log quantizer does), so the
    boundary between ``2^k`` and ``2^(k+1)`` is ``2^(k + 1/2)``. Exponents above the largest
    saturate; exponents below the smallest flush to zero.

    Attributes:
        exponent_width: ``E``, at least 1.
        exponent_bias: ``None`` means ``2^(E-1) - 1``.

    Example:
        >>> import torch
        >>> q = LogFormat(2)   # bias 1: 0, ±1, ±2, ±4
        >>> q.quantize(torch.tensor([0.6, 1.4, 1.42, -3.0, 10.0])).tolist()
        [0.0, 1.0, 2.0, -4.0, 4.0]
        >>> str(q), q.bits_per_element
        ('log(e2,b1)', 3)
    """

    name: ClassVar[str] = "log"

    exponent_width: int
    exponent_bias: int | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.exponent_width <= 8:
            raise self._invalid("exponent_width", "an integer in [1, 8]")
        self._default_bias()

    @property
    def bits_per_element(self) -> int:
        return 1 + self.exponent_width

    def quantize(self, x: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        # lazy: parsing and printing a format must not load torch (see formats.base)
        import torch

        from quantsearch.formats.ste import straight_through

        with torch.no_grad():
            a = x.detach().abs()
            m, e = torch.frexp(a)  # a = m * 2^e, m in [0.5, 1)
            # round(log2 a) = e - 1 when log2 m < -1/2, i.e. m < sqrt(1/2); decided in float64,
            # where the comparison is exact for every float32/float16 m.
            exp = e - (m.double() < _SQRT_HALF).to(e.dtype)
            flush = exp < self.min_exponent
            mag = torch.ldexp(torch.ones_like(a), exp.clamp(max=self.max_exponent))
            q = torch.where(flush, torch.zeros_like(a), mag) * torch.sign(x.detach())
            passes = a <= 2.0**self.max_exponent
        return straight_through(x, q, passes)

    def short(self) -> str:
        return f"log(e{self.exponent_width},b{self.bias})"

    @classmethod
    def from_str(cls, text: str) -> LogFormat | None:
        """Read :meth:`short` back: ``log(e2,b1)``."""
        g = match_short(_SHORT, text)
        return None if g is None else cls(int(g["e"]), int(g["b"]))
