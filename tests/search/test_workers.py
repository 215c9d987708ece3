"""Many workers, one study, through the commands that ship (`quantsearch search --workers K` on
the journal, `quantsearch worker` on PostgreSQL): budget, cache, brute force, kill -9."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from quantsearch.search.parallel import COORDINATION_FILE

# Every forward pass sleeps, so a worker is killed in the middle of a trial, not between two.
MODEL = """
import time
from torch import nn

class Slow(nn.Module):
    op_kind = "identity"  # modules that declare an op kind are graph leaves: the sleep stays

    def forward(self, x):
        time.sleep({sleep})
        return x

def build():
    return nn.Sequential(nn.Linear(64, 10), Slow())
"""

CONFIG = """
seed = 0
[model]
name = "slow.py:build"
[data]
name = "digits"
eval_samples = 64
calibration_samples = 16
[search]
n_trials = {n_trials}
[search.strategy]
name = "{strategy}"
[search.space]
[search.space.choices.linear]
data_in = [[16, 8], [8, 6], [8, 4], [4, 2]]
weight = [[16, 8], [8, 6], [8, 4], [4, 2]]
[search.objectives]
accuracy = {{ direction = "maximize" }}
"""


def setup(
    tmp_path: Path, strategy: str, n_trials: int, *, sleep: float = 0.15
) -> tuple[Path, Path]:
    """A config of ``n_trials`` and the checkpoint of a model whose every forward pass sleeps
    ``sleep`` s (0: for the tests that kill no worker mid-trial, where it would wait for
    nothing)."""
    import torch

    from quantsearch.checkpoint import save_checkpoint
    from quantsearch.models import build_model

    (tmp_path / "slow.py").write_text(MODEL.format(sleep=sleep))
    cfg = tmp_path / "w.toml"
    cfg.write_text(CONFIG.format(strategy=strategy, n_trials=n_trials))
    torch.manual_seed(0)
    model = build_model(f"{tmp_path / 'slow.py'}:build")
    ckpt = save_checkpoint(
        tmp_path / "slow.pt", model, model_name="slow.py:build", dataset="digits"
    )
    return cfg, ckpt


def workers(
    cfg: Path, ckpt: Path, url: str, study: str, n: int, tmp_path: Path
) -> list[subprocess.Popen[bytes]]:
    cmd = [
        sys.executable, "-m", "quantsearch", "worker", "--config", str(cfg), "--load", str(ckpt),
        "--storage", url, "--study", study, "--run-dir", str(tmp_path / "runs"),
    ]  # fmt: skip
    return [
        subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(n)
    ]


def trials(url: str, study: str) -> list[Any]:
    import optuna

    return optuna.load_study(study_name=study, storage=url).get_trials(deepcopy=False)


def running_claim_pid(url: str, study: str) -> tuple[int, int] | None:
    """(pid, trial number) of a worker now evaluating a config, from the claims table."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.connect() as c:
            rows = c.execute(
                sa.text(
                    "SELECT owner, worker FROM quantsearch_claims "
                    "WHERE study = :s AND state = 'running' AND key NOT LIKE 'point:%'"
                ),
                {"s": study},
            ).all()
    except (sa.exc.ProgrammingError, sa.exc.OperationalError):  # tables not created yet
        return None
    finally:
        engine.dispose()
    for owner, worker in rows:
        if worker:
            return int(worker.rsplit(":", 2)[1]), int(owner)
    return None


def wait_for_victim(url: str, study: str, procs: list[subprocess.Popen[bytes]]) -> tuple[int, int]:
    """Wait until a worker is evaluating a config: its (pid, trial number)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and all(p.poll() is None for p in procs):
        time.sleep(0.05)
        victim = running_claim_pid(url, study)
        if victim is not None:
            return victim
    ended = [p.communicate()[1] for p in procs if p.poll() is not None]
    raise AssertionError(f"no worker started evaluating: {ended}")


def finish(procs: list[subprocess.Popen[bytes]], timeout: float = 120) -> list[int]:
    codes = []
    for p in procs:
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            raise
        codes.append(p.returncode)
    return codes


def evaluated_hashes(ts: list[Any]) -> list[str]:
    return [
        t.user_attrs["qs"]["config_hash"]
        for t in ts
        if t.state.name == "COMPLETE" and not t.user_attrs["qs"]["cached"]
    ]


def assert_killed_trial_retried(ts: list[Any], trial_number: int, budget: int) -> None:
    states = Counter(t.state.name for t in ts)
    assert states["COMPLETE"] == budget  # the global budget, not K x budget, and not one short
    hashes = evaluated_hashes(ts)
    assert len(hashes) == len(set(hashes))  # no config evaluated twice across workers
    dead = next(t for t in ts if t.number == trial_number)
    assert dead.state.name == "FAIL"  # found by heartbeat and failed
    retried = [t for t in ts if t.system_attrs.get("failed_trial") == trial_number]
    assert retried and retried[0].state.name == "COMPLETE"
    assert retried[0].params == dead.params  # its config was completed by another worker


@pytest.mark.slow
def test_journal_workers_one_killed_mid_trial(tmp_path: Path) -> None:
    """`search --workers 2` on the journal: kill -9 of one worker mid-trial; the other fails its
    trial, retries it and finishes the budget, and the parent returns."""
    budget = 6
    cfg, ckpt = setup(tmp_path, "random", budget)
    parent = subprocess.Popen(
        [sys.executable, "-m", "quantsearch", "search", "--config", str(cfg), "--load", str(ckpt),
         "--run-dir", str(tmp_path / "runs"), "--workers", "2", "-q"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    run_dir = tmp_path / "runs" / "w"
    pid, trial_number = wait_for_victim(f"sqlite:///{run_dir / COORDINATION_FILE}", "w", [parent])
    os.kill(pid, signal.SIGKILL)
    try:
        _, err = parent.communicate(timeout=120)  # it used to wait forever for the dead trial
    except subprocess.TimeoutExpired:
        parent.kill()
        raise
    message = err.decode()
    assert parent.returncode == 2 and "1 of 2 workers failed" in message, message
    assert "was killed by SIGKILL" in message
    import optuna

    from quantsearch.search.storage import open_storage

    study = optuna.load_study(study_name="w", storage=open_storage(None, run_dir))
    assert_killed_trial_retried(study.get_trials(deepcopy=False), trial_number, budget)
    rows = [json.loads(line) for line in (run_dir / "trials.jsonl").read_text().splitlines()]
    assert sum(r["state"] == "COMPLETE" for r in rows) == budget  # written despite the death


@pytest.mark.postgres
@pytest.mark.slow
def test_three_workers_one_killed_mid_trial(pg_url: str, tmp_path: Path) -> None:
    budget = 9
    cfg, ckpt = setup(tmp_path, "random", budget)
    study = f"killed-{os.getpid()}"
    procs = workers(cfg, ckpt, pg_url, study, 3, tmp_path)
    pid, trial_number = wait_for_victim(pg_url, study, procs)
    os.kill(pid, signal.SIGKILL)
    killed = next(p for p in procs if p.pid == pid)
    codes = finish(procs)
    assert killed.returncode == -signal.SIGKILL
    others = [c for p, c in zip(procs, codes, strict=True) if p is not killed]
    assert others == [0, 0], [p.stderr.read().decode() for p in procs if p.returncode]
    assert_killed_trial_retried(trials(pg_url, study), trial_number, budget)


@pytest.mark.postgres
@pytest.mark.slow
def test_brute_force_covers_the_space_exactly_once_across_workers(
    pg_url: str, tmp_path: Path
) -> None:
    cfg, ckpt = setup(tmp_path, "brute_force", 100)
    study = f"brute-{os.getpid()}"
    procs = workers(cfg, ckpt, pg_url, study, 3, tmp_path)
    assert finish(procs) == [0, 0, 0], [p.stderr.read().decode() for p in procs]
    ts = trials(pg_url, study)
    hashes = evaluated_hashes(ts)
    assert len(hashes) == len(set(hashes)) == 16  # every point, each once
    points = Counter(json.dumps(t.params, sort_keys=True) for t in ts if t.state.name == "COMPLETE")
    assert len(points) == 16
    assert len(ts) < 100  # every worker stopped when the space was exhausted


def test_sqlite_url_with_several_workers_is_refused(tmp_path: Path) -> None:
    cfg, ckpt = setup(tmp_path, "random", 4)
    out = subprocess.run(
        [sys.executable, "-m", "quantsearch", "search", "--config", str(cfg), "--load", str(ckpt),
         "--storage", f"sqlite:///{tmp_path / 's.db'}", "--workers", "2", "-q"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "SQLite" in lines[0] and "not safe" in lines[0], out.stderr


@pytest.mark.slow
def test_a_rerun_appends_to_the_worker_logs(tmp_path: Path) -> None:
    """`search --workers 2` run twice on one run directory: each worker's log keeps what the
    first run's worker wrote (it was truncated at every start), after a line dating each start.
    No worker is killed: the model's forward passes need not sleep."""
    cfg, ckpt = setup(tmp_path, "random", 2, sleep=0)
    cmd = [sys.executable, "-m", "quantsearch", "search", "--config", str(cfg), "--load", str(ckpt),
           "--run-dir", str(tmp_path / "runs"), "--workers", "2", "-q"]  # fmt: skip
    log = tmp_path / "runs" / "w" / "worker-0.log"
    subprocess.run(cmd, cwd=tmp_path, check=True, capture_output=True, timeout=180)
    first = log.read_text()
    cfg.write_text(cfg.read_text().replace("n_trials = 2", "n_trials = 3"))
    subprocess.run(cmd, cwd=tmp_path, check=True, capture_output=True, timeout=180)
    text = log.read_text()
    assert text.startswith(first)
    starts = [ln for ln in text.splitlines() if ln.startswith("--- ")]
    assert len(starts) == 2 and all("worker 0 of 2, study 'w'" in ln for ln in starts), text
