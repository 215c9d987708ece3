"""scikit-learn's bundled 8x8 handwritten digits (1,797 real samples, no download).

Importing scikit-learn takes over a second, more than a whole 16-trial search on this data, so
the prepared splits are kept in a small cache file (:mod:`quantsearch.data.cache`), keyed
by scikit-learn's version, the seed and the fractions. A cache hit gives the very same tensors;
an unwritable cache folder only costs the import. ``QUANTSEARCH_CACHE_DIR=""`` turns the cache
off.
"""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import torch

from quantsearch.data.cache import cache_file, read_arrays, write_arrays
from quantsearch.data.registry import DATASETS
from quantsearch.data.splits import DataSplits, Split
from quantsearch.errors import ConfigError
from quantsearch.validate import get_float

_OPTIONS = {"val_fraction", "test_fraction"}


@DATASETS.register("digits")
def load_digits(
    *, options: dict[str, Any], seed: int = 0, base_dir: Path | None = None
) -> DataSplits:
    """Standardised digits with a seeded, stratified train/validation/test split (60/20/20).

    The scaler is fit on the training split only, so no statistic leaks from evaluation data.
    """
    unknown = set(options) - _OPTIONS
    if unknown:
        raise ConfigError(
            f"unknown key data.{sorted(unknown)[0]} for dataset 'digits' (allowed: "
            f"{sorted(_OPTIONS)})"
        )
    val_f = get_float(options, "val_fraction", "data", 0.2)
    test_f = get_float(options, "test_fraction", "data", 0.2)
    assert val_f is not None and test_f is not None
    if not (0 < val_f < 1 and 0 < test_f < 1 and val_f + test_f < 1):
        raise ConfigError(
            f"data.val_fraction and data.test_fraction must be in (0, 1) and sum below 1 "
            f"(got {val_f} and {test_f})"
        )
    cache = _cache_file(seed, val_f, test_f)
    arrays = read_arrays(cache, _KEYS) if cache is not None else None
    if arrays is None:
        arrays = _prepare(seed, val_f, test_f)
        if cache is not None:
            write_arrays(cache, arrays)
    train, val, test = (
        Split(torch.from_numpy(arrays[f"x_{s}"]), torch.from_numpy(arrays[f"y_{s}"]))
        for s in _SPLITS
    )
    return DataSplits("digits", train, val, test, 10, tuple(str(i) for i in range(10)))


_SPLITS = ("train", "val", "test")
_KEYS = {f"{a}_{s}" for a in ("x", "y") for s in _SPLITS}


def _cache_file(seed: int, val_f: float, test_f: float) -> Path | None:
    return cache_file(
        f"digits-v1-sklearn{version('scikit-learn')}-seed{seed}-val{val_f}-test{test_f}.npz"
    )


def _prepare(seed: int, val_f: float, test_f: float) -> dict[str, np.ndarray]:
    from sklearn.datasets import load_digits as sk_load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    bunch = sk_load_digits()
    x, y = bunch.data.astype(np.float32), bunch.target.astype(np.int64)
    x_rest, x_test, y_rest, y_test = train_test_split(
        x, y, test_size=test_f, stratify=y, random_state=seed
    )
    x_train, x_val, y_train, y_val = train_test_split(
        x_rest, y_rest, test_size=val_f / (1 - test_f), stratify=y_rest, random_state=seed
    )
    scaler = StandardScaler().fit(x_train)
    out: dict[str, np.ndarray] = {}
    for name, a, b in (
        ("train", x_train, y_train),
        ("val", x_val, y_val),
        ("test", x_test, y_test),
    ):
        out[f"x_{name}"] = scaler.transform(a).astype(np.float32)
        out[f"y_{name}"] = b
    return out
