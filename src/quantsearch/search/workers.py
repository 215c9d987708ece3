"""``--workers K``: K worker processes on one study, and the result files once they are done.

Each worker is ``python -m quantsearch worker`` with the same options, so a worker here is the
same program as a worker started by hand on another machine against one ``--storage``. The
parent only watches: it shows progress read from the study, stops the workers on Ctrl-C, and
writes the run directory from the storage when they have finished.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import optuna
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from quantsearch.errors import ConfigError, QuantsearchError, StorageError
from quantsearch.examples import default_config_path
from quantsearch.search.api import collect_result, prepare_from_config, study_of, write_run_dir
from quantsearch.search.journal_results import check_run_dir_storage
from quantsearch.search.reconnect import Reconnect
from quantsearch.search.results import SearchResult
from quantsearch.search.run_dir import finish_run
from quantsearch.search.storage import (
    JOURNAL_FILE,
    check_reachable,
    check_workers,
    open_storage,
)
from quantsearch.session import open_session

__all__ = ["STORAGE_ENV", "run_workers", "worker_command", "worker_env"]

# `--storage` is read from here when not given (click envvar): how workers get a URL whose
# password must not appear on a command line.
STORAGE_ENV = "QUANTSEARCH_STORAGE"


def worker_command(
    config_path: str | None,
    workers: int,
    *,
    load: str | None,
    study: str | None,
    run_dir: str | None,
    strategy: str | None,
    overrides: Mapping[str, Any],
) -> list[str]:
    """The command line of one worker process. The storage URL is not on it (a database
    password would show in ``ps``): :func:`worker_env` passes it in the environment."""
    cmd = [
        sys.executable,
        "-m",
        "quantsearch",
        "worker",
        "--config",
        config_path or str(default_config_path()),
    ]
    options = {
        "--load": load,
        "--study": study,
        "--run-dir": run_dir,
        "--strategy": strategy,
    }
    for flag in ("n_trials", "n_evaluations", "timeout", "n_jobs", "seed"):
        options["--" + flag.replace("_", "-")] = overrides.get(flag)
    for flag, value in options.items():
        if value is not None:
            cmd += [flag, str(value)]
    return [*cmd, "--workers", str(workers)]


def worker_env(storage: str | None) -> dict[str, str]:
    """The environment of a worker: ours, with the storage URL in ``STORAGE_ENV``."""
    env = {k: v for k, v in os.environ.items() if k != STORAGE_ENV}
    if storage is not None:
        env[STORAGE_ENV] = storage
    return env


def run_workers(
    config: Any,
    workers: int,
    *,
    config_path: str | None,
    load: str | None,
    storage: str | None,
    study: str | None,
    run_dir: str | None,
    strategy: str | None,
    overrides: Mapping[str, Any],
    quiet: bool = False,
) -> SearchResult:
    """Start ``workers`` worker processes, wait for them, and write the run directory."""
    cfg, name, rd = study_of(config, overrides, study, run_dir)
    url = storage or cfg.storage
    key = "--storage" if storage is not None else "search.storage"
    check_workers(url, workers, key)
    check_reachable(url, key)  # before the model loads and the workers start
    # this process's one budget for a database outage, its watch's and its last read's: with
    # the default (60 s), not search.db_retry_s, it waited a minute after the workers gave up
    reconnect = Reconnect(cfg.db_retry_s, what=key)
    check_run_dir_storage(rd / JOURNAL_FILE, url)  # before the workers' logs
    session = open_session(config, load, need_weights=True)  # also what finish_run records
    space, _, _ = prepare_from_config(config, cfg, load, session=session)  # checks before spawning
    cmd = worker_command(
        config_path, workers, load=load, study=name, run_dir=run_dir, strategy=strategy,
        overrides=overrides,
    )  # fmt: skip
    # Each worker's stderr goes to a file: a pipe nobody reads would fill and stall it. The
    # file is appended to, after a line that dates this start: what an earlier run's workers
    # said (the reason a resumed search was resumed) stays.
    rd.mkdir(parents=True, exist_ok=True)
    # A URL from search.storage is read by the workers from the same config file, so that their
    # lines name the key it came from; --storage (or a config given as an object) travels in
    # the environment.
    env = worker_env(storage if storage is not None or config_path is None else None)
    logs = [rd / f"worker-{i}.log" for i in range(workers)]
    procs, starts = [], []
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    for i, log in enumerate(logs):
        with log.open("a") as fh:
            fh.write(f"--- {started}: worker {i} of {workers}, study {name!r}\n")
            fh.flush()
            starts.append(fh.tell())
            procs.append(
                subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=fh, text=True, env=env)
            )
    try:
        _watch(procs, url, rd, name, cfg.n_trials, quiet, reconnect)
    except BaseException:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait()
        raise
    errors = [
        _why(p.returncode, log, start)
        for p, log, start in zip(procs, logs, starts, strict=True)
        if p.returncode
    ]
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study_ = optuna.load_study(
            study_name=name, storage=open_storage(url, rd, reconnect=reconnect)
        )
    except KeyError:  # no worker got as far as creating the study
        study_ = None
    except (ConfigError, StorageError):  # the database is gone: say what the workers said
        if not errors:
            raise
        study_ = None
    if study_ is not None:  # what the workers finished is written even if one of them failed
        result = collect_result(study_, space, cfg, rd, name)
        try:
            finish_run(result, session, rd)  # model.pt; the chosen configs' test metrics
        finally:  # the trials' files even when model.pt or the test split fails
            write_run_dir(result, cfg, rd, space)
    if errors or study_ is None:
        raise QuantsearchError(
            f"{len(errors)} of {workers} workers failed (the study is kept: the same command "
            f"resumes it); the first said: {errors[0] if errors else 'no study was made'}"
        )
    return result


def _why(returncode: int, log: Path, start: int) -> str:
    """What a failed worker said last in this run (its log from byte ``start``), or the signal
    that killed it."""
    if returncode < 0:
        return f"{log.stem} was killed by {signal.Signals(-returncode).name}"
    with log.open("rb") as fh:
        fh.seek(start)
        said = fh.read().decode(errors="replace")
    lines = [ln for ln in said.splitlines() if ln.strip()]
    return lines[-1] if lines else f"nothing (see {log})"


def _watch(
    procs: list[subprocess.Popen[str]],
    url: str | None,
    rd: Path,
    name: str,
    total: int,
    quiet: bool,
    reconnect: Reconnect,
) -> None:
    """Wait for the workers, with a progress bar read from the study."""
    if quiet:
        for p in procs:
            p.wait()
        return
    with Progress(
        TextColumn(f"[bold]{len(procs)} workers"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"), TimeElapsedColumn(),
    ) as bar:  # fmt: skip
        task = bar.add_task("trials", total=total, status="")
        study = None
        while any(p.poll() is None for p in procs):
            time.sleep(0.5)
            try:
                study = study or optuna.load_study(
                    study_name=name, storage=open_storage(url, rd, reconnect=reconnect)
                )
                trials = study.get_trials(deepcopy=False)
            except Exception:  # not created yet by the first worker
                continue
            done = sum(1 for t in trials if t.state.is_finished() and t.state.name == "COMPLETE")
            running = sum(1 for t in trials if t.state.name == "RUNNING")
            bar.update(task, completed=done, status=f"running {running}")
