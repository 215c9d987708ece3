"""The journal file a search keeps its study in: repaired on open, rolled back on a failed write,
and, with one writer, committed in groups.

The file is Optuna's ``JournalFileBackend`` format, one JSON record per line, so
optuna-dashboard, ``optuna.load_study`` and older quantsearch versions read it unchanged.

* **Records are checked as they are read**: each line's checksum chain
  (:mod:`~quantsearch.search.journal_record`, :mod:`~quantsearch.search.journal_read`), and
  each record of another writer's meaning when it is replayed
  (:mod:`~quantsearch.search.journal_replay`); a damaged one is a one-line ``StorageError``.
* **Repair on open** (:func:`~quantsearch.search.journal_repair.repair_journal`): a last
  record torn by an interrupted write is removed, kept aside, with a warning.
* **A failed write leaves no trace** (:class:`JournalBackend`). When ``write`` or ``fsync``
  fails (``ENOSPC``, ``EROFS``, ``EIO``) the file is truncated back to its size before the write,
  and the search stops with one line saying what to free; the study stays loadable.
* **Group commit** (``group_commit_s > 0``, for a process that is the journal's only writer,
  which the run directory's lock guarantees). Records are appended to an in-memory buffer that
  this process reads back as if written; the buffer reaches the disk in one ``write`` and one
  ``fsync`` when a committer thread finds its oldest record ``group_commit_s`` old (one thread
  per journal, started when it opens, not one per group: starting a thread costs milliseconds
  on a loaded machine; a trial that finishes writes a due group itself only when no committer
  runs), and on :meth:`JournalBackend.flush`. The write runs outside the lock that reads and
  appends take, its records read from the buffer until it returns, so the trial loop never
  waits for a disk flush. A ``kill -9`` loses at most the trials in flight and those
  finished within the last ``group_commit_s`` seconds plus the time the disk takes to take
  the group before (its ``write`` and ``fsync``: milliseconds, but up to 73 ms measured on a
  disk shared with other jobs), never an older one. With several
  writers (``--workers``) every record is written at once: buffered records would be numbered
  differently by each process.
* **The lock file is absolute.** Optuna's symlink lock points at the journal; a relative target
  does not resolve from the lock's folder, so a stale lock (left by a ``kill -9`` inside a write)
  could never be recognised and made the next run spin. A stale lock is removed at once when this
  process is the only writer.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from optuna.storages.journal import BaseJournalBackend, JournalFileSymlinkLock

from quantsearch.errors import StorageError
from quantsearch.paths import not_a_file
from quantsearch.search.journal_read import JournalReader
from quantsearch.search.journal_record import (
    TAIL_BYTES,
    encode,
    finishes_trial,
    is_study_record,
    lines,
    tail_seed,
)
from quantsearch.search.journal_repair import last_line_start, repair_journal
from quantsearch.search.journal_results import check_not_lost

__all__ = ["DEFAULT_GROUP_COMMIT_S", "JournalBackend"]

DEFAULT_GROUP_COMMIT_S = 0.05  # the most a kill -9 may lose of finished trials, in seconds
_COMMITTER_IDLE_S = 5.0  # the committer thread ends after this long with nothing to write


class JournalBackend(BaseJournalBackend):
    """Optuna's journal file, repaired on open, with failed writes rolled back and, for a single
    writer, group commit (see the module doc).

    After a failed write the backend keeps every further record in memory, so Optuna's view of
    the study stays whole (its ``optimize`` asserts on a failed state write), and the search
    loop stops at its next :meth:`check`, which raises the :class:`StorageError`.

    Args:
        path: the journal file; created if missing.
        exclusive: this process is the file's only writer (it holds the run directory's lock).
        group_commit_s: the longest a finished trial's records may stay in memory; 0 writes every
            record at once. Ignored unless ``exclusive``.
    """

    def __init__(self, path: Path, *, exclusive: bool, group_commit_s: float = 0.0) -> None:
        path = Path(path).absolute()
        path.parent.mkdir(parents=True, exist_ok=True)
        if not_a_file(path):
            # opened, a FIFO would block, a folder fail with a traceback, and a link to nothing
            # be followed to wherever it points (the CLI names which, at --run-dir, first)
            raise StorageError(
                f"storage: got {path}, which is not a regular file, allowed: a journal file or nothing "
                f"(a new study)"
            )
        check_not_lost(path)  # before touch(): a refusal changes nothing
        if exclusive:  # with other writers a cut last line may be a write in progress
            repair_journal(path)
        lock_file = Path(str(path) + ".lock")
        if exclusive and lock_file.is_symlink():
            lock_file.unlink()  # left by a process killed inside a write; nobody else writes
        self._path = path
        self._file_lock = JournalFileSymlinkLock(str(path))
        self.witnessed = exclusive and path.is_file()  # journal_storage checks it on load
        path.touch()  # as Optuna's JournalFileBackend does: a new study's empty journal
        self._reader = JournalReader(path)
        self._group_s = group_commit_s if exclusive else 0.0
        self._lock = threading.RLock()
        self._buffer: list[dict[str, Any]] = []  # records this process sees but the file lacks
        self._writing = 0  # the first records of the buffer, being written (not under _lock)
        self._buffer_since = 0.0  # when the first record not being written was buffered
        self._writer = threading.Lock()  # one group written at a time, outside _lock
        self._due = threading.Condition(self._lock)  # the committer waits on it, timed
        self._committer: threading.Thread | None = None
        self._error: StorageError | None = None
        self._n_written = _count_lines(path) if self._group_s else 0
        if self._group_s:
            atexit.register(self._flush_quietly)  # the committer thread dies with the interpreter
            with self._lock:
                self._start_committer()  # now, not in the trial loop: a thread start is slow

    @property
    def path(self) -> Path:
        return self._path

    @property
    def group_commit_s(self) -> float:
        """Group commit's longest delay in seconds; 0 when every record is written at once."""
        return self._group_s

    def check(self) -> None:
        """Raise the :class:`StorageError` of a failed write, if one failed."""
        if self._error is not None:
            raise self._error

    def read_logs(self, log_number_from: int) -> Iterator[dict[str, Any]]:
        with self._lock:  # only the records not read yet: every read of the study syncs
            n_written = self._n_written
            buffered = self._buffer[max(0, log_number_from - n_written) :]
            direct = not self._group_s and self._error is None
        if direct or log_number_from < n_written:
            # a group being written now is read from the buffer
            yield from self._reader.read(log_number_from, None if direct else n_written)
        yield from buffered

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        with self._lock:
            if self._error is not None:
                self._buffer.extend(logs)
                return
            if not self._group_s:
                self._write(logs)
                return
            if len(self._buffer) == self._writing:  # a new group begins
                self._buffer_since = time.monotonic()
                self._start_committer()  # a live one finds it by its next look (no wake-up)
            self._buffer.extend(logs)
            # The committer thread writes a group when it is due, so a trial that ends does
            # not wait for a write and its fsync; without a live one, the trial writes it.
            now = any(is_study_record(log) for log in logs) or (
                not self._committer_alive()
                and time.monotonic() - self._buffer_since >= self._group_s
                and any(finishes_trial(log) for log in logs)
            )
        if now:  # outside the lock: flush takes the writer's lock first
            self.flush()

    def flush(self) -> None:
        """Write every buffered record, one ``write`` and one ``fsync``; then :meth:`check`.

        The records stay in the buffer, read from there, until they are written; the write
        and its ``fsync`` run outside the lock that reads and appends take (the committer's
        group does not hold up the trial loop's reads), one group at a time."""
        with self._writer:
            with self._lock:
                logs = self._buffer[:] if self._error is None else []
                self._writing = len(logs)
            if logs:
                self._write_group(logs)
        self.check()

    def close(self) -> None:
        atexit.unregister(self._flush_quietly)
        self.flush()

    def _flush_quietly(self) -> None:
        with contextlib.suppress(StorageError):  # raised in the search's thread at check()
            self.flush()

    def _committer_alive(self) -> bool:
        return self._committer is not None and self._committer.is_alive()

    def _start_committer(self) -> None:
        """Start the committer thread unless it runs (call with the lock held)."""
        if not self._committer_alive():
            self._committer = threading.Thread(
                target=self._commit, daemon=True, name="journal-commit"
            )
            self._committer.start()

    def _commit(self) -> None:
        """Flush each group ``group_commit_s`` after its first record, however few records
        follow it; end after :data:`_COMMITTER_IDLE_S` without one (an append starts it again).

        Without a group it looks again every ``group_commit_s``, so it finds a new group by
        the time the group is due: an append does not wake it. Waking a thread from the trial
        loop at each new group cost the loop a switch to it, and, on a busy machine, its core
        for a while (0.1-0.8 ms a group by wall time at loads 3-5)."""
        with self._lock:
            idle_since = time.monotonic()
            while True:
                now = time.monotonic()
                if len(self._buffer) > self._writing and self._error is None:
                    idle_since = now
                    due = self._buffer_since + self._group_s
                    if now >= due:
                        self._lock.release()  # the write runs outside it (flush)
                        try:
                            self._flush_quietly()
                        finally:
                            self._lock.acquire()
                    else:
                        self._due.wait(due - now)
                elif now - idle_since >= _COMMITTER_IDLE_S:
                    self._committer = None
                    return
                else:
                    self._due.wait(self._group_s)

    def _write_group(self, logs: list[dict[str, Any]]) -> None:
        """Append ``logs``, the first records of the buffer, without holding the lock; then
        drop them from the buffer, or on failure roll the file back and keep them there."""
        bodies = [encode(log) for log in logs]
        try:
            self._append(bodies)
        except OSError as exc:
            with self._lock:
                self._writing = 0
                self._n_written = _count_lines(self._path)
                self._error = _write_error(self._path, exc)
        else:
            with self._lock:
                del self._buffer[: len(logs)]
                self._writing = 0
                self._n_written += len(logs)

    def _write(self, logs: list[dict[str, Any]]) -> None:
        """Append ``logs``; on failure roll the file back and keep them in memory instead."""
        bodies = [encode(log) for log in logs]
        try:
            self._append(bodies)
        except OSError as exc:
            self._n_written = _count_lines(self._path)
            self._buffer = logs + self._buffer
            self._error = _write_error(self._path, exc)
        else:
            self._n_written += len(logs)

    def _append(self, bodies: list[bytes]) -> None:
        """The records' lines (:func:`~quantsearch.search.journal_record.lines`, chained on
        from the file's last line), one ``write`` and one ``fsync`` under Optuna's lock; a
        failed one is truncated away.

        A last line without its newline was cut by a writer killed inside its write (we hold
        the lock: nobody is writing now); it is removed first, or the record would be glued
        onto it and the file would be unreadable from then on.
        """
        self._file_lock.acquire()
        try:
            with self._path.open("rb+", buffering=0) as f:
                size = f.seek(0, os.SEEK_END)
                if size:
                    f.seek(size - 1)
                    if f.read(1) != b"\n":
                        size = last_line_start(f, size)
                        f.truncate(size)
                f.seek(max(0, size - TAIL_BYTES))
                data = lines(bodies, tail_seed(f.read(TAIL_BYTES)))
                f.seek(size)
                try:
                    view = memoryview(data)
                    while view:  # unbuffered: a short write is retried, a failed one raises
                        view = view[f.write(view) or 0 :]
                    os.fsync(f.fileno())
                except OSError:
                    _rollback(f, size)
                    raise
        finally:
            self._file_lock.release()


def _write_error(path: Path, exc: OSError) -> StorageError:
    return StorageError(
        f"storage: cannot write {path} ({os.strerror(exc.errno or 0) or exc}); free space on "
        f"its disk or make it writable, then run the same command again to resume"
    )


def _count_lines(path: Path) -> int:
    n = 0
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            n += chunk.count(b"\n")
    return n


def _rollback(f: BinaryIO, size: int) -> None:
    """Truncate back to ``size`` after a failed append (best effort: the disk may be gone; the
    next open repairs what is left)."""
    with contextlib.suppress(OSError):
        f.truncate(size)
        os.fsync(f.fileno())
