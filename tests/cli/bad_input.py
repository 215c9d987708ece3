"""What the bad-input tests share: run the real entry point in-process, check its one
``error:`` line, and hash a folder to prove a bad command left it unchanged."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from quantsearch.cli import main


def digest(folder: Path) -> str:
    """One hash of every file's relative path and bytes under ``folder``."""
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(folder)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def case_folder(root: Path, name: str) -> Path:
    """A folder of its own for the case ``name`` under ``root/cases``."""
    case = root / "cases" / re.sub(r"\W+", "_", name)
    case.mkdir(parents=True, exist_ok=True)
    return case


def unchanged_runs(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The body of a corpus's ``in_workdir`` fixture: run in ``workdir``, and afterwards its
    ``runs`` folder (the finished study) must be byte for byte as before."""
    monkeypatch.chdir(workdir)
    before = digest(workdir / "runs")
    yield workdir
    assert digest(workdir / "runs") == before, "an existing study was changed"


def exit_status(args: list[str]) -> int:
    """``quantsearch ARGS`` in-process: its exit status."""
    try:
        main(args)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    return 0


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """``quantsearch ARGS`` in-process: its exit status and its stderr."""
    return exit_status(args), capsys.readouterr().err


def check_one_line(code: int, err: str, pattern: str) -> None:
    """Exit status 2, no traceback, one ``error:`` line whose text matches ``pattern``."""
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert code == 2, (code, err)
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), lines[0]
    assert re.search(pattern, lines[0][len("error: ") :]), lines[0]


# A config that searches mlp-digits (``{ckpt}``: its checkpoint), and lines the cases edit in.
GOOD = """seed = 0
[model]
name = "mlp-digits"
checkpoint = "{ckpt}"
[search]
n_trials = 2
[search.strategy]
name = "random"
[search.space.choices.linear]
weight = [[8, 4], [4, 2]]
[search.objectives]
accuracy = {{ direction = "maximize" }}
"""
W = "weight = [[8, 4], [4, 2]]"
ACC = 'accuracy = { direction = "maximize" }'
SP = "search.space.choices.linear"


def sub(old: str, new: str) -> Callable[[str], str]:
    """An edit of a config's text: the first ``old`` replaced by ``new`` (``old`` must occur)."""

    def edit(text: str) -> str:
        assert old in text, old
        return text.replace(old, new, 1)

    return edit


def add(section: str, line: str) -> Callable[[str], str]:
    """An edit of a config's text: ``line`` under ``[section]`` (the table is created at the
    end when missing; ``section=""``: at the top)."""

    def edit(text: str) -> str:
        if section == "":
            return line + "\n" + text
        header = f"[{section}]\n"
        if header in text:
            return text.replace(header, header + line + "\n", 1)
        return text + header + line + "\n"

    return edit


def finished_study(folder: Path) -> None:
    """``quantsearch search`` of ``folder/good.toml`` into ``folder/runs``: the finished study
    ``runs/good`` that a bad command beside it must leave unchanged."""
    try:
        main(["search", "-c", str(folder / "good.toml"), "--run-dir", str(folder / "runs"), "-q"])
    except SystemExit as exc:
        assert not exc.code
    assert (folder / "runs" / "good" / "best.json").is_file()
