"""Replaying journal records into Optuna's study view, with damage refused in one line.

Optuna's replay (``JournalStorageReplayResult.apply_logs``) trusts every record it reads: an
unknown operation code is ``AssertionError("Should not reach.")``, an unknown state a
``ValueError``, a missing field a ``KeyError``, all out of the storage as a traceback; and a
record naming a trial or study that was never created is skipped without a word. A record
written by this process is Optuna's own and its errors are Optuna's answers (a duplicated
study, a finished trial updated), so they pass as they are. A record read from the file,
written by another process, is checked before it is applied (:func:`_check_meaning`), and
anything the replay still raises for it is the ``StorageError`` of a damaged line. Records
with a checksum (:mod:`~quantsearch.search.journal_record`) rarely get here damaged; records
without one (Optuna's own writer, optuna-dashboard) are checked here alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from optuna.storages.journal._storage import JournalStorageReplayResult

from quantsearch.errors import StorageError
from quantsearch.search.journal_record import damaged

__all__ = ["N_OPS", "N_STATES", "STUDY_ID_OPS", "TRIAL_OPS", "apply_checked"]

N_OPS = 11  # JournalOperation: CREATE_STUDY (0) ... DISCARD_TRIALS (10)
N_STATES = 5  # TrialState: RUNNING, COMPLETE, PRUNED, FAIL, WAITING (0 ... 4)
TRIAL_OPS = frozenset({5, 6, 7, 8, 9})  # SET_TRIAL_* : name a trial by its id
STUDY_ID_OPS = frozenset({1, 2, 3, 4})  # DELETE_STUDY, SET_STUDY_*_ATTR, CREATE_TRIAL


def apply_checked(
    replay: JournalStorageReplayResult, logs: Iterable[dict[str, Any]], path: Path
) -> None:
    """``replay.apply_logs(logs)``, each record not written by this process checked first.

    Raises:
        StorageError: a record is damaged (naming its line of ``path``); the replay has applied
            the records before it.
    """
    own = replay.worker_id
    current: list[dict[str, Any]] = []

    def checked() -> Iterator[dict[str, Any]]:
        for log in logs:
            current[:] = [log]
            if log.get("worker_id") != own:
                _check_meaning(log, replay, path)
            yield log

    try:
        replay.apply_logs(checked())
    except StorageError:
        raise
    except Exception as exc:
        if not current or current[0].get("worker_id") == own:
            raise  # Optuna's answer to this process's own request
        why = f"Optuna's replay fails on it: {type(exc).__name__}: {exc}".strip(": ")
        raise damaged(path, replay.log_number_read - 1, why) from None


def _is_int(value: object, below: int) -> bool:
    return type(value) is int and 0 <= value < below


def _check_meaning(log: dict[str, Any], replay: JournalStorageReplayResult, path: Path) -> None:
    """Refuse what Optuna's replay would fail on or skip silently in a record of another
    writer: an unknown operation or state, or a trial or study id never created (ids are
    numbered in the order their creations are written, so every writer's replay knows them
    before any record naming them)."""
    n = replay.log_number_read  # the line of this record: the count applied before it
    op = log.get("op_code")
    if not _is_int(op, N_OPS):
        raise damaged(path, n, f"unknown operation {op!r}, allowed: 0 to {N_OPS - 1}")
    if "state" in log and not _is_int(log["state"], N_STATES):
        raise damaged(path, n, f"unknown trial state {log['state']!r}, allowed: 0 to 4")
    if op in STUDY_ID_OPS and not _is_int(log.get("study_id"), replay._next_study_id):
        raise damaged(path, n, f"study id {log.get('study_id')!r} was never created")
    if op in TRIAL_OPS:
        trial_id = log.get("trial_id")
        if type(trial_id) is not int or trial_id not in replay._trials:
            raise damaged(path, n, f"trial id {trial_id!r} was never created")
