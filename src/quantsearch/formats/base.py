"""The base class every number format derives from, and its field validation.

A format is a frozen dataclass (hashable, comparable, printable) with a pure
:meth:`NumberFormat.quantize`. Formats are built from config tables by
:meth:`NumberFormat.from_fields`, which rejects unknown fields, checks types and names the
dotted config key in every error.
"""

from __future__ import annotations

import abc
import dataclasses
import functools
import json
import math
import re
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, get_args, get_type_hints

from quantsearch.errors import ConfigError
from quantsearch.validate import check_keys

if TYPE_CHECKING:
    import torch
    from torch import Tensor

# torch is imported inside the functions that compute on tensors, not here: a format is also a
# label that reports and config checks parse and print, and those must not load torch (issue 15).

__all__ = [
    "ROUNDINGS",
    "BiasedExponent",
    "FormatField",
    "InvalidFormat",
    "NumberFormat",
    "largest_at_most",
    "match_short",
]


#: rounding modes of the formats that round to a grid (:func:`quantsearch.formats.ste.round_ste`)
ROUNDINGS = ("nearest", "floor", "stochastic")


class InvalidFormat(ConfigError):
    """A format's field breaks one of its rules: ``field``, the value ``given`` and what is
    ``allowed``; ``reason`` says it without a key (``width: got 65, allowed: ...``)."""

    def __init__(self, format_name: str, field: str, given: Any, allowed: str) -> None:
        self.field, self.given, self.allowed = field, given, allowed
        self.reason = f"{field}: got {given!r}, allowed: {allowed}"
        super().__init__(f"{format_name}: {self.reason}")


_TYPE_WORDS: dict[type, str] = {
    int: "an integer",
    float: "a number",
    bool: "true or false",
    str: "a string",
    type(None): "unset",
}


@dataclass(frozen=True)
class FormatField:
    """One field of a format, as its registry entry describes it.

    Attributes:
        name: the field's name in config tables and in :meth:`NumberFormat.to_dict`.
        types: the accepted Python types (``type(None)`` where the field may be unset).
        default: the default value, or :data:`dataclasses.MISSING` for a required field.
        auto: whether the field may be given as ``"auto"`` (chosen from a tensor's range).
    """

    name: str
    types: tuple[type, ...]
    default: Any = dataclasses.MISSING
    auto: bool = False

    @property
    def required(self) -> bool:
        return self.default is dataclasses.MISSING

    def check(self, value: Any, where: str) -> Any:
        """``value`` if it has one of :attr:`types` (an int is accepted as a float)."""
        allowed = self.types
        if value is None and type(None) in allowed:
            return value
        if isinstance(value, bool):
            if bool in allowed:
                return value
        elif isinstance(value, int) and int in allowed:
            return value
        elif isinstance(value, (int, float)) and float in allowed:
            return float(value)
        elif isinstance(value, str) and str in allowed:
            return value
        raise ConfigError(f"{where}: got {value!r}, allowed: {self.words()}")

    def words(self) -> str:
        """The accepted types in words: ``"an integer or unset"``, ``"an integer or 'auto'"``."""
        words = [_TYPE_WORDS.get(t, str(t)) for t in self.types]
        return " or ".join(words + (["'auto'"] if self.auto else []))

    def __str__(self) -> str:
        names = "|".join("None" if t is type(None) else t.__name__ for t in self.types)
        tail = "" if self.required else f" = {self.default!r}"
        return f"{self.name}: {names}{tail}"


@functools.cache
def _fields(cls: type[NumberFormat]) -> tuple[FormatField, ...]:
    hints = get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        hint = hints[f.name]
        types_ = get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
        out.append(FormatField(f.name, tuple(types_), f.default, f.name in cls.auto_fields))
    return tuple(out)


class NumberFormat(abc.ABC):
    """A number format: subclasses are ``@dataclass(frozen=True)`` and registered by name."""

    name: ClassVar[str] = ""
    #: fields that may be given as ``"auto"`` and are then derived from a tensor's range.
    auto_fields: ClassVar[frozenset[str]] = frozenset()
    #: whether each output element depends on its input element alone (not block formats).
    elementwise: ClassVar[bool] = True

    @abc.abstractmethod
    def quantize(self, x: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        """Values of ``x`` rounded onto this format's grid (same shape and dtype); pure."""

    @property
    @abc.abstractmethod
    def bits_per_element(self) -> float:
        """Storage bits per tensor element (shared exponents amortised over their block)."""

    def storage_bits(self, shape: Sequence[int]) -> float:
        """Bits a tensor of ``shape`` takes in this format: ``numel x bits_per_element`` for an
        element-wise format; a block format counts the blocks the shape really has.

        Example:
            >>> from quantsearch.formats import FixedPoint
            >>> FixedPoint(8, 4).storage_bits((4, 10))
            320
        """
        return math.prod(shape) * self.bits_per_element

    @property
    def deterministic(self) -> bool:
        """False when :meth:`quantize` draws random numbers (stochastic rounding)."""
        return True

    @property
    def is_identity(self) -> bool:
        """True for the formats that leave tensors as they are (``fp32``/``none``)."""
        return False

    def _invalid(self, field: str, allowed: str) -> InvalidFormat:
        """``field``'s value breaks its rule: ``allowed`` says what the rule allows."""
        return InvalidFormat(self.name, field, getattr(self, field), allowed)

    def to_dict(self) -> dict[str, Any]:
        """``{"format": name, field: value, ...}``: every field, so equal formats give equal dicts."""
        out: dict[str, Any] = {"format": self.name}
        for f in _fields(type(self)):
            out[f.name] = getattr(self, f.name)
        return out

    def canonical(self) -> str:
        """:meth:`to_dict` as sorted, compact JSON: equal formats, equal strings."""
        cached: str | None = self.__dict__.get("_canonical")
        if cached is None:  # formats are immutable, so the string is computed once
            cached = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
            object.__setattr__(self, "_canonical", cached)
        return cached

    @classmethod
    def fields(cls) -> tuple[FormatField, ...]:
        """The format's fields, in declaration order: its registry metadata."""
        return _fields(cls)

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in _fields(cls)]

    @classmethod
    def from_fields(cls, values: Mapping[str, Any], key: str) -> NumberFormat:
        """Build from a config table (``format`` itself is allowed and ignored).

        Raises:
            ConfigError: unknown or missing fields, wrong types, or broken rules, each naming
                ``key`` (``quantize.default.weight.frac_width: got 9, allowed: ...``).
        """
        fields = cls.fields()
        check_keys(values, {"format", *(f.name for f in fields)}, key)
        kwargs: dict[str, Any] = {}
        for f in fields:
            if f.name in values:
                kwargs[f.name] = f.check(values[f.name], f"{key}.{f.name}")
            elif f.required:
                raise ConfigError(
                    f"{key}.{f.name}: got no value, allowed: {f.words()} (format {cls.name!r} "
                    "requires it)"
                )
        try:
            return cls(**kwargs)
        except InvalidFormat as exc:
            raise ConfigError(
                f"{key}.{exc.field}: got {exc.given!r}, allowed: {exc.allowed}"
            ) from None

    @classmethod
    def from_range(
        cls, values: Mapping[str, Any], lo: float, hi: float, key: str
    ) -> dict[str, Any]:
        """``values`` with every ``"auto"`` field chosen to cover ``[lo, hi]``."""
        raise ConfigError(f"{key}: format {cls.name!r} has no 'auto' fields")

    def __str__(self) -> str:
        return self.short()

    def short(self) -> str:
        """A compact name for tables and search labels: ``fixed(8,4)``; :meth:`from_str` reads it."""
        return self.name

    @classmethod
    def from_str(cls, text: str) -> NumberFormat | None:
        """The format :meth:`short` spells as ``text``, or ``None`` if ``text`` is not this kind's.

        Raises:
            ConfigError: ``text`` is this kind's spelling but breaks one of its rules.
        """
        return cls() if text == cls.name and not any(f.required for f in cls.fields()) else None


@functools.cache
def largest_at_most(value: float, dtype: torch.dtype) -> float:
    """The largest finite ``dtype`` number ``<= value`` (``value >= 0``): a saturation bound that
    the dtype can hold, so clamping never rounds past a format's range (``2047`` is ``2048`` in
    bfloat16, and a bound beyond the dtype's range cannot even be passed to ``torch.clamp``).

    Example:
        >>> import torch
        >>> largest_at_most(2047.0, torch.bfloat16), largest_at_most(1e39, torch.float32)
        (2040.0, 3.4028234663852886e+38)
    """
    import torch  # lazy: see the module's imports

    t = torch.tensor(min(value, torch.finfo(dtype).max), dtype=torch.float64).to(dtype)
    if float(t) > value:
        t = torch.nextafter(t, torch.tensor(0.0, dtype=dtype))
    return float(t)


def match_short(pattern: re.Pattern[str], text: str) -> dict[str, str] | None:
    """The named groups of ``pattern`` when it matches all of ``text`` (``from_str``'s helper)."""
    m = pattern.fullmatch(text)
    return None if m is None else m.groupdict()


class BiasedExponent:
    """An exponent field: ``exponent_width`` bits, biased by ``exponent_bias``.

    For the dataclass formats with such a field (minifloat, log, block_fp). An unset bias
    becomes IEEE's ``2**(exponent_width - 1) - 1`` in :meth:`_default_bias`, so equal formats
    compare equal.
    """

    exponent_width: int
    exponent_bias: int | None

    def _default_bias(self) -> None:
        if self.exponent_bias is None:  # canonical form: equal formats compare equal
            object.__setattr__(self, "exponent_bias", 2 ** (self.exponent_width - 1) - 1)
        # some exponent within float32's (2**-149 .. 2**127), which quantization computes in:
        # a bias of 10**13 rounded every value to 0, trial after trial, without a word
        lo, hi = -126, (1 << self.exponent_width) - 1 + 149
        if not lo <= self.bias <= hi:
            raise InvalidFormat(
                getattr(type(self), "name", "format"),
                "exponent_bias",
                self.bias,
                f"an integer in [{lo}, {hi}] for exponent_width = {self.exponent_width}, so "
                "that some exponent lies within float32's range",
            )

    @property
    def bias(self) -> int:
        assert self.exponent_bias is not None  # set by _default_bias in __post_init__
        return self.exponent_bias

    @property
    def min_exponent(self) -> int:
        """The smallest normal exponent."""
        return 1 - self.bias

    @property
    def max_exponent(self) -> int:
        return (1 << self.exponent_width) - 1 - self.bias
