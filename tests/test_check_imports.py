"""tools/check_imports.py: it finds a cycle hidden in a function and a module over budget, and
passes the project itself (``make lint`` runs it too)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

TOOL = Path(__file__).resolve().parents[1] / "tools" / "check_imports.py"


def _run(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(TOOL), str(root)], capture_output=True, text=True, check=False
    )


def test_finds_a_cycle_hidden_inside_a_function(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from pkg import b\n")
    (pkg / "b.py").write_text("def f():\n    from pkg.a import x\n    return x\n")
    (pkg / "c.py").write_text("from . import a\n")
    out = _run(pkg)
    assert out.returncode == 1
    assert "import cycle: pkg.a -> pkg.b; pkg.b -> pkg.a" in out.stdout
    assert "pkg.c" not in out.stdout  # importing into a cycle is not being in it


def test_finds_a_module_over_budget(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "big.py").write_text("x = 1\n" * 451)
    (pkg / "ok.py").write_text("x = 1\n" * 450)
    out = _run(pkg)
    assert out.returncode == 1
    assert out.stdout.splitlines() == [f"{pkg / 'big.py'}: 451 lines, over the budget of 450"]


def test_the_project_has_no_cycle() -> None:
    out = _run(TOOL.parents[1] / "src" / "quantsearch")
    assert out.returncode == 0, out.stdout
