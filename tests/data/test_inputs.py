"""as_split: what search() accepts as data, materialised once into the same tensors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, TensorDataset

from quantsearch.data import Split
from quantsearch.data.inputs import as_split
from quantsearch.errors import ConfigError

X = torch.randn(23, 3, generator=torch.Generator().manual_seed(0))
Y = torch.randn(23, 2, generator=torch.Generator().manual_seed(1))


class Rows(Dataset):  # type: ignore[type-arg]
    """Indexed sample by sample; counts its reads."""

    def __init__(self, items: list | None = None) -> None:
        self.items = items
        self.reads = 0

    def __len__(self) -> int:
        return len(X) if self.items is None else len(self.items)

    def __getitem__(self, i: int):
        self.reads += 1
        return (X[i], Y[i]) if self.items is None else self.items[i]


class Stream(IterableDataset):  # type: ignore[type-arg]
    """No __len__: read by iterating it."""

    def __iter__(self):
        return zip(X, Y, strict=True)


@pytest.mark.parametrize(
    "data",
    [
        (X, Y),
        [X, Y],
        Split(X, Y),
        TensorDataset(X, Y),
        Rows(),
        DataLoader(TensorDataset(X, Y), batch_size=5),
        DataLoader(Rows(), batch_size=4),
        Stream(),
        DataLoader(Stream(), batch_size=6),
    ],
    ids=[
        "tuple",
        "list",
        "split",
        "tensor_dataset",
        "dataset",
        "loader",
        "loader_of_dataset",
        "iterable_dataset",
        "loader_of_iterable",
    ],
)
def test_every_kind_gives_the_same_tensors(data: object) -> None:
    s = as_split(data)
    assert torch.equal(s.x, X) and torch.equal(s.y, Y)


def test_a_dataset_is_read_once() -> None:
    rows = Rows()
    as_split(rows)
    assert rows.reads == len(X)


def test_numpy_pairs_become_tensors() -> None:
    s = as_split((X.numpy(), np.arange(23)))
    assert torch.equal(s.x, X) and s.y.tolist() == list(range(23))


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (X, r"^data: got one tensor of shape \(23, 3\) \(no targets\), allowed: a quantsearch Split, an \(x, y\) pair of tensors, a torch Dataset or a DataLoader$"),
        ((X, Y, Y), r"^data: got a tuple of 3 items, allowed: "),
        ("data.csv", r"^data: got a str, allowed: "),
        ((X, Y[:5]), r"^data: x has 23 samples but y has 5, allowed: as many targets as samples$"),
        (Rows([X[0], X[1]]), r"^data: a Dataset with items that are not \(x, y\) pairs \(item 0: "),
        (Rows([]), r"^data: a Dataset with no samples, allowed: at least one$"),
        (Rows([(X[0], 1), (X[0, :2], 1)]), r"^data: a Dataset with samples that differ in shape"),
        (DataLoader(TensorDataset(X), batch_size=4), r"^data: a DataLoader that yields items that are not \(x, y\) pairs"),
        (DataLoader(Rows([]), batch_size=4), r"^data: a DataLoader that yields no batches, allowed: at least one$"),
        (Rows([(X[0], "cat")]), r"^data: a Dataset with samples that are not numbers \(sample 0: a str\), allowed: "),
        (Rows([("x", 1)]), r"^data: a Dataset with samples that are not numbers \(sample 0: a str\)"),
        (DataLoader(Rows([(X[0], "cat")] * 3), batch_size=2), r"^data: a DataLoader that yields batches that are not numbers \(batch 0: "),
    ],
)  # fmt: skip
def test_anything_else_is_one_line(data: object, match: str) -> None:
    with pytest.raises(ConfigError, match=match) as exc:
        as_split(data)
    assert "\n" not in str(exc.value)
