"""A search's progress bar, and when it shows by default.

``search(..., progress=None)`` means *auto*: on inside a Jupyter kernel, where nothing else
says that a search is running, and off elsewhere in the Python API (a script's output stays its
own). The CLI always passes ``True`` or ``False``. Notebooks are recognised by rich's own test
(``Console().is_jupyter``), the one rich uses to decide how to draw the bar there; rich draws
it with ipywidgets, and says to install them when they are missing.

The bar is drawn on standard error, so that ``quantsearch search --json`` keeps standard output
to its one JSON document.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from quantsearch.search.cache import EvaluationCache
from quantsearch.search.config import SearchConfig
from quantsearch.search.space import SearchSpace
from quantsearch.search.study import OnTrial
from quantsearch.search.trial import TrialInfo

__all__ = ["in_notebook", "progress_enabled", "search_progress"]


def in_notebook() -> bool:
    """Whether this process is a Jupyter kernel (rich's detection: ``Console().is_jupyter``).

    Example:
        >>> in_notebook()  # a doctest runs in a plain interpreter
        False
    """
    return Console().is_jupyter


def progress_enabled(progress: bool | None) -> bool:
    """``progress`` as given, or, for ``None`` (auto), whether this is a notebook.

    Example:
        >>> progress_enabled(True), progress_enabled(False), progress_enabled(None)
        (True, False, False)
    """
    return in_notebook() if progress is None else progress


@contextmanager
def search_progress(
    progress: bool | None, cfg: SearchConfig, space: SearchSpace
) -> Iterator[OnTrial | None]:
    """A rich progress bar: trials, distinct evaluations, best so far or front size, ETA.

    Yields the ``on_trial`` hook the trial loop calls after each trial, or ``None`` when the
    bar is off (``progress`` as :func:`progress_enabled` reads it). A search that ends in an
    error before any trial (a study made for another config, a failing float model) leaves no
    bar behind: the error is the only line.
    """
    if not progress_enabled(progress):
        yield None
        return
    with Progress(
        TextColumn("[bold]trials"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
    ) as bar:
        task = bar.add_task("trials", total=cfg.n_trials, status="")
        # evaluations as the result counts them (SearchResult.n_evaluations): a config pruned
        # on a prefix (successive halving) ran the model too, though the cache holds only
        # configs measured whole (the bar said 14 beside the summary's 32)
        evaluated = [0]

        def on_trial(study: Any, trial: Any, cache: EvaluationCache) -> None:
            if trial is None:  # where a resumed study stands
                done = study.get_trials(deepcopy=False)
                evaluated[0] = sum(TrialInfo.from_trial(t).evaluated for t in done)
            else:
                evaluated[0] += TrialInfo.from_trial(trial).evaluated
            if cfg.combine == "weighted_sum":
                try:
                    best = f"best {study.best_value:.4g}"
                except ValueError:  # no completed trial yet
                    best = "best -"
            else:
                # configs, not trials: a repeat of a front config is on the front too
                front = {tuple(sorted(t.params.items())) for t in study.best_trials}
                best = f"front {len(front)}"
            bar.update(
                task,
                completed=len(study.get_trials(deepcopy=False)),
                status=f"evals {evaluated[0]}/{space.size} · {best}",
            )

        try:
            yield on_trial
        except BaseException:
            if not bar.tasks[0].completed:  # a refusal before any trial: its line stands alone
                bar.live.transient = True
            raise
