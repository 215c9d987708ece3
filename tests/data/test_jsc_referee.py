"""The JSC preparation without pandas and scikit-learn against the referee, the preparation it
replaced: pandas' reading and ``drop_duplicates``, scikit-learn's ``train_test_split`` (MASE's
test split, then the stratified validation split) and ``StandardScaler``. The six arrays must
be the same bytes, or both must fail with the same line, over many generated files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
from scipy.io import arff
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from quantsearch.data import jsc
from quantsearch.data.jsc_read import (
    CLASS_NAMES,
    FEATURES,
    HDF5_KEY,
    LABELS,
    first_occurrences,
    row_key,
)
from quantsearch.errors import DataError
from tests.data.test_jsc import write_arff, write_csv

KEYS = [f"{a}_{s}" for s in ("train", "val", "test") for a in ("x", "y")]


# --- the referee: the previous preparation, pandas and scikit-learn ---------------------------


def _referee_frame(p: Path) -> pd.DataFrame:
    if p.suffix == ".z":
        with h5py.File(p, "r") as f:
            table = f[HDF5_KEY][()]
        frame = pd.DataFrame({c: table[c] for c in FEATURES})
        frame["label"] = np.stack([table[c] for c in LABELS], axis=1).argmax(axis=1)
        return frame
    if p.suffix == ".arff":
        table = pd.DataFrame(arff.loadarff(p)[0])
        table["class"] = table["class"].map(lambda v: v.decode())
    else:
        table = pd.read_csv(p)
    out = pd.DataFrame({c: pd.to_numeric(table[c.removeprefix("j_")]) for c in FEATURES})
    labels = table["class"].astype(str).str.strip(" '\"").str.lower().str.removeprefix("j_")
    out["label"] = labels.map({n: i for i, n in enumerate(CLASS_NAMES)}).to_numpy(np.int64)
    return out


def _referee(p: Path, seed: int, val_f: float) -> dict[str, np.ndarray] | str:
    frame = _referee_frame(p).drop_duplicates()
    x, y = frame[list(FEATURES)].to_numpy(np.float64), frame["label"].to_numpy(np.int64)
    x_tv, x_test, y_tv, y_test = train_test_split(x, y, test_size=0.2, random_state=42)
    try:
        x_train, x_val, y_train, y_val = train_test_split(
            x_tv, y_tv, test_size=val_f, stratify=y_tv, random_state=seed
        )
    except ValueError as exc:
        return f"data: cannot carve a stratified validation split from JSC: {exc}"
    scaler = StandardScaler().fit(x_train)
    parts = {"train": (x_train, y_train), "val": (x_val, y_val), "test": (x_test, y_test)}
    out = {}
    for name, (xs, ys) in parts.items():
        out[f"x_{name}"], out[f"y_{name}"] = scaler.transform(xs).astype(np.float32), ys
    return out


def _ours(p: Path, seed: int, val_f: float) -> dict[str, np.ndarray] | str:
    try:
        return jsc._prepare(p, seed, val_f)
    except DataError as exc:
        return str(exc)


# --- generated files ---------------------------------------------------------------------------


def _jets(rng: np.random.Generator, n: int, nan_rows: bool) -> tuple[np.ndarray, np.ndarray]:
    """``n`` jets with imbalanced classes, tied values, 0.0 and -0.0, repeated rows (some with
    -0.0 where the first had 0.0, some with the same features but another label) and, when
    ``nan_rows``, NaNs (repeated with the sign bit flipped)."""
    k = int(rng.integers(1, 6))
    share = rng.dirichlet(np.full(k, 0.4))
    y = rng.choice(rng.permutation(5)[:k], size=n, p=share)
    x = rng.normal(size=(n, 16)) * 10.0 ** rng.integers(-3, 4, 16)
    x[:, 1] = np.round(x[:, 1])  # ties
    x[:, 2] = rng.choice([0.0, -0.0, 1.0], size=n)
    x[:, 15] = rng.integers(10, 40, n)  # j_multiplicity: a count
    if nan_rows:
        x[rng.random((n, 16)) < 0.02] = np.nan
    repeats = rng.integers(0, n, n // 4)
    dx, dy = x[repeats].copy(), y[repeats].copy()
    dx[dx == 0.0] = -dx[dx == 0.0]  # 0.0 <-> -0.0: still the same row to pandas
    dx[np.isnan(dx)] = -np.nan  # another NaN's bits: the same row too
    relabel = rng.random(len(dy)) < 0.1
    dy[relabel] = (dy[relabel] + 1) % 5  # same features, another label: another row
    order = rng.permutation(n + len(dy))
    return np.concatenate([x, dx])[order], np.concatenate([y, dy])[order]


def write_mase_hdf5(path: Path, x: np.ndarray, y: np.ndarray, dtype: str) -> Path:
    """MASE's layout (as tests/data/test_jsc.py writes it) with features of ``dtype``."""
    fields = [("j_index", "<i8")] + [(c, dtype) for c in FEATURES] + [(c, "<i4") for c in LABELS]
    table = np.zeros(len(y), dtype=fields)
    table["j_index"] = np.arange(len(y))
    for i, c in enumerate(FEATURES):
        table[c] = x[:, i]
    for i, c in enumerate(LABELS):
        table[c] = y == i
    with h5py.File(path, "w") as f:
        f.create_dataset(HDF5_KEY, data=table)
    return path


def _case(tmp_path: Path, case: int, fmt: str) -> tuple[Path, int, float]:
    rng = np.random.default_rng(case)
    n = int(np.exp(rng.uniform(np.log(5), np.log(5000))))
    x, y = _jets(rng, n, nan_rows=fmt.startswith("hdf5"))
    if fmt == "hdf5-f4":
        path = write_mase_hdf5(tmp_path / "jets.z", x, y, "<f4")
    elif fmt == "hdf5-f8":
        path = write_mase_hdf5(tmp_path / "jets.z", x, y, "<f8")
    elif fmt == "csv":
        path = write_csv(tmp_path / "jets.csv", x, y)
    else:
        path = write_arff(tmp_path / "jets.arff", x, y)
    seed = int(rng.integers(0, 2**32))
    val_f = float(rng.choice([0.01, 0.05, 0.1, 0.1, 0.2, 1 / 3, 0.5, 0.9]))
    return path, seed, val_f


def _assert_same(ref: dict[str, np.ndarray] | str, got: dict[str, np.ndarray] | str) -> None:
    if isinstance(ref, str) or isinstance(got, str):
        assert got == ref
        return
    assert sorted(got) == sorted(KEYS)
    for k in KEYS:
        assert got[k].dtype == ref[k].dtype and got[k].shape == ref[k].shape, k
        assert got[k].tobytes() == ref[k].tobytes(), k


@pytest.mark.parametrize(
    ("fmt", "case"),
    [("hdf5-f8", c) for c in range(16)]
    + [("hdf5-f4", c) for c in range(16, 28)]
    + [("csv", c) for c in range(28, 36)]
    + [("arff", c) for c in range(36, 40)],
)
def test_the_splits_are_the_referees_bytes(tmp_path: Path, fmt: str, case: int) -> None:
    path, seed, val_f = _case(tmp_path, case, fmt)
    _assert_same(_referee(path, seed, val_f), _ours(path, seed, val_f))


def test_a_class_of_one_fails_with_the_referees_line(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(50, 16)), np.zeros(50, dtype=np.int64)
    y[0] = 4  # one top jet: no stratified split keeps it on both sides
    for path in (
        write_mase_hdf5(tmp_path / "j.z", x, y, "<f8"),
        write_csv(tmp_path / "j.csv", x, y),
    ):
        for seed in range(3):
            ref, got = _referee(path, seed, 0.1), _ours(path, seed, 0.1)
            if isinstance(ref, str):  # the top jet drawn into MASE's training 80%
                assert "Classes with too few members are: [4]" in ref
            _assert_same(ref, got)


def test_too_few_rows_is_one_data_error_line(tmp_path: Path) -> None:
    """One distinct row: scikit-learn raised a bare ValueError here (a traceback)."""
    path = write_mase_hdf5(tmp_path / "j.z", np.ones((3, 16)), np.zeros(3, np.int64), "<f8")
    with pytest.raises(DataError, match=r"has 1 distinct row\(s\), too few for MASE's 80/20"):
        jsc._prepare(path, 0, 0.1)


def test_infinite_feature_is_one_data_error_line(tmp_path: Path) -> None:
    """scikit-learn's scaler raised a ValueError on an infinite feature (a traceback)."""
    x = np.random.default_rng(0).normal(size=(40, 16))
    x[7, 14] = np.inf
    path = write_mase_hdf5(tmp_path / "j.z", x, np.arange(40) % 5, "<f8")
    with pytest.raises(DataError, match=r"has infinite values in \['j_mass_mmdt'\]$"):
        jsc._prepare(path, 0, 0.1)


def test_first_occurrences_is_pandas_drop_duplicates() -> None:
    """NaN equals NaN (whatever its payload or sign), -0.0 equals 0.0; float32 and integer
    columns; the referee is pandas' ``DataFrame.drop_duplicates()``."""
    other_nan = (np.array([np.nan]).view(np.int64) ^ 1).view(np.float64)[0]
    rng = np.random.default_rng(0)
    for _ in range(30):
        n = int(rng.integers(1, 300))
        a = rng.choice([0.0, -0.0, np.nan, -np.nan, other_nan, 1.5], size=n)
        b = rng.choice([0.0, -0.0, np.nan, 2.0], size=n).astype(np.float32)
        c = rng.integers(0, 3, n)
        frame = pd.DataFrame({"a": a, "b": b, "c": c})
        keep = first_occurrences(np.column_stack([row_key(a), row_key(b), row_key(c)]))
        assert np.array_equal(keep, np.flatnonzero(~frame.duplicated().to_numpy()))


@pytest.mark.slow
def test_a_fresh_hdf5_file_imports_neither_pandas_nor_sklearn(tmp_path: Path) -> None:
    """A new file, the split cache on: prepared and cached without pandas, scikit-learn or
    scipy (``sys.modules`` of a fresh interpreter, which spawns a process)."""
    x, y = _jets(np.random.default_rng(1), 500, nan_rows=False)
    path = write_mase_hdf5(tmp_path / "jets.z", x, y, "<f4")
    code = (
        "import json, sys\n"
        "from quantsearch.data import load_dataset\n"
        f"d = load_dataset('jsc', options={{'path': {str(path)!r}}})\n"
        "print(json.dumps([len(d.train), sorted({m.split('.')[0] for m in sys.modules})]))"
    )
    env = {**os.environ, "QUANTSEARCH_CACHE_DIR": str(tmp_path / "cache")}
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, env=env
    )
    n, modules = json.loads(out.stdout.splitlines()[-1])
    assert n > 0 and list((tmp_path / "cache").glob("jsc-v2-*.npz"))
    assert "h5py" in modules
    assert not {"pandas", "sklearn", "scipy"} & set(modules)
