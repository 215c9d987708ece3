"""From a config to a ready model, its data and its traced graph: the shared first step of
every command (`summary`, `quantize`, `search`, `compare`)."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import fx, nn

from quantsearch.checkpoint import Checkpoint, check_finite_parameters, load_checkpoint
from quantsearch.config import Config
from quantsearch.data import DataSplits, load_dataset
from quantsearch.errors import ConfigError
from quantsearch.graph import trace
from quantsearch.models import MODELS, build_model
from quantsearch.paths import check_path_text

__all__ = ["QuantizedCheckpointWarning", "Session", "open_session"]


class QuantizedCheckpointWarning(UserWarning):
    """A quantized checkpoint (``quantize``'s, ``finetune``'s) given where float weights go."""


@dataclass
class Session:
    config: Config
    model_name: str
    model: nn.Module  # in eval mode, weights loaded
    data: DataSplits
    checkpoint: Path | None
    loaded: Checkpoint | None = None  # the checkpoint read, to apply a quantized one's formats

    def trace(self, batch: int | None = None) -> fx.GraphModule:
        """Trace the model on ``batch`` validation samples (all of ``eval_samples`` if None)."""
        return trace(self.model, self.examples(batch))

    def examples(self, batch: int | None = None) -> torch.Tensor:
        """The validation samples :meth:`trace` traces on."""
        n = batch or min(len(self.data.val), self.config.data.eval_samples or len(self.data.val))
        return self.data.val.x[:n]


def _beside_the_config(path: Path, key: str, base_dir: Path) -> None:
    """Refuse a relative ``model.checkpoint`` missing from the working directory but present
    beside the config (``train.checkpoint`` is relative to the config's folder, so a config
    naming one file in both finds it only when run from there)."""
    if key != "model.checkpoint" or path.is_absolute():
        return
    check_path_text(str(path), key)  # a name past 255 bytes: exists() raises OSError
    if path.exists() or path.is_symlink():
        return
    if (base_dir / path).is_file():
        raise ConfigError(
            f"model.checkpoint: got {str(path)!r}, not in the working directory {os.getcwd()!r} "
            f"but beside the config ({str(base_dir / path)!r}), allowed: a path from the "
            "working directory (model.checkpoint and run_dir are read from there), or an "
            "absolute one"
        )


def open_session(
    config: Config,
    load: str | Path | None = None,
    *,
    need_weights: bool = False,
    formats_applied: bool = False,
) -> Session:
    """Build the model, load weights (``--load`` or ``model.checkpoint``) and the dataset.

    ``formats_applied``: the caller applies a quantized checkpoint's formats itself (from
    :attr:`Session.loaded`), so reading its weights into the float model is not warned of.

    Raises:
        ConfigError: when ``need_weights`` and no checkpoint is given, or the checkpoint does
            not fit the model.
    """
    ckpt_path: Path | None = None
    ckpt: Checkpoint | None = None
    if load is not None:
        ckpt_path = Path(load)
    elif config.model.checkpoint:
        # Checkpoints are run artefacts, like run_dir: relative to the working directory.
        ckpt_path = Path(config.model.checkpoint).expanduser()
    name = config.model.name
    model = build_model(name, base_dir=config.base_dir)
    if ckpt_path is not None:
        key = "--load" if load is not None else "model.checkpoint"
        _beside_the_config(ckpt_path, key, config.base_dir)
        ckpt = load_checkpoint(ckpt_path, key=key)
        if ckpt.model_name and ckpt.model_name != name:
            raise ConfigError(
                f"{key}: got checkpoint {str(ckpt_path)!r} of model {ckpt.model_name!r}, "
                f"allowed: a checkpoint of model.name {name!r}"
            )
        own = model.state_dict()  # load_state_dict casts: int64 weights became floats unsaid
        for k, t in ckpt.state_dict.items():
            if k in own and own[k].is_floating_point() != t.is_floating_point():
                raise ConfigError(
                    f"{key}: got checkpoint {str(ckpt_path)!r}, whose {k!r} holds {t.dtype} "
                    f"values, allowed: a checkpoint that fits model {name!r} ({own[k].dtype})"
                )
        try:
            model.load_state_dict(ckpt.state_dict)
        except RuntimeError as exc:
            # torch's first line is only "Error(s) in loading state_dict for X:": say which
            lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
            what = (lines[1] if len(lines) > 1 else lines[0] if lines else "")[:300]
            raise ConfigError(
                f"{key}: got checkpoint {str(ckpt_path)!r}, which does not fit ({what}), "
                f"allowed: a checkpoint of model {name!r} as built"
            ) from None
        check_finite_parameters(model, str(ckpt_path), key)
        if "quantize" in ckpt.config and not formats_applied:  # said once it fits
            warnings.warn(
                QuantizedCheckpointWarning(
                    f"{key}: {str(ckpt_path)!r} is a quantized checkpoint: its weights are "
                    "read as the float model's, its formats are not applied (the float "
                    "checkpoint it was made from keeps the float weights)"
                ),
                stacklevel=2,
            )
    elif need_weights:
        guess = Path("runs") / f"{name}.pt"
        hint = (
            f"; {guess} exists: pass --load {guess}"
            if guess.is_file()
            else "; train with `quantsearch train --config FILE`"
        )
        raise ConfigError(
            "model.checkpoint: got none and no --load, allowed: trained weights (pass --load CKPT "
            f"or set model.checkpoint){hint}"
        )
    model.eval()
    spec = MODELS.get(name) if name in MODELS else None
    data_name = config.data.name or (spec.dataset if spec else None)
    if data_name is None:
        raise ConfigError(
            f"data.name: got no value, allowed: a dataset or 'file.py:function' (user model "
            f"{name!r} names none)"
        )
    data = load_dataset(
        data_name,
        options=config.data.options,
        seed=config.seed,
        base_dir=config.base_dir,
        input_shape=spec.input_shape if spec else None,
    )
    _check_fit(model, data, name, "data.name" if config.data.name else "model.name")
    return Session(config, name, model, data, ckpt_path, ckpt)


def _check_fit(model: nn.Module, data: DataSplits, name: str, key: str) -> None:
    """One forward pass on two validation samples: samples the model cannot take, or class
    labels past its outputs, are refused in one line here (training raised IndexError or a
    matmul's shape error; a search scored every config 0% accurate)."""
    x = data.val.x[:2]
    try:
        with torch.no_grad():
            out = model(x.clone())  # a forward that changes its input must not change the data
    except Exception as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(
            f"{key}: got samples of shape {tuple(x.shape[1:])} ({x.dtype}), which do not fit "
            f"model {name!r} ({first}), allowed: samples the model takes"
        ) from None
    if isinstance(out, torch.Tensor) and out.dim() == 2 and 0 < out.shape[1] < data.num_classes:
        one = (
            ", or for a model of one output (a binary classifier's logit, a regression "
            "estimate) float targets measured by mse/mae or a [metrics] evaluate function"
            if out.shape[1] == 1
            else ""
        )
        raise ConfigError(
            f"{key}: got {data.num_classes} classes (labels 0..{data.num_classes - 1}) but model "
            f"{name!r} gives {out.shape[1]} outputs per sample, allowed: labels below "
            f"{out.shape[1]}{one}"
        )
