"""Prepared dataset splits kept in a small cache file, so that a repeated command skips the
preparation (reading the file; for digits, importing scikit-learn, about as long as importing
torch).

The folder is ``$QUANTSEARCH_CACHE_DIR``, else ``$XDG_CACHE_HOME/quantsearch`` or
``~/.cache/quantsearch``; ``QUANTSEARCH_CACHE_DIR=""`` turns the cache off, and one that is (or
lies under) a file is refused in one line naming the variable. A hit gives the very arrays the
preparation made; a missing or damaged file is prepared again; an unwritable folder only costs
the preparation. The folder is kept small (:func:`prune`, after each write): the
files of a version of the preparation no longer read and writes a killed process left
half-done are removed, and past :data:`MAX_BYTES` the least recently used files go first (a
hit marks its file used).

Example:
    >>> import tempfile, numpy as np
    >>> path = Path(tempfile.mkdtemp()) / "example-v1.npz"
    >>> write_arrays(path, {"x": np.arange(3)})
    >>> read_arrays(path, {"x"})["x"].tolist(), read_arrays(path, {"y"}) is None
    ([0, 1, 2], True)
"""

from __future__ import annotations

import contextlib
import os
import re
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from quantsearch.atomic import process_alive
from quantsearch.data.scaling import apply_standard, fit_standard
from quantsearch.data.splits import Split
from quantsearch.errors import ConfigError
from quantsearch.paths import check_path_text

__all__ = [
    "MAX_BYTES",
    "cache_file",
    "cached_splits",
    "prune",
    "read_arrays",
    "standardized",
    "write_arrays",
]

SPLITS = ("train", "val", "test")
KEYS = {f"{a}_{s}" for a in ("x", "y") for s in SPLITS}
MAX_BYTES = 2**30  # the folder's files past this go, least recently used first
# The names this module's callers give (``<dataset>-v<version>-<key>.npz``), the versions no
# longer read (jsc-v1: the splits drawn through scikit-learn, replaced by jsc-v2's same arrays)
# and the temporary name of a write in progress. Only such files are ever removed.
_OURS = re.compile(r"[a-z0-9_]+-v[0-9]+-[^/]+\.npz")
_STALE = ("jsc-v1-",)
_PARTIAL = re.compile(r"[a-z0-9_]+-v[0-9]+-[^/]+\.npz\.(?P<pid>[0-9]+)\.tmp")
# Seconds: older than any write in progress. Its age is the wall clock's (it is compared with
# the file's modification time), which a clock set forward makes look old at once: the
# writer's process id (in its name) must also be gone from this machine (a writer on another
# machine sharing the folder looks gone: it is left the hour).
_PARTIAL_AGE = 3600.0


def cache_file(name: str) -> Path | None:
    """The cache file ``name`` (a key made by the caller), or ``None`` when the cache is off."""
    root, key = os.environ.get("QUANTSEARCH_CACHE_DIR"), "QUANTSEARCH_CACHE_DIR"
    if root == "":
        return None
    given = root
    if root is None:
        key = "XDG_CACHE_HOME" if os.environ.get("XDG_CACHE_HOME") else "HOME"
        given = os.environ.get("XDG_CACHE_HOME") or str(Path.home())
        root = str(Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "quantsearch")
    check_path_text(root, key)  # a name past 255 bytes: every stat() raised OSError
    probe = Path(root)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():  # a file there: the cache was silently off, each run prepared again
        raise ConfigError(
            f"{key}: got {given!r}, where {str(probe)!r} is not a folder (for the cache "
            f"{root!r}), allowed: a folder "
            "(made when missing), or QUANTSEARCH_CACHE_DIR='' for no cache"
        )
    return Path(root) / name


def read_arrays(path: Path, keys: set[str]) -> dict[str, np.ndarray] | None:
    """The arrays of ``path`` if it holds exactly ``keys``, else ``None`` (prepare again)."""
    try:
        with np.load(path) as f:
            arrays = {k: f[k] for k in f.files}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile):  # missing or damaged
        return None
    if set(arrays) != keys:
        return None
    with contextlib.suppress(OSError):  # used now: the last to go when the folder is pruned
        os.utime(path)
    return arrays


def write_arrays(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` to ``path`` atomically (concurrent workers never read half a file);
    an unwritable folder is skipped silently: the next run prepares them again."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tmp.open("wb") as fh:
            np.savez(fh, **arrays)  # type: ignore[arg-type]
        tmp.replace(path)
    except OSError:  # a full disk: no half file left behind
        _discard(tmp)
    except BaseException:  # Ctrl-C while writing: the same, and the interrupt goes on
        _discard(tmp)
        raise


def _discard(tmp: Path) -> None:
    with contextlib.suppress(OSError):
        tmp.unlink(missing_ok=True)


def cached_splits(
    path: Path | None, prepare: Callable[[], dict[str, np.ndarray]]
) -> tuple[Split, Split, Split]:
    """The train, validation and test splits kept in ``path`` (``None``: the cache is off), or
    ``prepare()``'s arrays (``x_train``, ``y_train``, ... :data:`KEYS`), written there first."""
    arrays = read_arrays(path, KEYS) if path is not None else None
    if arrays is None:
        arrays = prepare()
        if path is not None:
            write_arrays(path, arrays)
            prune(path.parent, keep=path)
    train, val, test = (
        Split(torch.from_numpy(arrays[f"x_{s}"]), torch.from_numpy(arrays[f"y_{s}"]))
        for s in SPLITS
    )
    return train, val, test


def prune(folder: Path, *, keep: Path | None = None, max_bytes: int = MAX_BYTES) -> list[Path]:
    """Remove from the cache ``folder`` the files of versions no longer read, writes left
    half-done more than an hour ago (a process killed while writing), then the least recently
    used files (by modification time, which a hit renews) until the rest fit in
    ``max_bytes``; never ``keep`` (the file just written) nor a file of another name than the
    cache's own. Returns the files removed; errors (a file another process removed, a
    read-only folder) only leave files behind.

    Example:
        >>> import tempfile, numpy as np
        >>> folder = Path(tempfile.mkdtemp())
        >>> for name in ("jsc-v1-old.npz", "jsc-v2-new.npz", "notes.txt"):
        ...     write_arrays(folder / name, {"x": np.arange(3)})
        >>> [p.name for p in prune(folder)], sorted(p.name for p in folder.iterdir())
        (['jsc-v1-old.npz'], ['jsc-v2-new.npz', 'notes.txt'])
    """
    removed: list[Path] = []
    now = time.time()
    kept: list[tuple[float, int, Path]] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        name = entry.name
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        path = Path(entry.path)
        if not entry.is_file(follow_symlinks=False) or path == keep:
            continue
        partial = _PARTIAL.fullmatch(name)
        if partial:
            if now - st.st_mtime > _PARTIAL_AGE and not process_alive(int(partial["pid"])):
                removed += _remove(path)
        elif _OURS.fullmatch(name):
            if name.startswith(_STALE):
                removed += _remove(path)
            else:
                kept.append((st.st_mtime, st.st_size, path))
    total = sum(size for _, size, _ in kept)
    if keep is not None:
        with contextlib.suppress(OSError):
            total += keep.stat().st_size
    for _, size, path in sorted(kept, key=lambda e: (e[0], e[2].name)):
        if total <= max_bytes:
            break
        gone = _remove(path)
        removed += gone
        if gone:
            total -= size
    return removed


def _remove(path: Path) -> list[Path]:
    try:
        path.unlink()
    except OSError:
        return []
    return [path]


def standardized(
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
) -> dict[str, np.ndarray]:
    """The splits' arrays (:data:`KEYS`), features standardised as scikit-learn's
    ``StandardScaler`` does, bit for bit (:mod:`quantsearch.data.scaling`), fit on the
    training split only (no statistic leaks from evaluation data), as float32."""
    fitted = fit_standard(train[0])
    out: dict[str, np.ndarray] = {}
    for name, (x, y) in zip(SPLITS, (train, val, test), strict=True):
        out[f"x_{name}"] = apply_standard(x, fitted).astype(np.float32)
        out[f"y_{name}"] = y
    return out
