"""A run directory's model: recorded at the end of a search, opened again by :func:`open_run`.

``quantsearch search`` writes ``model.pt`` beside the result files: a copy of the float model's
weights that were searched (a quantsearch checkpoint), whose ``config["run"]`` records what
rebuilds the rest: the model's name, the ``[data]`` table, the seed and the config's folder.
:func:`open_run` reads the result back with that model traced again, so that
:meth:`SearchResult.model` gives any trial's quantized model; :func:`measure_test_split`
measures the chosen configs on the held-out test split.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from quantsearch.checkpoint import load_checkpoint, save_checkpoint
from quantsearch.config import parse_config
from quantsearch.errors import ConfigError
from quantsearch.metrics import compute_metrics, metric_spec
from quantsearch.search.results import SearchedModel, SearchResult
from quantsearch.search.run_files import OTHER_MARKERS, what_folder
from quantsearch.session import Session, open_session

__all__ = [
    "MODEL_FILE",
    "check_owner",
    "finish_run",
    "measure_test_split",
    "open_run",
    "record_model",
]

MODEL_FILE = "model.pt"


def held_study(run_dir: Path) -> str | None:
    """The study whose results ``run_dir`` holds: the one ``best.json`` names, else the first
    study created in its journal; ``None`` for a new (or unreadable) folder."""
    try:
        name = json.loads((run_dir / "best.json").read_text(encoding="utf-8")).get("study")
        if isinstance(name, str):
            return name
    except (OSError, ValueError, AttributeError):
        pass
    try:
        with (run_dir / "study.journal").open(encoding="utf-8") as fh:
            name = json.loads(fh.readline()).get("study_name")
        return name if isinstance(name, str) else None
    except (OSError, ValueError, AttributeError):
        return None


# What a search writes in its run directory, and what only a search writes there: a folder
# holding one of the first without any of the second holds someone else's file of that name.
RESULT_FILES = (
    *("baseline.json", "trials.jsonl", "trials.csv", "best.json", "pareto.json", MODEL_FILE),
    *("report.html", "report.md"),
)
OWN_FILES = ("study.journal", "search_config.json", "workers.lock")


def check_owner(run_dir: Path, study_name: str) -> None:
    """Refuse to write a run directory that holds another study's results (its report,
    trials.csv and journal would be overwritten or mixed with this study's), or files of the
    names a search writes that no search wrote (the user's report.md was replaced), or
    another command's output (a quantize or finetune output, a comparison: the study's files
    were mixed with theirs, as theirs with a search's are refused)."""
    if any((run_dir / f).is_file() for f in OTHER_MARKERS):  # what_folder names it
        raise ConfigError(
            f"--run-dir: got {str(run_dir)!r}, which {what_folder(run_dir)}, allowed: a folder of the "
            "study's own (--study NAME, --run-dir)"
        )
    held = held_study(run_dir)
    if held is not None and held != study_name:
        raise ConfigError(
            f"--run-dir: got {str(run_dir)!r}, which holds study {held!r}, not {study_name!r}, "
            f"allowed: a folder of study {study_name!r}'s own"
        )
    if held is None and not any((run_dir / f).exists() for f in OWN_FILES):
        foreign = [f for f in RESULT_FILES if (run_dir / f).is_file()]  # a folder: fails later
        if foreign:
            raise ConfigError(
                f"--run-dir: got {str(run_dir)!r}, which holds {foreign[0]} no `quantsearch search` "
                f"wrote (no {' or '.join(OWN_FILES[:2])} beside it), allowed: a folder of the "
                f"study's own (--study NAME, --run-dir) or a previous search's"
            )


def searched_model(session: Session) -> SearchedModel:
    """The model a config's search quantizes, traced as :func:`prepare_from_config` traces it."""
    cfg = session.config
    val = session.data.val.head(cfg.data.eval_samples)
    return SearchedModel(
        graph=session.trace(batch=min(len(val), 8)),
        name=session.model_name,
        data=session.data,
        eval_samples=cfg.data.eval_samples,
        batch_size=cfg.data.batch_size,
        base_dir=cfg.base_dir,
    )


def record_model(run_dir: Path, session: Session) -> Path:
    """Write ``run_dir/model.pt``: the searched float weights and what rebuilds model and data."""
    cfg = session.config
    data: dict[str, Any] = {**cfg.data.options, "batch_size": cfg.data.batch_size}
    data["calibration_samples"] = cfg.data.calibration_samples
    if cfg.data.name is not None:
        data["name"] = cfg.data.name
    if cfg.data.eval_samples is not None:
        data["eval_samples"] = cfg.data.eval_samples
    run = {"data": data, "seed": cfg.seed, "base_dir": str(cfg.base_dir.resolve())}
    return save_checkpoint(
        run_dir / MODEL_FILE,
        session.model,
        model_name=session.model_name,
        dataset=session.data.name,
        config={"run": run, "source": cfg.source},
    )


def measure_test_split(result: SearchResult) -> dict[int, dict[str, float]]:
    """The data metrics (accuracy, loss ...) of the best trial or of every Pareto member on
    the test split, by trial number: beside the validation metrics the search chose them by.

    Empty when the result does not know its model and data.
    """
    sm = result.searched
    if sm is None or sm.data is None:
        return {}
    chosen = [result.best] if result.combine == "weighted_sum" else result.pareto
    out: dict[int, dict[str, float]] = {}
    for t in chosen:
        if t is None:
            continue
        names = [m for m in t.metrics if metric_spec(m).kind == "data"]
        if names:
            qgm = result.model(t)
            out[t.number] = compute_metrics(qgm, names, data=sm.data.test, batch_size=sm.batch_size)
    return out


def finish_run(result: SearchResult, session: Session, run_dir: Path) -> None:
    """What the end of ``quantsearch search`` adds to a result before its files are written:
    the model (``model.pt``; :attr:`SearchResult.searched`) and the test-split metrics.

    ``session``: the one the search was prepared from (``open_session(config, load,
    need_weights=True)``); the search leaves its model's weights as loaded."""
    record_model(run_dir, session)
    result.searched = searched_model(session)
    result.test_metrics = measure_test_split(result)


def open_run(run_dir: str | Path, *, key: str = "RUN_DIR") -> SearchResult:
    """A search's run directory: its result, with the model it searched, ready for
    :meth:`SearchResult.model`.

    Raises:
        ConfigError: naming ``key``: not a run directory, or one without ``model.pt`` (written
            by ``quantsearch search`` since this version).

    Example:
        >>> result = open_run("runs/mlp_digits_lab")                     # doctest: +SKIP
        >>> qgm = result.model(result.best)                              # doctest: +SKIP
    """
    rd = Path(run_dir)
    if not rd.is_dir():
        raise ConfigError(
            f"{key}: got {str(rd)!r}, {'a file' if rd.exists() else 'which does not exist'}, "
            "allowed: a run directory written by `quantsearch search`"
        )
    if not any((rd / n).is_file() for n in ("best.json", "pareto.json")):
        raise ConfigError(
            f"{key}: got {str(rd)!r}, which {what_folder(rd)}, allowed: a run directory "
            "written by `quantsearch search` (it holds best.json or pareto.json)"
        )
    try:
        result = SearchResult.read(rd)
    except ConfigError as exc:  # its readers name RUN_DIR: say the option the user gave
        text = str(exc)
        if key == "RUN_DIR" or not text.startswith("RUN_DIR: "):
            raise
        raise ConfigError(key + text.removeprefix("RUN_DIR")) from None
    path = rd / MODEL_FILE
    if not path.is_file():
        raise ConfigError(
            f"{key}: got {str(rd)!r}, which has no {MODEL_FILE}, allowed: a run directory with the "
            "model checkpoint `quantsearch search` records (run the search again to write it)"
        )
    ckpt = load_checkpoint(path, key=key)
    run = ckpt.config.get("run")
    if not isinstance(run, dict):
        raise ConfigError(
            f"{key}: got {str(path)!r}, which records no run (model and data), allowed: a "
            "model.pt written by `quantsearch search`"
        )
    config = parse_config(
        {
            "model": {"name": ckpt.model_name, "checkpoint": str(path.resolve())},
            "data": dict(run.get("data") or {}),
            "seed": int(run.get("seed", 0)),
        },
        base_dir=Path(str(run.get("base_dir", "."))),
        source=str(path),
    )
    result.searched = searched_model(open_session(config, need_weights=True))
    return result
