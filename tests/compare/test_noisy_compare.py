"""Issue 14 item 10: a timed (noisy) objective in a comparison. ``latency_ms`` is measured with
repeats and its spread kept (``latency_ms_iqr``), the float baseline is measured once for the
whole comparison, and differences within the noise are not told apart."""

from __future__ import annotations

import math

import pytest
from torch import nn

from quantsearch.compare import run_comparison
from quantsearch.data import DataSplits
from quantsearch.metrics import compute_metrics
from quantsearch.metrics.specs import metric_spec
from quantsearch.report.findings import comparison_findings
from tests.compare.fixtures import make_lab

LATENCY = {
    "accuracy": {"direction": "maximize", "weight": 1.0},
    "latency_ms": {"direction": "minimize", "weight": 0.5, "relative_to_baseline": True},
}


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_a_relative_latency_objective_in_a_small_compare(
    mlp: nn.Module, digits: DataSplits
) -> None:
    assert not metric_spec("latency_ms").deterministic and metric_spec("accuracy").deterministic
    lab = make_lab(mlp, digits, LATENCY, constraints={})
    cmp = run_comparison(
        lab.space, lab.evaluator, lab.cfg, strategies=("brute_force", "random", "tpe"),
        seeds=(0, 1), n_trials=16,
    )  # fmt: skip
    # the baseline: measured once, the same numbers in every run and in the comparison
    base = cmp.baseline
    assert base["latency_ms_iqr"] >= 0 and base["latency_ms"] > 0
    assert all(r.baseline == base for r in cmp.results)
    assert cmp.ground_truth is not None and cmp.ground_truth.baseline == base
    # every measured config carries its spread, and its objective is what the config says
    for r in cmp.results:
        for t in r.complete:
            assert t.metrics["latency_ms_iqr"] >= 0
            assert t.values is not None
            expect = t.metrics["accuracy"] - 0.5 * t.metrics["latency_ms"] / base["latency_ms"]
            assert t.values[0] == pytest.approx(expect)
    # the noise, by hand: weight x the baseline's IQR relative to its median
    assert cmp.noisy_metrics == ("latency_ms",)
    assert cmp.noise == pytest.approx(0.5 * base["latency_ms_iqr"] / base["latency_ms"])
    # regrets are never negative, and every run whose best is within the noise of the
    # exhaustive optimum counts as reaching it (the referee: each run's own trials)
    assert cmp.reference == "exhaustive" and cmp.optimum is not None
    for r, m in zip(cmp.results, cmp.runs, strict=True):
        best = max(t.values[0] for t in r.feasible if t.values)
        assert best <= cmp.optimum + 1e-12  # no run beats the exhaustive optimum
        assert all(cmp.optimum - q >= -1e-12 for q in m.quality_by_trial if math.isfinite(q))
        assert (m.trials_to_optimum is not None) == (best >= cmp.optimum - cmp.noise - 1e-9)
    brute = cmp.stats_of("brute_force")
    assert brute.reached == brute.runs
    findings = " ".join(comparison_findings(cmp))
    assert "latency_ms is timed" in findings and "within the noise" in findings


def test_compute_metrics_gives_a_noisy_metric_its_spread(
    mlp: nn.Module, digits: DataSplits
) -> None:
    from quantsearch.graph import trace

    gm = trace(mlp, digits.val.x[:8])
    m = compute_metrics(gm, ["accuracy", "latency_ms"], data=digits.val.head(64))
    assert list(m) == ["accuracy", "latency_ms", "latency_ms_iqr"]
    assert m["latency_ms_iqr"] >= 0 and m["latency_ms"] > 0
    assert "accuracy_iqr" not in m  # deterministic metrics have none
