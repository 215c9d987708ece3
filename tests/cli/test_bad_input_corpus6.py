"""The sixth sweep of bad inputs: small things a user met. What escaped before:

- ``quantize`` and ``export`` of a config without a ``[quantize]`` table keyed their error
  by the config's file name, not by ``quantize``;
- ``init -o x.json`` wrote TOML under a ``.json`` name (which ``--config`` then refused as
  "a JSON file?");
- ``init``'s list of what a model file defines offered the modules it imports (``nn`` of
  ``from torch import nn``);
- ``compare.tolerance = 1`` on a Pareto search was taken (every run then "reached" the
  front at its first trial).

Each case: exit status 2, one ``error:`` line naming the key or option, no traceback, and
every file of the folder it runs in byte for byte as before (no file added).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from quantsearch.config import load_config
from tests.cli.bad_input import ACC, GOOD, check_one_line, digest, run_cli

MODEL = """import torch
from torch import nn
import numpy as np
from collections import OrderedDict as OD

SIZE = 4


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(SIZE, 2)

    def forward(self, x):
        return self.fc(x)


def build():
    hidden = 3
    return Net()


make = lambda: Net()
"""
DATA = "import torch\n\ndef load():\n    return torch.randn(40, 4), torch.arange(40) % 2\n"
QUANTIZE_TABLE = r"^quantize: got no \[quantize\] table in .*good\.toml, allowed: a config with one"
PARETO = """[search.objectives]
combine = "pareto"
accuracy = { direction = "maximize" }
model_size_bits = { direction = "minimize" }
"""


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The user's model, data and configs (good.toml: no [quantize] table); the test runs in it."""
    (tmp_path / "m.py").write_text(MODEL)
    (tmp_path / "d.py").write_text(DATA)
    good = GOOD.format(ckpt="mlp.pt")
    (tmp_path / "good.toml").write_text(good)
    pareto = good.replace(f"[search.objectives]\n{ACC}\n", PARETO)
    assert pareto != good
    (tmp_path / "pareto.toml").write_text(pareto + "[compare]\ntolerance = 1.0\n")
    (tmp_path / "notes.json").write_text('{"mine": true}\n')
    monkeypatch.chdir(tmp_path)
    return tmp_path


CASES: dict[str, tuple[list[str], str]] = {
    "init -o a .json name": (
        ["init", "--model", "m.py:build", "--data", "d.py:load", "-o", "search.json"],
        r"^--output: got 'search\.json', allowed: a file name ending in \.toml \(the config is "
        r"TOML, and --config reads only TOML\)$",
    ),
    "init -o the user's own .json file": (
        ["init", "--model", "m.py:build", "--data", "d.py:load", "-o", "notes.json"],
        r"^--output: got 'notes\.json', allowed: a file name ending in \.toml",
    ),
    "init -o a name without a suffix": (
        ["init", "--model", "m.py:build", "--data", "d.py:load", "-o", "search"],
        r"^--output: got 'search', allowed: a file name ending in \.toml",
    ),
    # offered: the functions, the class and the lambda; not torch, nn, np, OD, SIZE or the
    # functions' locals (hidden)
    "init offers only what can be called": (
        ["init", "--model", "m.py:nope", "--data", "d.py:load", "-o", "s.toml"],
        r"^--model: got 'm\.py:nope', allowed: a function 'm\.py' defines "
        r"\(\['Net', 'build', 'make'\]\)$",
    ),
    "quantize without a [quantize] table": (
        ["quantize", "-c", "good.toml", "--out", "q"],
        QUANTIZE_TABLE + r", e\.g\. \[quantize\.default\] weight = .*, or --from-run DIR$",
    ),
    "export without a [quantize] table": (
        ["export", "--to", "qonnx", "m.onnx", "-c", "good.toml"],
        QUANTIZE_TABLE + r", or --from-run RUNDIR$",
    ),
    "compare.tolerance 1 on a Pareto search": (
        ["compare", "-c", "pareto.toml", "-q"],
        r"^compare\.tolerance: got 1 with search\.objectives\.combine = 'pareto', allowed: "
        r"0 <= tolerance < 1 \(a share of the front's hypervolume: 1 or more is reached by "
        r"every run at its first trial\)$",
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input(name: str, folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args, pattern = CASES[name]
    if args[0] == "export":
        pytest.importorskip("qonnx", reason="the export extra: pip install 'quantsearch[export]'")
    before = digest(folder)
    code, err = run_cli(args, capsys)
    check_one_line(code, err, pattern)
    assert digest(folder) == before, "a file of the user's was changed or one was added"


def test_init_takes_an_imported_name_and_writes_toml_that_loads(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An imported name is not offered but not refused (it may be a function); the .toml
    written loads as a config (the referee: the loader --config runs)."""
    code, err = run_cli(
        ["init", "--model", "m.py:build", "--data", "m.py:OD", "-o", "S.TOML"], capsys
    )
    assert code == 0, err
    assert load_config(folder / "S.TOML").model.name.endswith("m.py:build")


def test_a_tolerance_below_one_on_a_pareto_search_loads(folder: Path) -> None:
    text = (folder / "pareto.toml").read_text().replace("tolerance = 1.0", "tolerance = 0.99")
    (folder / "ok.toml").write_text(text)
    assert load_config(folder / "ok.toml").compare.tolerance == 0.99
    weighted = (folder / "good.toml").read_text() + "[compare]\ntolerance = 5.0\n"
    (folder / "w.toml").write_text(weighted)  # the objective's own units: no bound
    assert load_config(folder / "w.toml").compare.tolerance == 5.0
