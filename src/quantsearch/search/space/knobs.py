"""The finite search space a ``[search.space]`` table gives a traced graph.

Each *knob* is one Optuna parameter named ``"<kind>.<role>"`` (``by = "type"``: one choice shared
by every node of that kind) or ``"<node>.<role>"`` (``by = "name"``). Its choices are format
option dicts such as ``{"format": "fixed", "width": 8, "frac_width": 4}``, shown to Optuna by
their labels (:func:`~quantsearch.search.space.spec.choice_labels`).

The space knows its exact size and enumerates itself in a stable, mixed-radix order: point 0 takes
the first choice of every knob, and the last knob varies fastest.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from torch import fx

from quantsearch.errors import ConfigError
from quantsearch.passes.transform.graph_view import GraphView, check_block_dim
from quantsearch.passes.transform.layer import PARAM_ROLES
from quantsearch.passes.transform.resolved import ResolvedConfig
from quantsearch.search.space.spec import (
    SAME_AS,
    Choices,
    RoleChoices,
    SpaceSpec,
    choice_labels,
    is_auto,
    legacy_labels,
    option_bits,
)

if TYPE_CHECKING:  # optuna costs ~0.3 s to import; only distributions() needs it, at run time
    from optuna.distributions import BaseDistribution

__all__ = ["Encoding", "Knob", "SearchSpace"]

Encoding = Literal["categorical", "ordinal"]
LayerFormats = dict[str, dict[str, dict[str, Any]]]  # node -> role -> format option


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

    @functools.cached_property
    def bits(self) -> tuple[float, ...]:
        """Storage bits per element of each option (``"auto"`` binary points included); built
        once per knob (local search reads it for every choice of every move)."""
        return tuple(option_bits(o) for o in self.options)

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
                    f"{key}: got op kind {kind!r}, which cannot be quantized, allowed: a "
                    f"quantizable kind of {sorted(quantizable)}"
                )

        def tensor_nodes(kind: str) -> tuple[str, ...]:
            # x.shape[0] * 4 is a mul node of Python ints: no tensor to round
            return tuple(n for n in by_kind[kind] if names[n].outputs)

        self._view = view
        knobs: list[Knob] = []
        self.derived: list[tuple[str, str, str]] = []  # (node, role, source role)
        kind_targets = {t: v for t, v in spec.choices.items() if t in by_kind}
        node_targets: dict[str, RoleChoices] = {}
        for target, roles in spec.choices.items():
            key = f"search.space.choices.{target}"
            if target in by_kind:
                check_kind(target, key)
                if not tensor_nodes(target):
                    ok_kinds = sorted(
                        k for k in by_kind if tensor_nodes(k) and k in (quantizable or by_kind)
                    )
                    raise ConfigError(
                        f"{key}: got op kind {target!r}, whose nodes ({', '.join(by_kind[target])}) "
                        "compute Python numbers (shape arithmetic, x.shape[0] * 4), no tensor to "
                        f"round, allowed: a kind of {ok_kinds}"
                    )
                continue
            nodes = view.nodes_named(target, key)  # a node name or a module path
            if not nodes:
                raise ConfigError(
                    f"{key}: got {target!r}, neither an op kind nor a node of the model, allowed: "
                    f"a kind of {sorted(by_kind)} or a node of {sorted(names)}"
                )
            for node in nodes:
                check_kind(names[node].op_kind, key)
                node_targets[node] = roles
        if spec.by == "type":
            if node_targets:
                first = next(t for t in spec.choices if t not in kind_targets)
                raise ConfigError(
                    f"search.space.choices.{first}: got choices for a node with search.space.by = "
                    "'type', allowed: choices per node with search.space.by = 'name'"
                )
            for kind, roles in kind_targets.items():
                self._add(knobs, kind, kind, tensor_nodes(kind), roles)
        else:
            for name, ni in names.items():
                node_roles = node_targets.get(name) or (
                    kind_targets.get(ni.op_kind) if ni.outputs else None
                )
                if node_roles is not None:
                    self._add(knobs, name, ni.op_kind, (name,), node_roles)
        self.knobs = knobs
        self._by_name = {k.name: k for k in knobs}
        # asked every trial (auto_roles): looked up once, the knobs never change
        self._has_auto = any(is_auto(o) for k in knobs for o in k.options)

    def _add(
        self,
        knobs: list[Knob],
        prefix: str,
        kind: str,
        nodes: tuple[str, ...],
        roles: RoleChoices,
    ) -> None:
        for role, choices in roles.items():
            if isinstance(choices, str):
                self.derived.extend((n, role, SAME_AS[choices]) for n in nodes)
                continue
            name = f"{prefix}.{role}"
            nodes_with = self._having(f"search.space.choices.{name}", nodes, role)
            for node in nodes_with:
                self._check_block_dims(f"search.space.choices.{prefix}.{role}", node, role, choices)
            labels = choice_labels(kind, role, choices)
            if len(set(labels)) != len(labels):  # equal once the role's defaults apply
                twice = next(lb for lb in labels if labels.count(lb) > 1)
                raise ConfigError(
                    f"search.space.choices.{prefix}.{role}: two choices are the same format "
                    f"{twice} for the {role} of a {kind} (allowed: distinct formats)"
                )
            cost_order = tuple(
                sorted(range(len(choices)), key=lambda i: (option_bits(choices[i]), labels[i]))
            )
            knobs.append(
                Knob(name, role, nodes_with, choices, labels, cost_order, legacy_labels(choices))
            )

    def _having(self, key: str, nodes: tuple[str, ...], role: str) -> tuple[str, ...]:
        """The ``nodes`` that have the parameter ``role`` (a Linear without bias has no bias; a
        matmul of two computed tensors no weight): quantize() skips the others, so a knob of
        them alone would give every trial the same config under other names."""
        if role not in PARAM_ROLES:
            return nodes
        cands = self._view.candidates
        having = tuple(n for n in nodes if n in cands and not cands[n].lacks(role))
        if not having:
            ni = self._view.infos[nodes[0]]
            raise ConfigError(
                f"{key}: got {role} choices, but node {nodes[0]} ({ni.op_kind}) has no {role} "
                f"parameter{'' if len(nodes) == 1 else f' (nor do the {len(nodes) - 1} others)'}, "
                "allowed: choices for the roles it has (data_in rounds computed operands)"
            )
        return having

    def _check_block_dims(self, key: str, node: str, role: str, choices: Choices) -> None:
        """A block_fp ``block_dim`` the tensor has (a dimension it lacks failed every trial)."""
        for i, option in enumerate(choices):
            check_block_dim(
                self._view, node, role, option.get("block_dim"), f"{key}[{i}].block_dim"
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

    def n_configs(self, resolve: Callable[[LayerFormats], ResolvedConfig]) -> int:
        """How many distinct per-node configs the points resolve to (``resolve``: the
        evaluator's): :attr:`size`, unless ``"auto"`` choices make two options of a knob
        resolve alike at all its nodes (``[8, "auto"]`` beside the ``[8, 5]`` it calibrates
        to), which the cache then answers as one. A search that stops when every config is
        known counts to this.

        Knobs set disjoint (node, role) pairs, so the count is the product, over knobs, of the
        distinct configs each knob's options give its nodes (and the roles that follow them).
        """
        if not self.has_auto:
            return self.size
        n = 1
        for knob in self.knobs:
            images = set()
            for option in knob.options:
                formats = {node: {knob.role: option} for node in knob.nodes}
                for node, role, source in self.derived:
                    if source == knob.role and node in formats:
                        formats[node][role] = option
                images.add(resolve(formats).key())
            n *= len(images)
        return n

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

    @property
    def has_auto(self) -> bool:
        """Whether some choice leaves a field to calibration (``frac_width = "auto"``)."""
        return self._has_auto

    def auto_roles(self, choice: Mapping[str, int]) -> list[tuple[str, str]]:
        """``(node, role)`` of every role whose chosen format has ``"auto"`` fields: those the
        quantize pass binds per node (a trial records what they became)."""
        if not self.has_auto:
            return []
        return [
            (node, role)
            for node, roles in self.layer_formats(choice).items()
            for role, option in roles.items()
            if is_auto(option)
        ]

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
