"""The ``[search.space]`` mini-language: choices per op kind or node and role, and their labels.

``[search.space]`` gives, per op kind or node name and per role, a list of format choices:
``[width, frac_width]`` pairs, tables of fields, or tables of field *lists* whose cartesian
product is taken (impossible pairs such as ``frac_width > width`` are dropped and counted), or
``"same_as_weight"``/``"same_as_data_in"``. :func:`parse_space` checks it at load, without a
graph. A choice is labelled by the format's own ``str()`` (:func:`option_label`), in Optuna
parameters, study tables and reports alike: ``fixed(8,4)``, ``ufixed(8,4)``, ``minifloat(e4m3,b7)``.

``frac_width = "auto"`` (in a pair, ``[8, "auto"]``, or a field, ``frac_width = "auto"``) searches
the width and leaves the binary point to the quantize pass: a weight's or bias's from its own
largest magnitude, an activation's from the calibration statistics, node by node. Such a choice
is labelled ``fixed(8,auto)``; the trial records the format each node got.
"""

from __future__ import annotations

import copy
import itertools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from quantsearch.errors import ConfigError
from quantsearch.formats import FORMATS, NumberFormat, make_format
from quantsearch.passes.transform.layer import (
    AUTO,
    PARAM_ROLES,
    ROLES,
    check_auto,
    with_role_defaults,
)
from quantsearch.validate import check_keys, check_unique, get_str, get_table

__all__ = [
    "SAME_AS",
    "Choices",
    "RoleChoices",
    "SpaceSpec",
    "choice_labels",
    "legacy_label",
    "legacy_labels",
    "option_bits",
    "option_label",
    "parse_space",
]

SAME_AS = {"same_as_weight": "weight", "same_as_data_in": "data_in"}
Choices = tuple[dict[str, Any], ...]
RoleChoices = dict[str, Choices | str]  # role -> choices, or a SAME_AS name
_BY: dict[str, Literal["type", "name"]] = {"type": "type", "name": "name"}


@dataclass(frozen=True)
class SpaceSpec:
    """``[search.space]``: per op kind or node name, per role, the list of format choices.

    ``choices[target][role]`` is a tuple of ``{"format": name, **fields}`` dicts, or the string
    ``"same_as_weight"`` / ``"same_as_data_in"``. ``dropped[target][role]`` counts cartesian
    combinations left out because they were invalid (``frac_width > width``).
    """

    by: Literal["type", "name"] = "type"
    choices: dict[str, RoleChoices] = field(default_factory=dict)
    dropped: dict[str, dict[str, int]] = field(default_factory=dict)

    def calibrated_keys(self, key: str = "search.space") -> list[str]:
        """The activation roles (``data_in``, ``data_out``) with a ``frac_width = "auto"``
        choice, as dotted keys: what needs calibration samples.

        Example:
            >>> spec = parse_space({"choices": {"linear": {
            ...     "data_in": [[8, "auto"]], "weight": [[8, "auto"]], "data_out": "same_as_data_in"}}})
            >>> spec.calibrated_keys()
            ['search.space.choices.linear.data_in', 'search.space.choices.linear.data_out']
        """
        out = []
        for target, roles in self.choices.items():
            for role, choices in roles.items():
                options = roles.get(SAME_AS[choices], ()) if isinstance(choices, str) else choices
                if role not in PARAM_ROLES and any(is_auto(o) for o in options):
                    out.append(f"{key}.choices.{target}.{role}")
        return out


def is_auto(option: Mapping[str, Any] | str) -> bool:
    """Whether a choice leaves a field (``frac_width``) to be chosen from the tensor's range."""
    return not isinstance(option, str) and any(v == AUTO for v in option.values())


def _format_of(option: Mapping[str, Any], key: str, unsigned: bool = False) -> NumberFormat:
    """The format a choice names, checked; ``"auto"`` fields get a stand-in range here (each
    node's own range binds them when a trial resolves its config)."""
    name = str(option.get("format"))
    fmt_cls = FORMATS.get(name, key=f"{key}.format")
    fields = with_role_defaults(fmt_cls, _fields(option), unsigned)
    if check_auto(fmt_cls, fields, key):
        fields = fmt_cls.from_range(fields, 0.0, 0.0, key)
    return make_format(name, fields, key)


def _identity(option: Mapping[str, Any], key: str) -> str:
    """Equal for choices that quantize alike (an alias, a default spelled out), ``"auto"`` kept."""
    d = _format_of(option, key).to_dict()
    d.update({k: AUTO for k, v in option.items() if v == AUTO})
    return json.dumps(d, sort_keys=True)


def option_bits(option: Mapping[str, Any]) -> float:
    """Storage bits per element of a choice (an ``"auto"`` binary point does not change them).

    Example:
        >>> option_bits({"format": "fixed", "width": 6, "frac_width": "auto"})
        6.0
    """
    return float(_format_of(option, "search.space").bits_per_element)


def _format_names(raw: Any, key: str) -> tuple[str, ...]:
    """A format name or a non-empty list of them, each registered (``key`` names the list)."""
    names = [raw] if isinstance(raw, str) else raw
    if names == []:
        raise ConfigError(
            f"{key}: got an empty list, allowed: a format name or a non-empty list of them "
            f"({FORMATS.names()})"
        )
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ConfigError(
            f"{key}: got {raw!r}, allowed: a format name or a non-empty list of them "
            f"({FORMATS.names()})"
        )
    for n in names:
        FORMATS.canonical(n, key=key)
    check_unique(names, key)
    return tuple(names)


def _role_choices(
    raw: Any, key: str, default_format: tuple[str, ...]
) -> tuple[tuple[dict[str, Any], ...], int]:
    """Expand one role's choices into format-option dicts; return them and the dropped count."""
    candidates: list[dict[str, Any]] = []
    if isinstance(raw, Mapping):
        fields = dict(raw)
        formats = _format_names(fields.pop("format", list(default_format)), f"{key}.format")
        lists: dict[str, list[Any]] = {}
        for f, v in fields.items():
            vals = v if isinstance(v, list) else [v]
            if not vals:
                raise ConfigError(
                    f"{key}.{f}: got an empty list, allowed: a value or a non-empty list"
                )
            check_unique(vals, f"{key}.{f}")  # width = [8, 8]: a slip, as a pair written twice
            lists[f] = vals
        names = list(lists)
        for fmt in formats:
            for combo in itertools.product(*(lists[n] for n in names)):
                candidates.append({"format": fmt, **dict(zip(names, combo, strict=True))})
    elif isinstance(raw, list):
        if not raw:
            raise ConfigError(f"{key}: got an empty list, allowed: a non-empty list of choices")
        check_unique(raw, key)  # the same choice written twice is a slip (it was one choice)
        for i, item in enumerate(raw):
            if isinstance(item, Mapping):
                d = dict(item)
                d.setdefault("format", default_format[0])
                explicit = [d]
            elif (
                isinstance(item, list)
                and len(item) == 2
                and all(isinstance(v, int) or v == "auto" for v in item)
            ):
                explicit = [
                    {"format": fmt, "width": item[0], "frac_width": item[1]}
                    for fmt in default_format
                ]
            else:
                raise ConfigError(
                    f"{key}[{i}]: got {item!r}, allowed: a [width, frac_width] pair of integers "
                    "(frac_width may be 'auto') or a table of fields"
                )
            for cand in explicit:  # written out one by one: an impossible one is a mistake
                _format_of(cand, f"{key}[{i}]")
            candidates.extend(explicit)
    else:
        raise ConfigError(
            f"{key}: got {raw!r}, allowed: a table of field lists, a list of [width, frac_width] "
            "pairs, 'same_as_weight' or 'same_as_data_in'"
        )
    kept: list[dict[str, Any]] = []
    dropped = 0
    seen: set[str] = set()
    for cand in candidates:
        fields = {k: v for k, v in cand.items() if k != "format"}
        w, fw = fields.get("width"), fields.get("frac_width")
        if isinstance(w, int) and isinstance(fw, int) and fw > w:
            dropped += 1  # the cartesian product of width x frac_width holds impossible pairs
            continue
        # validates (raises ConfigError); equal formats (an alias, a default spelled out) are
        # one choice, so every label (the format's str()) names one choice
        ident = _identity(cand, key)
        if ident not in seen:
            seen.add(ident)
            kept.append(cand)
    if not kept:
        raise ConfigError(
            f"{key}: got {dropped} choices, each with frac_width > width, allowed: at least one "
            "with frac_width <= width (no valid choice is left)"
        )
    return tuple(kept), dropped


def parse_space(raw: Mapping[str, Any], key: str = "search.space") -> SpaceSpec:
    """Validate a ``[search.space]`` table: roles, formats and fields; no graph is needed.

    Example:
        >>> spec = parse_space({"choices": {"linear": {"weight": {"width": [8, 4], "frac_width": [2, 6]}}}})
        >>> [option_label(o) for o in spec.choices["linear"]["weight"]]
        ['fixed(8,2)', 'fixed(8,6)', 'fixed(4,2)']
        >>> spec.dropped
        {'linear': {'weight': 1}}
    """
    check_keys(raw, {"by", "choices", "format"}, key)
    by_raw = get_str(raw, "by", key, "type") or "type"
    by = _BY.get(by_raw)
    if by is None:
        raise ConfigError(f"{key}.by: got {by_raw!r}, allowed: one of ['name', 'type']")
    default_format = _format_names(raw.get("format", ["fixed"]), f"{key}.format")
    choices_raw = get_table(raw, "choices", key)
    if not choices_raw:
        raise ConfigError(f"{key}.choices: got no entry, allowed: at least one op kind or node")
    choices: dict[str, RoleChoices] = {}
    dropped: dict[str, dict[str, int]] = {}
    for target, table in choices_raw.items():
        tkey = f"{key}.choices.{target}"
        if not isinstance(table, Mapping):
            raise ConfigError(f"{tkey}: got {table!r}, allowed: a table of roles")
        check_keys(table, {*ROLES, "format"}, tkey)
        t_formats = _format_names(table.get("format", list(default_format)), f"{tkey}.format")
        roles: RoleChoices = {}
        for role in ROLES:
            if role not in table:
                continue
            if by == "type":
                _check_kind_role(target, role, f"{tkey}.{role}")
            value = table[role]
            if isinstance(value, str):
                if value not in SAME_AS:
                    raise ConfigError(
                        f"{tkey}.{role}: got {value!r}, allowed: a list of choices or one of "
                        f"{sorted(SAME_AS)}"
                    )
                if SAME_AS[value] == role or SAME_AS[value] not in table:
                    raise ConfigError(
                        f"{tkey}.{role}: got {value!r}, allowed: {value!r} only where "
                        f"{tkey}.{SAME_AS[value]} is set (and is not this role)"
                    )
                roles[role] = value
            else:
                roles[role], n = _role_choices(value, f"{tkey}.{role}", t_formats)
                if n:
                    dropped.setdefault(target, {})[role] = n
        if not roles:
            raise ConfigError(
                f"{tkey}: got no role's choices, allowed: choices for at least one of {list(ROLES)}"
            )
        choices[target] = roles
    return SpaceSpec(by=by, choices=choices, dropped=dropped)


def _check_kind_role(kind: str, role: str, key: str) -> None:
    """An op kind given a role it does not have (a ReLU's weight) is refused at load: no node
    of that kind could take the choice, and trials would fail one by one."""
    # lazy: the op registry imports torch, which reading a run's space does not need
    from quantsearch.passes.transform.modules import QUANTIZERS

    if kind in QUANTIZERS:
        spec = QUANTIZERS.get(kind)
        if role not in spec.roles:
            raise ConfigError(
                f"{key}: got choices for the {role} of {spec.kind}, allowed: its roles "
                f"{list(spec.roles)}"
            )


def _fields(option: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in option.items() if k != "format"}


def option_label(option: Mapping[str, Any], *, unsigned: bool = False) -> str:
    """The format's own name for a choice (``unsigned``: the role is never negative).

    Example:
        >>> option_label({"format": "fixed", "width": 8, "frac_width": 4})
        'fixed(8,4)'
        >>> option_label({"format": "fixed", "width": 8, "frac_width": 4}, unsigned=True)
        'ufixed(8,4)'
        >>> option_label({"format": "fixed", "width": 8, "frac_width": "auto"}, unsigned=True)
        'ufixed(8,auto)'
    """
    try:
        fmt = _format_of(option, "search.space", unsigned)
    except ConfigError:  # a table that makes no format (an old run's): spelled out
        return legacy_label(option)
    if not is_auto(option):
        return str(fmt)
    # The format's own spelling with "auto" where the binary point goes: a copy of the
    # stand-in (never the shared, cached format) holding "auto" in those fields, which
    # short() only prints
    shown = copy.copy(fmt)
    for k, v in option.items():
        if v == AUTO:
            object.__setattr__(shown, k, AUTO)
    return shown.short()


def choice_labels(kind: str, role: str, choices: Sequence[Mapping[str, Any]]) -> tuple[str, ...]:
    """The labels of a role's choices at nodes of op kind ``kind``, as the search shows them.

    A role whose values are never negative (a ReLU's) makes fixed point unsigned by default,
    so the label is the format the node will get. For tables that know only the config
    (``kind`` may be a node name, whose kind is not known without the graph: no default).

    Example:
        >>> choice_labels("relu", "data_in", [{"format": "fixed", "width": 8, "frac_width": 4}])
        ('ufixed(8,4)',)
    """
    # lazy: the op registry imports torch, and reports call this only for runs that did not
    # record their labels (issue 15)
    from quantsearch.passes.transform.modules import QUANTIZERS

    unsigned = kind in QUANTIZERS and role in QUANTIZERS.get(kind).unsigned_roles
    return tuple(option_label(o, unsigned=unsigned) for o in choices)


def legacy_label(option: Mapping[str, Any]) -> str:
    """The label runs before the format's own name used: ``fixed(8,4,False)``.

    Studies written then hold these labels as parameter values; :meth:`SearchSpace.decode`
    still reads them.
    """
    values = ",".join(str(v) for v in _fields(option).values())
    return f"{option['format']}({values})"


def legacy_labels(choices: Choices) -> tuple[str, ...]:
    labels = tuple(legacy_label(o) for o in choices)
    if len(set(labels)) != len(labels):  # same values under different field names
        labels = tuple(
            f"{o['format']}(" + ",".join(f"{k}={v}" for k, v in _fields(o).items()) + ")"
            for o in choices
        )
    return labels
