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

The prepared splits are kept in a cache file (:mod:`quantsearch.data.cache`), keyed by the
file's resolved path, size and modification time, scikit-learn's version, the seed and
``val_fraction``: a repeated search on the same file skips reading it and importing
scikit-learn and pandas (together about as long as importing torch).
"""

from __future__ import annotations

import hashlib
import os
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np

from quantsearch.data.cache import cache_file, cached_splits, standardized
from quantsearch.data.registry import DATASETS
from quantsearch.data.splits import DataSplits
from quantsearch.errors import ConfigError, DataError

__all__ = ["CLASS_NAMES", "ENV_VAR", "FEATURES", "HDF5_KEY", "LABELS", "load_jsc", "read_jsc"]

# MASE's JSC_CONFIG["Inputs"] and ["Labels"], in MASE's order.
FEATURES = (
    "j_zlogz",
    "j_c1_b0_mmdt",
    "j_c1_b1_mmdt",
    "j_c1_b2_mmdt",
    "j_c2_b1_mmdt",
    "j_c2_b2_mmdt",
    "j_d2_b1_mmdt",
    "j_d2_b2_mmdt",
    "j_d2_a1_b1_mmdt",
    "j_d2_a1_b2_mmdt",
    "j_m2_b1_mmdt",
    "j_m2_b2_mmdt",
    "j_n2_b1_mmdt",
    "j_n2_b2_mmdt",
    "j_mass_mmdt",
    "j_multiplicity",
)
LABELS = ("j_g", "j_q", "j_w", "j_z", "j_t")
CLASS_NAMES = ("g", "q", "w", "z", "t")
HDF5_KEY = "t_allpar_new"
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
            f"unknown key data.{sorted(unknown)[0]} for dataset 'jsc' (allowed: {sorted(_OPTIONS)})"
        )
    val_f = options.get("val_fraction", 0.1)
    if isinstance(val_f, bool) or not isinstance(val_f, (int, float)) or not 0 < val_f < 1:
        raise ConfigError(f"data.val_fraction must be a number in (0, 1) (got {val_f!r})")
    path = _resolve_path(options, base_dir)
    cache = _cache_file(path, seed, float(val_f))
    train, val, test = cached_splits(cache, lambda: _prepare(path, seed, float(val_f)))
    return DataSplits("jsc", train, val, test, len(CLASS_NAMES), CLASS_NAMES)


def _cache_file(path: Path, seed: int, val_f: float) -> Path | None:
    st = path.stat()
    # The status change time and the inode as well as size and mtime: `cp -p`, `rsync -t`,
    # `tar x` and os.utime give another file the old mtime, but no call sets ctime back.
    stamp = f"{st.st_size}|{st.st_mtime_ns}|{st.st_ctime_ns}|{st.st_ino}"
    key = f"{path.resolve()}|{stamp}|{seed}|{val_f!r}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:24]
    return cache_file(f"jsc-v1-sklearn{version('scikit-learn')}-{digest}.npz")


def _prepare(path: Path, seed: int, val_f: float) -> dict[str, np.ndarray]:
    """MASE's preprocessing of the file (module docstring): the six arrays of the splits."""
    from sklearn.model_selection import train_test_split

    x, y = read_jsc(path)
    x_tv, x_test, y_tv, y_test = train_test_split(
        x, y, test_size=TEST_FRACTION, random_state=TEST_SEED
    )
    try:
        x_train, x_val, y_train, y_val = train_test_split(
            x_tv, y_tv, test_size=val_f, stratify=y_tv, random_state=seed
        )
    except ValueError as exc:
        raise DataError(
            f"data: cannot carve a stratified validation split from JSC: {exc}"
        ) from None
    return standardized((x_train, y_train), (x_val, y_val), (x_test, y_test))


def _resolve_path(options: dict[str, Any], base_dir: Path | None) -> Path:
    raw = options.get("path")
    key = "data.path"
    if raw is None:
        raw, key = os.environ.get(ENV_VAR) or None, ENV_VAR
    if raw is None:
        raise ConfigError(f"data.path is required for dataset 'jsc' (or set {ENV_VAR}); {_WHERE}")
    if not isinstance(raw, str):
        raise ConfigError(f"data.path must be a string (got {raw!r})")
    p = Path(raw).expanduser()
    if not p.is_absolute() and base_dir is not None and key == "data.path":
        p = base_dir / p
    if not p.is_file():
        raise DataError(f"{key}: JSC file {str(p)!r} does not exist; {_WHERE}")
    return p


def read_jsc(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """The deduplicated features ``(n, 16)`` (float64) and labels ``(n,)`` of a JSC file.

    Labels index :data:`CLASS_NAMES` (MASE's order g, q, w, z, t) whatever the file format.

    Raises:
        DataError: the format is unknown or a column or label is missing or invalid.
    """
    p = Path(path)
    name = p.name.lower()
    if _is_hdf5(p):
        frame = _read_hdf5(p)
    elif name.endswith(".arff"):
        frame = _read_arff(p)
    elif name.endswith((".csv", ".csv.gz")):
        frame = _read_csv(p)
    else:
        raise DataError(
            f"data.path: {str(p)!r} is not a JSC file this loader reads (MASE's HDF5 file, or "
            f"OpenML's table as .csv or .arff)"
        )
    frame = frame.drop_duplicates()  # as MASE does, over the 16 features and the label
    return frame[list(FEATURES)].to_numpy(np.float64), frame["label"].to_numpy(np.int64)


def _is_hdf5(p: Path) -> bool:
    """HDF5's signature, at one of the offsets its superblock may take (0, 512, 1024, ...)."""
    if not p.is_file():
        return False
    with p.open("rb") as fh:
        for offset in (0, *(512 << k for k in range(12))):
            fh.seek(offset)
            head = fh.read(8)
            if len(head) < 8:
                return False
            if head == b"\x89HDF\r\n\x1a\n":
                return True
    return False


def _read_hdf5(p: Path) -> Any:
    import pandas as pd

    try:
        import h5py  # an optional extra: only HDF5 users need it
    except ImportError:
        raise DataError(
            f"data.path: {str(p)!r} is HDF5, which needs h5py: pip install 'quantsearch[jsc]'"
        ) from None

    with h5py.File(p, "r") as f:
        if HDF5_KEY not in f:
            raise DataError(f"data.path: {str(p)!r} has no key {HDF5_KEY!r} (keys: {sorted(f)})")
        obj = f[HDF5_KEY]
        if not isinstance(obj, h5py.Dataset) or obj.dtype.names is None:
            raise DataError(
                f"data.path: {str(p)!r}[{HDF5_KEY!r}] is not a table with named columns, as "
                f"MASE's file has"
            )
        table = obj[()]
    columns = set(table.dtype.names)
    missing = [c for c in (*FEATURES, *LABELS) if c not in columns]
    if missing:
        raise DataError(f"data.path: {str(p)!r}[{HDF5_KEY!r}] lacks column(s) {missing}")
    frame = pd.DataFrame({c: table[c] for c in FEATURES})
    one_hot = np.stack([table[c] for c in LABELS], axis=1)
    frame["label"] = one_hot.argmax(axis=1)  # MASE: torch.max(one_hot, 1)[1]
    return frame


def _read_csv(p: Path) -> Any:
    import pandas as pd

    try:
        table = pd.read_csv(p)
    except Exception as exc:
        raise DataError(f"data.path: cannot read {str(p)!r} as CSV: {exc}") from None
    return _from_named_table(table, p)


def _read_arff(p: Path) -> Any:
    import pandas as pd
    from scipy.io import arff

    try:
        records, _ = arff.loadarff(p)
    except Exception as exc:
        raise DataError(f"data.path: cannot read {str(p)!r} as ARFF: {exc}") from None
    table = pd.DataFrame(records)
    if "class" in table and table["class"].dtype == object:
        table["class"] = table["class"].map(lambda v: v.decode() if isinstance(v, bytes) else v)
    return _from_named_table(table, p)


def _from_named_table(table: Any, p: Path) -> Any:
    """OpenML's layout (``zlogz`` ... ``multiplicity``, ``class``) to canonical columns."""
    import pandas as pd

    out = pd.DataFrame()
    missing = []
    for col in FEATURES:
        short = col.removeprefix("j_")
        src = col if col in table else short if short in table else None
        if src is None:
            missing.append(short)
        else:
            out[col] = pd.to_numeric(table[src], errors="coerce")
    if "class" not in table:
        missing.append("class")
    if missing:
        raise DataError(f"data.path: {str(p)!r} lacks column(s) {missing}")
    if out.isna().any().any():
        bad = [c for c in FEATURES if out[c].isna().any()]
        raise DataError(f"data.path: {str(p)!r} has missing or non-numeric values in {bad}")
    labels = table["class"].astype(str).str.strip(" '\"").str.lower().str.removeprefix("j_")
    index = {name: i for i, name in enumerate(CLASS_NAMES)}
    unknown = sorted(set(labels) - set(index))
    if unknown:
        raise DataError(
            f"data.path: {str(p)!r} column 'class' has label(s) {unknown[:5]}; allowed: "
            f"{list(CLASS_NAMES)}"
        )
    out["label"] = labels.map(index).to_numpy(np.int64)
    return out
