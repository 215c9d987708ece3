"""SearchResult.read: a search run directory read back, older trials.jsonl layouts included."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from quantsearch.errors import ConfigError
from quantsearch.search.results import SearchResult
from quantsearch.search.trial import TrialInfo


def _result() -> SearchResult:
    trials = [
        TrialInfo(0, "COMPLETE", {"w": 8}, (0.5,), {"accuracy": 0.5}, True, config_hash="a",
                  config={"fc": {"weight": {"format": "fixed", "width": 8}}}),
        TrialInfo(1, "COMPLETE", {"w": 4}, (0.9,), {"accuracy": 0.9}, True, config_hash="b"),
        TrialInfo(2, "COMPLETE", {"w": 2}, (1.0,), {"accuracy": 1.0}, False, config_hash="c"),
    ]  # fmt: skip
    return SearchResult(trials, {"accuracy": 0.95}, ["maximize"], "weighted_sum", ["accuracy"],
                        space_size=3, study_name="s", strategy="tpe", seed=4)  # fmt: skip


def test_read_gives_back_what_write_wrote(tmp_path: Path) -> None:
    original = _result()
    original.write(tmp_path)
    back = SearchResult.read(tmp_path)
    assert back.trials == original.trials
    assert (back.strategy, back.seed, back.study_name) == ("tpe", 4, "s")
    assert back.best is not None and back.best.number == 1  # the infeasible 1.0 never counts
    assert back.configs == {"a": original.trials[0].config}


def test_read_ignores_keys_it_does_not_know(tmp_path: Path) -> None:
    _result().write(tmp_path)
    lines = [json.loads(x) for x in (tmp_path / "trials.jsonl").read_text().splitlines()]
    for d in lines:
        d["written_by_a_newer_version"] = True
    (tmp_path / "trials.jsonl").write_text("\n".join(json.dumps(d) for d in lines) + "\n")
    assert [t.number for t in SearchResult.read(tmp_path).trials] == [0, 1, 2]


def test_a_missing_summary_is_a_run_dir_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"RUN_DIR: .* has no pareto\.json"):
        SearchResult.read(tmp_path)
