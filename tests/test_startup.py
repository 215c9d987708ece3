"""What reading results imports (issue 15): not torch, Optuna, matplotlib nor SciPy.

The referee is ``sys.modules`` of a fresh interpreter. Reading a run directory, parsing and
printing formats, and reporting a run directory whose figures are already drawn need only the
standard library, Jinja2 and light project modules; torch alone costs more than a second.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from quantsearch.cli import main

HEAVY = {"torch", "optuna", "matplotlib", "scipy"}

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
[search.space.choices.relu]
data_in = [[8, 4], [4, 2]]
[search.objectives]
accuracy = {{ direction = "maximize" }}
[compare]
strategies = ["brute_force", "random"]
seeds = 1
n_trials = 8
"""


def top_modules(code: str) -> set[str]:
    """The top-level packages in ``sys.modules`` after ``code`` runs in a fresh interpreter."""
    tail = "\nimport json as _j, sys as _s\nprint(_j.dumps(sorted(_s.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code + tail], check=True, capture_output=True, text=True
    )
    return {m.split(".")[0] for m in json.loads(out.stdout.splitlines()[-1])}


def heavy_modules(code: str) -> set[str]:
    """The heavy libraries in ``sys.modules`` after ``code`` runs in a fresh interpreter."""
    return top_modules(code) & HEAVY


@pytest.mark.slow
def test_reading_results_and_formats_imports_no_torch() -> None:
    code = (
        "import quantsearch.report, quantsearch.compare, quantsearch.search.space\n"
        "import quantsearch.passes.transform, quantsearch.search.results\n"
        "from quantsearch.formats import format_from_str\n"
        "assert str(format_from_str('minifloat(e4m3,b7)')) == 'minifloat(e4m3,b7)'"
    )
    assert heavy_modules(code) == set()


@pytest.mark.slow
def test_report_of_drawn_runs_imports_no_torch(
    write_config: Callable[..., Path], mlp_checkpoint: Path, tmp_path: Path
) -> None:
    """``quantsearch report`` of a search and of a comparison whose figures are drawn (the
    search and compare commands drew them): no torch, Optuna, matplotlib nor SciPy; nor the
    first report, which draws every picture (SVG, the default format, drawn natively)."""
    config = str(write_config(CONFIG.format(ckpt=mlp_checkpoint), name="lab.toml"))
    main(["search", "--config", config, "--run-dir", str(tmp_path), "--quiet"])
    main(["compare", "--config", config, "--run-dir", str(tmp_path)])
    for run_dir in (tmp_path / "lab", tmp_path / "lab-compare"):
        html = (run_dir / "report.html").read_text()
        command = f"from quantsearch.cli import main\nmain(['report', {str(run_dir)!r}])"
        assert heavy_modules(command) == set(), run_dir.name
        assert (run_dir / "report.html").read_text() == html
        shutil.rmtree(run_dir / "images")  # nothing drawn nor computed: the first report
        assert heavy_modules(command) == set(), run_dir.name
        assert (run_dir / "report.html").read_text() == html
        assert {p.suffix for p in (run_dir / "images").iterdir()} == {".svg", ".json"}


@pytest.mark.slow
def test_transform_functions_named_like_their_modules() -> None:
    """``calibrate``, ``quantize`` and ``resolve`` are functions of the package even when their
    modules were imported first (the package loads them lazily)."""
    code = (
        "import importlib, types\n"
        "for name in ('calibrate', 'quantize', 'resolve'):\n"
        "    importlib.import_module(f'quantsearch.passes.transform.{name}')\n"
        "from quantsearch.passes import transform\n"
        "from quantsearch.passes.transform import calibrate, quantize, resolve\n"
        "for f in (calibrate, quantize, resolve, transform.quantize):\n"
        "    assert isinstance(f, types.FunctionType), f\n"
        "assert quantize.__module__ == 'quantsearch.passes.transform.quantize'"
    )
    assert "torch" in heavy_modules(code)  # the modules were loaded, and still:


@pytest.mark.slow
def test_journal_search_imports_no_sqlalchemy(
    write_config: Callable[..., Path], mlp_checkpoint: Path, tmp_path: Path
) -> None:
    """``quantsearch search`` by one process on the journal default never loads SQLAlchemy
    (about 0.2 s and 15 MiB at start-up); the same search on an SQLite ``--storage`` does."""
    config = str(write_config(CONFIG.format(ckpt=mlp_checkpoint), name="lab.toml"))

    def search(run_dir: Path, *extra: str) -> str:
        argv = ["search", "--config", config, "--run-dir", str(run_dir), "-q", *extra]
        return f"from quantsearch.cli import main\nmain({argv!r})"

    journal = top_modules(search(tmp_path / "journal"))
    assert "optuna" in journal and "sqlalchemy" not in journal
    assert (tmp_path / "journal" / "lab" / "study.journal").is_file()
    db = f"sqlite:///{tmp_path / 'lab.db'}"
    assert "sqlalchemy" in top_modules(search(tmp_path / "rdb", "--storage", db))
