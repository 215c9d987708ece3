"""The files `quantize` and `finetune` write beside their checkpoint (``resolved_config.json``,
``metrics.json``, ``weights.npz``, ``weights.json``), each written atomically like the
checkpoint: a write that fails ends in one ``error:`` line with exit status 2 and leaves what
stood there as it was, and a ``kill -9`` inside a write leaves the previous file or a whole new
one. The faults are real: a user's folder where a file goes (``EISDIR`` from the final
``rename``), a file-size limit (``EFBIG``), ``kill -9`` the moment the write's temporary
appears. Referees: ``json.loads``, ``np.load``, ``torch.load``, the folder's bytes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.fault.harness import digest, quantsearch
from tests.fault.test_kill_outputs import _killed

pytestmark = pytest.mark.slow
QUANTIZE = ["quantize", "--from-run", "runs/s", "--out", "out", "--int-weights"]
FINETUNE = ["finetune", "--from-run", "runs/s", "--epochs", "1", "--out", "out"]


def _hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.mark.parametrize(
    ("args", "name"),
    [
        (QUANTIZE, "resolved_config.json"),
        (QUANTIZE, "metrics.json"),
        (QUANTIZE, "weights.npz"),
        (QUANTIZE, "weights.json"),
        (FINETUNE, "resolved_config.json"),
        (FINETUNE, "metrics.json"),
    ],
)
def test_a_folder_where_an_output_goes_ends_in_one_line_and_is_kept(
    work: Path, args: list[str], name: str
) -> None:
    """Written in place, the file's open() failed with a traceback."""
    mine = work / "out" / name
    mine.mkdir(parents=True)
    (mine / "notes.txt").write_text("a user's file")
    line = quantsearch(args, cwd=work).one_error_line()
    assert f"{name}: cannot be written" in line and "a folder has that name" in line, line
    assert digest(mine) == {"notes.txt": digest(mine)["notes.txt"]}
    assert _hidden(work / "out") == []  # no temporary left behind


def test_quantize_outputs_that_fail_leave_the_previous_ones(work: Path) -> None:
    assert quantsearch(QUANTIZE, cwd=work).code == 0
    before = digest(work / "out")
    assert set(before) == {
        "quantized.pt", "resolved_config.json", "metrics.json", "weights.npz", "weights.json"
    }  # fmt: skip
    assert "quantized.pt" in quantsearch(QUANTIZE, fsize=20_000, cwd=work).one_error_line()
    assert digest(work / "out") == before
    again = quantsearch(QUANTIZE, cwd=work)
    assert again.code == 0, again.err
    assert digest(work / "out") == before  # the same config, the same files
    json.loads((work / "out" / "metrics.json").read_text())
    with np.load(work / "out" / "weights.npz") as f:
        assert f.files
    assert "state_dict" in torch.load(work / "out" / "quantized.pt", weights_only=True)


@pytest.mark.parametrize("name", ["metrics.json", "weights.npz"])
def test_quantize_killed_in_the_write_of(work: Path, name: str) -> None:
    out = work / "out"
    out.mkdir()
    (out / name).write_bytes(b"previous")

    def check() -> None:
        data = (out / name).read_bytes()
        if data != b"previous" and name.endswith(".json"):
            json.loads(data)
        elif data != b"previous":
            with np.load(out / name) as f:
                assert f.files

    assert _killed(QUANTIZE, out, name, work, check) >= 1
    again = quantsearch(QUANTIZE, cwd=work)
    assert again.code == 0, again.err
    assert _hidden(out) == []  # the killed writes' temporaries cleared
    check()
