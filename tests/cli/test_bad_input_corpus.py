"""A corpus of bad inputs: each gives exactly one ``error:`` line naming the key or argument,
exit status 2, no traceback, and leaves an existing study beside it unchanged.

Categories: config files that are not text or not TOML; wrong types where a table, list,
number or string is expected; numbers outside what a library accepts; NaN and infinite
weights and bounds; empty names; study names that are paths; run directories that are files;
bad command-line values; damaged run directories given to ``quantsearch report``.

Every case runs the real entry point (``quantsearch.cli.main``) in-process, in a folder that
holds a finished study (``runs/good``) that the bad command would write to if it went ahead;
the study's files are hashed before and after.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.cli.bad_input import ACC, GOOD, SP, W, finished_study
from tests.cli.bad_input import add as _add
from tests.cli.bad_input import check_one_line as _check
from tests.cli.bad_input import digest as _digest
from tests.cli.bad_input import run_cli as _run
from tests.cli.bad_input import sub as _sub

S, OBJ = "search", "search.objectives"

# name -> (edit of the good config, regex the error line must match after "error: ")
CONFIG_CASES: dict[str, tuple[Callable[[str], str], str]] = {
    # top level
    "seed negative": (_sub("seed = 0", "seed = -1"), r"seed"),
    "seed too large": (_sub("seed = 0", "seed = 9223372036854775807"), r"seed"),
    "seed string": (_sub("seed = 0", 'seed = "zero"'), r"seed"),
    "seed float": (_sub("seed = 0", "seed = 1.5"), r"seed"),
    "seed bool": (_sub("seed = 0", "seed = true"), r"seed"),
    "unknown top key": (_add("", "sead = 1"), r"sead"),
    "run_dir number": (_add("", "run_dir = 5"), r"run_dir"),
    "run_dir empty": (_add("", 'run_dir = ""'), r"run_dir"),
    # [model]
    "model empty name": (_sub('name = "mlp-digits"', 'name = ""'), r"model\.name"),
    "model name number": (_sub('name = "mlp-digits"', "name = 5"), r"model\.name"),
    "model name blank": (_sub('name = "mlp-digits"', 'name = "   "'), r"model\.name"),
    "model unknown key": (_add("model", 'nme = "x"'), r"model\.nme"),
    "checkpoint number": (_sub('checkpoint = "', 'checkpoint = 7\n_x = "'), r"model\."),
    "checkpoint missing": (
        lambda t: re.sub(r'checkpoint = ".*"', 'checkpoint = "missing.pt"', t),
        r"checkpoint",
    ),
    "checkpoint empty": (
        lambda t: re.sub(r'checkpoint = ".*"', 'checkpoint = ""', t),
        r"checkpoint",
    ),
    "model not a table": (
        lambda t: t.replace("[model]\n", "model = 123\n[modelx]\n", 1),
        r"model",
    ),
    # [data]
    "data not a table": (_add("", 'data = "digits"'), r"data"),
    "data empty name": (_add("data", 'name = ""'), r"data\.name"),
    "data unknown key": (_add("data", "data_loader = 1"), r"data\.data_loader"),
    "val_fraction > 1": (_add("data", "val_fraction = 1.5"), r"data\.val_fraction"),
    "val_fraction < 0": (_add("data", "val_fraction = -0.1"), r"data\.val_fraction"),
    "val_fraction nan": (_add("data", "val_fraction = nan"), r"data\.val_fraction"),
    "val_fraction string": (_add("data", 'val_fraction = "half"'), r"data\.val_fraction"),
    "eval_samples zero": (_add("data", "eval_samples = 0"), r"data\.eval_samples"),
    "eval_samples negative": (_add("data", "eval_samples = -5"), r"data\.eval_samples"),
    "eval_samples float": (_add("data", "eval_samples = 2.5"), r"data\.eval_samples"),
    # [search]
    "search not a table": (
        lambda t: t.replace("[search]\n", "search = 3\n[searchx]\n", 1),
        r"search",
    ),
    "n_trials zero": (_sub("n_trials = 2", "n_trials = 0"), r"search\.n_trials"),
    "n_trials negative": (_sub("n_trials = 2", "n_trials = -1"), r"search\.n_trials"),
    "n_trials float": (_sub("n_trials = 2", "n_trials = 1.5"), r"search\.n_trials"),
    "n_trials string": (_sub("n_trials = 2", 'n_trials = "10"'), r"search\.n_trials"),
    "n_trials bool": (_sub("n_trials = 2", "n_trials = true"), r"search\.n_trials"),
    "n_trials huge": (_sub("n_trials = 2", "n_trials = 9223372036854775807"), r"search\.n_trials"),
    "n_trials inf": (_sub("n_trials = 2", "n_trials = inf"), r"search\.n_trials"),
    "timeout negative": (_add(S, "timeout = -1"), r"search\.timeout"),
    "timeout nan": (_add(S, "timeout = nan"), r"search\.timeout"),
    "timeout inf": (_add(S, "timeout = inf"), r"search\.timeout"),
    "timeout string": (_add(S, 'timeout = "1h"'), r"search\.timeout"),
    "n_jobs zero": (_add(S, "n_jobs = 0"), r"search\.n_jobs"),
    "n_jobs float": (_add(S, "n_jobs = 2.0"), r"search\.n_jobs"),
    "combine unknown": (_add(S, 'combine = "sum"'), r"search\.combine"),
    "combine number": (_add(S, "combine = 1"), r"search\.combine"),
    "search unknown key": (_add(S, "n_job = 2"), r"search\.n_job"),
    "cache string": (_add(S, 'cache = "yes"'), r"search\.cache"),
    "torch_threads zero": (_add(S, "torch_threads = 0"), r"search\.torch_threads"),
    "stop_when_exhausted int": (_add(S, "stop_when_exhausted = 1"), r"search\.stop_when_exhausted"),
    "study empty": (_add(S, 'study = ""'), r"search\.study"),
    "study parent": (_add(S, 'study = "../x"'), r"search\.study"),
    "study absolute": (_add(S, 'study = "/tmp/qs-abs-study"'), r"search\.study"),
    "study nested": (_add(S, 'study = "a/b"'), r"search\.study"),
    "study dot": (_add(S, 'study = ".."'), r"search\.study"),
    "study number": (_add(S, "study = 5"), r"search\.study"),
    # [search.strategy]
    "strategy unknown": (_sub('name = "random"', 'name = "tpee"'), r"search\.strategy"),
    "strategy empty": (_sub('name = "random"', 'name = ""'), r"search\.strategy"),
    "strategy number": (_sub('name = "random"', "name = 3"), r"search\.strategy"),
    "strategy not a table": (
        lambda t: t.replace('[search.strategy]\nname = "random"\n', "", 1).replace(
            "n_trials = 2", "n_trials = 2\nstrategy = 5"
        ),
        r"search\.strategy",
    ),
    "strategy options number": (
        _add("search.strategy", "options = 3"),
        r"search\.strategy\.options",
    ),
    "strategy option unknown": (
        _add("search.strategy", "options = { bogus = 1 }"),
        r"search\.strategy\.options",
    ),
    "strategy option bad value": (
        # (a negative count is accepted by Optuna as 0; a string fails only when TPE samples)
        lambda t: t.replace(
            'name = "random"', 'name = "tpe"\noptions = { n_startup_trials = "ten" }'
        ),
        r"search\.strategy\.options",
    ),
    # [search.space]
    "space by unknown": (_add("search.space", 'by = "layer"'), r"search\.space\.by"),
    "space not a table": (
        lambda t: t.replace(f"[{SP}]\n{W}\n", "", 1).replace(
            "n_trials = 2", "n_trials = 2\nspace = []"
        ),
        r"search\.space",
    ),
    "choices not a table": (
        lambda t: t.replace(f"[{SP}]\n{W}\n", "[search.space.choices]\nlinear = 5\n", 1),
        r"search\.space\.choices\.linear",
    ),
    "format number": (_sub(W, "weight = 123"), r"search\.space\.choices\.linear\.weight"),
    "format empty list": (_sub(W, "weight = []"), r"search\.space\.choices\.linear\.weight"),
    "frac > width": (_sub(W, "weight = [[8, 9]]"), r"search\.space\.choices\.linear\.weight"),
    "width zero": (_sub(W, "weight = [[0, 0]]"), r"search\.space\.choices\.linear\.weight"),
    "frac negative": (_sub(W, "weight = [[8, -1]]"), r"search\.space\.choices\.linear\.weight"),
    "width float": (_sub(W, "weight = [[8.5, 4]]"), r"search\.space\.choices\.linear\.weight"),
    "width string": (_sub(W, 'weight = [["8", "4"]]'), r"search\.space\.choices\.linear\.weight"),
    "pair too short": (_sub(W, "weight = [[8]]"), r"search\.space\.choices\.linear\.weight"),
    "pair too long": (
        _sub(W, "weight = [[8, 4, 2, 1]]"),
        r"search\.space\.choices\.linear\.weight",
    ),
    "width huge": (_sub(W, "weight = [[1000, 4]]"), r"search\.space\.choices\.linear\.weight"),
    "format unknown string": (
        _sub(W, 'weight = ["nonsense(1)"]'),
        r"search\.space\.choices\.linear\.weight",
    ),
    "format nan": (_sub(W, "weight = [[nan, 4]]"), r"search\.space\.choices\.linear\.weight"),
    "unknown role": (_add(SP, "bogus = [[8, 4]]"), r"search\.space\.choices\.linear\.bogus"),
    "unknown op kind": (
        _sub(f"[{SP}]", "[search.space.choices.conv9]"),
        r"search\.space\.choices\.conv9",
    ),
    "widths table bad": (
        _sub(W, "weight = { width = [], frac_width = [1] }"),
        r"search\.space\.choices\.linear\.weight",
    ),
    # frac_width = "auto" in a space: misspelt, or for a field / format that has no "auto"
    "auto misspelt in a pair": (
        _sub(W, 'weight = [[8, "autoo"]]'),
        r"search\.space\.choices\.linear\.weight\[0\]: got \[8, 'autoo'\], allowed: a "
        r"\[width, frac_width\] pair of integers \(frac_width may be 'auto'\)",
    ),
    "auto misspelt in a field list": (
        _sub(W, 'weight = { width = [4, 8], frac_width = "Auto" }'),
        r"search\.space\.choices\.linear\.weight\.frac_width: got 'Auto', allowed: an integer "
        r"or 'auto'$",
    ),
    "auto for the width": (
        _sub(W, 'weight = { width = "auto", frac_width = 2 }'),
        r"search\.space\.choices\.linear\.weight\.width: got 'auto', allowed: an integer "
        r"\('auto' is for fixed\.frac_width, not for format 'fixed'\)$",
    ),
    "auto for a minifloat": (
        _sub(W, 'weight = [{ format = "minifloat", exponent_width = "auto", mantissa_width = 3 }]'),
        r"search\.space\.choices\.linear\.weight\[0\]\.exponent_width: got 'auto', allowed: "
        r"an integer \('auto' is for fixed\.frac_width, not for format 'minifloat'\)$",
    ),
    # [search.objectives]
    "objectives number": (
        lambda t: t.replace(f"[{OBJ}]\n{ACC}\n", "", 1).replace(
            "n_trials = 2", "n_trials = 2\nobjectives = 5"
        ),
        r"search\.objectives",
    ),
    "objectives empty": (_sub(ACC, ""), r"search\.objectives"),
    # (``accuracy = 5`` is valid: a number is short for its weight)
    "objective string": (_sub(ACC, 'accuracy = "max"'), r"search\.objectives\.accuracy"),
    "objective list": (_sub(ACC, "accuracy = [1]"), r"search\.objectives\.accuracy"),
    "direction unknown": (
        _sub('direction = "maximize"', 'direction = "up"'),
        r"search\.objectives\.accuracy",
    ),
    "weight inf": (
        _sub(ACC, 'accuracy = { direction = "maximize", weight = inf }'),
        r"search\.objectives\.accuracy",
    ),
    "weight -inf": (
        _sub(ACC, 'accuracy = { direction = "maximize", weight = -inf }'),
        r"search\.objectives\.accuracy",
    ),
    "weight nan": (
        _sub(ACC, 'accuracy = { direction = "maximize", weight = nan }'),
        r"search\.objectives\.accuracy",
    ),
    "weight string": (
        _sub(ACC, 'accuracy = { direction = "maximize", weight = "1" }'),
        r"search\.objectives\.accuracy",
    ),
    "unknown metric": (_sub("accuracy = {", "acc = {"), r"search\.objectives"),
    "relative string": (
        _sub(ACC, 'accuracy = { direction = "maximize", relative_to_baseline = "yes" }'),
        r"search\.objectives\.accuracy",
    ),
    "objective unknown key": (
        _sub(ACC, 'accuracy = { direction = "maximize", bogus = 1 }'),
        r"search\.objectives\.accuracy",
    ),
    # [search.constraints]
    "constraints number": (_add(S, "constraints = 5"), r"search\.constraints"),
    "bound nan": (
        _add("search.constraints", "accuracy = { min = nan }"),
        r"search\.constraints\.accuracy",
    ),
    "bound inf": (
        _add("search.constraints", "accuracy = { min = inf }"),
        r"search\.constraints\.accuracy",
    ),
    "bound string": (
        _add("search.constraints", 'accuracy = { min = "high" }'),
        r"search\.constraints\.accuracy",
    ),
    "bound unknown key": (
        _add("search.constraints", "accuracy = { between = 1 }"),
        r"search\.constraints\.accuracy",
    ),
    "constraint unknown metric": (
        _add("search.constraints", "foo = { max = 1 }"),
        r"search\.constraints",
    ),
    "constraint number": (
        _add("search.constraints", "accuracy = 0.5"),
        r"search\.constraints\.accuracy",
    ),
    # [metrics]: a user metric may not take a name the trial record writes (it would overwrite it)
    "user metric named qs": (
        _add("metrics", 'evaluate = "task.py:f"\ndirections = { qs = "maximize" }'),
        r"metrics\.directions\.qs: got 'qs', a name the trial record uses, allowed: ",
    ),
    "user metric named format.x": (
        _add("metrics", 'evaluate = "task.py:f"\ndirections = { "format.x" = "minimize" }'),
        r"metrics\.directions\.\"format\.x\": got 'format\.x', a name the trial record uses",
    ),
    # [train] / [compare] (read by search too: the whole file is validated at load)
    "train epochs zero": (_add("train", "epochs = 0"), r"train\.epochs"),
    "train lr negative": (_add("train", "lr = -1.0"), r"train\.lr"),
    "train lr nan": (_add("train", "lr = nan"), r"train\.lr"),
    "train batch zero": (_add("train", "batch_size = 0"), r"train\.batch_size"),
    "compare seeds zero": (_add("compare", "seeds = 0"), r"compare\.seeds"),
    "compare strategies empty": (_add("compare", "strategies = []"), r"compare\.strategies"),
    "compare strategies unknown": (
        _add("compare", 'strategies = ["tpee"]'),
        r"compare\.strategies",
    ),
    "compare n_trials negative": (_add("compare", "n_trials = -1"), r"compare\.n_trials"),
}

# name -> (search arguments after the good config, regex)
ARG_CASES: dict[str, tuple[list[str], str]] = {
    "--study parent": (["--study", "../escape"], r"--study"),
    "--study empty": (["--study", ""], r"--study"),
    "--study absolute": (["--study", "/tmp/qs-abs-study"], r"--study"),
    "--study nested": (["--study", "a/b"], r"--study"),
    "--study space": (["--study", "my study"], r"--study"),
    "--run-dir is a file": (["--run-dir", "afile.txt"], r"--run-dir"),
    "--run-dir under a file": (["--run-dir", "afile.txt/sub"], r"--run-dir"),
    "--run-dir empty": (["--run-dir", ""], r"--run-dir"),
    "--seed negative": (["--seed", "-1"], r"--seed"),
    "--seed huge": (["--seed", "99999999999999999999"], r"--seed"),
    "--seed text": (["--seed", "abc"], r"--seed"),
    "--n-trials zero": (["--n-trials", "0"], r"--n-trials"),
    "--n-trials text": (["--n-trials", "many"], r"--n-trials"),
    "--timeout zero": (["--timeout", "0"], r"--timeout"),
    "--timeout nan": (["--timeout", "nan"], r"--timeout"),
    "--workers zero": (["--workers", "0"], r"--workers"),
    "--n-jobs zero": (["--n-jobs", "0"], r"--n-jobs"),
    "--strategy empty": (["--strategy", ""], r"--strategy"),
    "--strategy unknown": (["--strategy", "tpee"], r"--strategy"),
    "--storage bogus": (["--storage", "bogus"], r"--storage"),
    "--storage unknown driver": (["--storage", "mysql+nodriver://h/db"], r"--storage"),
    "--storage unreachable": (
        ["--storage", "postgresql+psycopg2://u:p@127.0.0.1:1/db"],
        r"--storage",
    ),
    "--load missing": (["--load", "missing.pt"], r"--load"),
    "--load directory": (["--load", "adir"], r"--load"),
    "--load text file": (["--load", "afile.txt"], r"--load"),
    "--load truncated": (["--load", "truncated.pt"], r"--load"),
    "unknown option": (["--n-trails", "3"], r"--n-trails"),
    "--storage empty": (["--storage", ""], r"--storage"),
    "--study dot": (["--study", "."], r"--study"),
    "--seed 2**32": (["--seed", "4294967296"], r"--seed"),
    "--timeout inf": (["--timeout", "inf"], r"--timeout"),
    "--workers text": (["--workers", "two"], r"--workers"),
    "--config a directory": (["--config", "adir"], r"--config"),
}

# name -> (bytes or None for a missing file, regex): the config file itself
FILE_CASES: dict[str, tuple[bytes | None, str]] = {
    "config not utf-8": (b'seed = 0\n[model]\nname = "caf\xe9"\n', r"--config"),
    "config binary": (bytes(range(256)) * 4, r"--config"),
    "config not toml": (b"seed = = 0\n", r"--config"),
    "config duplicate key": (b"seed = 0\nseed = 1\n", r"--config"),
    "config missing": (None, r"--config"),
    "config empty": (b"", r"search"),  # valid TOML, but `search` needs a [search] table
    "config utf-16": ("seed = 0\n".encode("utf-16"), r"--config"),
}

# name -> (damage done to a copy of the good run directory, regex)
REPORT_CASES: dict[str, tuple[Callable[[Path], None], str]] = {
    "report empty dir": (lambda d: [p.unlink() for p in d.iterdir() if p.is_file()], r"RUN_DIR"),
    "report trials garbage": (
        lambda d: (d / "trials.jsonl").write_text("garbage\n"),
        r"RUN_DIR|trials",
    ),
    "report trials truncated": (
        lambda d: (d / "trials.jsonl").write_bytes((d / "trials.jsonl").read_bytes()[:-25]),
        r"RUN_DIR|trials",
    ),
    "report trials binary": (
        lambda d: (d / "trials.jsonl").write_bytes(b"\x00\xff" * 50),
        r"RUN_DIR|trials",
    ),
    "report trials wrong types": (
        lambda d: (d / "trials.jsonl").write_text('{"number": "x", "state": 5, "values": "abc"}\n'),
        r"RUN_DIR|trials",
    ),
    "report best not json": (lambda d: (d / "best.json").write_text("{"), r"RUN_DIR|best"),
    "report best missing keys": (
        lambda d: (d / "best.json").write_text('{"study": "x"}'),
        r"RUN_DIR|best",
    ),
    "report best is a list": (lambda d: (d / "best.json").write_text("[]"), r"RUN_DIR|best"),
    "report best binary": (
        lambda d: (d / "best.json").write_bytes(b"\xff\xfe\x00"),
        r"RUN_DIR|best",
    ),
    "report no best": (lambda d: (d / "best.json").unlink(), r"RUN_DIR|best"),
    "report best wrong types": (
        lambda d: (d / "best.json").write_text(
            '{"directions": 5, "combine": [], "objectives": 3, "space_size": "many"}'
        ),
        r"RUN_DIR|best",
    ),
    "report trials not objects": (
        lambda d: (d / "trials.jsonl").write_text("[1, 2]\n"),
        r"RUN_DIR|trials",
    ),
    "report comparison garbage": (
        lambda d: (d / "comparison.json").write_text('{"mode": 1}'),
        r"RUN_DIR|comparison",
    ),
    "report comparison binary": (
        lambda d: (d / "comparison.json").write_bytes(b"\x89PNG\r\n\x1a\n"),
        r"RUN_DIR|comparison",
    ),
}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory, mlp_checkpoint: Path) -> Path:
    """A folder with a finished study in runs/good, and files the cases refer to."""
    d = tmp_path_factory.mktemp("corpus")
    (d / "good.toml").write_text(GOOD.format(ckpt=mlp_checkpoint.as_posix()))
    (d / "afile.txt").write_text("not a folder, not a checkpoint\n")
    (d / "adir").mkdir()
    (d / "truncated.pt").write_bytes(mlp_checkpoint.read_bytes()[:200])
    (d / "my config.toml").write_text(GOOD.format(ckpt=mlp_checkpoint.as_posix()))
    finished_study(d)
    return d


@pytest.fixture
def in_workdir(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(workdir)
    before = _digest(workdir / "runs")
    yield workdir  # type: ignore[misc]
    assert _digest(workdir / "runs") == before, "an existing study was changed"


@pytest.mark.parametrize("name", sorted(CONFIG_CASES))
def test_bad_config(name: str, in_workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    edit, pattern = CONFIG_CASES[name]
    case = in_workdir / "cases" / re.sub(r"\W+", "_", name)
    case.mkdir(parents=True, exist_ok=True)
    cfg = case / "good.toml"  # same stem: it names the existing study
    cfg.write_text(edit((in_workdir / "good.toml").read_text()))
    code, err = _run(["search", "-c", str(cfg), "--run-dir", "runs", "-q"], capsys)
    _check(code, err, pattern)


@pytest.mark.parametrize("name", sorted(ARG_CASES))
def test_bad_argument(name: str, in_workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args, pattern = ARG_CASES[name]
    code, err = _run(["search", "-c", "good.toml", "-q", *args], capsys)
    _check(code, err, pattern)


@pytest.mark.parametrize("name", sorted(FILE_CASES))
def test_bad_config_file(name: str, in_workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    content, pattern = FILE_CASES[name]
    case = in_workdir / "cases" / re.sub(r"\W+", "_", name)
    case.mkdir(parents=True, exist_ok=True)
    cfg = case / "good.toml"
    if content is not None:
        cfg.write_bytes(content)
    elif cfg.exists():
        cfg.unlink()
    code, err = _run(["search", "-c", str(cfg), "--run-dir", "runs", "-q"], capsys)
    _check(code, err, pattern)


@pytest.mark.parametrize("name", sorted(REPORT_CASES))
def test_damaged_run_dir(name: str, in_workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    damage, pattern = REPORT_CASES[name]
    copy = in_workdir / "damaged" / re.sub(r"\W+", "_", name)
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(in_workdir / "runs" / "good", copy)
    damage(copy)
    code, err = _run(["report", str(copy)], capsys)
    _check(code, err, pattern)


@pytest.mark.parametrize(
    ("args", "pattern"),
    [
        (["report", "no-such-dir"], r"RUN_DIR"),
        (["report", "afile.txt"], r"RUN_DIR"),
        (["train", "-c", "good.toml", "--epochs", "0"], r"--epochs"),
        (["summary", "-c", "missing.toml"], r"--config"),
        # good.toml has no [quantize] table: that is said before --load is read
        (["quantize", "-c", "good.toml", "--load", "afile.txt"], r"quantize"),
        (["compare", "-c", "good.toml", "--seeds", "0"], r"--seeds"),
        (["compare", "-c", "good.toml", "--strategies", "tpee"], r"--strategies|strateg"),
        (["nosuchcommand"], r"nosuchcommand"),
        (["search", "-c", "my config.toml", "-q"], r"--study"),  # the stem is not a name
        (["report"], r"RUN_DIR"),
        (["compare", "-c", "good.toml", "-q", "--name", "../escape"], r"--name"),
        (["compare", "-c", "good.toml", "-q", "--name", ""], r"--name"),
        (["compare", "-c", "good.toml", "-q", "--run-dir", "afile.txt"], r"--run-dir"),
    ],
)
def test_other_commands(
    args: list[str], pattern: str, in_workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = _run(args, capsys)
    _check(code, err, pattern)


def test_the_corpus_is_large() -> None:
    n = len(CONFIG_CASES) + len(ARG_CASES) + len(FILE_CASES) + len(REPORT_CASES) + 13
    assert n >= 100, n
    json.dumps(sorted(CONFIG_CASES))  # names are plain strings (they name the cases' folders)


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into a read-only folder")
def test_read_only_run_dir(in_workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ro = in_workdir / "read-only"
    ro.mkdir(exist_ok=True)
    ro.chmod(0o555)
    try:
        code, err = _run(["search", "-c", "good.toml", "-q", "--run-dir", str(ro)], capsys)
    finally:
        ro.chmod(0o755)
    _check(code, err, r"--run-dir: folder .* is not writable")
