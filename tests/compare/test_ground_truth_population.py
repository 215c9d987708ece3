"""A comparison's ground truth is evaluated as one population; its trials stay those of a run
that evaluates each point alone (the referee: Evaluator.evaluate on a fresh evaluator)."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from quantsearch.compare import run_comparison
from quantsearch.data import Split
from quantsearch.graph import trace
from quantsearch.models import build_model
from quantsearch.search.api import prepare_search
from quantsearch.search.config import parse_search_config
from quantsearch.search.evaluate import Evaluator
from tests.search.spaces import LAB_SPACE

OBJ = {"accuracy": {"direction": "maximize"}, "model_size_bits": {"direction": "minimize"}}


def _lab(fidelity: Any = None) -> tuple[Any, Evaluator, Any, Split]:
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    data = Split(torch.randn(512, 16, generator=g), torch.randint(0, 5, (512,), generator=g))
    gm = trace(build_model("jsc-tiny").eval(), data.x[:8])
    raw: dict[str, Any] = {"space": LAB_SPACE, "objectives": OBJ}
    if fidelity is not None:
        raw["fidelity"] = fidelity
    cfg = parse_search_config(raw)
    space, evaluator = prepare_search(gm, cfg, data)
    return space, evaluator, cfg, data


def _spy(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    sizes: list[int] = []
    real = Evaluator.evaluate_many

    def counting(self: Evaluator, resolved: Any) -> Any:
        sizes.append(len(resolved))
        return real(self, resolved)

    monkeypatch.setattr(Evaluator, "evaluate_many", counting)
    return sizes


def test_the_ground_truth_is_one_population_with_single_path_metrics(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    space, evaluator, cfg, data = _lab()
    sizes = _spy(monkeypatch)
    res = run_comparison(space, evaluator, cfg, strategies=["random"], seeds=[0], n_trials=4)
    assert sizes[0] == space.size == 16
    monkeypatch.undo()
    truth = res.ground_truth
    assert truth is not None and len(truth.trials) == 16
    # every trial read its point's population result: each is an equal share of one call
    assert len({t.eval_seconds for t in truth.trials}) == 1
    assert all(t.cached for t in res.results[0].trials)  # the shared cache holds the truth
    assert res.evaluations == 16
    _, referee, _, _ = _lab()
    for t in truth.trials:
        assert not t.cached and t.samples == len(data)
        rc = referee.resolve(space.layer_formats(space.decode(t.params)))
        assert t.metrics == referee.evaluate(rc).metrics


def test_a_ground_truth_with_partial_fidelity_evaluates_as_it_would_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    space, evaluator, cfg, _ = _lab(fidelity="successive_halving")
    sizes = _spy(monkeypatch)
    run_comparison(space, evaluator, cfg, strategies=["random"], seeds=[0], n_trials=2)
    assert sizes == []
