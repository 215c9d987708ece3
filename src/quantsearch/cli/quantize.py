"""``quantsearch quantize``: apply the config's ``[quantize]`` table to a trained model."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path
from typing import Any

import click

from quantsearch.cli.common import config_option, json_option, load_config_or_default, load_option
from quantsearch.cli.console import print_table
from quantsearch.errors import ConfigError
from quantsearch.metrics import TRIAL_METRICS, UncountedOpsWarning

__all__ = ["METRIC_NAMES", "quantize"]

# what "before/after" compares: quality on the validation split, and what quantization buys
METRIC_NAMES = (*TRIAL_METRICS, "macs")


@click.command()
@config_option
@load_option
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Folder to write into (default: <run_dir>/quantize-<model>).",
)
@click.option(
    "--calibration",
    "method",
    type=click.Choice(["minmax", "percentile"]),
    default="minmax",
    show_default=True,
    help='Activation ranges for frac_width = "auto".',
)
@click.option(
    "--percentile",
    type=float,
    default=99.9,
    show_default=True,
    help="Percentile for --calibration percentile.",
)
@json_option
def quantize(
    config_path: str | None,
    load: str | None,
    out_dir: str | None,
    method: str,
    percentile: float,
    as_json: bool,
) -> None:
    """Quantize a trained model with the config's [quantize] table.

    Writes DIR/quantized.pt (a checkpoint `--load` reads), DIR/resolved_config.json (the
    format of every node, with each "auto" frac_width chosen) and DIR/metrics.json (the
    validation metrics before and after). Calibration uses data.calibration_samples samples of
    the training split.
    """
    # Each imports torch: deferred for `--help` start-up.
    from quantsearch.checkpoint import save_checkpoint
    from quantsearch.metrics.compute import compute_metrics
    from quantsearch.passes.transform import calibrate, resolve
    from quantsearch.passes.transform import quantize as quantize_pass
    from quantsearch.session import open_session

    cfg = load_config_or_default(config_path)
    if cfg.quantize is None:
        raise ConfigError(
            f"{cfg.source}: no [quantize] table to apply (add one, e.g. [quantize.default] "
            "weight = { width = 8, frac_width = 4 })"
        )
    session = open_session(cfg, load, need_weights=True)
    gm = session.trace()
    stats = None
    if cfg.quantize.needs_calibration:
        x = session.data.train.x[: cfg.data.calibration_samples]
        stats = calibrate(gm, x, method=method, percentile=percentile)
    resolved = resolve(gm, cfg.quantize, calibration=stats)
    qgm = quantize_pass(gm, resolved)

    val = session.data.val.head(cfg.data.eval_samples)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UncountedOpsWarning)  # the same nodes before and after
        before = compute_metrics(gm, METRIC_NAMES, data=val, batch_size=cfg.data.batch_size)
        after = compute_metrics(qgm, METRIC_NAMES, data=val, batch_size=cfg.data.batch_size)

    out = Path(out_dir) if out_dir is not None else _default_out(cfg, session.model_name)
    out.mkdir(parents=True, exist_ok=True)
    ckpt = save_checkpoint(
        out / "quantized.pt",
        qgm,
        model_name=session.model_name,
        dataset=session.data.name,
        metrics=after,
        config={"source": cfg.source, "quantize": resolved.to_dict()},
    )
    (out / "resolved_config.json").write_text(json.dumps(resolved.to_dict(), indent=2) + "\n")
    record: dict[str, Any] = {
        "model": session.model_name,
        "dataset": session.data.name,
        "split": "val",
        "samples": len(val),
        "before": before,
        "after": after,
        "calibration": None if stats is None else stats.to_dict(),
    }
    (out / "metrics.json").write_text(json.dumps(record, indent=2) + "\n")

    if as_json:
        click.echo(json.dumps({"out": str(out), "checkpoint": str(ckpt), **record}, indent=2))
        return
    rows = [
        {"node": name, **{role: str(fmt) for role, fmt in lq.items()}}
        for name, lq in resolved.items()
    ]
    print_table(
        rows,
        title=f"{session.model_name}: {len(rows)} quantized node(s)",
        columns=["node", "data_in", "weight", "bias", "data_out"],
    )
    print_table(
        [{"metric": k, "before": before[k], "after": after[k]} for k in METRIC_NAMES],
        title=f"validation metrics ({len(val)} samples)",
    )
    click.echo(f"wrote {ckpt}, {out / 'resolved_config.json'}, {out / 'metrics.json'}")


def _default_out(cfg: Any, model_name: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", model_name)
    return Path(cfg.run_dir) / f"quantize-{safe}"
