"""Which nodes of a traced graph a config may name, and which of them can be quantized.

The one place where names in a config (node names, module paths, op kinds) meet a graph: the
``[quantize]`` resolver and the search space both check their targets here, so both accept the
same names and list the same valid ones in their errors.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
from torch import Tensor, fx, nn

from quantsearch.errors import ConfigError, with_article
from quantsearch.graph import NodeInfo, info
from quantsearch.passes.transform.functional import (
    QuantParamFunction,
    operand,
    operand_roles,
    operand_tensor,
)
from quantsearch.passes.transform.layer import PARAM_ROLES
from quantsearch.passes.transform.modules import (
    QUANTIZERS,
    QuantFunction,
    QuantSpec,
    quantizable_kinds,
    submodule,
)

__all__ = [
    "CALL_OPS",
    "Candidate",
    "GraphView",
    "batch_norm_fold",
    "check_block_dim",
    "check_operand",
    "check_role",
    "matches",
    "param_range",
]

CALL_OPS = ("call_module", "call_function", "call_method")


@dataclass(frozen=True)
class Candidate:
    node: fx.Node
    info: NodeInfo
    spec: QuantSpec
    module: nn.Module | None
    params: frozenset[str]  # the parameter roles the module has (a bias=False layer: weight)
    # a function-form layer's weight/bias roles whose operands are computed, not parameters
    computed: frozenset[str] = frozenset()

    def lacks(self, role: str) -> bool:
        """A weight/bias role whose tensor this node does not have."""
        return role in PARAM_ROLES and role not in self.params


class GraphView:
    """The call nodes of a graph, which of them can be quantized, and how names map to them.

    Example:
        >>> import torch
        >>> from quantsearch.graph import trace
        >>> gm = trace(torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU()), torch.ones(2, 4))
        >>> view = GraphView(gm)
        >>> view.nodes_named("0"), sorted(view.candidates), view.kinds()
        (['_0'], ['_0', '_1'], {'linear': ['_0'], 'relu': ['_1']})
    """

    def __init__(self, gm: fx.GraphModule) -> None:
        self.infos: dict[str, NodeInfo] = {}
        self.candidates: dict[str, Candidate] = {}
        self.by_target: dict[str, list[str]] = {}
        for n in gm.graph.nodes:
            if n.op not in CALL_OPS:
                continue
            ni = info(n)
            module = submodule(gm, str(n.target)) if n.op == "call_module" else None
            self.infos[n.name] = ni
            if n.op == "call_module":
                self.by_target.setdefault(str(n.target), []).append(n.name)
            # ``x.shape[0] * 4`` is a mul of Python ints: no tensor to round
            if ni.op_kind in QUANTIZERS and ni.outputs:
                spec = QUANTIZERS.get(ni.op_kind)
                if not spec.accepts(n, module):
                    continue
                computed: frozenset[str] = frozenset()
                if module is None or isinstance(module, (QuantParamFunction, QuantFunction)):
                    params, computed = operand_roles(n)  # F.linear(x, self.w, self.b)
                elif batch_norm_fold(module) is not None:  # the fold: scale and shift
                    params = frozenset(PARAM_ROLES)  # affine=False included
                else:
                    params = frozenset(
                        r for r in PARAM_ROLES if getattr(module, r, None) is not None
                    )
                self.candidates[n.name] = Candidate(n, ni, spec, module, params, computed)

    def nodes_named(self, name: str, key: str | None = None, *, node: bool = False) -> list[str]:
        """Node names for a node name or a module path (a module called twice has two nodes);
        ``node``: a node name first (a per-node config's keys, a trial's, are node names).

        Raises:
            ConfigError: at ``key`` for a name that is one node's name and another module's
                path (fx names ``enc.0``'s node ``enc_0`` beside a module ``enc_0``).
        """
        by_module = list(self.by_target.get(name, []))
        if name not in self.infos:
            return by_module
        if (
            by_module and name not in by_module and not node
        ):  # (a call of the module itself: that call)
            node_path = self.infos[name].target if self.infos[name].op == "call_module" else None
            raise ConfigError(
                f"{key or name}: got {name!r}, the name of node {name}"
                + (f" (module {node_path})" if node_path else "")
                + f" and the path of module {name} (node {', '.join(by_module)}), allowed: a "
                f"name of one of them alone: {node_path or name!r} or {by_module[0]!r}"
            )
        return [name]

    def kinds(self) -> dict[str, list[str]]:
        """Op kind -> the names of its call nodes, in graph order."""
        out: dict[str, list[str]] = {}
        for name, ni in self.infos.items():
            out.setdefault(ni.op_kind, []).append(name)
        return out

    def quantizable(self, name: str, key: str, *, node: bool = False) -> list[Candidate]:
        nodes = self.nodes_named(name, key, node=node)
        if not nodes:
            raise ConfigError(
                f"{key}: got {name!r}, which names no node or module in the graph, allowed: "
                f"a quantizable node's name or module path (quantizable nodes: "
                f"{sorted(self.candidates)})"
            )
        out = []
        for n in nodes:
            if n not in self.candidates:
                ni = self.infos[n]
                what = (ni.module_type or "").rsplit(".", 1)[-1] or ni.target
                raise ConfigError(
                    f"{key}: got node {n!r}, {with_article(ni.op_kind)} ({what}), which cannot be "
                    f"quantized, allowed: a node of a quantizable kind ({quantizable_kinds()}; "
                    f"quantizable nodes: {sorted(self.candidates)})"
                )
            out.append(self.candidates[n])
        return out


def batch_norm_fold(module: nn.Module | None) -> tuple[Tensor, Tensor] | None:
    """A BatchNorm's eval-mode ``(scale, shift)`` in float32, unrounded: the tensors its
    ``weight`` and ``bias`` formats round (``scale = gamma / sqrt(var + eps)``, ``shift =
    beta - mean * scale``, as the quantized BatchNorm folds; gamma 1 and beta 0 without
    affine). ``None`` for another module, or a BatchNorm without running statistics."""
    if not isinstance(module, nn.modules.batchnorm._BatchNorm):
        return None
    mean, var = module.running_mean, module.running_var
    if mean is None or var is None:
        return None
    with torch.no_grad():
        w, b = module._parameters.get("weight"), module._parameters.get("bias")
        gamma = torch.ones(module.num_features) if w is None else w.float()
        beta = torch.zeros(module.num_features) if b is None else b.float()
        scale = gamma / torch.sqrt(var.float() + module.eps)
        return scale, beta - mean.float() * scale


def _param_tensor(cand: Candidate, role: str) -> Tensor | None:
    """The parameter ``role`` of a candidate: its module's, or a function-form layer's operand;
    a BatchNorm's fold (what its formats round, not gamma and beta)."""
    if cand.module is None or isinstance(cand.module, QuantParamFunction):
        return operand_tensor(cand.node, role) if role in cand.params else None
    fold = batch_norm_fold(cand.module)
    if fold is not None:
        return fold[PARAM_ROLES.index(role)]
    return getattr(cand.module, role, None)


def param_range(cand: Candidate, role: str) -> tuple[float, float] | None:
    """``(min, max)`` of the parameter ``role`` of a candidate's module, if it has one."""
    p = _param_tensor(cand, role)
    if p is None or p.numel() == 0:
        return None
    d = p.detach()
    return float(d.min()), float(d.max())


def check_block_dim(view: GraphView, node: str, role: str, dim: object, key: str) -> None:
    """Refuse a block_fp ``block_dim`` (at ``key``) that the tensor ``role`` of ``node`` lacks:
    the format raised on it in every forward pass, after the config had been accepted."""
    if isinstance(dim, bool) or not isinstance(dim, int):
        return  # the format's own check names a wrong type
    shape = _role_shape(view, node, role)
    n = max(len(shape), 1) if shape is not None else None
    if n is not None and not -n <= dim < n:
        raise ConfigError(
            f"{key}: got {dim}, allowed: {-n} to {n - 1} (the {role} of node {node!r} is a "
            f"{len(shape or ())}-d tensor of shape {shape})"
        )


def _role_shape(view: GraphView, node: str, role: str) -> tuple[int, ...] | None:
    """The shape of the tensor ``role`` rounds at ``node``: its parameter, or the node's first
    input (``data_in``) or output; ``None`` where the trace recorded none."""
    if role in PARAM_ROLES:
        cand = view.candidates.get(node)
        if cand is None:
            return None
        p = _param_tensor(cand, role)
        return None if p is None else tuple(p.shape)
    metas = view.infos[node].inputs if role == "data_in" else ()
    metas = metas or view.infos[node].outputs
    return tuple(metas[0].shape) if metas else None


def check_role(cand: Candidate, role: str, key: str) -> None:
    if role not in cand.spec.roles:
        raise ConfigError(
            f"{key}: got a {role} for node {cand.node.name!r}, {with_article(cand.spec.kind)}, "
            f"which has no {role}, allowed: the roles of {cand.spec.kind} "
            f"{list(cand.spec.roles)}"
        )


def check_operand(cand: Candidate, role: str, key: str) -> None:
    """Refuse a weight/bias role that a config names for a node whose operand in that role is
    computed in forward: there is no parameter to store in the role's format."""
    if role in cand.computed:
        arg = operand(cand.node, role)
        if arg is None:  # a matmul of two computed tensors (q @ k)
            raise ConfigError(
                f"{key}: got a {role} for node {cand.node.name!r} ({cand.spec.kind}), which has "
                "no operand that is a parameter of the model, allowed: a weight format where an "
                "operand is one "
                "(x @ self.w, x @ self.w.t()); data_in rounds computed operands"
            )
        raise ConfigError(
            f"{key}: got a {role} for node {cand.node.name!r}, which reads its {role} from "
            f"{getattr(arg, 'name', arg)!r}, a tensor computed in forward, allowed: a {role} "
            f"format where the {role} operand "
            "is a parameter of the model (self.w, or a view of it such as self.w.t())"
        )


def matches(pattern: re.Pattern[str], cand: Candidate) -> bool:
    return bool(pattern.fullmatch(cand.node.name) or pattern.fullmatch(cand.info.target))
