"""`quantsearch search` on real configs: bad input gives one `error:` line (exit 2), and a
good one writes the run directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from torch import nn

from quantsearch.cli import main

SEARCH = """
[search]
n_trials = 4
[search.strategy]
name = "brute_force"
[search.space.choices.linear]
weight = [[8, 4], [4, 2]]
[search.objectives]
accuracy = { direction = "maximize" }
"""


@pytest.fixture
def config(tmp_path: Path, mlp_checkpoint: Path) -> Path:
    path = tmp_path / "s.toml"
    path.write_text(
        f'[model]\nname = "mlp-digits"\ncheckpoint = "{mlp_checkpoint.as_posix()}"\n' + SEARCH
    )
    return path


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize(
    ("edit", "extra_args", "match"),
    [
        (
            None,
            ["--strategy", "tpee"],
            r"--strategy: got 'tpee', allowed: one of \['brute_force', .*\]",
        ),
        (
            ("weight = [[8, 4], [4, 2]]", "weight = [[8, 4], [4, 9]]"),
            [],
            r"search\.space\.choices\.linear\.weight",
        ),
        (
            ("[search.space.choices.linear]", "[search.space.choices.conv9]"),
            [],
            r"search\.space\.choices\.conv9: got 'conv9', neither an op kind nor a node of the model, allowed: a kind of \[",
        ),
        (
            ("n_trials = 4", "n_trials = 4\nn_job = 2"),
            [],
            r"search\.n_job: got an unknown key, allowed: the keys of search: \[.*'n_jobs'",
        ),
        (
            ("accuracy = {", "acc = {"),
            [],
            r"search\.objectives: got an unknown metric 'acc', allowed: one of \[",
        ),
        (
            None,
            ["--storage", "sqlite:///x.db", "--workers", "2"],
            r"--storage: got SQLite .* not safe",
        ),
        (None, ["--storage", "mysql+nodriver://h/db"], r"--storage"),
        (None, ["--load", "missing.pt"], r"--load: got 'missing\.pt', which does not exist"),
    ],
)
def test_bad_input_is_one_line(
    config: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    edit: tuple[str, str] | None,
    extra_args: list[str],
    match: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    if edit is not None:
        config.write_text(config.read_text().replace(*edit))
    code, _, err = run(["search", "-c", str(config), "-q", *extra_args], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    import re

    assert re.search(match, lines[0]), lines[0]


def test_search_writes_the_run_directory(
    config: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, _ = run(["search", "-c", str(config)], capsys)
    assert code == 0
    run_dir = tmp_path / "runs" / "s"
    best = json.loads((run_dir / "best.json").read_text())
    assert best["trials"] == 2 and best["evaluations"] == 2 and best["space_size"] == 2
    assert best["best"]["params"]["linear.weight"] in ("fixed(8,4)", "fixed(4,2)")
    assert "best configs" in out and "report:" in out
    # Again: the study is resumed and already complete; nothing is evaluated twice.
    code, _, _ = run(["search", "-c", str(config), "-q", "--n-trials", "6"], capsys)
    lines = (run_dir / "trials.jsonl").read_text().splitlines()
    assert code == 0 and len(lines) == 2  # the 2-point space was exhausted the first time


def test_n_jobs_threads_evaluate_each_config_once(mlp: nn.Module, digits: object) -> None:
    from quantsearch.search import search

    space = {
        "choices": {
            "linear": {"data_in": [[16, 8], [8, 4], [4, 2]], "weight": [[16, 8], [8, 4], [4, 2]]}
        }
    }
    for strategy in ("brute_force", "tpe"):
        result = search(
            mlp, digits.val, space=space, objectives={"accuracy": {"direction": "maximize"}},  # type: ignore[attr-defined]
            strategy=strategy, n_trials=30, n_jobs=2, seed=0,
        )  # fmt: skip
        evaluated = [t.config_hash for t in result.trials if t.evaluated]
        assert len(evaluated) == len(set(evaluated)) == result.n_evaluations
        if strategy == "brute_force":
            assert result.n_evaluations == 9


@pytest.mark.slow
def test_workers_share_one_journal_study(config: Path, tmp_path: Path) -> None:
    import subprocess
    import sys

    text = (
        config.read_text()
        .replace("n_trials = 4", "n_trials = 20")
        .replace('"brute_force"', '"random"')
    )
    text = text.replace(
        "weight = [[8, 4], [4, 2]]",
        "weight = { width = [4, 6, 8, 12, 16], frac_width = [1, 2, 3, 4] }\ndata_in = { width = [4, 6, 8, 12, 16], frac_width = [1, 2, 3, 4] }",
    )
    config.write_text(text)
    out = subprocess.run(
        [sys.executable, "-m", "quantsearch", "search", "-c", str(config), "--workers", "2", "-q"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    rows = [
        json.loads(line)
        for line in (tmp_path / "runs" / "s" / "trials.jsonl").read_text().splitlines()
    ]
    assert sum(r["state"] == "COMPLETE" for r in rows) == 20  # the budget of both together
    evaluated = [r["config_hash"] for r in rows if not r["cached"]]
    assert len(evaluated) == len(set(evaluated))
