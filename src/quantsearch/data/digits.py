"""scikit-learn's bundled 8x8 handwritten digits (1,797 real samples, no download)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from quantsearch.data import DATASETS, DataSplits, Split
from quantsearch.errors import ConfigError

_OPTIONS = {"val_fraction", "test_fraction"}


@DATASETS.register("digits")
def load_digits(
    *, options: dict[str, Any], seed: int = 0, base_dir: Path | None = None
) -> DataSplits:
    """Standardised digits with a seeded, stratified train/validation/test split (60/20/20).

    The scaler is fit on the training split only, so no statistic leaks from evaluation data.
    """
    from sklearn.datasets import load_digits as sk_load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    unknown = set(options) - _OPTIONS
    if unknown:
        raise ConfigError(
            f"data: unknown option(s) {sorted(unknown)} for 'digits'; allowed: {sorted(_OPTIONS)}"
        )
    val_f = float(options.get("val_fraction", 0.2))
    test_f = float(options.get("test_fraction", 0.2))
    if not (0 < val_f < 1 and 0 < test_f < 1 and val_f + test_f < 1):
        raise ConfigError(
            f"data.val_fraction and data.test_fraction must be in (0, 1) and sum below 1 "
            f"(got {val_f} and {test_f})"
        )
    bunch = sk_load_digits()
    x, y = bunch.data.astype(np.float32), bunch.target.astype(np.int64)
    x_rest, x_test, y_rest, y_test = train_test_split(
        x, y, test_size=test_f, stratify=y, random_state=seed
    )
    x_train, x_val, y_train, y_val = train_test_split(
        x_rest, y_rest, test_size=val_f / (1 - test_f), stratify=y_rest, random_state=seed
    )
    scaler = StandardScaler().fit(x_train)

    def split(a: np.ndarray, b: np.ndarray) -> Split:
        return Split(torch.from_numpy(scaler.transform(a).astype(np.float32)), torch.from_numpy(b))

    return DataSplits(
        "digits",
        split(x_train, y_train),
        split(x_val, y_val),
        split(x_test, y_test),
        10,
        tuple(str(i) for i in range(10)),
    )
