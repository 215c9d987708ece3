"""The dataset registry: names mapped to loaders, and :func:`load_dataset`, which also takes a
user's ``"file.py:load"``.

A dataset costs one file that registers its loader with ``@DATASETS.register("name")``, one
test, and one import line in ``quantsearch/data/__init__.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from quantsearch.data.splits import DataSplits
from quantsearch.data.user import load_user_dataset
from quantsearch.registry import Registry
from quantsearch.spec import is_callable_spec

__all__ = ["DATASETS", "Loader", "load_dataset"]

# A loader takes its options (from the [data] table) and the config file's folder.
Loader = Callable[..., DataSplits]
DATASETS: Registry[Loader] = Registry("data.name")


def load_dataset(
    name: str,
    *,
    options: dict[str, Any] | None = None,
    seed: int = 0,
    base_dir: Path | None = None,
    input_shape: tuple[int, ...] | None = None,
) -> DataSplits:
    """Load a registered dataset or a user's ``"file.py:load"``, reshaped to ``input_shape``.

    Example:
        >>> splits = load_dataset("digits")
        >>> splits.num_classes, splits.sample_shape
        (10, (64,))
    """
    opts = dict(options or {})
    if is_callable_spec(name):
        splits = load_user_dataset(name, options=opts, seed=seed, base_dir=base_dir)
    else:
        loader = DATASETS.get(name, key="data.name")
        splits = loader(options=opts, seed=seed, base_dir=base_dir)
    if input_shape is not None and splits.sample_shape != tuple(input_shape):
        splits = splits.reshape(tuple(input_shape))
    return splits
