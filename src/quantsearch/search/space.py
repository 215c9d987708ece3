"""A finite search space over per-layer number formats, built from ``[search.space]`` and a graph.

Each *knob* is one Optuna parameter named ``"<kind>.<role>"`` (``by = "type"``: one choice shared
by every node of that kind) or ``"<node>.<role>"`` (``by = "name"``). Its choices are format
option dicts such as ``{"format": "fixed", "width": 8, "frac_width": 4}``, shown to Optuna (and
so to study tables and dashboards) by readable labels such as ``fixed(8,4)``.

The space knows its exact size and enumerates itself in a stable, mixed-radix order: point 0 takes
the first choice of every knob, and the last knob varies fastest.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from torch import fx

from quantsearch.errors import ConfigError
from quantsearch.graph import info
from quantsearch.search.config import SAME_AS, SpaceSpec

__all__ = ["Knob", "SearchSpace", "option_label"]

Encoding = Literal["categorical", "ordinal"]


def option_label(option: Mapping[str, Any]) -> str:
    """``{"format": "fixed", "width": 8, "frac_width": 4}`` -> ``"fixed(8,4)"``."""
    values = ",".join(str(v) for k, v in option.items() if k != "format")
    return f"{option['format']}({values})"


def _bits(option: Mapping[str, Any]) -> float:
    from quantsearch.formats import make_format

    fields = {k: v for k, v in option.items() if k != "format"}
    return float(make_format(str(option["format"]), fields, key="search.space").bits_per_element)


@dataclass(frozen=True)
class Knob:
    """One searched choice: a role (``weight`` ...) of one node or of every node of a kind."""

    name: str
    role: str
    nodes: tuple[str, ...]
    options: tuple[dict[str, Any], ...]
    labels: tuple[str, ...]
    by_cost: tuple[int, ...]  # option indices from cheapest to dearest (ordinal encoding)

    @property
    def size(self) -> int:
        return len(self.options)


class SearchSpace:
    """The knobs of a :class:`SpaceSpec` applied to a traced graph.

    Args:
        spec: the validated ``[search.space]`` table.
        gm: the traced float model; node names and op kinds are checked against it.
        quantizable: op kinds the quantize pass supports (a target of another kind is an error).
    """

    def __init__(
        self, spec: SpaceSpec, gm: fx.GraphModule, quantizable: set[str] | None = None
    ) -> None:
        self.spec = spec
        nodes = [
            info(n) for n in gm.graph.nodes if n.op not in ("placeholder", "output", "get_attr")
        ]
        by_kind: dict[str, list[str]] = {}
        for ni in nodes:
            by_kind.setdefault(ni.op_kind, []).append(ni.name)
        names = {ni.name: ni for ni in nodes}
        # Module paths ("seq_blocks.2") are accepted as node names too.
        aliases = {ni.target: ni.name for ni in nodes if ni.op == "call_module"}

        def check_kind(kind: str, key: str) -> None:
            if quantizable is not None and kind not in quantizable:
                raise ConfigError(
                    f"{key}: op kind {kind!r} cannot be quantized; quantizable kinds: {sorted(quantizable)}"
                )

        knobs: list[Knob] = []
        self.derived: list[tuple[str, str, str]] = []  # (node, role, source role)
        kind_targets = {t: v for t, v in spec.choices.items() if t in by_kind}
        node_targets: dict[str, dict[str, Any]] = {}
        for target, roles in spec.choices.items():
            key = f"search.space.choices.{target}"
            if target in by_kind:
                check_kind(target, key)
                continue
            node = target if target in names else aliases.get(target)
            if node is None:
                raise ConfigError(
                    f"{key}: {target!r} is neither an op kind nor a node of the model; "
                    f"kinds: {sorted(by_kind)}; nodes: {sorted(names)}"
                )
            check_kind(names[node].op_kind, key)
            node_targets[node] = roles
        if spec.by == "type":
            if node_targets:
                first = next(iter(node_targets))
                raise ConfigError(
                    f"search.space.choices.{first}: choices per node need search.space.by = 'name' "
                    f"(got by = 'type')"
                )
            for kind, roles in kind_targets.items():
                self._add(knobs, kind, tuple(by_kind[kind]), roles)
        else:
            for ni in nodes:
                node_roles = node_targets.get(ni.name) or kind_targets.get(ni.op_kind)
                if node_roles is not None:
                    self._add(knobs, ni.name, (ni.name,), node_roles)
        self.knobs = knobs
        self._by_name = {k.name: k for k in knobs}

    def _add(
        self, knobs: list[Knob], prefix: str, nodes: tuple[str, ...], roles: Mapping[str, Any]
    ) -> None:
        for role, choices in roles.items():
            if isinstance(choices, str):
                self.derived.extend((n, role, SAME_AS[choices]) for n in nodes)
                continue
            labels = tuple(option_label(o) for o in choices)
            if len(set(labels)) != len(labels):  # same values under different field names
                labels = tuple(
                    f"{o['format']}("
                    + ",".join(f"{k}={v}" for k, v in o.items() if k != "format")
                    + ")"
                    for o in choices
                )
            cost_order = tuple(
                sorted(range(len(choices)), key=lambda i: (_bits(choices[i]), labels[i]))
            )
            knobs.append(Knob(f"{prefix}.{role}", role, nodes, tuple(choices), labels, cost_order))

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

    def distributions(self, encoding: Encoding = "categorical") -> dict[str, Any]:
        """Optuna distributions: labels (categorical) or cheapest-first indices (ordinal)."""
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
                try:
                    out[knob.name] = knob.labels.index(v)
                except ValueError:
                    raise ConfigError(
                        f"parameter {knob.name!r} = {v!r} is not one of {list(knob.labels)}"
                    ) from None
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
