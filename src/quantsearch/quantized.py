"""Quantized models on disk: a checkpoint that records every node's formats and reloads as the
quantized model, not as a float one.

A quantized checkpoint is an ordinary quantsearch checkpoint (:mod:`quantsearch.checkpoint`)
whose state dict holds the quantized model's parameters (weights and biases already on their
grids) and whose ``config`` records ``quantize`` (the per-node formats,
:meth:`ResolvedConfig.to_dict`), ``sample_shape`` and ``sample_dtype`` (one input sample, to
trace the model again: an embedding's integer indices, a float64 model's input). :func:`load_quantized` rebuilds the model by name, traces it, applies the recorded
formats with :func:`~quantsearch.passes.transform.quantize` and loads the stored values: its
outputs equal the saved model's bit for bit.

A tensor the model holds under several names (an embedding tied to the output layer, a layer
called twice with two configs) is stored once: a copy equal to another is the same tensor in
the file, and a layer's rounding of another copy, checked bit for bit, is left out and rounded
again on load (format_version 2). :func:`load_quantized` ties them again: one parameter, which
the layer that rounds it rounds in every forward pass, so fine-tuning moves them as one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor, fx, nn

from quantsearch.checkpoint import (
    Checkpoint,
    check_finite_parameters,
    load_checkpoint,
    save_checkpoint,
)
from quantsearch.errors import ConfigError
from quantsearch.formats import NumberFormat
from quantsearch.graph import PARAM_ORIGINS, info, trace
from quantsearch.models import MODELS, build_model
from quantsearch.passes.transform import ResolvedConfig, quantize
from quantsearch.passes.transform.modules import QuantConv1d, QuantConv2d, QuantLinear

__all__ = ["load_quantized", "quantized_model", "save_quantized"]

# The layers that round their weight and bias themselves (BatchNorm's formats round its fold)
ROUNDING = (QuantLinear, QuantConv1d, QuantConv2d)
Tied = dict[str, tuple[str, NumberFormat | None]]


def save_quantized(
    path: str | Path,
    qgm: fx.GraphModule,
    *,
    model_name: str,
    dataset: str,
    sample_shape: tuple[int, ...],
    metrics: dict[str, float] | None = None,
    extra: dict[str, Any] | None = None,
    base_dir: Path | None = None,
) -> Path:
    """Write a quantized model (from :func:`quantize`, in eval mode) as a checkpoint that
    :func:`load_quantized` reads back quantized.

    Args:
        path: the file to write (parents created).
        qgm: the quantized ``GraphModule``; its formats are read from the graph.
        model_name: the zoo name (or ``"file.py:build"``) that rebuilds the float model.
        dataset: the dataset it is meant for.
        sample_shape: the shape of one input sample (no batch dimension).
        metrics: what to record beside it (before/after metrics ...).
        extra: more provenance kept in the checkpoint's ``config`` (the run, the trial ...).
        base_dir: where a ``"file.py:build"`` model name is relative to.
    """
    if qgm.training:
        raise ConfigError(
            "save_quantized: the model is in training mode, so its weights are float masters "
            "off the grid; call .eval() and quantize again (finetune() does)"
        )
    resolved = ResolvedConfig.from_graph(qgm)
    inputs = [info(n).outputs for n in qgm.graph.nodes if n.op == "placeholder"]
    config: dict[str, Any] = {
        **(extra or {}),
        "quantize": resolved.to_dict(),
        "sample_shape": list(sample_shape),
        "sample_dtype": inputs[0][0].dtype if inputs and inputs[0] else "float32",
    }
    if base_dir is not None:
        config["base_dir"] = str(Path(base_dir).resolve())
    state_dict, tied = _stored(qgm)
    return save_checkpoint(
        path, qgm, model_name=model_name, dataset=dataset, metrics=metrics, config=config,
        state_dict=state_dict, tied=tied,
    )  # fmt: skip


def _stored(qgm: fx.GraphModule) -> tuple[dict[str, Tensor], Tied]:
    """``qgm``'s tensors as its forward pass uses them (a layer that rounds its weight in every
    pass, as a tied one does, stores the rounding), with the copies of one parameter of the
    model (:data:`~quantsearch.graph.PARAM_ORIGINS`) stored once: the ``tied`` table."""
    state = {k: v.detach().cpu() for k, v in qgm.state_dict().items()}
    rounds: dict[str, NumberFormat] = {}  # name -> the format its layer rounds it with
    groups: dict[int, list[str]] = {}  # the model's parameter -> the names of its copies
    for name in state:
        path, _, attr = name.rpartition(".")
        m = qgm.get_submodule(path)
        if attr not in m._parameters:
            continue  # a buffer
        fmt: NumberFormat | None = None
        if isinstance(m, ROUNDING) and m.__dict__.get("q_" + attr) is not None:
            fmt = m.__dict__["q_" + attr]
            used = m.used_param(attr)  # rounded where the layer does not hold it on its grid
            assert used is not None  # a state dict's name: the parameter is set
            state[name] = used.detach().cpu()
            if fmt.deterministic:
                rounds[name] = fmt
        origin = m.__dict__.get(PARAM_ORIGINS, {}).get(attr)
        if origin is not None:
            groups.setdefault(origin, []).append(name)
    tied: Tied = {}
    for names in groups.values():
        while len(names) > 1:  # the copy the most others come from, first in order on a tie
            src, got = max(((s, _from(s, names, state, rounds)) for s in names), key=_count)
            if not got:
                break
            for name, fmt in got.items():
                tied[name] = (src, fmt)
                if fmt is None:
                    state[name] = state[src]  # one storage in the file
                else:
                    del state[name]
            names = [n for n in names if n != src and n not in got]
    return state, tied


def _count(pair: tuple[str, dict[str, NumberFormat | None]]) -> int:
    return len(pair[1])


def _from(
    src: str, names: list[str], state: dict[str, Tensor], rounds: dict[str, NumberFormat]
) -> dict[str, NumberFormat | None]:
    """The names whose value is ``src``'s (``None``) or its layer's rounding of it, exactly."""
    v = state[src]
    out: dict[str, NumberFormat | None] = {}
    for name in names:
        w = state[name]
        if name == src or w.dtype != v.dtype or w.shape != v.shape:
            continue
        if torch.equal(w, v):
            out[name] = None
        elif name in rounds:
            r = rounds[name].quantize(v)
            if r.dtype == w.dtype and torch.equal(r, w):
                out[name] = rounds[name]
    return out


def load_quantized(path: str | Path, *, key: str = "--load") -> fx.GraphModule:
    """The quantized model a quantized checkpoint holds, in eval mode.

    Raises:
        ConfigError: naming ``key``: a missing file, a float checkpoint (no per-node formats),
            or one that does not fit its model.

    Example:
        >>> import torch, tempfile, pathlib
        >>> from quantsearch.models import build_model
        >>> from quantsearch.graph import info, trace
        >>> gm = trace(build_model("jsc-tiny").eval(), torch.randn(4, 16))
        >>> w4 = {"weight": {"format": "fixed", "width": 4, "frac_width": 2}}
        >>> qgm = quantize(gm, ResolvedConfig.from_dict({"seq_blocks_2": w4}, gm=gm))
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "q.pt"
        >>> _ = save_quantized(p, qgm, model_name="jsc-tiny", dataset="jsc", sample_shape=(16,))
        >>> x = torch.randn(3, 16)
        >>> torch.equal(load_quantized(p)(x), qgm(x))
        True
    """
    return quantized_model(load_checkpoint(path, key=key), path, key=key)


def quantized_model(
    ckpt: Checkpoint,
    path: str | Path,
    *,
    key: str = "--load",
    example: torch.Tensor | None = None,
) -> fx.GraphModule:
    """:func:`load_quantized` of a checkpoint already read from ``path`` (named in messages):
    for a caller that read it to tell a quantized checkpoint from a float one. ``example``:
    the samples to trace on (its nodes' shapes are theirs; default two of zeros)."""
    formats = ckpt.config.get("quantize")
    if not isinstance(formats, dict):
        raise ConfigError(
            f"{key}: got {str(path)!r}, a float checkpoint (no per-node formats), allowed: a "
            "quantized checkpoint written by `quantsearch quantize` or `quantsearch finetune`"
        )
    base = ckpt.config.get("base_dir")
    model = build_model(ckpt.model_name, key=key, base_dir=Path(base) if base else None)
    shape = ckpt.config.get("sample_shape")
    if shape is None:  # checkpoints of older versions: the zoo knows its input shape
        if ckpt.model_name not in MODELS:
            raise ConfigError(
                f"{key}: got {str(path)!r}, which records no sample_shape to trace with, "
                "allowed: a checkpoint `quantsearch quantize` wrote"
            )
        shape = MODELS.get(ckpt.model_name).input_shape
    dtype = getattr(torch, str(ckpt.config.get("sample_dtype", "float32")), None)
    if not isinstance(dtype, torch.dtype):
        raise ConfigError(
            f"{key}: got {str(path)!r}, which records no torch dtype as its sample_dtype, "
            "allowed: a checkpoint `quantsearch quantize` wrote"
        )
    x = torch.zeros((2, *shape), dtype=dtype) if example is None else example
    gm = trace(model.eval(), x)
    qgm = quantize(gm, ResolvedConfig.from_dict(formats, gm=gm, key=f"{key}.quantize"))
    try:
        qgm.load_state_dict(ckpt.state_dict)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise ConfigError(
            f"{key}: got {str(path)!r}, which does not fit its model ({first[:200]}), allowed: "
            "a checkpoint of this model (written by `quantsearch quantize`)"
        ) from None
    _tie(qgm, ckpt.tied, str(path), key)
    check_finite_parameters(qgm, str(path), key)
    return qgm.eval()


def _tie(qgm: fx.GraphModule, tied: Tied, path: str, key: str) -> None:
    """Each tied name the same parameter as its source again; a layer that rounds the source
    to its own values does so in every forward pass (its rounding, checked when written)."""
    for name, (src, fmt) in tied.items():
        mpath, _, attr = name.rpartition(".")
        try:
            holder, source = qgm.get_submodule(mpath), qgm.get_parameter(src)
        except AttributeError:
            holder, source = None, None
        rounds = getattr(holder, "q_" + attr, None) if isinstance(holder, ROUNDING) else None
        held = None if holder is None else holder._parameters.get(attr)
        if (
            holder is None
            or not isinstance(held, nn.Parameter)
            or not isinstance(source, nn.Parameter)
            or (fmt is not None and rounds != fmt)
            or not torch.equal(held, source if fmt is None else fmt.quantize(source.detach()))
        ):  # a tie never changes what the model computes
            raise ConfigError(
                f"{key}: got {path!r}, which does not fit its model: it ties {name!r} to {src!r}, allowed: "
                "a checkpoint of this model (written by `quantsearch quantize`)"
            )
        holder._parameters[attr] = source
        if fmt is not None:
            holder.__dict__["weights_on_grid"] = False
