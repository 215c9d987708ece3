"""`quantsearch search` with ``frac_width = "auto"`` in a TOML ``[search.space]``: the CLI
calibrates on ``data.calibration_samples`` of the training split (the space alone asks for it;
there is no ``[quantize]``), and the run directory and report hold the binary points chosen.

Referee: numpy on the training samples (forward hooks) and on the weights, as in
``tests/search/test_space_auto.py``.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest
from torch import nn

from quantsearch.cli import main
from quantsearch.data import DataSplits
from quantsearch.formats import format_from_str
from quantsearch.graph import trace
from tests.search.test_space_auto import ref_frac, ref_ranges

CONFIG = """seed = 0
[model]
name = "mlp-digits"
checkpoint = "{ckpt}"
[data]
calibration_samples = 100
[search]
n_trials = 4
[search.strategy]
name = "brute_force"
[search.space.choices.linear]
weight  = {{ width = [4, 8], frac_width = "auto" }}
data_in = [[8, "auto"], [6, "auto"]]
[search.objectives]
accuracy = {{ direction = "maximize" }}
"""


@pytest.mark.slow  # a whole CLI search with its report: about 7 s
def test_search_records_calibrated_binary_points(
    tmp_path: Path,
    mlp_checkpoint: Path,
    mlp: nn.Module,
    digits: DataSplits,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = tmp_path / "auto.toml"
    cfg.write_text(CONFIG.format(ckpt=mlp_checkpoint.as_posix()))
    try:
        main(["search", "-c", str(cfg), "-q"])
    except SystemExit as exc:
        assert not exc.code, capsys.readouterr().err
    run_dir = tmp_path / "runs" / "auto"
    ranges = ref_ranges(trace(mlp, digits.val.x[:8]), digits.train.x[:100])
    with (run_dir / "trials.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 4
    for row in rows:
        formats = {k[len("formats.") :]: v for k, v in row.items() if k.startswith("formats.")}
        assert len(formats) == 6  # three Linears x (weight, data_in)
        for name, label in formats.items():
            node, role = name.rsplit(".", 1)
            fmt = format_from_str(label)
            want = ref_frac(fmt.width, True, *ranges[node][role])  # type: ignore[attr-defined]
            assert fmt.frac_width == want, (row["number"], name, label)  # type: ignore[attr-defined]
    best = json.loads((run_dir / "best.json").read_text())["best"]
    assert "auto" in json.dumps(best["params"]) and "auto" not in json.dumps(best["config"])
    report = (run_dir / "report.md").read_text()
    assert "fixed(8,auto)" in report  # the space as searched
    first = next(r for r in rows if r["number"] == str(best["trial"]))
    shown = first["formats.seq_blocks_0.weight"]
    assert f"w {shown}" in report  # the best config's table: the format the weights got
    # other calibration samples resolve the same points to other configs: another study
    cfg.write_text(CONFIG.format(ckpt=mlp_checkpoint.as_posix()).replace("= 100", "= 50"))
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main(["search", "-c", str(cfg), "-q", "--n-trials", "8"])
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2 and len(err) == 1
    assert re.fullmatch(
        r"error: --study: got 'auto', .* made with different calibration, allowed: .*", err[0]
    )
    records = [json.loads(line) for line in (run_dir / "trials.jsonl").read_text().splitlines()]
    assert [r["formats"] for r in records] == [
        {k[len("formats.") :]: v for k, v in row.items() if k.startswith("formats.")}
        for row in rows
    ]
