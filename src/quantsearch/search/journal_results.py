"""The run directory's result files as witness of its journal.

``trials.jsonl`` is written from the journal's study at the end of a search, and a journal only
grows: every trial the results list as finished was fsynced to the journal before they were
written. A journal that lacks one was truncated or replaced (a filesystem's crash can leave an
empty file; a block of NUL bytes over records already written), not cut by an interrupted
write, which only loses what was never recorded. Repairing such a journal and searching on
would silently drop those trials and then overwrite the result files that still list them, so
it is refused in one line, and nothing is changed: the journal can be restored from a copy, or
the result files moved away to start the study over (what the message says). A journal
that is missing altogether beside results that list finished trials is refused alike
(:func:`check_not_lost`): a new study would take its place and overwrite them; so is a study
in a database given a run directory whose journal holds one (:func:`check_run_dir_storage`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from optuna.storages.journal._storage import JournalStorageReplayResult
from optuna.trial import TrialState

from quantsearch.errors import ConfigError, StorageError
from quantsearch.search.journal_record import FINISHED_STATES

__all__ = ["RESULTS_FILE", "check_against_results", "check_not_lost", "check_run_dir_storage"]

RESULTS_FILE = "trials.jsonl"
_FINISHED = frozenset(TrialState(s).name for s in FINISHED_STATES)


def _listed(run_dir: Path) -> set[tuple[int, str]]:
    """(number, state) of each finished trial ``trials.jsonl`` lists; nothing where it is
    missing or unreadable (a damaged results file is refused where it is read, and rewritten)."""
    try:
        text = (run_dir / RESULTS_FILE).read_text(encoding="utf-8")
    except (OSError, ValueError):
        return set()
    out = set()
    for line in text.splitlines():
        try:
            t = json.loads(line)
            number, state = t["number"], t["state"]
        except (ValueError, TypeError, KeyError):
            continue
        if type(number) is int and state in _FINISHED:
            out.add((number, state))
    return out


def check_against_results(path: Path, replay: JournalStorageReplayResult, doing: str) -> None:
    """Raise unless every finished trial the results beside ``path`` list is in ``replay``
    (the journal's records, replayed), in the same state.

    ``doing``: what the journal holds, for the message ("holds", "would hold once its last
    bytes are removed").

    Raises:
        StorageError: naming the journal, the results file and the first trials missing.
    """
    listed = _listed(path.parent)
    if not listed:
        return
    held = {(t.number, t.state.name) for t in replay._trials.values()}
    missing = sorted(n for n, s in listed - held)
    if missing:
        shown = ", ".join(map(str, missing[:5])) + (" ..." if len(missing) > 5 else "")
        raise StorageError(
            f"storage: got {path}, which {doing} no finished trial {shown} ({len(missing)} in all) "
            f"that {RESULTS_FILE} beside it lists (it was truncated or replaced, not cut by an "
            "interrupted write; it was not changed), allowed: the journal of those trials: "
            "restore it from a copy, or move the run directory's files away to start over"
        )


def check_not_lost(path: Path) -> None:
    """Raise when the journal ``path`` does not exist but the results beside it list finished
    trials: it was removed or lost, and a new, empty study in its place would overwrite them.

    Raises:
        StorageError: naming the journal, the results file and how many trials it lists.
    """
    if os.path.lexists(path):
        return
    listed = _listed(path.parent)
    if listed:
        raise StorageError(
            f"storage: got no {path}, but {RESULTS_FILE} beside it lists {len(listed)} finished "
            "trial(s) of its study (the journal was removed or lost, or that study is in a "
            "database: give its --storage; nothing was changed), allowed: the journal: restore "
            "it from a copy, or move the run directory's files away to start the study over"
        )


def check_run_dir_storage(path: Path, storage: str | None) -> None:
    """Before a search writes the run directory of the journal ``path``: on the journal
    default (``storage`` None), :func:`check_not_lost`; on a database, refuse a run directory
    whose journal holds a study, since the database study's result files would replace that
    study's, beside the journal that still holds it.

    Raises:
        StorageError: see :func:`check_not_lost`.
        ConfigError: naming ``--run-dir`` and the journal.
    """
    if storage is None:
        check_not_lost(path)
    elif path.is_file() and path.stat().st_size > 0:
        raise ConfigError(
            f"--run-dir: got {str(path.parent)!r}, which holds a study in its journal file "
            f"({path.name}), allowed: a folder of its own for a study on --storage (its result files would "
            f"replace that study's)"
        )
