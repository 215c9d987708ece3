"""Bad inputs the earlier corpora (``test_bad_input_corpus.py``, ``test_bad_input_escapes.py``,
``test_bad_input_wider.py``) left open, found by a driver that tried every command and config
key with wrong types, empty strings, NaN, huge integers, negatives, control characters,
contradicting keys, odd paths (a folder, a FIFO, a link to nothing) and damaged or mixed run
directories; each is now one ``error:`` line naming the key or argument, exit status 2, no
traceback, and an existing study beside it unchanged.

What escaped before: ``skip = true`` beside a role's format (the format unused); a block_fp
``block_dim`` the tensor lacks in ``[quantize]`` (one line without the key); an in-memory SQLite
storage (two minutes of lock waits, then every trial lost at exit); negative drop or increase
bounds and bounds every value meets (``min = 0``, a fraction's ``max = 1``) or only 0 meets;
``n_evaluations`` past ``n_trials`` (search and compare); fidelity fields with ``method =
'full'``; a choice listed twice; ``--trial`` of a trial whose config failed (quantize, finetune
and export built it); ``--run-dir`` a link to nothing (a traceback); ``--out`` or
``train.checkpoint`` a FIFO, a folder, a link to nothing or a name with a newline (replaced, or
refused only after training); ``--config ''``; ``--calibration`` with no ``"auto"`` field,
``--backend``/``--io-type`` with ``--to qonnx``, ``--strategy`` dropping the config's strategy
options (all ignored without a word); a run directory holding another search's
``search_config.json``; a comparison of another problem written over an earlier one; ``init``
naming a module that does not exist; a checkpoint that does not fit the model (its key and the
mismatch unnamed).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.cli.bad_input import GOOD, W, case_folder, exit_status, finished_study, unchanged_runs
from tests.cli.bad_input import add as _add
from tests.cli.bad_input import check_one_line as _check
from tests.cli.bad_input import digest as _digest
from tests.cli.bad_input import run_cli as _run
from tests.cli.bad_input import sub as _sub


def _sub_checkpoint(path: str) -> Callable[[str], str]:
    return lambda text: re.sub(r'checkpoint = ".*"', f'checkpoint = "{path}"', text, count=1)


def _bfp(dim: int) -> str:
    return f'{{ format = "block_fp", mantissa_width = 4, block_dim = {dim} }}'


# name -> (edit of the good config, regex the error line must match after "error: ");
# run as `search` (a [quantize] table is checked there too) and, where it has one, `quantize`
CONFIG_CASES: dict[str, tuple[Callable[[str], str], str]] = {
    "skip with a role": (
        _add('quantize.by_name."seq_blocks.2"', "skip = true\ndata_in = { width = 4 }"),
        r'^quantize\.by_name\."seq_blocks\.2"\.skip: got true with data_in, allowed: skip = '
        r"true alone \(the node stays float\) or formats without it$",
    ),
    "skip with a format": (
        _add("quantize.default", 'skip = true\nformat = "minifloat"'),
        r"^quantize\.default\.skip: got true with format, allowed: skip = true alone",
    ),
    "quantize block_dim past a weight": (
        _add("quantize.by_type.linear", f"weight = {_bfp(2)}"),
        r"^quantize\.by_type\.linear\.weight\.block_dim: got 2, allowed: -2 to 1 \(the weight "
        r"of node 'seq_blocks_0' is a 2-d tensor of shape \(64, 64\)\)$",
    ),
    "quantize block_dim past a bias": (
        _add("quantize.default", f"bias = {_bfp(1)}"),
        r"^quantize\.default\.bias\.block_dim: got 1, allowed: -1 to 0 \(the bias of node "
        r"'seq_blocks_0' is a 1-d tensor",
    ),
    # run where torch finds no CUDA device (CI); where it finds one, cuda:99
    "search device without CUDA": (
        _add("search", 'device = "cuda:99"'),
        r"^search\.device: got 'cuda:99', allowed: 'auto' or 'cpu' (\(torch finds no CUDA "
        r"device here\)|or cuda:0 to cuda:\d+)$",
    ),
    "storage in memory": (
        _add("search", 'storage = "sqlite://"'),
        r"^search\.storage: got 'sqlite://' \(an in-memory database: every trial is lost at "
        r"exit\), allowed: a database file or server",
    ),
    "storage :memory:": (
        _add("search", 'storage = "sqlite:///:memory:"'),
        r"^search\.storage: got 'sqlite:///:memory:' \(an in-memory database",
    ),
    "storage memory URI": (
        _add("search", 'storage = "sqlite:///file:s?mode=memory&uri=true"'),
        r"^search\.storage: got .* \(an in-memory database",
    ),
    "loss_increase negative": (
        _add("search.constraints", "loss_increase = { max = -1 }"),
        r"^search\.constraints\.loss_increase\.max: got -1\.0, allowed: a bound >= 0 for the "
        r"increase of loss from the unquantized model$",
    ),
    "accuracy_drop negative": (
        _add("search.constraints", "accuracy_drop = { max = -0.1 }"),
        r"^search\.constraints\.accuracy_drop\.max: got -0\.1, allowed: a bound in \[0, 1\) "
        r"for the drop of accuracy",
    ),
    "train.lr past floats": (
        _add("train", "lr = 1" + "0" * 400),
        r"^train\.lr: got an integer of 401 digits, allowed: a finite number in \[1e-10, 10\.0\]$",
    ),
    # bounds at the ends of a metric's range: met by every value, or by 0 alone
    "max_ratio 0": (
        _add("search.constraints", "bitops = { max_ratio = 0 }"),
        r"^search\.constraints\.bitops\.max_ratio: got 0\.0, allowed: a bound > 0 for bitops "
        r"\(only a value of 0 meets it\)$",
    ),
    "min_ratio 0": (
        _add("search.constraints", "bitops = { min_ratio = 0 }"),
        r"^search\.constraints\.bitops\.min_ratio: got 0\.0, .* \(every value meets it\)$",
    ),
    "accuracy min 0": (
        _add("search.constraints", "accuracy = { min = 0 }"),
        r"^search\.constraints\.accuracy\.min: got 0\.0, allowed: a bound in \(0, 1\] for "
        r"accuracy \(every value meets it\)$",
    ),
    "accuracy max 1": (
        _add("search.constraints", "accuracy = { max = 1 }"),
        r"^search\.constraints\.accuracy\.max: got 1\.0, allowed: a bound in \(0, 1\) .*every",
    ),
    "loss max 0": (
        _add("search.constraints", "loss = { max = 0 }"),
        r"^search\.constraints\.loss\.max: got 0\.0, allowed: a bound > 0 for loss \(only a",
    ),
    "accuracy_drop max 1": (
        _add("search.constraints", "accuracy_drop = { max = 1 }"),
        r"^search\.constraints\.accuracy_drop\.max: got 1\.0, allowed: a bound in \[0, 1\) .*"
        r"\(every value meets it\)$",
    ),
    "a choice twice": (
        _sub(W, "weight = [[8, 4], [4, 2], [8, 4]]"),
        r"^search\.space\.choices\.linear\.weight: got \[8, 4\] twice, allowed: each once$",
    ),
    "fidelity full with eta": (
        _add("search", 'fidelity = { method = "full", eta = 3 }'),
        r"^search\.fidelity\.eta: got 3 with method = 'full', allowed: only with method = "
        r"'successive_halving'$",
    ),
    "n_evaluations past n_trials": (
        _add("search", "n_evaluations = 10"),
        r"^search\.n_evaluations: got 10 with search\.n_trials = 2, allowed: at most 2 \(every "
        r"evaluation is a trial\)$",
    ),
    "compare.n_evaluations past compare.n_trials": (
        _add("compare", "n_trials = 2\nn_evaluations = 5"),
        r"^compare\.n_evaluations: got 5 with compare\.n_trials = 2, allowed: at most 2",
    ),
    "model.checkpoint a folder": (
        _sub_checkpoint("folder"),
        r"^model\.checkpoint: got 'folder', which is a folder, allowed: a checkpoint file$",
    ),
}

# name -> (arguments, regex); run in the folder holding runs/good, good.toml, runs/fail (trial
# 1's config failed), fifo (a FIFO), nothing (a link to nothing) and folder
ARG_CASES: dict[str, tuple[list[str], str]] = {
    # 1,000 worker processes, each importing torch, ran a 24 GB machine out of memory
    "search --workers past 4 a core": (
        ["search", "-c", "good.toml", "-q", "--workers", str(4 * (os.cpu_count() or 1) + 1)],
        r"^--workers: got \d+, allowed: 1 to \d+ on this machine \(4 per CPU core: each worker "
        r"is a process with its own torch; add workers on other machines with `quantsearch "
        r"worker` and one --storage\)$",
    ),
    "quantize --trial of a failed config": (
        ["quantize", "--from-run", "runs/fail", "--trial", "1", "--out", "q"],
        r"^--trial: got 1 \(its config failed: MetricError: evaluate function 'f' failed: "
        r"RuntimeError: the third call\), allowed: a trial that did not fail \(0\)$",
    ),
    "finetune --trial of a failed config": (
        ["finetune", "--from-run", "runs/fail", "--trial", "1", "--epochs", "1", "--out", "f"],
        r"^--trial: got 1 \(its config failed: .*\), allowed: a trial that did not fail \(0\)$",
    ),
    "export --trial of a failed config": (
        ["export", "e.onnx", "--to", "qonnx", "--from-run", "runs/fail", "--trial", "1"],
        r"^--trial: got 1 \(its config failed: .*\), allowed: a trial that did not fail",
    ),
    "search --run-dir a link to nothing": (
        ["search", "-c", "good.toml", "-q", "--run-dir", "nothing"],
        r"^--run-dir: got '.*nothing.*' \('nothing' is a link to nothing\), allowed: a folder or a ",
    ),
    "search --run-dir a FIFO": (
        ["search", "-c", "good.toml", "-q", "--run-dir", "fifo"],
        r"^--run-dir: got 'fifo/good' \('fifo' is neither a file nor a folder \(a FIFO, a device\)\), allowed",
    ),
    "train --out a FIFO": (
        ["train", "-c", "good.toml", "--out", "fifo"],
        r"^--out: got 'fifo' \(not a regular file\), allowed: a file name$",
    ),
    "train --out a link to nothing": (
        ["train", "-c", "good.toml", "--out", "nothing"],
        r"^--out: got 'nothing' \(a link to nothing\), allowed: a file name$",
    ),
    "summary --load a FIFO": (
        ["summary", "-c", "good.toml", "--load", "fifo"],
        r"^--load: got 'fifo', which is not a regular file, allowed: a checkpoint file$",
    ),
    "search --load a link to nothing": (
        ["search", "-c", "good.toml", "-q", "--load", "nothing"],
        r"^--load: got 'nothing', which is a link to nothing, allowed: a checkpoint file$",
    ),
    "--n-evaluations past --n-trials": (
        ["search", "-c", "good.toml", "-q", "--n-trials", "3", "--n-evaluations", "5"],
        r"^--n-evaluations: got 5 with --n-trials = 3, allowed: at most 3",
    ),
    "--n-trials below n_evaluations": (
        ["search", "-c", "evals.toml", "-q", "--n-trials", "3"],
        r"^search\.n_evaluations: got 4 with --n-trials = 3, allowed: at most 3",
    ),
    "compare --evaluations past --trials": (
        ["compare", "-c", "good.toml", "-q", "--trials", "2", "--evaluations", "5"],
        r"^--evaluations: got 5 with --trials = 2, allowed: at most 2",
    ),
    "train.checkpoint a FIFO": (
        ["train", "-c", "to_fifo.toml"],
        r"^train\.checkpoint: got '.*fifo' \(not a regular file\), allowed: a file name$",
    ),
    "train.checkpoint a folder": (
        ["train", "-c", "to_folder.toml"],
        r"^train\.checkpoint: got '.*folder' \(a folder\), allowed: a file name$",
    ),
    "export --backend with qonnx": (
        ["export", "e.onnx", "--to", "qonnx", "--from-run", "runs/good", "--backend", "vivado"],
        r"^--backend: got it with --to qonnx, allowed: with --to hls4ml$",
    ),
    "export --io-type with qonnx": (
        ["export", "e.onnx", "--to", "qonnx", "--from-run", "runs/good", "--io-type", "io_stream"],
        r"^--io-type: got it with --to qonnx, allowed: with --to hls4ml$",
    ),
    "export --float-as with qonnx (was ignored: the float roles stayed float)": (
        [
            "export",
            "e.onnx",
            "--to",
            "qonnx",
            "--from-run",
            "runs/good",
            "--float-as",
            "fixed(32,16)",
        ],
        r"^--float-as: got it with --to qonnx, allowed: with --to hls4ml$",
    ),
    "quantize --calibration without an auto field": (
        ["quantize", "-c", "q_fixed.toml", "--calibration", "percentile", "--out", "q"],
        r"^--calibration: got it without an activation's frac_width = 'auto' in .*q_fixed\.toml's "
        r"\[quantize\], allowed: with one",
    ),
    "--strategy other than the options' strategy": (
        ["search", "-c", "tpe.toml", "-q", "--strategy", "random"],
        r"^--strategy: got 'random' with search\.strategy\.options for 'tpe' "
        r"\(n_startup_trials\), allowed: 'tpe' \(which keeps them\) or a config without them$",
    ),
    "train --out with a newline": (
        ["train", "-c", "good.toml", "--out", "a\nb.pt"],
        r"^--out: got 'a\\nb\.pt', allowed: a path without control characters",
    ),
    "init --model a folder without .py": (
        ["init", "--model", "folder:build", "--data", "ev.py:f", "-o", "s.toml"],
        r"^--model: got 'folder:build', allowed: file\.py:function or an importable "
        r"package\.module:function \(no module 'folder' here, and a file's path ends in \.py\)$",
    ),
    "init --data no such module": (
        ["init", "--model", "ev.py:f", "--data", "no_such_module_zz.x:load", "-o", "s.toml"],
        r"^--data: got 'no_such_module_zz\.x:load', allowed: .* \(no module 'no_such_module_zz' here\)$",
    ),
    "a checkpoint of another model": (
        ["summary", "-c", "other_model.toml"],
        r"^model\.checkpoint: got checkpoint '.*mlp-digits\.pt' of model 'mlp-digits', allowed: "
        r"a checkpoint of model\.name 'cnn-digits'$",
    ),
    "a checkpoint whose shapes do not fit": (
        ["summary", "-c", "shapes.toml"],
        r"^model\.checkpoint: got checkpoint 'u\.pt', which does not fit \(size "
        r"mismatch for 0\.weight: copying a param with shape torch\.Size\(\[10, 64\]\)",
    ),
    "--config empty": (["search", "-c", "", "-q"], r"^--config: got '', allowed: a TOML file"),
    "--storage in memory": (
        ["search", "-c", "good.toml", "-q", "--storage", "sqlite://"],
        r"^--storage: got 'sqlite://' \(an in-memory database: every trial is lost at exit\)",
    ),
    "worker --storage in memory": (
        ["worker", "-c", "good.toml", "--storage", "sqlite:///:memory:"],
        r"^--storage: got 'sqlite:///:memory:' \(an in-memory database",
    ),
}


# an evaluate function whose third call (the baseline, trial 0, trial 1) fails: trial 1's
# config is recorded failed, with its error
_FAILS = """N = [0]


def f(model, batches):
    N[0] += 1
    if N[0] == 3:
        raise RuntimeError("the third call")
    return {"score": float(N[0])}
"""


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory, mlp_checkpoint: Path) -> Path:
    """A folder with a finished study in runs/good, one whose trial 1 failed in runs/fail, a
    FIFO, a link to nothing and a folder."""
    d = tmp_path_factory.mktemp("held_out")
    good = GOOD.format(ckpt=mlp_checkpoint.as_posix())
    (d / "good.toml").write_text(good)
    finished_study(d)
    (d / "ev.py").write_text(_FAILS)
    fail = good.replace('name = "random"', 'name = "brute_force"')
    fail = fail.replace(
        'accuracy = { direction = "maximize" }', 'score = { direction = "maximize" }'
    )
    (d / "fail.toml").write_text(fail + '[metrics]\nevaluate = "ev.py:f"\n')
    code = exit_status(["search", "-c", str(d / "fail.toml"), "--run-dir", str(d / "runs"), "-q"])
    assert code == 0
    assert "RuntimeError: the third call" in (d / "runs" / "fail" / "trials.jsonl").read_text()
    (d / "evals.toml").write_text(good.replace("n_trials = 2", "n_evaluations = 4"))
    for name in ("fifo", "folder"):  # train failed (or replaced the FIFO) after training
        (d / f"to_{name}.toml").write_text(good + f'[train]\ncheckpoint = "{name}"\n')
    (d / "q_fixed.toml").write_text(
        good + "[quantize.default]\ndata_in = { width = 8, frac_width = 4 }\n"
    )
    tpe = 'name = "tpe"\noptions = { n_startup_trials = 1 }'
    (d / "tpe.toml").write_text(good.replace('name = "random"', tpe))
    (d / "other_model.toml").write_text(good.replace('"mlp-digits"', '"cnn-digits"'))
    _shapes_case(d)
    os.mkfifo(d / "fifo")  # reading or writing it would block until the other end opened
    (d / "nothing").symlink_to(d / "no-such-file")
    (d / "folder").mkdir()
    return d


def _shapes_case(d: Path) -> None:
    """u.pt: a Linear(64, 10) saved as 'u.py:build', whose u.py now builds a Linear(64, 5)
    (torch's own first line named no parameter: 'Error(s) in loading state_dict')."""
    import torch

    from quantsearch.checkpoint import save_checkpoint

    save_checkpoint(
        d / "u.pt",
        torch.nn.Sequential(torch.nn.Linear(64, 10)),
        model_name="u.py:build",
        dataset="digits",
    )
    (d / "u.py").write_text(
        "import torch\n\n\ndef build():\n    return torch.nn.Sequential(torch.nn.Linear(64, 5))\n"
    )
    text = 'seed = 0\n[model]\nname = "u.py:build"\ncheckpoint = "u.pt"\n[data]\nname = "digits"\n'
    (d / "shapes.toml").write_text(text)


@pytest.fixture
def in_workdir(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    yield from unchanged_runs(workdir, monkeypatch)


@pytest.mark.parametrize("name", sorted(CONFIG_CASES))
def test_bad_config(name: str, in_workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    edit, pattern = CONFIG_CASES[name]
    case = case_folder(in_workdir, name)
    cfg = case / "good.toml"  # same stem: it names the existing study
    cfg.write_text(edit((in_workdir / "good.toml").read_text()))
    code, err = _run(["search", "-c", str(cfg), "--run-dir", "runs", "-q"], capsys)
    _check(code, err, pattern)
    if "[quantize" in cfg.read_text():
        code, err = _run(["quantize", "-c", str(cfg), "--out", str(case / "q")], capsys)
        _check(code, err, pattern)
        assert not (case / "q").exists()


@pytest.mark.parametrize("name", sorted(ARG_CASES))
def test_bad_argument(name: str, in_workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args, pattern = ARG_CASES[name]
    code, err = _run(args, capsys)
    _check(code, err, pattern)


def test_names_are_folder_names() -> None:
    assert os.sep not in "".join(CONFIG_CASES)


def test_a_skip_alone_and_a_format_alone_still_quantize(
    in_workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The refusals refuse only the contradiction: ``skip = true`` alone leaves the node float,
    a block_fp along a dimension the weight has quantizes it."""
    case = case_folder(in_workdir, "skip alone")
    text = (in_workdir / "good.toml").read_text()
    text = _add('quantize.by_name."seq_blocks.0"', "skip = true")(text)
    text = _add("quantize.by_type.linear", f"weight = {_bfp(1)}")(text)
    (case / "q.toml").write_text(text)
    code, err = _run(["quantize", "-c", str(case / "q.toml"), "--out", str(case / "q")], capsys)
    assert code == 0, err
    resolved = (case / "q" / "resolved_config.json").read_text()
    assert "seq_blocks_0" not in resolved  # skipped: float
    assert "block_fp" in resolved


def test_a_run_directory_assembled_from_two_searches(
    in_workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """runs/good's result files beside runs/fail's search_config.json: the report drew good's
    accuracy trials under fail's 'score' objective, exit 0."""
    copy = case_folder(in_workdir, "two searches") / "run"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(in_workdir / "runs" / "good", copy)
    shutil.copy(in_workdir / "runs" / "fail" / "search_config.json", copy / "search_config.json")
    before = _digest(copy)
    code, err = _run(["report", str(copy)], capsys)
    _check(
        code,
        err,
        r"^RUN_DIR: got '.*search_config\.json', not the search of the trials beside it "
        r"\(objectives \['score'\], combine 'weighted_sum'; the trials': \['accuracy'\], "
        r"'weighted_sum'\), allowed: the search_config\.json that search wrote there",
    )
    assert _digest(copy) == before  # no report drawn


def test_strategy_naming_the_configs_own_keeps_its_options(
    in_workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--strategy tpe`` on a config whose TPE has options ran TPE without them, unsaid."""
    runs = case_folder(in_workdir, "same strategy") / "runs"
    code, err = _run(
        ["search", "-c", "tpe.toml", "-q", "--strategy", "tpe", "--run-dir", str(runs)], capsys
    )
    assert code == 0, err
    record = json.loads((runs / "tpe" / "search_config.json").read_text())
    assert record["strategy"] == {"name": "tpe", "options": {"n_startup_trials": 1}}


def test_a_comparison_of_another_problem_is_not_overwritten(
    in_workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A second `compare --name x` on another space replaced the first one's files, unsaid."""
    case = case_folder(in_workdir, "compare twice")
    one = (in_workdir / "good.toml").read_text() + "[compare]\nstrategies = ['random']\nseeds = 1\n"
    (case / "a.toml").write_text(one)
    (case / "b.toml").write_text(_sub(W, "weight = [[8, 4], [6, 3]]")(one))
    args = ["-q", "--run-dir", str(case), "--name", "x"]
    code, err = _run(["compare", "-c", str(case / "a.toml"), *args], capsys)
    assert code == 0, err
    before = _digest(case / "x")
    code, err = _run(["compare", "-c", str(case / "b.toml"), *args], capsys)
    _check(
        code,
        err,
        r"^--name: got '.*x', a comparison of another problem \(its space differs\), "
        r"allowed: another --name, or the same problem$",
    )
    assert _digest(case / "x") == before
    code, err = _run(["compare", "-c", str(case / "a.toml"), *args], capsys)
    assert code == 0, err  # the same problem is compared again


def test_the_corpus_is_large() -> None:
    assert len(CONFIG_CASES) + len(ARG_CASES) >= 47
