"""Reading the journal file: each whole line one record, checked as it is read.

Optuna's ``JournalFileBackend.read_logs`` reads the same lines, but skips a last line that is
not JSON even when it ends with its newline (a whole record damaged, not a write in progress:
one ``write`` of whole lines is cut before a newline, never just after a damaged one), and
knows nothing of the checksum chain (:mod:`quantsearch.search.journal_record`). This reader
raises the one-line ``StorageError`` for any whole line that is not a sound record, and stops,
as Optuna's does, before a last line without its newline (a write in progress, or one torn by
a crash, which :func:`~quantsearch.search.journal_repair.repair_journal` removes).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from quantsearch.errors import StorageError
from quantsearch.search.journal_record import check_record

__all__ = ["JournalReader"]


class JournalReader:
    """Reads the records of one journal file, remembering where it stopped (the next line's
    number, byte offset and chain seed), so that each read starts where the last one ended.

    Example:
        >>> import tempfile
        >>> p = Path(tempfile.mkdtemp()) / "study.journal"
        >>> _ = p.write_bytes(b'{"op_code":0}\\n{"op_co')
        >>> list(JournalReader(p).read(0))
        [{'op_code': 0}]
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._at = (0, 0, 0)  # the next line: its number, its offset, its chain seed

    @property
    def position(self) -> tuple[int, int]:
        """The number of lines read, and the chain value the next line is seeded with."""
        return self._at[0], self._at[2]

    def read(self, start: int, stop: int | None = None) -> Iterator[dict[str, Any]]:
        """The records of lines ``start`` to ``stop`` (exclusive; ``None``: to the end).

        Raises:
            StorageError: a whole line is damaged (it names the line), or the file cannot be
                read.
        """
        n, offset, seed = self._at
        if start < n:
            n, offset, seed = 0, 0, 0  # read again from the start: the chain needs it
        try:
            f = self.path.open("rb")
        except OSError as exc:
            raise StorageError(
                f"storage: cannot read {self.path} ({exc.strerror or exc})"
            ) from None
        with f:
            size = os.fstat(f.fileno()).st_size  # what another writer appends later waits
            f.seek(offset)
            while stop is None or n < stop:
                raw = f.readline()
                if not raw.endswith(b"\n") or offset + len(raw) > size:
                    break
                log, seed = check_record(raw, seed, self.path, n)
                offset += len(raw)
                n += 1
                self._at = (n, offset, seed)
                if n > start:
                    yield log
