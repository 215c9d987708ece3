"""Real run directories for tests: a small search run by the CLI, in-process."""

from __future__ import annotations

from pathlib import Path

from quantsearch.cli import main

WEIGHTED = """
[search]
n_trials = 4
[search.strategy]
name = "brute_force"
[search.space.choices.linear]
weight = [[8, 4], [4, 2]]
data_in = [[8, 4], [4, 2]]
[search.objectives]
accuracy = { direction = "maximize" }
"""

PARETO = """
[search]
n_trials = 4
[search.strategy]
name = "brute_force"
[search.space.choices.linear]
weight = [[8, 4], [4, 2]]
data_in = [[8, 4], [4, 2]]
[search.objectives]
combine = "pareto"
accuracy = { direction = "maximize" }
model_size_bits = { direction = "minimize" }
"""


def make_run(folder: Path, checkpoint: Path, search: str = WEIGHTED, name: str = "s") -> Path:
    """Run `quantsearch search` on mlp-digits with ``search`` (a ``[search]`` TOML text) and
    return its run directory ``folder/runs/<name>``."""
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / f"{name}.toml"
    config.write_text(
        f'[model]\nname = "mlp-digits"\ncheckpoint = "{checkpoint.as_posix()}"\n' + search
    )
    main(["search", "-c", str(config), "-q", "--run-dir", str(folder / "runs")])
    return folder / "runs" / name
