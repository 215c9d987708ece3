"""``quantsearch compare`` and ``quantsearch report``, run in-process on the lab's space."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from quantsearch.cli import main

CONFIG = """
seed = 0
[model]
name = "mlp-digits"
checkpoint = "{ckpt}"
[data]
name = "digits"
[search]
n_trials = 16
[search.strategy]
name = "brute_force"
[search.space.choices.linear]
data_in = [[16, 8], [8, 6], [8, 4], [4, 2]]
weight = [[16, 8], [8, 6], [8, 4], [4, 2]]
bias = "same_as_weight"
[search.objectives]
accuracy = {{ direction = "maximize", weight = 1.0 }}
model_size_bits = {{ direction = "minimize", weight = 0.2, relative_to_baseline = true }}
[search.constraints]
accuracy_drop = {{ max = 0.05 }}
[compare]
strategies = ["brute_force", "tpe"]
seeds = 2
n_trials = 20
"""


@pytest.fixture
def config(write_config: Callable[..., Path], mlp_checkpoint: Path) -> str:
    return str(write_config(CONFIG.format(ckpt=mlp_checkpoint), name="lab.toml"))


def test_compare_json_files_and_report(
    config: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["compare", "--config", config, "--strategies", "brute-force, random,tpe",
          "--seeds", "2", "--trials", "12", "--run-dir", str(tmp_path), "--json"])  # fmt: skip
    out = json.loads(capsys.readouterr().out)
    assert [r["strategy"] for r in out["table"]] == ["brute_force", "random", "tpe"]
    assert all(r["runs"] == 2 for r in out["table"])
    assert out["evaluations"] <= 16
    run_dir = tmp_path / "lab-compare"
    assert out["report"] == str(run_dir / "report.html")
    for name in ("comparison.csv", "comparison.md", "report.html", "report.md", "runs.jsonl"):
        assert (run_dir / name).is_file(), name


def test_compare_defaults_from_the_compare_table_and_no_cache(
    config: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["compare", "--config", config, "--run-dir", str(tmp_path), "--name", "x",
          "--no-cache", "--json"])  # fmt: skip
    out = json.loads(capsys.readouterr().out)
    assert [r["strategy"] for r in out["table"]] == ["brute_force", "tpe"]
    assert all(r["runs"] == 2 for r in out["table"])
    assert out["evaluations"] > 16  # every run paid for its own configs
    meta = json.loads((tmp_path / "x" / "compare_config.json").read_text())
    assert meta["compare"]["n_trials"] == 20 and meta["compare"]["shared_cache"] is False


def test_compare_prints_table_findings_and_paths(
    config: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["compare", "--config", config, "--seeds", "1", "--trials", "8",
          "--run-dir", str(tmp_path)])  # fmt: skip
    out = capsys.readouterr().out
    assert "brute_force" in out and "• " in out
    assert f"report: {tmp_path / 'lab-compare' / 'report.html'}" in out.replace("\n", "")


def test_report_command(config: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["search", "--config", config, "--run-dir", str(tmp_path), "--quiet"])
    run_dir = tmp_path / "lab"
    assert (run_dir / "report.html").is_file(), "search writes its report"
    (run_dir / "report.html").unlink()
    capsys.readouterr()
    main(["report", str(run_dir)])
    assert capsys.readouterr().out.splitlines()[0] == f"report: {run_dir / 'report.html'}"
    assert (run_dir / "report.html").is_file() and (run_dir / "report.md").is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--strategies", "tpee"], r"^error: --strategies: got 'tpee', allowed: one of \[.*\]$"),
        (
            ["--strategies", " , "],
            r"^error: --strategies: got ' , ', allowed: a comma-separated list of \[",
        ),
    ],
)
def test_bad_options_are_one_line_errors(
    config: str, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    import re

    with pytest.raises(SystemExit) as exc:
        main(["compare", "--config", config, *args])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and re.match(message, err[0]), err


def test_report_of_a_missing_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["report", str(tmp_path / "nope")])
    assert exc.value.code == 2
    assert "RUN_DIR" in capsys.readouterr().err


def test_cli_modules_import_neither_torch_nor_matplotlib() -> None:
    code = (
        "import sys; import quantsearch.cli.compare, quantsearch.cli.report, quantsearch.cli; "
        "bad = [m for m in ('torch', 'matplotlib', 'optuna') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_search_settings_a_comparison_leaves_aside_are_named(
    write_config: Callable[..., Path],
    mlp_checkpoint: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """[search] storage, study, timeout, n_jobs and cache = false were dropped without a word;
    the comparison names them in one warning line and runs as before."""
    text = CONFIG.format(ckpt=mlp_checkpoint).replace(
        "n_trials = 16\n",
        'n_trials = 16\nstorage = "postgresql://u@localhost/db"\ntimeout = 60\nn_jobs = 2\n',
    )
    config = str(write_config(text, name="lab.toml"))
    main(["compare", "--config", config, "--strategies", "random", "--seeds", "1",
          "--trials", "2", "--run-dir", str(tmp_path), "-q"])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "warning: compare: search.storage, search.timeout, search.n_jobs not used: a "
        "comparison's studies run in memory, one trial at a time, untimed and cached, so that "
        "they repeat"
    ]


@pytest.mark.parametrize(("strategies", "named"), [("random", True), ("tpe,random", False)])
def test_strategy_options_of_a_strategy_not_compared_are_named(
    strategies: str,
    named: bool,
    write_config: Callable[..., Path],
    mlp_checkpoint: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """search.strategy.options apply to that strategy only: with it not compared they were
    dropped without a word (`search --strategy` refuses the same case)."""
    text = CONFIG.format(ckpt=mlp_checkpoint).replace(
        'name = "brute_force"\n', 'name = "tpe"\noptions = { n_startup_trials = 2 }\n'
    )
    config = str(write_config(text, name="lab.toml"))
    main(["compare", "--config", config, "--strategies", strategies, "--seeds", "1",
          "--trials", "2", "--run-dir", str(tmp_path), "-q"])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    want = [
        "warning: compare: search.strategy.options not used: they are for 'tpe', which is not "
        "among the strategies compared (random)"
    ]
    assert err == (want if named else [])
    assert (tmp_path / "lab-compare" / "comparison.json").is_file()
