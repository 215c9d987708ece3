"""The ``[quantize]`` table: parsed and checked at load, before any graph is seen.

```toml
[quantize.default]                 # every quantizable node unless overridden
format = "fixed"
data_in = { width = 8, frac_width = 4 }
weight  = { width = 8, frac_width = 4 }
[quantize.by_type.relu]            # by op kind
data_in = { width = 8, frac_width = "auto" }
[quantize.by_name."seq_blocks.3"]  # by node name or module path; "re:<regex>" also accepted
weight = { width = 4, frac_width = 3 }
```

Rules, checked at load (:func:`parse_quantize_config`) where no graph is needed and against the
graph in :func:`~quantsearch.passes.transform.resolve.resolve`:

- Precedence, role by role: exact name > regex (the first that matches, in file order; it must
  match the whole node name or module path) > op kind > default. ``skip = true`` at the most
  specific level that sets ``skip`` leaves the node in float.
- A role's format is its own ``format``, else its table's ``format``, else
  ``[quantize.default]``'s, else ``fixed``. ``fp32``/``none`` leaves the role in float.
- ``default`` and regexes apply each role only to nodes that have it; an op kind or exact name
  given a role it does not have is an error. A ReLU's ``data_in``/``data_out`` are unsigned
  unless ``signed`` is given (its output is never negative, so a sign bit would be wasted).
- ``frac_width = "auto"`` is chosen from the tensor's range: weights and biases from their
  largest magnitude, activations from :func:`~quantsearch.passes.transform.calibrate`
  statistics. The resolved config records the chosen value.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from quantsearch.errors import ConfigError
from quantsearch.formats import FORMATS, make_format
from quantsearch.passes.transform.layer import (
    AUTO,
    PARAM_ROLES,
    ROLES,
    check_auto,
    check_format_name,
    with_role_defaults,
)
from quantsearch.passes.transform.modules import QUANTIZERS, QuantSpec, quantizable_kinds
from quantsearch.validate import check_keys, toml_key

__all__ = ["LevelSpec", "QuantizeConfig", "RoleSpec", "parse_quantize_config"]

_TOP_KEYS = ("default", "by_type", "by_name")
_LEVEL_KEYS = ("format", "skip", *ROLES)


@dataclass(frozen=True)
class RoleSpec:
    """One role's table, validated but not yet bound to a node (``"auto"`` kept as is)."""

    format: str  # canonical registry name
    fields: tuple[tuple[str, Any], ...]  # the table without ``format``
    key: str  # the dotted config key, for errors at resolve time

    def table(self) -> dict[str, Any]:
        return {"format": self.format, **dict(self.fields)}


@dataclass(frozen=True)
class LevelSpec:
    """One ``[quantize.default]``, ``by_type.<kind>`` or ``by_name.<name>`` table."""

    key: str
    skip: bool | None = None
    roles: tuple[tuple[str, RoleSpec], ...] = ()

    def role(self, name: str) -> RoleSpec | None:
        for r, spec in self.roles:
            if r == name:
                return spec
        return None


@dataclass(frozen=True)
class QuantizeConfig:
    """A validated ``[quantize]`` table (immutable; nothing in it refers to the raw dict)."""

    default: LevelSpec | None = None
    by_type: tuple[tuple[str, LevelSpec], ...] = ()
    by_name: tuple[tuple[str, LevelSpec], ...] = ()  # file order; "re:..." keys included
    key: str = "quantize"

    def levels(self) -> Iterator[LevelSpec]:
        if self.default is not None:
            yield self.default
        for _, level in (*self.by_type, *self.by_name):
            yield level

    @property
    def sets_nothing(self) -> bool:
        """No level sets a role or ``skip``: applying it would change no node.

        Example:
            >>> parse_quantize_config({"default": {}}).sets_nothing
            True
        """
        return not any(level.roles or level.skip is not None for level in self.levels())

    @property
    def needs_calibration(self) -> bool:
        """Whether some activation role asks for ``"auto"`` fields (so needs :func:`calibrate`)."""
        return any(
            any(v == AUTO for _, v in spec.fields)
            for level in self.levels()
            for role, spec in level.roles
            if role not in PARAM_ROLES
        )


def _parse_role(raw: Any, key: str, inherited_format: str, unsigned: bool) -> RoleSpec:
    if not isinstance(raw, Mapping):
        raise ConfigError(
            f"{key}: got {raw!r}, allowed: a table like "
            "{ format = 'fixed', width = 8, frac_width = 4 }"
        )
    name = check_format_name(raw.get("format", inherited_format), f"{key}.format")
    fields = {k: v for k, v in raw.items() if k != "format"}
    fmt_cls = FORMATS.get(name)
    probe = with_role_defaults(fmt_cls, fields, unsigned)
    if check_auto(fmt_cls, probe, key):  # validate everything else with a stand-in range
        probe = fmt_cls.from_range(probe, 0.0, 0.0, key)
    make_format(name, probe, key)
    return RoleSpec(name, tuple(fields.items()), key)


def _parse_level(
    raw: Any, key: str, spec: QuantSpec | None, default_format: str | None
) -> tuple[LevelSpec, str | None]:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{key}: got {raw!r}, allowed: a table")
    check_keys(raw, list(_LEVEL_KEYS), key)
    skip = raw.get("skip")
    if skip is not None and not isinstance(skip, bool):
        raise ConfigError(f"{key}.skip: got {skip!r}, allowed: true or false")
    set_too = [k for k in ("format", *ROLES) if k in raw]
    if skip and set_too:  # which would apply? the node stayed float, the formats unused
        raise ConfigError(
            f"{key}.skip: got true with {', '.join(set_too)}, allowed: skip = true alone (the "
            "node stays float) or formats without it"
        )
    level_format = check_format_name(raw["format"], f"{key}.format") if "format" in raw else None
    inherited = level_format or default_format or "fixed"
    roles: list[tuple[str, RoleSpec]] = []
    for role in ROLES:
        if role not in raw:
            continue
        if spec is not None and role not in spec.roles:
            raise ConfigError(
                f"{key}.{role}: got a {role} for {spec.kind}, which has none, allowed: the roles "
                f"of {spec.kind} {list(spec.roles)}"
            )
        unsigned = spec is not None and role in spec.unsigned_roles
        roles.append((role, _parse_role(raw[role], f"{key}.{role}", inherited, unsigned)))
    return LevelSpec(key, skip, tuple(roles)), level_format


def parse_quantize_config(raw: Mapping[str, Any], key: str = "quantize") -> QuantizeConfig:
    """Validate a ``[quantize]`` table (as read from TOML); ``raw`` is not modified.

    Everything that needs no graph is checked here: keys, formats, fields, widths, op kinds,
    regexes. Node names are checked by :func:`resolve`.

    Raises:
        ConfigError: naming the dotted key, what was given and what is allowed.

    Example:
        >>> cfg = parse_quantize_config({"default": {"weight": {"width": 8, "frac_width": 4}}})
        >>> cfg.default.role("weight").table()
        {'format': 'fixed', 'width': 8, 'frac_width': 4}
        >>> parse_quantize_config({"by_type": {"linear": {"weight": {"width": 8, "frac_width": 9}}}})
        Traceback (most recent call last):
        ...
        quantsearch.errors.ConfigError: quantize.by_type.linear.weight.frac_width: got 9, allowed: an integer in [0, width] (width = 8)
    """
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{key}: got {raw!r}, allowed: a table")
    check_keys(raw, list(_TOP_KEYS), key)
    default, default_format = None, None
    if "default" in raw:
        default, default_format = _parse_level(raw["default"], f"{key}.default", None, None)

    def tables(name: str) -> Mapping[str, Any]:
        value = raw.get(name, {})
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}.{name}: got {value!r}, allowed: a table of tables")
        return value

    by_type: list[tuple[str, LevelSpec]] = []
    for kind, table in tables("by_type").items():
        tkey = toml_key(f"{key}.by_type", kind)
        if kind not in QUANTIZERS:
            raise ConfigError(
                f"{tkey}: got {kind!r}, which is not a quantizable op kind, allowed: one of "
                f"{quantizable_kinds()}"
            )
        level, _ = _parse_level(table, tkey, QUANTIZERS.get(kind), default_format)
        by_type.append((QUANTIZERS.canonical(kind), level))
    by_name: list[tuple[str, LevelSpec]] = []
    for name, table in tables("by_name").items():
        nkey = toml_key(f"{key}.by_name", name)
        if name.startswith("re:"):
            try:
                re.compile(name[3:])
            except re.error as exc:
                raise ConfigError(
                    f"{nkey}: got {name[3:]!r}, an invalid regular expression ({exc}), allowed: "
                    "a Python regular expression after 're:'"
                ) from None
        level, _ = _parse_level(table, nkey, None, default_format)
        by_name.append((name, level))
    return QuantizeConfig(default, tuple(by_type), tuple(by_name), key)
