"""The numpy split draws against the referee, scikit-learn's ``train_test_split``: the same
indices in the same order (and dtype), or the same error message, over many sizes, class
balances, seeds and fractions."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.model_selection import train_test_split

from quantsearch.data.shuffle_split import shuffle_split, stratified_shuffle_split

FRACTIONS = (0.01, 0.1, 0.2, 0.25, 1 / 3, 0.5, 0.77, 0.9, 0.99)


def _referee(n: int, test_size: float, seed: int, y: np.ndarray | None) -> object:
    try:
        return train_test_split(np.arange(n), test_size=test_size, random_state=seed, stratify=y)
    except ValueError as exc:
        return str(exc)


def _ours(n: int, test_size: float, seed: int, y: np.ndarray | None) -> object:
    try:
        if y is None:
            return list(shuffle_split(n, test_size, seed))
        return list(stratified_shuffle_split(y, test_size, seed))
    except ValueError as exc:
        return str(exc)


def _same(ref: object, got: object) -> bool:
    if isinstance(ref, str) or isinstance(got, str):
        return ref == got
    assert isinstance(ref, list) and isinstance(got, list)
    return all(a.dtype == b.dtype and np.array_equal(a, b) for a, b in zip(ref, got, strict=True))


@pytest.mark.parametrize("case", range(60))
def test_shuffle_split_matches_sklearn(case: int) -> None:
    rng = np.random.default_rng(case)
    n = int(np.exp(rng.uniform(0, np.log(5000))))  # 1 .. 5000, log-uniform
    seed = int(rng.integers(0, 2**32))
    for f in FRACTIONS:
        assert _same(_referee(n, f, seed, None), _ours(n, f, seed, None)), (n, f, seed)


@pytest.mark.parametrize("case", range(80))
def test_stratified_split_matches_sklearn(case: int) -> None:
    """Imbalanced classes (a rare class of 1, 2 or 3 members in some cases), labels that skip
    values, ties among the remainders of the classes' shares."""
    rng = np.random.default_rng(1000 + case)
    n = int(np.exp(rng.uniform(np.log(5), np.log(5000))))
    k = int(rng.integers(1, 6))
    share = rng.dirichlet(np.full(k, 0.5 if case % 2 else 5.0))
    labels = rng.choice(np.array([0, 1, 2, 3, 4])[rng.permutation(5)[:k]], size=n, p=share)
    if case % 5 == 0:  # a class with very few members
        labels[rng.choice(n, size=min(n, case % 3 + 1), replace=False)] = 7
    if case % 7 == 0:  # equal classes: every remainder ties
        labels = np.repeat(np.arange(5), -(-n // 5))[:n]
    seed = int(rng.integers(0, 2**32))
    for f in FRACTIONS:
        got = _ours(n, f, seed, labels)
        assert _same(_referee(n, f, seed, labels), got), (n, f, seed, np.bincount(labels))


def test_the_errors_are_sklearns() -> None:
    one_member = np.array([0, 0, 0, 1, 2, 2])
    assert "Classes with too few members are: [1]" in str(_ours(6, 0.5, 0, one_member))
    assert _ours(6, 0.5, 0, one_member) == _referee(6, 0.5, 0, one_member)
    five = np.repeat(np.arange(5), 4)
    assert str(_ours(20, 0.1, 0, five)).startswith("The test_size = 2 should be greater")
    assert _ours(20, 0.1, 0, five) == _referee(20, 0.1, 0, five)
    assert _ours(1, 0.2, 42, None) == _referee(1, 0.2, 42, None)
