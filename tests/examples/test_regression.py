"""examples/regression: a user's regression model, data and evaluate function, end to end
from the CLI in real processes (train.py, then `quantsearch search`, then `quantsearch
report` in a process of its own), and one-line errors for a bad ``[metrics] evaluate``."""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "src" / "quantsearch" / "examples" / "regression"
DIRECTIONS = {"max_abs_error": "minimize", "within_tolerance": "maximize"}


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=600
    )


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("regression") / "regression-mlp.pt"
    r = _cli(str(EXAMPLE / "train.py"), "--out", str(out), "--steps", "100", cwd=out.parent)
    assert r.returncode == 0, r.stderr
    return out


@pytest.mark.slow
def test_search_from_the_cli_names_the_users_metrics_and_directions(
    checkpoint: Path, tmp_path: Path
) -> None:
    config = EXAMPLE / "regression.toml"
    r = _cli(
        "-m", "quantsearch", "search", "--config", str(config), "--load", str(checkpoint),
        "--run-dir", str(tmp_path), "--n-trials", "8", "-q", cwd=tmp_path,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    rd = tmp_path / "regression"
    pareto = json.loads((rd / "pareto.json").read_text())
    assert pareto["objectives"] == ["within_tolerance", "bitops"]
    assert pareto["directions"] == ["maximize", "minimize"]
    assert {"mse", "mae", "max_abs_error", "within_tolerance"} <= set(pareto["baseline"])
    assert "accuracy" not in pareto["baseline"]
    recorded = json.loads((rd / "search_config.json").read_text())
    assert recorded["user_metrics"] == DIRECTIONS
    with (rd / "trials.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 8 and all(not row["error"] for row in rows)
    assert all(0.0 <= float(row["metrics.within_tolerance"]) <= 1.0 for row in rows)
    assert all(float(row["metrics.max_abs_error"]) > 0 for row in rows)
    test_metrics = [t["test_metrics"] for t in pareto["front"] if "test_metrics" in t]
    assert test_metrics and all("within_tolerance" in m for m in test_metrics)
    # finetune trains by cross-entropy: refused in one line, as train is (it failed measuring
    # 'before' with "labels must have shape (600,) to match the logits", keyed by nothing)
    r = _cli("-m", "quantsearch", "finetune", "--from-run", str(rd), "--pareto", "0", cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith("error: data: got 'task.py:load' with regression targets, "), line
    assert not list(rd.glob("finetune-*"))
    (rd / "report.md").unlink()
    r = _cli("-m", "quantsearch", "report", str(rd), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "maximize within_tolerance; minimize bitops" in (rd / "report.md").read_text()
    # a process that never loaded task.py knows each metric's direction from the run directory
    probe = (
        "import sys; from quantsearch.report.build import build_report; "
        "from quantsearch.report.formatting import metric_direction as d; "
        "build_report(sys.argv[1]); print(d('max_abs_error'), d('within_tolerance'))"
    )
    r = _cli("-c", probe, str(rd), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["minimize", "maximize"]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("evaluate", "message"),
    [
        (
            "nope.py:evaluate",
            r"metrics\.evaluate: got .*, whose file 'nope\.py' does not exist in ",
        ),
        (
            "task.py:evaluat",
            r"metrics\.evaluate: got .*, but 'task\.py' has no attribute 'evaluat', allowed: one of the callables ",
        ),
        ("task.py", r"metrics\.evaluate: got 'task\.py', allowed: 'file\.py:function' or "),
    ],
)
def test_a_bad_evaluate_spec_is_one_line(
    checkpoint: Path, tmp_path: Path, evaluate: str, message: str
) -> None:
    shutil.copy(EXAMPLE / "task.py", tmp_path / "task.py")
    text = (EXAMPLE / "regression.toml").read_text()
    cfg = tmp_path / "bad.toml"
    cfg.write_text(text.replace('evaluate = "task.py:evaluate"', f'evaluate = "{evaluate}"'))
    r = _cli(
        "-m", "quantsearch", "search", "--config", str(cfg), "--load", str(checkpoint),
        "--run-dir", str(tmp_path / "runs"), "--n-trials", "2", "-q", cwd=tmp_path,
    )  # fmt: skip
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1, r.stderr
    assert re.match(f"error: {message}", lines[0]), lines[0]


def test_quantsearch_train_refuses_regression_targets_in_one_line() -> None:
    from quantsearch.config import TrainConfig
    from quantsearch.data import load_dataset
    from quantsearch.errors import ConfigError
    from quantsearch.models import build_model
    from quantsearch.train import train

    data = load_dataset("task.py:load", options={"samples": 200}, base_dir=EXAMPLE)
    assert data.num_classes == 0 and data.val.y.shape == (40, 2)
    with pytest.raises(ConfigError, match=r"^data\.name: got 'task\.py:load' with regression "):
        train(build_model("task.py:build", base_dir=EXAMPLE), data, TrainConfig(epochs=1))


def test_finetune_refuses_regression_targets_in_one_line() -> None:
    from quantsearch.data import load_dataset
    from quantsearch.errors import ConfigError
    from quantsearch.finetune import finetune
    from quantsearch.models import build_model

    data = load_dataset("task.py:load", options={"samples": 200}, base_dir=EXAMPLE)
    with pytest.raises(ConfigError, match=r"^data: got 'task\.py:load' with regression targets"):
        finetune(build_model("task.py:build", base_dir=EXAMPLE), {}, data, epochs=1)
