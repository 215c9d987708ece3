"""The Evaluator's fast path: slot-filled trials equal quantize(), the baseline is measured once."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from quantsearch.compare.run import run_comparison
from quantsearch.data import DataSplits
from quantsearch.graph import trace
from quantsearch.metrics import compute_metrics
from quantsearch.passes.transform import quantize
from quantsearch.search import evaluate as evaluate_module
from quantsearch.search.api import prepare_search
from quantsearch.search.config import parse_search_config
from tests.search.spaces import LAB_SPACE

OBJ = {"accuracy": {"direction": "maximize"}}


def test_a_comparison_measures_the_float_baseline_once(
    mlp: nn.Module, digits: DataSplits, monkeypatch: pytest.MonkeyPatch
) -> None:
    gm = trace(mlp, digits.val.x[:8])
    cfg = parse_search_config({"space": LAB_SPACE, "objectives": OBJ})
    space, evaluator = prepare_search(gm, cfg, digits.val)
    floats: list[Any] = []
    real = evaluate_module.compute_metrics

    def counting(g: Any, *a: Any, **kw: Any) -> dict[str, float]:
        if g is evaluator.gm:
            floats.append(g)
        return real(g, *a, **kw)

    monkeypatch.setattr(evaluate_module, "compute_metrics", counting)
    res = run_comparison(
        space, evaluator, cfg, strategies=["random", "tpe"], seeds=[0, 1], n_trials=4
    )
    assert len(res.runs) >= 4 and len(floats) == 1


def test_search_trials_equal_quantize_exactly(mlp: nn.Module, digits: DataSplits) -> None:
    gm = trace(mlp, digits.val.x[:8])
    cfg = parse_search_config({"space": LAB_SPACE, "objectives": OBJ})
    space, evaluator = prepare_search(gm, cfg, digits.val)
    metrics = ["accuracy", "loss", "model_size_bits", "bitops"]
    for index in [0, 5, 0, space.size - 1, 5]:
        rc = evaluator.resolve(space.layer_formats(space.point(index)))
        slot = evaluator.prepared().apply_(rc)
        fresh = quantize(gm, rc)
        with torch.no_grad():
            assert torch.equal(slot(digits.val.x), fresh(digits.val.x))
        want = compute_metrics(fresh, metrics, data=digits.val)
        assert compute_metrics(slot, metrics, data=digits.val) == want


def test_evaluate_many_equals_one_at_a_time(mlp: nn.Module, digits: DataSplits) -> None:
    gm = trace(mlp, digits.val.x[:8])
    cfg = parse_search_config({"space": LAB_SPACE, "objectives": OBJ})
    space, evaluator = prepare_search(gm, cfg, digits.val)
    configs = [evaluator.resolve(space.layer_formats(space.point(i))) for i in range(space.size)]
    many = evaluator.evaluate_many(configs)
    assert len(many) == space.size
    for rc, got in zip(configs, many, strict=True):
        want = evaluator.evaluate(rc)
        assert got.metrics == want.metrics and got.error == want.error
    assert evaluator.evaluate_many([]) == []
