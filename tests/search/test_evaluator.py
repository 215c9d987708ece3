"""The Evaluator's fast paths: slot-filled trials equal quantize(), the baseline is measured once,
and a population (evaluate_many) equals one evaluate() per config, dict for dict."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from quantsearch.compare.run import run_comparison
from quantsearch.data import DataSplits, Split
from quantsearch.errors import ConfigError
from quantsearch.formats import FixedPoint
from quantsearch.graph import info, trace
from quantsearch.metrics import compute_metrics
from quantsearch.models import build_model
from quantsearch.passes.transform import ResolvedConfig, quantize
from quantsearch.passes.transform.graph_view import GraphView
from quantsearch.passes.transform.population import population_refusal
from quantsearch.passes.transform.slots import PreparedModel
from quantsearch.search import evaluate as evaluate_module
from quantsearch.search.api import prepare_search
from quantsearch.search.config import parse_search_config
from quantsearch.search.evaluate import Evaluator
from tests.passes.transform.test_population import random_configs
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
    cfg = parse_search_config({"space": LAB_SPACE, "objectives": OBJ, "device": "cpu"})
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


def test_resolve_keeps_one_graph_view_and_equals_from_dict(
    mlp: nn.Module, digits: DataSplits, monkeypatch: pytest.MonkeyPatch
) -> None:
    gm = trace(mlp, digits.val.x[:8])
    cfg = parse_search_config({"space": LAB_SPACE, "objectives": OBJ, "device": "cpu"})
    space, evaluator = prepare_search(gm, cfg, digits.val)
    views: list[GraphView] = []
    real = GraphView.__init__

    def counted(self: GraphView, g: Any) -> None:
        views.append(self)
        real(self, g)

    monkeypatch.setattr(GraphView, "__init__", counted)
    for index in range(space.size):
        formats = space.layer_formats(space.point(index))
        got = evaluator.resolve(formats)
        assert got.key() == ResolvedConfig.from_dict(formats, gm=gm, key="search").key()
        assert got.bind(gm) is got  # checked against the graph already
    assert len(views) == 1 + space.size  # the evaluator's one, and one per from_dict above
    bad = {"nowhere": {"weight": {"format": "fixed", "width": 8, "frac_width": 4}}}
    with pytest.raises(ConfigError) as fresh:
        ResolvedConfig.from_dict(bad, gm=gm, key="search")
    with pytest.raises(ConfigError) as kept:
        evaluator.resolve(bad)
    assert str(kept.value) == str(fresh.value)


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


def _jsc_lab(space_table: dict[str, Any] = LAB_SPACE) -> tuple[Any, Any, list[Any]]:
    """jsc-tiny on 512 seeded samples, the lab's 16-point space: (space, evaluator, configs)."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    data = Split(torch.randn(512, 16, generator=g), torch.randint(0, 5, (512,), generator=g))
    gm = trace(build_model("jsc-tiny").eval(), data.x[:8])
    obj = {**OBJ, "model_size_bits": {"direction": "minimize"}}
    cfg = parse_search_config({"space": space_table, "objectives": obj})
    space, evaluator = prepare_search(gm, cfg, data)
    configs = [evaluator.resolve(space.layer_formats(space.point(i))) for i in range(space.size)]
    return space, evaluator, configs


def _no_single_path(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: Evaluator, rc: Any) -> Any:
        raise AssertionError("evaluate_many fell back to one config at a time")

    monkeypatch.setattr(Evaluator, "evaluate", refuse)


@pytest.mark.parametrize("bias", ["same_as_weight", None])
def test_the_lab_population_equals_sixteen_single_evaluations(
    monkeypatch: pytest.MonkeyPatch, bias: str | None
) -> None:
    """MASE's lab space quantizes the bias with the weight's format: the linear layer's 16
    variants run as one batched kernel (.batched: exact by the fixed-point bound). With a
    float bias (off any coarse grid) each runs its own call. Equal dicts either way."""
    choices = dict(LAB_SPACE["choices"]["linear"])  # type: ignore[index]
    if bias is None:
        del choices["bias"]
    _, evaluator, configs = _jsc_lab({**LAB_SPACE, "choices": {"linear": choices}})
    want = [evaluator.evaluate(rc) for rc in configs]
    with monkeypatch.context() as m:
        _no_single_path(m)  # the population path answers every config itself
        got = evaluator.evaluate_many(configs)
    assert [g.metrics for g in got] == [w.metrics for w in want]
    assert [list(g.metrics or ()) for g in got] == [list(w.metrics or ()) for w in want]
    assert all(g.error is None and g.seconds > 0 for g in got)
    batched = evaluator._local.population.batched_calls
    assert batched == (1 if bias else 0)  # one batch of 512 samples


@pytest.mark.parametrize(
    "model_name", ["mlp-digits", pytest.param("cnn-digits", marks=pytest.mark.slow)]
)
def test_random_per_layer_populations_equal_single_evaluations(
    model_name: str, digits: DataSplits, monkeypatch: pytest.MonkeyPatch
) -> None:
    torch.manual_seed(0)
    shape = (1, 8, 8) if model_name == "cnn-digits" else (64,)
    val = digits.val.reshape(shape)
    gm = trace(build_model(model_name).eval(), val.x[:8])
    names = [
        "accuracy",
        "balanced_accuracy",
        "loss",
        "top3_accuracy",
        "model_size_bits",
        "bitops",
        "macs",
        "activation_bits",
        "avg_weight_bits",
    ]
    # small batches: several per evaluation; a small memory budget: chunks of about 5 configs
    big = Evaluator(gm, val, names, batch_size=100, population_bytes=2**30)
    per_config = 2**30 // big.population_chunk()
    evaluator = Evaluator(gm, val, names, batch_size=100, population_bytes=5 * per_config)
    assert 1 < evaluator.population_chunk() < 12
    configs = random_configs(gm, 12, seed=1)
    configs += configs[:2]
    want = [evaluator.evaluate(rc) for rc in configs]
    with monkeypatch.context() as m:
        _no_single_path(m)
        got = evaluator.evaluate_many(configs)
    assert [(g.metrics, g.error) for g in got] == [(w.metrics, w.error) for w in want]


def test_a_refused_population_falls_back_to_single_evaluations(digits: DataSplits) -> None:
    gm = trace(build_model("mlp-digits").eval(), digits.val.x[:8])
    evaluator = Evaluator(gm, digits.val, ["accuracy", "loss", "bitops"], device="cpu")
    configs = random_configs(gm, 3, seed=2)
    lin = next(n for n in gm.graph.nodes if info(n).op_kind == "linear")
    stochastic = FixedPoint(6, 3, rounding="stochastic").to_dict()
    configs.append(ResolvedConfig.from_dict({lin.name: {"data_in": stochastic}}, gm=gm))
    bound = [rc.bind(gm) for rc in configs]
    assert "stochastic" in str(population_refusal(gm, bound))
    torch.manual_seed(3)  # the same draws on both paths: evaluated one at a time, in order
    got = evaluator.evaluate_many(configs)
    torch.manual_seed(3)
    want = [evaluator.evaluate(rc) for rc in configs]
    assert [(g.metrics, g.error) for g in got] == [(w.metrics, w.error) for w in want]
    noisy = Evaluator(gm, digits.val, ["accuracy", "latency_ms"], device="cpu")
    assert "noisy" in str(noisy.population_refusal())
    assert len(noisy.evaluate_many(configs[:1])) == 1


def test_answering_evaluates_once_and_answers_each_config_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, evaluator, configs = _jsc_lab()
    want = [evaluator.evaluate(rc) for rc in configs]
    with evaluator.answering(configs):
        with monkeypatch.context() as m:  # nothing can be measured: every answer is kept
            m.setattr(PreparedModel, "apply_", lambda self, rc: 1 / 0)
            m.setattr(Evaluator, "_population", lambda self, chunk: 1 / 0)
            got = evaluator.evaluate_many(configs[:8])
            got += [evaluator.evaluate(rc) for rc in configs[8:]]
        assert [g.metrics for g in got] == [w.metrics for w in want]
        again = evaluator.evaluate(configs[0])  # answered once: measured anew
        assert again.metrics == want[0].metrics and again is not got[0]
    assert evaluator.evaluate(configs[9]) is not got[9]


def test_a_user_evaluate_function_is_run_one_config_at_a_time(digits: DataSplits) -> None:
    from quantsearch.metrics.specs import declare_user_metrics

    calls: list[int] = []

    def user(model: nn.Module, batches: Any) -> dict[str, Any]:
        calls.append(1)
        with torch.no_grad():
            return {"pop_t_mean": float(sum(model(x).mean() for x, _ in batches))}

    declare_user_metrics(user, {"pop_t_mean": "maximize"})
    gm = trace(build_model("mlp-digits").eval(), digits.val.x[:8])
    evaluator = Evaluator(gm, digits.val, ["accuracy", "pop_t_mean"], device="cpu")
    assert "user evaluate" in str(evaluator.population_refusal())
    configs = random_configs(gm, 3, seed=4)
    got = evaluator.evaluate_many(configs)
    assert len(calls) == 3  # the user's function once per config, as evaluate() calls it
    assert [g.metrics for g in got] == [evaluator.evaluate(rc).metrics for rc in configs]


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_a_non_finite_metric_is_an_error_naming_it_and_finite_ones_are_not(bad: float) -> None:
    """_finish's shortcut for all-finite metrics: a non-finite value (math.isfinite says so)
    still names every bad metric, sorted; finite ones give no error."""
    ok = evaluate_module._finish({"accuracy": 0.5, "loss": 1.25}, 0.1)
    assert ok.error is None and ok.metrics == {"accuracy": 0.5, "loss": 1.25}
    got = evaluate_module._finish({"loss": bad, "accuracy": 0.5, "bitops": bad}, 0.1)
    assert got.error == "non-finite metric(s) ['bitops', 'loss']"
    assert got.metrics is not None and got.seconds == 0.1


def test_static_values_kept_by_totals_across_calls_equal_the_passes() -> None:
    """The evaluator keeps the static metrics' values by their totals across calls, for
    populations and single evaluations alike (the lab's 16 configs have fewer distinct
    totals): every dict still equals the passes and the quality metrics on each config's
    own ``quantize`` (the referee), the second time as the first."""
    _, evaluator, configs = _jsc_lab(LAB_SPACE)
    gm, data, names = evaluator.gm, evaluator.data, list(evaluator.metrics)
    want = [compute_metrics(quantize(gm, rc), names, data=data) for rc in configs]
    for _ in range(2):
        assert [e.metrics for e in evaluator.evaluate_many(configs)] == want
        assert [evaluator.evaluate(rc).metrics for rc in configs] == want
    assert 0 < len(evaluator._same_totals()) < len(configs)
