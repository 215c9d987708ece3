"""Number formats: frozen values with a pure ``quantize(x)``, one file each, in a registry.

=============  ===========================================  ======================================
name           class                                        fields
=============  ===========================================  ======================================
``fixed``      :class:`~quantsearch.formats.fixed.FixedPoint`  width, frac_width, signed, rounding
``minifloat``  :class:`~quantsearch.formats.minifloat.Minifloat`  exponent_width, mantissa_width,
                                                             exponent_bias, subnormals
``log``        :class:`~quantsearch.formats.log.LogFormat`   exponent_width, exponent_bias
``block_fp``   :class:`~quantsearch.formats.block_fp.BlockFP`  mantissa_width, exponent_width,
                                                             exponent_bias, block_size, block_dim
``fp32``       :class:`~quantsearch.formats.float.Float32`   (none): leave as is
=============  ===========================================  ======================================

``integer`` is an alias of ``fixed`` and ``none`` of ``fp32``. A new format costs one file that
registers its class with ``@FORMATS.register("name")``, one test file and one import line below.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from quantsearch.errors import ConfigError
from quantsearch.formats.base import InvalidFormat, NumberFormat
from quantsearch.registry import Registry

__all__ = [
    "FORMATS",
    "BlockFP",
    "FixedPoint",
    "Float32",
    "InvalidFormat",
    "LogFormat",
    "Minifloat",
    "NumberFormat",
    "format_from_dict",
    "make_format",
]

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
        quantsearch.errors.ConfigError: quantize.default.weight: frac_width must satisfy 0 <= frac_width <= width (got 9 > 8)
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
        raise ConfigError(f"{key} must be a table like {{format = 'fixed', ...}} (got {d!r})")
    name = d.get("format")
    if not isinstance(name, str):
        raise ConfigError(f"{key}.format is required: one of {FORMATS.names()} (got {name!r})")
    return make_format(name, d, key)


from quantsearch.formats import block_fp as _block_fp  # noqa: E402
from quantsearch.formats import fixed as _fixed  # noqa: E402
from quantsearch.formats import float as _float  # noqa: E402
from quantsearch.formats import log as _log  # noqa: E402
from quantsearch.formats import minifloat as _minifloat  # noqa: E402

BlockFP = _block_fp.BlockFP
FixedPoint = _fixed.FixedPoint
Float32 = _float.Float32
LogFormat = _log.LogFormat
Minifloat = _minifloat.Minifloat
