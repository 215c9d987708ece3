"""``quantsearch finetune``: quantization-aware fine-tuning of one search trial's config."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import click

from quantsearch.atomic import write_atomic
from quantsearch.cli.common import (
    SEED,
    check_out_folder,
    device_value,
    folder_value,
    json_option,
    trial_options,
)
from quantsearch.cli.console import print_table
from quantsearch.cli.printing import dumps
from quantsearch.errors import ConfigError
from quantsearch.validate import COUNT_MAX, EPOCHS_MAX, LR_MAX, LR_MIN

__all__ = ["finetune"]


@click.command()
@trial_options
@click.option(
    "--epochs",
    type=click.IntRange(1, EPOCHS_MAX),
    default=5,
    show_default=True,
    help="Training epochs.",
)
@click.option(
    "--lr",
    type=click.FloatRange(min=LR_MIN, max=LR_MAX),
    default=1e-3,
    show_default=True,
    help="AdamW learning rate (cosine decay to 0).",
)
@click.option("--batch-size", type=click.IntRange(1, COUNT_MAX), default=64, show_default=True)
@click.option("--seed", type=SEED, default=0, show_default=True, help="Shuffling seed.")
@click.option(
    "--device",
    default="cpu",
    show_default=True,
    callback=device_value,
    help="cpu, cuda, cuda:N or auto (where it trains).",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    default=None,
    callback=folder_value,
    help="Folder to write into (default: RUN_DIR/finetune-trial-<N>).",
)
@click.option(
    "--int-weights",
    is_flag=True,
    help="Also write DIR/weights.npz + DIR/weights.json (integer weights, fixed point only).",
)
@json_option
def finetune(
    from_run: str | None,
    trial: int | None,
    best: bool,
    pareto: int | None,
    epochs: int,
    lr: float,
    batch_size: int,
    seed: int,
    device: str,
    out_dir: str | None,
    int_weights: bool,
    as_json: bool,
) -> None:
    """Fine-tune a search trial's config with quantization-aware training.

    Trains the run's model quantized with the trial's formats (straight-through gradients)
    on the training split, keeps the epoch with the lowest validation loss, quantizes the
    weights onto their grids again and writes DIR/finetuned.pt (a quantized checkpoint that
    reloads quantized: quantsearch.load_quantized), DIR/resolved_config.json and
    DIR/metrics.json (validation and test metrics before and after, and each epoch).
    """
    # Each imports torch: deferred for `--help` start-up.
    from quantsearch.finetune import QUALITY
    from quantsearch.finetune import finetune as finetune_fn
    from quantsearch.int_weights import check_int_weights, save_int_weights
    from quantsearch.quantized import save_quantized
    from quantsearch.search.run_dir import open_run

    if from_run is None:
        raise ConfigError("--from-run: got nothing, allowed: a search's run directory")
    if not math.isfinite(lr):  # click's FloatRange lets nan and inf through
        raise ConfigError(f"--lr: got {lr}, allowed: a finite number > 0")
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(f"--device: got {device!r}, allowed: 'cpu' or 'auto' (no CUDA here)")
    result = open_run(from_run, key="--from-run")
    chosen = result.select(
        trial=trial, best=best, pareto=pareto, keys=("--trial", "--best", "--pareto")
    )
    config = result.config_of(chosen)
    sm = result.searched
    assert sm is not None and sm.data is not None  # open_run sets both
    if config is None:
        raise ConfigError(
            f"--trial: got {chosen.number} ({chosen.state}), which has no recorded config, allowed: a "
            "trial that ran (see trials.csv)"
        )
    out = Path(out_dir) if out_dir else Path(from_run) / f"finetune-trial-{chosen.number}"
    check_out_folder(out, "finetuned.pt", "finetune")
    if int_weights:  # refused before training, not after it with a checkpoint written
        check_int_weights(result.model(chosen, key="--trial"))
    ft = finetune_fn(
        sm.graph,
        config,
        sm.data,
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
        seed=seed,
        device=device,
    )
    out.mkdir(parents=True, exist_ok=True)
    settings = {"epochs": epochs, "lr": lr, "batch_size": batch_size, "seed": seed}
    ckpt = save_quantized(
        out / "finetuned.pt",
        ft.model,
        model_name=sm.name,
        dataset=sm.data.name,
        sample_shape=sm.data.sample_shape,
        metrics=ft.after["val"],
        extra={"run": str(from_run), "trial": chosen.number, "finetune": settings},
        base_dir=sm.base_dir,
    )
    written = [ckpt, out / "resolved_config.json", out / "metrics.json"]
    # Atomically: a full disk or a kill leaves the previous file whole, never half of one.
    write_atomic(written[1], json.dumps(ft.config.to_dict(), indent=2) + "\n")
    record: dict[str, Any] = {
        "model": sm.name,
        "dataset": sm.data.name,
        "run": str(from_run),
        "trial": chosen.number,
        "finetune": settings,
        "samples": {"val": len(sm.data.val), "test": len(sm.data.test)},
        "before": ft.before,
        "after": ft.after,
        "best_epoch": ft.best_epoch,
        "seconds": ft.seconds,
        "history": ft.history,
    }
    write_atomic(written[2], json.dumps(record, indent=2) + "\n")
    if int_weights:
        written.extend(save_int_weights(ft.model, out, model_name=sm.name))
    if as_json:
        click.echo(dumps({"files": [str(p) for p in written], **record}))
        return
    rows = [
        {"split": split, "metric": m, "before": ft.before[split][m], "after": ft.after[split][m]}
        for split in ("val", "test")
        for m in QUALITY
    ]
    print_table(
        rows,
        title=f"{sm.name}, trial {chosen.number}: {epochs} epoch(s) of quantization-aware "
        f"training (kept epoch {ft.best_epoch})",
    )
    click.echo("wrote " + ", ".join(str(p) for p in written))
