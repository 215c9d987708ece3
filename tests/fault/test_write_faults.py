"""Writes that fail midway (EFBIG from a file-size limit, the way a full disk fails one with
ENOSPC) in real `quantsearch` processes: the journal append of a search, the run directory's
files, a checkpoint, the QONNX file, the hls4ml project, a comparison and the split cache.

Each failing command ends in one ``error:`` line with exit status 2 (no traceback); the file or
folder it was writing is left as it was before (byte for byte; no temporary beside it); the
same command without the limit ("space freed") then succeeds and loses nothing that was done.
The previous export a test starts from runs in-process through the CLI's entry point (a
process's start-up is most of its cost); every command a limit applies to, and its rerun, is a
real process. Referees: Optuna's own ``load_study`` for the journal, ``onnx.checker`` for the
QONNX file, ``torch.load`` for the checkpoint, numpy's ``np.load`` for the cache.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fault.conftest import N_TRIALS, SEARCH
from tests.fault.harness import digest, in_process, quantsearch

pytestmark = pytest.mark.slow
LIMIT = 20_000  # bytes: under the journal, trials.jsonl, report.html and a checkpoint of `made`


def _trials(run_dir: Path) -> dict[int, tuple[str, list[float] | None, dict[str, object]]]:
    """Every trial of the run's study as Optuna's own reader replays the journal."""
    import optuna

    from quantsearch.search.storage import open_storage

    study = optuna.load_study(study_name=run_dir.name, storage=open_storage(None, run_dir))
    return {t.number: (t.state.name, t.values, t.params) for t in study.get_trials()}


def test_a_journal_append_that_fails_stops_the_search_and_a_rerun_keeps_every_trial(
    work: Path,
) -> None:
    """Each record written at once (``group_commit_ms = 0``), so that the limit falls between
    trials; with group commit the trials of the group that failed are lost with it (at most
    ``group_commit_ms`` of them), which this test would not tell from a lost older one."""
    cfg = SEARCH.format(n=N_TRIALS).replace("[search]\n", "[search]\ngroup_commit_ms = 0\n")
    (work / "t.toml").write_text(cfg)
    # Three quarters of the fault-free journal: a random search's batches are sized by its
    # pace (timing), so a fixed byte count may fall before the first completed trial; a
    # quarter of the records' bytes is more than the last trials' completions
    limit = (work / "runs" / "s" / "study.journal").stat().st_size * 3 // 4
    r = quantsearch(["search", "-c", "t.toml", "-q", "--run-dir", "new"], fsize=limit, cwd=work)
    assert "study.journal" in r.one_error_line()
    journal = work / "new" / "t" / "study.journal"
    assert 0 < journal.stat().st_size <= limit and journal.read_bytes().endswith(b"\n")
    before = {n: t for n, t in _trials(work / "new" / "t").items() if t[0] == "COMPLETE"}
    assert 0 < len(before) < N_TRIALS
    again = quantsearch(["search", "-c", "t.toml", "-q", "--run-dir", "new"], cwd=work)
    assert again.code == 0, again.err
    after = _trials(work / "new" / "t")
    assert {n: after[n] for n in before} == before  # every completed trial kept, as it was
    # and the study is the one the same search without a fault made (`runs/s`, same seed)
    assert after == _trials(work / "runs" / "s")


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["search", "-c", "s.toml", "-q", "--run-dir", "runs"], "trials.jsonl"),
        (["report", "runs/s"], "report.html"),
    ],
)
def test_a_run_directory_write_that_fails_leaves_the_previous_files(
    work: Path, args: list[str], names: str
) -> None:
    """The search's budget is met: the command only rewrites the result files (or the
    report), and the first one past the limit fails."""
    rd = work / "runs" / "s"
    before = digest(rd)
    assert names in quantsearch(args, fsize=LIMIT, cwd=work).one_error_line()
    assert digest(rd) == before
    again = quantsearch(args, cwd=work)
    assert again.code == 0, again.err
    assert quantsearch(["report", "runs/s"], cwd=work).code == 0


def test_a_checkpoint_write_that_fails_leaves_the_previous_checkpoint(work: Path) -> None:
    """torch's zip writer turned the failed write into a RuntimeError traceback."""
    import torch

    old = (work / "m.pt").read_bytes()
    args = ["train", "--epochs", "1", "--out", "m.pt"]
    assert "m.pt" in quantsearch(args, fsize=LIMIT, cwd=work).one_error_line()
    assert (work / "m.pt").read_bytes() == old
    assert sorted(p.name for p in work.iterdir() if p.name.startswith(".")) == []
    assert quantsearch(args, cwd=work).code == 0
    assert "state_dict" in torch.load(work / "m.pt", weights_only=True)


def test_a_qonnx_write_that_fails_leaves_the_previous_file(
    work: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    onnx = pytest.importorskip("onnx", reason="the export extra: pip install 'quantsearch[export]'")
    args = ["export", "--to", "qonnx", "m.onnx", "--from-run", "runs/s"]
    monkeypatch.chdir(work)
    first = in_process(args, monkeypatch, capsys)
    assert first.code == 0 and "replaced" not in first.out, first.err
    old = (work / "m.onnx").read_bytes()
    assert "m.onnx" in quantsearch(args, fsize=1000, cwd=work).one_error_line()
    assert (work / "m.onnx").read_bytes() == old
    assert sorted(p.name for p in work.iterdir() if p.name.startswith(".")) == []
    again = quantsearch(args, cwd=work)
    assert again.code == 0 and "replaced the previous m.onnx" in again.out, again.err
    onnx.checker.check_model(onnx.load(str(work / "m.onnx")))


def test_an_hls4ml_project_write_that_fails_leaves_the_previous_project(
    work: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("hls4ml", reason="the export extra: pip install 'quantsearch[export]'")
    args = ["export", "--to", "hls4ml", "prj", "--from-run", "runs/s", "--float-as", "fixed(32,16)"]
    monkeypatch.chdir(work)
    assert in_process(args, monkeypatch, capsys).code == 0
    before = digest(work / "prj")
    assert "hls4ml_config.yml" in before and "build_prj.tcl" in before
    assert "prj" in quantsearch(args, fsize=3000, cwd=work).one_error_line()
    assert digest(work / "prj") == before  # not half of a new project over the old one
    assert sorted(p.name for p in work.iterdir() if p.name.startswith(".")) == []
    again = quantsearch(args, cwd=work)
    assert again.code == 0 and "replaced the previous prj" in again.out, again.err
    now = digest(work / "prj")  # the same project, written whole; hls4ml itself stamps
    varies = {"build_lib.sh", "hls4ml_config.yml"}  # these anew each write (a random stamp)
    assert now.keys() == before.keys()
    assert {k: v for k, v in now.items() if k not in varies} == {
        k: v for k, v in before.items() if k not in varies
    }
    assert "OutputDir: prj\n" in (work / "prj" / "hls4ml_config.yml").read_text()


def test_an_hls4ml_export_into_a_folder_of_other_files_is_refused(
    work: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Replacing OUT whole must never remove what is not an export's (refused before any
    write: in-process, as test_export_out's refusals)."""
    pytest.importorskip("hls4ml", reason="the export extra: pip install 'quantsearch[export]'")
    (work / "mine").mkdir()
    (work / "mine" / "notes.txt").write_text("keep")
    args = [
        "export",
        "--to",
        "hls4ml",
        "mine",
        "--from-run",
        "runs/s",
        "--float-as",
        "fixed(32,16)",
    ]
    monkeypatch.chdir(work)
    line = in_process(args, monkeypatch, capsys).one_error_line()
    assert line.startswith("error: OUT: got 'mine', a folder that is not an export's"), line
    assert digest(work / "mine") == {"notes.txt": digest(work / "mine")["notes.txt"]}


def test_a_comparison_write_that_fails_ends_in_one_line_and_a_rerun_writes_it(
    work: Path,
) -> None:
    from quantsearch.compare.result import ComparisonResult

    args = ["compare", "-c", "s.toml", "--strategies", "random,tpe", "--seeds", "1",
            "--trials", "4", "--run-dir", "cmp"]  # fmt: skip
    assert "cannot be written" in quantsearch(args, fsize=3000, cwd=work).one_error_line()
    assert not list((work / "cmp").rglob("comparison.json"))  # no comparison from half a write
    assert not list((work / "cmp").rglob("*.tmp"))  # no temporary left behind
    again = quantsearch(args, cwd=work)
    assert again.code == 0, again.err
    (found,) = (work / "cmp").rglob("comparison.json")
    assert set(ComparisonResult.read(found.parent).strategies) == {"random", "tpe"}


def test_a_split_cache_write_that_fails_costs_only_the_preparation(work: Path) -> None:
    """The cache is an optimisation: a write past the limit is skipped (no partial file), the
    command succeeds, and a later run without the limit fills it."""
    import numpy as np

    cache = work / "cache"
    args = ["train", "--epochs", "1", "--out", "m1.pt"]
    assert quantsearch(args, fsize=100_000, cwd=work, cache=cache).code == 0
    assert not cache.exists() or list(cache.iterdir()) == []
    assert quantsearch(args, cwd=work, cache=cache).code == 0
    (npz,) = cache.iterdir()
    with np.load(npz) as f:
        assert {"x_train", "y_train", "x_val", "y_val", "x_test", "y_test"} == set(f.files)
