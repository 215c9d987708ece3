"""Checkpoints: a state dict plus what is needed to rebuild and trust it."""

from __future__ import annotations

import contextlib
import hashlib
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from quantsearch.atomic import atomic_path
from quantsearch.errors import ConfigError

__all__ = ["Checkpoint", "load_checkpoint", "save_checkpoint", "tensors_digest"]

FORMAT_VERSION = 1


@dataclass(frozen=True)
class Checkpoint:
    state_dict: dict[str, torch.Tensor]
    model_name: str
    dataset: str
    metrics: dict[str, float] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)


def versions() -> dict[str, str]:
    from importlib.metadata import version

    out = {"python": platform.python_version(), "torch": str(torch.__version__)}
    for pkg in ("quantsearch", "optuna"):
        with contextlib.suppress(Exception):  # not installed: record nothing rather than guess
            out[pkg] = version(pkg)
    return out


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    *,
    model_name: str,
    dataset: str,
    metrics: dict[str, float] | None = None,
    config: dict[str, Any] | None = None,
) -> Path:
    """Write ``model``'s state dict and its provenance to ``path`` (parents created)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format_version": FORMAT_VERSION,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "model_name": model_name,
        "dataset": dataset,
        "metrics": dict(metrics or {}),
        "config": dict(config or {}),
        "versions": versions(),
    }
    with atomic_path(p) as tmp:  # an interrupted save never leaves a truncated checkpoint
        torch.save(payload, tmp)
    return p


def load_checkpoint(path: str | Path, *, key: str = "--load") -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint`."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(
            f"{key}: checkpoint {str(path)!r} does not exist (train one with `quantsearch train`)"
        )
    try:
        payload = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(
            f"{key}: {str(path)!r} is not a quantsearch checkpoint: {first}"
        ) from None
    if not isinstance(payload, dict) or "state_dict" not in payload:
        raise ConfigError(f"{key}: {str(path)!r} is not a quantsearch checkpoint (no state_dict)")
    return Checkpoint(
        state_dict=payload["state_dict"],
        model_name=str(payload.get("model_name", "")),
        dataset=str(payload.get("dataset", "")),
        metrics=dict(payload.get("metrics", {})),
        config=dict(payload.get("config", {})),
        versions=dict(payload.get("versions", {})),
    )


def tensors_digest(tensors: dict[str, torch.Tensor]) -> str:
    """A digest of named tensors: names, dtypes, shapes and bytes, in name order.

    What identifies a model's weights (or a data split): saving the same weights again, with a
    new timing or version in the checkpoint, gives the same digest.

    Example:
        >>> a = tensors_digest({"w": torch.ones(2, 3)})
        >>> a == tensors_digest({"w": torch.ones(2, 3)}), a == tensors_digest({"w": torch.ones(3, 2)})
        (True, False)
    """
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}\0{t.dtype}\0{tuple(t.shape)}\0".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:16]
