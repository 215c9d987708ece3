"""The embedded ``digits`` dataset: real data, standardised, seeded stratified splits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from quantsearch.data import DATASETS, DataSplits, load_dataset
from quantsearch.errors import ConfigError


def test_registered() -> None:
    assert "digits" in DATASETS


def test_sizes_classes_and_shapes(digits: DataSplits) -> None:
    assert (len(digits.train), len(digits.val), len(digits.test)) == (1077, 360, 360)
    assert len(digits.train) + len(digits.val) + len(digits.test) == 1797  # sklearn's count
    assert digits.num_classes == 10
    assert digits.class_names == tuple("0123456789")
    assert digits.sample_shape == (64,)
    for split in (digits.train, digits.val, digits.test):
        assert split.x.dtype == torch.float32
        assert split.y.dtype == torch.int64
        assert set(split.y.tolist()) == set(range(10))


def test_splits_are_stratified(digits: DataSplits) -> None:
    share = [np.bincount(s.y.numpy(), minlength=10) / len(s) for s in (digits.train, digits.test)]
    assert np.abs(share[0] - share[1]).max() < 0.01


def test_standardised_on_the_training_split(digits: DataSplits) -> None:
    x = digits.train.x
    used = x.std(dim=0) > 0  # a few border pixels are always zero
    assert torch.allclose(x.mean(dim=0), torch.zeros(64), atol=1e-5)
    assert torch.allclose(
        x.std(dim=0, unbiased=False)[used], torch.ones(int(used.sum())), atol=1e-4
    )


def test_the_splits_partition_the_samples_of_sklearn() -> None:
    from sklearn.datasets import load_digits

    raw = load_digits()
    splits = load_dataset("digits")
    # the three splits partition sklearn's samples, so the label counts add up exactly
    all_y = torch.cat([splits.train.y, splits.val.y, splits.test.y]).numpy()
    assert np.array_equal(np.bincount(all_y), np.bincount(raw.target))


def test_seeded(digits: DataSplits) -> None:
    again = load_dataset("digits", seed=0)
    assert torch.equal(again.val.x, digits.val.x)
    other = load_dataset("digits", seed=1)
    assert not torch.equal(other.val.y, digits.val.y)


def test_fractions_option() -> None:
    splits = load_dataset("digits", options={"val_fraction": 0.1, "test_fraction": 0.3})
    assert (len(splits.val), len(splits.test)) == (180, 540)


def test_reshaped_to_the_model_input() -> None:
    splits = load_dataset("digits", input_shape=(1, 8, 8))
    assert splits.sample_shape == (1, 8, 8)
    assert splits.train.x.shape == (1077, 1, 8, 8)


def test_unknown_option_lists_the_allowed_ones() -> None:
    with pytest.raises(
        ConfigError,
        match=r"data\.vall_fraction: got an unknown key, allowed: the keys of dataset 'digits': \['test_fraction', 'val_fraction'\]",
    ):
        load_dataset("digits", options={"vall_fraction": 0.1})


def test_bad_fractions() -> None:
    with pytest.raises(
        ConfigError,
        match=r"^data\.val_fraction, data\.test_fraction: got 0\.6 and 0\.5, allowed: each in \(0, 1\), summing below 1$",
    ):
        load_dataset("digits", options={"val_fraction": 0.6, "test_fraction": 0.5})


def test_unknown_dataset_lists_the_registered_ones() -> None:
    with pytest.raises(
        ConfigError, match=r"data\.name: got 'mnist', allowed: one of \['digits', 'jsc'\]"
    ):
        load_dataset("mnist")


def test_cache_gives_the_same_tensors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from quantsearch.data import load_dataset

    monkeypatch.setenv("QUANTSEARCH_CACHE_DIR", "")
    fresh = load_dataset("digits", seed=3)
    monkeypatch.setenv("QUANTSEARCH_CACHE_DIR", str(tmp_path))
    first = load_dataset("digits", seed=3)  # prepares and writes the cache
    files = list(tmp_path.glob("digits-*seed3*.npz"))
    assert len(files) == 1
    second = load_dataset("digits", seed=3)  # reads it
    for split in ("train", "val", "test"):
        for a in (first, second):
            assert torch.equal(getattr(a, split).x, getattr(fresh, split).x)
            assert torch.equal(getattr(a, split).y, getattr(fresh, split).y)
    files[0].write_bytes(b"damaged")
    third = load_dataset("digits", seed=3)  # a damaged file is prepared again
    assert torch.equal(third.val.x, fresh.val.x)
