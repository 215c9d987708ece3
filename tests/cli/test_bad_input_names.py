"""Bad inputs the four earlier corpora left open, found by a driver that gave every command's
arguments and every config key wrong types, NaN, huge numbers, control characters, unicode,
odd paths and over-long names; each is now one ``error:`` line naming the key or argument,
exit status 2, no traceback, and an existing study beside it unchanged.

What escaped before: a path with a name past 255 bytes (any command's path argument, run_dir,
model.checkpoint, a ``file.py:function`` spec, data.path, QUANTSEARCH_JSC_PATH: an OSError
traceback from the first ``stat``); a study name past what a folder name takes; a device
``cuda:01`` (torch's parser refused it: a traceback) or ``cuda:256`` (torch keeps 8 bits of
the index: it ran on cuda:0); ``export`` OUT and ``init -o`` with a newline (written;
``init -o ''`` said '' exists), ``export --trial`` without ``--from-run`` (the config's
[quantize] exported instead); ``--n-trials 10**400``; a
value twice in a space's field list (``width = [8, 8]``) or a format twice in a format list;
MASE's HDF5 table with a text column (a traceback) or a NaN label (argmax's class); a
comparison whose comparison.json holds a setting of the wrong type or whose configs.jsonl is
damaged (report drew it, or a traceback); a search run whose search_config.json or
trials.jsonl holds a field of the wrong type (a traceback in the report's tables).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.cli.bad_input import (
    ACC,
    GOOD,
    W,
    case_folder,
    digest,
    exit_status,
    finished_study,
    unchanged_runs,
)
from tests.cli.bad_input import add as _add
from tests.cli.bad_input import check_one_line as _check
from tests.cli.bad_input import run_cli as _run
from tests.cli.bad_input import sub as _sub

LONG = "a" * 300
# the file system's referee: os.stat of such a name raises ENAMETOOLONG (checked below)
TOO_LONG = (
    r"got a name of 30\d bytes \('aaaaaaaaaaaaaaaa'\.\.\.\), allowed: names of at most 255 "
    r"bytes and paths of at most 4095 \(the file system's limits\)$"
)

# name -> (edit of the good config, regex the error line must match after "error: ")
CONFIG_CASES: dict[str, tuple[Callable[[str], str], str]] = {
    "run_dir a long name": (_add("", f'run_dir = "{LONG}"'), r"^run_dir: " + TOO_LONG),
    "model.checkpoint a long name": (
        lambda t: re.sub(r'checkpoint = ".*"', f'checkpoint = "{LONG}"', t),
        r"^model\.checkpoint: " + TOO_LONG,
    ),
    "model.name a long file": (
        _sub('name = "mlp-digits"', f'name = "{LONG}.py:build"'),
        r"^model\.name: " + TOO_LONG,
    ),
    "metrics.evaluate a long file": (
        lambda t: (
            _sub(ACC, "score = { direction = 'maximize' }")(t)
            + f'[metrics]\nevaluate = "{LONG}.py:f"\n'
        ),
        r"^metrics\.evaluate: " + TOO_LONG,
    ),
    "search.study a long name": (
        _add("search", f'study = "{"s" * 201}"'),
        r"^search\.study: got a name of 201 characters \('ssssssssssssssss'\.\.\.\), allowed: "
        r"at most 200 \(it names a folder\)$",
    ),
    # a value listed twice in a table of field lists, or a format twice: a slip, as a pair twice
    "a width twice in a field list": (
        _sub(W, "weight = { width = [8, 4, 8], frac_width = [2] }"),
        r"^search\.space\.choices\.linear\.weight\.width: got 8 twice, allowed: each once$",
    ),
    "a rounding twice": (
        _sub(W, 'weight = { width = [8], frac_width = [2], rounding = ["floor", "floor"] }'),
        r"^search\.space\.choices\.linear\.weight\.rounding: got 'floor' twice",
    ),
    "a format twice": (
        _add("search.space", 'format = ["fixed", "minifloat", "fixed"]'),
        r"^search\.space\.format: got 'fixed' twice, allowed: each once$",
    ),
    "search.device cuda:01": (
        _add("search", 'device = "cuda:01"'),
        r"^search\.device: got 'cuda:01', allowed: 'auto', 'cpu', 'cuda' or 'cuda:N'$",
    ),
    # torch.device('cuda:256') is cuda:0: the index is compared before torch reads it
    "search.device cuda:256": (
        _add("search", 'device = "cuda:256"'),
        r"^search\.device: got 'cuda:256', allowed: 'auto' or 'cpu' (\(torch finds no CUDA "
        r"device here\)|or cuda:0 to cuda:\d+)$",
    ),
}

# name -> (arguments, regex); run in the folder holding runs/good, good.toml and q.toml
ARG_CASES: dict[str, tuple[list[str], str]] = {
    "search --config": (["search", "-c", LONG, "-q"], r"^--config: " + TOO_LONG),
    "search --load": (["search", "-c", "good.toml", "-q", "--load", LONG], r"^--load: " + TOO_LONG),
    "search --run-dir": (
        ["search", "-c", "good.toml", "-q", "--run-dir", f"runs/{LONG}"],
        r"^--run-dir: " + TOO_LONG,
    ),
    "train --out=": (["train", "-c", "good.toml", f"--out={LONG}"], r"^--out: " + TOO_LONG),
    "quantize --out": (["quantize", "-c", "q.toml", "--out", LONG], r"^--out: " + TOO_LONG),
    "report": (["report", LONG], r"^RUN_DIR: " + TOO_LONG),
    "export OUT": (
        ["export", "--to", "qonnx", "--from-run", "runs/good", LONG],
        r"^OUT: " + TOO_LONG,
    ),
    "init --output": (
        ["init", "--model", "m.py:build", "--data", "d.py:load", "-o", LONG],
        r"^--output: " + TOO_LONG,
    ),
    "search --study": (
        ["search", "-c", "good.toml", "-q", "--study", "s" * 201],
        r"^--study: got a name of 201 characters",
    ),
    "compare --name": (
        ["compare", "-c", "good.toml", "-q", "--name", "s" * 201],
        r"^--name: got a name of 201 characters",
    ),
    "export OUT with a newline": (
        ["export", "--to", "qonnx", "--from-run", "runs/good", "m\n.onnx"],
        r"^OUT: got 'm\\n\.onnx', allowed: a path without control characters",
    ),
    "export --trial without --from-run": (
        ["export", "--to", "qonnx", "-c", "q.toml", "--trial", "0", "m.onnx"],
        r"^--trial: got it without --from-run, allowed: with --from-run DIR$",
    ),
    "export --best without --from-run": (
        ["export", "--to", "qonnx", "-c", "q.toml", "--best", "m.onnx"],
        r"^--best: got it without --from-run, allowed: with --from-run DIR$",
    ),
    "init --output with a newline": (
        ["init", "--model", "m.py:build", "--data", "d.py:load", "-o", "s\n.toml"],
        r"^--output: got 's\\n\.toml', allowed: a path without control characters",
    ),
    "init --output empty": (
        ["init", "--model", "m.py:build", "--data", "d.py:load", "-o", ""],
        r"^--output: got '', allowed: a file name$",
    ),
    "search --n-trials 10**400": (
        ["search", "-c", "good.toml", "-q", "--n-trials", "1" + "0" * 400],
        r"^--n-trials: got 10+\.\.\. \(401 characters\), allowed: an integer in the range "
        r"1<=x<=2147483647",
    ),
    "worker --n-evaluations 2**31": (
        ["worker", "-c", "good.toml", "--n-evaluations", str(2**31)],
        r"^--n-evaluations: got 2147483648, allowed: an integer in the range 1<=x<=2147483647",
    ),
}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory, mlp_checkpoint: Path) -> Path:
    d = tmp_path_factory.mktemp("names")
    good = GOOD.format(ckpt=mlp_checkpoint.as_posix())
    (d / "good.toml").write_text(good)
    (d / "q.toml").write_text(good + "[quantize.default]\nweight = { width = 8, frac_width = 4 }\n")
    finished_study(d)
    return d


@pytest.fixture
def in_workdir(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    before = sorted(p.name for p in workdir.iterdir())
    yield from unchanged_runs(workdir, monkeypatch)
    after = sorted(p.name for p in workdir.iterdir() if p.name != "cases")
    assert after == [n for n in before if n != "cases"], "a file was written beside the study"


def test_the_file_system_refuses_such_names(tmp_path: Path) -> None:
    """The referee of the limit: the kernel's ENAMETOOLONG, not a number of our own."""
    with pytest.raises(OSError, match="File name too long"):
        os.stat(tmp_path / LONG)
    (tmp_path / ("a" * 255)).touch()  # 255 bytes: taken


@pytest.mark.parametrize("name", sorted(CONFIG_CASES))
def test_bad_config(name: str, in_workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    edit, pattern = CONFIG_CASES[name]
    cfg = case_folder(in_workdir, name) / "good.toml"  # same stem: it names the existing study
    cfg.write_text(edit((in_workdir / "good.toml").read_text()))
    code, err = _run(["search", "-c", str(cfg), "-q"], capsys)
    _check(code, err, pattern)


@pytest.mark.parametrize("name", sorted(ARG_CASES))
def test_bad_argument(name: str, in_workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args, pattern = ARG_CASES[name]
    code, err = _run(args, capsys)
    _check(code, err, pattern)


def test_a_long_jsc_path_from_the_environment(
    in_workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    case = case_folder(in_workdir, "jsc env")
    (case / "j.toml").write_text('[model]\nname = "jsc-tiny"\n[data]\nname = "jsc"\n')
    monkeypatch.setenv("QUANTSEARCH_JSC_PATH", LONG)
    code, err = _run(["summary", "-c", str(case / "j.toml")], capsys)
    _check(code, err, r"^QUANTSEARCH_JSC_PATH: " + TOO_LONG)


def test_the_console_script_checks_its_own_arguments(in_workdir: Path) -> None:
    """``quantsearch`` (``main()`` reads sys.argv) refuses as ``main([...])`` does."""
    cmd = [sys.executable, "-c", "from quantsearch.cli import main; main()", "report", LONG]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    _check(proc.returncode, proc.stderr, r"^RUN_DIR: " + TOO_LONG)


def _jsc_table(n: int, text_column: bool = False) -> np.ndarray:
    """A table in MASE's layout (16 features, 5 one-hot label columns), seeded."""
    from quantsearch.data.jsc_read import FEATURES, LABELS

    dtype = [(c, "S5" if text_column and c == FEATURES[0] else "f4") for c in FEATURES]
    table = np.zeros(n, dtype=dtype + [(c, "f4") for c in LABELS])
    rng = np.random.default_rng(0)
    for c in FEATURES:
        table[c] = b"abc" if text_column and c == FEATURES[0] else rng.normal(size=n)
    for i, c in enumerate(LABELS):
        table[c] = np.arange(n) % len(LABELS) == i
    return table


def _nan_at(column: int, labels: bool = False) -> Callable[[np.ndarray], None]:
    def damage(table: np.ndarray) -> None:
        table[table.dtype.names[16 + column if labels else column]][7] = np.nan

    return damage


# name -> (damage to the table, regex): MASE's HDF5 file (NaN features, which the referee of
# tests/data/test_jsc_referee.py keeps, are refused too: test_bad_input_corpus4.py)
H5_CASES: dict[str, tuple[Callable[[np.ndarray], None] | None, str]] = {
    "NaN label": (
        _nan_at(2, labels=True),
        r"^data\.path: '.*' has NaN or infinite labels in \['j_w'\]$",
    ),
    "a text column": (
        None,
        r"^data\.path: '.*'\['t_allpar_new'\] has column\(s\) of \|S5 values, not numbers: "
        r"\['j_zlogz'\]$",
    ),
}


@pytest.mark.parametrize("name", sorted(H5_CASES))
def test_a_damaged_jsc_table(
    name: str, in_workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A NaN among the one-hot labels became argmax's class; a text column was a ValueError
    traceback."""
    h5py = pytest.importorskip("h5py")
    damage, pattern = H5_CASES[name]
    case = case_folder(in_workdir, "h5 " + name)
    table = _jsc_table(200, text_column=damage is None)
    if damage is not None:
        damage(table)
    with h5py.File(case / "jets.h5", "w") as f:
        f["t_allpar_new"] = table
    (case / "j.toml").write_text(
        '[model]\nname = "jsc-tiny"\n[data]\nname = "jsc"\npath = "jets.h5"\n'
    )
    monkeypatch.setenv("QUANTSEARCH_CACHE_DIR", "")  # read the file, not a cache of it
    code, err = _run(["summary", "-c", str(case / "j.toml")], capsys)
    _check(code, err, pattern)


def _set(name: str, value: object) -> Callable[[Path], None]:
    def damage(d: Path) -> None:
        raw = json.loads((d / "comparison.json").read_text())
        raw[name] = value
        (d / "comparison.json").write_text(json.dumps(raw))

    return damage


# name -> damage to a copy of a finished comparison; run as `report COPY`
COMPARE_CASES: dict[str, tuple[Callable[[Path], None], str]] = {
    "configs.jsonl garbage": (
        lambda d: (d / "configs.jsonl").write_text('{"config_hash": \n'),
        r"^RUN_DIR: got '.*configs\.jsonl', which is damaged \(line 1: JSONDecodeError: ",
    ),
    "budgets a string": (
        _set("budgets", "zz"),
        r"comparison\.json', which is damaged \(TypeError: budgets = 'zz'\), allowed: the ",
    ),
    "tolerance a string": (
        _set("tolerance", "zz"),
        r"is damaged \(TypeError: tolerance = 'zz'\), allowed: the ",
    ),
    "strategies a string": (
        _set("strategies", "zz"),
        r"is damaged \(TypeError: strategies = 'zz'\), allowed: the ",
    ),
}


@pytest.fixture(scope="module")
def comparison(workdir: Path) -> Path:
    """A finished comparison (one random run) beside the study."""
    text = (workdir / "good.toml").read_text() + "[compare]\nstrategies = ['random']\nseeds = 1\n"
    (workdir / "cmp.toml").write_text(text)
    code = exit_status(
        ["compare", "-c", str(workdir / "cmp.toml"), "-q", "--run-dir", str(workdir / "compared")]
    )
    assert code == 0
    return workdir / "compared" / "cmp-compare"


@pytest.mark.parametrize("name", sorted(COMPARE_CASES))
def test_a_damaged_comparison(
    name: str, comparison: Path, in_workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A setting of the wrong type (exit 0 with a report of its characters, or a TypeError
    traceback) and a damaged configs.jsonl (a JSONDecodeError traceback)."""
    damage, pattern = COMPARE_CASES[name]
    copy = case_folder(in_workdir, "compare " + name) / "run"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(comparison, copy)
    damage(copy)
    before = digest(copy)
    code, err = _run(["report", str(copy)], capsys)
    _check(code, err, pattern)
    assert digest(copy) == before  # no report drawn


def _edit(name: str, key: str, value: object) -> Callable[[Path], None]:
    """Set ``key`` of ``name`` (a JSON file, or trials.jsonl's first line) to ``value``."""

    def damage(d: Path) -> None:
        text = (d / name).read_text()
        lines = text.splitlines() if name.endswith(".jsonl") else [text]
        first = json.loads(lines[0])
        first[key] = value
        (d / name).write_text("\n".join([json.dumps(first), *lines[1:]]) + "\n")

    return damage


# name -> damage to a copy of runs/good; run as `report COPY` (each was a traceback)
SEARCH_CASES: dict[str, tuple[Callable[[Path], None], str]] = {
    "search_config.json space a string": (
        _edit("search_config.json", "space", "zz"),
        r"search_config\.json' with space = 'zz', allowed: what search writes there \(a JSON obj",
    ),
    "search_config.json constraints a number": (
        _edit("search_config.json", "constraints", 5),
        r"with constraints = 5, allowed: what search writes there \(a JSON list\)$",
    ),
    "search_config.json user_metrics a string": (
        _edit("search_config.json", "user_metrics", "zz"),
        r"with user_metrics = 'zz'",
    ),
    "trials.jsonl values empty": (
        _edit("trials.jsonl", "values", []),
        r"trials\.jsonl', whose line 1 is not a trial record \('values' must hold one number per",
    ),
    "trials.jsonl config_hash a list": (
        _edit("trials.jsonl", "config_hash", []),
        r"line 1 is not a trial record \('config_hash' must be a string or null \(got \[\]\)\), "
        r"allowed: the ",
    ),
    "trials.jsonl config a string": (
        _edit("trials.jsonl", "config", "zz"),
        r"line 1 is not a trial record \('config' must be an object or null \(got 'zz'\)\), "
        r"allowed: the ",
    ),
    "trials.jsonl samples a string": (
        _edit("trials.jsonl", "samples", "zz"),
        r"'samples' must be an integer or null \(got 'zz'\)\), allowed: the ",
    ),
}


@pytest.mark.parametrize("name", sorted(SEARCH_CASES))
def test_a_damaged_search_run(
    name: str, in_workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    damage, pattern = SEARCH_CASES[name]
    copy = case_folder(in_workdir, "search " + name) / "run"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(in_workdir / "runs" / "good", copy)
    damage(copy)
    before = digest(copy)
    code, err = _run(["report", str(copy)], capsys)
    _check(code, err, r"^RUN_DIR: got '.*" + pattern)
    assert digest(copy) == before  # no report drawn
