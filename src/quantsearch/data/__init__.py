"""Datasets: a registry of loaders that return materialised, split tensors.

Evaluation data is held as tensors once (:class:`Split`), never re-collated per batch per trial.
A dataset costs one file, one test and one import line here.
"""

from __future__ import annotations

from quantsearch.data import digits, jsc  # noqa: F401  (each registers its loader)
from quantsearch.data.registry import DATASETS, Loader, load_dataset
from quantsearch.data.splits import DataSplits, Split

__all__ = ["DATASETS", "DataSplits", "Loader", "Split", "load_dataset"]
