"""A database that cannot be reached is one line before anything loads, naming the key the URL
came from: ``search`` and ``search --workers`` connect once first (``check_reachable``). Before,
``search --workers 2`` traced the model, started two workers, and said it about 20 s later,
naming ``--storage`` for a URL the config held.

Referee: a TCP port on which nothing listens (bound, then closed, by this test), so the
connection is refused by the operating system, not by anything of ours.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.search.test_workers import setup


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("workers", [[], ["--workers", "2"]], ids=["one", "workers"])
def test_a_database_that_is_down_is_one_line_before_the_model_loads(
    tmp_path: Path, workers: list[str]
) -> None:
    pytest.importorskip("psycopg2")
    cfg, ckpt = setup(tmp_path, "random", 4, sleep=0)
    url = f"postgresql+psycopg2://qs:hidden@127.0.0.1:{_closed_port()}/qs"
    cfg.write_text(cfg.read_text().replace("[search]\n", f"[search]\nstorage = {url!r}\n"))
    cmd = [sys.executable, "-m", "quantsearch", "search", "-c", str(cfg), "--load", str(ckpt)]
    done = subprocess.run(
        [*cmd, *workers, "--run-dir", str(tmp_path / "runs")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert lines[0].startswith("error: search.storage: got 'postgresql+psycopg2://qs:***@"), lines
    assert "hidden" not in lines[0] and "allowed: " in lines[0], lines
    assert not (tmp_path / "runs").exists()  # no worker started: none wrote a log
