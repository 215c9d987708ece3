"""The typed getters every section parser uses: each error names the dotted key and the value."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import quantsearch.paths as paths
import quantsearch.validate as validate
from quantsearch.errors import ConfigError
from quantsearch.validate import (
    check_keys,
    get_bool,
    get_float,
    get_int,
    get_str,
    get_table,
    toml_key,
)


def test_a_leaf_module() -> None:
    """validate, paths and errors import nothing of the project but errors (and validate the
    leaf paths): no cycle can run through them."""
    for module, allowed in (
        (validate, {"quantsearch.errors", "quantsearch.paths"}),
        (paths, {"quantsearch.errors"}),
        (pytest.importorskip("quantsearch.errors"), set()),
    ):
        tree = ast.parse(Path(str(module.__file__)).read_text())
        imported = {
            n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module
        } | {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        assert {m for m in imported if m.startswith("quantsearch")} <= allowed, module.__name__


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: check_keys({"epoch": 1}, {"epochs"}, "train"), r"^train\.epoch: got an unknown key, allowed: the keys of train: \['epochs'\]$"),
        (lambda: check_keys({"sed": 1}, {"seed"}, ""), r"^sed: got an unknown key, allowed: the top-level keys: \['seed'\]$"),
        (lambda: get_table({"model": 3}, "model", ""), r"^model: got 3, allowed: a table$"),
        (lambda: get_str({"name": 3}, "name", "model"), r"^model\.name: got 3, allowed: a string$"),
        (lambda: get_str({}, "name", "model", required=True), r"^model\.name: got no value, allowed: a string \(required\)$"),
        (lambda: get_int({"n": True}, "n", "search"), r"^search\.n: got True, allowed: an integer$"),
        (lambda: get_int({"n": 0}, "n", "search", minimum=1), r"^search\.n: got 0, allowed: an integer >= 1$"),
        (lambda: get_float({"lr": "x"}, "lr", "train"), r"^train\.lr: got 'x', allowed: a finite number$"),
        (lambda: get_float({"lr": 0}, "lr", "train", positive=True), r"^train\.lr: got 0\.0, allowed: a finite number > 0$"),
        (lambda: get_float({"wd": -1}, "wd", "train", minimum=0.0), r"^train\.wd: got -1\.0, allowed: a finite number >= 0\.0$"),
        (lambda: get_float({"ms": 10_001}, "ms", "search", maximum=10_000), r"^search\.ms: got 10001\.0, allowed: a finite number <= 10000$"),
        (lambda: get_int({"n": 10**400}, "n", "search", maximum=9), r"^search\.n: got an integer of 401 digits, allowed: an integer <= 9$"),
        (lambda: get_float({"lr": 10**400}, "lr", "train"), r"^train\.lr: got an integer of 401 digits, allowed: a finite number$"),
        (lambda: get_float({"w": 0.5}, "w", "m", minimum=1, maximum=2), r"^m\.w: got 0\.5, allowed: a finite number in \[1, 2\]$"),
        (lambda: get_bool({"cache": 1}, "cache", "search", True), r"^search\.cache: got 1, allowed: true or false$"),
    ],
)  # fmt: skip
def test_errors_name_the_key_the_rule_and_the_value(call: object, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        call()  # type: ignore[operator]


def test_values_and_defaults() -> None:
    t = {"a": 2, "b": 1.5, "c": False, "d": "x", "e": {"k": 1}}
    assert (get_int(t, "a", ""), get_int(t, "z", "", 7)) == (2, 7)
    assert (get_float(t, "a", ""), get_float(t, "b", "")) == (2.0, 1.5)
    assert isinstance(get_float(t, "a", ""), float)
    assert (get_bool(t, "c", "", True), get_bool(t, "z", "", True)) == (False, True)
    assert (get_str(t, "d", ""), get_str(t, "z", "", "dflt")) == ("x", "dflt")
    assert get_table(t, "e", "") == {"k": 1} and get_table(t, "z", "") == {}
    assert toml_key("q.by_name", "a.b") == 'q.by_name."a.b"' and toml_key("q", "a_b") == "q.a_b"


@pytest.mark.parametrize("text", ["a\0b", "line\nbreak", "tab\there", "bell\x07", "del\x7f"])
def test_strings_and_paths_refuse_control_characters(text: str, tmp_path: Path) -> None:
    """A NUL made every stat() raise ValueError (a traceback); a newline in a run directory or
    checkpoint path is a slip. The error names the key and shows the value escaped."""
    with pytest.raises(ConfigError, match=r"^run_dir: got .*, allowed: a string without control"):
        get_str({"run_dir": text}, "run_dir", "")
    with pytest.raises(ConfigError, match=r"^--run-dir: got .*, allowed: a path without control"):
        paths.writable_dir(tmp_path / text, "--run-dir")
    with pytest.raises(ConfigError, match=r"^--out: got .*, allowed: a path without control"):
        paths.output_file(str(tmp_path / text / "m.pt"), "--out")


def test_output_file(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    assert paths.output_file(str(tmp_path / "new" / "m.pt"), "--out") == tmp_path / "new" / "m.pt"
    for value, match in [
        ("", r"^--out: got '', allowed: a file name$"),
        (str(tmp_path) + "/", r"allowed: a file name$"),
        (str(tmp_path), r"\(a folder\), allowed: a file name$"),
        (str(tmp_path / "f" / "m.pt"), r"is a file\), allowed: a folder"),
    ]:
        with pytest.raises(ConfigError, match=match):
            paths.output_file(value, "--out")


def test_unique_and_device() -> None:
    validate.check_unique([1, 2, 3], "k")
    with pytest.raises(ConfigError, match=r"^k: got 2 twice, allowed: each once$"):
        validate.check_unique([1, 2, 2], "k")
    for ok in ("auto", "cpu", "cuda", "cuda:0", "cuda:12"):
        assert validate.check_device(ok, "train.device") == ok
    for bad in ("tpu", "", "cuda:", "cuda:x", "cuda:-1", "CPU", "cuda:0 "):
        allowed = r", allowed: 'auto', 'cpu', 'cuda' or 'cuda:N'$"
        with pytest.raises(
            ConfigError, match=rf"^train\.device: got {re.escape(repr(bad))}{allowed}"
        ):
            validate.check_device(bad, "train.device")
