"""Reading a JSC file into numpy: its 16 features, its labels, duplicate rows dropped.

MASE's HDF5 file is read with h5py straight into numpy, OpenML's ARFF with scipy's reader; a
CSV still goes through pandas' reader, whose type inference, missing-value tokens and float
parsing the loader keeps: pandas 3.1 parses a plain number correctly rounded (fast_float), as
``float()`` does, but earlier versions, which the dependencies allow (pandas >= 2.0), keep 17
digits and scale by powers of ten, so the bits of a pandas-free reader would match some users'
pandas and not others'. Duplicate rows are dropped as pandas' ``drop_duplicates()`` does
(:func:`first_occurrences`).

Example:
    >>> feature, label = np.array([0.0, -0.0, np.nan, -np.nan]), np.array([1, 1, 2, 2])
    >>> first_occurrences(np.column_stack([row_key(feature), label]))
    array([0, 2])
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from quantsearch.errors import DataError

__all__ = [
    "CLASS_NAMES",
    "FEATURES",
    "HDF5_KEY",
    "LABELS",
    "first_occurrences",
    "read_jsc",
    "row_key",
]

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
_WANTED = {*FEATURES, *(c.removeprefix("j_") for c in FEATURES)}  # OpenML drops the j_


def read_jsc(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """The deduplicated features ``(n, 16)`` (float64) and labels ``(n,)`` of a JSC file.

    Labels index :data:`CLASS_NAMES` (MASE's order g, q, w, z, t) whatever the file format.

    Raises:
        DataError: the format is unknown, a column or label is missing or invalid, or a
            feature is infinite.
    """
    p = Path(path)
    name = p.name.lower()
    if _is_hdf5(p):
        columns, y = _read_hdf5(p)
    elif name.endswith(".arff"):
        columns, y = _read_arff(p)
    elif name.endswith((".csv", ".csv.gz")):
        columns, y = _read_csv(p)
    else:
        raise DataError(
            f"data.path: {str(p)!r} is not a JSC file this loader reads (MASE's HDF5 file, or "
            f"OpenML's table as .csv or .arff)"
        )
    keep = first_occurrences(np.column_stack([*map(row_key, columns), y]))  # as MASE does
    x = np.column_stack([c.astype(np.float64) for c in columns])[keep]
    infinite = [c for c, col in zip(FEATURES, x.T, strict=True) if np.isinf(col).any()]
    if infinite:
        raise DataError(f"data.path: {str(p)!r} has infinite values in {infinite}")
    return x, y[keep]


def first_occurrences(keys: np.ndarray) -> np.ndarray:
    """The rows of ``keys`` (2-D) seen for the first time, in order: what pandas'
    ``drop_duplicates(keep="first")`` keeps. Rows are compared by their bytes, so float
    columns must be keyed first (:func:`row_key`)."""
    rows = np.ascontiguousarray(keys)
    as_bytes = rows.view(np.dtype((np.void, rows.dtype.itemsize * rows.shape[1]))).ravel()
    _, first = np.unique(as_bytes, return_index=True)
    return np.sort(first)


def row_key(column: np.ndarray) -> np.ndarray:
    """A column as int64 keys equal where pandas' duplicate detection finds values equal: a
    float's bits with -0.0 as 0.0 and every NaN as one NaN; an integer as itself."""
    if column.dtype.kind != "f":
        return column.astype(np.int64)
    values = column.astype(np.float64) + 0.0  # -0.0 + 0.0 is 0.0
    values[np.isnan(values)] = np.nan
    return values.view(np.int64)


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


def _read_hdf5(p: Path) -> tuple[list[np.ndarray], np.ndarray]:
    try:
        import h5py  # an optional extra: only HDF5 users need it
    except ImportError:
        raise DataError(
            f"data.path: {str(p)!r} is HDF5, which needs h5py: pip install 'quantsearch[jsc]'"
        ) from None

    try:
        f = h5py.File(p, "r")
    except OSError as exc:  # the HDF5 signature, then damage (a truncated download)
        raise DataError(f"data.path: {str(p)!r} is not a readable HDF5 file: {exc}") from None
    with f:
        if HDF5_KEY not in f:
            raise DataError(f"data.path: {str(p)!r} has no key {HDF5_KEY!r} (keys: {sorted(f)})")
        obj = f[HDF5_KEY]
        if not isinstance(obj, h5py.Dataset) or obj.dtype.names is None:
            raise DataError(
                f"data.path: {str(p)!r}[{HDF5_KEY!r}] is not a table with named columns, as "
                f"MASE's file has"
            )
        table = obj[()]
    missing = [c for c in (*FEATURES, *LABELS) if c not in table.dtype.names]
    if missing:
        raise DataError(f"data.path: {str(p)!r}[{HDF5_KEY!r}] lacks column(s) {missing}")
    # MASE's columns are numbers; text there was a ValueError traceback, a NaN among the one-hot
    # labels argmax's pick (a class of its own choosing)
    text = [c for c in (*FEATURES, *LABELS) if table.dtype[c].kind not in "fiub"]
    if text:
        raise DataError(
            f"data.path: {str(p)!r}[{HDF5_KEY!r}] has column(s) of {table.dtype[text[0]]} "
            f"values, not numbers: {text}"
        )
    one_hot = np.stack([table[c] for c in LABELS], axis=1)
    if not np.isfinite(one_hot).all():
        bad = [c for c in LABELS if not np.isfinite(table[c]).all()]
        raise DataError(f"data.path: {str(p)!r} has NaN or infinite labels in {bad}")
    # MASE: torch.max(one_hot, 1)[1]
    labels = one_hot.argmax(axis=1).astype(np.int64)
    return [np.ascontiguousarray(table[c]) for c in FEATURES], labels


def _read_csv(p: Path) -> tuple[list[np.ndarray], np.ndarray]:
    import pandas as pd  # its reader's float parsing and NA rules are the CSV format here

    try:
        table = pd.read_csv(p)
    except Exception as exc:
        raise DataError(f"data.path: cannot read {str(p)!r} as CSV: {exc}") from None
    columns = {
        c: pd.to_numeric(table[c], errors="coerce").to_numpy(np.float64)
        for c in table.columns
        if c in _WANTED
    }
    labels = None
    if "class" in table:
        labels = table["class"].astype(str).str.strip(" '\"").str.lower().str.removeprefix("j_")
    return _named_columns(columns, None if labels is None else labels.tolist(), p)


def _read_arff(p: Path) -> tuple[list[np.ndarray], np.ndarray]:
    from scipy.io import arff

    try:
        records, _ = arff.loadarff(p)
    except Exception as exc:
        why = str(exc) or type(exc).__name__  # scipy's ParseArffError can say nothing
        raise DataError(f"data.path: cannot read {str(p)!r} as ARFF: {why}") from None
    names = records.dtype.names or ()
    columns = {c: _numeric(records[c]) for c in names if c in _WANTED}
    labels = None
    if "class" in names:
        labels = [
            _decoded(v).strip(" '\"").lower().removeprefix("j_") for v in records["class"].tolist()
        ]
    return _named_columns(columns, labels, p)


def _decoded(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _numeric(column: np.ndarray) -> np.ndarray:
    """A column as float64; a value that is not a number becomes NaN (pandas' ``to_numeric``
    with ``errors="coerce"``)."""
    if column.dtype.kind in "fiub":
        return column.astype(np.float64)
    out = np.empty(len(column))
    for i, v in enumerate(column.tolist()):
        try:
            out[i] = float(_decoded(v))
        except ValueError:
            out[i] = np.nan
    return out


def _named_columns(
    table: dict[str, np.ndarray], labels: list[Any] | None, p: Path
) -> tuple[list[np.ndarray], np.ndarray]:
    """OpenML's layout (``zlogz`` ... ``multiplicity``, ``class`` labels normalised) to the 16
    feature columns in :data:`FEATURES`' order and labels indexing :data:`CLASS_NAMES`."""
    columns, missing = [], []
    for col in FEATURES:
        short = col.removeprefix("j_")
        src = col if col in table else short if short in table else None
        if src is None:
            missing.append(short)
        else:
            columns.append(table[src])
    if labels is None:
        missing.append("class")
    if missing:
        raise DataError(f"data.path: {str(p)!r} lacks column(s) {missing}")
    assert labels is not None
    bad = [c for c, col in zip(FEATURES, columns, strict=True) if np.isnan(col).any()]
    if bad:
        raise DataError(f"data.path: {str(p)!r} has missing or non-numeric values in {bad}")
    index = {name: i for i, name in enumerate(CLASS_NAMES)}
    unknown = sorted(set(labels) - set(index))
    if unknown:
        raise DataError(
            f"data.path: {str(p)!r} column 'class' has label(s) {unknown[:5]}; allowed: "
            f"{list(CLASS_NAMES)}"
        )
    return columns, np.array([index[v] for v in labels], dtype=np.int64)
