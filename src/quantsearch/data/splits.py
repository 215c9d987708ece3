"""Materialised data: a split's tensors (:class:`Split`) and a dataset's three splits.

Evaluation data is held as tensors once, never re-collated per batch per trial.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

from quantsearch.errors import ConfigError

__all__ = ["DataSplits", "Split"]


@dataclass(frozen=True)
class Split:
    """Features ``x`` (float32, first dim = samples) and integer labels ``y``."""

    x: torch.Tensor
    y: torch.Tensor

    def __post_init__(self) -> None:
        if self.x.shape[0] != self.y.shape[0]:
            raise ValueError(f"x has {self.x.shape[0]} samples but y has {self.y.shape[0]}")

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def head(self, n: int | None) -> Split:
        """The first ``n`` samples (all when ``n`` is ``None`` or larger than the split)."""
        return self if n is None or n >= len(self) else Split(self.x[:n], self.y[:n])

    def batches(self, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for i in range(0, len(self), batch_size):
            yield self.x[i : i + batch_size], self.y[i : i + batch_size]

    def reshape(self, sample_shape: tuple[int, ...]) -> Split:
        return Split(self.x.reshape(len(self), *sample_shape), self.y)


@dataclass(frozen=True)
class DataSplits:
    """Train, validation and test splits, disjoint, plus what describes them."""

    name: str
    train: Split
    val: Split
    test: Split
    num_classes: int
    class_names: tuple[str, ...]

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(self.train.x.shape[1:])

    def reshape(self, sample_shape: tuple[int, ...]) -> DataSplits:
        """The same data with each sample reshaped (``(64,)`` -> ``(1, 8, 8)``)."""
        n = 1
        for d in sample_shape:
            n *= d
        have = self.train.x[0].numel()
        if n != have:
            raise ConfigError(
                f"data.name: got {self.name!r}, whose samples have {have} features, allowed: "
                f"data of {n} features a sample (the model's input shape {sample_shape})"
            )
        return DataSplits(
            self.name,
            self.train.reshape(sample_shape),
            self.val.reshape(sample_shape),
            self.test.reshape(sample_shape),
            self.num_classes,
            self.class_names,
        )
