"""An export's output written whole or not at all: a folder built beside its final name, then
put in its place; a previous export of the same name is replaced only once the new one is whole.

``os.replace`` moves a folder onto a missing name atomically; an existing folder cannot be
swapped for another in one step (POSIX has no such call), so the previous one is first moved
aside to a hidden name beside it (``.<name>.<pid>@<host>.old``), the new one moved in, and the
old one removed. A ``kill -9`` between those two moves leaves the previous export under that
hidden name and no folder under ``name``: never half of one; the next export puts it back
first, and removes the staging folders of killed processes (which leftovers are a killed
process's: :func:`quantsearch.atomic.killed_leftovers`, the rule of every atomic write). A
folder that is not a previous export (any other files) is refused, never removed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from quantsearch.atomic import killed_leftovers, leftover_path, storage_error
from quantsearch.errors import ConfigError

__all__ = ["staged_folder"]


@contextmanager
def staged_folder(out: Path, *, is_project: Callable[[Path], bool]) -> Iterator[Path]:
    """A new empty folder beside ``out`` to write; it becomes ``out`` when the block ends.

    Args:
        out: the folder the export ends up in.
        is_project: whether an existing folder is a previous export (which may be replaced).

    Raises:
        ConfigError: ``out`` is a file, or a folder holding something else than an export.
        StorageError: a write failed (disk full, file too large, read-only); ``out`` is left
            as it was and the staging folder removed.

    Example:
        >>> import tempfile
        >>> out = Path(tempfile.mkdtemp()) / "prj"
        >>> with staged_folder(out, is_project=lambda p: (p / "a.txt").is_file()) as stage:
        ...     _ = (stage / "a.txt").write_text("new")
        >>> sorted(p.name for p in out.parent.iterdir()), (out / "a.txt").read_text()
        (['prj'], 'new')
    """
    out = Path(out)
    _recover(out)
    if out.exists() and not _replaceable(out, is_project):
        kind = "a file" if not out.is_dir() else "a folder that is not an export's"
        raise ConfigError(
            f"OUT: got {str(out)!r}, {kind}, allowed: a new folder or one a previous export wrote "
            f"(which is replaced)"
        )
    stage = leftover_path(out, "tmp")
    try:
        shutil.rmtree(stage, ignore_errors=True)  # left by a process of the same id, killed
        stage.mkdir(parents=True)
        yield stage
        _put_in_place(stage, out)
    except OSError as exc:
        shutil.rmtree(stage, ignore_errors=True)
        err = storage_error(out, exc)
        if err is None:
            raise
        raise err from None
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise


def _recover(out: Path) -> None:
    """Undo what killed exports left beside ``out``: a previous export moved aside goes back
    under its name (when nothing took it), a staging folder is removed."""
    with contextlib.suppress(OSError):
        for left, kind in killed_leftovers(out, ("tmp", "old")):
            if kind == "old" and not out.exists():
                os.replace(left, out)
            else:
                shutil.rmtree(left, ignore_errors=True)


def _replaceable(out: Path, is_project: Callable[[Path], bool]) -> bool:
    if not out.is_dir() or out.is_symlink():
        return False
    return is_project(out) or not any(out.iterdir())


def _put_in_place(stage: Path, out: Path) -> None:
    if not out.exists():
        os.replace(stage, out)
        return
    old = leftover_path(out, "old")
    shutil.rmtree(old, ignore_errors=True)
    os.replace(out, old)
    try:
        os.replace(stage, out)
    except OSError:
        with contextlib.suppress(OSError):
            os.replace(old, out)  # the previous export back under its name
        raise
    shutil.rmtree(old, ignore_errors=True)
