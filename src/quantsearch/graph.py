"""Trace a model into a torch.fx graph whose nodes carry one :class:`NodeInfo` each.

Like ``torch.fx.passes.shape_prop.ShapeProp``, :func:`trace` runs the example input through an
``fx.Interpreter`` once and writes what it learns into ``node.meta[META_KEY]``. Later passes
(analysis, quantization) add their facts to the same record; nothing is kept in side tables.
"""

from __future__ import annotations

import operator
import traceback
from dataclasses import dataclass, field, is_dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn

from quantsearch.errors import TraceError
from quantsearch.graph_tracer import compiled_module, detach_no_grad, symbolic_trace

__all__ = [
    "META_KEY",
    "PARAM_ORIGINS",
    "NodeInfo",
    "TensorMeta",
    "check_inputs",
    "info",
    "node_infos",
    "op_kind_of",
    "trace",
]

META_KEY = "quantsearch"
# On a module copied by the quantize pass: {parameter name: id of the traced model's tensor it
# was copied from}. A tensor tied between two modules, or a module copied twice (called under
# two configs), is then one parameter to the analysis passes, not two.
PARAM_ORIGINS = "quantsearch_param_origins"


@dataclass(frozen=True)
class TensorMeta:
    """Shape and dtype of one tensor flowing along an edge."""

    shape: tuple[int, ...]
    dtype: str

    @property
    def numel(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    @classmethod
    def of(cls, t: torch.Tensor) -> TensorMeta:
        return cls(tuple(t.shape), str(t.dtype).removeprefix("torch."))


@dataclass
class NodeInfo:
    """Everything quantsearch knows about one graph node.

    Attributes:
        name: the fx node name (``seq_blocks_2``).
        op: the fx opcode (``call_module``, ``call_function``, ...).
        op_kind: a stable kind such as ``linear``, ``conv2d``, ``relu``, ``add``, ``flatten``.
        target: module path (``seq_blocks.2``) or function/method name.
        module_type: qualified class name for ``call_module`` nodes, else ``None``.
        inputs: metadata of the tensor arguments, in argument order.
        outputs: metadata of the tensor result(s).
        precision: number format per role (``data_in``, ``weight``, ``bias``, ``data_out``),
            written by the quantize pass. A missing role is in the tensor's own dtype.
        cost: per-node analysis results written by the analysis passes, keyed by metric name.
    """

    name: str
    op: str
    op_kind: str
    target: str
    module_type: str | None
    inputs: tuple[TensorMeta, ...] = ()
    outputs: tuple[TensorMeta, ...] = ()
    precision: dict[str, Any] = field(default_factory=dict)
    cost: dict[str, Any] = field(default_factory=dict)


_MODULE_KINDS: dict[type[nn.Module], str] = {
    nn.Linear: "linear",
    nn.Conv1d: "conv1d",
    nn.Conv2d: "conv2d",
    nn.BatchNorm1d: "batch_norm1d",
    nn.BatchNorm2d: "batch_norm2d",
    nn.BatchNorm3d: "batch_norm3d",
    nn.LayerNorm: "layer_norm",
    nn.ReLU: "relu",
    nn.ReLU6: "relu6",
    nn.GELU: "gelu",
    nn.SiLU: "silu",
    nn.LeakyReLU: "leaky_relu",
    nn.Hardtanh: "hardtanh",
    nn.Sigmoid: "sigmoid",
    nn.Tanh: "tanh",
    nn.Softmax: "softmax",
    nn.LogSoftmax: "log_softmax",
    nn.MaxPool1d: "max_pool1d",
    nn.MaxPool2d: "max_pool2d",
    nn.AvgPool1d: "avg_pool1d",
    nn.AvgPool2d: "avg_pool2d",
    nn.AdaptiveAvgPool1d: "adaptive_avg_pool1d",
    nn.AdaptiveAvgPool2d: "adaptive_avg_pool2d",
    nn.Flatten: "flatten",
    nn.Dropout: "dropout",
    nn.Embedding: "embedding",
    nn.Identity: "identity",
    nn.GroupNorm: "group_norm",
    nn.LogSigmoid: "log_sigmoid",
    nn.PixelShuffle: "pixel_shuffle",
    nn.Upsample: "upsample",  # UpsamplingNearest2d, UpsamplingBilinear2d too
}
for _d in (1, 2, 3):  # the function's name (F.conv_transpose2d), not the class's lowered
    _MODULE_KINDS[getattr(nn, f"ConvTranspose{_d}d")] = f"conv_transpose{_d}d"
    _MODULE_KINDS[getattr(nn, f"AdaptiveMaxPool{_d}d")] = f"adaptive_max_pool{_d}d"
    _MODULE_KINDS[getattr(nn, f"InstanceNorm{_d}d")] = f"instance_norm{_d}d"

_FUNCTION_KINDS: dict[Any, str] = {
    operator.add: "add",
    torch.add: "add",
    operator.sub: "sub",
    torch.sub: "sub",
    operator.mul: "mul",
    torch.mul: "mul",
    operator.truediv: "div",
    torch.div: "div",
    operator.matmul: "matmul",
    torch.matmul: "matmul",
    torch.bmm: "bmm",
    torch.relu: "relu",
    F.relu: "relu",
    F.relu6: "relu6",
    F.gelu: "gelu",
    torch.sigmoid: "sigmoid",
    F.sigmoid: "sigmoid",
    torch.tanh: "tanh",
    F.tanh: "tanh",
    torch.softmax: "softmax",
    F.softmax: "softmax",
    F.linear: "linear",
    F.conv1d: "conv1d",
    F.conv2d: "conv2d",
    F.layer_norm: "layer_norm",
    F.batch_norm: "batch_norm",
    F.max_pool1d: "max_pool1d",
    F.max_pool2d: "max_pool2d",
    F.avg_pool1d: "avg_pool1d",
    F.avg_pool2d: "avg_pool2d",
    F.adaptive_avg_pool1d: "adaptive_avg_pool1d",
    F.adaptive_avg_pool2d: "adaptive_avg_pool2d",
    F.dropout: "dropout",
    F.threshold: "threshold",
    F.embedding: "embedding",
    torch.flatten: "flatten",
    torch.reshape: "reshape",
    torch.cat: "cat",
    operator.getitem: "getitem",
    getattr: "getattr",
}

_METHOD_KINDS = {"add": "add", "sub": "sub", "mul": "mul", "div": "div", "matmul": "matmul"}


def op_kind_of(node: fx.Node, modules: dict[str, nn.Module]) -> str:
    """The stable op kind of ``node`` (``linear``, ``relu``, ``add`` ...).

    A module class may declare its kind with a class attribute ``op_kind`` (quantized modules do,
    so a quantized ``linear`` is still a ``linear``). Unknown functions and modules get their
    lower-cased name, so they show up by name in every table instead of vanishing.
    """
    if node.op in ("placeholder", "output", "get_attr"):
        return node.op
    if node.op == "call_module":
        mod = modules[str(node.target)]
        declared = getattr(type(mod), "op_kind", None)
        if isinstance(declared, str):
            return declared
        for cls in type(mod).__mro__:
            if cls in _MODULE_KINDS:
                return _MODULE_KINDS[cls]
        return type(mod).__name__.lower()
    if node.op == "call_function":
        declared = getattr(node.target, "op_kind", None)
        if isinstance(declared, str):
            return declared
        try:
            kind = _FUNCTION_KINDS.get(node.target)
        except TypeError:  # unhashable target
            kind = None
        container = isinstance(node.target, type) and (
            issubclass(node.target, tuple) or is_dataclass(node.target)
        )
        if kind is None and container:
            return "tuple"  # a NamedTuple or a dataclass the forward builds (its outputs, say)
        return kind or getattr(node.target, "__name__", str(node.target)).lower()
    # call_method
    method = str(node.target)
    return _METHOD_KINDS.get(method, method)


def _target_name(node: fx.Node) -> str:
    if node.op in ("call_module", "get_attr", "call_method", "placeholder", "output"):
        return str(node.target)
    return getattr(node.target, "__name__", str(node.target))


def _tensors(value: Any) -> list[torch.Tensor]:
    """Tensors in ``value``, flattened through tuples, lists and dicts."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (tuple, list)):
        return [t for v in value for t in _tensors(v)]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _tensors(v)]
    return []


class _MetaProp(fx.Interpreter):
    """Runs the graph once and writes a NodeInfo into every node's meta."""

    def run_node(self, n: fx.Node) -> Any:
        try:
            result = super().run_node(n)
        except Exception as exc:
            # fx appends "While executing %node ..." and more lines: the first one says it.
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise TraceError(
                f"running node {n.name!r} ({n.op} {_target_name(n)}) on the example input failed: "
                f"{type(exc).__name__}: {first}"
            ) from exc
        ins: list[TensorMeta] = []
        for arg_node in n.all_input_nodes:
            ins.extend(TensorMeta.of(t) for t in _tensors(self.env[arg_node]))
        mod = self._modules.get(str(n.target)) if n.op == "call_module" else None
        n.meta[META_KEY] = NodeInfo(
            name=n.name,
            op=n.op,
            op_kind=op_kind_of(n, self._modules),
            target=_target_name(n),
            module_type=None if mod is None else f"{type(mod).__module__}.{type(mod).__qualname__}",
            inputs=tuple(ins),
            outputs=tuple(TensorMeta.of(t) for t in _tensors(result)),
        )
        return result

    def __init__(self, gm: fx.GraphModule) -> None:
        super().__init__(gm)
        self._modules = dict(gm.named_modules())


def _user_frame(exc: BaseException) -> str:
    """``file:line: code`` of the innermost traceback frame outside torch, if any."""
    torch_root = str(Path(torch.__file__).parent)
    here = str(Path(__file__).parent)
    frames = [
        f
        for f in traceback.extract_tb(exc.__traceback__)
        if not f.filename.startswith(torch_root) and not f.filename.startswith(here)
    ]
    if not frames:
        return ""
    f = frames[-1]
    return f" at {Path(f.filename).name}:{f.lineno}: {(f.line or '').strip()}"


def check_inputs(gm: fx.GraphModule, example_inputs: tuple[Any, ...]) -> None:
    """One example per input of ``forward`` (those with defaults may be left out).

    Raises:
        TraceError: one line naming the inputs and how many were given.
    """
    name = type(gm).__name__
    inputs = [n for n in gm.graph.nodes if n.op == "placeholder"]
    if any(str(n.target).startswith("*") for n in inputs):
        return  # *args / **kwargs: fx checks them when it runs
    required = [n for n in inputs if not n.args]
    k = len(example_inputs)
    if len(required) <= k <= len(inputs):
        return
    names = ", ".join(str(n.target) for n in inputs)
    raise TraceError(
        f"model: {name}.forward takes {len(required)} input(s) ({names}), got {k} example "
        f"tensor(s), allowed: one per input; data give one tensor x per sample, so a model "
        f"with several inputs is searched through a wrapper whose forward takes one tensor"
    )


def annotate(gm: fx.GraphModule, *example_inputs: torch.Tensor) -> fx.GraphModule:
    """Fill ``node.meta[META_KEY]`` for every node by running ``example_inputs`` once (in place).

    Existing ``precision`` and ``cost`` entries are kept, so re-annotating a quantized graph
    refreshes shapes without forgetting formats.
    """
    check_inputs(gm, example_inputs)
    old = {n.name: n.meta.get(META_KEY) for n in gm.graph.nodes}
    # Restore each module's own flag: gm.train(flag) would reset every submodule to gm's.
    modes = {m: m.training for m in gm.modules()}
    gm.eval()
    try:
        with torch.no_grad():
            _MetaProp(gm).run(*example_inputs)
    except TraceError as exc:  # fx's Interpreter.run appended "While executing ..." lines
        raise TraceError(str(exc).splitlines()[0]) from exc.__cause__
    finally:
        for m, mode in modes.items():
            m.training = mode
    for n in gm.graph.nodes:
        prev = old.get(n.name)
        if isinstance(prev, NodeInfo) and META_KEY in n.meta:
            n.meta[META_KEY].precision = dict(prev.precision)
            n.meta[META_KEY].cost = dict(prev.cost)
    return gm


def trace(model: nn.Module, *example_inputs: torch.Tensor) -> fx.GraphModule:
    """Symbolically trace ``model`` and annotate each node by running ``example_inputs``.

    The graph is the model's inference graph: ``forward`` is traced with every module in eval
    mode, so code that reads ``self.training`` (``F.dropout(x, p, self.training)``,
    ``if self.training:``) is recorded as in eval mode, whatever mode the model is in (torch.fx
    would otherwise bake the flag in as a constant). Layers that are modules (``nn.Dropout``,
    ``nn.BatchNorm1d``) still follow ``.train()``/``.eval()`` when the graph runs. The model's
    flags are left as they were; the returned module is in the model's mode.

    Args:
        model: any ``nn.Module`` that torch.fx can trace (no data-dependent control flow).
        example_inputs: one tensor per ``forward`` argument; its batch size is recorded.

    Returns:
        A new ``GraphModule``; the input model is not modified.

    Raises:
        TraceError: naming the offending line (symbolic tracing) or node (the example run).

    Example:
        >>> import torch
        >>> from quantsearch.graph import trace, info
        >>> gm = trace(torch.nn.Sequential(torch.nn.Linear(4, 2), torch.nn.ReLU()), torch.ones(3, 4))
        >>> [info(n).op_kind for n in gm.graph.nodes]
        ['placeholder', 'linear', 'relu', 'output']
        >>> info(list(gm.graph.nodes)[1]).outputs[0].shape
        (3, 2)
    """
    if not isinstance(model, nn.Module):
        raise TraceError(f"model must be a torch.nn.Module (got {type(model).__name__})")
    model = compiled_module(model)  # a wrapper (torch.compile, DataParallel): what it wraps
    # The inference graph: code that reads self.training is traced as in eval mode, whatever
    # the model's mode (fx would bake F.dropout(x, training=self.training) in as a constant).
    # Each module's own flag is restored afterwards; the copy keeps the model's.
    modes = {m: m.training for m in model.modules()}
    state = {**dict(model.named_parameters()), **dict(model.named_buffers())}
    state_versions = {k: _version(t) for k, t in state.items()}
    try:
        for m in modes:
            m.training = False
        gm = symbolic_trace(model, len(example_inputs))
    except Exception as exc:
        raise TraceError(
            f"cannot trace {type(model).__name__} with torch.fx{_user_frame(exc)}: "
            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        ) from exc
    finally:
        for m, mode in modes.items():
            m.training = mode
    gm.training = model.training
    detach_no_grad(gm, *example_inputs)
    # Run on copies: a forward that changes its input in place (x.mul_(2), x += b) would
    # otherwise change the caller's tensors, and every later call would see other data.
    copies = tuple(t.clone() if isinstance(t, torch.Tensor) else t for t in example_inputs)
    versions = [_version(t) if isinstance(t, torch.Tensor) else None for t in copies]
    annotate(gm, *copies)
    _check_state_kept(model, state, state_versions)
    changed = [
        i
        for i, (t, v, x) in enumerate(zip(copies, versions, example_inputs, strict=True))
        if isinstance(t, torch.Tensor)
        and (_version(t) != v if v is not None else not torch.equal(t, x))
    ]
    if changed:
        _copy_inputs(gm, changed)
        annotate(gm, *example_inputs)
    return gm


def _version(t: torch.Tensor) -> int | None:
    """How often ``t`` was changed in place; ``None`` for an inference tensor, which keeps no
    count (made under ``torch.inference_mode()``)."""
    return None if t.is_inference() else t._version


def _check_state_kept(
    model: nn.Module, state: dict[str, torch.Tensor], versions: dict[str, int | None]
) -> None:
    """Refuse a forward that changes a parameter or buffer in place (``self.calls += 1``):
    torch.fx runs such a line once while tracing and leaves it out of the graph, so the graph
    would compute with a frozen copy of what the model changes on every call."""
    changed = [k for k, t in state.items() if _version(t) != versions[k]]
    if changed:
        raise TraceError(
            f"model: {type(model).__name__}.forward changes {', '.join(changed)} in place, "
            f"allowed: a forward that leaves its parameters and buffers as they are (in eval mode)"
        )


def _copy_inputs(gm: fx.GraphModule, positions: list[int]) -> None:
    """Make the graph read a copy (``x.clone()``) of each input at ``positions``, the ones its
    forward changes in place: the model's results stay the same, and the data it is given
    (validation batches, reused by every trial) stay as they were."""
    inputs = [n for n in gm.graph.nodes if n.op == "placeholder"]
    for i in positions:
        if i >= len(inputs) or str(inputs[i].target).startswith("*"):
            continue  # *args: fx packs them; not one placeholder per tensor
        node = inputs[i]
        with gm.graph.inserting_after(inputs[-1]):
            copy = gm.graph.call_method("clone", (node,))
        node.replace_all_uses_with(copy, delete_user_cb=lambda user, c=copy: user is not c)
    gm.graph.lint()
    gm.recompile()


def info(node: fx.Node) -> NodeInfo:
    """The :class:`NodeInfo` of a traced node."""
    try:
        meta = node.meta[META_KEY]
    except KeyError:
        raise TraceError(
            f"node {node.name!r} has no quantsearch metadata; build graphs with quantsearch.trace"
        ) from None
    assert isinstance(meta, NodeInfo)
    return meta


def node_infos(gm: fx.GraphModule) -> list[NodeInfo]:
    """NodeInfo of every node, in graph order."""
    return [info(n) for n in gm.graph.nodes]
