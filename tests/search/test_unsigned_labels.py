"""A ReLU's input is quantized unsigned, and every place that names its format says so.

The referee is the quantized model itself: the format the resolved config applies at the ReLU
(``ResolvedConfig``), printed with ``str()``; the labels in the trial parameters, the console
table and the report tables must be that string.
"""

from __future__ import annotations

import io
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import pytest
from torch import nn

from quantsearch.cli.printing import print_result
from quantsearch.data import DataSplits
from quantsearch.report import build_report, write_report
from quantsearch.search import search

OBJ = {
    "accuracy": {"direction": "maximize"},
    "bitops": {"direction": "minimize", "weight": 0.1, "relative_to_baseline": True},
}
CHOICES = [[8, 4], [4, 2]]
BY_TYPE = {"choices": {"relu": {"data_in": CHOICES}}}
BY_NAME = {"by": "name", "choices": {"seq_blocks_2": {"data_in": CHOICES}}}  # mlp-digits' 1st ReLU


def _run(
    mlp: nn.Module, digits: DataSplits, space: dict[str, Any], tmp_path: Path
) -> tuple[list[dict[str, Any]], str, str]:
    result = search(
        mlp, digits.val, space=space, objectives=OBJ, strategy="brute_force", n_trials=2,
        seed=0, run_dir=tmp_path,
    )  # fmt: skip
    out = io.StringIO()
    with redirect_stdout(out):
        print_result(result)
    files = write_report(tmp_path)
    return [t.params for t in result.trials], out.getvalue(), Path(files.markdown).read_text()


@pytest.mark.parametrize("space", [BY_TYPE, BY_NAME], ids=["by_type", "by_name"])
def test_trial_params_and_console_name_the_unsigned_format(
    mlp: nn.Module,
    digits: DataSplits,
    space: dict[str, Any],
    tmp_path: Path,
) -> None:
    params, console, _ = _run(mlp, digits, space, tmp_path)
    assert sorted(v for p in params for v in p.values()) == ["ufixed(4,2)", "ufixed(8,4)"]
    assert "ufixed(8,4)" in console and "ufixed(4,2)" in console
    assert " fixed(" not in console


def test_report_tables_name_the_unsigned_format_by_type(
    mlp: nn.Module, digits: DataSplits, tmp_path: Path
) -> None:
    _, _, md = _run(mlp, digits, BY_TYPE, tmp_path)
    tables = [line for line in md.splitlines() if line.startswith("|")]
    assert "| relu.data_in | 2 | ufixed(8,4) ufixed(4,2) |" in tables
    assert not [line for line in tables if " fixed(" in line]
    assert build_report(tmp_path).kind == "search"


def test_report_space_table_names_the_unsigned_format_by_name(
    mlp: nn.Module, digits: DataSplits, tmp_path: Path
) -> None:
    _, _, md = _run(mlp, digits, BY_NAME, tmp_path)
    assert "| seq_blocks_2.data_in | 2 | ufixed(8,4) ufixed(4,2) |" in md.splitlines()
