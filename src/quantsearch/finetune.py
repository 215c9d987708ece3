"""Quantization-aware fine-tuning of one per-node config: :func:`finetune`.

The quantize pass, applied to a model in training mode, keeps float master weights and rounds
them in every forward pass with the formats' straight-through estimators (activations too);
this module trains such a copy with AdamW on cross-entropy (cosine learning-rate decay, seeded
shuffling), keeps the epoch with the lowest validation loss of the quantized model (epoch 0,
the config as it was, included: fine-tuning never returns a worse model on the validation
split), and at the end quantizes the trained weights once more in eval mode, so the result
holds its weights on their grids like any quantized model. The input model is not modified.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.nn.utils import parametrize

from quantsearch.data import DataSplits, Split
from quantsearch.errors import ConfigError
from quantsearch.graph import trace
from quantsearch.metrics import compute_metrics
from quantsearch.passes.transform import (
    CalibrationStats,
    QuantizeConfig,
    ResolvedConfig,
    quantize,
    resolve,
)
from quantsearch.train import train_epoch, warn_probability_output
from quantsearch.validate import resolve_device

__all__ = ["QUALITY", "FinetuneResult", "finetune"]

QUALITY = ("accuracy", "balanced_accuracy", "loss")  # what before/after compares, per split


@dataclass
class FinetuneResult:
    """A fine-tuned quantized model and what the fine-tuning did.

    Attributes:
        model: the quantized ``GraphModule`` in eval mode, weights on their grids.
        config: the per-node formats it was trained and quantized with.
        before: ``{"val": {...}, "test": {...}}``: the config's metrics without fine-tuning.
        after: the same after fine-tuning.
        history: per epoch: ``{"epoch", "train_loss", "val_loss", "val_accuracy"}``.
        best_epoch: the epoch whose weights were kept (0: none improved on the start).
        seconds: wall time of the training loop.
    """

    model: fx.GraphModule
    config: ResolvedConfig
    before: dict[str, dict[str, float]]
    after: dict[str, dict[str, float]]
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    seconds: float = 0.0


def _measure(qgm: fx.GraphModule, data: DataSplits, batch_size: int) -> dict[str, dict[str, float]]:
    return {
        name: compute_metrics(qgm, QUALITY, data=split, batch_size=batch_size)
        for name, split in (("val", data.val), ("test", data.test))
    }


@torch.no_grad()
def _val_loss(net: nn.Module, split: Split, device: torch.device) -> tuple[float, float]:
    net.eval()
    total, correct = 0.0, 0
    for x, y in split.batches(1024):
        logits = net(x.to(device))
        total += float(F.cross_entropy(logits, y.to(device), reduction="sum"))
        correct += int((logits.argmax(dim=1) == y.to(device)).sum())
    n = max(len(split), 1)
    return total / n, correct / n


def _resolved(
    gm: fx.GraphModule, config: Any, calibration: CalibrationStats | None
) -> ResolvedConfig:
    if isinstance(config, QuantizeConfig):
        return resolve(gm, config, calibration=calibration)
    if isinstance(config, ResolvedConfig):
        return config.bind(gm, calibration)
    if isinstance(config, Mapping):
        rc = ResolvedConfig.from_dict(config, gm=gm, calibration=calibration)
        return rc.bind(gm, calibration)
    raise ConfigError(
        "finetune: config must be a per-node dict, a ResolvedConfig or a QuantizeConfig "
        f"(got {type(config).__name__})"
    )


def finetune(
    model: nn.Module,
    config: ResolvedConfig | QuantizeConfig | Mapping[str, Any],
    data: DataSplits,
    *,
    epochs: int = 5,
    lr: float = 1e-3,
    batch_size: int = 64,
    weight_decay: float = 0.0,
    seed: int = 0,
    calibration: CalibrationStats | None = None,
    device: str = "cpu",
) -> FinetuneResult:
    """Fine-tune ``model`` quantized with ``config`` (quantization-aware training).

    Args:
        model: the float model: a traced ``GraphModule`` or an ``nn.Module`` (traced here).
        config: per-node formats (a trial's config, :meth:`SearchResult.config_of`), a
            :class:`ResolvedConfig` or a ``[quantize]`` table (:class:`QuantizeConfig`).
        data: trains on ``data.train``; keeps the epoch with the lowest loss on ``data.val``;
            reports ``val`` and ``test`` metrics before and after.
        epochs: passes over the training split (``>= 1``).
        lr, batch_size, weight_decay, seed: AdamW, cosine decay to 0, seeded shuffling.
        calibration: activation ranges, when the config has ``"auto"`` activations.
        device: ``cpu``, ``cuda`` or ``auto``; the result is on the CPU.

    Example:
        >>> import torch
        >>> from quantsearch.data import load_dataset
        >>> from quantsearch.models import build_model
        >>> data = load_dataset("digits")
        >>> w4 = {"format": "fixed", "width": 4, "frac_width": 2}
        >>> cfg = {n: {"weight": w4} for n in ("seq_blocks_0", "seq_blocks_3", "seq_blocks_6")}
        >>> r = finetune(build_model("mlp-digits"), cfg, data, epochs=1)
        >>> w = r.model.get_submodule("seq_blocks.0").weight
        >>> torch.equal(w * 4, torch.round(w * 4)), r.model.training
        (True, False)
    """
    if epochs < 1:
        raise ConfigError(f"epochs: got {epochs}, allowed: an integer >= 1")
    if batch_size < 1:
        raise ConfigError(f"batch_size: got {batch_size}, allowed: an integer >= 1")
    if not (math.isfinite(lr) and lr > 0):
        raise ConfigError(f"lr: got {lr}, allowed: a finite number > 0")
    if not (math.isfinite(weight_decay) and weight_decay >= 0):
        raise ConfigError(f"weight_decay: got {weight_decay}, allowed: a finite number >= 0")
    if data.num_classes == 0:  # float targets (data/user.py): no classes to cross-entropy on
        raise ConfigError(
            f"data: got {data.name!r} with regression targets, allowed for finetune: class "
            f"labels (it trains by cross-entropy); fine-tune a regression model with your own loop"
        )
    gm = model if isinstance(model, fx.GraphModule) else trace(model.eval(), data.val.x[:8])
    normed = [name for name, m in gm.named_modules() if parametrize.is_parametrized(m)]
    if normed:  # the trained weights have no way back into their parametrizations
        raise ConfigError(
            f"model: layers {', '.join(normed)} are parametrized (weight or spectral norm), "
            f"allowed: for finetune, layers without parametrizations "
            f"(torch.nn.utils.parametrize.remove_parametrizations(layer, 'weight') first)"
        )
    warn_probability_output(gm, "finetune")
    float_gm = copy.deepcopy(gm).eval()  # the caller's model is never trained or switched
    resolved = _resolved(float_gm, config, calibration)
    before = _measure(quantize(float_gm, resolved), data, 1024)

    dev = resolve_device(device, "device")
    net = quantize(float_gm.train(), resolved).to(dev)  # float masters, STE in every pass
    float_gm.eval()
    params = [p for p in net.parameters() if p.requires_grad]
    if not params:
        raise ConfigError("finetune: the model has no trainable parameters")
    n = len(data.train)
    steps = epochs * max(1, math.ceil(n / batch_size))
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    x_train, y_train = data.train.x.to(dev), data.train.y.to(dev)
    best_loss, _ = _val_loss(net, data.val, dev)
    best_epoch, best_state = 0, copy.deepcopy(net.state_dict())
    history: list[dict[str, float]] = []
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        train_loss = train_epoch(net, opt, sched, x_train, y_train, batch_size, gen)
        val_loss, val_acc = _val_loss(net, data.val, dev)
        history.append(
            {
                "epoch": epoch,
                "train_loss": train_loss,
                "val_loss": val_loss,
                "val_accuracy": val_acc,
            }
        )
        if val_loss < best_loss:
            best_loss, best_epoch, best_state = val_loss, epoch, copy.deepcopy(net.state_dict())
    seconds = time.perf_counter() - start

    # The trained float masters, back into a copy of the float graph, quantized once more in
    # eval mode: the weights land on their grids, as in any quantized model.
    trained = copy.deepcopy(float_gm)
    trained.load_state_dict({k: best_state[k].cpu() for k in trained.state_dict()})
    qgm = quantize(trained.eval(), resolved)
    return FinetuneResult(
        model=qgm,
        config=resolved,
        before=before,
        after=_measure(qgm, data, 1024),
        history=history,
        best_epoch=best_epoch,
        seconds=round(seconds, 3),
    )
