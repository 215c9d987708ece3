"""The hardware plan of a quantized model: one fixed-point type for every tensor hardware holds.

quantsearch quantizes a node's input (``data_in``) and output (``data_out``); hardware such as
hls4ml holds one type per layer result. :func:`plan` walks the quantized graph and gives every
layer the type that makes the hardware compute what quantsearch computed:

- a layer's raw result (a Linear's sum, a folded BatchNorm's multiply-add) gets an exact type,
  wide enough that nothing rounds (:func:`~quantsearch.export.types.sum_type`);
- the quantizations that follow it (its ``data_out``, then the next node's ``data_in``) become
  its result type. A ReLU commutes with every (monotone, zero-preserving) quantizer, so its
  ``data_in`` is applied after it. Two quantizers in a row collapse into one type when the
  second holds every value of the first, or when both share the grid (the range is then their
  intersection); otherwise the layer is marked inexact with the reason;
- a role left in float has no exact counterpart: it takes ``float_as`` (if given) and the layer
  is marked inexact, or the plan refuses it, naming every such role;
- a layer whose exact sum is wider than float64's 53-bit significand (fixed(32,0) inputs times
  fixed(32,31) weights: 67 bits) is computed exactly by hardware but rounded by quantsearch's
  model, even in float64: it is marked inexact, and the difference is measured.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from torch import fx, nn

from quantsearch.errors import ConfigError
from quantsearch.export.types import HwType, hw_type, product_type, sum_type
from quantsearch.formats import FixedPoint, NumberFormat
from quantsearch.graph import info
from quantsearch.passes.transform.modules import submodule

__all__ = ["SUPPORTED_KINDS", "WIDE", "HwLayer", "HwPlan", "chain_nodes", "layer_module", "plan"]

SUPPORTED_KINDS = ("batch_norm1d", "linear", "relu")
WIDE = FixedPoint(32, 16)  # the suggested format for roles left in float
FLOAT64_BITS = 53  # float64's significand: the widest sum quantsearch's model holds exactly


@dataclass
class HwLayer:
    """One hardware layer, named as the graph node (hls4ml's PyTorch front end keeps fx names).

    Attributes:
        name: the node name; ``kind``: its op kind (``input`` for the graph input).
        result: the type of its output; ``params``: ``weight``/``bias`` types;
        accum: the accumulator type of a Linear.
        inexact: why this layer's hardware result may differ from quantsearch's, if it may.
    """

    name: str
    kind: str
    result: HwType | None = None
    params: dict[str, HwType] = field(default_factory=dict)
    accum: HwType | None = None
    inexact: list[str] = field(default_factory=list)
    chain: list[HwType] = field(default_factory=list)  # quantizations of the raw result
    raw: HwType | None = None  # the exact type of the raw result


@dataclass
class HwPlan:
    layers: list[HwLayer]
    floats: list[str] = field(default_factory=list)  # roles left in float, "node.role"

    @property
    def output(self) -> HwType:
        out = self.layers[-1].result
        assert out is not None
        return out

    @property
    def exact(self) -> bool:
        return not any(layer.inexact for layer in self.layers)

    def notes(self) -> list[str]:
        """One line per inexact layer: which and why."""
        return [
            f"{la.name} ({la.kind}): {'; '.join(la.inexact)}" for la in self.layers if la.inexact
        ]

    def layer(self, name: str) -> HwLayer:
        return next(la for la in self.layers if la.name == name)


def _collapse(a: HwType, b: HwType) -> HwType | None:
    """One type doing ``b(a(x))``, or ``None`` when no single type does."""
    if b.contains(a):
        return a
    if a.frac == b.frac:  # same grid: b rounds nothing of a's, it clamps to both ranges
        if a.signed and b.signed:
            return HwType(min(a.width, b.width), a.frac, True, a.rounding)
        ints = min(t.int_bits - (1 if t.signed else 0) for t in (a, b))
        return HwType(ints + a.frac, a.frac, False, a.rounding)
    return None


def _fold(raw: HwType | None, chain: list[HwType]) -> tuple[HwType | None, list[str]]:
    """The one type doing ``chain`` on ``raw``'s values, and why it cannot where it cannot."""
    result, notes = raw, []
    for q in chain:
        if result is None or result.rounding is None:  # exact so far: one rounding
            result = q if result is None or not q.contains(result) else result
            continue
        both = _collapse(result, q)
        if both is None:
            notes.append(
                f"two roundings in a row ({result} then {q}) and one result type per layer: "
                f"exported as {q}"
            )
            both = q
        result = both
    return result, notes


def _resolve(layer: HwLayer) -> None:
    layer.result, notes = _fold(layer.raw, layer.chain)
    layer.inexact.extend(notes)


def _settle(before: HwLayer, layer: HwLayer) -> None:
    """Resolve ``layer``; a ReLU whose roundings one type cannot do gives the first of them to
    the layer before it, whose result it reads (a ReLU commutes with each rounding), where
    both types are then exact."""
    if layer.kind == "relu" and before.kind != "input" and _fold(layer.raw, layer.chain)[1]:
        for k in range(1, len(layer.chain)):
            first, notes = _fold(before.raw, before.chain + layer.chain[:k])
            if notes or _fold(_unrounded(first), layer.chain[k:])[1]:
                continue
            before.chain, layer.chain = before.chain + layer.chain[:k], layer.chain[k:]
            before.result, layer.raw = first, _unrounded(first)
            break
    _resolve(layer)


def _unrounded(t: HwType | None) -> HwType | None:
    """The type of a ReLU's raw result: its input's values, which it holds without rounding."""
    return None if t is None else HwType(t.width, t.frac, t.signed)


def _passes_through(gm: fx.GraphModule, n: fx.Node) -> bool:
    """Whether ``n`` gives its one input unchanged, so that the chain goes on through it:
    trace's copy of an input the forward changes in place (``ReLU(inplace=True)`` first; the
    exported layers never write their input), dropout in eval mode, ``nn.Identity``, a
    flatten of a tensor that is flat already, and trace's ``detach`` of what forward computed
    without gradients (``with torch.no_grad():``; values unchanged)."""
    ni = info(n)
    if n.op == "call_method" and n.target == "detach":
        return len(n.all_input_nodes) == 1
    if n.op == "call_method" and n.target == "clone":
        return len(n.all_input_nodes) == 1 and n.all_input_nodes[0].op == "placeholder"
    if ni.op_kind == "dropout" and n.op == "call_module":
        return not submodule(gm, str(n.target)).training
    if ni.op_kind == "dropout" and n.op == "call_function":
        return n.kwargs.get("training", n.args[2] if len(n.args) > 2 else True) is False
    if ni.op_kind in ("identity", "flatten") and len(n.all_input_nodes) == 1:
        return ni.inputs == ni.outputs
    return False


def _hooks(gm: fx.GraphModule, n: fx.Node) -> str:
    """``", with a forward hook"`` (or pre-hook) for a module whose hooks the graph runs
    inside its call (``register_forward_hook`` in ``__init__``): code no exported layer has.
    Empty for any other node."""
    if n.op != "call_module":
        return ""
    mod = submodule(gm, str(n.target))
    kinds = [
        k for k, d in (("hook", mod._forward_hooks), ("pre-hook", mod._forward_pre_hooks)) if d
    ]
    return "".join(f", with a forward {k}" for k in kinds)


def _relu_call(n: fx.Node) -> bool:
    """``torch.relu(x)``, ``F.relu(x)`` or ``x.relu()``: a ReLU layer without a module."""
    return n.op in ("call_function", "call_method") and info(n).op_kind == "relu"


def layer_module(gm: fx.GraphModule, node: fx.Node) -> nn.Module | None:
    """The module of a chain's layer; ``None`` for a ReLU written as a function."""
    return None if _relu_call(node) else submodule(gm, str(node.target))


def chain_nodes(gm: fx.GraphModule) -> list[fx.Node]:
    """The layers of a chain, in order; nodes that pass their input through are left out."""
    inputs = [n for n in gm.graph.nodes if n.op == "placeholder"]
    hooked = {n: _hooks(gm, n) for n in gm.graph.nodes if _hooks(gm, n)}
    through = {
        n
        for n in gm.graph.nodes
        if n.op.startswith("call") and _passes_through(gm, n) and n not in hooked
    }
    nodes = [
        n for n in gm.graph.nodes if n.op not in ("placeholder", "output") and n not in through
    ]
    bad = [
        f"{n.name} ({info(n).op_kind}{hooked.get(n, '')})"
        for n in nodes
        if n in hooked
        or not ((n.op == "call_module" and info(n).op_kind in SUPPORTED_KINDS) or _relu_call(n))
    ]
    if bad:
        # F.linear(x, self.w) and the like; a buffer read (self.pe[:, :n]) is no such layer
        params = dict(gm.named_parameters())
        fetched = any(n.op == "get_attr" and str(n.target) in params for n in nodes)
        if len(bad) > 6:  # a MobileNet's 55 layers were one line of 3,000 characters
            bad = [*bad[:5], f"{len(bad) - 6} more", bad[-1]]
        raise ConfigError(
            f"export: got layers {', '.join(bad)}, allowed: modules of kinds {list(SUPPORTED_KINDS)} "
            "and torch.relu/F.relu (what this export maps exactly onto hls4ml's and QONNX's "
            "layers)"
            + (
                "; a get_attr is a parameter read in forward: write such layers as modules "
                "(nn.Linear), not F.linear(x, self.w)"
                if fetched
                else ""
            )
            + ("; without forward hooks, whose code no exported layer runs" if hooked else "")
            + (
                f"; {nodes[-1].name} is a final softmax: export the model without it (its "
                "logits have the same argmax)"
                if info(nodes[-1]).op_kind == "softmax"
                else ""
            )
        )
    if not nodes:  # a forward of Dropout or Identity alone
        raise ConfigError(
            f"export: got a model of no layers, allowed: at least one of kinds {list(SUPPORTED_KINDS)}"
        )
    prev = inputs[0] if len(inputs) == 1 else None
    _check_exportable(gm, prev, nodes)

    def source(a: fx.Node) -> fx.Node:
        while a in through:
            a = a.all_input_nodes[0]
        return a

    for n in nodes:
        args = [source(a) for a in n.all_input_nodes]
        if prev is None or args != [prev] or len(prev.users) != 1:
            raise ConfigError(
                f"export: got node {n.name}, allowed: a chain of layers, each fed by the one before"
            )
        prev = n
    return nodes


def _check_exportable(
    gm: fx.GraphModule, placeholder: fx.Node | None, nodes: list[fx.Node]
) -> None:
    """Refuse what the layers compute but the exports cannot hold: an input that is more than
    one vector of features per sample (Linear and BatchNorm1d take ``(batch, channels, length)``
    too; QONNX's Gemm and hls4ml's Dense take a vector), and a BatchNorm1d without running
    statistics, which normalizes every batch by that batch's own statistics, even in eval mode
    (hardware holds one fold)."""
    if placeholder is not None:
        shape = info(placeholder).outputs[0].shape[1:] if info(placeholder).outputs else ()
        if len(shape) != 1:
            raise ConfigError(
                f"export: got input {placeholder.name} of shape {tuple(shape)} a sample, allowed: "
                "one vector of features a sample, shape (features,) (what hls4ml's Dense and "
                "QONNX's Gemm take: a dataset of flat samples)"
            )
    for n in nodes:
        m = layer_module(gm, n)
        if isinstance(m, nn.BatchNorm1d) and (m.running_mean is None or m.running_var is None):
            raise ConfigError(
                f"export: got {n.name} (batch_norm1d) without running statistics "
                "(track_running_stats=False normalizes each batch by its own), allowed: a "
                "BatchNorm1d with running statistics, whose fold hardware computes"
            )


def plan(gm: fx.GraphModule, *, float_as: FixedPoint | None = None) -> HwPlan:
    """The hardware types for a quantized chain of Linear, BatchNorm1d and ReLU layers.

    Args:
        gm: a model quantized by :func:`quantsearch.passes.transform.quantize`, in eval mode.
        float_as: the format for roles left in float (the input, weights, biases); without it
            such roles are refused.

    Raises:
        ConfigError: unsupported layers (named), formats hardware has none for (node, role and
            format), or float roles without ``float_as`` (each named).
    """
    nodes = chain_nodes(gm)
    placeholder = next(n for n in gm.graph.nodes if n.op == "placeholder")
    layers = [HwLayer(placeholder.name, "input")]
    floats: list[str] = []

    def fmt(node: fx.Node, role: str, *, need: bool) -> HwType | None:
        f: NumberFormat | None = info(node).precision.get(role)
        if f is not None:
            return hw_type(f, f"{node.name}.{role}")
        if not need:
            return None
        floats.append(f"{node.name}.{role}")
        return None if float_as is None else hw_type(float_as, "--float-as")

    for node in nodes:
        kind = info(node).op_kind
        module = layer_module(gm, node)
        prev = layers[-1]
        q_in, q_out = fmt(node, "data_in", need=False), fmt(node, "data_out", need=False)
        layer = HwLayer(node.name, kind)
        if kind == "relu" and prev.kind != "input":
            # relu(q(x)) == q(relu(x)): the input's rounding moves after it, into the ReLU's
            # own result type; the ReLU of a value of its input's type rounds nothing
            _settle(layers[-2], prev)
            layer.raw = _unrounded(prev.result)
            layer.chain = [q for q in (q_in, q_out) if q is not None]
        else:  # a layer's input rounding (or the graph input's: a first ReLU's) is its input's
            if q_in is not None:
                prev.chain.append(q_in)
            _settle(layers[-2] if len(layers) > 1 else prev, prev)
            x = prev.result
            if x is None:  # the graph input, in float
                floats.append(f"{node.name}.data_in")
                prev.result = x = hw_type(float_as or WIDE, "--float-as")  # WIDE: refused below
                prev.inexact.append(f"input in float, exported as {x}")
            if module is None or kind == "relu":
                layer.raw = _unrounded(x)
            else:
                _params(layer, module, node, x, fmt)
            if q_out is not None:
                layer.chain.append(q_out)
        layers.append(layer)
    if floats and float_as is None:
        raise ConfigError(
            f"export: got {', '.join(floats)} left in float, allowed: a fixed format for each in "
            "[quantize], or --float-as FORMAT (e.g. 'fixed(32,16)') to export them in a wide "
            "format and measure the difference"
        )
    _settle(layers[-2] if len(layers) > 1 else layers[-1], layers[-1])
    return HwPlan(layers, floats)


def _params(
    layer: HwLayer, module: nn.Module, node: fx.Node, x: HwType, fmt: Callable[..., HwType | None]
) -> None:
    # a BatchNorm's shift is there without affine too (beta 0: -mean * scale)
    has_bias = getattr(module, "bias", None) is not None or layer.kind == "batch_norm1d"
    w = fmt(node, "weight", need=True)
    b = fmt(node, "bias", need=True) if has_bias else None
    for role, t in (("weight", w), ("bias", b)):
        if t is not None and info(node).precision.get(role) is None:
            layer.inexact.append(f"{role} in float, exported as {t}")
    if w is None or (has_bias and b is None):
        return  # refused by the caller (no float_as)
    layer.params = {"weight": w} if b is None else {"weight": w, "bias": b}
    if layer.kind == "linear":
        n_in = int(module.weight.shape[1])  # type: ignore[index]
        layer.accum = sum_type(product_type(x, w), n_in, b)
        layer.raw = layer.accum
    else:  # folded BatchNorm: x * scale + shift
        layer.raw = sum_type(product_type(x, w), 1, b)
    if layer.raw.width > FLOAT64_BITS and not layer.inexact:  # (a float role: inexact anyway)
        # hardware sums exactly; quantsearch's model, even in float64, rounds such sums
        layer.inexact.append(
            f"its exact sum type {layer.raw} is wider than float64's {FLOAT64_BITS}-bit "
            "significand: quantsearch's model (float64 as --verify runs it, float32 as the "
            "search did) may round what hardware computes exactly; measured"
        )
