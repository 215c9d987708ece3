"""The format registry and the two ways to build a format from a config table.

Plug-ins import this module and :mod:`quantsearch.formats.base`, never the package, so the
package's ``__init__`` can import every plug-in without an import cycle. Each entry is the
format's class, which carries its metadata: :attr:`NumberFormat.name`,
:meth:`NumberFormat.fields` (names, types, defaults, which may be ``"auto"``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from quantsearch.errors import ConfigError
from quantsearch.formats.base import InvalidFormat, NumberFormat
from quantsearch.registry import Registry

__all__ = ["FORMATS", "format_from_dict", "format_from_str", "make_format"]

FORMATS: Registry[type[NumberFormat]] = Registry("format")

# Formats are immutable, so equal field tables can share one object. The search builds the
# same few formats thousands of times; the cache turns validation into a dict lookup.
_CACHE: dict[tuple[Any, ...], NumberFormat] = {}
_CACHE_LIMIT = 4096


def make_format(
    name: str, fields: Mapping[str, Any] | None = None, key: str = "format"
) -> NumberFormat:
    """Validate ``fields`` and build the format registered as ``name``.

    Args:
        name: a registered name or alias (``fixed``, ``integer``, ``minifloat`` ...).
        fields: the format's fields; a ``format`` entry, as in a config table, is ignored.
        key: the dotted config key, named in every error.

    Raises:
        ConfigError: unknown name (listing the registered ones), unknown or missing field,
            wrong type, or a value outside its rule.

    Example:
        >>> make_format("integer", {"width": 8, "frac_width": 4})
        FixedPoint(width=8, frac_width=4, signed=True, rounding='nearest')
        >>> make_format("fixed", {"width": 8, "frac_width": 9}, "quantize.default.weight")
        Traceback (most recent call last):
        ...
        quantsearch.errors.ConfigError: quantize.default.weight.frac_width: got 9, allowed: an integer in [0, width] (width = 8)
    """
    values = fields or {}
    cache_key = (name, *sorted((k, type(v).__name__, v) for k, v in values.items()))
    try:
        hit, cacheable = _CACHE.get(cache_key), True
    except TypeError:  # an unhashable value: let validation reject or accept it
        hit, cacheable = None, False
    if hit is not None:
        return hit
    fmt = FORMATS.get(name, key=f"{key}.format").from_fields(values, key)
    if cacheable:
        if len(_CACHE) >= _CACHE_LIMIT:
            _CACHE.clear()
        _CACHE[cache_key] = fmt
    return fmt


def format_from_dict(d: Mapping[str, Any], key: str = "format") -> NumberFormat:
    """The inverse of :meth:`NumberFormat.to_dict`: ``{"format": name, **fields}``.

    Example:
        >>> format_from_dict(make_format("minifloat", {"exponent_width": 4, "mantissa_width": 3}).to_dict())
        Minifloat(exponent_width=4, mantissa_width=3, exponent_bias=7, subnormals=True)
    """
    if not isinstance(d, Mapping):
        raise ConfigError(f"{key}: got {d!r}, allowed: a table like {{format = 'fixed', ...}}")
    name = d.get("format")
    if not isinstance(name, str):
        got = "no value" if name is None else repr(name)
        raise ConfigError(f"{key}.format: got {got}, allowed: one of {FORMATS.names()}")
    return make_format(name, d, key)


def format_from_str(text: str, key: str = "format") -> NumberFormat:
    """The inverse of ``str(format)``: ``"ufixed(8,4)"`` -> ``FixedPoint(8, 4, signed=False)``.

    Example:
        >>> format_from_str("minifloat(e4m3,b7)")
        Minifloat(exponent_width=4, mantissa_width=3, exponent_bias=7, subnormals=True)
        >>> format_from_str("fixd(8,4)", "labels[0]")
        Traceback (most recent call last):
        ...
        quantsearch.errors.ConfigError: labels[0]: got 'fixd(8,4)', allowed: a format as str() spells it, such as 'fixed(8,4)' or 'minifloat(e4m3,b7)' (formats: ['block_fp', 'fixed', 'fp32', 'log', 'minifloat'])
    """
    for _, cls in FORMATS.items():
        try:
            fmt = cls.from_str(text)
        except InvalidFormat as exc:
            raise ConfigError(
                f"{key}: got {text!r}, allowed: a format whose {exc.field} is {exc.allowed}"
            ) from None
        if fmt is not None:
            return fmt
    raise ConfigError(
        f"{key}: got {text!r}, allowed: a format as str() spells it, such as 'fixed(8,4)' or "
        f"'minifloat(e4m3,b7)' (formats: {FORMATS.names()})"
    )
