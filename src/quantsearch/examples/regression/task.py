"""A regression task of your own for quantsearch: model, data and evaluate function.

Eight sensor readings in, two continuous quantities out (think of a trigger that estimates an
energy and an angle). Not classification: the labels are float targets, and how good a
quantized model is comes from ``evaluate`` below, not from accuracy.

    python examples/regression/train.py              # fits the model: runs/regression-mlp.pt
    quantsearch search --config examples/regression/regression.toml

quantsearch imports this file by path (``"task.py:build"`` in the config, relative to the
config file's folder); nothing here imports quantsearch.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

FEATURES, TARGETS = 8, 2
TOLERANCE = 0.25  # an estimate within this of the truth counts as good enough


def build() -> nn.Module:
    """The model: a small MLP (8 -> 32 -> 32 -> 2)."""
    return nn.Sequential(
        nn.Linear(FEATURES, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, TARGETS)
    )


def load(samples: int = 3000, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Generated data: ``x`` standard normal, ``y`` two smooth functions of it plus noise.

    Returned as one ``(x, y)`` pair: quantsearch splits it into train/validation/test (float
    targets: shuffled, not stratified). ``samples`` and ``seed`` are ``[data]`` options.
    """
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(samples, FEATURES, generator=g)
    energy = torch.sin(x[:, 0]) + 0.5 * x[:, 1] * x[:, 2] + 0.3 * x[:, 3]
    angle = torch.tanh(x[:, 4] - x[:, 5]) + 0.2 * x[:, 6] ** 2 - 0.1 * x[:, 7]
    y = torch.stack([energy, angle], dim=1) + 0.05 * torch.randn(samples, TARGETS, generator=g)
    return x, y


def evaluate(
    model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]]
) -> dict[str, float]:
    """What a good estimate means here: the worst error, and the share of estimates within
    ``TOLERANCE`` of the truth (both outputs). ``batches`` yields ``(x, y)`` validation batches.
    """
    errors = torch.cat([(model(x) - y).abs() for x, y in batches])
    return {
        "max_abs_error": float(errors.max()),
        "within_tolerance": float((errors <= TOLERANCE).all(dim=1).float().mean()),
    }
