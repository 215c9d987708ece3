"""A user's evaluate function: declared metrics are known by name with their direction, one
call gives all of them, and what goes wrong inside names the function and the cause."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from quantsearch.data import Split
from quantsearch.errors import MetricError
from quantsearch.graph import trace
from quantsearch.metrics import compute_metrics, metric_spec
from quantsearch.metrics.specs import builtin_metric, declare_user_metrics, is_user_metric
from quantsearch.metrics.user import Batches

X = torch.randn(30, 4, generator=torch.Generator().manual_seed(0))
Y = torch.randn(30, 2, generator=torch.Generator().manual_seed(1))
DATA = Split(X, Y)


@pytest.fixture(scope="module")
def gm() -> torch.fx.GraphModule:
    torch.manual_seed(0)
    return trace(nn.Linear(4, 2).eval(), X[:8])


def max_error(model: nn.Module, batches: Batches) -> dict[str, Any]:
    err = torch.cat([(model(x) - y).abs().flatten() for x, y in batches])
    return {"t_max_error": err.max(), "t_within": np.float64((err < 1).float().mean())}


def test_declared_metrics_have_their_direction_and_one_call_gives_them_all(
    gm: torch.fx.GraphModule,
) -> None:
    calls: list[int] = []

    def counted(model: nn.Module, batches: Batches) -> dict[str, Any]:
        calls.append(len(batches))
        return max_error(model, batches)

    declare_user_metrics(counted, {"t_max_error": "minimize", "t_within": "maximize"})
    assert metric_spec("t_max_error").direction == "minimize"
    assert metric_spec("t_within").direction == "maximize"
    assert is_user_metric("t_within") and not builtin_metric("t_within")
    out = compute_metrics(gm, ["t_within", "params", "t_max_error"], data=DATA, batch_size=7)
    assert calls == [5]  # one call, 30 samples in batches of 7
    with torch.no_grad():  # the referee: numpy on the model's own outputs
        err = np.abs(gm(X).numpy() - Y.numpy())
    assert out["t_max_error"] == pytest.approx(float(err.max()))
    assert out["t_within"] == pytest.approx(float(np.mean(err < 1)))
    assert list(out) == ["t_within", "params", "t_max_error"]


def test_batches_iterate_the_data_again_and_again() -> None:
    b = Batches(DATA, 8)
    first = [x for x, _ in b]
    again = [x for x, _ in b]
    assert len(b) == 4 and b.samples == 30
    assert all(torch.equal(a, c) for a, c in zip(first, again, strict=True))
    assert torch.equal(torch.cat(first), X)


@pytest.mark.parametrize(
    ("returned", "match"),
    [
        ("raise", r"evaluate function '.*' failed: ValueError: no good"),
        ([1.0], r"returned a list; expected a dict of metric name -> number"),
        (
            {"t_other": 1.0},
            r"^metrics\.directions\.t_bad \(or the objective naming it\): evaluate function "
            r"'.*' returned no 't_bad', allowed: the metrics it returns \(\['t_other'\]\)",
        ),
        ({"t_bad": "high"}, r"returned t_bad = 'high'; expected a real number"),
        ({"t_bad": torch.ones(3)}, r"returned t_bad = tensor.*; expected a real number"),
    ],
)
def test_what_goes_wrong_inside_is_one_metric_error(
    gm: torch.fx.GraphModule, returned: Any, match: str
) -> None:
    def fn(model: nn.Module, batches: Batches) -> Any:
        if returned == "raise":
            raise ValueError("no good")
        return returned

    declare_user_metrics(fn, {"t_bad": "minimize"})
    with pytest.raises(MetricError, match=match):
        compute_metrics(gm, ["t_bad"], data=DATA)


def test_a_builtin_name_or_a_bad_direction_is_refused() -> None:
    with pytest.raises(MetricError, match=r"^got 'mse', a built-in metric, allowed: "):
        declare_user_metrics(max_error, {"mse": "minimize"})
    with pytest.raises(MetricError, match=r"^got 'format\.fc1\.weight', a name the trial record"):
        declare_user_metrics(max_error, {"format.fc1.weight": "minimize"})
    with pytest.raises(MetricError, match=r"direction of 't_x': got 'up', allowed: one of .*"):
        declare_user_metrics(max_error, {"t_x": "up"})


def test_known_by_direction_only_where_the_function_is_absent(gm: torch.fx.GraphModule) -> None:
    declare_user_metrics(None, {"t_read_back": "maximize"})
    assert metric_spec("t_read_back").direction == "maximize"
    with pytest.raises(MetricError, match=r"come from a user evaluate function, which this"):
        compute_metrics(gm, ["t_read_back"], data=DATA)


def test_an_unhashable_callable_object_is_an_evaluate_function(gm: torch.fx.GraphModule) -> None:
    """A user's evaluator may be an object with __call__ and mutable state (a dataclass with
    eq, so unhashable); one call still gives every metric."""

    @dataclass
    class Evaluate:
        calls: list[int] = field(default_factory=list)

        def __call__(self, model: nn.Module, batches: Batches) -> dict[str, Any]:
            self.calls.append(len(batches))
            return max_error(model, batches)

    ev = Evaluate()
    with pytest.raises(TypeError):
        hash(ev)
    declare_user_metrics(ev, {"t_max_error": "minimize", "t_within": "maximize"})
    out = compute_metrics(gm, ["t_within", "t_max_error"], data=DATA, batch_size=10)
    assert ev.calls == [3] and set(out) == {"t_within", "t_max_error"}
