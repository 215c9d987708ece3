"""``search --n-evaluations`` and ``compare --evaluations``, run in-process on the lab's space."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from quantsearch.cli import main
from quantsearch.compare import ComparisonResult
from quantsearch.search.results import SearchResult
from tests.cli.test_compare_cli import CONFIG


@pytest.fixture
def config(write_config: Callable[..., Path], mlp_checkpoint: Path) -> str:
    return str(write_config(CONFIG.format(ckpt=mlp_checkpoint), name="lab.toml"))


def test_search_n_evaluations(config: str, tmp_path: Path) -> None:
    main(["search", "--config", config, "--strategy", "tpe", "--n-evaluations", "5",
          "--run-dir", str(tmp_path), "-q"])  # fmt: skip
    result = SearchResult.read(tmp_path / "lab")
    assert result.n_evaluations == 5


def test_compare_evaluations(
    config: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["compare", "--config", config, "--strategies", "random,tpe", "--seeds", "2",
          "--evaluations", "4", "--run-dir", str(tmp_path), "--json"])  # fmt: skip
    json.loads(capsys.readouterr().out)
    cmp = ComparisonResult.read(tmp_path / "lab-compare")
    assert cmp.budget_unit == "evaluations" and max(cmp.budgets) == 4
    assert all(r.evaluations == 4 for r in cmp.runs)
