"""Result files written atomically: a temporary file in the same folder, fsync, ``os.replace``.

A reader (or the next run) sees either the previous file or the new one, never a half-written
one; a write that fails (disk full, read-only, I/O error) removes its temporary file, leaves the
previous file as it was, and raises :class:`~quantsearch.errors.StorageError` with one line that
says what to free, which the CLI prints without a traceback.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import os
import re
import shutil
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from quantsearch.errors import StorageError

__all__ = [
    "atomic_path",
    "create_atomic",
    "killed_leftovers",
    "leftover_path",
    "open_atomic",
    "process_alive",
    "storage_error",
    "write_atomic",
]

_LEFT_AGE = 600.0  # seconds: longer than any write lasts (see killed_leftovers)
# This machine's name as a leftover carries it: no dot (the name's separator), no '@'.
_HOST = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname()) or "localhost"
# What to do about a failed write, by errno; any other OSError is a bug and keeps its traceback.
_ADVICE = {
    errno.ENOSPC: "free space on its disk",
    errno.EDQUOT: "free space within the disk quota",
    errno.EFBIG: "it exceeds the largest file allowed here (ulimit -f, or the file system's "
    "limit): raise the limit or choose another folder",
    errno.EROFS: "make its file system writable, or choose another --run-dir",
    errno.EACCES: "make it writable, or choose another --run-dir",
    errno.EIO: "check its disk",
    errno.EISDIR: "a folder has that name: move it away",
    errno.ENOTDIR: "a file stands where one of its folders should be: move it away",
    errno.EEXIST: "a file stands where a folder should be: move it away",
}


def storage_error(path: Path, exc: OSError) -> StorageError | None:
    """The one-line error for a write of ``path`` that failed with ``exc`` (None: not a storage
    fault, re-raise it)."""
    advice = _ADVICE.get(exc.errno or 0)
    if advice is None:
        return None
    return StorageError(
        f"{path}: cannot be written ({os.strerror(exc.errno or 0)}); {advice}, then run the "
        f"same command again (the previous file is left as it was)"
    )


@contextmanager
def atomic_path(
    path: str | Path, *, publish: Callable[[Path, Path], None] = os.replace
) -> Iterator[Path]:
    """A temporary path beside ``path`` to write; moved onto ``path`` when the block ends.
    Missing folders above ``path`` are created.

    For writers that take a path (``Figure.savefig``, ``torch.save``). ``publish(tmp, path)``
    puts the whole file in place (:func:`create_atomic` gives one that never replaces).

    Example:
        >>> import tempfile
        >>> target = Path(tempfile.mkdtemp()) / "a.txt"
        >>> with atomic_path(target) as tmp:
        ...     _ = tmp.write_text("hello")
        >>> target.read_text(), sorted(p.name for p in target.parent.iterdir())
        ('hello', ['a.txt'])
    """
    p = Path(path)
    with contextlib.suppress(OSError):  # a folder not listable yet is created below
        for left, _ in killed_leftovers(p, ("tmp",)):
            shutil.rmtree(left, ignore_errors=True)
    # The temporary keeps the file's name (writers may choose a format by its suffix), in a
    # folder of its own beside it: on the same file system, so os.replace is atomic.
    tmp = leftover_path(p, "tmp") / p.name
    try:
        tmp.parent.mkdir(parents=True, exist_ok=True)  # and the file's folders, if missing
        yield tmp
        with tmp.open("rb+") as fh:
            os.fsync(fh.fileno())
        publish(tmp, p)
        tmp.parent.rmdir()
    except OSError as exc:
        _discard(tmp)
        err = storage_error(p, exc)
        if err is None:
            raise
        raise err from None
    except BaseException:
        _discard(tmp)
        raise


@contextmanager
def open_atomic(path: str | Path, mode: str = "w", **kwargs: Any) -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path`` for writing; it replaces ``path`` when the block
    ends without an error (see :func:`atomic_path`). ``kwargs`` go to :func:`open`."""
    with atomic_path(path) as tmp, tmp.open(mode, **kwargs) as fh:
        yield fh


def write_atomic(path: str | Path, data: str | bytes) -> Path:
    """Write ``data`` (text as UTF-8) to ``path`` atomically; return ``path``."""
    write: Callable[[Path], int] = (
        (lambda t: t.write_bytes(data))
        if isinstance(data, bytes)
        else (lambda t: t.write_text(data, encoding="utf-8"))
    )
    with atomic_path(path) as tmp:
        write(tmp)
    return Path(path)


class _Taken(Exception):
    """A name found taken when a new file was to be put there (not an OSError: no advice)."""


def _link_new(tmp: Path, path: Path) -> None:
    """Put ``tmp`` at ``path`` only if nothing is there: ``link`` fails on an existing name in
    one step, where a check then a rename would race with whoever creates it meanwhile."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise _Taken from None
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
            raise
        if path.exists() or path.is_symlink():  # a file system without hard links: checked
            raise _Taken from None
        os.rename(tmp, path)
        return
    tmp.unlink()


def create_atomic(path: str | Path, data: str) -> Path:
    """Write a new file at ``path`` (text, UTF-8) whole or not at all, never over anything
    that stands there; return ``path``.

    Raises:
        FileExistsError: ``path`` exists (left as it was; nothing written beside it).
        StorageError: the write failed (disk full, ...), as for :func:`write_atomic`.

    Example:
        >>> import tempfile
        >>> target = Path(tempfile.mkdtemp()) / "a.toml"
        >>> create_atomic(target, "x = 1").read_text()
        'x = 1'
        >>> create_atomic(target, "x = 2")
        Traceback (most recent call last):
        FileExistsError: [Errno 17] File exists: ...
    """
    p = Path(path)
    try:
        with atomic_path(p, publish=_link_new) as tmp:
            tmp.write_text(data, encoding="utf-8")
    except _Taken:
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(p)) from None
    return p


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this machine, other than this process (whose id, in a
    leftover's name, was an earlier process's, killed)."""
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # another user's process: alive
    return True


def leftover_path(path: Path, kind: str) -> Path:
    """The name this process writes beside ``path`` before it takes ``path``'s place:
    ``.<name>.<pid>@<host>.<kind>`` (hidden; ``kind`` is ``tmp`` for a write in progress,
    ``old`` for a previous output moved aside). A ``kill -9`` leaves it behind, and
    :func:`killed_leftovers` finds it by that name.

    Example:
        >>> name = leftover_path(Path("out/m.onnx"), "tmp").name
        >>> name.startswith(f".m.onnx.{os.getpid()}@") and name.endswith(".tmp")
        True
    """
    return path.with_name(f".{path.name}.{os.getpid()}@{_HOST}.{kind}")


def killed_leftovers(path: Path, kinds: tuple[str, ...]) -> list[tuple[Path, str]]:
    """The leftovers beside ``path`` (see :func:`leftover_path`) of processes that were
    killed, each with its kind, oldest name first.

    One rule for every writer: a leftover of this machine is a killed process's once its
    process is gone (its id names no process, or names this one, which started after it); a
    leftover of another machine sharing the folder (or of a version that did not name the
    machine, ``.<name>.<pid>.<kind>``) once it is :data:`_LEFT_AGE` old, since its process
    cannot be seen from here and no write lasts that long. Names of other files (``a.b``'s
    leftovers beside ``a``) do not parse: the part before ``@`` must be a process id.

    Raises:
        OSError: the folder cannot be listed.
    """
    found = []
    for left in sorted(path.parent.glob(f".{glob.escape(path.name)}.*")):
        middle, _, kind = left.name[len(path.name) + 2 :].rpartition(".")
        pid, at, host = middle.partition("@")
        if kind not in kinds or not pid.isdigit() or "." in host:
            continue
        gone = False
        if at and host == _HOST:
            gone = not process_alive(int(pid))
        else:
            with contextlib.suppress(OSError):  # removed meanwhile
                gone = time.time() - left.lstat().st_mtime > _LEFT_AGE
        if gone:
            found.append((left, kind))
    return found


def _discard(tmp: Path) -> None:
    with contextlib.suppress(OSError):  # the folder itself is unwritable: nothing was left
        tmp.unlink(missing_ok=True)
        tmp.parent.rmdir()
