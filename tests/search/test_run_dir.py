"""From a search result back to its models: run directories written by a real search
(`quantsearch search`, in-process), opened with open_run; the test-split metrics of the
chosen configs; bad input as one ConfigError naming the option."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from quantsearch.data import DataSplits
from quantsearch.errors import ConfigError
from quantsearch.metrics import compute_metrics
from quantsearch.passes.transform import ResolvedConfig
from quantsearch.quantized import load_quantized, save_quantized
from quantsearch.search import search
from quantsearch.search.results import SearchResult
from quantsearch.search.run_dir import MODEL_FILE, open_run
from tests.runs import PARETO, make_run


@pytest.fixture(scope="module")
def weighted(tmp_path_factory: pytest.TempPathFactory, mlp_checkpoint: Path) -> Path:
    return make_run(tmp_path_factory.mktemp("weighted"), mlp_checkpoint)


@pytest.fixture(scope="module")
def pareto(tmp_path_factory: pytest.TempPathFactory, mlp_checkpoint: Path) -> Path:
    return make_run(tmp_path_factory.mktemp("pareto"), mlp_checkpoint, PARETO, name="p")


def test_round_trip_search_best_model_checkpoint_reload_is_bit_exact(
    weighted: Path, digits: DataSplits, tmp_path: Path
) -> None:
    result = open_run(weighted)
    best = result.best
    assert best is not None and result.searched is not None
    qgm = result.model(best)
    # the rebuilt model is the one the search measured: the same validation accuracy
    val = digits.val
    assert compute_metrics(qgm, ["accuracy"], data=val)["accuracy"] == best.metrics["accuracy"]
    assert ResolvedConfig.from_graph(qgm).to_dict() == result.config_of(best)

    path = save_quantized(
        tmp_path / "q.pt",
        qgm,
        model_name=result.searched.name,
        dataset="digits",
        sample_shape=digits.sample_shape,
    )
    reloaded = load_quantized(path)
    x = digits.test.x
    assert torch.equal(reloaded(x), qgm(x))
    assert not torch.equal(reloaded(x), result.searched.graph(x))  # quantized, not float
    assert ResolvedConfig.from_graph(reloaded) == ResolvedConfig.from_graph(qgm)
    assert type(reloaded.get_submodule("seq_blocks.0")).__name__ == "QuantLinear"


def test_every_trial_and_every_pareto_member_has_its_model(pareto: Path) -> None:
    result = open_run(pareto)
    assert result.combine == "pareto" and result.pareto
    for k, member in enumerate(result.pareto):
        assert result.select(pareto=k) == member
        qgm = result.model(member)
        assert ResolvedConfig.from_graph(qgm).to_dict() == result.config_of(member)
    for t in result.trials:
        assert ResolvedConfig.from_graph(result.model(t.number)).to_dict() == result.config_of(t)
    assert result.select() == result.pareto[0]  # the default: the front's first


def test_result_files_give_the_test_split_beside_the_validation_one(
    weighted: Path, pareto: Path, digits: DataSplits
) -> None:
    best = json.loads((weighted / "best.json").read_text())
    assert set(best["metric_splits"]) == {"metrics", "test_metrics"}
    assert "test" in best["metric_splits"]["test_metrics"]
    result = open_run(weighted)
    assert result.best is not None
    expected = compute_metrics(result.model(result.best), ["accuracy", "loss"], data=digits.test)
    entry = best["best"]
    assert entry["test_metrics"]["accuracy"] == expected["accuracy"]
    assert entry["test_metrics"]["loss"] == expected["loss"]
    assert "model_size_bits" not in entry["test_metrics"]  # data metrics only
    assert SearchResult.read(weighted).test_metrics == {entry["trial"]: entry["test_metrics"]}

    front = json.loads((pareto / "pareto.json").read_text())["front"]
    assert front and all("accuracy" in e["test_metrics"] for e in front)
    for run in (weighted, pareto):  # the report the search wrote shows them, labelled
        report = (run / "report.md").read_text()
        assert "## Held-out test split" in report and "accuracy (test)" in report


def test_a_search_from_python_gives_its_models(mlp: nn.Module, digits: DataSplits) -> None:
    result = search(
        mlp, digits.val, strategy="brute_force", n_trials=2,
        space={"choices": {"linear": {"weight": [[8, 4], [4, 2]]}}},
        objectives={"accuracy": {"direction": "maximize"}},
    )  # fmt: skip
    for t in result.trials:
        acc = compute_metrics(result.model(t), ["accuracy"], data=digits.val)["accuracy"]
        assert acc == t.metrics["accuracy"]


def test_bad_choices_are_config_errors_naming_the_option(weighted: Path, pareto: Path) -> None:
    w, p = open_run(weighted), open_run(pareto)
    with pytest.raises(
        ConfigError, match=r"^trial: got 99, allowed: a trial number of this run \(0\.\.3\)"
    ):
        w.model(99)
    with pytest.raises(ConfigError, match=r"^pareto: got 0 on a weighted-sum run"):
        w.select(pareto=0)
    with pytest.raises(ConfigError, match=r"^best: got it on a Pareto search"):
        p.select(best=True)
    with pytest.raises(ConfigError, match=r"^pareto: got 9, allowed: 0\.\."):
        p.select(pareto=9)
    with pytest.raises(ConfigError, match=r"^best: got it with trial"):
        w.select(trial=0, best=True)
    with pytest.raises(ConfigError, match=r"^trial: got a result without its model"):
        SearchResult.read(weighted).model(0)


def test_a_run_directory_without_its_model_is_refused(weighted: Path, tmp_path: Path) -> None:
    bare = tmp_path / "bare"
    bare.mkdir()
    for f in weighted.iterdir():
        if f.is_file() and f.name != MODEL_FILE:
            (bare / f.name).write_bytes(f.read_bytes())
    with pytest.raises(
        ConfigError, match=r"^RUN_DIR: got '.*bare', which has no model\.pt, allowed: "
    ):
        open_run(bare)
    with pytest.raises(ConfigError, match=r"^RUN_DIR: got '.*nowhere', which does not exist"):
        open_run(tmp_path / "nowhere")
