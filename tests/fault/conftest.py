"""A trained checkpoint and a finished search, both made by the CLI's entry point (no fault),
shared by the fault tests of this folder; each test copies what it damages."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.fault.harness import run_in

SEARCH = """
[model]
name = "mlp-digits"
checkpoint = "m.pt"
[search]
n_trials = {n}
[search.strategy]
name = "random"
[search.space.choices.linear]
weight = [[8, 4], [6, 3], [5, 2], [4, 2]]
data_in = [[8, 4], [6, 3], [5, 2], [4, 2]]
[search.objectives]
accuracy = {{ direction = "maximize" }}
"""
N_TRIALS = 30


@pytest.fixture(scope="session")
def made(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding ``m.pt`` (2 epochs of mlp-digits), ``s.toml`` (a 30-trial random
    search of it) and ``runs/s``, that search's finished run directory. Made in this process,
    in that folder and with the environment :func:`tests.fault.harness.start` gives a child:
    the tests damage the files, and two processes' start-up was most of this setup."""
    folder = tmp_path_factory.mktemp("made")
    (folder / "s.toml").write_text(SEARCH.format(n=N_TRIALS))
    run_in(
        folder,
        ["train", "--epochs", "2", "--out", "m.pt"],
        ["search", "-c", "s.toml", "-q", "--run-dir", "runs"],
    )
    return folder


@pytest.fixture
def work(made: Path, tmp_path: Path) -> Path:
    """A copy of :func:`made` for one test to damage."""
    shutil.copytree(made, tmp_path, dirs_exist_ok=True)
    return tmp_path
