"""Prepared dataset splits kept in a small cache file, so that a repeated command skips the
preparation (reading the file; for digits, importing scikit-learn, about as long as importing
torch).

The folder is ``$QUANTSEARCH_CACHE_DIR``, else ``$XDG_CACHE_HOME/quantsearch`` or
``~/.cache/quantsearch``; ``QUANTSEARCH_CACHE_DIR=""`` turns the cache off. A hit gives the very
arrays the preparation made; a missing or damaged file is prepared again; an unwritable folder
only costs the preparation.

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
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from quantsearch.data.scaling import apply_standard, fit_standard
from quantsearch.data.splits import Split

__all__ = ["cache_file", "cached_splits", "read_arrays", "standardized", "write_arrays"]

SPLITS = ("train", "val", "test")
KEYS = {f"{a}_{s}" for a in ("x", "y") for s in SPLITS}


def cache_file(name: str) -> Path | None:
    """The cache file ``name`` (a key made by the caller), or ``None`` when the cache is off."""
    root = os.environ.get("QUANTSEARCH_CACHE_DIR")
    if root == "":
        return None
    if root is None:
        root = str(Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "quantsearch")
    return Path(root) / name


def read_arrays(path: Path, keys: set[str]) -> dict[str, np.ndarray] | None:
    """The arrays of ``path`` if it holds exactly ``keys``, else ``None`` (prepare again)."""
    try:
        with np.load(path) as f:
            arrays = {k: f[k] for k in f.files}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile):  # missing or damaged
        return None
    return arrays if set(arrays) == keys else None


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
    train, val, test = (
        Split(torch.from_numpy(arrays[f"x_{s}"]), torch.from_numpy(arrays[f"y_{s}"]))
        for s in SPLITS
    )
    return train, val, test


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
