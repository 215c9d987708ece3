"""The sixth sweep of bad inputs: small things a user met. What escaped before:

- ``quantize`` and ``export`` of a config without a ``[quantize]`` table keyed their error
  by the config's file name, not by ``quantize``.

Each case: exit status 2, one ``error:`` line naming the key or option, no traceback, and
every file of the folder it runs in byte for byte as before (no file added).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.bad_input import GOOD, check_one_line, digest, run_cli

QUANTIZE_TABLE = r"^quantize: got no \[quantize\] table in .*good\.toml, allowed: a config with one"


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The user's config (good.toml: no [quantize] table); the test runs in it."""
    good = GOOD.format(ckpt="mlp.pt")
    (tmp_path / "good.toml").write_text(good)
    monkeypatch.chdir(tmp_path)
    return tmp_path


CASES: dict[str, tuple[list[str], str]] = {
    "quantize without a [quantize] table": (
        ["quantize", "-c", "good.toml", "--out", "q"],
        QUANTIZE_TABLE + r", e\.g\. \[quantize\.default\] weight = .*, or --from-run DIR$",
    ),
    "export without a [quantize] table": (
        ["export", "--to", "qonnx", "m.onnx", "-c", "good.toml"],
        QUANTIZE_TABLE + r", or --from-run RUNDIR$",
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
