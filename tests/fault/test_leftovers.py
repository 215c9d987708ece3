"""What a ``kill -9`` leaves beside an output (``.<name>.<pid>@<host>.<kind>``) is cleared by
the next write with one rule, for the atomic writes of files (:mod:`quantsearch.atomic`) and
the staged export folders (:mod:`quantsearch.export.staging`) alike: this machine's leftover
once its process is gone, another machine's (whose process cannot be seen from here) once it
is older than any write lasts. The dead and the live writers are real processes: a child
spawned and reaped (its id then names no process), and one still running. Referee: the
folder's listing."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from quantsearch.atomic import leftover_path, write_atomic
from quantsearch.export.staging import staged_folder


@pytest.fixture(scope="module")
def dead_pid() -> int:
    """The id of a process that ran and was reaped: no process has it (ids are not reused
    this soon; the assertion says so if one were)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    with pytest.raises(ProcessLookupError):
        os.kill(child.pid, 0)
    return child.pid


@pytest.fixture
def live_pid() -> Iterator[int]:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield child.pid
    child.kill()
    child.wait()


def _file(out: Path) -> None:
    write_atomic(out, "new")


def _folder(out: Path) -> None:
    with staged_folder(out, is_project=lambda p: (p / "a.txt").is_file()) as stage:
        (stage / "a.txt").write_text("new")


WRITERS: dict[str, Callable[[Path], None]] = {"atomic file": _file, "staged folder": _folder}


def _left(out: Path, pid: int, host: str | None, age: float = 0.0, kind: str = "tmp") -> Path:
    """A leftover of ``out`` as process ``pid`` of ``host`` (None: the unnamed machine of an
    older version) writing it would leave, ``age`` seconds old."""
    mine = leftover_path(out, "tmp").name
    own_host = mine.rpartition("@")[2].removesuffix(".tmp")
    tag = str(pid) if host is None else f"{pid}@{own_host if host == 'here' else host}"
    left = out.with_name(f".{out.name}.{tag}.{kind}")
    left.mkdir()
    (left / out.name).write_text("half")
    os.utime(left, (time.time() - age,) * 2)
    return left


@pytest.mark.parametrize("writer", list(WRITERS))
def test_one_rule_for_whose_leftover_is_cleared(
    tmp_path: Path, writer: str, dead_pid: int, live_pid: int
) -> None:
    out = tmp_path / "out"
    cleared = [
        _left(out, dead_pid, "here"),  # this machine, process gone: at once
        _left(out, live_pid, "elsewhere", age=1200),  # another machine's, 20 minutes old
        _left(out, dead_pid + 1 if dead_pid + 1 != live_pid else dead_pid + 2, None, 1200),
    ]
    kept = [
        _left(out, live_pid, "here", age=1200),  # its process runs: a write in progress
        _left(out, dead_pid, "elsewhere"),  # another machine's, fresh: maybe writing
        _left(out, 7, None),  # an older version's, fresh
    ]
    other = tmp_path / f".out.x.{dead_pid}@host.tmp"  # a leftover of `out.x`, not of `out`
    other.mkdir()
    os.utime(other, (time.time() - 1200,) * 2)
    WRITERS[writer](out)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted(["out", other.name, *(p.name for p in kept)])
    assert not any(p.exists() for p in cleared)


def test_a_previous_export_moved_aside_by_a_killed_export_comes_back(
    tmp_path: Path, dead_pid: int
) -> None:
    """Killed between its two moves, an export leaves the previous one as ``.old`` and no
    ``out``: the next export (here one that is refused) puts it back first."""
    out = tmp_path / "out"
    aside = _left(out, dead_pid, "here", kind="old")
    (aside / "out").rename(aside / "a.txt")
    (aside / "a.txt").write_text("previous")
    with staged_folder(out, is_project=lambda p: (p / "a.txt").is_file()) as stage:
        assert (out / "a.txt").read_text() == "previous"  # back before the new one is written
        (stage / "a.txt").write_text("new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert (out / "a.txt").read_text() == "new"
