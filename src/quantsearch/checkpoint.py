"""Checkpoints: a state dict plus what is needed to rebuild and trust it."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import platform
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from quantsearch.atomic import write_atomic
from quantsearch.errors import ConfigError
from quantsearch.formats import NumberFormat, format_from_dict
from quantsearch.paths import check_path_text, not_a_file

__all__ = [
    "Checkpoint",
    "check_finite_parameters",
    "check_replaceable",
    "load_checkpoint",
    "save_checkpoint",
    "tensors_digest",
]

FORMAT_VERSION = 1  # every tensor stored under each of its names
DERIVED_VERSION = 2  # some left out: rebuilt from another by ``tied`` (older readers refuse it)
READABLE = (FORMAT_VERSION, DERIVED_VERSION)


@dataclass(frozen=True)
class Checkpoint:
    state_dict: dict[str, torch.Tensor]
    model_name: str
    dataset: str
    metrics: dict[str, float] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    # name -> (the name whose tensor it is, the format that rounds it there, or None)
    tied: dict[str, tuple[str, NumberFormat | None]] = field(default_factory=dict)


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
    state_dict: dict[str, torch.Tensor] | None = None,
    tied: dict[str, tuple[str, NumberFormat | None]] | None = None,
) -> Path:
    """Write ``model``'s state dict and its provenance to ``path`` (parents created).

    ``state_dict`` replaces ``model.state_dict()``; ``tied`` maps a name to the stored name
    whose tensor it is (its format ``None``: the same tensor, stored once) or whose tensor that
    format rounds to its value, bit for bit (left out, and rebuilt by :func:`load_checkpoint`).

    Raises:
        StorageError: the file cannot be written (disk full, too large, read-only); the
            previous file at ``path`` is left as it was.
    """
    p = Path(path)
    tensors = model.state_dict() if state_dict is None else state_dict
    tied = tied or {}
    payload = {
        "format_version": DERIVED_VERSION if set(tied) - set(tensors) else FORMAT_VERSION,
        "state_dict": {k: v.detach().cpu() for k, v in tensors.items()},
        "model_name": model_name,
        "dataset": dataset,
        "metrics": dict(metrics or {}),
        "config": dict(config or {}),
        "versions": versions(),
    }
    if tied:  # a key older readers skip: they read the same tensor under both names
        payload["tied"] = {
            k: {"from": src, "format": None if f is None else f.to_dict()}
            for k, (src, f) in tied.items()
        }
    # Serialised in memory first: torch's zip writer turns a failed write into a RuntimeError
    # (a traceback), where a write of bytes fails with the OSError the one-line error names.
    buf = io.BytesIO()
    torch.save(payload, buf)
    return write_atomic(p, buf.getvalue())  # an interrupted save never leaves a cut file


_ALLOWED = "a file that quantsearch train, quantize or finetune wrote"


def load_checkpoint(path: str | Path, *, key: str = "--load") -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint`."""
    p = Path(path)
    check_path_text(str(p), key)  # a name past 255 bytes: every stat() raises OSError
    what = not_a_file(p)
    if what is not None:  # a FIFO would block torch.load; a folder was "does not exist"
        raise ConfigError(f"{key}: got {str(path)!r}, which is {what}, allowed: a checkpoint file")
    if not p.is_file():  # a relative path is the working directory's, not the config's
        where = "" if p.is_absolute() else f" in the working directory {os.getcwd()!r}"
        raise ConfigError(
            f"{key}: got {str(path)!r}, which does not exist{where}, allowed: a checkpoint "
            "file (train one with `quantsearch train`)"
        )
    if not os.access(p, os.R_OK):  # torch.load's PermissionError read as "not a checkpoint"
        raise ConfigError(
            f"{key}: got {str(path)!r}, which is not readable, allowed: a file this user may read"
        )
    try:
        payload = _torch_load(p)
    except Exception as exc:
        # the reason alone can be a bare byte value ("101": pickle's opcode of a text file)
        first = str(exc).splitlines()[0][:120] if str(exc) else ""  # torch's can be 400 long
        raise ConfigError(
            f"{key}: got {str(path)!r}, which is not a quantsearch checkpoint (torch.load: "
            f"{type(exc).__name__}{': ' + first if first else ''}), allowed: {_ALLOWED}"
        ) from None
    if not isinstance(payload, dict) or "state_dict" not in payload:
        raise ConfigError(
            f"{key}: got {str(path)!r}, which is not a quantsearch checkpoint (no state_dict), "
            f"allowed: {_ALLOWED}"
        )
    version = payload.get("format_version", FORMAT_VERSION)  # absent: written before it was
    if version not in READABLE or isinstance(version, bool):  # a newer layout, read as this one
        raise ConfigError(
            f"{key}: got {str(path)!r}, which has format_version {version!r}, allowed: "
            f"{' or '.join(map(str, READABLE))} (a checkpoint of another quantsearch version: "
            "train it again with this one)"
        )
    state_dict = _state_dict(payload["state_dict"], str(path), key)
    return Checkpoint(
        state_dict=state_dict,
        tied=_tied(payload.get("tied", {}), state_dict, str(path), key),
        model_name=str(payload.get("model_name", "")),
        dataset=str(payload.get("dataset", "")),
        metrics=_table(payload, "metrics", str(path), key),
        config=_table(payload, "config", str(path), key),
        versions=_table(payload, "versions", str(path), key),
    )


def check_replaceable(path: str | Path, key: str) -> None:
    """Refuse, before any work, a file at ``path`` that a checkpoint written there would
    replace but that is no quantsearch checkpoint: ``train --out good.toml`` replaced the
    user's config, ``--out runs/good/best.json`` a run's result. A new name, an empty file
    and an earlier checkpoint (a dict with a state_dict, whatever its weights) may be written.

    Raises:
        ConfigError: ``<key>: <path> is a file that is not a quantsearch checkpoint, ...``.
    """
    p = Path(path)
    if not p.is_file() or p.stat().st_size == 0:
        return  # new, or nothing to lose; a folder or a FIFO is refused by output_file
    try:
        payload = _torch_load(p)
    except Exception:
        payload = None
    if isinstance(payload, dict) and "state_dict" in payload:
        return
    raise ConfigError(
        f"{key}: got {str(path)!r}, which is a file that is not a quantsearch checkpoint, allowed: a new "
        f"file name, or a checkpoint a previous `quantsearch train` wrote (which is replaced)"
    )


def _torch_load(p: Path) -> Any:
    """``p`` read by ``torch.load`` (tensors and plain containers only: no pickle runs code),
    on the CPU; torch's advice on a foreign file is silenced: the caller's error says it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.load(p, map_location="cpu", weights_only=True)


def _state_dict(value: Any, path: str, key: str) -> dict[str, torch.Tensor]:
    """The checkpoint's tensors by name, none NaN: a NaN weight makes every trial's metrics
    NaN, so it is refused here rather than searched. Infinities are a buffer's right (an
    additive attention mask holds -inf); an infinite parameter is refused where the model's
    parameters are known (:func:`check_finite_parameters`)."""
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in value.items()
    ):
        raise ConfigError(
            f"{key}: got {path!r}, which holds a state_dict of {type(value).__name__}, allowed: "
            "tensors by name (as `quantsearch train` writes)"
        )
    for name, t in value.items():
        if (t.is_floating_point() or t.is_complex()) and bool(torch.isnan(t).any()):
            raise ConfigError(
                f"{key}: got {path!r}, which has NaN or infinite values in {name!r}, allowed: finite weights"
            )
    return value


def _tied(
    value: Any, state_dict: dict[str, torch.Tensor], path: str, key: str
) -> dict[str, tuple[str, NumberFormat | None]]:
    """The checkpoint's ``tied`` table; each name it leaves out of ``state_dict`` is put back:
    the stored tensor itself, or its rounding onto the format's grid (which the writer checked
    to be the value left out, bit for bit)."""
    out: dict[str, tuple[str, NumberFormat | None]] = {}
    entries = value.items() if isinstance(value, dict) else [("tied", value)]
    for name, entry in entries:
        src = entry.get("from") if isinstance(entry, dict) else None
        fmt_d = entry.get("format") if isinstance(entry, dict) else None
        fmt: NumberFormat | None = None
        with contextlib.suppress(ConfigError):  # refused below, in the checkpoint's words
            fmt = format_from_dict(fmt_d) if isinstance(fmt_d, dict) else None
        if not (
            isinstance(value, dict)
            and isinstance(name, str)
            and isinstance(src, str)
            and src in state_dict
            and src not in value  # a source is stored, never rebuilt itself
            and (fmt_d is None or fmt is not None)
        ):
            raise ConfigError(
                f"{key}: got {path!r}, which has tied {name!r} = {str(entry)[:80]}, allowed: a stored "
                "tensor's name and a format or None (as `quantsearch quantize` writes)"
            )
        if name not in state_dict:
            t = state_dict[src]
            try:  # a format of integer tensors (a file not written by quantsearch) raises
                state_dict[name] = t if fmt is None else fmt.quantize(t)
            except (RuntimeError, TypeError, ValueError) as exc:
                raise ConfigError(
                    f"{key}: got {path!r}, which has tied {name!r}: {fmt} cannot round {src!r} "
                    f"({type(exc).__name__}), allowed: {_ALLOWED}"
                ) from None
        out[name] = (src, fmt)
    return out


def check_finite_parameters(model: nn.Module, path: str, key: str) -> None:
    """Refuse a model whose parameters, loaded from the checkpoint at ``path``, are not finite
    (its buffers may hold infinities, as a causal mask of -inf does).

    Raises:
        ConfigError: ``<key>: <path> has NaN or infinite values in <name>, allowed: ...``.
    """
    for name, t in model.named_parameters():
        if (t.is_floating_point() or t.is_complex()) and not bool(torch.isfinite(t).all()):
            raise ConfigError(
                f"{key}: got {path!r}, which has NaN or infinite values in {name!r}, allowed: finite "
                "weights (a buffer may hold infinities, as an attention mask does)"
            )


def _table(payload: dict[str, Any], name: str, path: str, key: str) -> dict[str, Any]:
    value = payload.get(name, {})
    if not isinstance(value, dict):
        raise ConfigError(
            f"{key}: got {path!r}, which has {name} = {type(value).__name__}, allowed: a dict "
            "(as `quantsearch train` writes)"
        )
    return dict(value)


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
