"""A user's own dataset from ``"file.py:load"``: every accepted return type, and bad specs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from quantsearch.data import DataSplits, load_dataset
from quantsearch.data.user import load_user_dataset, materialise
from quantsearch.errors import ConfigError

USER_DATA = '''
import numpy as np
import torch
from torch.utils.data import Dataset, TensorDataset

from quantsearch.data import DataSplits, Split

CALLS = []


def _xy(n=100, features=6):
    g = torch.Generator().manual_seed(0)
    y = torch.arange(n) % 3
    return torch.randn(n, features, generator=g) + y[:, None], y


def pair():
    return _xy()


def numpy_pair():
    x, y = _xy()
    return x.numpy().astype(np.float64), y.numpy().astype(np.int32)


class Squares(Dataset):
    """Not a TensorDataset: indexed one sample at a time."""

    def __init__(self, n=90):
        self.n = n

    def __len__(self):
        CALLS.append("len")
        return self.n

    def __getitem__(self, i):
        CALLS.append(i)
        return torch.full((2, 2), float(i)), i % 3


def dataset():
    return Squares()


def tensor_dataset():
    return TensorDataset(*_xy())


def splits_dict():
    x, y = _xy(90)
    return {"train": (x[:60], y[:60]), "val": TensorDataset(x[60:75], y[60:75]),
            "test": (x[75:], y[75:]), "class_names": ["a", "b", "c"]}


def ready():
    x, y = _xy(30)
    s = Split(x, y)
    return DataSplits("mine", s, s.head(10), s.head(10), 3, ("a", "b", "c"))


def with_options(n, features=6):
    return _xy(n, features)


def with_kwargs(**kw):
    return _xy(kw.get("n", 100))


def wrong_type():
    return "not data"


def bad_dict():
    x, y = _xy()
    return {"train": (x, y), "validation": (x, y)}


def one_hot():
    x, y = _xy()
    return x, torch.nn.functional.one_hot(y)


def regression():
    x = torch.arange(100.0)[:, None].repeat(1, 3)  # row i holds i: the split is checkable
    return x, torch.stack([x[:, 0] * 0.5, -x[:, 0]], dim=1)


def raises():
    raise FileNotFoundError("where is my data")
'''


@pytest.fixture
def user_file(tmp_path: Path) -> Path:
    path = tmp_path / "my_data.py"
    path.write_text(USER_DATA)
    return path


def _load(user_file: Path, attr: str, **options: object) -> DataSplits:
    return load_dataset(f"my_data.py:{attr}", options=dict(options), base_dir=user_file.parent)


@pytest.mark.parametrize("attr", ["pair", "numpy_pair", "tensor_dataset"])
def test_xy_is_split_seeded_and_stratified(user_file: Path, attr: str) -> None:
    splits = _load(user_file, attr)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (60, 20, 20)
    assert splits.num_classes == 3 and splits.class_names == ("0", "1", "2")
    assert splits.name == f"my_data.py:{attr}"
    assert splits.train.x.dtype == torch.float32 and splits.train.y.dtype == torch.int64
    for s in (splits.train, splits.val, splits.test):
        counts = np.bincount(s.y.numpy(), minlength=3)
        assert counts.max() - counts.min() <= 1  # 100 samples, labels 0,1,2 in turn
    again = _load(user_file, attr)
    assert torch.equal(again.val.x, splits.val.x)


def test_the_split_is_disjoint(user_file: Path) -> None:
    splits = _load(user_file, "pair")
    rows = [set(map(tuple, s.x.tolist())) for s in (splits.train, splits.val, splits.test)]
    assert len(rows[0] | rows[1] | rows[2]) == 100


def test_a_dataset_is_materialised_once(user_file: Path) -> None:
    splits = _load(user_file, "dataset", val_fraction=0.1, test_fraction=0.1)
    assert splits.sample_shape == (2, 2)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (72, 9, 9)
    import sys

    module = next(
        m for m in list(sys.modules.values()) if getattr(m, "__file__", None) == str(user_file)
    )
    # every sample was read exactly once
    assert sorted(c for c in module.CALLS if c != "len") == list(range(90))
    # labels survive: sample i is the constant i, labelled i % 3
    x, y = splits.test.x, splits.test.y
    assert torch.equal(x[:, 0, 0].long() % 3, y)


def test_dict_of_splits(user_file: Path) -> None:
    splits = _load(user_file, "splits_dict")
    assert (len(splits.train), len(splits.val), len(splits.test)) == (60, 15, 15)
    assert splits.class_names == ("a", "b", "c")


def test_ready_made_datasplits(user_file: Path) -> None:
    splits = _load(user_file, "ready")
    assert splits.name == "mine" and len(splits.val) == 10


def test_options_are_keyword_arguments(user_file: Path) -> None:
    splits = _load(user_file, "with_options", n=50, features=4)
    assert splits.sample_shape == (4,)
    assert len(splits.train) + len(splits.val) + len(splits.test) == 50
    assert len(_load(user_file, "with_kwargs", n=40).train) == 24


def test_reshaped_to_a_model_input(user_file: Path) -> None:
    splits = load_dataset("my_data.py:pair", base_dir=user_file.parent, input_shape=(2, 3))
    assert splits.sample_shape == (2, 3)


def test_module_spec() -> None:
    # a loader from an importable module: the digits loader itself, through the user path
    splits = load_user_dataset(
        "quantsearch.data.digits:load_digits", options={"options": {}}, seed=0
    )
    assert splits.num_classes == 10


@pytest.mark.parametrize(
    ("attr", "options", "message"),
    [
        (
            "with_options",
            {"m": 3},
            r"data\.m: got an unknown key, allowed: the keys of 'my_data\.py:with_options': \['features', 'n', 'test_fraction', 'val_fraction'\]",
        ),
        (
            "wrong_type",
            {},
            r"data\.name: got 'my_data\.py:wrong_type', which returned a str, allowed: a DataSplits, a dict",
        ),
        (
            "bad_dict",
            {},
            r"data\.name: .* returned a dict with keys \['train', 'validation'\], allowed: \['train', 'val', 'test'\]",
        ),
        (
            "one_hot",
            {},
            r"data\.name: .* returned integer labels of shape \(100, 3\), allowed: 1-D class "
            r"indices",
        ),
        (
            "raises",
            {},
            r"data\.name: got 'my_data\.py:raises', whose call failed \(FileNotFoundError: where is my data",
        ),
        (
            "nope",
            {},
            r"data\.name: got .*, but 'my_data\.py' has no attribute 'nope', allowed: one of the callables there: \[.*'pair'.*\]",
        ),
        (
            "ready",
            {"val_fraction": 0.1},
            r"data: got \['val_fraction'\], allowed: none \(.* returns splits\)",
        ),
        (
            "pair",
            {"val_fraction": 0.5, "test_fraction": 0.5},
            r"data\.val_fraction, data\.test_fraction: got .* \+ .*, allowed: a sum below 1$",
        ),
        (
            "pair",
            {"test_fraction": 2},
            r"data\.test_fraction: got 2, allowed: a number in \(0, 1\)",
        ),
    ],
)
def test_bad_user_datasets_name_the_key(
    user_file: Path, attr: str, options: dict, message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as exc:
        _load(user_file, attr, **options)
    assert "\n" not in str(exc.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"data\.name: got .*, whose file 'absent\.py' does not exist"
    ):
        load_dataset("absent.py:load", base_dir=tmp_path)


def test_fractional_labels_are_regression_targets() -> None:
    _, y = materialise((torch.zeros(3, 2), torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64)))
    assert y.dtype == torch.float32 and torch.equal(y, torch.tensor([0.5, 1.0, 2.0]))
    _, whole = materialise((torch.zeros(3, 2), torch.tensor([0.0, 1.0, 2.0])))
    assert whole.dtype == torch.int64  # whole numbers >= 0: class indices, as before


def test_regression_targets_are_split_unstratified_without_classes(user_file: Path) -> None:
    splits = load_dataset(f"{user_file.name}:regression", base_dir=user_file.parent)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (60, 20, 20)
    assert splits.num_classes == 0 and splits.class_names == ()
    assert splits.val.y.dtype == torch.float32 and splits.val.y.shape == (20, 2)
    # the three splits are a partition of the samples: each row of x appears once
    rows = torch.cat([splits.train.x, splits.val.x, splits.test.x])[:, 0]
    assert sorted(rows.tolist()) == list(range(100))
