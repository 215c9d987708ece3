"""`quantsearch quantize --from-run` and `quantsearch finetune` on run directories written by
a real search (in-process): checkpoints that reload quantized, bad input as one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from quantsearch.data import DataSplits
from quantsearch.int_weights import read_int_weights
from quantsearch.metrics import compute_metrics
from quantsearch.quantized import load_quantized
from quantsearch.search.run_dir import MODEL_FILE, open_run
from tests.cli.test_search_cli import run
from tests.runs import PARETO, make_run


@pytest.fixture(scope="module")
def weighted(tmp_path_factory: pytest.TempPathFactory, mlp_checkpoint: Path) -> Path:
    return make_run(tmp_path_factory.mktemp("weighted"), mlp_checkpoint)


@pytest.fixture(scope="module")
def pareto(tmp_path_factory: pytest.TempPathFactory, mlp_checkpoint: Path) -> Path:
    return make_run(tmp_path_factory.mktemp("pareto"), mlp_checkpoint, PARETO, name="p")


def test_quantize_the_best_trial_of_a_run(
    weighted: Path, digits: DataSplits, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "q"
    args = ["quantize", "--from-run", str(weighted), "--best", "--out", str(out)]
    code, text, _ = run([*args, "--int-weights", "--json"], capsys)
    assert code == 0
    printed = json.loads(text)
    result = open_run(weighted)
    assert result.best is not None and printed["trial"] == result.best.number
    assert printed["after"]["accuracy"] == result.best.metrics["accuracy"]
    assert {"before", "after", "samples"} <= set(printed["test"])
    reloaded = load_quantized(out / "quantized.pt")
    x = digits.test.x
    assert torch.equal(reloaded(x), result.model(result.best)(x))
    values = read_int_weights(out)
    for name, v in reloaded.state_dict().items():
        assert np.array_equal(values[name], v.numpy()), name

    code, text, _ = run([*args[:3], "--trial", "1", "--out", str(tmp_path / "t1")], capsys)
    assert code == 0 and "trial 1" in text and "test metrics" in text
    ckpt = load_quantized(tmp_path / "t1" / "quantized.pt")
    assert (
        compute_metrics(ckpt, ["accuracy"], data=digits.val)["accuracy"]
        == (result.trial(1).metrics["accuracy"])
    )


def test_quantize_a_pareto_member(
    pareto: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, text, _ = run(
        ["quantize", "--from-run", str(pareto), "--pareto", "0", "--out", str(tmp_path), "--json"],
        capsys,
    )
    assert code == 0
    assert json.loads(text)["trial"] == open_run(pareto).pareto[0].number


def test_finetune_a_trial_and_reload_it_quantized(
    weighted: Path, digits: DataSplits, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = open_run(weighted)
    worst = min(result.complete, key=lambda t: t.metrics["accuracy"])
    out = tmp_path / "ft"
    code, text, _ = run(
        ["finetune", "--from-run", str(weighted), "--trial", str(worst.number),
         "--epochs", "2", "--out", str(out), "--json"],
        capsys,
    )  # fmt: skip
    assert code == 0
    record = json.loads(text)
    assert record["before"]["val"]["accuracy"] == worst.metrics["accuracy"]
    assert record["after"]["val"]["accuracy"] >= record["before"]["val"]["accuracy"]
    assert len(record["history"]) == 2
    model = load_quantized(out / "finetuned.pt")
    assert not model.training
    measured = compute_metrics(model, ["accuracy"], data=digits.test)["accuracy"]
    assert measured == record["after"]["test"]["accuracy"]
    w = model.state_dict()["seq_blocks.0.weight"]  # fixed(8,4) or fixed(4,2): on the grid
    assert torch.equal(w * 16, torch.round(w * 16))

    code, text, _ = run(
        ["finetune", "--from-run", str(weighted), "--epochs", "1", "--out", str(out)], capsys
    )
    assert code == 0 and "test" in text and "kept epoch" in text


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (
            ["quantize", "--from-run", "{w}", "--trial", "99"],
            r"--trial: got 99, allowed: a trial number of this run \(0\.\.3\)",
        ),
        (
            ["quantize", "--from-run", "{w}", "--pareto", "0"],
            r"--pareto: got 0 on a weighted-sum run .*allowed: --best or --trial N",
        ),
        (
            ["quantize", "--from-run", "{p}", "--best"],
            r"--best: got it on a Pareto search .*allowed: --pareto K",
        ),
        (["quantize", "--from-run", "{p}", "--pareto", "7"], r"--pareto: got 7, allowed: 0\.\."),
        (
            ["quantize", "--from-run", "{w}", "--best", "--trial", "0"],
            r"--best: got it with --trial, allowed: one of",
        ),
        (
            ["quantize", "--trial", "0"],
            r"--trial: got it without --from-run, allowed: with --from-run DIR",
        ),
        (
            ["quantize", "--from-run", "{bare}"],
            r"--from-run: got '.*bare', which has no model\.pt, allowed: ",
        ),
        (
            ["quantize", "--from-run", "{nowhere}"],
            r"--from-run: got '.*nowhere', which does not exist, allowed: a run directory",
        ),
        (["finetune", "--from-run", "{w}", "--trial", "42"], r"--trial: got 42, allowed: "),
        (
            ["finetune", "--epochs", "2"],
            r"--from-run: got nothing, allowed: a search's run directory",
        ),
        (
            ["finetune", "--from-run", "{w}", "--lr", "nan"],
            r"--lr: got nan, allowed: a finite number > 0",
        ),
        (["finetune", "--from-run", "{bare}"], r"--from-run: got '.*bare', which has no model\.pt"),
    ],
)
def test_bad_input_is_one_line(
    weighted: Path,
    pareto: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    match: str,
) -> None:
    import re

    bare = tmp_path / "bare"
    bare.mkdir()
    for f in weighted.iterdir():
        if f.is_file() and f.name != MODEL_FILE:
            (bare / f.name).write_bytes(f.read_bytes())
    where = {"w": weighted, "p": pareto, "bare": bare, "nowhere": tmp_path / "nowhere"}
    argv = [a.format(**where) for a in args] + ["--out", str(tmp_path / "out")]
    code, _, err = run(argv, capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert lines[0].startswith("error: ") and re.search(match, lines[0]), lines[0]


@pytest.mark.parametrize("command", ["quantize", "finetune"])
def test_out_replaces_only_its_own_outputs(
    command: str, weighted: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A user's metrics.json (or any file of the output's names that quantsearch did not
    write) in --out is refused before any work and left as it was; the user's other files
    stay beside an output; a previous output is replaced."""
    out = tmp_path / "mine"
    out.mkdir()
    (out / "metrics.json").write_text('{"mine": 1}\n')
    (out / "notes.txt").write_text("keep\n")
    args = [command, "--from-run", str(weighted), "--best", "--out", str(out)]
    if command == "finetune":
        args += ["--epochs", "1"]
    code, _, err = run(args, capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert lines[0].startswith(
        f"error: --out: got {str(out)!r}, which holds metrics.json no `quantsearch"
    )
    assert (out / "metrics.json").read_text() == '{"mine": 1}\n'
    assert sorted(p.name for p in out.iterdir()) == ["metrics.json", "notes.txt"]

    (out / "metrics.json").unlink()
    assert run(args, capsys)[0] == 0  # only the user's notes beside: written
    first = json.loads((out / "metrics.json").read_text())
    assert run(args, capsys)[0] == 0  # its own output: replaced
    assert json.loads((out / "metrics.json").read_text()).keys() == first.keys()
    assert (out / "notes.txt").read_text() == "keep\n"


MINIFLOAT = """
[search]
n_trials = 1
[search.strategy]
name = "brute_force"
[search.space.choices.linear]
weight = [{ format = "minifloat", exponent_width = 4, mantissa_width = 3 }]
[search.objectives]
accuracy = { direction = "maximize" }
"""


@pytest.fixture(scope="module")
def minifloat(tmp_path_factory: pytest.TempPathFactory, mlp_checkpoint: Path) -> Path:
    return make_run(tmp_path_factory.mktemp("minifloat"), mlp_checkpoint, MINIFLOAT, name="mf")


@pytest.mark.parametrize("command", ["quantize", "finetune"])
def test_int_weights_of_a_minifloat_trial_write_nothing(
    minifloat: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    """--int-weights was refused only when the weights were written, last: the quantize
    (or, after training, finetune) folder was left holding its checkpoint alone."""
    out = tmp_path / "out"
    args = [command, "--from-run", str(minifloat), "--int-weights", "--out", str(out)]
    code, _, err = run(args, capsys)
    assert code == 2
    (line,) = err.strip().splitlines()
    assert line.startswith("error: seq_blocks_0.weight: got minifloat(e4m3,b7), which is not fixed")
    assert not out.exists()
