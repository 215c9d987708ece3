"""Ctrl-C and internal bugs at the real entry point, in real processes.

Ctrl-C during ``quantsearch search`` prints one line and exits 130, with what finished in the
journal; the same command then resumes the study to its budget without re-running finished
trials. A bug (an exception that is not a :class:`QuantsearchError`) keeps its traceback and
adds a line asking to report it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from quantsearch.cli import BUG, INTERRUPTED

N_TRIALS = 400
CONFIG = """seed = 0
[model]
name = "mlp-digits"
checkpoint = "{ckpt}"
[search]
n_trials = {n}
[search.strategy]
name = "random"
[search.space]
by = "name"
[search.space.choices.linear]
weight = [[8, 4], [6, 3], [4, 2], [3, 1], [2, 1]]
bias = [[8, 4], [6, 3], [4, 2], [3, 1], [2, 1]]
data_in = [[8, 4], [6, 3], [4, 2], [3, 1], [2, 1]]
[search.objectives]
accuracy = {{ direction = "maximize" }}
"""


def _default_sigint() -> None:
    # A child started from a non-interactive shell may inherit SIGINT ignored; Ctrl-C must reach it.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _completed(journal: Path) -> dict[int, float]:
    """Trial id -> value of the trials the journal records as COMPLETE: a state change (Optuna's
    op 6) to COMPLETE (state 1), or a trial created finished (op 4, the one record a short
    trial is written as; ids are given in the order trials are created)."""
    out: dict[int, float] = {}
    if not journal.is_file():
        return out
    created = 0
    for line in journal.read_text().splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue  # a record being written
        if rec.get("op_code") == 4:
            created += 1
            if rec.get("state") == 1:
                out[created - 1] = rec["values"][0] if rec.get("values") else rec["value"]
        elif rec.get("op_code") == 6 and rec.get("state") == 1:
            out[rec["trial_id"]] = rec["values"][0]
    return out


@pytest.mark.slow
@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_sigint_mid_search_prints_one_line_and_the_same_command_resumes(
    tmp_path: Path, mlp_checkpoint: Path, sig: signal.Signals, code: int
) -> None:
    """Ctrl-C, or SIGTERM (a scheduler's, ``docker stop``): one line, exit 128 + the signal,
    what finished on disk, and the same command resumes."""
    cfg = tmp_path / "long.toml"
    cfg.write_text(CONFIG.format(ckpt=mlp_checkpoint.as_posix(), n=N_TRIALS))
    cmd = [sys.executable, "-m", "quantsearch", "search", "-c", str(cfg), "-q", "--run-dir", "runs"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    journal = tmp_path / "runs" / "long" / "study.journal"
    proc = subprocess.Popen(
        cmd, cwd=tmp_path, stderr=subprocess.PIPE, text=True, env=env, preexec_fn=_default_sigint
    )
    deadline = time.monotonic() + 120
    while len(_completed(journal)) < 10 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the search ended before it could be interrupted"
    os.kill(proc.pid, sig)
    _, err = proc.communicate(timeout=120)

    assert proc.returncode == code, err
    assert "Traceback" not in err, err
    assert [line for line in err.splitlines() if line.strip()] == [INTERRUPTED]
    before = _completed(journal)  # on disk after the interrupt: the journal was flushed
    assert 10 <= len(before) < N_TRIALS

    done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr
    after = _completed(journal)
    assert len(after) == N_TRIALS  # the budget met exactly, the interrupted trial not counted
    assert {k: after[k] for k in before} == before  # finished trials kept, not run again
    trials = [json.loads(x) for x in (tmp_path / "runs/long/trials.jsonl").read_text().splitlines()]
    assert sum(t["state"] == "COMPLETE" for t in trials) == N_TRIALS


def test_an_internal_bug_keeps_its_traceback_and_asks_for_a_report(tmp_path: Path) -> None:
    # A real command with a real bug, run through the real entry point.
    code = (
        "from quantsearch.cli import cli, main\n"
        "@cli.command('buggy')\n"
        "def buggy():\n"
        "    return {}['missing']\n"
        "main(['buggy'])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1
    assert "Traceback (most recent call last)" in done.stderr
    assert "KeyError: 'missing'" in done.stderr
    assert done.stderr.rstrip().splitlines()[-1] == BUG
    assert "error:" not in done.stderr
