"""What one node is quantized to: a format per role (:class:`LayerQuant`).

A role is one tensor of a node: its inputs (``data_in``), parameters (``weight``, ``bias``) or
output (``data_out``). :data:`ROLES` is the one list of them, in the order tables print them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from quantsearch.errors import ConfigError
from quantsearch.formats import FORMATS, NumberFormat, make_format

__all__ = [
    "ACTIVATION_ROLES",
    "AUTO",
    "PARAM_ROLES",
    "ROLES",
    "AutoFormat",
    "LayerQuant",
    "RoleFormat",
    "check_auto",
    "check_format_name",
    "formats_repr",
    "has_auto",
    "with_role_defaults",
]

ROLES = ("data_in", "weight", "bias", "data_out")
PARAM_ROLES = ("weight", "bias")  # a module's own tensors
ACTIVATION_ROLES = tuple(r for r in ROLES if r not in PARAM_ROLES)  # what flows through it
AUTO = "auto"


def formats_repr(obj: Any) -> str:
    """``role=format`` for each role ``obj`` quantizes (its ``q_<role>`` attributes), for
    ``extra_repr`` of the quantized modules."""
    parts = [
        f"{r}={getattr(obj, 'q_' + r)}" for r in ROLES if getattr(obj, "q_" + r, None) is not None
    ]
    return ", ".join(parts)


@dataclass(frozen=True)
class AutoFormat:
    """A format whose ``"auto"`` fields wait for a tensor range (activations before
    calibration). :func:`~quantsearch.passes.transform.quantize` binds it; it never reaches a
    quantized module.

    Example:
        >>> auto = AutoFormat("fixed", (("frac_width", "auto"), ("width", 8)))
        >>> str(auto), auto.bind(-1.5, 3.0)
        ('fixed(auto,8)', FixedPoint(width=8, frac_width=5, signed=True, rounding='nearest'))
    """

    format: str
    fields: tuple[tuple[str, Any], ...]
    key: str = field(default="", compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {"format": self.format, **dict(self.fields)}

    def canonical(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    def bind(self, lo: float, hi: float) -> NumberFormat:
        """The concrete format whose auto fields cover ``[lo, hi]``."""
        fields = FORMATS.get(self.format).from_range(dict(self.fields), lo, hi, self.key)
        return make_format(self.format, fields, self.key)

    def __str__(self) -> str:
        values = ",".join(str(v) for _, v in self.fields)
        return f"{self.format}({values})"


RoleFormat = NumberFormat | AutoFormat


@dataclass(frozen=True)
class LayerQuant:
    """The formats of one node, by role; ``None`` leaves a role in float.

    Example:
        >>> from quantsearch.formats import FixedPoint
        >>> lq = LayerQuant(weight=FixedPoint(8, 4))
        >>> lq.to_dict()
        {'weight': {'format': 'fixed', 'width': 8, 'frac_width': 4, 'signed': True, 'rounding': 'nearest'}}
    """

    data_in: RoleFormat | None = None
    weight: RoleFormat | None = None
    bias: RoleFormat | None = None
    data_out: RoleFormat | None = None

    def items(self) -> list[tuple[str, RoleFormat]]:
        """``(role, format)`` for the roles that are quantized, in :data:`ROLES` order."""
        out = []
        for role in ROLES:
            fmt = getattr(self, role)
            if fmt is not None:
                out.append((role, fmt))
        return out

    def format(self, role: str) -> NumberFormat | None:
        """The concrete format of ``role`` (``None``: float)."""
        fmt: RoleFormat | None = getattr(self, role)
        if isinstance(fmt, AutoFormat):
            raise ConfigError(f"{fmt.key or role}: the 'auto' fields of {fmt} are not bound yet")
        return fmt

    @property
    def pending(self) -> bool:
        return any(isinstance(f, AutoFormat) for _, f in self.items())

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return {role: fmt.to_dict() for role, fmt in self.items()}

    def __repr__(self) -> str:
        return f"LayerQuant({', '.join(f'{r}={f}' for r, f in self.items())})"


# ---------------------------------------------------------------------------------------------
# From a role's table to a format: shared by the [quantize] parser and the resolver


def check_format_name(value: Any, key: str) -> str:
    """The registered name of the format ``value`` names (aliases resolved)."""
    if not isinstance(value, str):
        raise ConfigError(f"{key}: got {value!r}, allowed: one of {FORMATS.names()}")
    return FORMATS.canonical(value, key=key)


def with_role_defaults(
    fmt_cls: type[NumberFormat], fields: dict[str, Any], unsigned: bool
) -> dict[str, Any]:
    """``fields`` with ``signed = false`` added for a role that is never negative, unless given."""
    if unsigned and "signed" in fmt_cls.field_names() and "signed" not in fields:
        return {**fields, "signed": False}
    return fields


def has_auto(fmt_cls: type[NumberFormat], fields: Mapping[str, Any]) -> bool:
    """Whether some field that may be ``"auto"`` is ``"auto"`` in ``fields``."""
    return any(fields.get(f) == AUTO for f in fmt_cls.auto_fields)


def check_auto(fmt_cls: type[NumberFormat], fields: Mapping[str, Any], key: str) -> bool:
    """:func:`has_auto`, after refusing an ``"auto"`` the format cannot take and a misspelt one.

    Raises:
        ConfigError: ``"auto"`` for a field that is never chosen from a range (a minifloat's
            ``exponent_width``), or another string where ``"auto"`` may stand (``"autoo"``).

    Example:
        >>> from quantsearch.formats import FixedPoint, Minifloat
        >>> check_auto(FixedPoint, {"width": 8, "frac_width": "auto"}, "k")
        True
        >>> check_auto(FixedPoint, {"width": 8, "frac_width": "autoo"}, "k")
        Traceback (most recent call last):
        ...
        quantsearch.errors.ConfigError: k.frac_width: got 'autoo', allowed: an integer or 'auto'
        >>> check_auto(Minifloat, {"exponent_width": "auto", "mantissa_width": 3}, "k")
        Traceback (most recent call last):
        ...
        quantsearch.errors.ConfigError: k.exponent_width: got 'auto', allowed: an integer ('auto' is for fixed.frac_width, not for format 'minifloat')
    """
    for name, value in fields.items():
        if name in fmt_cls.auto_fields:
            if isinstance(value, str) and value != AUTO:
                raise ConfigError(f"{key}.{name}: got {value!r}, allowed: an integer or 'auto'")
        elif value == AUTO:
            allowed = [f"{n}.{f}" for n, cls in FORMATS.items() for f in sorted(cls.auto_fields)]
            raise ConfigError(
                f"{key}.{name}: got 'auto', allowed: an integer ('auto' is for "
                f"{', '.join(allowed)}, not for format {fmt_cls.name!r})"
            )
    return has_auto(fmt_cls, fields)
