"""Number and label formatting: one formatter per kind of cell; findings reuse the cells."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from quantsearch.compare.stats import Quartiles
from quantsearch.errors import ConfigError, QuantsearchError
from quantsearch.metrics import metric_spec
from quantsearch.passes.transform.layer import ROLES

__all__ = [
    "ROLE_ORDER",
    "ROLE_SHORT",
    "bits_per_element",
    "fmt_count",
    "fmt_iqr",
    "fmt_metric",
    "fmt_share",
    "fmt_value",
    "format_label",
    "layer_formats",
    "metric_direction",
    "metric_label",
    "metric_name",
]

ROLE_ORDER = ROLES  # the order tables print a layer's roles in
ROLE_SHORT = {"data_in": "in", "weight": "w", "bias": "b", "data_out": "out"}


def fmt_count(x: float) -> str:
    """A count or a median of counts: ``10``, ``5.5``, ``3.25``; ``∞`` for not reached.

    Example:
        >>> fmt_count(5.5), fmt_count(10.0), fmt_count(math.inf)
        ('5.5', '10', '∞')
    """
    if math.isinf(x):
        return "∞"
    if math.isnan(x):
        return "-"
    if float(x).is_integer():
        return str(int(x))
    return f"{x:.2f}".rstrip("0").rstrip(".")


def fmt_share(x: float) -> str:
    """A share as a percentage: ``37%``."""
    return "-" if math.isnan(x) else f"{100 * x:.0f}%"


def fmt_value(x: float) -> str:
    """An objective value or a regret, to two significant figures (``0`` exactly)."""
    if math.isnan(x):
        return "-"
    if math.isinf(x):
        return "∞" if x > 0 else "-∞"
    if x == 0:
        return "0"
    return f"{x:.2g}"


def fmt_iqr(q: Quartiles, fmt: Callable[[float], str] = fmt_count) -> str:
    """``median (q1–q3)``, or just the median when the quartiles are equal.

    Example:
        >>> fmt_iqr(Quartiles(3.25, 5.5, 10.75)), fmt_iqr(Quartiles(10, 10, 10))
        ('5.5 (3.25–10.75)', '10')
    """
    m, a, b = fmt(q.median), fmt(q.q1), fmt(q.q3)
    return m if a == b == m else f"{m} ({a}–{b})"


def fmt_metric(x: float | None) -> str:
    """A metric's value: four significant figures, thousands separated when large."""
    if x is None:
        return "-"
    if math.isnan(x):
        return "nan"
    if float(x).is_integer() and abs(x) >= 1000:
        return f"{int(x):,}"
    return f"{x:.4g}"


def metric_name(name: str) -> str:
    """A metric's name in words, the registry's label: ``model size``."""
    try:
        return metric_spec(name).label
    except QuantsearchError:  # a metric the registry no longer knows: show the bare name
        return name


def metric_label(name: str) -> str:
    """An axis label with the unit: ``model size (bit)``."""
    try:
        spec = metric_spec(name)
    except QuantsearchError:  # a metric the registry no longer knows: show the bare name
        return name
    return f"{spec.label} ({spec.unit})"


def metric_direction(name: str) -> str:
    """``maximize`` or ``minimize``; an unknown metric is taken as one to maximise."""
    try:
        return metric_spec(name).direction
    except QuantsearchError:
        return "maximize"


def bits_per_element(option: Mapping[str, Any]) -> float:
    """Bits per element of a stored format table; ``nan`` when it names no width."""
    # quantsearch.formats imports torch: deferred so that importing the report stays light.
    from quantsearch.formats import make_format

    fields = {k: v for k, v in option.items() if k != "format"}
    try:
        return float(make_format(str(option["format"]), fields, key="report").bits_per_element)
    except Exception:  # "auto" fields or an unknown format: fall back to the stored width
        w = option.get("width")
        return float(w) if isinstance(w, (int, float)) else math.nan


def format_label(option: Mapping[str, Any] | None) -> str:
    """``{"format": "fixed", "width": 8, "frac_width": 4, "signed": True}`` -> ``fixed(8,4)``.

    The format's own name for itself (``ufixed(8,4)``, ``minifloat(e4m3,b7)``); a table that
    does not make a format (a pending ``"auto"``) is spelled out from its values.
    """
    # quantsearch.formats imports torch: deferred so that `quantsearch --help` stays fast.
    from quantsearch.formats import format_from_dict

    if not option:
        return "float"
    try:
        return str(format_from_dict(option, key="report"))
    except ConfigError:
        pass
    fields = {k: v for k, v in option.items() if k not in ("format", "signed", "rounding")}
    name = str(option.get("format"))
    if option.get("signed") is False:
        name = "u" + name
    extra = [] if option.get("rounding", "nearest") == "nearest" else [str(option["rounding"])]
    return f"{name}({','.join([*(str(v) for v in fields.values()), *extra])})"


def layer_formats(config: Mapping[str, Any] | None) -> dict[str, str]:
    """Per node: ``"in fixed(8,4) · w fixed(8,4) · b fixed(8,4)"``."""
    out = {}
    for node, roles in (config or {}).items():
        parts = [
            f"{ROLE_SHORT.get(r, r)} {format_label(roles[r])}"
            for r in (*ROLE_ORDER, *sorted(set(roles) - set(ROLE_ORDER)))
            if r in roles
        ]
        out[node] = " · ".join(parts)
    return out
