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

from quantsearch.data.cache import cache_file, cached_splits, standardized
from quantsearch.data.registry import DATASETS
from quantsearch.data.splits import DataSplits
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
            f"data.{sorted(unknown)[0]}: got an unknown key, allowed: the keys of dataset "
            f"'digits': {sorted(_OPTIONS)}"
        )
    val_f = get_float(options, "val_fraction", "data", 0.2)
    test_f = get_float(options, "test_fraction", "data", 0.2)
    assert val_f is not None and test_f is not None
    if not (0 < val_f < 1 and 0 < test_f < 1 and val_f + test_f < 1):
        raise ConfigError(
            f"data.val_fraction, data.test_fraction: got {val_f} and {test_f}, allowed: each in "
            "(0, 1), summing below 1"
        )
    cache = _cache_file(seed, val_f, test_f)
    train, val, test = cached_splits(cache, lambda: _prepare(seed, val_f, test_f))
    return DataSplits("digits", train, val, test, 10, tuple(str(i) for i in range(10)))


def _cache_file(seed: int, val_f: float, test_f: float) -> Path | None:
    return cache_file(
        f"digits-v1-sklearn{version('scikit-learn')}-seed{seed}-val{val_f}-test{test_f}.npz"
    )


def _prepare(seed: int, val_f: float, test_f: float) -> dict[str, np.ndarray]:
    from sklearn.datasets import load_digits as sk_load_digits
    from sklearn.model_selection import train_test_split

    bunch = sk_load_digits()
    x, y = bunch.data.astype(np.float32), bunch.target.astype(np.int64)
    try:
        x_rest, x_test, y_rest, y_test = train_test_split(
            x, y, test_size=test_f, stratify=y, random_state=seed
        )
        x_train, x_val, y_train, y_val = train_test_split(
            x_rest, y_rest, test_size=val_f / (1 - test_f), stratify=y_rest, random_state=seed
        )
    except ValueError as exc:  # a split too small to hold each of the 10 classes
        raise ConfigError(
            f"data.val_fraction, data.test_fraction: got {val_f} and {test_f}, allowed: "
            f"fractions that leave each split one sample of every class ({exc})"
        ) from None
    return standardized((x_train, y_train), (x_val, y_val), (x_test, y_test))
