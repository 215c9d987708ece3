"""Regression errors of a model's output against float targets, in one forward pass.

Definitions (``N`` samples, each output ``o`` and target ``t`` of ``D`` values once ``t`` is
reshaped to the output's shape; a ``(N,)`` target fits a ``(N, 1)`` output):

* ``mse`` = sum over samples and values of ``(o - t)^2`` / (``N`` x ``D``): mean squared error,
  the mean over every output value (``torch.nn.functional.mse_loss``'s ``mean`` reduction).
* ``mae`` = the same mean of ``|o - t|``.

Sums run in float64, so the result does not depend on the evaluation batch size beyond
float32's rounding of each output.

Example:
    >>> import torch
    >>> from quantsearch.data import Split
    >>> data = Split(torch.tensor([[1.0], [2.0], [3.0]]), torch.tensor([1.0, 1.0, 5.0]))
    >>> regression_errors(torch.nn.Identity(), data)
    {'mse': 1.6666666666666667, 'mae': 1.0}
"""

from __future__ import annotations

import torch
from torch import nn

from quantsearch.data import Split
from quantsearch.errors import MetricError
from quantsearch.metrics.quality import device_of

__all__ = ["regression_errors"]


def regression_errors(model: nn.Module, data: Split, *, batch_size: int = 1024) -> dict[str, float]:
    """``mse`` and ``mae`` of ``model`` on ``data`` (one forward pass, eval mode, no grad).

    Raises:
        MetricError: the targets do not have as many values per sample as the output.
    """
    was_training = model.training
    model.eval()
    device = device_of(model)
    squared = absolute = 0.0
    values = 0
    try:
        with torch.inference_mode():
            for x, y in data.batches(batch_size):
                out = model(x.to(device))
                if not isinstance(out, torch.Tensor):
                    raise MetricError(
                        f"mse/mae need a model that returns one tensor (got {type(out).__name__})"
                    )
                t = y.to(device)
                if t.numel() != out.numel():
                    raise MetricError(
                        f"mse/mae need targets of the output's shape {tuple(out.shape)} (got "
                        f"targets of shape {tuple(t.shape)}); use an evaluate function for other "
                        f"targets"
                    )
                diff = out.double() - t.reshape(out.shape).double()
                squared += float(diff.square().sum())
                absolute += float(diff.abs().sum())
                values += diff.numel()
    finally:
        model.train(was_training)
    if values == 0:
        raise MetricError("mse/mae need at least one validation sample (got 0)")
    return {"mse": squared / values, "mae": absolute / values}
