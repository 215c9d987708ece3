"""The search space: the ``[search.space]`` mini-language and the finite space it builds.

``[search.space]`` gives, per op kind or node name and per role, a list of format choices:
``[width, frac_width]`` pairs, tables of fields, or tables of field *lists* whose cartesian
product is taken (impossible pairs such as ``frac_width > width`` are dropped and counted).
:func:`parse_space` checks it at load; :class:`SearchSpace` meets it with a traced graph.

Each *knob* is one Optuna parameter named ``"<kind>.<role>"`` (``by = "type"``: one choice shared
by every node of that kind) or ``"<node>.<role>"`` (``by = "name"``). Its choices are format
option dicts such as ``{"format": "fixed", "width": 8, "frac_width": 4}``, shown to Optuna (and
so to study tables, dashboards and reports) by the format's own name, its ``str()``:
``fixed(8,4)``, ``ufixed(8,4)`` (a ReLU's input is unsigned by default), ``minifloat(e4m3,b7)``.

The space knows its exact size and enumerates itself in a stable, mixed-radix order: point 0 takes
the first choice of every knob, and the last knob varies fastest.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from torch import fx

from quantsearch.errors import ConfigError
from quantsearch.formats import FORMATS, make_format
from quantsearch.passes.transform.graph_view import GraphView
from quantsearch.passes.transform.layer import ROLES, with_role_defaults
from quantsearch.passes.transform.modules import QUANTIZERS
from quantsearch.validate import check_keys, get_str, get_table

if TYPE_CHECKING:  # optuna costs ~0.3 s to import; only distributions() needs it, at run time
    from optuna.distributions import BaseDistribution

__all__ = [
    "SAME_AS",
    "Encoding",
    "Knob",
    "SearchSpace",
    "SpaceSpec",
    "option_label",
    "parse_space",
]

Encoding = Literal["categorical", "ordinal"]
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


def _role_choices(
    raw: Any, key: str, default_format: tuple[str, ...]
) -> tuple[tuple[dict[str, Any], ...], int]:
    """Expand one role's choices into format-option dicts; return them and the dropped count."""
    candidates: list[dict[str, Any]] = []
    if isinstance(raw, Mapping):
        fields = dict(raw)
        formats = fields.pop("format", list(default_format))
        if isinstance(formats, str):
            formats = [formats]
        lists: dict[str, list[Any]] = {}
        for f, v in fields.items():
            vals = v if isinstance(v, list) else [v]
            if not vals:
                raise ConfigError(f"{key}.{f} must not be an empty list")
            lists[f] = vals
        names = list(lists)
        for fmt in formats:
            for combo in itertools.product(*(lists[n] for n in names)):
                candidates.append({"format": fmt, **dict(zip(names, combo, strict=True))})
    elif isinstance(raw, list):
        if not raw:
            raise ConfigError(f"{key} must not be an empty list")
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
                    f"{key}[{i}] must be a [width, frac_width] pair or a table of fields (got {item!r})"
                )
            for cand in explicit:  # written out one by one: an impossible one is a mistake
                fields = {k: v for k, v in cand.items() if k != "format"}
                make_format(str(cand["format"]), fields, key=f"{key}[{i}]")
            candidates.extend(explicit)
    else:
        raise ConfigError(
            f"{key} must be a table of field lists, a list of [width, frac_width] pairs, "
            f"'same_as_weight' or 'same_as_data_in' (got {raw!r})"
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
        ident = make_format(str(cand["format"]), fields, key=key).canonical()
        if ident not in seen:
            seen.add(ident)
            kept.append(cand)
    if not kept:
        raise ConfigError(
            f"{key}: no valid choice is left after dropping {dropped} with frac_width > width"
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
        raise ConfigError(f"{key}.by must be one of ['name', 'type'] (got {by_raw!r})")
    fmt_raw = raw.get("format", ["fixed"])
    default_format = tuple([fmt_raw] if isinstance(fmt_raw, str) else fmt_raw)
    choices_raw = get_table(raw, "choices", key)
    if not choices_raw:
        raise ConfigError(f"{key}.choices must name at least one op kind or node")
    choices: dict[str, RoleChoices] = {}
    dropped: dict[str, dict[str, int]] = {}
    for target, table in choices_raw.items():
        tkey = f"{key}.choices.{target}"
        if not isinstance(table, Mapping):
            raise ConfigError(f"{tkey} must be a table of roles (got {table!r})")
        check_keys(table, {*ROLES, "format"}, tkey)
        t_fmt = table.get("format", list(default_format))
        t_formats = tuple([t_fmt] if isinstance(t_fmt, str) else t_fmt)
        if not t_formats:
            raise ConfigError(f"{tkey}.format must not be an empty list")
        roles: RoleChoices = {}
        for role in ROLES:
            if role not in table:
                continue
            value = table[role]
            if isinstance(value, str):
                if value not in SAME_AS:
                    raise ConfigError(
                        f"{tkey}.{role} must be a list of choices or one of {sorted(SAME_AS)} (got {value!r})"
                    )
                if SAME_AS[value] == role or SAME_AS[value] not in table:
                    raise ConfigError(
                        f"{tkey}.{role} = {value!r} needs {tkey}.{SAME_AS[value]} to be set"
                    )
                roles[role] = value
            else:
                roles[role], n = _role_choices(value, f"{tkey}.{role}", t_formats)
                if n:
                    dropped.setdefault(target, {})[role] = n
        if not roles:
            raise ConfigError(f"{tkey} must give choices for at least one of {list(ROLES)}")
        choices[target] = roles
    return SpaceSpec(by=by, choices=choices, dropped=dropped)


def _fields(option: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in option.items() if k != "format"}


def option_label(option: Mapping[str, Any], *, unsigned: bool = False) -> str:
    """The format's own name for a choice (``unsigned``: the role is never negative).

    Example:
        >>> option_label({"format": "fixed", "width": 8, "frac_width": 4})
        'fixed(8,4)'
        >>> option_label({"format": "fixed", "width": 8, "frac_width": 4}, unsigned=True)
        'ufixed(8,4)'
    """
    name, fields = str(option.get("format")), _fields(option)
    try:
        fields = with_role_defaults(FORMATS.get(name), fields, unsigned)
        return str(make_format(name, fields, key="search.space"))
    except ConfigError:  # a table that makes no format (an old run's): spelled out
        return legacy_label(option)


def legacy_label(option: Mapping[str, Any]) -> str:
    """The label runs before the format's own name used: ``fixed(8,4,False)``.

    Studies written then hold these labels as parameter values; :meth:`SearchSpace.decode`
    still reads them.
    """
    values = ",".join(str(v) for v in _fields(option).values())
    return f"{option['format']}({values})"


def _legacy_labels(choices: Choices) -> tuple[str, ...]:
    labels = tuple(legacy_label(o) for o in choices)
    if len(set(labels)) != len(labels):  # same values under different field names
        labels = tuple(
            f"{o['format']}(" + ",".join(f"{k}={v}" for k, v in _fields(o).items()) + ")"
            for o in choices
        )
    return labels


def _bits(option: Mapping[str, Any]) -> float:
    fmt = make_format(str(option["format"]), _fields(option), key="search.space")
    return float(fmt.bits_per_element)


@dataclass(frozen=True)
class Knob:
    """One searched choice: a role (``weight`` ...) of one node or of every node of a kind."""

    name: str
    role: str
    nodes: tuple[str, ...]
    options: Choices
    labels: tuple[str, ...]  # the formats' str(), one per option
    by_cost: tuple[int, ...]  # option indices from cheapest to dearest (ordinal encoding)
    legacy_labels: tuple[str, ...] = ()  # how older runs spelled the options

    @property
    def size(self) -> int:
        return len(self.options)

    def index(self, label: str) -> int:
        """The option a label names: the format's ``str()`` or an older run's spelling."""
        if label in self.labels:
            return self.labels.index(label)
        if label in self.legacy_labels:
            return self.legacy_labels.index(label)
        raise ConfigError(f"parameter {self.name!r} = {label!r} is not one of {list(self.labels)}")


class SearchSpace:
    """The knobs of a :class:`SpaceSpec` applied to a traced graph.

    Args:
        spec: the validated ``[search.space]`` table.
        gm: the traced float model; node names (or module paths) and op kinds are checked
            against it by :class:`~quantsearch.passes.transform.graph_view.GraphView`, the
            check the ``[quantize]`` resolver uses too.
        quantizable: op kinds the quantize pass supports (a target of another kind is an error).
    """

    def __init__(
        self, spec: SpaceSpec, gm: fx.GraphModule, quantizable: set[str] | None = None
    ) -> None:
        self.spec = spec
        view = GraphView(gm)
        by_kind = view.kinds()
        names = view.infos

        def check_kind(kind: str, key: str) -> None:
            if quantizable is not None and kind not in quantizable:
                raise ConfigError(
                    f"{key}: op kind {kind!r} cannot be quantized; quantizable kinds: {sorted(quantizable)}"
                )

        knobs: list[Knob] = []
        self.derived: list[tuple[str, str, str]] = []  # (node, role, source role)
        kind_targets = {t: v for t, v in spec.choices.items() if t in by_kind}
        node_targets: dict[str, RoleChoices] = {}
        for target, roles in spec.choices.items():
            key = f"search.space.choices.{target}"
            if target in by_kind:
                check_kind(target, key)
                continue
            nodes = view.nodes_named(target)  # a node name or a module path
            if not nodes:
                raise ConfigError(
                    f"{key}: {target!r} is neither an op kind nor a node of the model; "
                    f"kinds: {sorted(by_kind)}; nodes: {sorted(names)}"
                )
            for node in nodes:
                check_kind(names[node].op_kind, key)
                node_targets[node] = roles
        if spec.by == "type":
            if node_targets:
                first = next(t for t in spec.choices if t not in kind_targets)
                raise ConfigError(
                    f"search.space.choices.{first}: choices per node need search.space.by = 'name' "
                    f"(got by = 'type')"
                )
            for kind, roles in kind_targets.items():
                self._add(knobs, kind, kind, tuple(by_kind[kind]), roles)
        else:
            for name, ni in names.items():
                node_roles = node_targets.get(name) or kind_targets.get(ni.op_kind)
                if node_roles is not None:
                    self._add(knobs, name, ni.op_kind, (name,), node_roles)
        self.knobs = knobs
        self._by_name = {k.name: k for k in knobs}

    def _add(
        self,
        knobs: list[Knob],
        prefix: str,
        kind: str,
        nodes: tuple[str, ...],
        roles: RoleChoices,
    ) -> None:
        unsigned_roles = QUANTIZERS.get(kind).unsigned_roles if kind in QUANTIZERS else ()
        for role, choices in roles.items():
            if isinstance(choices, str):
                self.derived.extend((n, role, SAME_AS[choices]) for n in nodes)
                continue
            name = f"{prefix}.{role}"
            labels = tuple(option_label(o, unsigned=role in unsigned_roles) for o in choices)
            if len(set(labels)) != len(labels):  # equal once the role's defaults apply
                twice = next(lb for lb in labels if labels.count(lb) > 1)
                raise ConfigError(
                    f"search.space.choices.{prefix}.{role}: two choices are the same format "
                    f"{twice} for the {role} of a {kind} (allowed: distinct formats)"
                )
            cost_order = tuple(
                sorted(range(len(choices)), key=lambda i: (_bits(choices[i]), labels[i]))
            )
            knobs.append(
                Knob(name, role, nodes, choices, labels, cost_order, _legacy_labels(choices))
            )

    # -- size and enumeration -----------------------------------------------------------------

    @property
    def size(self) -> int:
        """The exact number of distinct points."""
        return math.prod(k.size for k in self.knobs)

    @property
    def dropped(self) -> int:
        """Cartesian combinations dropped at load because frac_width > width."""
        return sum(sum(r.values()) for r in self.spec.dropped.values())

    def point(self, index: int) -> dict[str, int]:
        """The choice index of every knob at position ``index`` of the stable order."""
        if not 0 <= index < self.size:
            raise IndexError(f"point index {index} outside 0..{self.size - 1}")
        out: dict[str, int] = {}
        for knob in reversed(self.knobs):
            index, out[knob.name] = divmod(index, knob.size)
        return {k.name: out[k.name] for k in self.knobs}

    def index_of(self, choice: Mapping[str, int]) -> int:
        index = 0
        for knob in self.knobs:
            index = index * knob.size + choice[knob.name]
        return index

    def enumerate(self) -> Iterator[dict[str, int]]:
        """Every point, in the stable order (index 0 first)."""
        for combo in itertools.product(*(range(k.size) for k in self.knobs)):
            yield dict(zip((k.name for k in self.knobs), combo, strict=True))

    # -- Optuna encoding ---------------------------------------------------------------------

    def distributions(self, encoding: Encoding = "categorical") -> dict[str, BaseDistribution]:
        """Optuna distributions: labels (categorical) or cheapest-first indices (ordinal)."""
        # optuna is imported here, not at the top: `quantsearch --help` and config loading
        # should not pay for it
        from optuna.distributions import CategoricalDistribution, IntDistribution

        if encoding == "categorical":
            return {k.name: CategoricalDistribution(list(k.labels)) for k in self.knobs}
        return {k.name: IntDistribution(0, k.size - 1) for k in self.knobs}

    def encode(
        self, choice: Mapping[str, int], encoding: Encoding = "categorical"
    ) -> dict[str, Any]:
        """Choice indices -> Optuna parameter values."""
        if encoding == "categorical":
            return {k.name: k.labels[choice[k.name]] for k in self.knobs}
        return {k.name: k.by_cost.index(choice[k.name]) for k in self.knobs}

    def decode(self, params: Mapping[str, Any]) -> dict[str, int]:
        """Optuna parameter values (labels or ordinal indices) -> choice indices."""
        out: dict[str, int] = {}
        for knob in self.knobs:
            if knob.name not in params:
                raise ConfigError(f"trial has no value for parameter {knob.name!r}")
            v = params[knob.name]
            if isinstance(v, str):
                out[knob.name] = knob.index(v)
            else:
                out[knob.name] = knob.by_cost[int(v)]
        return out

    # -- to per-node formats -----------------------------------------------------------------

    def layer_formats(self, choice: Mapping[str, int]) -> dict[str, dict[str, dict[str, Any]]]:
        """Per node, per role, the chosen format option dict (``same_as_*`` roles filled in)."""
        out: dict[str, dict[str, dict[str, Any]]] = {}
        for knob in self.knobs:
            option = knob.options[choice[knob.name]]
            for node in knob.nodes:
                out.setdefault(node, {})[knob.role] = option
        for node, role, source in self.derived:
            src = out.get(node, {}).get(source)
            if src is not None:
                out[node][role] = src
        return out

    def describe(self) -> list[dict[str, Any]]:
        """One row per knob: name, nodes, choices (for reports and the console)."""
        return [
            {
                "parameter": k.name,
                "nodes": len(k.nodes),
                "choices": len(k.labels),
                "labels": " ".join(k.labels),
            }
            for k in self.knobs
        ]
