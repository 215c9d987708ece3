"""A user's own evaluation function: ``evaluate(model, batches) -> {name: value}``.

For tasks the built-in quality metrics do not measure (regression, multi-label, anomaly scores
...). ``model`` is the candidate (quantized) model in eval mode; ``batches`` iterates the
validation data as ``(x, y)`` batches on the model's device, as often as the function likes.
The function runs under ``torch.inference_mode()``; it returns a mapping of metric names to
real numbers (floats, ints, 0-d tensors or numpy scalars).

Each name it returns that a search uses needs a direction (``maximize`` or ``minimize``): see
:func:`quantsearch.metrics.declare_user_metrics`.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from quantsearch.data import Split
from quantsearch.errors import MetricError

__all__ = ["Batches", "UserEvaluate", "run_user_evaluate"]

UserEvaluate = Callable[[nn.Module, "Batches"], Mapping[str, Any]]


class Batches:
    """The validation data as ``(x, y)`` batches; iterable any number of times.

    Example:
        >>> import torch
        >>> b = Batches(Split(torch.zeros(5, 2), torch.zeros(5)), 2)
        >>> len(b), [len(x) for x, _ in b], b.samples
        (3, [2, 2, 1], 5)
    """

    def __init__(self, data: Split, batch_size: int) -> None:
        self.data, self.batch_size = data, batch_size

    @property
    def samples(self) -> int:
        """How many samples the batches hold together."""
        return len(self.data)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self.data.batches(self.batch_size)

    def __len__(self) -> int:
        return -(-len(self.data) // self.batch_size)


def run_user_evaluate(
    fn: UserEvaluate, names: Sequence[str], model: nn.Module, data: Split, batch_size: int
) -> dict[str, float]:
    """Call ``fn`` on ``model`` and ``data``; its values of ``names`` as floats.

    Raises:
        MetricError: the function raised (its exception is named and chained), returned no
            mapping, left out one of ``names`` or gave a value that is not a real number.
    """
    who = getattr(fn, "__qualname__", type(fn).__name__)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            out = fn(model, Batches(data, batch_size))
    except (Exception, SystemExit) as exc:  # sys.exit() inside: not the search's silent end
        raise MetricError(f"evaluate function {who!r} failed: {type(exc).__name__}: {exc}") from exc
    finally:
        model.train(was_training)
    if not isinstance(out, Mapping):
        raise MetricError(
            f"evaluate function {who!r} returned a {type(out).__name__}; expected a dict of "
            f"metric name -> number"
        )
    missing = [n for n in names if n not in out]
    if missing:  # each name is declared in [metrics] directions or given one by an objective
        raise MetricError(
            f"metrics.directions.{missing[0]} (or the objective naming it): evaluate function "
            f"{who!r} returned no {missing[0]!r}, allowed: the metrics it returns "
            f"({sorted(map(str, out))})"
        )
    return {n: _number(out[n], n, who) for n in names}


def _number(value: Any, name: str, who: str) -> float:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return float(value.item())
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        try:
            return float(value)  # NaN and inf pass: the evaluator fails such a trial, naming them
        except OverflowError:  # an int past 1.8e308 (a traceback)
            pass
    raise MetricError(
        f"evaluate function {who!r} returned {name} = {value!r:.60}; expected a real number"
    )
