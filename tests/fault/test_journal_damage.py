"""Journal damage the checksum (``qs_crc32``) does not catch yet. Failing tests, marked
``xfail(strict=True)`` until the fix (proposed to the journal's owner) lands; strict, so that
the fix turns them into failures that say to remove the mark.

* A journal written before the checksum (by Optuna's own ``JournalFileBackend``, the referee
  writer here, or an older quantsearch) whose record was changed so that it stays JSON: Optuna's
  replay raises ``AssertionError("Should not reach.")`` or ``ValueError`` out of the storage, a
  traceback, instead of the one-line ``StorageError`` a damaged journal gets.
* A whole last record (it ends with its newline) with a byte changed so that it is no longer
  JSON is cut off on open as if a write had been torn (a warning), and the trial it finished is
  silently RUNNING again. A torn write never ends with a newline (one ``write`` of the records
  and their newlines; a cut one stops before its newline), so this is damage, to refuse.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import optuna
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from quantsearch.errors import StorageError
from quantsearch.search.storage import open_storage

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _journal(run_dir: Path, *, checksum: bool) -> list[bytes]:
    """A study "s" of 4 finished trials in ``run_dir/study.journal`` (quantsearch's writer,
    with checksums, or Optuna's, without); its lines."""
    run_dir.mkdir()
    path = run_dir / "study.journal"
    storage = (
        open_storage(None, run_dir) if checksum else JournalStorage(JournalFileBackend(str(path)))
    )
    study = optuna.create_study(
        storage=storage, study_name="s", sampler=optuna.samplers.RandomSampler(seed=0)
    )
    study.optimize(lambda t: t.suggest_int("x", 0, 9), n_trials=4)
    flush = getattr(storage, "flush", None)
    if flush is not None:
        flush()
    return path.read_bytes().splitlines(keepends=True)


def _load(run_dir: Path) -> list[optuna.trial.FrozenTrial]:
    """The study as `quantsearch search` opens it: holding the run directory (``exclusive``),
    which repairs a cut last record first."""
    storage = open_storage(None, run_dir, exclusive=True)
    study = optuna.load_study(study_name="s", storage=storage)
    return study.get_trials()


@pytest.mark.xfail(strict=True, reason="fix proposed for search/journal.py (report)")
@pytest.mark.parametrize(
    ("old", "new"),
    [(b'"op_code":6', b'"op_code":99'), (b'"state":1', b'"state":9')],
    ids=["unknown-operation", "unknown-state"],
)
def test_a_changed_record_without_a_checksum_is_one_storage_error(
    tmp_path: Path, old: bytes, new: bytes
) -> None:
    rd = tmp_path / "s"
    lines = _journal(rd, checksum=False)
    assert all(b"qs_crc32" not in ln for ln in lines)  # Optuna's writer: no checksum
    i = next(i for i, ln in enumerate(lines) if old in ln and i < len(lines) - 1)
    lines[i] = lines[i].replace(old, new, 1)  # still JSON, before the last record
    (rd / "study.journal").write_bytes(b"".join(lines))
    with pytest.raises(StorageError, match=r"study\.journal"):
        _load(rd)


@pytest.mark.xfail(strict=True, reason="fix proposed for search/journal.py (report)")
def test_a_whole_last_record_changed_is_refused_not_cut_as_torn(tmp_path: Path) -> None:
    rd = tmp_path / "s"
    lines = _journal(rd, checksum=True)
    assert b'"state":1' in lines[-1] or b'"op_code":4' in lines[-1]  # it finishes a trial
    lines[-1] = lines[-1].replace(b'{"', b"{#", 1)  # one byte; the newline is still there
    damaged = b"".join(lines)
    (rd / "study.journal").write_bytes(damaged)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            trials = _load(rd)
        except StorageError as exc:
            assert "study.journal" in str(exc)
            assert (rd / "study.journal").read_bytes() == damaged  # nothing rewritten
            return
    # what happens now: the record is cut away and its finished trial is RUNNING again
    states = [t.state.name for t in trials]
    pytest.fail(f"the damaged last record was dropped as torn; trials now {states}")
