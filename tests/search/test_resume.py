"""kill -9 in the middle of a search, then the same command again: nothing lost or re-done."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

CONFIG = """
seed = 0
[model]
name = "mlp-digits"
checkpoint = "{ckpt}"
[data]
name = "digits"
[search]
n_trials = {n}
study = "killed"
[search.strategy]
name = "random"
[search.space]
by = "name"
[search.space.choices.linear]
data_in = {{ width = [4, 6, 8, 12, 16], frac_width = [2, 3, 4, 6] }}
weight = {{ width = [4, 6, 8, 12, 16], frac_width = [2, 3, 4, 6] }}
[search.objectives]
accuracy = {{ direction = "maximize" }}
"""


def _complete_trials(run_dir: Path) -> list[tuple[int, str, float]]:
    import optuna

    from quantsearch.search.storage import open_storage

    study = optuna.load_study(study_name="killed", storage=open_storage(None, run_dir))
    return sorted(
        (t.number, t.user_attrs["qs"]["config_hash"], t.value)  # type: ignore[misc]
        for t in study.get_trials(deepcopy=False)
        if t.state.name == "COMPLETE"
    )


@pytest.mark.slow
def test_kill_9_then_resume(tmp_path: Path, mlp_checkpoint: Path) -> None:
    # Batched random trials run at 2,000-3,000 a second on a quiet machine: 400 could all be
    # done between the look that saw 20 and the kill (a CI run killed a search whose 400 trials
    # were complete), so the budget is one no look can miss.
    n = 4000
    cfg = tmp_path / "killed.toml"
    cfg.write_text(CONFIG.format(ckpt=mlp_checkpoint.as_posix(), n=n))
    cmd = [
        sys.executable,
        "-m",
        "quantsearch",
        "search",
        "--config",
        str(cfg),
        "--run-dir",
        str(tmp_path),
        "-q",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    run_dir = tmp_path / "killed"
    deadline = time.monotonic() + 60
    before: list[tuple[int, str, float]] = []
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
        if (run_dir / "study.journal").exists() or (run_dir / "study.db").exists():
            try:
                before = _complete_trials(run_dir)
            except Exception:  # the study is being created
                continue
            if len(before) >= 20:
                break
    assert proc.poll() is None, f"search ended before it could be killed: {proc.communicate()}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = _complete_trials(run_dir)
    assert 20 <= len(before) < n
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    after = _complete_trials(run_dir)
    assert len(after) == n  # the budget, exactly: interrupted trials are not counted
    assert set(before) <= set(after)  # nothing completed was lost or changed
    import json

    evaluated = [json.loads(line) for line in (run_dir / "trials.jsonl").read_text().splitlines()]
    hashes = [r["config_hash"] for r in evaluated if r["state"] == "COMPLETE" and not r["cached"]]
    assert len(hashes) == len(set(hashes))  # no config evaluated twice, across the kill
