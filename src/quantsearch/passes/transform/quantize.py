"""``quantize(gm, config) -> GraphModule``: a new, quantized module; the input is untouched.

The graph is copied node for node (names kept, so per-node configs and metadata line up) and
every called module is rebuilt: quantized nodes by their op kind's builder
(:data:`~quantsearch.passes.transform.modules.QUANTIZERS`), the others as plain copies. Nothing
mutable is shared with the input: every parameter and buffer is a new tensor and every module
a new object, so training, ``.train()``/``.eval()`` or an optimizer step on the result cannot
reach the pristine model that the next search trial starts from. Function nodes that are
quantized (``add``, ``relu`` ...) become ``call_module`` nodes of the same name, their modules
kept under one container (``quantized_nodes``).

Each node of the result carries a copy of its :class:`~quantsearch.graph.NodeInfo` whose
``precision`` maps role -> format (what the metrics passes read) and whose ``cost`` is empty
(every cost may depend on precision; the analysis passes recompute them).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from operator import attrgetter
from typing import Any

import torch
from torch import Tensor, fx, nn

# torch.fx's GraphModule whose code is generated when it first runs or its code is read, not
# when it is built: the prepared model (slots.py) builds one per graph structure, and a batched
# search prices the first one's static metrics from its graph without ever running it. Private
# (torch.fx uses it for inductor's pattern graphs) but pickled, printed and run as any other.
from torch.fx._lazy_graph_module import _LazyGraphModule

from quantsearch.errors import ConfigError
from quantsearch.graph import META_KEY, PARAM_ORIGINS, NodeInfo, info
from quantsearch.passes.analysis.tensors import param_source
from quantsearch.passes.transform.calibrate import CalibrationStats
from quantsearch.passes.transform.config import QuantizeConfig
from quantsearch.passes.transform.functional import operand
from quantsearch.passes.transform.layer import PARAM_ROLES
from quantsearch.passes.transform.modules import QUANTIZERS, clone_module, submodule
from quantsearch.passes.transform.resolve import resolve
from quantsearch.passes.transform.resolved import ResolvedConfig

__all__ = ["CONTAINER", "node_info", "plan_targets", "quantize"]

CONTAINER = "quantized_nodes"


def _qualname(obj: Any) -> str:
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def _free_name(gm: fx.GraphModule, name: str, taken: Mapping[str, Any] | None = None) -> str:
    while hasattr(gm, name) or name in (taken or {}):
        name += "_"
    return name


def _copy_value(value: Any) -> Any:
    if isinstance(value, nn.Parameter):
        return nn.Parameter(value.detach().clone(), requires_grad=value.requires_grad)
    if isinstance(value, Tensor):
        return value.detach().clone()
    if isinstance(value, nn.Module):
        return clone_module(value)
    return value  # constants: immutable in practice


def quantize(
    gm: fx.GraphModule,
    config: QuantizeConfig | ResolvedConfig,
    *,
    calibration: CalibrationStats | None = None,
) -> fx.GraphModule:
    """A quantized copy of ``gm``; ``gm``, its parameters and ``config`` are left unchanged.

    In eval mode (``gm.training`` false) weights and biases are rounded onto their grids once,
    here; in training mode the copy keeps float weights and quantizes them in every forward
    pass with straight-through gradients. Activations are quantized in every forward pass.

    Args:
        gm: a graph built by :func:`quantsearch.graph.trace`.
        config: a parsed ``[quantize]`` table or a per-node :class:`ResolvedConfig`.
        calibration: activation ranges from :func:`calibrate`, needed when an activation's
            ``frac_width`` is ``"auto"``.

    Returns:
        A new ``GraphModule`` with the same node names; each node's ``NodeInfo.precision``
        holds its formats.

    Raises:
        ConfigError: for names or roles the graph does not have, or ``"auto"`` activations
            without ``calibration``.

    Example:
        >>> import torch
        >>> from quantsearch.graph import trace, info
        >>> gm = trace(torch.nn.Sequential(torch.nn.Linear(4, 2)).eval(), torch.ones(3, 4))
        >>> rc = ResolvedConfig.from_dict({"_0": {"weight": {"format": "fixed", "width": 4, "frac_width": 2}}})
        >>> qgm = quantize(gm, rc)
        >>> bool(((qgm.get_submodule("0").weight * 4) % 1 == 0).all())   # on the 0.25 grid
        True
        >>> info(list(qgm.graph.nodes)[1]).precision
        {'weight': FixedPoint(width=4, frac_width=2, signed=True, rounding='nearest')}
    """
    if isinstance(config, QuantizeConfig):
        config = resolve(gm, config, calibration=calibration)
    if isinstance(config, ResolvedConfig):
        resolved = config.bind(gm, calibration)  # raises for auto activations without stats
    else:
        raise ConfigError(
            f"quantize: config must be a QuantizeConfig or ResolvedConfig (got {type(config).__name__})"
        )
    return _apply(gm, resolved)


def node_info(ni: NodeInfo, new: fx.Node, module: Any, precision: dict[str, Any]) -> NodeInfo:
    """The record of a quantized graph's node: its formats, a fresh (empty) cost."""
    return dataclasses.replace(
        ni,
        op=new.op,
        target=str(new.target) if new.op == "call_module" else ni.target,
        module_type=_qualname(module) if new.op == "call_module" else ni.module_type,
        precision=precision,
        cost={},
    )


def plan_targets(gm: fx.GraphModule, resolved: ResolvedConfig) -> tuple[str | None, ...]:
    """The module target each node of ``quantize(gm, resolved)`` calls (``None``: no module).

    What :func:`_apply` decides, without building anything: two configs with equal plans give
    graphs of the same structure, which :mod:`.slots` reuses.
    """
    container = _free_name(gm, CONTAINER)
    taken: set[str] = set()
    built: dict[tuple[str, Any], str] = {}
    out: list[str | None] = []
    for node in gm.graph.nodes:
        lq = resolved.get(node.name)
        if node.op == "call_module" or (
            lq is not None and node.op in ("call_function", "call_method")
        ):
            k = (str(node.target), lq)
            if node.op == "call_module" and k in built:
                out.append(built[k])
                continue
            target = str(node.target)
            if node.op != "call_module" or target in taken:
                target = f"{container}.{node.name}"
            taken.add(target)
            built[k] = target
            out.append(target)
        else:
            out.append(None)
    return tuple(out)


def _apply(gm: fx.GraphModule, resolved: ResolvedConfig, *, lazy: bool = False) -> fx.GraphModule:
    """``quantize``'s work on a bound config; ``lazy``: its ``forward`` is generated when it
    first runs (or its code is read), not now."""
    graph = copy.deepcopy(gm.graph)  # node for node, names kept; node.meta copied shallowly
    container = _free_name(gm, CONTAINER)
    root: dict[str, Any] = {}
    built: dict[tuple[str, Any], str] = {}  # (old target, config) -> new target
    get_attrs: list[fx.Node] = []
    rounding: set[str] = set()  # targets of the layers a config quantizes
    own_format = _reads_with_a_format(gm, resolved)
    for old, new in zip(gm.graph.nodes, graph.nodes, strict=True):
        ni = info(old)
        lq = resolved.get(old.name)
        precision = dict(ni.precision) if lq is None else dict(lq.items())
        module = submodule(gm, str(old.target)) if old.op == "call_module" else None
        if old.op == "call_module" or (
            lq is not None and old.op in ("call_function", "call_method")
        ):
            k = (str(old.target), lq)
            if old.op == "call_module" and k in built:
                new.target = built[k]  # a module called twice, configured alike: one copy
            else:
                training = module.training if module is not None else gm.training
                if lq is None:
                    assert module is not None
                    qmod = clone_module(module)
                else:
                    try:
                        qmod = QUANTIZERS.get(ni.op_kind).build(old, module, lq, training)
                    except Exception as exc:  # say which pass and node, as fx does
                        exc.add_note(f"while quantizing node {old.name!r} ({ni.op_kind})")
                        raise
                    qmod.train(training)
                target = str(old.target)
                if old.op != "call_module" or target in root:  # a function, or a differently
                    target = f"{container}.{old.name}"  # configured second call of a module
                root[target] = qmod
                built[k] = target
                if lq is not None:
                    rounding.add(target)
                new.op, new.target = "call_module", target
            module = root[str(new.target)]
        elif old.op == "get_attr":
            get_attrs.append(new)
        new.meta[META_KEY] = node_info(ni, new, module, precision)
    origins: dict[str, int] = {}  # copied get_attr tensors -> their originals (PARAM_ORIGINS)
    for node in get_attrs:  # after the modules, so a path into a new module reads the new one
        target = str(node.target)
        owner = next((t for t in root if target.startswith(t + ".")), None)
        if owner is not None and (owner not in rounding or node.name not in own_format):
            root[target] = attrgetter(target[len(owner) + 1 :])(root[owner])
        else:
            value = attrgetter(target)(gm)
            path, _, name = target.rpartition(".")
            held = (gm.get_submodule(path) if path else gm).__dict__.get(PARAM_ORIGINS, {})
            if owner is not None:
                # a quantized layer holds its own rounding of the tensor (in eval mode); a
                # layer reading it with a format of its own (F.linear(z, self.enc.weight.t()))
                # reads the float tensor, under a name of its own, and rounds it itself
                node.target = _free_name(gm, f"{target.replace('.', '_')}_float", root)
            root[str(node.target)] = _copy_value(value)
            origins[str(node.target)] = held.get(name, id(value))
    cls = _LazyGraphModule if lazy else fx.GraphModule
    qgm = cls(root, graph, class_name=type(gm).__name__)
    for target, origin in origins.items():  # on the module fx made to hold each copy
        path, _, name = target.rpartition(".")
        holder = qgm.get_submodule(path) if path else qgm
        holder.__dict__.setdefault(PARAM_ORIGINS, {})[name] = origin
    qgm.meta = dict(gm.meta)
    for name, m in qgm.named_modules():  # the containers fx created; leaves keep their flags
        if name not in root:
            m.training = gm.training
    _tie_trainable_copies(qgm)
    return qgm


def _reads_with_a_format(gm: fx.GraphModule, resolved: ResolvedConfig) -> set[str]:
    """The ``get_attr`` nodes that a function-form layer reads as its weight or bias with a
    format of its own (directly or through a view such as ``.t()``). Any other read of a
    quantized layer's tensor (``self.fc1.bias.abs()``) reads the layer's own rounding."""
    out: set[str] = set()
    for n in gm.graph.nodes:
        lq = resolved.get(n.name)
        if lq is None or n.op not in ("call_function", "call_method"):
            continue
        for role, _ in lq.items():
            src = param_source(operand(n, role)) if role in PARAM_ROLES else None
            if src is not None:
                out.add(src.name)
    return out


def _tie_trainable_copies(qgm: fx.GraphModule) -> None:
    """One parameter again for the copies of one tensor held by modules in training mode (a
    weight tied between two modules, a module copied for a second call): they hold the same
    float master, which training must update as one. In eval mode a copy may be rounded to
    its own format, so copies stay apart (the analysis passes count them once, by origin)."""
    first: dict[int, nn.Parameter] = {}
    for m in qgm.modules():
        origins = m.__dict__.get(PARAM_ORIGINS, {})
        for k, p in m._parameters.items():
            origin = origins.get(k)
            if origin is None or not isinstance(p, nn.Parameter) or not m.training:
                continue
            held = first.setdefault(origin, p)
            if held is not p and held.dtype == p.dtype and torch.equal(held, p):
                m._parameters[k] = held
