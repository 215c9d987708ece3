"""``--json`` on the commands that print tables: standard output is one JSON document, and its
numbers are those of the files the command wrote (the referee: ``SearchResult.read`` and the
run directory's JSON files)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from quantsearch.cli import main
from quantsearch.cli.printing import dumps
from quantsearch.search.results import SearchResult

CONFIG = """
seed = 0
[model]
name = "mlp-digits"
checkpoint = "{ckpt}"
[search]
n_trials = 4
[search.strategy]
name = "brute_force"
[search.space.choices.linear]
data_in = [[16, 8], [4, 2]]
weight = [[8, 4], [4, 2]]
[search.objectives]
{objectives}
"""
WEIGHTED = 'accuracy = { direction = "maximize" }'
PARETO = """combine = "pareto"
accuracy = { direction = "maximize" }
model_size_bits = { direction = "minimize" }"""


def _json_of(args: list[str], capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    capsys.readouterr()
    main(args)
    data: dict[str, object] = json.loads(capsys.readouterr().out)  # all of stdout, nothing else
    return data


@pytest.mark.parametrize(("objectives", "summary_file"), [(WEIGHTED, "best"), (PARETO, "pareto")])
def test_search_json_is_the_run_directory(
    tmp_path: Path,
    mlp_checkpoint: Path,
    capsys: pytest.CaptureFixture[str],
    objectives: str,
    summary_file: str,
) -> None:
    config = tmp_path / "s.toml"
    config.write_text(CONFIG.format(ckpt=mlp_checkpoint.as_posix(), objectives=objectives))
    out = _json_of(["search", "-c", str(config), "--run-dir", str(tmp_path), "--json"], capsys)
    run_dir = tmp_path / "s"
    assert out["run_dir"] == str(run_dir)
    assert out["report"] == str(run_dir / "report.html") and Path(str(out["report"])).is_file()
    assert Path(str(out["markdown"])).is_file()

    written = json.loads((run_dir / f"{summary_file}.json").read_text())
    chosen = written.pop("best", None) or written.pop("front")[0]
    assert out["summary"] == written
    assert written["trials"] == 4 and written["evaluations"] == 4

    result = SearchResult.read(run_dir)
    rows = out["rows"]
    assert isinstance(rows, list)
    if summary_file == "best":
        ranked = sorted(result.feasible, key=lambda t: (-t.values[0], t.number))  # type: ignore[index]
        assert rows[0]["trial"] == chosen["trial"] == ranked[0].number
        assert [r["objective"] for r in rows] == [t.values[0] for t in ranked]  # type: ignore[index]
    else:
        assert [r["trial"] for r in rows] == [t.number for t in result.pareto]
        assert rows[0]["trial"] == chosen["trial"]
    for row in rows:
        trial = result.trial(row["trial"])
        assert {k: row[k] for k in trial.params} == trial.params
        assert {m: row[m] for m in result.objective_names} == {
            m: trial.metrics[m] for m in result.objective_names
        }
    formats = out["formats"]
    assert isinstance(formats, dict) and formats["trial"] == chosen["trial"]
    assert [r["layer"] for r in formats["layers"]] == list(chosen["config"])


def test_report_json_names_the_files_it_wrote(
    tmp_path: Path, mlp_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "s.toml"
    config.write_text(CONFIG.format(ckpt=mlp_checkpoint.as_posix(), objectives=WEIGHTED))
    main(["search", "-c", str(config), "--run-dir", str(tmp_path), "-q"])
    run_dir = tmp_path / "s"
    for name in ("report.html", "report.md"):
        (run_dir / name).unlink()
    out = _json_of(["report", str(run_dir), "--json"], capsys)
    assert out["html"] == str(run_dir / "report.html")
    assert out["markdown"] == str(run_dir / "report.md")
    assert Path(str(out["html"])).is_file() and Path(str(out["markdown"])).is_file()
    images = out["images"]
    assert isinstance(images, list) and images
    assert all(Path(p).is_file() for p in images)


@pytest.mark.slow
def test_demo_json_is_one_document_of_its_four_steps(tmp_path: Path, mlp_checkpoint: Path) -> None:
    import os
    import subprocess
    import sys

    from quantsearch.compare import ComparisonResult
    from quantsearch.compare.result import jsonable
    from tests.cli.test_compare_cli import CONFIG as LAB  # the lab's 16 points, two strategies

    config = tmp_path / "lab.toml"
    config.write_text(LAB.format(ckpt=mlp_checkpoint.as_posix()))
    done = subprocess.run(
        [sys.executable, "-m", "quantsearch", "demo", "-c", str(config), "--seeds", "1",
         "--run-dir", "out", "--json"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
        env={k: v for k, v in os.environ.items() if k != "COLUMNS"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout)  # the whole of stdout: one document
    assert out["checkpoint"] == mlp_checkpoint.as_posix() and out["train"] is None

    search_dir = tmp_path / "out" / "lab"
    best = json.loads((search_dir / "best.json").read_text())
    assert out["search"]["summary"] == {k: v for k, v in best.items() if k != "best"}
    assert out["search"]["rows"][0]["trial"] == best["best"]["trial"]
    assert out["search"]["report"] == str(Path("out") / "lab" / "report.html")

    compared = ComparisonResult.read(tmp_path / "out" / "lab-compare")
    assert out["compare"]["table"] == jsonable(compared.table_rows())  # inf as "inf"
    assert [r["strategy"] for r in out["compare"]["table"]] == ["brute_force", "tpe"]

    export = out["export"]
    if export["skipped"] is None:  # the export extra is installed
        assert [e["to"] for e in export["exports"]] == ["hls4ml", "qonnx"]
        assert (tmp_path / export["exports"][1]["out"]).is_file()
        assert export["exports"][1]["agreement"]["referee"] == "qonnx executor"
        hls = export["exports"][0]
        if "agreement" in hls:  # g++ built the C simulation
            assert hls["search_agreement"]["referee"] == "the search's float32 evaluation"


def test_every_json_document_is_standard_json() -> None:
    """Every command's --json goes through one writer: no bare Infinity or NaN, which Python's
    json accepts and a standard parser (the referee: json.loads refusing those constants)
    does not."""

    def strict(text: str) -> object:
        def refuse(name: str) -> object:
            raise ValueError(f"non-standard JSON constant {name}")

        return json.loads(text, parse_constant=refuse)

    doc = {"sqnr_db": math.inf, "drop": -math.inf, "x": math.nan, "path": Path("a"), "n": (1, 2)}
    assert strict(dumps(doc)) == {
        "sqnr_db": "inf",
        "drop": "-inf",
        "x": "nan",
        "path": "a",
        "n": [1, 2],
    }
    with pytest.raises(ValueError, match="Infinity"):
        strict(json.dumps({"sqnr_db": math.inf}))
