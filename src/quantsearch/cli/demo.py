"""``quantsearch demo``: the main job on the embedded default, end to end."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click

from quantsearch.cli.common import config_option, load_config_or_default
from quantsearch.cli.compare import compare_and_report
from quantsearch.cli.console import console, rule
from quantsearch.cli.export import export_best
from quantsearch.cli.printing import print_comparison, print_result
from quantsearch.cli.train import train_to_checkpoint


@click.command()
@config_option
@click.option("--run-dir", default=None, help="Parent folder of run directories (default: runs).")
@click.option("--seeds", type=click.IntRange(min=1), default=None, help="Override compare.seeds.")
@click.option("--retrain", is_flag=True, help="Train again even if the checkpoint exists.")
def demo(config_path: str | None, run_dir: str | None, seeds: int | None, retrain: bool) -> None:
    """Train the model if needed, search the lab's space, compare strategies, write a report,
    and export the best config to hls4ml and QONNX, verified against quantsearch's model.

    On the embedded default: mlp-digits on scikit-learn's digits, MASE lab 3's 16-point
    fixed-point space, brute force against TPE, random and NSGA-II over several seeds. The
    export needs the export extra (hls4ml, qonnx) and g++; without them it is skipped, saying so.
    """
    # search.api imports torch and optuna, and report reads compare's results (torch, optuna):
    # deferred for `--help` start-up.
    from quantsearch.report import write_report
    from quantsearch.search.api import search_from_config

    cfg = load_config_or_default(config_path)
    if run_dir is not None:
        cfg = dataclasses.replace(cfg, run_dir=run_dir)
    ckpt = Path(cfg.model.checkpoint or f"runs/{cfg.model.name}.pt")
    out = console()
    if retrain or not ckpt.is_file():
        rule(out, f"1/4 train {cfg.model.name}")
        _, trained, _ = train_to_checkpoint(cfg, ckpt, progress=True)
        m = trained.metrics
        out.print(
            f"test accuracy {m['test_accuracy']:.2%} in {m['seconds']:.1f} s; checkpoint: {ckpt}"
        )
    else:
        out.print(f"1/4 using the trained checkpoint {ckpt} (--retrain to train again)")
    rule(out, "2/4 search")
    result = search_from_config(cfg, load=str(ckpt), progress=True)
    print_result(result)
    if result.run_dir is not None:
        out.print(f"search report: {write_report(result.run_dir).html}")
    rule(out, "3/4 compare strategies")
    comparison = compare_and_report(cfg, load=str(ckpt), seeds=seeds, progress=True)
    print_comparison(comparison)
    out.print(f"report: {comparison.report_path}")
    rule(out, "4/4 export the best config to hls4ml and QONNX, verified")
    if result.run_dir is None:
        out.print("no run directory (an in-memory search): nothing to export")
    else:
        export_best(Path(result.run_dir))
