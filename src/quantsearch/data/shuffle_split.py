"""scikit-learn's ``train_test_split`` index draws, in numpy alone.

Importing scikit-learn takes about as long as importing torch, so the JSC preparation draws its
splits here. Each function consumes a ``numpy.random.RandomState`` exactly as scikit-learn 1.9's
``ShuffleSplit`` and ``StratifiedShuffleSplit`` (``sklearn/model_selection/_split.py``,
``_iter_indices``; ``sklearn/utils/extmath.py``, ``_approximate_mode``) do for one split, so
the indices are the same ones: ``tests/data/test_shuffle_split.py`` checks them against
scikit-learn's ``train_test_split`` over many sizes, class balances, seeds and fractions.

Example:
    >>> train, test = shuffle_split(10, 0.2, seed=42)
    >>> len(train), len(test), sorted([*train, *test]) == list(range(10))
    (8, 2, True)
"""

from __future__ import annotations

from math import ceil

import numpy as np

__all__ = ["shuffle_split", "split_sizes", "stratified_shuffle_split"]


def split_sizes(n_samples: int, test_size: float) -> tuple[int, int]:
    """``(n_train, n_test)`` for a fraction ``test_size`` in (0, 1): ``n_test`` rounds up.

    Raises:
        ValueError: the training part would be empty (scikit-learn's message).
    """
    n_test = ceil(test_size * n_samples)
    n_train = n_samples - n_test
    if n_train <= 0:
        raise ValueError(
            f"With n_samples={n_samples}, test_size={test_size} and train_size=None, the "
            f"resulting train set will be empty. Adjust any of the aforementioned parameters."
        )
    return n_train, n_test


def shuffle_split(n_samples: int, test_size: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Train and test indices of ``train_test_split(..., test_size, random_state=seed)``.

    One permutation of all samples: its first ``n_test`` entries are the test split, the rest
    the training split, both in the permutation's order.

    Raises:
        ValueError: too few samples for a non-empty training part.
    """
    n_train, n_test = split_sizes(n_samples, test_size)
    permutation = np.random.RandomState(seed).permutation(n_samples)
    return permutation[n_test : n_test + n_train], permutation[:n_test]


def stratified_shuffle_split(
    y: np.ndarray, test_size: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Train and test indices of ``train_test_split(..., test_size, stratify=y,
    random_state=seed)``.

    Each class gives its share of each part (:func:`_approximate_mode`, ties broken at random),
    drawn from a permutation of its own samples; each part is then shuffled as a whole.

    Raises:
        ValueError: a class with one member, or a part smaller than the number of classes
            (scikit-learn's messages).
    """
    n_train, n_test = split_sizes(len(y), test_size)
    classes, y_indices, class_counts = np.unique(y, return_inverse=True, return_counts=True)
    if class_counts.min() < 2:
        raise ValueError(
            "The least populated classes in y have only 1 member, which is too few. The "
            "minimum number of groups for any class cannot be less than 2. Classes with too "
            f"few members are: {classes[class_counts < 2].tolist()}"
        )
    for part, n in (("train", n_train), ("test", n_test)):
        if n < len(classes):
            raise ValueError(
                f"The {part}_size = {n} should be greater or equal to the number of classes "
                f"= {len(classes)}"
            )
    members = np.split(np.argsort(y_indices, kind="stable"), np.cumsum(class_counts)[:-1])
    rng = np.random.RandomState(seed)
    n_i = _approximate_mode(class_counts, n_train, rng)
    t_i = _approximate_mode(class_counts - n_i, n_test, rng)
    train, test = [], []
    for count, own, k_train, k_test in zip(class_counts, members, n_i, t_i, strict=True):
        drawn = own.take(rng.permutation(count), mode="clip")
        train.append(drawn[:k_train])
        test.append(drawn[k_train : k_train + k_test])
    return rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(test))


def _approximate_mode(
    class_counts: np.ndarray, n_draws: int, rng: np.random.RandomState
) -> np.ndarray:
    """How many of ``n_draws`` each class gives: its share rounded down, then one more for the
    classes with the largest remainders, ties among equal remainders drawn from ``rng``."""
    continuous = class_counts / class_counts.sum() * n_draws
    floored: np.ndarray = np.floor(continuous)
    need = int(n_draws - floored.sum())
    if need > 0:
        remainder = continuous - floored
        for value in np.sort(np.unique(remainder))[::-1]:
            (tied,) = np.where(remainder == value)
            add = min(len(tied), need)
            floored[rng.choice(tied, size=add, replace=False)] += 1
            need -= add
            if need == 0:
                break
    return floored.astype(int)
