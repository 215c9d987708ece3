"""Quantized models on disk: a checkpoint that records every node's formats and reloads as the
quantized model, not as a float one.

A quantized checkpoint is an ordinary quantsearch checkpoint (:mod:`quantsearch.checkpoint`)
whose state dict holds the quantized model's parameters (weights and biases already on their
grids) and whose ``config`` records ``quantize`` (the per-node formats,
:meth:`ResolvedConfig.to_dict`), ``sample_shape`` and ``sample_dtype`` (one input sample, to
trace the model again: an embedding's integer indices, a float64 model's input). :func:`load_quantized` rebuilds the model by name, traces it, applies the recorded
formats with :func:`~quantsearch.passes.transform.quantize` and loads the stored values: its
outputs equal the saved model's bit for bit.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import fx

from quantsearch.checkpoint import check_finite_parameters, load_checkpoint, save_checkpoint
from quantsearch.errors import ConfigError
from quantsearch.graph import info, trace
from quantsearch.models import MODELS, build_model
from quantsearch.passes.transform import ResolvedConfig, quantize

__all__ = ["load_quantized", "save_quantized"]


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
    return save_checkpoint(
        path, qgm, model_name=model_name, dataset=dataset, metrics=metrics, config=config
    )


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
    ckpt = load_checkpoint(path, key=key)
    formats = ckpt.config.get("quantize")
    if not isinstance(formats, dict):
        raise ConfigError(
            f"{key}: {str(path)!r} is a float checkpoint (no per-node formats), allowed: a "
            "quantized checkpoint written by `quantsearch quantize` or `quantsearch finetune`"
        )
    base = ckpt.config.get("base_dir")
    model = build_model(ckpt.model_name, key=key, base_dir=Path(base) if base else None)
    shape = ckpt.config.get("sample_shape")
    if shape is None:  # checkpoints of older versions: the zoo knows its input shape
        if ckpt.model_name not in MODELS:
            raise ConfigError(f"{key}: {str(path)!r} records no sample_shape to trace with")
        shape = MODELS.get(ckpt.model_name).input_shape
    dtype = getattr(torch, str(ckpt.config.get("sample_dtype", "float32")), None)
    if not isinstance(dtype, torch.dtype):
        raise ConfigError(f"{key}: {str(path)!r} records no torch dtype as its sample_dtype")
    gm = trace(model.eval(), torch.zeros((2, *shape), dtype=dtype))
    qgm = quantize(gm, ResolvedConfig.from_dict(formats, gm=gm, key=f"{key}.quantize"))
    try:
        qgm.load_state_dict(ckpt.state_dict)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise ConfigError(f"{key}: {str(path)!r} does not fit its model: {first}") from None
    check_finite_parameters(qgm, str(path), key)
    return qgm.eval()
