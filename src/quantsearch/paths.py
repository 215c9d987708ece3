"""Checks of the paths a user names: one line naming the key where a file system would raise.

A leaf module (it imports only :mod:`quantsearch.errors`): every command, section parser and
loader checks the paths it is given here, before any ``stat()`` that would raise (a NUL, a
name past 255 bytes) and before any work that a bad output path would waste.

Example:
    >>> too_long("runs/good") is None
    True
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

from quantsearch.errors import ConfigError

__all__ = [
    "CONTROL",
    "NAME_BYTES",
    "PATH_BYTES",
    "check_in_the_way",
    "check_path_text",
    "not_a_file",
    "output_file",
    "too_long",
    "writable_dir",
]

# Bytes of one name in a path, and of a whole path: Linux's NAME_MAX and PATH_MAX (less the
# NUL); past them every stat() raises OSError (ENAMETOOLONG) instead of answering
NAME_BYTES, PATH_BYTES = 255, 4095
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")  # bidi too


def not_a_file(path: Path) -> str | None:
    """What stands at ``path`` where a file or nothing belongs (a folder, a FIFO ...), or None.

    Example:
        >>> not_a_file(Path("."))
        'a folder'
    """
    if path.is_symlink() and not path.exists():
        return "a link to nothing"
    if path.exists() and not path.is_file():
        return "a folder" if path.is_dir() else "not a regular file"
    return None


def check_in_the_way(
    folder: Path, key: str, files: Iterable[str], folders: Iterable[str] = (), *, writer: str
) -> None:
    """Refuse, in one line naming ``key``, a folder where one of ``files`` goes or a file where
    one of ``folders`` goes (under ``folder``), or a link to nothing at either: what ``writer``
    writes there would fail part way, after its work (or be written wherever the link points).

    Example:
        >>> check_in_the_way(Path("."), "RUN_DIR", [], ["paths.py"], writer="a search")
        >>> check_in_the_way(Path("."), "RUN_DIR", ["."], writer="a search")
        Traceback (most recent call last):
        ...
        quantsearch.errors.ConfigError: RUN_DIR: got '.' (a folder), allowed: the . a search writes there, or none; move it away
    """
    kinds = [(n, not_a_file(folder / n)) for n in files]
    for n in folders:
        p = folder / n
        gone = p.is_symlink() and not p.exists()
        kinds.append((n, "a link to nothing" if gone else "a file" if p.is_file() else None))
    for name, what in kinds:
        if what is not None:
            raise ConfigError(
                f"{key}: got {str(folder / name)!r} ({what}), allowed: the {name} {writer} "
                "writes there, or none; move it away"
            )


def too_long(value: str) -> str | None:
    """What makes ``value`` too long for a path, in words, else ``None``.

    Example:
        >>> too_long("runs/" + "a" * 300)
        "a name of 300 bytes ('aaaaaaaaaaaaaaaa'...)"
    """
    size = len(value.encode(errors="surrogateescape"))
    if size > PATH_BYTES:
        return f"a path of {size} bytes"
    for name in value.split(os.sep):
        size = len(name.encode(errors="surrogateescape"))
        if size > NAME_BYTES:
            return f"a name of {size} bytes ({name[:16]!r}...)"
    return None


def check_path_text(value: str, key: str) -> None:
    """Refuse a path no file system takes, in one line naming ``key``: control characters (a
    NUL makes stat() raise ValueError; a newline is a paste slip, never a request) or a name
    past :data:`NAME_BYTES` (stat() raises OSError).

    Example:
        >>> check_path_text("a" * 256, "--out")
        Traceback (most recent call last):
        ...
        quantsearch.errors.ConfigError: --out: got a name of 256 bytes ('aaaaaaaaaaaaaaaa'...), allowed: names of at most 255 bytes and paths of at most 4095 (the file system's limits)
    """
    if CONTROL.search(value):
        raise ConfigError(
            f"{key}: got {value!r}, allowed: a path without control characters (NUL, newline, ...)"
        )
    what = too_long(value)
    if what is not None:
        raise ConfigError(
            f"{key}: got {what}, allowed: names of at most {NAME_BYTES} bytes and paths of at "
            f"most {PATH_BYTES} (the file system's limits)"
        )


def writable_dir(path: Path, key: str) -> Path:
    """``path`` if it is, or can be made, a folder this process may write in.

    Checked before anything is written, so a run directory that is a file, lies under a file
    or is read-only is refused in one line naming ``key`` (``--run-dir``, ``run_dir``).
    """
    if not str(path).strip() or str(path) == "-":  # '-' made a folder named '-'
        raise ConfigError(f"{key}: got {str(path)!r}, allowed: a folder, or a path to make one at")
    check_path_text(str(path), key)  # before any stat(), which would raise
    probe = path
    while not probe.exists() and probe != probe.parent:
        if probe.is_symlink():  # mkdir would fail on it with a traceback
            raise ConfigError(
                f"{key}: got {str(path)!r} ({str(probe)!r} is a link to nothing), allowed: a "
                "folder or a path to make one at"
            )
        probe = probe.parent
    if not probe.is_dir():
        what = "a file" if probe.is_file() else "neither a file nor a folder (a FIFO, a device)"
        raise ConfigError(
            f"{key}: got {str(path)!r} ({str(probe)!r} is {what}), allowed: a folder, or a path "
            "to make one at"
        )
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ConfigError(
            f"{key}: got {str(path)!r} (folder {str(probe)!r} is not writable), allowed: a "
            "folder this user may write in"
        )
    return path


def output_file(value: str, key: str) -> Path:
    """``value`` as the path of a file this command may write: not empty, not a folder, in a
    folder this process may write in (made when missing). Checked before any work, so a bad
    ``--out`` costs nothing and leaves what is there as it was.

    Example:
        >>> output_file("", "--out")
        Traceback (most recent call last):
        ...
        quantsearch.errors.ConfigError: --out: got '', allowed: a file name
    """
    path = Path(value)
    if not value.strip() or path.name in ("", "-") or value.endswith(("/", os.sep)):
        raise ConfigError(f"{key}: got {value!r}, allowed: a file name")
    check_path_text(value, key)
    writable_dir(path.parent, key)
    what = not_a_file(path)  # a FIFO or a dangling link would be replaced after the work
    if what is not None:
        raise ConfigError(f"{key}: got {value!r} ({what}), allowed: a file name")
    return path
