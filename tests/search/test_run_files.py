"""A run directory whose files are not from one write: a command stopped between writing
trials.jsonl and best.json (a resumed search's new trials beside the previous summary), or a
file emptied since. `quantsearch report` must refuse it in one line naming the file and what
to do, never render a short table or end in a traceback; the search run again rewrites it."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from quantsearch.cli import main
from quantsearch.errors import ConfigError
from quantsearch.search.results import SearchResult
from tests.runs import WEIGHTED, make_run


def _report(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    capsys.readouterr()
    try:
        main(["report", str(run_dir)])
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    return code, [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]


@pytest.fixture(scope="module")
def resumed(tmp_path_factory: pytest.TempPathFactory, mlp_checkpoint: Path) -> tuple[Path, Path]:
    """A run of 2 trials, then the same study resumed to 4: its run directory, and the
    run-of-2 best.json kept aside (what a resumed search killed before its summary leaves)."""
    folder = tmp_path_factory.mktemp("resumed")
    rd = make_run(folder, mlp_checkpoint, WEIGHTED.replace("n_trials = 4", "n_trials = 2"))
    old = folder / "best-of-2.json"
    shutil.copyfile(rd / "best.json", old)
    assert make_run(folder, mlp_checkpoint, WEIGHTED) == rd
    assert len(SearchResult.read(rd).trials) == 4
    return rd, old


def test_a_summary_of_another_write_is_refused_in_one_line_and_the_search_rewrites_it(
    resumed: tuple[Path, Path], mlp_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rd, old = resumed
    shutil.copyfile(old, rd / "best.json")  # the summary of the first write, trials of the second
    with pytest.raises(ConfigError, match=r"counts 2 trials, trials\.jsonl holds 4"):
        SearchResult.read(rd)
    code, lines = _report(rd, capsys)
    assert code == 2 and len(lines) == 1, lines
    assert lines[0].startswith("error: RUN_DIR: ") and "best.json" in lines[0], lines
    assert "run the same `quantsearch search` again" in lines[0]
    make_run(rd.parent.parent, mlp_checkpoint, WEIGHTED)  # what the message says to do
    assert len(SearchResult.read(rd).trials) == 4
    assert _report(rd, capsys)[0] == 0


@pytest.mark.parametrize(
    "damage",
    ["trials.jsonl emptied", "last trial line cut off", "best trial edited"],
)
def test_trials_that_disagree_with_the_summary_are_refused(
    resumed: tuple[Path, Path], tmp_path: Path, damage: str, capsys: pytest.CaptureFixture[str]
) -> None:
    rd = tmp_path / "s"
    shutil.copytree(resumed[0], rd)
    path = rd / "trials.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    if damage == "trials.jsonl emptied":
        path.write_text("")
    elif damage == "last trial line cut off":
        path.write_text("".join(lines[:-1]))  # whole lines: each still parses
    else:
        best = SearchResult.read(rd).best
        assert best is not None and best.values is not None
        i = next(i for i, ln in enumerate(lines) if ln.startswith(f'{{"number": {best.number},'))
        shown = repr(best.values[0])
        assert shown in lines[i]
        lines[i] = lines[i].replace(shown, repr(best.values[0] / 2), 1)
        path.write_text("".join(lines))
    with pytest.raises(ConfigError, match=r"RUN_DIR: .*best\.json.* not from one write"):
        SearchResult.read(rd)
    code, err = _report(rd, capsys)
    assert code == 2 and len(err) == 1 and err[0].startswith("error: RUN_DIR: "), err


def _edit_summary(rd: Path, change: str) -> None:
    summary = json.loads((rd / "best.json").read_text())
    if change == "baseline not numbers":  # best.json's copy and baseline.json alike
        summary["baseline"] = {"accuracy": "abc"}
    elif change == "baseline.json not numbers":
        summary.pop("baseline", None)
        (rd / "baseline.json").write_text('{"accuracy": [1], "model_size_bits": 5}')
    elif change == "a direction not a direction":
        summary["directions"] = ["up"]
    elif change == "directions per objective of a weighted sum":
        summary["directions"] = ["maximize", "minimize"]
    elif change == "objectives empty":
        summary["objectives"] = []
    elif change == "combine unknown":
        summary["combine"] = "lexicographic"
    elif change == "a key missing":
        del summary["space_size"]
    elif change == "a list, not an object":
        summary = [summary]  # type: ignore[assignment]
    else:
        summary["space_size"] = True
    (rd / "best.json").write_text(json.dumps(summary))


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ("baseline not numbers", r"best\.json.*baseline accuracy = 'abc', allowed: a number"),
        ("baseline.json not numbers", r"baseline\.json.*baseline accuracy = \[1\]"),
        ("a direction not a direction", r"best\.json.*directions \['up'\]"),
        ("directions per objective of a weighted sum", r"allowed: 1 of 'maximize'/'minimize'"),
        ("objectives empty", r"objectives \[\], allowed: a list of metric names"),
        ("combine unknown", r"combine 'lexicographic', allowed"),
        ("space_size a bool", r"space_size True, allowed: a whole number >= 1"),
        ("a key missing", r"best\.json.*it lacks \['space_size'\]\), allowed: the file a search"),
        ("a list, not an object", r"a JSON list, not an object\), allowed: the file a search"),
    ],
)
def test_a_summary_no_search_writes_is_refused_in_one_line(
    resumed: tuple[Path, Path],
    tmp_path: Path,
    change: str,
    named: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # a garbage baseline was an internal-error traceback in `report`; bad directions and
    # objectives were rendered as if a search had written them
    rd = tmp_path / "s"
    shutil.copytree(resumed[0], rd)
    _edit_summary(rd, change)
    with pytest.raises(ConfigError, match=r"RUN_DIR: .*is damaged \(") as caught:
        SearchResult.read(rd)
    assert re.search(named, str(caught.value)), caught.value
    code, err = _report(rd, capsys)
    assert code == 2 and len(err) == 1 and err[0].startswith("error: RUN_DIR: "), err
