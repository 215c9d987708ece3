"""``quantsearch search``: run or resume a search from a config."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import click

from quantsearch.cli.common import (
    COUNT,
    SEED,
    THREADS,
    TIMEOUT,
    config_option,
    figure_format_option,
    json_option,
    load_config_or_default,
    load_option,
    nonempty,
    study_option_value,
)
from quantsearch.cli.printing import print_result, search_json
from quantsearch.errors import ConfigError
from quantsearch.paths import check_in_the_way


def _search_options(f: Callable[..., None]) -> Callable[..., None]:
    """The options `search` and `worker` share, outermost first."""
    for option in reversed(
        [
            config_option,
            load_option,
            click.option(
                "--storage",
                default=None,
                envvar="QUANTSEARCH_STORAGE",  # search.workers.STORAGE_ENV: keeps it off `ps`
                show_envvar=True,
                callback=nonempty,
                help="Optuna RDB URL (default: a journal file in the run directory).",
            ),
            click.option(
                "--study",
                default=None,
                callback=study_option_value,
                help="Study name (default: search.study or the config file's stem).",
            ),
            click.option(
                "--run-dir",
                default=None,
                callback=nonempty,
                help="Parent folder of run directories (default: run_dir, 'runs').",
            ),
            click.option(
                "--strategy",
                default=None,
                callback=nonempty,
                help="Override search.strategy (name only).",
            ),
            click.option(
                "--n-trials",
                type=COUNT,  # at most COUNT_MAX, as search.n_trials and search.n_evaluations
                default=None,
                help="Override search.n_trials (the budget of the whole study, all workers together).",
            ),
            click.option(
                "--n-evaluations",
                type=COUNT,  # at most COUNT_MAX, as search.n_trials and search.n_evaluations
                default=None,
                help="Override search.n_evaluations: stop after this many distinct evaluations "
                "(without --n-trials, the trial cap becomes 20 per evaluation).",
            ),
            click.option(
                "--timeout",
                type=TIMEOUT,  # at most TIMEOUT_MAX, as search.timeout
                default=None,
                help="Seconds.",
            ),
            click.option(
                "--n-jobs",
                type=THREADS,
                default=None,
                help="Parallel trials (threads) in each process.",
            ),
            click.option("--seed", type=SEED, default=None, help="Override the sampler seed."),
        ]
    ):
        f = option(f)
    return f


def _resolve(opts: dict[str, Any]) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """The config, the options ``search_from_config`` takes, and the ``[search]`` overrides."""
    # Here, not at the top: they import torch and optuna, which `quantsearch --help` need not.
    from quantsearch.search.config import TRIALS_PER_EVALUATION_CAP, StrategySpec
    from quantsearch.search.strategies import STRATEGIES

    cfg = load_config_or_default(opts["config_path"])
    strategy = opts["strategy"]
    overrides = {k: opts[k] for k in ("n_trials", "n_evaluations", "timeout", "n_jobs", "seed")}
    if opts["n_evaluations"] and not opts["n_trials"]:
        overrides["n_trials"] = TRIALS_PER_EVALUATION_CAP * opts["n_evaluations"]
    if strategy is not None:
        name = STRATEGIES.canonical(strategy, key="--strategy")
        own = cfg.search.strategy if cfg.search is not None else None
        if own is not None and own.options and own.name != name:  # they were dropped unsaid
            raise ConfigError(
                f"--strategy: got {strategy!r} with search.strategy.options for {own.name!r} "
                f"({', '.join(sorted(own.options))}), allowed: {own.name!r} (which keeps them) "
                "or a config without them"
            )
        options = dict(own.options) if own is not None and own.name == name else {}
        overrides["strategy"] = StrategySpec(name, options)
    where = {k: opts[k] for k in ("load", "storage", "study", "run_dir")}
    _check_run_files(cfg, opts, overrides)
    return cfg, where, overrides


# What a search writes in its run directory (and a worker's lock and coordination tables)
_RUN_FILES = (
    "study.journal", "workers.lock", "coordination.db", "trials.jsonl", "trials.csv",
    "best.json", "pareto.json", "baseline.json", "search_config.json", "model.pt",
    "report.html", "report.md",
)  # fmt: skip


def _check_run_files(cfg: Any, opts: dict[str, Any], overrides: dict[str, Any]) -> None:
    """Refuse a run directory where a file the search writes is a folder (an internal-error
    traceback), its images folder a file (refused after the search), or either a link to
    nothing (the journal was written through it, wherever the link pointed)."""
    from quantsearch.search.api import study_of

    key = "--run-dir" if opts["run_dir"] is not None else "run_dir"
    if (opts["run_dir"] or cfg.run_dir) == "-":  # a folder named '-', never standard output
        raise ConfigError(f"{key}: got '-', allowed: a folder, or a path to make one at")
    _, _, folder = study_of(cfg, overrides, opts["study"], opts["run_dir"])
    check_in_the_way(folder, key, _RUN_FILES, ("images",), writer="a search")


WORKERS_PER_CORE = 4  # search --workers K starts K processes here: at most this many a core


@click.command()
@_search_options
@click.option(
    "--workers",
    type=THREADS,
    default=1,
    help="Worker processes on this machine, all on one study (default 1; at most 4 per core).",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar or table.")
@figure_format_option
@json_option
def search(workers: int, quiet: bool, figure_format: str, as_json: bool, **opts: Any) -> None:
    """Search quantization configs; running it again resumes the same study.

    With --workers K, K processes share the study (and its trial budget); start the same
    command on other machines with one --storage postgresql://... and --study NAME to add more.
    With --json, standard output is one JSON document (the summary, the table's rows, the
    best trial's formats, the files); the progress bar stays on standard error.
    """
    # Here, not at the top: they import torch and optuna, which `quantsearch --help` need not.
    from quantsearch.search.api import search_from_config
    from quantsearch.search.workers import run_workers

    limit = WORKERS_PER_CORE * (os.cpu_count() or 1)
    if workers > limit:  # each a process holding torch: 200 of 1,000 took 20 GB of a 24 GB machine
        raise ConfigError(
            f"--workers: got {workers}, allowed: 1 to {limit} on this machine ("
            f"{WORKERS_PER_CORE} per CPU core: each worker is a process with its own torch; add "
            "workers on other machines with `quantsearch worker` and one --storage)"
        )
    cfg, where, overrides = _resolve(opts)
    if workers > 1:
        result = run_workers(
            cfg,
            workers,
            config_path=opts["config_path"],
            strategy=opts["strategy"],
            overrides=overrides,
            quiet=quiet or as_json,  # its bar watches the workers on standard output
            **where,
        )
    else:
        result = search_from_config(cfg, overrides=overrides, progress=not quiet, **where)
    if not (quiet or as_json):
        print_result(result)
    files = None
    if result.run_dir is not None:
        from quantsearch.report import write_report

        files = write_report(result.run_dir, figure_format.lower())
        if not (quiet or as_json):
            click.echo(f"report: {files.html}")
    if as_json:
        click.echo(search_json(result, files))


@click.command()
@_search_options
@click.option(
    "--workers",
    type=THREADS,
    default=1,
    help="How many workers share this run directory's journal file (as given to all of them).",
)
def worker(workers: int, **opts: Any) -> None:
    """One worker on a shared study: runs trials until the budget or the space is used up.

    Writes nothing but the study; `search` (or `report`) writes the result files. Start it
    with the same options as the study's other workers.
    """
    # Here, not at the top: it imports torch and optuna, which `quantsearch --help` need not.
    from quantsearch.search.api import search_from_config

    cfg, where, overrides = _resolve(opts)
    search_from_config(cfg, overrides=overrides, workers=workers, write=False, **where)
