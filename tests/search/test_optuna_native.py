"""Results in Optuna's own tools: optuna-dashboard's JSON API, callbacks, ``to_dataframe``."""

from __future__ import annotations

import json
import threading
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

import optuna
import pytest
import torch

from quantsearch.cli import main
from quantsearch.models import build_model
from quantsearch.search import search

CONFIG = """
seed = 0
[model]
name = "mlp-digits"
checkpoint = "{ckpt}"
[data]
name = "digits"
[search]
n_trials = 8
[search.strategy]
name = "random"
[search.space.choices.linear]
data_in = [[16, 8], [4, 2]]
weight = [[16, 8], [8, 4], [4, 2], [2, 1]]
bias = "same_as_weight"
[search.objectives]
combine = "pareto"
accuracy = {{ direction = "maximize" }}
model_size_bits = {{ direction = "minimize" }}
[search.constraints]
accuracy_drop = {{ max = 0.05 }}
"""


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def dashboard(storage: str) -> Iterator[str]:
    """optuna-dashboard's WSGI app (its documented ``wsgi(storage)``) served on loopback."""
    import optuna_dashboard

    server = make_server("127.0.0.1", 0, optuna_dashboard.wsgi(storage), handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as resp:
        return json.load(resp)


def test_dashboard_lists_named_objectives_metrics_and_infeasible_trials(
    write_config: Callable[..., Path], mlp_checkpoint: Path, tmp_path: Path
) -> None:
    cfg = write_config(CONFIG.format(ckpt=mlp_checkpoint))
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    main(["search", "--config", str(cfg), "--storage", storage, "--study", "dash",
          "--run-dir", str(tmp_path / "run"), "--quiet"])  # fmt: skip
    with dashboard(storage) as base:
        (summary,) = _get(f"{base}/api/studies")["study_summaries"]
        assert summary["study_name"] == "dash"
        detail = _get(f"{base}/api/studies/{summary['study_id']}")
    assert detail["objective_names"] == ["accuracy", "model_size_bits"]
    assert detail["directions"] == ["maximize", "minimize"]
    trials = [t for t in detail["trials"] if t["state"] == "Complete"]
    assert trials
    base = {a["key"]: a["value"] for a in detail["user_attrs"]}["baseline"]
    base_acc = json.loads(base)["accuracy"] if isinstance(base, str) else base["accuracy"]
    for t in trials:
        attrs = {a["key"]: a["value"] for a in t["user_attrs"]}
        assert {"accuracy", "model_size_bits"} <= attrs.keys()  # one attribute per metric
        assert float(attrs["accuracy"]) == pytest.approx(t["values"][0])
        assert float(attrs["model_size_bits"]) == pytest.approx(t["values"][1])
        (con,) = t["constraints"]  # the dashboard marks a trial infeasible from these
        assert con == pytest.approx((base_acc - float(attrs["accuracy"])) - 0.05)
    feasible = {t["number"]: t["constraints"][0] <= 0 for t in trials}
    assert True in feasible.values() and False in feasible.values()  # 2-bit weights break it
    # Optuna reads the same values: its Pareto front holds feasible trials only.
    study = optuna.load_study(study_name="dash", storage=storage)
    assert study.metric_names == ["accuracy", "model_size_bits"]
    assert study.best_trials and all(feasible[t.number] for t in study.best_trials)


def test_callbacks_and_dataframe_match_optunas_own_view() -> None:
    torch.manual_seed(0)
    model = build_model("jsc-tiny").eval()
    x, y = torch.randn(64, 16), torch.randint(0, 5, (64,))
    seen: list[tuple[int, dict[str, Any]]] = []

    def callback(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        seen.append((trial.number, dict(trial.user_attrs)))

    result = search(model, (x, y), strategy="random", n_trials=6, seed=0,
                    space={"choices": {"linear": {"weight": [[8, 4], [4, 2], [2, 1]]}}},
                    objectives={"accuracy": {"direction": "maximize"}},
                    callbacks=[callback])  # fmt: skip
    assert [n for n, _ in seen] == [t.number for t in result.trials]
    assert all("accuracy" in attrs for _, attrs in seen)  # called once the record is stored

    df = result.to_dataframe()
    assert result.study is not None
    ref = result.study.trials_dataframe()  # Optuna's own table is the referee
    assert list(df["number"]) == list(ref["number"])
    assert list(df["metrics.accuracy"]) == pytest.approx(list(ref["user_attrs_accuracy"]))
    assert list(df["params.linear.weight"]) == list(ref["params_linear.weight"])
    # the value column is named by set_metric_names
    assert list(df["objective"]) == pytest.approx(list(ref["value_accuracy"]))
    assert result.study.metric_names == ["accuracy"]
