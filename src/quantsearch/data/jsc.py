"""The jet substructure classification (JSC) dataset: 16 features, 5 classes (g, q, W, Z, t).

Read from the files users actually have, detected by content and suffix:

- MASE's HDF5 file ``processed-pythia82-lhc13-all-pt1-50k-r1_h022_e0175_t220_nonu_truth.z``: a
  compound (named-column) dataset at key ``t_allpar_new``, read with h5py as MASE's
  ``chop.dataset.physical.jsc`` does, labels one-hot in ``j_g, j_q, j_w, j_z, j_t``.
- The OpenML table ``hls4ml_lhc_jets_hlf`` (dataset 42468) used by hls4ml, as ``.csv`` or
  ``.arff``: the same 16 features without the ``j_`` prefix and a ``class`` column of
  ``g, q, w, z, t`` labels.

Preprocessing follows MASE (drop duplicate rows; 80/20 train/test split with
``random_state=42``, not stratified, so the test split is MASE's test split), with one fix: MASE
evaluated "validation" on its training data, so here a validation split is carved out of the
training 80% (``val_fraction`` of it, 0.1 by default, seeded by the config seed and stratified).
The ``StandardScaler`` is fit on the training split only. Class indices are in MASE's order
(g, q, w, z, t) for every file format, so a checkpoint trained on one reads the other.

The preparation imports neither scikit-learn nor, for MASE's HDF5 file and ARFF, pandas
(together about as long as importing torch): the file is read into numpy
(:mod:`quantsearch.data.jsc_read`; OpenML's CSV still through pandas' reader), and
scikit-learn's ``train_test_split`` draws and ``StandardScaler`` are reproduced in numpy
(:mod:`quantsearch.data.shuffle_split`, :mod:`quantsearch.data.scaling`), giving the same
splits bit for bit (``tests/data/test_jsc_referee.py``: pandas and scikit-learn as referee).

The prepared splits are kept in a cache file (:mod:`quantsearch.data.cache`), keyed by the
file's resolved path, size, modification and status-change times and inode, the seed and
``val_fraction``: a repeated search on the same file skips reading it.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np

from quantsearch.data.cache import cache_file, cached_splits, standardized
from quantsearch.data.jsc_read import CLASS_NAMES, FEATURES, HDF5_KEY, LABELS, read_jsc
from quantsearch.data.registry import DATASETS
from quantsearch.data.shuffle_split import shuffle_split, stratified_shuffle_split
from quantsearch.data.splits import DataSplits
from quantsearch.errors import ConfigError, DataError
from quantsearch.paths import check_path_text, not_a_file

__all__ = ["CLASS_NAMES", "ENV_VAR", "FEATURES", "HDF5_KEY", "LABELS", "load_jsc", "read_jsc"]

ENV_VAR = "QUANTSEARCH_JSC_PATH"
TEST_FRACTION = 0.2  # MASE's split: train_test_split(test_size=0.2, random_state=42)
TEST_SEED = 42

_OPTIONS = {"path", "val_fraction"}
_WHERE = (
    "get MASE's HDF5 file from https://cernbox.cern.ch/index.php/s/jvFd5MoWhGs1l5v/download "
    "or the OpenML table hls4ml_lhc_jets_hlf (dataset 42468) as CSV or ARFF from "
    "https://www.openml.org/d/42468"
)


@DATASETS.register("jsc")
def load_jsc(*, options: dict[str, Any], seed: int = 0, base_dir: Path | None = None) -> DataSplits:
    """Load JSC from ``data.path`` (or ``$QUANTSEARCH_JSC_PATH``) with MASE's preprocessing.

    Args:
        options: the ``[data]`` options: ``path`` (relative to ``base_dir``) and
            ``val_fraction`` (share of the training 80% held out for validation, default 0.1).
        seed: seeds the validation split; the test split always uses MASE's seed 42.
        base_dir: the config file's folder, for a relative ``path``.

    Raises:
        ConfigError: an unknown option, a bad ``val_fraction`` or no path at all.
        DataError: the file is missing, unreadable or lacks a column.
    """
    unknown = set(options) - _OPTIONS
    if unknown:
        raise ConfigError(
            f"data.{sorted(unknown)[0]}: got an unknown key, allowed: the keys of dataset 'jsc': "
            f"{sorted(_OPTIONS)}"
        )
    val_f = options.get("val_fraction", 0.1)
    if isinstance(val_f, bool) or not isinstance(val_f, (int, float)) or not 0 < val_f < 1:
        raise ConfigError(f"data.val_fraction: got {val_f!r}, allowed: a number in (0, 1)")
    path = _resolve_path(options, base_dir)
    cache = _cache_file(path, seed, float(val_f))
    try:
        train, val, test = cached_splits(cache, lambda: _prepare(path, seed, float(val_f)))
        _check_finite(path, (train.x, val.x, test.x))
    except DataError as exc:  # the readers name data.path: name where the path came from
        if "path" in options or not str(exc).startswith("data.path: "):
            raise
        raise DataError(f"{ENV_VAR}{str(exc).removeprefix('data.path')}") from None
    return DataSplits("jsc", train, val, test, len(CLASS_NAMES), CLASS_NAMES)


def _check_finite(path: Path, features: tuple[Any, ...]) -> None:
    """Refuse rows with NaN features (missing values): MASE's preprocessing keeps them (and so
    does :func:`_prepare`, byte for byte with its referee), but every metric of such a row is
    NaN, the loss and accuracy of a whole batch with it; a user loader's are refused alike."""
    nan = [x.isnan() for x in features]
    rows = sum(int(m.any(dim=1).sum()) for m in nan)
    if rows:
        cols = [c for i, c in enumerate(FEATURES) if any(bool(m[:, i].any()) for m in nan)]
        raise DataError(
            f"data.path: {str(path)!r} has {rows} row(s) with NaN features in {cols}, allowed: "
            "rows of numbers (drop or fill the missing values first)"
        )


def _cache_file(path: Path, seed: int, val_f: float) -> Path | None:
    st = path.stat()
    # The status change time and the inode as well as size and mtime: `cp -p`, `rsync -t`,
    # `tar x` and os.utime give another file the old mtime, but no call sets ctime back.
    stamp = f"{st.st_size}|{st.st_mtime_ns}|{st.st_ctime_ns}|{st.st_ino}"
    key = f"{path.resolve()}|{stamp}|{seed}|{val_f!r}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:24]
    # v2: the splits drawn without scikit-learn (the same arrays v1 held), so no version in it
    return cache_file(f"jsc-v2-{digest}.npz")


def _prepare(path: Path, seed: int, val_f: float) -> dict[str, np.ndarray]:
    """MASE's preprocessing of the file (module docstring): the six arrays of the splits."""
    x, y = read_jsc(path)
    try:
        i_tv, i_test = shuffle_split(len(y), TEST_FRACTION, TEST_SEED)
    except ValueError:
        raise DataError(
            f"data.path: {str(path)!r} has {len(y)} distinct row(s), too few for MASE's "
            f"80/20 train/test split"
        ) from None
    x_tv, y_tv = x[i_tv], y[i_tv]
    try:
        i_train, i_val = stratified_shuffle_split(y_tv, val_f, seed)
    except ValueError as exc:
        raise DataError(
            f"data: cannot carve a stratified validation split from JSC: {exc}"
        ) from None
    return standardized(
        (x_tv[i_train], y_tv[i_train]), (x_tv[i_val], y_tv[i_val]), (x[i_test], y[i_test])
    )


def _resolve_path(options: dict[str, Any], base_dir: Path | None) -> Path:
    raw = options.get("path")
    key = "data.path"
    if raw is None:
        raw, key = os.environ.get(ENV_VAR) or None, ENV_VAR
    if raw is None:
        raise ConfigError(
            f"data.path: got no value, allowed: the path of the JSC data (or set {ENV_VAR}); "
            f"{_WHERE}"
        )
    if not isinstance(raw, str):
        raise ConfigError(f"data.path: got {raw!r}, allowed: a string")
    p = Path(raw).expanduser()
    if not p.is_absolute() and base_dir is not None and key == "data.path":
        p = base_dir / p
    check_path_text(str(p), key)  # a name past 255 bytes: is_file() raises OSError
    if not p.is_file():  # a folder or a FIFO "did not exist"
        odd = not_a_file(p)
        raise DataError(
            f"{key}: got {str(p)!r}, which {f'is {odd}' if odd else 'does not exist'}, allowed: "
            f"the JSC data file; {_WHERE}"
        )
    if not os.access(p, os.R_OK):  # the first open() was a PermissionError traceback
        raise DataError(
            f"{key}: JSC file {str(p)!r} is not readable, allowed: a file this user may read"
        )
    return p
