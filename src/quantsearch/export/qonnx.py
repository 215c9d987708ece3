"""Export to QONNX: the float graph with a ``Quant`` node on every quantized tensor.

Each fixed-point format ``fixed(w, f)`` becomes ``Quant(x, scale=2^-f, zeropt=0, bitwidth=w)``
with ``signed``, ``narrow=0`` and ``rounding_mode`` ``ROUND`` (half to even) or ``FLOOR``: the
format Brevitas writes and FINN and hls4ml read. Quant nodes are placed exactly where
quantsearch quantizes (a node's inputs, weight, bias, output), one after the other where two
formats meet, so no rounding is merged or moved. A Linear is a ``Gemm``; a quantized BatchNorm
is its fold, ``Mul`` by the quantized scale then ``Add`` of the quantized shift (see
:class:`~quantsearch.passes.transform.modules.QuantBatchNorm1d`). Roles left in float stay float
(QONNX holds float tensors). Formats QONNX cannot express (minifloat, log, block fp,
stochastic rounding) are refused, naming the node and role.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import fx, nn

from quantsearch.atomic import write_atomic
from quantsearch.errors import ConfigError
from quantsearch.export.agreement import Agreement, agreement
from quantsearch.export.deps import require
from quantsearch.export.hls import folded_batch_norm
from quantsearch.export.plan import WIDE, chain_nodes, layer_module, plan
from quantsearch.export.types import HwType, hw_type
from quantsearch.graph import info

__all__ = [
    "PRODUCER",
    "QUANT_DOMAIN",
    "check_out",
    "export_qonnx",
    "qonnx_notes",
    "require_executor",
    "run_qonnx",
    "verify_qonnx",
]

QUANT_DOMAIN = "qonnx.custom_op.general"
PRODUCER = "quantsearch"  # the model's producer_name: what marks a file as a previous export


class _Builder:
    def __init__(self) -> None:
        self.onnx = require("onnx", "export --to qonnx")
        self.nodes: list[Any] = []
        self.inits: list[Any] = []

    def const(self, name: str, value: np.ndarray[Any, Any] | float) -> str:
        arr = np.asarray(value, dtype=np.float32)
        self.inits.append(self.onnx.numpy_helper.from_array(arr, name))
        return name

    def op(self, op: str, inputs: list[str], out: str, **attrs: Any) -> str:
        self.nodes.append(self.onnx.helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def quant(self, x: str, t: HwType | None, name: str) -> str:
        if t is None:
            return x
        ins = [
            x,
            self.const(f"{name}_scale", 2.0**-t.frac),
            self.const(f"{name}_zeropt", 0.0),
            self.const(f"{name}_bitwidth", float(t.width)),
        ]
        self.nodes.append(
            self.onnx.helper.make_node(
                "Quant",
                ins,
                [name],
                name=name,
                domain=QUANT_DOMAIN,
                signed=int(t.signed),
                narrow=0,
                rounding_mode=t.qonnx_rounding(),
            )
        )
        return name


def _role(node: fx.Node, role: str) -> HwType | None:
    fmt = info(node).precision.get(role)
    return None if fmt is None else hw_type(fmt, f"{node.name}.{role}")


def build_qonnx(qgm: fx.GraphModule) -> Any:
    """The QONNX ``onnx.ModelProto`` of a quantized chain of Linear, BatchNorm1d and ReLU."""
    nodes = chain_nodes(qgm)
    roles = {n.name: {r: _role(n, r) for r in info(n).precision} for n in nodes}  # refuse early
    b = _Builder()
    helper, tp = b.onnx.helper, b.onnx.TensorProto
    placeholder = next(n for n in qgm.graph.nodes if n.op == "placeholder")
    width = info(placeholder).outputs[0].shape[1]
    x = placeholder.name
    for node in nodes:
        r = roles[node.name]
        m = layer_module(qgm, node)
        x = b.quant(x, r.get("data_in"), f"{node.name}_data_in_q")
        if isinstance(m, nn.Linear):
            w = b.quant(
                b.const(f"{node.name}_weight", m.weight.detach().numpy()),
                r.get("weight"),
                f"{node.name}_weight_q",
            )
            ins = [x, w]
            if m.bias is not None:
                ins.append(
                    b.quant(
                        b.const(f"{node.name}_bias", m.bias.detach().numpy()),
                        r.get("bias"),
                        f"{node.name}_bias_q",
                    )
                )
            x = b.op("Gemm", ins, f"{node.name}_gemm", transB=1)
        elif isinstance(m, nn.BatchNorm1d):
            scale, shift = (t.detach().float().numpy() for t in folded_batch_norm(m))
            s = b.quant(
                b.const(f"{node.name}_scale", scale), r.get("weight"), f"{node.name}_scale_q"
            )
            h = b.quant(b.const(f"{node.name}_shift", shift), r.get("bias"), f"{node.name}_shift_q")
            x = b.op("Add", [b.op("Mul", [x, s], f"{node.name}_mul"), h], f"{node.name}_add")
        else:
            x = b.op("Relu", [x], f"{node.name}_relu")
        x = b.quant(x, r.get("data_out"), f"{node.name}_data_out_q")
    out_width = info(nodes[-1]).outputs[0].shape[1]
    # "output", unless a tensor has that name already (a forward(self, output)'s input did: two
    # tensors of one name, a file the qonnx executor refuses)
    taken = {placeholder.name, *(i.name for i in b.inits), *(o for n in b.nodes for o in n.output)}
    out = next(
        name for name in ("output", *(f"output_{i}" for i in range(1, 9))) if name not in taken
    )
    b.nodes.append(helper.make_node("Identity", [x], [out], name=out))
    graph = helper.make_graph(
        b.nodes,
        "quantsearch",
        [helper.make_tensor_value_info(placeholder.name, tp.FLOAT, ["batch", width])],
        [helper.make_tensor_value_info(out, tp.FLOAT, ["batch", out_width])],
        initializer=b.inits,
    )
    opsets = [helper.make_opsetid("", 13), helper.make_opsetid(QUANT_DOMAIN, 1)]
    return helper.make_model(graph, opset_imports=opsets, producer_name=PRODUCER)


def check_out(path: str | Path, key: str = "OUT") -> None:
    """Refuse to write the QONNX file over anything but a previous export: ``path`` may be new,
    an empty file, or an ONNX model whose producer is quantsearch (which is replaced). A user's
    other file, another tool's ONNX model or a folder stands in the way, named by ``key``.

    Raises:
        ConfigError: ``<key>: <path> is ..., allowed: ...``, one line.
    """
    p = Path(path)
    if not p.exists() and not p.is_symlink():
        return
    if p.is_file():
        data = p.read_bytes()
        if not data:
            return  # nothing to lose (a name reserved with touch or mktemp)
        onnx = require("onnx", "export --to qonnx")
        model = onnx.ModelProto()
        try:
            model.ParseFromString(data)
        except Exception:  # protobuf's DecodeError: not ONNX at all
            model.Clear()
        if model.producer_name == PRODUCER and len(model.graph.node) > 0:
            return
    kind = (
        "a file"
        if p.is_file()
        else "a folder"
        if p.is_dir()
        else "a link to nothing"
        if not p.exists()
        else "a special file"
    )
    raise ConfigError(
        f"{key}: got {str(p)!r}, {kind} that is not a QONNX export's, allowed: a new file or one a "
        f"previous `quantsearch export --to qonnx` wrote (which is replaced)"
    )


def export_qonnx(qgm: fx.GraphModule, path: str | Path, *, key: str = "OUT") -> Path:
    """Write the QONNX file of a quantized model (see the module docstring). An existing file
    at ``path`` is replaced only if a previous export wrote it (:func:`check_out`).

    Raises:
        ConfigError: onnx missing (names the extra), unsupported layers (named), formats QONNX
            cannot express (``<node>.<role>: <format>, allowed: ...``), ``path`` holding
            something else than a previous export (named by ``key``).
        StorageError: the file cannot be written; a previous file at ``path`` is left whole.
    """
    model = build_qonnx(qgm)
    path = Path(path)
    require("onnx", "export --to qonnx")
    check_out(path, key)
    # Atomically (quantsearch.atomic): a previous file is replaced only by a whole new one; a
    # write stopped by a full disk or a kill -9 leaves the previous file as it was.
    return write_atomic(path, model.SerializeToString())


def require_executor() -> None:
    """Check that the qonnx executor can run: onnx, qonnx, and the onnxruntime its
    ``onnx_exec`` imports (``export --to qonnx --verify`` checks before it writes).

    Raises:
        ConfigError: the missing module, named, and the extra that installs it.
    """
    for module in ("onnx", "qonnx", "onnxruntime"):
        require(module, "export --to qonnx --verify")


def run_qonnx(path: str | Path, x: torch.Tensor) -> np.ndarray[Any, Any]:
    """Outputs of the QONNX file as the ``qonnx`` package's executor computes them."""
    require_executor()
    import onnx
    from qonnx.core.modelwrapper import ModelWrapper  # the extra, checked just above
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.transformation.infer_shapes import InferShapes

    model = onnx.load(str(path))
    for value in (*model.graph.input, *model.graph.output):  # the executor wants fixed shapes
        value.type.tensor_type.shape.dim[0].dim_value = len(x)
    wrapper = ModelWrapper(model).transform(InferShapes())
    name = wrapper.graph.input[0].name
    data = np.ascontiguousarray(x.detach().float().reshape(len(x), -1).numpy())
    outputs = execute_onnx(wrapper, {name: data})
    out: np.ndarray[Any, Any] = outputs[wrapper.graph.output[0].name]
    return out


FLOAT32_BITS = 24  # float32's significand: the widest value both executors hold exactly


def qonnx_notes(qgm: fx.GraphModule) -> list[str]:
    """Why the qonnx executor's outputs may differ from quantsearch's, or be no proof of the
    integer arithmetic a fixed-point flow (FINN) computes from the file: one line per cause.

    Both compute in float32. Where every value a layer holds (its input, parameters, exact
    sum and roundings: :func:`~quantsearch.export.plan.plan`'s types) fits float32's 24-bit
    significand, float32 computes them exactly in any order, and agreement is the integer
    arithmetic's; a wider one may round (qonnx's ``Quant`` of a 32-bit format saturates at
    ``2^31``, outside the format). A role left in float is a float tensor in the file, which
    the executor sums in another order than torch.

    Example:
        >>> from quantsearch.graph import trace
        >>> from quantsearch.passes.transform import ResolvedConfig, quantize
        >>> gm = trace(nn.Sequential(nn.Linear(4, 2)).eval(), torch.ones(2, 4))
        >>> f = {"format": "fixed", "width": 20, "frac_width": 10}
        >>> cfg = {"_0": {"data_in": f, "weight": f, "bias": f}}
        >>> qonnx_notes(quantize(gm, ResolvedConfig.from_dict(cfg, gm=gm)))[0][:56]
        '_0 (linear): holds ap_fixed<43,23> (its exact sum), wide'
    """
    p = plan(qgm, float_as=WIDE)
    notes = []
    if p.floats:
        notes.append(
            f"{', '.join(p.floats)} left in float: float tensors in the file, which the qonnx "
            "executor computes in float32 in another order than torch; measured"
        )
    floating = {f.rpartition(".")[0] for f in p.floats}
    after_float = False  # a ReLU's raw result is its input: float after a float layer
    for la in p.layers:
        if la.kind == "input" or la.name in floating:
            after_float = la.name in floating
            continue
        held: list[tuple[str, HwType | None]]
        if after_float and la.kind == "relu":  # its input's float values, then its roundings
            held = [("a rounding of it", t) for t in la.chain]
        else:
            held = [("its exact sum", la.raw), ("its result", la.result)]
            held += [(f"its {role}", t) for role, t in la.params.items()]
            held += [("a rounding of it", t) for t in la.chain]
        after_float = after_float and la.kind == "relu" and not la.chain
        wide = [(w, t) for w, t in held if t is not None and _significant(t) > FLOAT32_BITS]
        if wide:
            what, t = max(wide, key=lambda w: _significant(w[1]))
            notes.append(
                f"{la.name} ({la.kind}): holds {t.ap()} ({what}), wider than float32's "
                f"{FLOAT32_BITS}-bit significand: the qonnx executor and quantsearch's model "
                "compute in float32 and may round what integer hardware computes exactly; "
                "measured"
            )
    return notes


def _significant(t: HwType) -> int:
    """Significant bits of the largest value of ``t`` (its sign bit is none)."""
    return t.width - (1 if t.signed else 0)


def verify_qonnx(
    path: str | Path, qgm: fx.GraphModule, x: torch.Tensor, *, classes: bool = True
) -> Agreement:
    """The qonnx executor against quantsearch's model (float32, as both compute) on ``x``;
    ``classes=False`` for outputs that are no class scores (:func:`agreement`)."""
    with torch.no_grad():
        ours = qgm(x).reshape(len(x), -1).numpy()
    # the output's LSB: the last format applied, or the exact type hardware would give it
    lsb = 2.0 ** -plan(qgm, float_as=WIDE).output.frac
    return agreement("qonnx executor", ours, run_qonnx(path, x), lsb, classes=classes)
