"""`quantsearch export` on a run directory written by a real search (in-process): QONNX
verified bit-exact, an hls4ml project written (its C simulation is built in test_hls4ml), and
layers the search left in float refused in one line unless --float-as is given."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.test_search_cli import run
from tests.runs import make_run


@pytest.fixture(scope="module")
def weighted(tmp_path_factory: pytest.TempPathFactory, mlp_checkpoint: Path) -> Path:
    return make_run(tmp_path_factory.mktemp("weighted"), mlp_checkpoint)


def test_qonnx_of_the_best_trial_is_verified_bit_exact(
    weighted: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "m.onnx"
    args = ["export", "--to", "qonnx", str(out), "--from-run", str(weighted), "--best"]
    code, text, _ = run([*args, "--verify", "--json"], capsys)
    assert code == 0
    record = json.loads(text)
    assert out.is_file()
    a = record["agreement"]
    assert a["bit_exact"] and a["max_lsb"] == 0 and a["same_class"] == 1.0
    assert a["samples"] == 360  # the digits validation split


def test_hls4ml_refuses_float_layers_then_writes_with_float_as(
    weighted: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["export", "--to", "hls4ml", str(tmp_path / "prj"), "--from-run", str(weighted)]
    code, _, err = run(args, capsys)  # mlp-digits' BatchNorms are not in the searched space
    assert code == 2
    assert "left in float" in err and "--float-as" in err
    assert len(err.strip().splitlines()) == 1
    code, text, _ = run([*args, "--float-as", "fixed(32,16)", "--json"], capsys)
    assert code == 0
    record = json.loads(text)
    assert (tmp_path / "prj" / "build_prj.tcl").is_file()
    assert any("batch_norm1d" in note for note in record["inexact"])
    assert record["precisions"]["seq_blocks_0"]["weight"].startswith("ap_fixed<")


@pytest.mark.parametrize(
    ("choice", "pattern"),
    [
        (["--trial", "0", "--best"], r"^error: --best: got it with --trial, allowed: one of "),
        (["--pareto", "0"], r"^error: --pareto: got 0 on a weighted-sum run"),
        (["--trial", "999"], r"^error: --trial: "),
    ],
)
def test_the_trial_is_chosen_as_quantize_and_finetune_choose_it(
    weighted: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    choice: list[str],
    pattern: str,
) -> None:
    """One rule for --trial/--best/--pareto (SearchResult.select), in one line each."""
    import re

    args = ["export", "--to", "qonnx", str(tmp_path / "m.onnx"), "--from-run", str(weighted)]
    code, _, err = run([*args, *choice], capsys)
    assert code == 2
    assert len(err.strip().splitlines()) == 1
    assert re.search(pattern, err), err


def test_the_demo_hint_is_a_command_that_runs(
    weighted: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`quantsearch demo` ends by suggesting an export command; on its run directory (the
    lab's space leaves mlp-digits' BatchNorms in float) it was refused for want of --float-as."""
    import shlex

    from quantsearch.cli.export import print_export_best

    print_export_best({"exports": [], "skipped": None}, weighted)
    hint = capsys.readouterr().out.strip()
    command = shlex.split(hint.split(": ", 1)[1])
    assert command[:4] == ["quantsearch", "export", "--to", "hls4ml"]
    args = [str(tmp_path / "prj") if a == "DIR" else a for a in command[1:]]
    args.remove("--verify")  # the refusal comes before the C simulation, whose g++ build is slow
    code, _, err = run(args, capsys)
    assert code == 0, err
    assert (tmp_path / "prj" / "build_prj.tcl").is_file()


def test_printed_lines_keep_their_brackets(
    weighted: Path,
    mlp_checkpoint: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """User text went through rich markup, which ate every '[word]': the export of a config
    printed 'mlp-digits ( of FILE)', and the demo without the export extra told the user to
    `pip install 'quantsearch'`."""
    import sys

    from quantsearch.cli.console import print_table
    from quantsearch.cli.export import export_best, print_export_best

    config = tmp_path / "q.toml"
    config.write_text(
        f'[model]\nname = "mlp-digits"\ncheckpoint = "{mlp_checkpoint.as_posix()}"\n'
        '[quantize.default]\nformat = "fixed"\ndata_in = { width = 8, frac_width = 4 }\n'
    )
    code, text, err = run(
        ["export", "--to", "qonnx", str(tmp_path / "q.onnx"), "-c", str(config)], capsys
    )
    assert code == 0, err
    assert f"mlp-digits ([quantize] of {config}) -> qonnx" in text

    monkeypatch.setitem(sys.modules, "hls4ml", None)  # import hls4ml now raises ImportError
    print_export_best(export_best(weighted), weighted)
    assert "pip install 'quantsearch[export]'" in capsys.readouterr().out

    print_table([{"[col]": "[quantize] of a.toml"}], title="[bold]t")
    out = capsys.readouterr().out
    assert "[col]" in out and "[quantize] of a.toml" in out and "[bold]t" in out


def test_a_finetuned_checkpoint_is_exported_as_it_is(
    weighted: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`finetune`'s checkpoint as `export --load`: its fine-tuned weights go out, not the float
    checkpoint's (there was no way to export them from the command line). Referee: the qonnx
    executor on the exported file equals the reloaded fine-tuned model bit for bit, and differs
    from the same trial quantized from the float weights."""
    import numpy as np
    import torch

    from quantsearch.data import load_dataset
    from quantsearch.export.qonnx import run_qonnx
    from quantsearch.quantized import load_quantized

    ft, q = tmp_path / "ft", tmp_path / "q"
    rows = [json.loads(line) for line in (weighted / "trials.jsonl").read_text().splitlines()]
    worst = min(rows, key=lambda r: r["metrics"]["accuracy"])["number"]  # most to gain
    args = ["--from-run", str(weighted), "--trial", str(worst)]
    code, _, err = run(
        ["finetune", *args, "--epochs", "2", "--lr", "0.01", "--out", str(ft)], capsys
    )
    assert code == 0, err
    assert json.loads((ft / "metrics.json").read_text())["best_epoch"] >= 1  # weights moved
    code, _, err = run(["quantize", *args, "--out", str(q)], capsys)
    assert code == 0, err
    config, out = weighted.parent.parent / "s.toml", tmp_path / "ft.onnx"
    load = ["--config", str(config), "--load", str(ft / "finetuned.pt")]
    code, text, err = run(
        ["export", str(out), "--to", "qonnx", *load, "--verify", "--json"], capsys
    )
    assert code == 0, err
    record = json.loads(text)
    assert record["agreement"]["bit_exact"] and "quantized checkpoint" in record["model"]
    x = load_dataset("digits").val.x
    with torch.no_grad():
        finetuned = load_quantized(ft / "finetuned.pt")(x).double().numpy()
        from_float = load_quantized(q / "quantized.pt")(x).double().numpy()
    exported = np.asarray(run_qonnx(out, x), dtype=np.float64)
    assert np.array_equal(exported, finetuned) and not np.array_equal(exported, from_float)
    config.with_name("both.toml").write_text(
        config.read_text() + "\n[quantize.default]\nweight = { width = 8, frac_width = 4 }\n"
    )
    load[1] = str(config.with_name("both.toml"))
    code, _, err = run(["export", str(tmp_path / "both.onnx"), "--to", "qonnx", *load], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert err.startswith("error: --load: got a quantized checkpoint"), err
    assert not (tmp_path / "both.onnx").exists()
