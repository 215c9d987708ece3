"""The ``[quantize]`` table and the per-node config it resolves to.

```toml
[quantize.default]                 # every quantizable node unless overridden
format = "fixed"
data_in = { width = 8, frac_width = 4 }
weight  = { width = 8, frac_width = 4 }
[quantize.by_type.relu]            # by op kind
data_in = { width = 8, frac_width = "auto" }
[quantize.by_name."seq_blocks.2"]  # by node name or module path; "re:<regex>" also accepted
weight = { width = 4, frac_width = 3 }
```

Rules, checked at load (:func:`parse_quantize_config`) where no graph is needed and against the
graph in :func:`resolve`:

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

import json
import re
import weakref
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from torch import fx, nn

from quantsearch.config import check_keys
from quantsearch.errors import ConfigError
from quantsearch.formats import FORMATS, NumberFormat, make_format
from quantsearch.graph import NodeInfo, info
from quantsearch.passes.transform.modules import (
    PARAM_ROLES,
    QUANTIZERS,
    ROLES,
    QuantSpec,
    quantizable_kinds,
    submodule,
)

if TYPE_CHECKING:
    from quantsearch.passes.transform.calibrate import CalibrationStats

__all__ = [
    "AutoFormat",
    "LayerQuant",
    "LevelSpec",
    "QuantizeConfig",
    "ResolvedConfig",
    "RoleSpec",
    "parse_quantize_config",
    "resolve",
]

AUTO = "auto"
_TOP_KEYS = ("default", "by_type", "by_name")
_LEVEL_KEYS = ("format", "skip", *ROLES)
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _dotted(key: str, name: str) -> str:
    """``key.name``, quoting ``name`` as TOML would (``quantize.by_name."seq_blocks.2"``)."""
    return f"{key}.{name}" if _BARE_KEY.fullmatch(name) else f'{key}."{name}"'


# ---------------------------------------------------------------------------------------------
# The parsed [quantize] table


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
    def needs_calibration(self) -> bool:
        """Whether some activation role asks for ``"auto"`` fields (so needs :func:`calibrate`)."""
        return any(
            any(v == AUTO for _, v in spec.fields)
            for level in self.levels()
            for role, spec in level.roles
            if role not in PARAM_ROLES
        )


def _check_format_name(value: Any, key: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{key} must be one of {FORMATS.names()} (got {value!r})")
    return FORMATS.canonical(value, key=key)


def _with_defaults(
    fmt_cls: type[NumberFormat], fields: dict[str, Any], unsigned: bool
) -> dict[str, Any]:
    if unsigned and "signed" in fmt_cls.field_names() and "signed" not in fields:
        return {**fields, "signed": False}
    return fields


def _has_auto(fmt_cls: type[NumberFormat], fields: Mapping[str, Any]) -> bool:
    return any(fields.get(f) == AUTO for f in fmt_cls.auto_fields)


def _parse_role(raw: Any, key: str, inherited_format: str, unsigned: bool) -> RoleSpec:
    if not isinstance(raw, Mapping):
        raise ConfigError(
            f"{key} must be a table like {{ format = 'fixed', width = 8, frac_width = 4 }} "
            f"(got {raw!r})"
        )
    name = _check_format_name(raw.get("format", inherited_format), f"{key}.format")
    fields = {k: v for k, v in raw.items() if k != "format"}
    fmt_cls = FORMATS.get(name)
    probe = _with_defaults(fmt_cls, fields, unsigned)
    if _has_auto(fmt_cls, probe):  # validate everything else with a stand-in range
        probe = fmt_cls.from_range(probe, 0.0, 0.0, key)
    make_format(name, probe, key)
    return RoleSpec(name, tuple(fields.items()), key)


def _parse_level(
    raw: Any, key: str, spec: QuantSpec | None, default_format: str | None
) -> tuple[LevelSpec, str | None]:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{key} must be a table (got {raw!r})")
    check_keys(raw, list(_LEVEL_KEYS), key)
    skip = raw.get("skip")
    if skip is not None and not isinstance(skip, bool):
        raise ConfigError(f"{key}.skip must be true or false (got {skip!r})")
    level_format = _check_format_name(raw["format"], f"{key}.format") if "format" in raw else None
    inherited = level_format or default_format or "fixed"
    roles: list[tuple[str, RoleSpec]] = []
    for role in ROLES:
        if role not in raw:
            continue
        if spec is not None and role not in spec.roles:
            raise ConfigError(
                f"{key}.{role}: {spec.kind} has no {role} (roles of {spec.kind}: {list(spec.roles)})"
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
        quantsearch.errors.ConfigError: quantize.by_type.linear.weight: frac_width must satisfy 0 <= frac_width <= width (got 9 > 8)
    """
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{key} must be a table (got {raw!r})")
    check_keys(raw, list(_TOP_KEYS), key)
    default, default_format = None, None
    if "default" in raw:
        default, default_format = _parse_level(raw["default"], f"{key}.default", None, None)

    def tables(name: str) -> Mapping[str, Any]:
        value = raw.get(name, {})
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}.{name} must be a table of tables (got {value!r})")
        return value

    by_type: list[tuple[str, LevelSpec]] = []
    for kind, table in tables("by_type").items():
        tkey = _dotted(f"{key}.by_type", kind)
        if kind not in QUANTIZERS:
            raise ConfigError(
                f"{tkey}: {kind!r} is not a quantizable op kind (allowed: {quantizable_kinds()})"
            )
        level, _ = _parse_level(table, tkey, QUANTIZERS.get(kind), default_format)
        by_type.append((QUANTIZERS.canonical(kind), level))
    by_name: list[tuple[str, LevelSpec]] = []
    for name, table in tables("by_name").items():
        nkey = _dotted(f"{key}.by_name", name)
        if name.startswith("re:"):
            try:
                re.compile(name[3:])
            except re.error as exc:
                raise ConfigError(
                    f"{nkey}: invalid regular expression {name[3:]!r}: {exc}"
                ) from None
        level, _ = _parse_level(table, nkey, None, default_format)
        by_name.append((name, level))
    return QuantizeConfig(default, tuple(by_type), tuple(by_name), key)


# ---------------------------------------------------------------------------------------------
# The resolved, per-node config


@dataclass(frozen=True)
class AutoFormat:
    """A format whose ``"auto"`` fields wait for a tensor range (activations before
    calibration). :func:`quantize` binds it; it never reaches a quantized module."""

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
        fmt = getattr(self, role)
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


@dataclass(frozen=True)
class _Candidate:
    node: fx.Node
    info: NodeInfo
    spec: QuantSpec
    module: nn.Module | None
    params: frozenset[str]  # the parameter roles the module has (a bias=False layer: weight)

    def lacks(self, role: str) -> bool:
        """A weight/bias role whose tensor this node does not have."""
        return role in PARAM_ROLES and role not in self.params


class _GraphView:
    """The call nodes of a graph, which of them can be quantized, and how names map to them."""

    def __init__(self, gm: fx.GraphModule) -> None:
        self.infos: dict[str, NodeInfo] = {}
        self.candidates: dict[str, _Candidate] = {}
        self.by_target: dict[str, list[str]] = {}
        for n in gm.graph.nodes:
            if n.op not in ("call_module", "call_function", "call_method"):
                continue
            ni = info(n)
            module = submodule(gm, str(n.target)) if n.op == "call_module" else None
            self.infos[n.name] = ni
            if n.op == "call_module":
                self.by_target.setdefault(str(n.target), []).append(n.name)
            if ni.op_kind in QUANTIZERS:
                spec = QUANTIZERS.get(ni.op_kind)
                if spec.accepts(n, module):
                    params = frozenset(
                        r for r in PARAM_ROLES if getattr(module, r, None) is not None
                    )
                    self.candidates[n.name] = _Candidate(n, ni, spec, module, params)

    def nodes_named(self, name: str) -> list[str]:
        """Node names for a node name or a module path (a module called twice has two nodes)."""
        if name in self.infos:
            return [name]
        return list(self.by_target.get(name, []))

    def quantizable(self, name: str, key: str) -> list[_Candidate]:
        nodes = self.nodes_named(name)
        if not nodes:
            raise ConfigError(
                f"{key}: no node or module named {name!r} in the graph "
                f"(quantizable nodes: {sorted(self.candidates)})"
            )
        out = []
        for n in nodes:
            if n not in self.candidates:
                ni = self.infos[n]
                what = (ni.module_type or "").rsplit(".", 1)[-1] or ni.target
                raise ConfigError(
                    f"{key}: node {n!r} is a {ni.op_kind} ({what}), which cannot be quantized "
                    f"(quantizable kinds: {quantizable_kinds()}; quantizable nodes: "
                    f"{sorted(self.candidates)})"
                )
            out.append(self.candidates[n])
        return out


def _param_range(cand: _Candidate, role: str) -> tuple[float, float] | None:
    p = getattr(cand.module, role, None) if cand.module is not None else None
    if p is None or p.numel() == 0:
        return None
    d = p.detach()
    return float(d.min()), float(d.max())


def _bind(
    fmt: AutoFormat, cand: _Candidate | None, role: str, calibration: CalibrationStats | None
) -> RoleFormat:
    """``fmt`` made concrete when its range is known, else ``fmt`` itself (still pending)."""
    if cand is None:
        return fmt
    if role in PARAM_ROLES:
        rng = _param_range(cand, role)
    else:
        rng = calibration.range(cand.node.name, role) if calibration is not None else None
    return fmt if rng is None else fmt.bind(*rng)


# (unsigned default?, table items) -> format, for tables without "auto" fields
_TABLE_FORMATS: dict[tuple[Any, ...], NumberFormat] = {}


def _role_format(
    spec: Any,
    key: str,
    cand: _Candidate | None,
    role: str,
    calibration: CalibrationStats | None,
) -> RoleFormat | None:
    """A format (or a pending auto format) from a config table or a format object."""
    if isinstance(spec, NumberFormat):
        return None if spec.is_identity else spec
    if isinstance(spec, AutoFormat):
        return _bind(spec, cand, role, calibration)
    if not isinstance(spec, Mapping):
        raise ConfigError(
            f"{key} must be a format table like {{'format': 'fixed', 'width': 8, "
            f"'frac_width': 4}} or None (got {spec!r})"
        )
    unsigned = cand is not None and role in cand.spec.unsigned_roles
    try:  # a search builds the same few tables thousands of times: remember the concrete ones
        memo_key: tuple[Any, ...] | None = (unsigned, *((k, type(v), v) for k, v in spec.items()))
        hit = _TABLE_FORMATS.get(memo_key)  # type: ignore[arg-type]
    except TypeError:  # unhashable values: validation below says what is wrong
        memo_key, hit = None, None
    if hit is not None:
        return None if hit.is_identity else hit
    if "format" not in spec:
        raise ConfigError(f"{key}.format is required: one of {FORMATS.names()}")
    name = _check_format_name(spec["format"], f"{key}.format")
    fmt_cls = FORMATS.get(name)
    fields = {k: v for k, v in spec.items() if k != "format"}
    fields = _with_defaults(fmt_cls, fields, unsigned)
    if not _has_auto(fmt_cls, fields):
        fmt = make_format(name, fields, key)
        if memo_key is not None:
            if len(_TABLE_FORMATS) >= 4096:
                _TABLE_FORMATS.clear()
            _TABLE_FORMATS[memo_key] = fmt
        return None if fmt.is_identity else fmt
    make_format(name, fmt_cls.from_range(fields, 0.0, 0.0, key), key)  # validate the rest now
    return _bind(AutoFormat(name, tuple(sorted(fields.items())), key), cand, role, calibration)


class ResolvedConfig(Mapping[str, LayerQuant]):
    """Per-node formats: node name -> :class:`LayerQuant`. Immutable, hashable, JSON-able.

    Build it with :func:`resolve` from a ``[quantize]`` table, or directly from a plain dict
    with :meth:`from_dict` (no TOML round trip). Two configs that quantize the same way have the
    same :meth:`key`.

    Example:
        >>> rc = ResolvedConfig.from_dict({"fc": {"weight": {"format": "fixed", "width": 8, "frac_width": 4}}})
        >>> rc["fc"]
        LayerQuant(weight=fixed(8,4))
        >>> rc.key()
        '{"fc":{"weight":{"format":"fixed","frac_width":4,"rounding":"nearest","signed":true,"width":8}}}'
    """

    __slots__ = ("_bound", "_key", "_layers")

    def __init__(self, layers: Mapping[str, LayerQuant] | None = None) -> None:
        clean: dict[str, LayerQuant] = {}
        for name, lq in (layers or {}).items():
            if not isinstance(lq, LayerQuant):
                raise ConfigError(f"config.{name} must be a LayerQuant (got {type(lq).__name__})")
            if lq.items():
                clean[name] = lq
        self._layers = clean
        self._key: str | None = None
        # the graph this config was last checked against and bound for (so a search trial's
        # quantize() does not check again what from_dict(gm=...) just checked)
        self._bound: weakref.ref[fx.GraphModule] | None = None

    def __reduce__(self) -> tuple[Any, ...]:
        return (ResolvedConfig, (self._layers,))

    # Mapping protocol (read-only)
    def __getitem__(self, name: str) -> LayerQuant:
        return self._layers[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._layers)

    def __len__(self) -> int:
        return len(self._layers)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ResolvedConfig):
            return NotImplemented
        return self.key() == other.key()

    def __hash__(self) -> int:
        return hash(self.key())

    def __repr__(self) -> str:
        return f"ResolvedConfig({self._layers!r})"

    @property
    def pending(self) -> bool:
        """Whether some ``"auto"`` field still waits for calibration statistics."""
        return any(lq.pending for lq in self._layers.values())

    def to_dict(self) -> dict[str, dict[str, dict[str, Any]]]:
        """``{node: {role: {"format": ..., field: value}}}``; :meth:`from_dict` reads it back."""
        return {name: lq.to_dict() for name, lq in self._layers.items()}

    def key(self) -> str:
        """A canonical string (sorted JSON): equal configs, equal keys; a cache key."""
        if self._key is None:  # == json.dumps(self.to_dict(), sort_keys=True, compact)
            nodes = []
            for name in sorted(self._layers):
                roles = sorted(self._layers[name].items(), key=lambda rf: rf[0])
                inner = ",".join(f"{json.dumps(r)}:{f.canonical()}" for r, f in roles)
                nodes.append(f"{json.dumps(name)}:{{{inner}}}")
            self._key = "{" + ",".join(nodes) + "}"
        return self._key

    @classmethod
    def from_dict(
        cls,
        d: Mapping[str, Mapping[str, Any]],
        gm: fx.GraphModule | None = None,
        *,
        calibration: CalibrationStats | None = None,
        key: str = "config",
    ) -> ResolvedConfig:
        """Build from ``{node: {role: {"format": name, field: value, ...} | format | None}}``.

        Cheap enough to call once per search trial (formats are cached by their fields).
        With ``gm``, names (node names or module paths) and roles are checked against the
        graph, a ReLU's activations default to unsigned as in :func:`resolve`, and ``"auto"``
        fields are bound where their range is known; without it, those checks happen in
        :func:`quantize`.

        Example:
            >>> ResolvedConfig.from_dict({"relu": {"data_in": {"format": "fixed", "width": 4, "frac_width": 2}}})
            ResolvedConfig({'relu': LayerQuant(data_in=fixed(4,2))})
        """
        if not isinstance(d, Mapping):
            raise ConfigError(f"{key} must map node names to role tables (got {type(d).__name__})")
        view = _GraphView(gm) if gm is not None else None
        layers: dict[str, LayerQuant] = {}
        for name, roles in d.items():
            nkey = _dotted(key, str(name))
            if not isinstance(roles, Mapping):
                raise ConfigError(f"{nkey} must map roles to formats (got {roles!r})")
            for role in roles:
                if role not in ROLES:
                    raise ConfigError(f"unknown role {nkey}.{role} (allowed: {list(ROLES)})")
            cands: list[_Candidate | None] = list(view.quantizable(name, nkey)) if view else [None]
            for cand in cands:
                fmts: dict[str, RoleFormat] = {}
                for role, spec in roles.items():
                    rkey = f"{nkey}.{role}"
                    if cand is not None:
                        _check_role(cand, role, rkey)
                        if cand.lacks(role):
                            continue  # e.g. a layer built with bias=False
                    if spec is None:
                        continue
                    fmt = _role_format(spec, rkey, cand, role, calibration)
                    if fmt is not None:
                        fmts[role] = fmt
                layers[cand.node.name if cand is not None else name] = LayerQuant(**fmts)
        out = cls(layers)
        if gm is not None and not out.pending:
            out._bound = weakref.ref(gm)
        return out

    @classmethod
    def from_graph(cls, gm: fx.GraphModule) -> ResolvedConfig:
        """The formats recorded in a quantized graph's ``NodeInfo.precision``."""
        layers = {}
        for n in gm.graph.nodes:
            if n.op in ("call_module", "call_function", "call_method"):
                prec = info(n).precision
                if prec:
                    layers[n.name] = LayerQuant(**{r: prec[r] for r in ROLES if r in prec})
        return cls(layers)

    def bind(
        self,
        gm: fx.GraphModule,
        calibration: CalibrationStats | None = None,
        *,
        allow_pending: bool = False,
    ) -> ResolvedConfig:
        """Check every node and role against ``gm`` and bind the ``"auto"`` fields.

        Raises:
            ConfigError: a name that is not a quantizable node, a role its kind lacks, or
                (unless ``allow_pending``) an activation ``"auto"`` without calibration.
        """
        if self._bound is not None and self._bound() is gm:
            return self
        roles = {name: dict(lq.items()) for name, lq in self._layers.items()}
        out = ResolvedConfig.from_dict(roles, gm, calibration=calibration)
        if not allow_pending:
            for name, lq in out.items():
                for role, fmt in lq.items():
                    if isinstance(fmt, AutoFormat):
                        raise ConfigError(
                            f"{fmt.key or f'config.{name}.{role}'}: frac_width = 'auto' for the "
                            f"{role} of node {name!r} needs calibration statistics: pass "
                            "calibration=calibrate(gm, x) (x: training samples)"
                        )
        if out.key() != self.key():
            return out
        self._bound = out._bound  # the same config: keep this object, remember the check
        return self


def _check_role(cand: _Candidate, role: str, key: str) -> None:
    if role not in cand.spec.roles:
        raise ConfigError(
            f"{key}: node {cand.node.name!r} is a {cand.spec.kind}, which has no {role} "
            f"(roles of {cand.spec.kind}: {list(cand.spec.roles)})"
        )


def resolve(
    gm: fx.GraphModule,
    config: QuantizeConfig | ResolvedConfig,
    *,
    calibration: CalibrationStats | None = None,
) -> ResolvedConfig:
    """The per-node formats ``config`` gives the nodes of ``gm`` (precedence: exact name >
    regex > op kind > default).

    ``"auto"`` fields are bound from the weights and, for activations, from ``calibration``;
    without it they stay pending (:attr:`ResolvedConfig.pending`) until :func:`quantize`.

    Raises:
        ConfigError: unknown names (listing the quantizable nodes), names of nodes that cannot
            be quantized, roles a node does not have.

    Example:
        >>> import torch
        >>> from quantsearch.graph import trace
        >>> gm = trace(torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU()), torch.ones(2, 4))
        >>> cfg = parse_quantize_config({
        ...     "default": {"data_in": {"width": 8, "frac_width": 4}},
        ...     "by_name": {"0": {"weight": {"width": 4, "frac_width": 3}}},
        ... })
        >>> resolve(gm, cfg)
        ResolvedConfig({'_0': LayerQuant(data_in=fixed(8,4), weight=fixed(4,3)), '_1': LayerQuant(data_in=ufixed(8,4))})
    """
    if isinstance(config, ResolvedConfig):
        return config.bind(gm, calibration, allow_pending=True)
    if not isinstance(config, QuantizeConfig):
        raise ConfigError(
            f"quantize config must be a QuantizeConfig or ResolvedConfig (got {type(config).__name__})"
        )
    view = _GraphView(gm)
    exact: dict[str, LevelSpec] = {}
    regexes: list[tuple[re.Pattern[str], LevelSpec]] = []
    for name, level in config.by_name:
        if name.startswith("re:"):
            pattern = re.compile(name[3:])
            matched = [c for c in view.candidates.values() if _matches(pattern, c)]
            if not matched:
                raise ConfigError(
                    f"{level.key}: {pattern.pattern!r} matches no quantizable node name or module "
                    f"path (quantizable nodes: {sorted(view.candidates)})"
                )
            for role, _ in level.roles:
                if not any(role in c.spec.roles for c in matched):
                    kinds = sorted({c.spec.kind for c in matched})
                    raise ConfigError(
                        f"{level.key}.{role}: none of the nodes it matches ({kinds}) has a {role}"
                    )
            regexes.append((pattern, level))
            continue
        if level.skip and not level.roles:  # a bare skip may name any node
            if not view.nodes_named(name):
                view.quantizable(name, level.key)  # raises: unknown name
            cands = [view.candidates[n] for n in view.nodes_named(name) if n in view.candidates]
        else:
            cands = view.quantizable(name, level.key)
        for cand in cands:
            for role, _ in level.roles:
                _check_role(cand, role, f"{level.key}.{role}")
            if cand.node.name in exact:
                raise ConfigError(
                    f"{level.key}: node {cand.node.name!r} is already configured by "
                    f"{exact[cand.node.name].key}"
                )
            exact[cand.node.name] = level
    by_type = dict(config.by_type)
    layers: dict[str, LayerQuant] = {}
    for name, cand in view.candidates.items():
        regex_level = next((lv for p, lv in regexes if _matches(p, cand)), None)
        chain = [
            lv
            for lv in (exact.get(name), regex_level, by_type.get(cand.spec.kind), config.default)
            if lv is not None
        ]
        if next((lv.skip for lv in chain if lv.skip is not None), False):
            continue
        fmts: dict[str, RoleFormat] = {}
        for role in cand.spec.roles:
            rs = next((s for s in (lv.role(role) for lv in chain) if s is not None), None)
            if rs is None or cand.lacks(role):
                continue
            fmt = _role_format(rs.table(), rs.key, cand, role, calibration)
            if fmt is not None:
                fmts[role] = fmt
        if fmts:
            layers[name] = LayerQuant(**fmts)
    out = ResolvedConfig(layers)
    if not out.pending:
        out._bound = weakref.ref(gm)
    return out


def _matches(pattern: re.Pattern[str], cand: _Candidate) -> bool:
    return bool(pattern.fullmatch(cand.node.name) or pattern.fullmatch(cand.info.target))
