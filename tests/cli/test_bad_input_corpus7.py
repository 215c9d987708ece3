"""The seventh sweep of bad inputs: option fuzz. Every option of every command that takes a
value is given the values a slip or a script makes: empty, blank, negative, zero, huge (1e30,
2**64), nan, inf, a word, unicode, a path with a newline, 5000 characters.

What escaped before: click's own refusals of a value kept click's words ("--epochs: 0 is not
in the range 1<=x<=10000.", "--backend: 'x' is not one of 'Vitis', 'Vivado'.", "--load: File
'runs' is a directory."), a 5000-character value was echoed whole, and the options that only go
with another said "given with", "--trial: -1, allowed: ..." or "--lr: nan, allowed: ...": none
had the one form, ``error: <key>: got <given>, allowed: <allowed>``.

Each case: exit status 2, one line of that form (the checker of test_message_form) naming the
option, no traceback, and the folder it runs in (a finished study, its run directory, the
user's config and checkpoint) byte for byte as before. A value that is a fine name (``--run-dir
nan``, ``--out 0``) is not bad input and is not here. Referee: the form the project's brief
states; the accepted range of each option is its ``--help``'s.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.bad_input import GOOD, digest, finished_study, run_cli
from tests.cli.test_message_form import FORM

VALUES = {
    "empty": "",
    "blank": "   ",
    "negative": "-1",
    "zero": "0",
    "1e30": "1e30",
    "2**64": str(2**64),
    "nan": "nan",
    "inf": "inf",
    "word": "abc",
    "unicode": "é中",
    "newline": "a\nb",
    "5000 characters": "x" * 5000,
}
FROM = ["--from-run", "runs/good"]
# command line before the option, option, values it takes (not cases), command line after
OPTIONS: list[tuple[list[str], str, set[str], list[str]]] = [
    (["search", "-c", "good.toml", "-q"], "--n-trials", set(), []),
    (["search", "-c", "good.toml", "-q"], "--n-evaluations", set(), []),
    (["search", "-c", "good.toml", "-q"], "--n-jobs", set(), []),
    (["search", "-c", "good.toml", "-q"], "--workers", set(), []),
    (["search", "-c", "good.toml", "-q"], "--seed", {"zero"}, []),
    (["search", "-c", "good.toml", "-q"], "--timeout", set(), []),
    (["search", "-c", "good.toml", "-q"], "--figure-format", set(), []),
    (["worker", "-c", "good.toml"], "--n-trials", set(), []),
    (["worker", "-c", "good.toml"], "--timeout", set(), []),
    (["compare", "-c", "good.toml", "-q"], "--seeds", set(), []),
    (["compare", "-c", "good.toml", "-q"], "--trials", set(), []),
    (["compare", "-c", "good.toml", "-q"], "--evaluations", set(), []),
    (["compare", "-c", "good.toml", "-q"], "--figure-format", set(), []),
    (["demo", "-c", "good.toml"], "--seeds", set(), []),
    (["train", "-c", "good.toml"], "--epochs", set(), []),
    (["summary", "-c", "good.toml"], "--batch", set(), []),
    (["summary", "-c", "good.toml", "--latency"], "--latency-batch", set(), []),
    (["summary", "-c", "good.toml", "--latency"], "--repeats", set(), []),
    (["summary", "-c", "good.toml", "--latency"], "--warmup", {"zero"}, []),
    (["finetune", *FROM], "--trial", {"zero"}, []),
    (["finetune", *FROM], "--pareto", set(), []),
    (["finetune", *FROM], "--epochs", set(), []),
    (["finetune", *FROM], "--lr", set(), []),
    (["finetune", *FROM], "--batch-size", set(), []),
    (["finetune", *FROM], "--seed", {"zero"}, []),
    (["finetune", *FROM], "--device", set(), []),
    (["quantize", *FROM], "--trial", {"zero"}, []),
    (["quantize", "-c", "q.toml", "--calibration", "percentile"], "--percentile", set(), []),
    (["quantize", "-c", "q.toml"], "--calibration", set(), []),
    (["export", "--to", "hls4ml", *FROM], "--trial", {"zero"}, ["prj"]),
    (["export", "--to", "hls4ml", *FROM, "--verify"], "--samples", set(), ["prj"]),
    (["export", "--to", "hls4ml", *FROM], "--backend", set(), ["prj"]),
    (["export", "--to", "hls4ml", *FROM], "--io-type", set(), ["prj"]),
    (["export", *FROM], "--to", set(), ["prj"]),
    (["report", "runs/good"], "--figure-format", set(), []),
    (["export", "--to", "qonnx", "--trial", "0"], "--from-run", set(), ["m.onnx"]),
    (["quantize", "--trial", "0"], "--from-run", set(), []),
]
# values refused by a check of their own before the option's (a path's control characters and
# length; a value click reads as an option name): their key is still the option
SKIP = {("--from-run", "negative")}  # '-1' after --from-run is click's missing value, said so


def _cases() -> dict[str, tuple[list[str], str]]:
    cases: dict[str, tuple[list[str], str]] = {}
    for before, option, accepted, after in OPTIONS:
        for name, value in VALUES.items():
            if name in accepted or (option, name) in SKIP:
                continue
            cases[f"{' '.join(before[:1])} {option} {name}"] = (
                [*before, option, value, *after],
                option,
            )
    return cases


CASES = _cases()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory, mlp_checkpoint: Path) -> Path:
    """A finished study in runs/good, its config, and a config with a [quantize] table."""
    d = tmp_path_factory.mktemp("corpus7")
    good = GOOD.format(ckpt=mlp_checkpoint.as_posix())
    (d / "good.toml").write_text(good)
    quantize = '[quantize.default]\nweight = { format = "fixed", width = 8, frac_width = 4 }\n'
    (d / "q.toml").write_text(good + quantize)
    finished_study(d)
    return d


@pytest.fixture
def in_workdir(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.chdir(workdir)
    before = digest(workdir)
    yield workdir
    assert digest(workdir) == before, "a file of the folder was changed, added or removed"


@pytest.mark.parametrize("name", sorted(CASES))
def test_option_fuzz(name: str, in_workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args, option = CASES[name]
    if args[0] == "export":
        pytest.importorskip("hls4ml", reason="the export extra: pip install 'quantsearch[export]'")
    code, err = run_cli(args, capsys)
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, (code, err[-2000:])
    assert FORM.match(lines[0]), lines[0]
    assert lines[0].startswith(f"error: {option}: got "), lines[0]
    assert len(lines[0]) < 600, lines[0][:300]  # a 5000-character value is not echoed whole


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (
            ["train", "-c", "good.toml", "--epochs", "0"],
            "--epochs: got 0, allowed: an integer in the range 1<=x<=10000",
        ),
        (
            ["finetune", *FROM, "--lr", "abc"],
            "--lr: got 'abc', allowed: a number in the range 1e-10<=x<=10.0",
        ),
        (
            ["search", "-c", "good.toml", "--figure-format", "jpg"],
            "--figure-format: got 'jpg', allowed: one of ['png', 'svg', 'pdf']",
        ),
        (
            ["search", "-c", "good.toml", "--n-jobs", "x" * 5000],
            f"--n-jobs: got '{'x' * 59}... (5000 characters), allowed: an integer in the range "
            "1<=x<=1024",
        ),
        (
            ["search", "-c", "good.toml", "--timeout", "soon"],
            "--timeout: got 'soon', allowed: seconds > 0, at most 31536000 (a year)",
        ),
        (["finetune", *FROM, "--lr", "nan"], "--lr: got nan, allowed: a finite number > 0"),
        (["quantize", *FROM, "--trial", "-1"], "--trial: got -1, allowed: a trial number"),
        (["quantize", "-c", "good.toml", "--load", "runs"], "--load: got 'runs' (a folder)"),
        (
            ["quantize", *FROM, "--trial", "0", "--best"],
            "--best: got it with --trial, allowed: one of ['--trial', '--best', '--pareto']",
        ),
        (["quantize", *FROM, "--trial", "0", "--trial", "1"], "--trial: got it more than once"),
    ],
)
def test_the_words(
    args: list[str], line: str, in_workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """What the form says for each kind of value click refuses (its range, its choices, a
    file or folder) and for an option given with another that excludes it."""
    code, err = run_cli(args, capsys)
    assert code == 2 and err.startswith(f"error: {line}"), err
    assert FORM.match(err.strip()), err


def test_the_corpus_is_large() -> None:
    assert len(CASES) >= 350, len(CASES)
    assert all(re.fullmatch(r"[\w\- *é中]+", n) for n in CASES), sorted(CASES)[:3]
