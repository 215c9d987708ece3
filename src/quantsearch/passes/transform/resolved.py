"""The per-node config: node name -> :class:`~quantsearch.passes.transform.layer.LayerQuant`.

:class:`ResolvedConfig` is what :func:`~quantsearch.passes.transform.quantize` applies, what a
search trial builds from its choices (:meth:`ResolvedConfig.from_dict`) and what a run
directory records (:meth:`ResolvedConfig.to_dict`).
"""

from __future__ import annotations

import json
import weakref
from collections.abc import Iterator, Mapping
from typing import Any

from torch import fx

from quantsearch.errors import ConfigError
from quantsearch.formats import FORMATS, NumberFormat, make_format
from quantsearch.graph import info
from quantsearch.passes.transform.calibrate import CalibrationStats
from quantsearch.passes.transform.graph_view import (
    CALL_OPS,
    Candidate,
    GraphView,
    check_role,
    param_range,
)
from quantsearch.passes.transform.layer import (
    PARAM_ROLES,
    ROLES,
    AutoFormat,
    LayerQuant,
    RoleFormat,
    check_auto,
    check_format_name,
    with_role_defaults,
)
from quantsearch.validate import toml_key

__all__ = ["ResolvedConfig", "role_format"]


def _bind(
    fmt: AutoFormat, cand: Candidate | None, role: str, calibration: CalibrationStats | None
) -> RoleFormat:
    """``fmt`` made concrete when its range is known, else ``fmt`` itself (still pending)."""
    if cand is None:
        return fmt
    if role in PARAM_ROLES:
        rng = param_range(cand, role)
    else:
        rng = calibration.range(cand.node.name, role) if calibration is not None else None
    if rng is None:
        return fmt
    memo = (fmt, *rng)  # a search binds the same few auto formats to the same ranges
    bound = _BOUND.get(memo)
    if bound is None:
        bound = fmt.bind(*rng)
        _remember(_BOUND, memo, bound)
    return bound


def _remember(memo: dict[Any, Any], key: Any, value: Any) -> None:
    if len(memo) >= 4096:  # bounded: a long search meets a few thousand tables at most
        memo.clear()
    memo[key] = value


# (unsigned default?, table items) -> format, for tables without "auto" fields
_TABLE_FORMATS: dict[tuple[Any, ...], NumberFormat] = {}
# (unsigned default?, table items, key) -> the validated auto format, for tables with them
_AUTO_TABLES: dict[tuple[Any, ...], AutoFormat] = {}
# (auto format, lo, hi) -> the format it binds to over that range
_BOUND: dict[tuple[Any, ...], NumberFormat] = {}


def role_format(
    spec: object,
    key: str,
    cand: Candidate | None,
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
            f"{key}: got {spec!r}, allowed: a format table like {{'format': 'fixed', "
            "'width': 8, 'frac_width': 4} or None"
        )
    unsigned = cand is not None and role in cand.spec.unsigned_roles
    try:  # a search builds the same few tables thousands of times: remember the concrete ones
        memo_key: tuple[Any, ...] | None = (unsigned, *((k, type(v), v) for k, v in spec.items()))
        hit = _TABLE_FORMATS.get(memo_key)  # type: ignore[arg-type]
    except TypeError:  # unhashable values: validation below says what is wrong
        memo_key, hit = None, None
    if hit is not None:
        return None if hit.is_identity else hit
    auto = _AUTO_TABLES.get((memo_key, key)) if memo_key is not None else None
    if auto is not None:
        return _bind(auto, cand, role, calibration)
    if "format" not in spec:
        raise ConfigError(f"{key}.format: got no value, allowed: one of {FORMATS.names()}")
    name = check_format_name(spec["format"], f"{key}.format")
    fmt_cls = FORMATS.get(name)
    fields = {k: v for k, v in spec.items() if k != "format"}
    fields = with_role_defaults(fmt_cls, fields, unsigned)
    if not check_auto(fmt_cls, fields, key):
        fmt = make_format(name, fields, key)
        if memo_key is not None:
            _remember(_TABLE_FORMATS, memo_key, fmt)
        return None if fmt.is_identity else fmt
    make_format(name, fmt_cls.from_range(fields, 0.0, 0.0, key), key)  # validate the rest now
    auto = AutoFormat(name, tuple(sorted(fields.items())), key)
    if memo_key is not None:
        _remember(_AUTO_TABLES, (memo_key, key), auto)
    return _bind(auto, cand, role, calibration)


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

    def get(self, name: str, default: LayerQuant | None = None) -> LayerQuant | None:  # type: ignore[override]
        """``self[name]``, else ``default`` (Mapping's own raises and catches a KeyError for
        every node a config leaves alone: most of them, on every trial)."""
        return self._layers.get(name, default)

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
        view: GraphView | None = None,
    ) -> ResolvedConfig:
        """Build from ``{node: {role: {"format": name, field: value, ...} | format | None}}``.

        Cheap enough to call once per search trial (formats are cached by their fields).
        With ``gm``, names (node names or module paths) and roles are checked against the
        graph, a ReLU's activations default to unsigned as in :func:`resolve`, and ``"auto"``
        fields are bound where their range is known; without it, those checks happen in
        :func:`quantize`. ``view``: ``GraphView(gm)``, where the caller keeps one for a
        graph it does not change (a search resolves every trial against one graph).

        Example:
            >>> ResolvedConfig.from_dict({"relu": {"data_in": {"format": "fixed", "width": 4, "frac_width": 2}}})
            ResolvedConfig({'relu': LayerQuant(data_in=fixed(4,2))})
        """
        if not isinstance(d, Mapping):
            raise ConfigError(
                f"{key}: got {type(d).__name__}, allowed: a map of node names to role tables"
            )
        if gm is None:
            view = None
        elif view is None:
            view = GraphView(gm)
        layers: dict[str, LayerQuant] = {}
        for name, roles in d.items():
            nkey = toml_key(key, str(name))
            if not isinstance(roles, Mapping):
                raise ConfigError(f"{nkey}: got {roles!r}, allowed: a map of roles to formats")
            for role in roles:
                if role not in ROLES:
                    raise ConfigError(
                        f"{nkey}.{role}: got an unknown role, allowed: one of {list(ROLES)}"
                    )
            cands: list[Candidate | None] = (
                list(view.quantizable(name, nkey, node=True)) if view else [None]
            )
            for cand in cands:
                fmts: dict[str, RoleFormat] = {}
                for role, spec in roles.items():
                    rkey = f"{nkey}.{role}"
                    if cand is not None:
                        check_role(cand, role, rkey)
                        if cand.lacks(role):
                            continue  # e.g. a layer built with bias=False
                    if spec is None:
                        continue
                    fmt = role_format(spec, rkey, cand, role, calibration)
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
            if n.op in CALL_OPS:
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


class NodeConfigs:
    """:meth:`ResolvedConfig.from_dict` against one graph that never changes, node by node,
    each node's part remembered by its role tables' identity: a search's points put the same
    few option tables (the space's own objects) on each node, so a trial's config is a union
    of parts met before instead of every table validated and bound again (0.1-0.2 ms a trial,
    right after an evaluation). Keys must be node names, one per node (as a search's are).

    A remembered part keeps its tables alive and is used only for those very objects (an id
    is not reused while they live); at most 4,096 parts, all dropped when full.

    Example:
        >>> import torch
        >>> from quantsearch import trace
        >>> gm = trace(torch.nn.Sequential(torch.nn.Linear(4, 3)).eval(), torch.ones(2, 4))
        >>> nodes = NodeConfigs(gm, None, "search")
        >>> table = {"format": "fixed", "width": 8, "frac_width": 4}
        >>> nodes({"_0": {"weight": table}}) == ResolvedConfig.from_dict({"_0": {"weight": table}}, gm)
        True
    """

    def __init__(self, gm: fx.GraphModule, calibration: CalibrationStats | None, key: str):
        self.gm, self.calibration, self.key = gm, calibration, key
        self.view = GraphView(gm)
        self._parts: dict[tuple[Any, ...], tuple[tuple[Any, ...], ResolvedConfig]] = {}

    def __call__(self, d: Mapping[str, Mapping[str, Any]]) -> ResolvedConfig:
        layers: dict[str, LayerQuant] = {}
        keys: dict[str, str] = {}  # each node's part of the key: its part's own, braces off
        bound = True
        for name, roles in d.items():
            part = self._part(name, roles)
            layers.update(part._layers)
            if len(part._layers) == 1:
                keys[next(iter(part._layers))] = part.key()[1:-1]
            bound = bound and part._bound is not None
        out = ResolvedConfig(layers)
        if bound:  # every part was checked against gm and has no pending "auto" field
            out._bound = weakref.ref(self.gm)
        if len(keys) == len(out._layers):  # key() joins the nodes' parts, sorted by name
            out._key = "{" + ",".join(keys[name] for name in sorted(keys)) + "}"
        return out

    def _part(self, name: str, roles: Mapping[str, Any]) -> ResolvedConfig:
        tables = tuple(roles.values()) if isinstance(roles, Mapping) else (roles,)
        memo = (name, *(roles if isinstance(roles, Mapping) else ()), *map(id, tables))
        hit = self._parts.get(memo)
        if hit is not None and all(a is b for a, b in zip(hit[0], tables, strict=True)):
            return hit[1]
        part = ResolvedConfig.from_dict(
            {name: roles}, self.gm, calibration=self.calibration, key=self.key, view=self.view
        )
        _remember(self._parts, memo, (tables, part))
        return part
