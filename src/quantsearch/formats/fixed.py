"""Signed and unsigned fixed point: ``clamp(round(x * 2^f), min_int, max_int) / 2^f``."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from quantsearch.errors import ConfigError
from quantsearch.formats.base import ROUNDINGS, NumberFormat, largest_at_most, match_short
from quantsearch.formats.registry import FORMATS

if TYPE_CHECKING:
    import torch
    from torch import Tensor

__all__ = ["FixedPoint"]

MAX_WIDTH = 32
# (width, frac_width, signed, dtype) -> the saturation bounds on the integer grid (lo, hi)
_BOUNDS: dict[tuple[int, int, bool, Any], tuple[float, float]] = {}
_SHORT = re.compile(r"(?P<u>u?)fixed\((?P<w>\d+),(?P<f>\d+)(?:,(?P<r>floor|stochastic))?\)")


@FORMATS.register("fixed", aliases=("integer",))
@dataclass(frozen=True)
class FixedPoint(NumberFormat):
    """Two's-complement (or unsigned) fixed point, saturating.

    The grid is ``k / 2^frac_width`` for integers ``min_int <= k <= max_int``. In float32 every
    grid point is exact up to ``width = 24``.

    Attributes:
        width: total bits, sign included.
        frac_width: bits after the binary point, ``0 <= frac_width <= width``.
        signed: two's complement when true, else unsigned.
        rounding: ``nearest`` (half to even), ``floor`` or ``stochastic``.

    Example:
        >>> import torch
        >>> q = FixedPoint(4, 2)          # steps of 0.25 in [-2, 1.75]
        >>> q.quantize(torch.tensor([0.375, 0.625, 5.0, -9.0])).tolist()
        [0.5, 0.5, 1.75, -2.0]
        >>> str(q), q.bits_per_element
        ('fixed(4,2)', 4)
    """

    name: ClassVar[str] = "fixed"
    auto_fields: ClassVar[frozenset[str]] = frozenset({"frac_width"})

    width: int
    frac_width: int
    signed: bool = True
    rounding: str = "nearest"

    def __post_init__(self) -> None:
        low = 2 if self.signed else 1
        if not low <= self.width <= MAX_WIDTH:
            kind = "signed" if self.signed else "unsigned"
            raise self._invalid("width", f"an integer in [{low}, {MAX_WIDTH}] ({kind} fixed point)")
        if not 0 <= self.frac_width <= self.width:
            raise self._invalid("frac_width", f"an integer in [0, width] (width = {self.width})")
        if self.rounding not in ROUNDINGS:
            raise self._invalid("rounding", f"one of {list(ROUNDINGS)}")

    @property
    def min_int(self) -> int:
        return -(1 << (self.width - 1)) if self.signed else 0

    @property
    def max_int(self) -> int:
        return (1 << (self.width - 1)) - 1 if self.signed else (1 << self.width) - 1

    @property
    def step(self) -> float:
        """The value of one least significant bit."""
        return 2.0**-self.frac_width

    @property
    def deterministic(self) -> bool:
        return self.rounding != "stochastic"

    @property
    def bits_per_element(self) -> int:
        return self.width

    def int_bounds(self, dtype: torch.dtype) -> tuple[float, float]:
        """The saturation bounds ``(lo, hi)`` on the integer grid (``x * 2^frac_width``) that
        :meth:`quantize` clamps to for inputs of ``dtype``: the range's ends as ``dtype`` holds
        them (fixed(13,0)'s 4095 is 4096 in bfloat16, 2^31 - 1 is 2^31 in float32), so
        saturated values stay inside the format's range; remembered per format and dtype
        (finding them builds tensors: most of a small call).

        Example:
            >>> import torch
            >>> FixedPoint(13, 0).int_bounds(torch.bfloat16)
            (-4096.0, 4080.0)
        """
        key = (self.width, self.frac_width, self.signed, dtype)
        bounds = _BOUNDS.get(key)
        if bounds is None:
            scale = 2.0**self.frac_width
            hi = largest_at_most(self.max_int / scale, dtype) * scale
            lo = -largest_at_most(-self.min_int / scale, dtype) * scale
            bounds = _BOUNDS[key] = (lo, hi)
        return bounds

    def quantize(self, x: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        # lazy: parsing and printing a format must not load torch (see formats.base)
        import torch

        from quantsearch.formats.ste import round_ste

        scale = 2.0**self.frac_width
        # Half precision is worked in float32, where x * 2^frac_width cannot overflow (in
        # float16 it does past 65504: fixed(17,1) turned -32768 into -32752) and every integer
        # of the grid up to 2^24 is exact; the result is rounded back to x's dtype at the end.
        work = x if x.dtype in (torch.float32, torch.float64) else x.float()
        lo, hi = self.int_bounds(x.dtype)
        if self.rounding == "nearest" and not (work.requires_grad and torch.is_grad_enabled()):
            # the same three ops without autograd, the last two in place on the fresh product
            # (values bit for bit those of the general line below)
            y = torch.round(work * scale).clamp_(lo, hi).div_(scale)
            return y if y.dtype == x.dtype else y.to(x.dtype)
        # Brevitas' primitive: scale, round (straight-through), clamp (clipped gradient), rescale.
        y = torch.clamp(round_ste(work * scale, self.rounding, generator), lo, hi) / scale
        return y if y.dtype == x.dtype else y.to(x.dtype)

    def short(self) -> str:
        tail = "" if self.rounding == "nearest" else f",{self.rounding}"
        return f"{'' if self.signed else 'u'}fixed({self.width},{self.frac_width}{tail})"

    @classmethod
    def from_str(cls, text: str) -> FixedPoint | None:
        """Read :meth:`short` back.

        Example:
            >>> FixedPoint.from_str("ufixed(8,4,floor)")
            FixedPoint(width=8, frac_width=4, signed=False, rounding='floor')
        """
        g = match_short(_SHORT, text)
        if g is None:
            return None
        return cls(int(g["w"]), int(g["f"]), not g["u"], g["r"] or "nearest")

    @staticmethod
    def frac_width_for(width: int, signed: bool, absmax: float) -> int:
        """The largest ``frac_width`` in ``0..width`` whose range still covers ``absmax``.

        Example:
            >>> FixedPoint.frac_width_for(8, True, 0.99)   # 127/128 >= 0.99
            7
            >>> FixedPoint.frac_width_for(8, True, 1.0)    # 127/64 >= 1 > 127/128
            6
        """
        max_int = 2 ** (width - 1) - 1 if signed else 2**width - 1
        for frac in range(width, 0, -1):
            if max_int / 2.0**frac >= absmax:
                return frac
        return 0  # saturates: even frac_width = 0 cannot reach absmax

    @classmethod
    def from_range(
        cls, values: Mapping[str, Any], lo: float, hi: float, key: str
    ) -> dict[str, Any]:
        out = dict(values)
        if out.get("frac_width") != "auto":
            return out
        width, signed = out.get("width"), out.get("signed", True)
        if isinstance(width, bool) or not isinstance(width, int):
            raise ConfigError(f"{key}.width: got {width!r}, allowed: an integer")
        absmax = max(abs(lo), abs(hi)) if signed else max(hi, 0.0)
        out["frac_width"] = cls.frac_width_for(width, bool(signed), absmax)
        return out
