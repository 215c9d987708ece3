"""``quantsearch demo``: the main job on the embedded default, end to end."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import click

from quantsearch.cli.common import (
    config_option,
    figure_format_option,
    folder_value,
    json_option,
    load_config_or_default,
)
from quantsearch.cli.compare import check_budgets, check_seeds, compare_and_report
from quantsearch.cli.console import console, rule
from quantsearch.cli.export import export_best, print_export_best
from quantsearch.cli.printing import (
    comparison_record,
    dumps,
    print_comparison,
    print_result,
    search_record,
)
from quantsearch.cli.train import train_to_checkpoint
from quantsearch.validate import SEEDS_MAX


@click.command()
@config_option
@click.option(
    "--run-dir",
    default=None,
    callback=folder_value,
    help="Parent folder of run directories (default: runs).",
)
@click.option(
    "--seeds", type=click.IntRange(1, SEEDS_MAX), default=None, help="Override compare.seeds."
)
@click.option("--retrain", is_flag=True, help="Train again even if the checkpoint exists.")
@figure_format_option
@json_option
def demo(
    config_path: str | None,
    run_dir: str | None,
    seeds: int | None,
    retrain: bool,
    figure_format: str,
    as_json: bool,
) -> None:
    """Train the model if needed, search the lab's space, compare strategies, write a report,
    and export the best config to hls4ml and QONNX, verified against quantsearch's model.

    On the embedded default: mlp-digits on scikit-learn's digits, MASE lab 3's 16-point
    fixed-point space, brute force against TPE, random and NSGA-II over several seeds. The
    export needs the export extra (hls4ml, qonnx) and g++; without them it is skipped, saying so.
    With --json, standard output is one JSON document of the four steps (as `train`, `search`,
    `compare` and `export` print them with --json); progress bars go to standard error.
    """
    # search.api imports torch and optuna, and report reads compare's results (torch, optuna):
    # deferred for `--help` start-up.
    from quantsearch.report import write_report
    from quantsearch.search.api import search_from_config

    cfg = load_config_or_default(config_path)
    check_seeds(cfg, seeds)  # before training and searching, not after
    check_budgets(cfg, None, None)
    if run_dir is not None:
        cfg = dataclasses.replace(cfg, run_dir=run_dir)
    ckpt = Path(cfg.model.checkpoint or f"runs/{cfg.model.name}.pt")
    record: dict[str, Any] = {"checkpoint": str(ckpt), "train": None}
    # With --json nothing but the record reaches standard output (progress bars: stderr).
    out = None if as_json else console()

    def say(text: str) -> None:
        if out is not None:
            out.print(text)

    def section(title: str) -> None:
        if out is not None:
            rule(out, title)

    if retrain or not ckpt.is_file():
        section(f"1/4 train {cfg.model.name}")
        _, trained, _ = train_to_checkpoint(
            cfg, ckpt, progress=True, key=f"model.checkpoint (demo trains into {ckpt})"
        )
        m = trained.metrics
        record["train"] = {"checkpoint": str(ckpt), "device": trained.device, **m}
        say(f"test accuracy {m['test_accuracy']:.2%} in {m['seconds']:.1f} s; checkpoint: {ckpt}")
    else:
        say(f"1/4 using the trained checkpoint {ckpt} (--retrain to train again)")
    section("2/4 search")
    result = search_from_config(cfg, load=str(ckpt), progress=True)
    files = (
        write_report(result.run_dir, figure_format.lower()) if result.run_dir is not None else None
    )
    record["search"] = search_record(result, files)
    if not as_json:
        print_result(result)
    if files is not None:
        say(f"search report: {files.html}")
    section("3/4 compare strategies")
    # compare's progress bar is drawn on standard output: off with --json
    comparison = compare_and_report(
        cfg, figure_format.lower(), load=str(ckpt), seeds=seeds, progress=not as_json
    )
    record["compare"] = comparison_record(comparison)
    if not as_json:
        print_comparison(comparison)
    say(f"report: {comparison.report_path}")
    section("4/4 export the best config to hls4ml and QONNX, verified")
    record["export"] = None
    if result.run_dir is None:
        say("no run directory (an in-memory search): nothing to export")
    else:
        record["export"] = export_best(Path(result.run_dir))
        if not as_json:
            print_export_best(record["export"], Path(result.run_dir))
    if as_json:
        click.echo(dumps(record))
