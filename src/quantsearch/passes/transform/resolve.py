"""``resolve(gm, config)``: the formats a ``[quantize]`` table gives each node of a graph.

Precedence, role by role: exact name > regex > op kind > default (see
:mod:`quantsearch.passes.transform.config` for the rules).
"""

from __future__ import annotations

import re
import weakref

from torch import fx

from quantsearch.errors import ConfigError, with_article
from quantsearch.passes.transform.calibrate import CalibrationStats
from quantsearch.passes.transform.config import LevelSpec, QuantizeConfig
from quantsearch.passes.transform.graph_view import (
    GraphView,
    check_block_dim,
    check_operand,
    check_role,
    matches,
)
from quantsearch.passes.transform.layer import LayerQuant, RoleFormat
from quantsearch.passes.transform.resolved import ResolvedConfig, role_format

__all__ = ["resolve"]


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
        >>> from quantsearch.passes.transform.config import parse_quantize_config
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
    view = GraphView(gm)
    exact: dict[str, LevelSpec] = {}
    regexes: list[tuple[re.Pattern[str], LevelSpec]] = []
    for name, level in config.by_name:
        if name.startswith("re:"):
            pattern = re.compile(name[3:])
            matched = [c for c in view.candidates.values() if matches(pattern, c)]
            if not matched:
                raise ConfigError(
                    f"{level.key}: got {pattern.pattern!r}, which matches no quantizable node name "
                    f"or module path, allowed: a regex matching one (quantizable nodes: "
                    f"{sorted(view.candidates)})"
                )
            for role, _ in level.roles:
                if not any(role in c.spec.roles for c in matched):
                    kinds = sorted({c.spec.kind for c in matched})
                    raise ConfigError(
                        f"{level.key}.{role}: got a {role} for the nodes it matches ({kinds}), "
                        f"none of which has a {role}, allowed: a role one of them has"
                    )
            regexes.append((pattern, level))
            continue
        if level.skip and not level.roles:  # a bare skip may name any node
            if not view.nodes_named(name, level.key):
                view.quantizable(name, level.key)  # raises: unknown name
            cands = [view.candidates[n] for n in view.nodes_named(name) if n in view.candidates]
        else:
            cands = view.quantizable(name, level.key)
        for cand in cands:
            for role, _ in level.roles:
                check_role(cand, role, f"{level.key}.{role}")
                check_operand(cand, role, f"{level.key}.{role}")
                if cand.lacks(role):  # an exact name means this node: not silently float
                    raise ConfigError(
                        f"{level.key}.{role}: got a {role} for node {cand.node.name!r}, "
                        f"{with_article(cand.spec.kind)} without a {role} parameter (e.g. "
                        f"bias=False), allowed: the roles it has "
                        f"{[r for r in cand.spec.roles if not cand.lacks(r)]}"
                    )
            if cand.node.name in exact:
                raise ConfigError(
                    f"{level.key}: got node {cand.node.name!r}, which is already configured by "
                    f"{exact[cand.node.name].key}, allowed: one by_name table per node"
                )
            exact[cand.node.name] = level
    by_type = dict(config.by_type)
    layers: dict[str, LayerQuant] = {}
    for name, cand in view.candidates.items():
        regex_level = next((lv for p, lv in regexes if matches(p, cand)), None)
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
            fmt = role_format(rs.table(), rs.key, cand, role, calibration)
            check_block_dim(
                view, name, role, dict(rs.fields).get("block_dim"), f"{rs.key}.block_dim"
            )
            if fmt is not None:
                fmts[role] = fmt
        if fmts:
            layers[name] = LayerQuant(**fmts)
    out = ResolvedConfig(layers)
    if not out.pending:
        out._bound = weakref.ref(gm)
    return out
