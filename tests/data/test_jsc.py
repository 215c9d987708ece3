"""The ``jsc`` loader on small files generated here in MASE's HDF5 layout and OpenML's CSV/ARFF."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from scipy.stats import rankdata
from sklearn.model_selection import train_test_split

from quantsearch.config import parse_config
from quantsearch.data import DATASETS, DataSplits, load_dataset
from quantsearch.data.jsc import CLASS_NAMES, ENV_VAR, FEATURES, HDF5_KEY, LABELS, read_jsc
from quantsearch.errors import ConfigError, DataError

N, DUPLICATES = 600, 20


def _jets(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """N unique jets plus DUPLICATES repeats of the first rows, as MASE's file has.

    Feature 0 is the row's id scaled, so after standardisation (monotonic per column) each
    sample's rank in that column recovers which input row it came from.
    """
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 5, N)
    x = rng.normal(size=(N, 16)) + y[:, None] * 0.5
    x[:, 0] = np.arange(N) / N + 1.0
    return np.concatenate([x, x[:DUPLICATES]]), np.concatenate([y, y[:DUPLICATES]])


def write_hdf5(path: Path, x: np.ndarray, y: np.ndarray) -> Path:
    """MASE's layout: one compound dataset ``t_allpar_new`` with named columns, one-hot labels
    in ``j_g, j_q, j_w, j_z, j_t``, and further columns the loader must ignore."""
    fields = [("j_index", "<i8"), ("j_pt", "<f8")]
    fields += [(c, "<f8") for c in FEATURES] + [(c, "<i4") for c in LABELS]
    table = np.zeros(len(y), dtype=fields)
    table["j_index"] = np.arange(len(y))  # unique even on duplicate jets: not a dedup column
    table["j_pt"] = 500.0
    for i, c in enumerate(FEATURES):
        table[c] = x[:, i]
    for i, c in enumerate(LABELS):
        table[c] = y == i
    with h5py.File(path, "w") as f:
        f.create_dataset(HDF5_KEY, data=table)
    return path


def _openml_columns() -> list[str]:
    return [c.removeprefix("j_") for c in FEATURES]


def write_csv(path: Path, x: np.ndarray, y: np.ndarray) -> Path:
    """OpenML's ``hls4ml_lhc_jets_hlf`` as CSV: 16 unprefixed features and ``class``."""
    lines = [",".join([*_openml_columns(), "class"])]
    for row, label in zip(x, y, strict=True):
        lines.append(",".join([*(f"{v:.17g}" for v in row), CLASS_NAMES[label]]))
    path.write_text("\n".join(lines) + "\n")
    return path


def write_arff(path: Path, x: np.ndarray, y: np.ndarray) -> Path:
    """The same table as ARFF, as OpenML serves it."""
    lines = ["@RELATION hls4ml_lhc_jets_hlf", ""]
    lines += [f"@ATTRIBUTE {c} NUMERIC" for c in _openml_columns()]
    lines += ["@ATTRIBUTE class {g,q,t,w,z}", "", "@DATA"]
    for row, label in zip(x, y, strict=True):
        lines.append(",".join([*(f"{v:.17g}" for v in row), CLASS_NAMES[label]]))
    path.write_text("\n".join(lines) + "\n")
    return path


WRITERS = {
    "hdf5": ("jets.z", write_hdf5),
    "csv": ("jets.csv", write_csv),
    "arff": ("jets.arff", write_arff),
}


@pytest.fixture(params=sorted(WRITERS))
def jsc_file(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    name, writer = WRITERS[request.param]
    return writer(tmp_path / name, *_jets())


def _load(path: Path, **options: object) -> DataSplits:
    return load_dataset("jsc", options={"path": str(path), **options})


def _row_ids(splits: DataSplits) -> list[np.ndarray]:
    col0 = [s.x[:, 0].numpy() for s in (splits.train, splits.val, splits.test)]
    ranks = rankdata(np.concatenate(col0), method="ordinal") - 1
    bounds = np.cumsum([0, *(len(c) for c in col0)])
    return [ranks[bounds[i] : bounds[i + 1]] for i in range(3)]


def test_registered() -> None:
    assert "jsc" in DATASETS


def test_shapes_classes_and_sizes(jsc_file: Path) -> None:
    splits = _load(jsc_file)
    # duplicates dropped; 20% test (MASE); 10% of the remaining 80% for validation
    assert (len(splits.train), len(splits.val), len(splits.test)) == (432, 48, 120)
    assert splits.sample_shape == (16,)
    assert splits.num_classes == 5
    assert splits.class_names == ("g", "q", "w", "z", "t")
    for s in (splits.train, splits.val, splits.test):
        assert s.x.dtype == torch.float32 and s.y.dtype == torch.int64
        assert set(s.y.tolist()) <= set(range(5))


def test_duplicates_dropped_and_labels_in_mase_order(jsc_file: Path) -> None:
    x, y = read_jsc(jsc_file)
    raw_x, raw_y = _jets()
    assert x.shape == (N, 16)
    assert np.array_equal(x, raw_x[:N])
    assert np.array_equal(y, raw_y[:N])  # g, q, w, z, t -> 0..4 in every format


def test_splits_are_disjoint_and_the_test_split_is_mases(jsc_file: Path) -> None:
    splits = _load(jsc_file)
    train_ids, val_ids, test_ids = _row_ids(splits)
    assert set(train_ids).isdisjoint(val_ids)
    assert set(train_ids).isdisjoint(test_ids)
    assert set(val_ids).isdisjoint(test_ids)
    assert len(set(train_ids) | set(val_ids) | set(test_ids)) == N
    # MASE: train_test_split(X, Y, test_size=0.2, random_state=42) on the deduplicated rows
    _, mase_test = train_test_split(np.arange(N), test_size=0.2, random_state=42)
    assert np.array_equal(test_ids, mase_test)
    _, y = read_jsc(jsc_file)
    assert np.array_equal(splits.test.y.numpy(), y[mase_test])


def test_validation_is_stratified_and_seeded(jsc_file: Path) -> None:
    a, b, c = (
        _load(jsc_file),
        _load(jsc_file),
        load_dataset("jsc", options={"path": str(jsc_file)}, seed=1),
    )
    assert torch.equal(a.val.x, b.val.x)
    assert not torch.equal(a.val.y, c.val.y)
    assert torch.equal(a.test.y, c.test.y)  # the test split is MASE's whatever the seed
    share = [np.bincount(s.y.numpy(), minlength=5) / len(s) for s in (a.train, a.val)]
    assert np.abs(share[0] - share[1]).max() < 0.03


def test_scaler_is_fit_on_training_data_only(jsc_file: Path) -> None:
    splits = _load(jsc_file)
    assert torch.allclose(splits.train.x.mean(dim=0), torch.zeros(16), atol=1e-5)
    assert torch.allclose(splits.train.x.std(dim=0, unbiased=False), torch.ones(16), atol=1e-4)
    assert not torch.allclose(splits.val.x.mean(dim=0), torch.zeros(16), atol=1e-3)


def test_all_formats_give_identical_splits(tmp_path: Path) -> None:
    x, y = _jets()
    loaded = [_load(writer(tmp_path / name, x, y)) for name, writer in WRITERS.values()]
    for other in loaded[1:]:
        for a, b in zip(
            (loaded[0].train, loaded[0].val, loaded[0].test),
            (other.train, other.val, other.test),
            strict=True,
        ):
            assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)


def test_val_fraction_option(jsc_file: Path) -> None:
    assert len(_load(jsc_file, val_fraction=0.25).val) == 120


def test_path_relative_to_the_config_folder(tmp_path: Path) -> None:
    write_csv(tmp_path / "jets.csv", *_jets())
    splits = load_dataset("jsc", options={"path": "jets.csv"}, base_dir=tmp_path)
    assert len(splits.test) == 120


def test_path_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_hdf5(tmp_path / "jets.z", *_jets())
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(ENV_VAR, "jets.z")  # relative to the working directory
    assert len(load_dataset("jsc").test) == 120


def test_session_with_jsc_tiny_traces(tmp_path: Path) -> None:
    from quantsearch.session import open_session

    write_csv(tmp_path / "jets.csv", *_jets())
    raw = {"model": {"name": "jsc-tiny"}, "data": {"name": "jsc", "path": "jets.csv"}}
    session = open_session(parse_config(raw, base_dir=tmp_path))
    gm = session.trace(8)
    assert gm(session.data.val.x[:8]).shape == (8, 5)


def test_no_path_says_which_key_and_where_to_get_the_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    with pytest.raises(ConfigError) as exc:
        load_dataset("jsc")
    message = str(exc.value)
    assert message.startswith(
        "data.path: got no value, allowed: the path of the JSC data (or set QUANTSEARCH_JSC_PATH)"
    )
    assert "cernbox.cern.ch" in message and "openml.org/d/42468" in message
    assert "\n" not in message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(
        DataError,
        match=r"^data\.path: got .*nope\.z', which does not exist, allowed: the JSC data file; get MASE's",
    ):
        _load(tmp_path / "nope.z")


def test_missing_file_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "nope.csv"))
    with pytest.raises(DataError, match=r"^QUANTSEARCH_JSC_PATH: got .*, which does not exist"):
        load_dataset("jsc")


def test_unknown_option_lists_the_allowed_ones(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError,
        match=r"data\.split: got an unknown key, allowed: the keys of dataset 'jsc': \['path', 'val_fraction'\]",
    ):
        _load(tmp_path / "x.csv", split=0.5)


@pytest.mark.parametrize("bad", [0, 1.0, -0.1, "0.1", True])
def test_bad_val_fraction(tmp_path: Path, bad: object) -> None:
    with pytest.raises(
        ConfigError, match=r"data\.val_fraction: got .*, allowed: a number in \(0, 1\)"
    ):
        _load(tmp_path / "x.csv", val_fraction=bad)


def test_hdf5_without_the_key(tmp_path: Path) -> None:
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f.create_dataset("jets", data=np.zeros(3))
    with pytest.raises(DataError, match=r"has no key 't_allpar_new' \(keys: \['jets'\]\)"):
        _load(tmp_path / "other.h5")


def test_hdf5_group_instead_of_a_table(tmp_path: Path) -> None:
    with h5py.File(tmp_path / "store.h5", "w") as f:
        f.create_group(HDF5_KEY).create_dataset("block0_values", data=np.zeros((3, 21)))
    with pytest.raises(DataError, match=r"is not a table with named columns"):
        _load(tmp_path / "store.h5")


def test_hdf5_missing_a_column(tmp_path: Path) -> None:
    table = np.zeros(
        4, dtype=[(c, "<f8") for c in FEATURES if c != "j_mass_mmdt"] + [(c, "<i4") for c in LABELS]
    )
    with h5py.File(tmp_path / "jets.z", "w") as f:
        f.create_dataset(HDF5_KEY, data=table)
    with pytest.raises(DataError, match=r"lacks column\(s\) \['j_mass_mmdt'\]"):
        _load(tmp_path / "jets.z")


def test_csv_missing_a_column(tmp_path: Path) -> None:
    (tmp_path / "jets.csv").write_text("zlogz,class\n1.0,g\n")
    with pytest.raises(DataError, match=r"lacks column\(s\) \['c1_b0_mmdt',"):
        _load(tmp_path / "jets.csv")


def test_csv_unknown_label(tmp_path: Path) -> None:
    x, y = _jets()
    path = write_csv(tmp_path / "jets.csv", x, y)
    path.write_text(path.read_text().replace(",t\n", ",higgs\n", 1))
    with pytest.raises(
        DataError,
        match=r"column 'class' has label\(s\) \['higgs'\]; allowed: \['g', 'q', 'w', 'z', 't'\]",
    ):
        _load(path)


def test_unsupported_format(tmp_path: Path) -> None:
    (tmp_path / "jets.parquet").write_bytes(b"PAR1")
    with pytest.raises(DataError, match=r"is not a JSC file this loader reads"):
        _load(tmp_path / "jets.parquet")
