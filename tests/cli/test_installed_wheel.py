"""``--config cnn_digits`` from an installed wheel, run outside the source tree: the packaged
examples (example folders with their Python files too), report templates and ``py.typed`` are
in the wheel, and the installed copy is the one that runs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "quantsearch"


def _run(args: list[str], cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def _build_wheel(tmp_path: Path) -> Path:
    """A wheel of the working tree, built from a copy (setuptools' build/ folder would carry
    stale files between builds of the shared tree)."""
    tree = tmp_path / "tree"
    shutil.copytree(
        PACKAGE, tree / "src" / "quantsearch", ignore=shutil.ignore_patterns("__pycache__")
    )
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (ROOT / name).is_file():
            shutil.copy2(ROOT / name, tree / name)
    wheels = tmp_path / "wheels"
    _run(
        ["-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels), "."],
        tree,
        dict(os.environ),
    )
    (wheel,) = wheels.glob("quantsearch-*.whl")
    return wheel


@pytest.mark.slow
def test_cnn_digits_by_name_from_an_installed_wheel(tmp_path: Path) -> None:
    wheel = _build_wheel(tmp_path)
    # The referee: the source package's data, every file that is not a module of a package
    # (a folder with __init__.py) and not a byte-code cache.
    data = {
        p.relative_to(PACKAGE.parent).as_posix()
        for p in PACKAGE.rglob("*")
        if p.is_file()
        and "__pycache__" not in p.parts
        and not (p.suffix == ".py" and (p.parent / "__init__.py").is_file())
    }
    assert {"quantsearch/py.typed", "quantsearch/examples/cnn_digits.toml"} <= data
    assert any(p.startswith("quantsearch/report/templates/") for p in data)
    assert data <= set(zipfile.ZipFile(wheel).namelist())

    site = tmp_path / "site"
    _run(
        ["-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
        tmp_path,
        dict(os.environ),
    )
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "COLUMNS")}
    env["PYTHONPATH"] = str(site)

    imported = _run(["-c", "import quantsearch; print(quantsearch.__file__)"], work, env).strip()
    assert Path(imported).resolve().is_relative_to(site.resolve()), imported
    assert not Path(imported).resolve().is_relative_to(ROOT)

    _run(
        ["-m", "quantsearch", "train", "--config", "cnn_digits", "--epochs", "1", "--json"],
        work,
        env,
    )
    assert (work / "runs" / "cnn-digits.pt").is_file()  # the example's model.checkpoint
    out = json.loads(
        _run(
            ["-m", "quantsearch", "search", "--config", "cnn_digits", "--n-trials", "2", "--json"],
            work,
            env,
        )
    )
    run_dir = work / "runs" / "cnn_digits"
    assert (work / out["run_dir"]).resolve() == run_dir.resolve()  # relative to the cwd
    front = json.loads((run_dir / "pareto.json").read_text())  # cnn_digits is a Pareto search
    assert out["summary"]["trials"] == front["trials"] == 2
    assert [r["trial"] for r in out["rows"]] == [t["trial"] for t in front["front"]]
    assert (run_dir / "report.html").is_file()
