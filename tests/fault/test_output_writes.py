"""The files `quantize` and `finetune` write beside their checkpoint (``resolved_config.json``,
``metrics.json``, ``weights.npz``, ``weights.json``), each written atomically like the
checkpoint: a write that fails ends in one ``error:`` line with exit status 2 and leaves what
stood there as it was, and a ``kill -9`` inside a write leaves the previous file or a whole new
one. The faults are real: a user's folder where a file goes (``EISDIR`` from the final
``rename``), a file-size limit (``EFBIG``), ``kill -9`` the moment the write's temporary
appears. The limits and kills land in real `quantsearch` processes; a folder's ``EISDIR``,
which needs no process of its own, and a previous report a test starts from run in-process
through the CLI's entry point (a process's start-up is most of their cost).
Referees: ``json.loads``, ``np.load``, ``torch.load``, the folder's bytes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.fault.harness import digest, in_process, quantsearch
from tests.fault.test_kill_outputs import _killed

pytestmark = pytest.mark.slow
QUANTIZE = ["quantize", "--from-run", "runs/s", "--out", "out", "--int-weights"]
FINETUNE = ["finetune", "--from-run", "runs/s", "--epochs", "1", "--out", "out"]


def _hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.mark.parametrize(
    ("args", "name"),
    [
        (QUANTIZE, "resolved_config.json"),
        (QUANTIZE, "metrics.json"),
        (QUANTIZE, "weights.npz"),
        (QUANTIZE, "weights.json"),
        (FINETUNE, "resolved_config.json"),
        (FINETUNE, "metrics.json"),
    ],
)
def test_a_folder_where_an_output_goes_ends_in_one_line_and_is_kept(
    work: Path,
    args: list[str],
    name: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Written in place, the file's open() failed with a traceback; then, refused by its
    write, the command had replaced the checkpoint before it. The folder is in a previous output
    (a quantsearch checkpoint beside it), which the command replaces: it is refused before any
    work, in the one form, and the output folder is left byte for byte."""
    mine = work / "out" / name
    mine.mkdir(parents=True)
    (mine / "notes.txt").write_text("a user's file")
    shutil.copy(
        work / "m.pt", work / "out" / ("quantized.pt" if args is QUANTIZE else "finetuned.pt")
    )
    monkeypatch.chdir(work)
    before = digest(work / "out")
    line = in_process(args, monkeypatch, capsys).one_error_line()
    assert line.startswith(f"error: --out: got 'out/{name}' (a folder), allowed: "), line
    assert digest(work / "out") == before
    assert _hidden(work / "out") == []  # no temporary left behind


def test_quantize_outputs_that_fail_leave_the_previous_ones(work: Path) -> None:
    # a process, as the rerun below: an in-process checkpoint held the same tensors in other
    # bytes after the fault fixture's in-process search, and the rerun is compared byte for byte
    assert quantsearch(QUANTIZE, cwd=work).code == 0
    before = digest(work / "out")
    assert set(before) == {
        "quantized.pt", "resolved_config.json", "metrics.json", "weights.npz", "weights.json"
    }  # fmt: skip
    assert "quantized.pt" in quantsearch(QUANTIZE, fsize=20_000, cwd=work).one_error_line()
    assert digest(work / "out") == before
    again = quantsearch(QUANTIZE, cwd=work)
    assert again.code == 0, again.err
    assert digest(work / "out") == before  # the same config, the same files
    json.loads((work / "out" / "metrics.json").read_text())
    with np.load(work / "out" / "weights.npz") as f:
        assert f.files
    assert "state_dict" in torch.load(work / "out" / "quantized.pt", weights_only=True)


@pytest.mark.parametrize("name", ["metrics.json", "weights.npz"])
def test_quantize_killed_in_the_write_of(work: Path, name: str) -> None:
    out = work / "out"
    out.mkdir()
    (out / name).write_bytes(b"previous")
    shutil.copy(work / "m.pt", out / "quantized.pt")  # a previous output, which is replaced

    def check() -> None:
        data = (out / name).read_bytes()
        if data != b"previous" and name.endswith(".json"):
            json.loads(data)
        elif data != b"previous":
            with np.load(out / name) as f:
                assert f.files

    assert _killed(QUANTIZE, out, name, work, check) >= 1
    again = quantsearch(QUANTIZE, cwd=work)
    assert again.code == 0, again.err
    assert _hidden(out) == []  # the killed writes' temporaries cleared
    check()


def test_a_report_in_another_figure_format_that_fails_leaves_the_previous_report(
    work: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """PNGs (matplotlib, through plots.render) that cannot be written: the previous report's
    SVGs, which the new format replaces, stay until the new report is whole (they were
    removed figure by figure as each PNG was drawn, so a failure at the last figure left the
    previous report.md pointing at pictures that were gone)."""
    import re

    rd = work / "runs" / "s"
    monkeypatch.chdir(work)
    assert in_process(["report", "runs/s"], monkeypatch, capsys).code == 0  # the previous one
    before = digest(rd)
    shown = re.findall(r"images/([\w.-]+)\.svg", (rd / "report.md").read_text())
    assert len(shown) >= 2, shown
    args = ["report", "runs/s", "--figure-format", "png"]
    line = quantsearch(args, fsize=20_000, cwd=work).one_error_line()  # a PNG past the limit
    assert ".png: cannot be written (File too large)" in line, line
    assert digest(rd) == before
    (rd / "images" / f"{shown[-1]}.png").mkdir()  # the last figure's PNG cannot be written
    line = quantsearch(args, cwd=work).one_error_line()
    assert f"{shown[-1]}.png: cannot be written" in line, line
    now = digest(rd)  # the earlier figures' new PNGs are there, whole; and beside them
    assert {k: now.get(k) for k in before} == before  # every file the previous report had
    (rd / "images" / f"{shown[-1]}.png").rmdir()
    again = quantsearch(args, cwd=work)
    assert again.code == 0, again.err
    pngs = sorted(p.name for p in (rd / "images").glob("*.png"))
    assert pngs and not list((rd / "images").glob("*.svg"))  # the previous format's: gone now
    markdown = (rd / "report.md").read_text()
    assert all(f"images/{name}" in markdown for name in pngs), markdown[:500]
