"""Repair of a journal's torn last record, on open, by the journal's only writer.

A record cut short (a ``kill -9`` or a full disk in the middle of a write, or the block of NUL
bytes some filesystems leave after a crash where an unsynced write was due) is the last line
without its newline. Optuna skips it when reading but appends the next record onto it, which
turns the study into a ``JSONDecodeError`` for ever. The cut record is removed before Optuna
opens the file; a copy of the bytes removed is kept beside it (``study.journal.damaged``: the
original is the file followed by them) and a warning names how many were dropped.

Nothing else is guessed at: a cut that would lose a trial the run directory's results list
(:mod:`~quantsearch.search.journal_results`) is refused. A whole last line (it ends with its newline) that is not a record
was not torn: one ``write`` of whole lines is cut before a newline, never just after a damaged
line; it is damage, refused in one line like damage anywhere else. And the file is changed
only when every record before the cut is sound (read and replayed as a load would): a refused
journal is left byte for byte as it was.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import BinaryIO

from optuna.storages.journal._storage import JournalStorageReplayResult

from quantsearch.errors import StorageError
from quantsearch.search.journal_read import JournalReader
from quantsearch.search.journal_record import check_record
from quantsearch.search.journal_replay import apply_checked
from quantsearch.search.journal_results import check_against_results

__all__ = ["JournalRepaired", "last_line_start", "repair_journal"]

_TAIL_CHUNK = 1 << 16


class JournalRepaired(UserWarning):
    """A journal's cut last record was removed on open (the message says how many bytes)."""


def last_line_start(f: BinaryIO, size: int) -> int:
    """Offset just after the last newline before ``size`` (0 when there is none)."""
    end = size
    while end > 0:
        start = max(0, end - _TAIL_CHUNK)
        f.seek(start)
        chunk = f.read(end - start)
        i = chunk.rfind(b"\n")
        if i >= 0:
            return start + i + 1
        end = start
    return 0


def repair_journal(path: Path) -> int:
    """Cut an incomplete last record off ``path``; return the number of bytes dropped.

    The bytes removed are saved first to ``<path>.damaged`` (``.damaged.1`` ... if that exists):
    the original file is the repaired one followed by them. A last record whole but for its
    newline gets the newline.

    Raises:
        StorageError: a line is damaged (a whole last line included), the cut would lose a
            finished trial the run directory's ``trials.jsonl`` lists, or the removed bytes
            cannot be saved (the disk is full); nothing is changed.

    Example:
        >>> import tempfile
        >>> p = Path(tempfile.mkdtemp()) / "study.journal"
        >>> _ = p.write_bytes(b'{"op_code":0,"worker_id":"w","study_name":"s","directions":[1]}'
        ...                   b'\\n{"op_co')
        >>> with warnings.catch_warnings(record=True):
        ...     repair_journal(p)
        7
        >>> p.read_bytes()[-18:]
        b'"directions":[1]}\\n'
    """
    if not path.is_file():
        return 0
    with path.open("rb+") as f:
        size = f.seek(0, os.SEEK_END)
        if size == 0:
            return 0
        keep = last_line_start(f, size)
        f.seek(keep)
        tail = f.read()
        if not tail:  # ends with a newline: nothing torn (a damaged last line is read as such)
            return 0
        if _check_before(path, tail):  # a whole record but for its newline: keep it
            f.write(b"\n")
            f.flush()
            os.fsync(f.fileno())
            return 0
        backup = _free_name(path.with_name(path.name + ".damaged"))
        try:
            backup.write_bytes(tail)
        except OSError as exc:
            backup.unlink(missing_ok=True)
            raise StorageError(
                f"storage: {path} ends with a record cut short, and its {size - keep} bytes cannot "
                f"be saved aside before removing them ({os.strerror(exc.errno or 0)}); free space "
                f"on its disk, then run the same command again"
            ) from None
        f.truncate(keep)
        f.flush()
        os.fsync(f.fileno())
    dropped = size - keep
    warnings.warn(
        f"{path}: removed an incomplete last record ({dropped} bytes) left by an interrupted "
        f"write; they are kept in {backup.name}",
        JournalRepaired,
        stacklevel=2,
    )
    return dropped


def _check_before(path: Path, tail: bytes) -> bool:
    """Read and replay every whole line of ``path`` as a load would, then ``tail`` (the last
    line, without its newline) if it is a whole, sound record: raise the ``StorageError`` of
    damage, or of a finished trial the results list that the journal kept would lack, before
    anything is changed. Whether ``tail`` is such a record."""
    replay = JournalStorageReplayResult("")  # no record is this reader's own
    reader = JournalReader(path)
    apply_checked(replay, reader.read(0), path)
    n, seed = reader.position
    whole = True
    try:
        apply_checked(replay, [check_record(tail + b"\n", seed, path, n)[0]], path)
    except StorageError:
        whole = False
    check_against_results(path, replay, "would hold" if not whole else "holds")
    return whole


def _free_name(path: Path) -> Path:
    n, candidate = 0, path
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.name}.{n}")
    return candidate
