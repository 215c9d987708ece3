"""``quantsearch train``: train a registered or user model and write a checkpoint."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import click

from quantsearch.cli.common import (
    config_option,
    file_value,
    json_option,
    load_config_or_default,
)
from quantsearch.cli.printing import dumps
from quantsearch.paths import output_file
from quantsearch.validate import EPOCHS_MAX

__all__ = ["default_checkpoint_path", "train"]


@click.command()
@config_option
@click.option(
    "--out",
    "out",
    type=click.Path(dir_okay=False),
    default=None,
    callback=file_value,
    help="Checkpoint to write (default: train.checkpoint, else model.checkpoint, else runs/<model>.pt).",
)
@click.option(
    "--epochs", type=click.IntRange(1, EPOCHS_MAX), default=None, help="Override train.epochs."
)
@json_option
def train(config_path: str | None, out: str | None, epochs: int | None, as_json: bool) -> None:
    """Train the config's model on its dataset, early-stopped on validation loss.

    The checkpoint holds the state dict, the model and dataset names, the metrics, the config
    and the package versions; `summary`, `search` and the other commands read it with --load.
    """
    cfg = load_config_or_default(config_path)
    if epochs is not None:
        cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, epochs=epochs))
    session, result, path = train_to_checkpoint(cfg, out, progress=not as_json)
    m = result.metrics
    if as_json:
        click.echo(dumps({"checkpoint": str(path), "device": result.device, **m}))
        return
    click.echo(
        f"{session.model_name} on {session.data.name}: test accuracy {m['test_accuracy']:.2%} "
        f"(val {m['val_accuracy']:.2%}, train {m['train_accuracy']:.2%}), "
        f"{int(m['epochs'])} epochs (best {int(m['best_epoch'])}) in {m['seconds']:.1f} s "
        f"on {result.device}"
    )
    click.echo(f"checkpoint: {path}")


def train_to_checkpoint(
    cfg: Any, out: str | Path | None, *, progress: bool, key: str = "--out"
) -> tuple[Any, Any, Path]:
    """Train the config's model from a fresh init and save it; ``(session, result, path)``.
    ``key`` names ``out`` in an error (``demo`` gives its ``model.checkpoint``)."""
    # Each imports torch: deferred for `--help` start-up.
    from quantsearch.checkpoint import check_replaceable, save_checkpoint
    from quantsearch.session import open_session
    from quantsearch.train import seed_everything
    from quantsearch.train import train as run_training

    # Train from a fresh init: model.checkpoint names weights to *use*, often the file this
    # command is about to write.
    fresh = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, checkpoint=None))
    seed_everything(cfg.train.seed)  # before the model is built: its init is part of the run
    session = open_session(fresh)
    path = Path(out) if out is not None else default_checkpoint_path(cfg, session.model_name)
    # Checked before training: a folder or FIFO there failed (or was replaced) after it, and
    # a file that is no checkpoint (the user's config, a run's best.json) was replaced.
    if out is None:
        key = (
            "train.checkpoint"
            if cfg.train.checkpoint
            else "model.checkpoint"
            if cfg.model.checkpoint
            else f"--out (default: {path})"
        )
        output_file(str(path), key)
    check_replaceable(path, key)
    result = run_training(session.model, session.data, cfg.train, progress=progress)
    save_checkpoint(
        path,
        result.model,
        model_name=session.model_name,
        dataset=session.data.name,
        metrics=result.metrics,
        config=config_record(cfg),
    )
    return session, result, path


def default_checkpoint_path(cfg: Any, model_name: str) -> Path:
    """``train.checkpoint`` (relative to the config's folder), else ``model.checkpoint`` (the
    file the other commands will load, relative to the working directory), else
    ``runs/<model>.pt``."""
    if cfg.train.checkpoint:
        return Path(cfg.resolve(cfg.train.checkpoint))
    if cfg.model.checkpoint:
        return Path(cfg.model.checkpoint).expanduser()
    if ":" in model_name:  # a user model "path/to/file.py:build" -> "file-build"
        target, _, attr = model_name.rpartition(":")
        model_name = f"{Path(target).stem or target}-{attr}"
    return Path("runs") / f"{re.sub(r'[^A-Za-z0-9._-]+', '_', model_name)}.pt"


def config_record(cfg: Any) -> dict[str, Any]:
    """The parts of the config that made the checkpoint, as plain (weights_only-safe) values."""

    def plain(v: Any) -> Any:
        if isinstance(v, dict):
            return {str(k): plain(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        return v if v is None or isinstance(v, (str, int, float, bool)) else str(v)

    record: dict[str, Any] = plain(
        {
            "source": cfg.source,
            "seed": cfg.seed,
            "model": dataclasses.asdict(cfg.model),
            "data": dataclasses.asdict(cfg.data),
            "train": dataclasses.asdict(cfg.train),
        }
    )
    return record
