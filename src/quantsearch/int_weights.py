"""Integer weights: every quantized tensor of a model as integers plus its format.

Two files, readable with numpy and ``json`` alone:

``weights.npz``
    one array per state-dict entry, under its state-dict name (``seq_blocks.0.weight``). A
    quantized tensor is stored as the integers ``k`` of its fixed-point grid, in the smallest
    numpy integer type that holds ``width`` bits (``int8``/``int16``/``int32``, ``uint*`` when
    unsigned); every other entry (BatchNorm statistics, a layer left in float) as it is. A
    BatchNorm's formats quantize its fold (see :mod:`quantsearch.passes.transform.modules`),
    stored as ``<module>.scale`` (``gamma / sqrt(running_var + eps)``) and ``<module>.shift``
    (``beta - running_mean * scale``) beside its float state-dict entries.
``weights.json``
    ``{"format_version": 1, "model": ..., "encoding": ..., "tensors": {name: entry}}``; a
    quantized tensor's entry gives ``node`` and ``role`` (where it is used), ``shape``,
    ``int_dtype``, ``dtype`` (the tensor's type in the model), the format (``format``: its
    :meth:`to_dict`), and flat:
    ``width`` (total bits, sign included), ``frac_width``, ``signed`` (two's complement),
    ``scale`` (``2**-frac_width``), ``rounding`` (``nearest``: half to even; ``floor``;
    ``stochastic``) and ``overflow`` (``saturate``): how the values were produced. Its value
    is ``value = int * 2**-frac_width``, exactly. A float entry has ``"format": null``.

Only fixed point has such an integer encoding: a tensor in any other format (minifloat, log,
block fp) is refused, naming the node, the role and the format.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import fx

from quantsearch.atomic import open_atomic, write_atomic
from quantsearch.errors import ConfigError
from quantsearch.formats import FixedPoint
from quantsearch.graph import info
from quantsearch.passes.transform import PARAM_ROLES
from quantsearch.passes.transform.functional import (
    QuantParamFunction,
    operand,
    operand_tensor,
    param_source,
)

__all__ = [
    "FORMAT_VERSION",
    "JSON_FILE",
    "NPZ_FILE",
    "check_int_weights",
    "read_int_weights",
    "save_int_weights",
]

FORMAT_VERSION = 1
NPZ_FILE = "weights.npz"
JSON_FILE = "weights.json"
ENCODING = "value = int * 2**-frac_width"
FOLDED = ("scale", "shift")  # a BatchNorm's quantized tensors, in PARAM_ROLES order


def _int_dtype(fmt: FixedPoint) -> np.dtype[Any]:
    for bits in (8, 16, 32):
        if fmt.width <= bits:
            return np.dtype(f"{'' if fmt.signed else 'u'}int{bits}")
    raise AssertionError("fixed point is at most 32 bits wide")  # FixedPoint checks it


def _quantized_tensors(qgm: fx.GraphModule) -> dict[str, tuple[str, str, Any, torch.Tensor]]:
    """``name -> (node, role, format, tensor)`` for every tensor a format quantizes: the
    parameters, by state-dict name, and a folded BatchNorm's scale and shift."""
    out: dict[str, tuple[str, str, Any, torch.Tensor]] = {}
    for node in qgm.graph.nodes:
        if node.op != "call_module":
            continue
        precision = info(node).precision
        module = qgm.get_submodule(str(node.target))
        folded = getattr(module, "folded", None)
        if callable(folded) and any(precision.get(r) is not None for r in PARAM_ROLES):
            # BatchNorm: the formats quantize the fold, which is what hardware stores
            for role, suffix, value in zip(PARAM_ROLES, FOLDED, folded(), strict=True):
                out[f"{node.target}.{suffix}"] = (node.name, role, precision.get(role), value)
            continue
        for role in PARAM_ROLES:
            if precision.get(role) is None:
                continue
            if isinstance(module, QuantParamFunction):
                _add_operand(qgm, out, node, role, precision[role])
            else:
                used_of = getattr(module, "used_param", None)  # rounds a tied weight or a master
                value = used_of(role).detach() if callable(used_of) else getattr(module, role)
                out[f"{node.target}.{role}"] = (node.name, role, precision[role], value)
    return out


def _add_operand(
    qgm: fx.GraphModule,
    out: dict[str, tuple[str, str, Any, torch.Tensor]],
    node: fx.Node,
    role: str,
    fmt: Any,
) -> None:
    """A function-form layer's parameter (``F.linear(x, self.w)``), rounded as the layer
    rounds it, under the parameter's own state-dict name (a view such as ``self.w.t()``
    reads the same elements, and fixed point rounds each element alone)."""
    src = param_source(operand(node, role))
    assert src is not None  # a role on a computed operand is never configured
    name = str(src.target)
    held = out.get(name)
    if held is not None and held[2] != fmt:
        raise ConfigError(
            f"{node.name}.{role}: parameter {name!r} is read by {held[0]} in {held[2]} and here "
            f"in {fmt}, allowed: one format per stored parameter (integer weights store one)"
        )
    value = operand_tensor(node, role)
    assert value is not None
    out[name] = (node.name, role, fmt, fmt.quantize(value.detach()))


FOLDED_DOC = {
    "weight": "BatchNorm folded: scale = gamma / sqrt(running_var + eps), quantized",
    "bias": "BatchNorm folded: shift = beta - running_mean * scale, quantized",
}


def _shape(t: torch.Tensor) -> dict[str, Any]:
    return {"shape": list(t.shape), "dtype": str(t.dtype).removeprefix("torch.")}


def _to_ints(t: torch.Tensor, fmt: FixedPoint, where: str) -> np.ndarray[Any, Any]:
    scaled = t.detach().cpu().double() * 2.0**fmt.frac_width  # exact: a power of two
    ints = torch.round(scaled)
    if not torch.equal(ints, scaled) or ints.min() < fmt.min_int or ints.max() > fmt.max_int:
        raise ConfigError(
            f"{where}: values off the grid of {fmt}, allowed: a quantized model in eval mode "
            "(its weights rounded onto their grids)"
        )
    return ints.to(torch.int64).numpy().astype(_int_dtype(fmt))


def check_int_weights(qgm: fx.GraphModule) -> None:
    """Refuse, writing nothing, a model :func:`save_int_weights` cannot write: one in training
    mode, or a quantized tensor whose format is not fixed point (naming node, role, format).
    Commands call it before their other outputs, so a refusal leaves no half-written folder."""
    if qgm.training:
        raise ConfigError(
            "save_int_weights: got a model in training mode (float master weights), allowed: "
            "a quantized model in eval mode"
        )
    for node, role, fmt, _ in _quantized_tensors(qgm).values():
        if fmt is not None and not isinstance(fmt, FixedPoint):
            raise ConfigError(
                f"{node}.{role}: got {fmt}, which is not fixed point, allowed: fixed or ufixed formats "
                f"(integer weights store {ENCODING})"
            )


def save_int_weights(
    qgm: fx.GraphModule, out_dir: str | Path, *, model_name: str = ""
) -> tuple[Path, Path]:
    """Write ``out_dir/weights.npz`` and ``out_dir/weights.json`` (see the module doc).

    Raises:
        ConfigError: a quantized tensor whose format is not fixed point (naming its node, role
            and format), or values off their grid (a model in training mode).

    Example:
        >>> import torch, tempfile
        >>> from quantsearch.graph import trace
        >>> from quantsearch.passes.transform import ResolvedConfig, quantize
        >>> gm = trace(torch.nn.Sequential(torch.nn.Linear(4, 2)).eval(), torch.ones(3, 4))
        >>> w = {"weight": {"format": "fixed", "width": 4, "frac_width": 2}}
        >>> qgm = quantize(gm, ResolvedConfig.from_dict({"_0": w}))
        >>> d = tempfile.mkdtemp()
        >>> _ = save_int_weights(qgm, d)
        >>> torch.equal(torch.from_numpy(read_int_weights(d)["0.weight"]), qgm.get_submodule("0").weight)
        True
    """
    check_int_weights(qgm)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    quantized = _quantized_tensors(qgm)
    arrays: dict[str, np.ndarray[Any, Any]] = {}
    entries: dict[str, dict[str, Any]] = {}
    state = {k: v for k, v in qgm.state_dict().items() if k not in quantized}
    for name, (node, role, fmt, value) in quantized.items():
        entry: dict[str, Any] = {"node": node, "role": role, **_shape(value)}
        if name.endswith(FOLDED):
            entry["folded"] = FOLDED_DOC[role]
        if fmt is None:  # a folded BatchNorm with only one of its two roles quantized
            arrays[name], entry["format"] = value.detach().cpu().numpy(), None
        else:
            assert isinstance(fmt, FixedPoint)  # check_int_weights refused any other
            arrays[name] = _to_ints(value, fmt, f"{node}.{role}")
            entry.update(
                int_dtype=str(arrays[name].dtype),
                format=fmt.to_dict(),
                width=fmt.width,
                frac_width=fmt.frac_width,
                signed=fmt.signed,
                scale=fmt.step,
                rounding=fmt.rounding,
                overflow="saturate",
            )
        entries[name] = entry
    for name, value in state.items():
        arrays[name] = value.detach().cpu().numpy()
        entries[name] = {**_shape(value), "format": None}
    npz, meta = out / NPZ_FILE, out / JSON_FILE
    # Each file atomically: a full disk or a kill leaves the previous one whole.
    with open_atomic(npz, "wb") as fh:
        np.savez(fh, **arrays)  # type: ignore[arg-type]
    doc = {
        "format_version": FORMAT_VERSION,
        "model": model_name,
        "encoding": f"{ENCODING} for every tensor whose format is not null",
        "tensors": entries,
    }
    write_atomic(meta, json.dumps(doc, indent=2) + "\n")
    return npz, meta


def read_int_weights(
    out_dir: str | Path, *, key: str = "weights"
) -> dict[str, np.ndarray[Any, Any]]:
    """The float values of every tensor :func:`save_int_weights` wrote, rebuilt exactly
    (``int * 2**-frac_width`` in float64, then the tensor's own float type), by state-dict name.

    Raises:
        ConfigError: naming ``key``: missing files or a version this reader does not know.
    """
    d = Path(out_dir)
    try:
        doc = json.loads((d / JSON_FILE).read_text())
        arrays = np.load(d / NPZ_FILE)
    except FileNotFoundError as exc:
        raise ConfigError(
            f"{key}: {str(d)!r} has no {Path(str(exc.filename)).name}, allowed: a folder "
            f"written by save_int_weights ({NPZ_FILE} and {JSON_FILE})"
        ) from None
    if doc.get("format_version") != FORMAT_VERSION:
        raise ConfigError(
            f"{key}: format_version {doc.get('format_version')!r}, allowed: {FORMAT_VERSION}"
        )
    out: dict[str, np.ndarray[Any, Any]] = {}
    for name, entry in doc["tensors"].items():
        a = arrays[name]
        if entry.get("format") is not None:
            scaled = a.astype(np.float64) * 2.0 ** -int(entry["frac_width"])
            a = scaled.astype(np.dtype(entry["dtype"]))
        out[name] = a
    return out
