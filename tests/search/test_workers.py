"""Many workers, one study, on a real PostgreSQL server: budget, cache, brute force, kill -9."""

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

pytestmark = pytest.mark.postgres

# Every forward pass sleeps, so a worker is killed in the middle of a trial, not between two.
MODEL = """
import time
from torch import nn

class Slow(nn.Module):
    op_kind = "identity"  # modules that declare an op kind are graph leaves: the sleep stays

    def forward(self, x):
        time.sleep(0.15)
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


def setup(tmp_path: Path, strategy: str, n_trials: int) -> tuple[Path, Path]:
    import torch

    from quantsearch.checkpoint import save_checkpoint
    from quantsearch.models import build_model

    (tmp_path / "slow.py").write_text(MODEL)
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
    except sa.exc.ProgrammingError:  # tables not created yet
        return None
    finally:
        engine.dispose()
    for owner, worker in rows:
        if worker:
            return int(worker.rsplit(":", 2)[1]), int(owner)
    return None


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


def test_four_workers_one_killed_mid_trial(pg_url: str, tmp_path: Path) -> None:
    budget = 12
    cfg, ckpt = setup(tmp_path, "random", budget)
    study = f"killed-{os.getpid()}"
    procs = workers(cfg, ckpt, pg_url, study, 4, tmp_path)
    victim = None
    deadline = time.monotonic() + 60
    while victim is None and time.monotonic() < deadline:
        time.sleep(0.05)
        victim = running_claim_pid(pg_url, study)
    assert victim is not None, "no worker started evaluating"
    pid, trial_number = victim
    os.kill(pid, signal.SIGKILL)
    killed = next(p for p in procs if p.pid == pid)
    codes = finish(procs)
    assert killed.returncode == -signal.SIGKILL
    others = [c for p, c in zip(procs, codes, strict=True) if p is not killed]
    assert others == [0, 0, 0], [p.stderr.read().decode() for p in procs if p.returncode]

    ts = trials(pg_url, study)
    states = Counter(t.state.name for t in ts)
    assert states["COMPLETE"] == budget  # the global budget, not 4 x 12, and not one short
    hashes = evaluated_hashes(ts)
    assert len(hashes) == len(set(hashes))  # no config evaluated twice across workers
    dead = next(t for t in ts if t.number == trial_number)
    assert dead.state.name == "FAIL"  # found by heartbeat and failed
    retried = [t for t in ts if t.system_attrs.get("failed_trial") == trial_number]
    assert retried and retried[0].state.name == "COMPLETE"
    assert retried[0].params == dead.params  # its config was completed by another worker


def test_brute_force_covers_the_space_exactly_once_across_workers(
    pg_url: str, tmp_path: Path
) -> None:
    cfg, ckpt = setup(tmp_path, "brute_force", 100)
    study = f"brute-{os.getpid()}"
    procs = workers(cfg, ckpt, pg_url, study, 4, tmp_path)
    assert finish(procs) == [0, 0, 0, 0], [p.stderr.read().decode() for p in procs]
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
