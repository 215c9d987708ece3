"""A model that counts the samples its forward passes see (shared by the budget tests)."""

from __future__ import annotations

import torch
from torch import nn

from quantsearch.data import DataSplits
from quantsearch.graph import trace
from tests.conftest import quick_train


class Counter:
    """Forward calls and samples seen, by every copy of a :class:`CountingReLU`."""

    calls = 0
    samples = 0

    @classmethod
    def reset(cls) -> None:
        cls.calls = cls.samples = 0


class CountingReLU(nn.ReLU):
    """A ReLU that counts its calls. ``op_kind`` makes it a leaf of quantsearch's tracer, so the
    count survives tracing and quantizing (the quantize pass copies modules, not hooks)."""

    op_kind = "relu"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        Counter.calls += 1
        Counter.samples += int(x.shape[0])
        return super().forward(x)


def counting_mlp(digits: DataSplits) -> torch.fx.GraphModule:
    """64 -> 16 -> 10 on digits, briefly trained, traced; the counter reset after tracing."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 16), CountingReLU(), nn.Linear(16, 10))
    gm = trace(quick_train(model, digits), digits.val.x[:8])
    Counter.reset()
    return gm
