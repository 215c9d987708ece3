"""The Python API: :func:`search` on a model and tensors, and :func:`search_from_config`, which
the CLI calls. Both validate through the same config parser, so Python users get the same
errors as TOML users.

One search goes config -> model, data and graph (:func:`prepare_from_config`) -> space and
evaluator (:func:`prepare_search`) -> storage and coordination -> the trial loop
(:func:`quantsearch.search.study.run_study`) -> result files (:func:`run_search`).
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import optuna
import torch
from torch import fx, nn

from quantsearch.atomic import write_atomic
from quantsearch.data import Split
from quantsearch.data.inputs import as_split
from quantsearch.errors import ConfigError
from quantsearch.metrics.user import UserEvaluate
from quantsearch.passes.transform import parse_quantize_config
from quantsearch.paths import writable_dir
from quantsearch.search.cache import EvaluationCache
from quantsearch.search.config import (
    SearchConfig,
    check_evaluations,
    check_storage_url,
    parse_search_config,
)
from quantsearch.search.evaluate import Evaluator
from quantsearch.search.journal_results import check_run_dir_storage
from quantsearch.search.parallel import open_coordinator
from quantsearch.search.prepare import prepare_from_config, prepare_search, trace_model
from quantsearch.search.progress import search_progress
from quantsearch.search.results import SearchedModel, SearchResult, records_from_study
from quantsearch.search.run_dir import check_owner, finish_run
from quantsearch.search.space import SearchSpace
from quantsearch.search.storage import (
    JOURNAL_FILE,
    check_reachable,
    check_workers,
    open_storage,
)
from quantsearch.search.study import Callback, run_study
from quantsearch.session import open_session
from quantsearch.validate import study_name

__all__ = [
    "collect_result",
    "prepare_from_config",
    "prepare_search",
    "run_dir_lock",
    "run_search",
    "search",
    "search_from_config",
    "study_of",
    "write_run_dir",
]


@contextmanager
def run_dir_lock(run_dir: Path) -> Iterator[None]:
    """Hold ``run_dir/.lock`` so that two commands never write one output folder at once.

    (A study's own run directory is guarded by its coordinator instead.)
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / ".lock"
    fh = path.open("a+")
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            pid = fh.read().strip() or "?"
            raise ConfigError(
                f"run directory {str(run_dir)!r} is in use by another quantsearch process (pid "
                f"{pid}); wait for it, or give this run another name (--name, --run-dir)"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        yield
    finally:
        fh.close()


def search(
    model: nn.Module,
    data: Split | tuple[torch.Tensor, torch.Tensor] | Any,
    *,
    space: Mapping[str, Any],
    objectives: Mapping[str, Any],
    constraints: Mapping[str, Any] | None = None,
    strategy: str | Mapping[str, Any] = "tpe",
    n_trials: int | None = None,
    seed: int = 0,
    timeout: float | None = None,
    n_jobs: int = 1,
    n_evaluations: int | None = None,
    fidelity: str | Mapping[str, Any] | None = None,
    metrics: Sequence[str] | None = None,
    quantize: Mapping[str, Any] | None = None,
    calibration_data: torch.Tensor | None = None,
    run_dir: str | Path | None = None,
    storage: str | None = None,
    study_name: str = "search",
    batch_size: int = 1024,
    cache: EvaluationCache | None = None,
    progress: bool | None = None,
    callbacks: Sequence[Callback] = (),
    evaluate: UserEvaluate | None = None,
    evaluate_directions: Mapping[str, str] | None = None,
    device: str = "auto",
) -> SearchResult:
    """Search quantization configs of ``model`` on ``data``.

    Args:
        model: a float model (an ``nn.Module``; traced here) or a traced ``GraphModule``.
        data: the validation samples every trial is measured on: an ``(x, y)`` pair of
            tensors, a :class:`~quantsearch.data.Split`, a torch ``Dataset`` of ``(x, y)``
            items or a ``DataLoader`` of ``(x, y)`` batches; a ``Dataset`` or ``DataLoader``
            is read once into tensors held in memory (:mod:`quantsearch.data.inputs`).
        space, objectives, constraints, strategy: as the ``[search.*]`` TOML tables.
        n_trials: the trial budget (cache hits count as trials, not as evaluations); default
            100, or 20 x ``n_evaluations`` when that is given.
        n_evaluations: also stop after this many distinct evaluations (``[search]
            n_evaluations``); ``fidelity``: as ``[search] fidelity``.
        run_dir: write the study (file-backed) and result files here; in memory when ``None``.
        storage: an Optuna RDB URL instead of the file default.
        calibration_data: training samples for ``frac_width = "auto"`` activation ranges.
        cache: share an evaluation cache between searches of the same model and data.
        callbacks: Optuna callbacks, each called as ``callback(study, frozen_trial)`` after
            every trial (optuna-integration's ``MLflowCallback``, for one).
        progress: a rich progress bar; ``None``: on in a Jupyter notebook, off elsewhere.
        evaluate: a function ``evaluate(model, batches) -> {name: number}`` for tasks the
            built-in quality metrics do not measure (:mod:`quantsearch.metrics.user`); its
            metrics are usable by name in ``objectives``, ``constraints`` and ``metrics``.
        evaluate_directions: ``{name: "maximize" | "minimize"}`` for its metrics; an
            objective's own ``direction`` also declares one. By default a trial records them
            and the static trial metrics (``model_size_bits``, ``avg_weight_bits``,
            ``bitops``), not the classification metrics.
        device: where trials run, as ``[search] device``: ``"auto"`` (CUDA when torch finds
            it), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.

    Example:
        >>> import torch
        >>> from quantsearch.models import build_model
        >>> model = build_model("jsc-tiny").eval()
        >>> x, y = torch.randn(64, 16), torch.randint(0, 5, (64,))
        >>> result = search(model, (x, y), strategy="brute_force", n_trials=50,
        ...     space={"choices": {"linear": {"weight": [[8, 4], [4, 2]]}}},
        ...     objectives={"accuracy": {"direction": "maximize"}})
        >>> len(result.trials), result.n_evaluations
        (2, 2)
    """
    raw: dict[str, Any] = {
        "strategy": dict(strategy) if isinstance(strategy, Mapping) else strategy,
        "space": dict(space),
        "objectives": dict(objectives),
        "constraints": dict(constraints or {}),
        "n_jobs": n_jobs,
        "seed": seed,
        "device": device,
    }
    optional = {"n_trials": n_trials, "n_evaluations": n_evaluations, "fidelity": fidelity}
    raw.update({k: v for k, v in optional.items() if v is not None})
    if timeout is not None:
        raw["timeout"] = timeout
    if metrics is not None:
        raw["metrics"] = list(metrics)
    if evaluate_directions is not None and evaluate is None:
        raise ConfigError(
            f"evaluate_directions: got {sorted(evaluate_directions)} without evaluate=, allowed: "
            f"directions of the metrics an evaluate function returns"
        )
    if evaluate is not None and not callable(evaluate):
        raise ConfigError(
            f"evaluate: got a {type(evaluate).__name__}, allowed: a function (model, batches) -> "
            f"dict of metric name -> number"
        )
    user = dict(evaluate_directions or {}) if evaluate is not None else None
    cfg = parse_search_config(raw, key="search", seed=seed, user_metrics=user)
    split = as_split(data, key="data")
    gm = model if isinstance(model, fx.GraphModule) else trace_model(model, split)
    qcfg = parse_quantize_config(dict(quantize), key="quantize") if quantize is not None else None
    space_, evaluator = prepare_search(
        gm,
        cfg,
        split,
        quantize_config=qcfg,
        calibration_data=calibration_data,
        batch_size=batch_size,
        evaluate=evaluate,
    )
    result = run_search(
        space_,
        evaluator,
        cfg,
        run_dir=Path(run_dir) if run_dir is not None else None,
        storage=storage,
        study_name=study_name,
        cache=cache,
        progress=progress,
        callbacks=callbacks,
    )
    result.searched = SearchedModel(graph=gm, batch_size=batch_size)  # for result.model(trial)
    return result


def run_search(
    space: SearchSpace,
    evaluator: Evaluator,
    cfg: SearchConfig,
    *,
    run_dir: Path | None,
    storage: str | None,
    study_name: str,
    cache: EvaluationCache | None = None,
    progress: bool | None = False,
    fingerprint_extra: dict[str, Any] | None = None,
    workers: int = 1,
    write: bool = True,
    callbacks: Sequence[Callback] = (),
    storage_key: str = "--storage",
) -> SearchResult:
    """Run (or resume) one study and write its files to ``run_dir``.

    In memory when both ``run_dir`` and ``storage`` are ``None``. Otherwise the study lives in
    ``storage`` (an Optuna RDB URL, given as ``storage_key``, for messages) or in the journal
    file of ``run_dir``, coordinated with every other worker on it (``workers`` says how many
    share a journal file on this machine). The storage and the coordinator share one budget
    for a database outage (``cfg.db_retry_s``): the coordinator's ``reconnect``.
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    kw: dict[str, Any] = {"cache": cache, "fingerprint_extra": fingerprint_extra}
    kw["callbacks"] = callbacks
    if run_dir is None and storage is None:
        with search_progress(progress, cfg, space) as on_trial:
            run = run_study(
                evaluator, space, cfg, storage=None, study_name=study_name, on_trial=on_trial, **kw
            )
        return collect_result(run.study, space, cfg, None, study_name)
    rd = run_dir if run_dir is not None else Path("runs") / study_name
    check_owner(rd, study_name)
    check_run_dir_storage(rd / JOURNAL_FILE, storage)  # before the coordinator's files
    with (
        open_coordinator(
            storage, rd, study_name, workers, cfg.db_retry_s, storage_key
        ) as coordinator,
        search_progress(progress, cfg, space) as on_trial,
    ):
        store = open_storage(
            storage, rd, workers=workers, stale_trial_callback=coordinator.stale_trial_callback,
            exclusive=coordinator.alone, group_commit_s=cfg.group_commit_s,
            reconnect=coordinator.reconnect,
        )  # fmt: skip
        run = run_study(
            evaluator, space, cfg, storage=store, study_name=study_name, on_trial=on_trial,
            coordinator=coordinator, **kw,
        )  # fmt: skip
    result = collect_result(run.study, space, cfg, rd, study_name)
    if write:
        write_run_dir(result, cfg, rd, space)
    return result


def write_run_dir(
    result: SearchResult, cfg: SearchConfig, run_dir: Path, space: SearchSpace
) -> None:
    """The result files, the resolved search config with each knob's labels as the search
    spelled them (a ReLU's input is ``ufixed``: only the traced graph tells, so the report
    reads them here), and the sensitivity strategy's table when its study made one."""
    result.write(run_dir)
    record = {
        **dataclasses.asdict(cfg),
        "knob_labels": {k.name: list(k.labels) for k in space.knobs},
    }
    write_atomic(run_dir / "search_config.json", json.dumps(record, indent=2, default=str) + "\n")
    sens = result.study.user_attrs.get("sensitivity") if result.study is not None else None
    if sens is not None:
        write_atomic(run_dir / "sensitivity.json", json.dumps(sens, indent=2) + "\n")


def collect_result(
    study: optuna.Study,
    space: SearchSpace,
    cfg: SearchConfig,
    run_dir: Path | None,
    study_name: str,
) -> SearchResult:
    """The result of a study, as far as it has gone (its baseline is kept in the study)."""
    trials = records_from_study(study)
    configs = {t.config_hash: t.config for t in trials if t.config is not None and t.config_hash}
    return SearchResult(
        trials=trials,
        baseline=dict(study.user_attrs.get("baseline") or {}),
        directions=[d.name.lower() for d in study.directions],
        combine=cfg.combine,
        objective_names=[o.metric for o in cfg.objectives],
        space_size=space.size,
        run_dir=run_dir,
        study_name=study_name,
        strategy=cfg.strategy.name,
        seed=cfg.seed,
        configs=configs,
        study=study,
    )


def search_from_config(
    config: Any,
    *,
    load: str | None = None,
    storage: str | None = None,
    study: str | None = None,
    run_dir: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    progress: bool | None = None,
    workers: int = 1,
    write: bool = True,
) -> SearchResult:
    """What ``quantsearch search`` and ``quantsearch worker`` run: the config's model, data and
    ``[search]`` table. ``workers``: how many worker processes share this run directory's
    journal file (each calls this); ``write``: write the result files at the end.

    The model and data are loaded once (one session serves the search and the end of run),
    and the result files are written once, after ``model.pt`` and the test-split metrics: until
    then the journal is the run's only record, and running the command again writes them.
    """
    cfg, name, rd = study_of(config, overrides, study, run_dir)
    if storage is not None:  # the config's own storage was checked when it loaded
        check_storage_url(storage, "--storage")
    key = "--storage" if storage is not None else "search.storage"
    check_workers(storage or cfg.storage, workers, key)  # a missing driver before the model loads
    check_reachable(storage or cfg.storage, key)  # and a database that is down
    session = open_session(config, load, need_weights=True)
    space, evaluator, extra = prepare_from_config(config, cfg, load, session=session)
    result = run_search(
        space,
        evaluator,
        cfg,
        run_dir=rd,
        storage=storage or cfg.storage,
        study_name=name,
        progress=progress,
        fingerprint_extra=extra,
        workers=workers,
        write=False,
        storage_key=key,
    )
    if write:  # model.pt (what open_run reopens), the chosen configs' test-split metrics, files
        try:
            finish_run(result, session, rd)
        finally:  # the trials' files even when model.pt or the test split fails
            write_run_dir(result, cfg, rd, space)
    return result


def study_of(
    config: Any, overrides: Mapping[str, Any] | None, study: str | None, run_dir: str | None
) -> tuple[SearchConfig, str, Path]:
    """The config's ``[search]`` with the overrides applied, the study's name, its run directory.

    The name: ``study``, else ``search.study``, else the config file's stem; the run directory:
    ``<run_dir or config run_dir>/<name>``.
    """
    if config.search is None:
        raise ConfigError(
            f"search: got no [search] table in {config.source}, allowed: a config with one (`search` "
            "needs it)"
        )
    cfg: SearchConfig = config.search
    if overrides:
        given = {k: v for k, v in overrides.items() if v is not None}
        cfg = dataclasses.replace(cfg, **given)
        key = "--n-evaluations" if "n_evaluations" in given else "search.n_evaluations"
        trials_key = "--n-trials" if "n_trials" in given else "search.n_trials"
        check_evaluations(cfg.n_evaluations, cfg.n_trials, key, trials_key)
    if study:
        name = study_name(study, "--study")
    elif cfg.study:
        name = study_name(cfg.study, "search.study")
    else:
        name = study_name(Path(config.source).stem, "--study (default: the config file's stem)")
    parent = Path(run_dir) if run_dir is not None else Path(config.run_dir)
    return cfg, name, writable_dir(parent / name, "--run-dir" if run_dir is not None else "run_dir")
