"""``kill -9`` of `export`, `report`, `compare` and `finetune` while they write their output.

Each command is killed the moment its temporary (``.<name>.<pid>@<host>.tmp``, the atomic writes of
:mod:`quantsearch.atomic` and :mod:`quantsearch.export.staging`) appears beside the output,
that is inside the write, not at a random time that mostly lands before it. What is left under
the output's name is then the previous output or a whole new one, never a part presented as
whole; the same command run again succeeds. The previous export a test starts from runs
in-process through the CLI's entry point (a process's start-up is most of its cost); the
commands killed, and their reruns, are real processes. Referees: ``onnx.checker``, ``torch.load``, and
the file formats' own ends (an HTML page's ``</html>``, JSON that parses).
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.fault.harness import digest, in_process, quantsearch, start

pytestmark = pytest.mark.slow
TRIES = 6  # a command that ends before its write is seen is run again, this many times at most


def kill_in_write(args: list[str], watch: Path, name: str, cwd: Path) -> bool:
    """Run ``quantsearch ARGS`` and ``kill -9`` it as soon as a temporary of ``name`` appears
    in ``watch``; True when the kill landed inside the write (the temporary is still there),
    False when the command ended first or finished the write between the poll and the kill
    (it renamed its temporary: a CI run saw that once)."""
    proc = start(args, cwd=cwd)
    prefix = f".{name}."
    try:
        while proc.poll() is None:
            try:
                seen = any(e.name.startswith(prefix) for e in os.scandir(watch))
            except FileNotFoundError:
                seen = False
            if seen:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
                return any(e.name.startswith(prefix) for e in os.scandir(watch))
            time.sleep(0.0005)
        return False
    finally:
        proc.kill()
        proc.communicate()


def _killed(args: list[str], watch: Path, name: str, cwd: Path, check: Callable[[], None]) -> int:
    """Run the command until a kill lands inside its write (:data:`TRIES` runs at most) and
    check what is left; return how many kills landed (0 or 1). The run after it, which each
    test makes, writes beside the killed write's temporary."""
    for _ in range(TRIES):
        if kill_in_write(args, watch, name, cwd):
            check()
            return 1
    return 0


def test_export_qonnx_killed_in_its_write(
    work: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    onnx = pytest.importorskip("onnx", reason="the export extra: pip install 'quantsearch[export]'")
    args = ["export", "--to", "qonnx", "m.onnx", "--from-run", "runs/s"]
    monkeypatch.chdir(work)
    assert in_process(args, monkeypatch, capsys).code == 0  # the previous export, replaced
    previous = (work / "m.onnx").read_bytes()

    def check() -> None:
        data = (work / "m.onnx").read_bytes()
        if data != previous:
            onnx.checker.check_model(onnx.load_from_string(data))

    assert _killed(args, work, "m.onnx", work, check) >= 1
    again = quantsearch(args, cwd=work)
    assert again.code == 0 and "replaced" in again.out, again.err
    check()


def test_export_hls4ml_killed_in_its_write(
    work: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("hls4ml", reason="the export extra: pip install 'quantsearch[export]'")
    args = ["export", "--to", "hls4ml", "prj", "--from-run", "runs/s", "--float-as", "fixed(32,16)"]
    monkeypatch.chdir(work)
    assert in_process(args, monkeypatch, capsys).code == 0
    whole = set(digest(work / "prj"))

    def check() -> None:
        # the previous project, under its name or (killed between the two moves) beside it
        assert (work / "prj").is_dir() or list(work.glob(".prj.*.old"))
        if (work / "prj").is_dir():
            assert set(digest(work / "prj")) == whole

    assert _killed(args, work, "prj", work, check) >= 1
    again = quantsearch(args, cwd=work)
    assert again.code == 0, again.err
    assert set(digest(work / "prj")) == whole
    assert [p.name for p in work.iterdir() if p.name.startswith(".prj")] == []  # cleared


def test_report_killed_in_its_write(work: Path) -> None:
    rd = work / "runs" / "s"
    (rd / "report.html").write_text("previous")
    args = ["report", "runs/s"]

    def check() -> None:
        html = (rd / "report.html").read_text()
        assert html == "previous" or html.rstrip().endswith("</html>"), html[-200:]
        json.loads((rd / "images" / ".report-cache.json").read_text() or "{}")

    assert _killed(args, rd, "report.html", work, check) >= 1
    left = list(rd.glob(".report.html.*.tmp"))  # what the kills left inside their writes
    assert left
    for p in left:  # as if 20 minutes passed: no write lasts that long
        os.utime(p, (time.time() - 1200,) * 2)
    again = quantsearch(args, cwd=work)
    assert again.code == 0, again.err
    assert (rd / "report.html").read_text().rstrip().endswith("</html>")
    assert list(rd.glob(".report.html.*.tmp")) == []  # cleared by the next write


def test_compare_killed_in_its_write(work: Path) -> None:
    from quantsearch.compare.result import ComparisonResult

    args = ["compare", "-c", "s.toml", "--strategies", "random,tpe", "--seeds", "1",
            "--trials", "4", "--run-dir", "cmp"]  # fmt: skip
    out = work / "cmp" / "s-compare"

    def check() -> None:
        if (out / "comparison.json").exists():  # written last: the others are whole then
            assert set(ComparisonResult.read(out).strategies) == {"random", "tpe"}

    landed = _killed(args, out, "runs.jsonl", work, check)
    assert landed >= 1
    again = quantsearch(args, cwd=work)
    assert again.code == 0, again.err
    assert set(ComparisonResult.read(out).strategies) == {"random", "tpe"}


def test_finetune_killed_in_its_write(work: Path) -> None:
    import torch

    out = work / "ft"
    args = ["finetune", "--from-run", "runs/s", "--epochs", "1", "--out", "ft"]

    def check() -> None:
        if (out / "finetuned.pt").exists():
            torch.load(out / "finetuned.pt", weights_only=True)

    assert _killed(args, out, "finetuned.pt", work, check) >= 1
    again = quantsearch(args, cwd=work)
    assert again.code == 0, again.err
    check()
    json.loads((out / "metrics.json").read_text())
