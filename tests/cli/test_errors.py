"""Bad model and dataset specs: exit status 2 and one ``error:`` line naming the key, no traceback.

A few cases run the real command in a subprocess (``python -m quantsearch``), started together
so they overlap; the rest call the same entry point in-process, which is faster and checks the
same contract.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from quantsearch.cli import main

USER_FILES = {
    "net.py": "import torch.nn as nn\n\ndef build():\n    return nn.Linear(64, 10)\n\ndef bad():\n    return 'model'\n",
    "mydata.py": "def load():\n    return 'no tensors here'\n",
}


def _config(model: str, data: str | None = None, extra: str = "") -> str:
    text = f'[model]\nname = "{model}"\n'
    if data is not None:
        text += f'[data]\nname = "{data}"\n'
    return text + extra


# name -> (config text, regex the single stderr line must match after "error: ")
CASES = {
    "unknown model": (
        _config("jsc-huge"),
        r"model\.name: got 'jsc-huge', allowed: one of \[.*\] or 'file\.py:function'",
    ),
    "missing model file": (
        _config("absent.py:build"),
        r"model\.name: got .*, whose file 'absent\.py' does not exist",
    ),
    "missing model attr": (
        _config("net.py:nope"),
        r"model\.name: got .*, but 'net\.py' has no attribute 'nope', allowed: one of the callables there: \['bad', 'build'\]",
    ),
    "model not a module": (
        _config("net.py:bad"),
        r"model\.name: got 'net\.py:bad', which returned str, allowed",
    ),
    "missing model module": (
        _config("nopkg.nets:build"),
        r"model\.name: got .*, whose module 'nopkg\.nets' cannot be imported",
    ),
    "user model, no data": (
        _config("net.py:build"),
        r"data\.name: got no value, allowed: a dataset or 'file\.py:function' \(user model 'net\.py:build' names none\)",
    ),
    "unknown dataset": (
        _config("mlp-digits", "mnist"),
        r"data\.name: got 'mnist', allowed: one of \['digits', 'jsc'\]",
    ),
    "missing dataset file": (
        _config("mlp-digits", "absent.py:load"),
        r"data\.name: got .*, whose file 'absent\.py' does not exist",
    ),
    "dataset wrong type": (
        _config("mlp-digits", "mydata.py:load"),
        r"data\.name: got 'mydata\.py:load', which returned a str, allowed:",
    ),
    "unknown data option": (
        _config("mlp-digits", "digits", "shuffle = true\n"),
        r"data\.shuffle: got an unknown key, allowed: the keys of dataset 'digits': \['test_fraction', 'val_fraction'\]",
    ),
    "jsc without a path": (
        _config("jsc-tiny", "jsc"),
        r"data\.path: got no value, allowed: the path of the JSC data \(or set QUANTSEARCH_JSC_PATH\); get MASE's",
    ),
    "jsc file missing": (
        _config("jsc-tiny", "jsc", 'path = "jets.z"\n'),
        r"data\.path: got '.*jets\.z', which does not exist",
    ),
    "unknown train key": (
        _config("mlp-digits", None, "[train]\nepoch = 3\n"),
        r"train\.epoch: got an unknown key, allowed: the keys of train: \[",
    ),
}
SUBPROCESS = ["unknown model", "missing model file", "unknown dataset", "dataset wrong type"]


def _write(folder: Path, case: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in USER_FILES.items():
        (folder / name).write_text(text)
    path = folder / "config.toml"
    path.write_text(CASES[case][0])
    return path


@pytest.fixture(scope="module")
def subprocess_results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[int, str]]:
    env = {k: v for k, v in os.environ.items() if k != "QUANTSEARCH_JSC_PATH"}
    procs = {}
    for case in SUBPROCESS:
        config = _write(tmp_path_factory.mktemp("cli"), case)
        procs[case] = subprocess.Popen(
            [sys.executable, "-m", "quantsearch", "train", "--config", str(config)],
            cwd=config.parent,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    out = {}
    for case, proc in procs.items():
        _, stderr = proc.communicate(timeout=120)
        out[case] = (proc.returncode, stderr)
    return out


def _check(returncode: int, stderr: str, pattern: str) -> None:
    assert "Traceback" not in stderr
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ")
    assert re.match(pattern, lines[0].removeprefix("error: ")), lines[0]
    assert returncode == 2


@pytest.mark.parametrize("case", SUBPROCESS)
def test_subprocess(case: str, subprocess_results: dict[str, tuple[int, str]]) -> None:
    returncode, stderr = subprocess_results[case]
    _check(returncode, stderr, CASES[case][1])


@pytest.mark.parametrize("case", sorted(set(CASES) - set(SUBPROCESS)))
def test_in_process(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("QUANTSEARCH_JSC_PATH", raising=False)
    config = _write(tmp_path, case)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:
        main(["train", "--config", str(config)])
    _check(int(exc.value.code or 0), capsys.readouterr().err, CASES[case][1])


def test_missing_config_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["train", "--config", str(tmp_path / "none.toml")])
    _check(
        int(exc.value.code or 0),
        capsys.readouterr().err,
        r"--config: got '.*none\.toml', which does not exist, allowed: a TOML file",
    )
