"""ComparisonResult's files: read back beside where they are written; older layouts still open."""

from __future__ import annotations

import json
from pathlib import Path

from quantsearch.compare import ComparisonResult
from quantsearch.compare.configs import read_configs
from quantsearch.compare.result import read_meta
from quantsearch.report import build_report
from tests.compare.fixtures import compare_dir, lab, lab_comparison  # noqa: F401  (fixtures)


def test_read_gives_back_what_write_wrote(
    compare_dir: Path,  # noqa: F811
    lab_comparison: ComparisonResult,  # noqa: F811
) -> None:
    back = ComparisonResult.read(compare_dir)
    assert back.run_dir == compare_dir
    assert back.stats == lab_comparison.stats and back.runs == lab_comparison.runs
    assert back.table_rows() == lab_comparison.table_rows()
    assert read_meta(compare_dir)["model"] == "mlp-digits"
    points = read_configs(compare_dir / "configs.jsonl")
    assert len(points) == lab_comparison.evaluations
    assert read_meta(compare_dir / "absent") == {}


def test_an_older_comparison_json_still_reports(
    compare_dir: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    """Keys a newer (or older) writer added are ignored; absent optional keys default."""
    old = tmp_path / "old"
    old.mkdir()
    raw = json.loads((compare_dir / "comparison.json").read_text())
    raw.pop("prefix_overlap")
    for r in raw["runs"]:
        r["some_future_measure"] = 1
    (old / "comparison.json").write_text(json.dumps(raw))
    for name in ("configs.jsonl", "compare_config.json"):
        (old / name).write_text((compare_dir / name).read_text())
    report = build_report(old)
    assert report.kind == "compare" and report.comparison is not None
    assert report.comparison == build_report(compare_dir).comparison
