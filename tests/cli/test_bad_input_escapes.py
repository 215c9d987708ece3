"""Bad inputs that escaped the first corpus (``test_bad_input_corpus.py``), found by running the
real entry point on generated bad inputs; each is now one ``error:`` line naming the key or
argument, exit status 2, no traceback, and an existing study beside it unchanged.

What escaped before: NUL and control characters in paths (a ValueError traceback from the
first ``stat``), thread and process counts past any machine (``n_jobs = 2**63 - 1`` hung the
thread pool's start, ``--workers 99999999999`` spawned until stopped), a bool or a duplicate
where a list of counts or names is wanted, a format list that is not a list, an op kind given
a role it lacks (refused trial by trial, under the wrong key), output paths that are empty,
folders or under a file, unchecked command-line values (``--percentile nan``, ``--seed -1``,
``--device tpu``, ``--backend nope``), damaged checkpoints (a state dict that is not one, NaN
weights), user data the model cannot take (NaN features, labels past the model's outputs,
fewer labels than samples, string labels) and a damaged HDF5 file.

Every case runs ``quantsearch.cli.main`` in-process in a folder holding a finished study
(``runs/good``); the study's files are hashed before and after each case.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from tests.cli.bad_input import ACC, GOOD, SP, W, finished_study
from tests.cli.bad_input import add as _add
from tests.cli.bad_input import check_one_line as _check
from tests.cli.bad_input import digest as _digest
from tests.cli.bad_input import run_cli as _run
from tests.cli.bad_input import sub as _sub


def _ckpt(value: str) -> Callable[[str], str]:
    return lambda text: re.sub(r'checkpoint = ".*"', lambda _: f'checkpoint = "{value}"', text)


# name -> (edit of the good config, regex the error line must match after "error: ");
# run as `search -c CASE/good.toml -q` (its stem names the existing study)
CONFIG_CASES: dict[str, tuple[Callable[[str], str], str]] = {
    "run_dir NUL": (_add("", 'run_dir = "ru\\u0000ns"'), r"^run_dir: got 'ru\\x00ns', allowed"),
    "run_dir newline": (_add("", 'run_dir = "ru\\nns"'), r"^run_dir: got 'ru\\nns', allowed"),
    "checkpoint NUL": (_ckpt("a\\u0000b.pt"), r"^model\.checkpoint: got"),
    "train.checkpoint NUL": (_add("train", 'checkpoint = "a\\u0000"'), r"^train\.checkpoint"),
    "model name NUL": (_sub('name = "mlp-digits"', 'name = "mlp\\u0000"'), r"^model\.name"),
    "train.device cuda:x": (
        _add("train", 'device = "cuda:x"'),
        r"^train\.device: got 'cuda:x', allowed: 'auto', 'cpu', 'cuda' or 'cuda:N'$",
    ),
    "train.device cuda:-1": (_add("train", 'device = "cuda:-1"'), r"^train\.device"),
    "train.epochs huge": (_add("train", "epochs = 9223372036854775807"), r"^train\.epochs"),
    "n_jobs huge": (
        _add("search", "n_jobs = 9223372036854775807"),
        r"^search\.n_jobs: got 9223372036854775807, allowed: an integer in \[1, 1024\]$",
    ),
    "n_jobs 1025": (
        _add("search", "n_jobs = 1025"),
        r"^search\.n_jobs: got 1025, allowed: an integer in \[1, 1024\]$",
    ),
    "torch_threads huge": (
        _add("search", "torch_threads = 9223372036854775807"),
        r"^search\.torch_threads: got 9223372036854775807, allowed: an integer in \[1, 1024\]$",
    ),
    "eval_samples huge": (
        _add("data", "eval_samples = 9223372036854775807"),
        r"^data\.eval_samples: got 9223372036854775807, allowed: an integer in \[1, 2147483647\]$",
    ),
    "calibration_samples huge": (
        _add("data", "calibration_samples = 9223372036854775807"),
        r"^data\.calibration_samples",
    ),
    "val_fraction too small for a class each": (
        _add("data", "val_fraction = 1e-9"),
        r"^data\.val_fraction, data\.test_fraction: got 1e-09 and 0\.2",
    ),
    "test_fraction too small for a class each": (
        _add("data", "test_fraction = 1e-9"),
        r"^data\.val_fraction, data\.test_fraction: got 0\.2 and 1e-09",
    ),
    "storage NUL": (_add("search", 'storage = "sqlite:///a\\u0000b"'), r"^search\.storage"),
    "storage not a URL": (_add("search", 'storage = "bogus"'), r"^search\.storage: got 'bogus'"),
    "metrics twice": (
        _add("search", 'metrics = ["bitops", "bitops"]'),
        r"^search\.metrics: got 'bitops' twice",
    ),
    "every objective weight 0": (
        _sub(ACC, 'accuracy = { direction = "maximize", weight = 0 }'),
        r"^search\.objectives: got every weight 0, allowed: at least one weight > 0",
    ),
    "space format a number": (_add("search.space", "format = 5"), r"^search\.space\.format: got 5"),
    "space format unknown": (
        _add("search.space", 'format = ["fixd"]'),
        r"^search\.space\.format: got 'fixd', allowed: one of \[",
    ),
    "space format empty": (
        _add("search.space", "format = []"),
        r"^search\.space\.format: got an empty list, allowed: a format name or a non-empty list of them",
    ),
    "kind format a number": (_add(SP, "format = 5"), rf"^{re.escape(SP)}\.format: got 5"),
    "kind format list of numbers": (_add(SP, "format = [5]"), rf"^{re.escape(SP)}\.format"),
    "field table format a number": (
        _sub(W, "weight = { format = 5, width = [8], frac_width = [4] }"),
        rf"^{re.escape(SP)}\.weight\.format: got 5",
    ),
    "relu given a weight": (
        _add("search.space.choices.relu", "weight = [[8, 4]]"),
        r"^search\.space\.choices\.relu\.weight: got choices for the weight of relu, allowed: "
        r"its roles \['data_in', 'data_out'\]",
    ),
    "compare budgets bool": (_add("compare", "budgets = [true]"), r"^compare\.budgets"),
    "compare budgets twice": (
        _add("compare", "budgets = [4, 4]"),
        r"^compare\.budgets: got 4 twice",
    ),
    "compare budgets huge": (
        _add("compare", "budgets = [9223372036854775807]"),
        r"^compare\.budgets",
    ),
    "compare strategies twice": (
        _add("compare", 'strategies = ["random", "random"]'),
        r"^compare\.strategies: got 'random' twice",
    ),
    "compare strategies alias twice": (
        _add("compare", 'strategies = ["brute_force", "brute-force"]'),
        r"^compare\.strategies: got 'brute_force' twice",
    ),
    "compare strategies a table": (
        _add("compare", 'strategies = [{ name = "tpe" }]'),
        r"^compare\.strategies: got \{'name': 'tpe'\}",
    ),
    "compare seeds huge": (_add("compare", "seeds = 9223372036854775807"), r"^compare\.seeds"),
}

# name -> (arguments, regex): run in the folder of the finished study (good.toml, q.toml there)
ARG_CASES: dict[str, tuple[list[str], str]] = {
    # NUL: no shell passes one, but main([...]) can; every stat() of it raised ValueError
    "search --run-dir NUL": (["search", "-c", "good.toml", "-q", "--run-dir", "a\0b"], r"^--run-dir: got 'a\\x00b'"),
    "search --load NUL": (["search", "-c", "good.toml", "-q", "--load", "a\0b"], r"^--load: got"),
    "search -c NUL": (["search", "-c", "a\0b", "-q"], r"^--config: got"),
    "search --storage NUL": (["search", "-c", "good.toml", "-q", "--storage", "sqlite:///a\0"], r"^--storage: got"),
    "search --study=NUL": (["search", "-c", "good.toml", "-q", "--study=a\0"], r"^--study: got"),
    "report NUL": (["report", "a\0"], r"^RUN_DIR: got"),
    "export OUT NUL": (["export", "--to", "qonnx", "--from-run", "runs/good", "a\0b"], r"^OUT: got"),
    "quantize --from-run NUL": (["quantize", "--from-run", "a\0"], r"^--from-run: got"),
    "init -o NUL": (["init", "--model", "m.py:build", "--data", "d.py:load", "-o", "a\0"], r"^--output: got"),
    # counts of threads and processes
    "search --n-jobs huge": (["search", "-c", "good.toml", "-q", "--n-jobs", "99999999999"], r"^--n-jobs: "),
    "search --workers huge": (["search", "-c", "good.toml", "-q", "--workers", "99999999999"], r"^--workers: "),
    "worker --workers 1025": (["worker", "-c", "good.toml", "--workers", "1025"], r"^--workers: "),
    # output paths, checked before any work
    "quantize --out under a file": (["quantize", "-c", "q.toml", "--out", "afile.txt/x"], r"^--out: got 'afile\.txt/x' \('afile\.txt' is a file\)"),
    "quantize --out empty": (["quantize", "-c", "q.toml", "--out", ""], r"^--out: got '', allowed: a non-empty value$"),
    "quantize --from-run empty": (["quantize", "--from-run", ""], r"^--from-run: got '', allowed: a non-empty value$"),
    "train --out empty": (["train", "-c", "good.toml", "--out", ""], r"^--out: got '', allowed: a file name"),
    "train --out under a file": (["train", "-c", "good.toml", "--out", "afile.txt/x.pt"], r"^--out: got 'afile\.txt' \('afile\.txt' is a file\)"),
    "export OUT empty": (["export", "--to", "qonnx", "--from-run", "runs/good", ""], r"^OUT: got ''"),
    "export OUT under a file": (["export", "--to", "qonnx", "--from-run", "runs/good", "afile.txt/m.onnx"], r"^OUT: got 'afile\.txt' \('afile\.txt' is a file\)"),
    "compare --run-dir empty": (["compare", "-c", "good.toml", "-q", "--run-dir", ""], r"^--run-dir: got '', allowed: a non-empty value$"),
    "compare --run-dir a file": (["compare", "-c", "good.toml", "-q", "--run-dir", "afile.txt"], r"^--run-dir: got 'afile\.txt' \('afile\.txt' is a file\)"),
    "demo --run-dir a file": (["demo", "--run-dir", "afile.txt"], r"^--run-dir: got 'afile\.txt' \('afile\.txt' is a file\)"),
    # values click took as given
    "quantize --percentile nan": (["quantize", "-c", "q.toml", "--percentile", "nan"], r"^--percentile: got 'nan', allowed: a number in \(0, 100\]"),
    "quantize --percentile 200": (["quantize", "-c", "q.toml", "--percentile", "200"], r"^--percentile: got '200'"),
    "quantize --percentile 0": (["quantize", "-c", "q.toml", "--percentile", "0"], r"^--percentile: got '0'"),
    "finetune --seed -1": (["finetune", "--from-run", "runs/good", "--seed", "-1"], r"^--seed: "),
    "finetune --seed 2**32": (["finetune", "--from-run", "runs/good", "--seed", "4294967296"], r"^--seed: "),
    "finetune --device tpu": (["finetune", "--from-run", "runs/good", "--device", "tpu"], r"^--device: got 'tpu', allowed: 'auto', 'cpu', 'cuda' or 'cuda:N'$"),
    "finetune --device empty": (["finetune", "--from-run", "runs/good", "--device", ""], r"^--device: got '', allowed: 'auto', 'cpu'"),
    "export --backend unknown": (["export", "--to", "hls4ml", "--from-run", "runs/good", "--backend", "nope", "out"], r"^--backend: "),
    "quantize a table that sets nothing": (["quantize", "-c", "qe.toml"], r"^quantize: got a table that sets no role"),
    "export a table that sets nothing": (["export", "--to", "qonnx", "-c", "qe.toml", "m.onnx"], r"^quantize: got a table that sets no role"),
    "summary --sensitivity without [search]": (["summary", "-c", "q0.toml", "--sensitivity"], r"^--sensitivity: got q0\.toml, which has no \[search\] table"),
    "export --float-as with impossible fields": (["export", "--to", "hls4ml", "--from-run", "runs/good", "--float-as", "fixed(1000,3)", "prj"], r"^--float-as: got 'fixed\(1000,3\)', allowed: a fixed format whose width is"),
    "compare --seeds past 2**31-1": (["compare", "-c", "good.toml", "-q", "--seeds", "99999999999999"], r"^--seeds: "),
    "compare --trials past 2**31-1": (["compare", "-c", "good.toml", "-q", "--trials", "99999999999999"], r"^--trials: "),
    "config nested 5000 deep": (["search", "-c", "deep.toml", "-q"], r"^--config: got deep\.toml, which nests arrays or tables too deeply"),
    "compare --strategies twice": (["compare", "-c", "good.toml", "-q", "--strategies", "random,random"], r"^--strategies: got 'random' twice"),
    "compare --strategies alias twice": (["compare", "-c", "good.toml", "-q", "--strategies", "tpe,brute-force,brute_force"], r"^--strategies: got 'brute_force' twice"),
    "init --model with a quote": (["init", "--model", 'pkg".mod:build', "--data", "d.py:load", "-o", "x.toml"], r"^--model: got 'pkg\".mod:build', allowed: file\.py:function"),
}  # fmt: skip


def _state(payload: Callable[[dict[str, object]], object]) -> Callable[[Path, Path], None]:
    """Write ``payload(good checkpoint)`` with torch.save."""

    def write(good: Path, out: Path) -> None:
        torch.save(payload(torch.load(good, weights_only=True)), out)

    return write


def _nan_weights(p: dict[str, object]) -> dict[str, object]:
    sd = dict(p["state_dict"])  # type: ignore[call-overload]
    name = next(k for k, v in sd.items() if v.is_floating_point())
    sd[name] = torch.full_like(sd[name], float("nan"))
    return {**p, "state_dict": sd}


# name -> (writes a damaged checkpoint from the good one, regex); run as `search --load CKPT`
CHECKPOINT_CASES: dict[str, tuple[Callable[[Path, Path], None], str]] = {
    "state_dict a number": (_state(lambda p: {**p, "state_dict": 5}), r"^--load: .* holds a state_dict of int"),
    "state_dict a list": (_state(lambda p: {**p, "state_dict": [torch.ones(1)]}), r"^--load: .* holds a state_dict of list"),
    "state_dict of numbers": (
        _state(lambda p: {**p, "state_dict": dict.fromkeys(p["state_dict"], 1)}),  # type: ignore[arg-type]
        r"^--load: .* holds a state_dict of dict",
    ),
    "NaN weights": (_state(_nan_weights), r"^--load: .* has NaN or infinite values in 'seq_blocks\.\d+\.\w+'"),
    "metrics a number": (_state(lambda p: {**p, "metrics": 5}), r"^--load: .* has metrics = int"),
    "config a list": (_state(lambda p: {**p, "config": [1]}), r"^--load: .* has config = list"),
    "versions a string": (_state(lambda p: {**p, "versions": "x"}), r"^--load: .* has versions = str"),
    # torch warns about the protocol before it fails: only the error line is shown
    "a pickle of protocol 4": (
        lambda good, out: out.write_bytes(b"\x80\x04\x95\x05\x00\x00\x00\x00\x00\x00\x00\x8c\x01a\x94."),
        r"^--load: .* is not a quantsearch checkpoint",
    ),
}  # fmt: skip

NET = "import torch.nn as nn\n\ndef build():\n    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))\n"
X = "x = torch.randn(200, 4, generator=torch.Generator().manual_seed(0))\ny = torch.arange(200) % 3\n"

# name -> (body of d.py after X, regex); run as `train` on net.py:build (3 outputs, 4 features)
DATA_CASES: dict[str, tuple[str, str]] = {
    "NaN features": ("def load():\n    x[3, 1] = float('nan')\n    return x, y\n", r"^data\.name: got 'd\.py:load', which returned features with 1 NaN or infinite value"),
    "inf features": ("def load():\n    x[0, 0] = float('inf')\n    return x, y\n", r"^data\.name: .* features with 1 NaN or infinite"),
    "inf labels": ("def load():\n    z = y.float()\n    z[5] = float('inf')\n    return x, z\n", r"^data\.name: .* labels with 1 NaN or infinite"),
    "float64 features past float32": ("def load():\n    return x.double() * 1e300, y\n", r"^data\.name: .* features with 800 value\(s\) past float32's range"),
    "complex features": ("def load():\n    return x.to(torch.complex64), y\n", r"^data\.name: .* complex features"),
    "string labels": ("def load():\n    return x, np.array(['a', 'b'] * 100)\n", r"^data\.name: .* labels that are not numbers"),
    "fewer labels than samples": ("def load():\n    return x, y[:150]\n", r"^data\.name: .* 200 samples but 150 labels"),
    "labels past the model's outputs": ("def load():\n    return x, torch.arange(200) % 7\n", r"^data\.name: got 7 classes \(labels 0\.\.6\) but model 'net\.py:build' gives 3 outputs per sample"),
    "wrong feature count": ("def load():\n    return torch.randn(200, 5), y\n", r"^data\.name: got samples of shape \(5,\) \(torch\.float32\), which do not fit model 'net\.py:build'"),
    "integer features": ("def load():\n    return torch.randint(0, 5, (200, 4)), y\n", r"^data\.name: got samples of shape \(4,\) \(torch\.int64\), which do not fit"),
    "a label of 10**12": ("def load():\n    z = y.clone()\n    z[0] = 10**12\n    return {'train': (x, z), 'val': (x, y), 'test': (x, y)}\n", r"^data\.name: .* a label of 1000000000000, allowed: class indices below"),
    "class_names a string": ("def load():\n    return {'train': (x, y), 'val': (x, y), 'test': (x, y), 'class_names': 'abc'}\n", r"^data\.name: .* class_names = 'abc', allowed: a list of strings"),
    "class_names a number": ("def load():\n    return {'train': (x, y), 'val': (x, y), 'test': (x, y), 'class_names': 5}\n", r"^data\.name: .* class_names = 5"),
    "class_names twice": ("def load():\n    return {'train': (x, y), 'val': (x, y), 'test': (x, y), 'class_names': ['a', 'a', 'b']}\n", r"^data\.name: .* naming 'a' twice"),
}  # fmt: skip

USER_CONFIG = """[model]
name = "net.py:build"
[data]
name = "d.py:load"
[search]
n_trials = 2
strategy = "random"
[search.space.choices.linear]
weight = [[8, 4]]
[search.objectives]
accuracy = { direction = "maximize" }
"""


def _folder(root: Path, name: str) -> Path:
    case = root / "cases" / re.sub(r"\W+", "_", name)
    case.mkdir(parents=True, exist_ok=True)
    return case


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory, mlp_checkpoint: Path) -> Path:
    """A folder with a finished study in runs/good, a [quantize] config, a file and a folder."""
    d = tmp_path_factory.mktemp("escapes")
    good = GOOD.format(ckpt=mlp_checkpoint.as_posix())
    (d / "good.toml").write_text(good)
    (d / "q.toml").write_text(good + "[quantize.default]\nweight = { width = 8, frac_width = 4 }\n")
    (d / "qe.toml").write_text(good + "[quantize.default]\n")
    (d / "q0.toml").write_text(good.split("[search]")[0])
    (d / "deep.toml").write_text(good + "x = " + "[" * 5000 + "]" * 5000 + "\n")
    (d / "afile.txt").write_text("not a folder, not a checkpoint\n")
    (d / "adir").mkdir()
    finished_study(d)
    return d


@pytest.fixture
def in_workdir(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(workdir)
    before = (_digest(workdir / "runs"), (workdir / "afile.txt").read_bytes())
    yield workdir  # type: ignore[misc]
    after = (_digest(workdir / "runs"), (workdir / "afile.txt").read_bytes())
    assert after == before, "an existing study (or a file the case named) was changed"


@pytest.mark.parametrize("name", sorted(CONFIG_CASES))
def test_bad_config(name: str, in_workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    edit, pattern = CONFIG_CASES[name]
    cfg = _folder(in_workdir, name) / "good.toml"  # same stem: it names the existing study
    cfg.write_text(edit((in_workdir / "good.toml").read_text()))
    code, err = _run(["search", "-c", str(cfg), "-q"], capsys)
    _check(code, err, pattern)


@pytest.mark.parametrize("name", sorted(ARG_CASES))
def test_bad_argument(name: str, in_workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args, pattern = ARG_CASES[name]
    code, err = _run(args, capsys)
    _check(code, err, pattern)


def test_finetune_on_cuda_without_cuda(
    in_workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The option is named, not ``train.device`` (the message of the config key)."""
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    code, err = _run(["finetune", "--from-run", "runs/good", "--device", "cuda"], capsys)
    _check(code, err, r"^--device: got 'cuda', allowed: 'cpu' or 'auto'")


@pytest.mark.parametrize("name", sorted(CHECKPOINT_CASES))
def test_damaged_checkpoint(
    name: str,
    in_workdir: Path,
    mlp_checkpoint: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    write, pattern = CHECKPOINT_CASES[name]
    ckpt = _folder(in_workdir, name) / "damaged.pt"
    write(mlp_checkpoint, ckpt)
    code, err = _run(["search", "-c", "good.toml", "-q", "--load", str(ckpt)], capsys)
    _check(code, err, pattern)


@pytest.mark.parametrize("name", sorted(DATA_CASES))
def test_bad_user_data(name: str, in_workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    body, pattern = DATA_CASES[name]
    case = _folder(in_workdir, name)
    (case / "net.py").write_text(NET)
    (case / "d.py").write_text("import numpy as np\nimport torch\n\n" + X + body)
    (case / "c.toml").write_text(USER_CONFIG)
    out = case / "m.pt"
    code, err = _run(
        ["train", "-c", str(case / "c.toml"), "--epochs", "1", "--out", str(out)], capsys
    )
    _check(code, err, pattern)
    assert not out.exists()


def test_damaged_hdf5_file(in_workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """HDF5's signature then garbage (a truncated download): h5py's OSError was a traceback."""
    case = _folder(in_workdir, "damaged hdf5")
    (case / "jets.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 100)
    (case / "c.toml").write_text(
        '[model]\nname = "jsc-tiny"\n[data]\nname = "jsc"\npath = "jets.h5"\n'
    )
    code, err = _run(["train", "-c", str(case / "c.toml"), "--out", str(case / "m.pt")], capsys)
    _check(
        code, err, r"^data\.path: '.*jets\.h5' is (not a readable HDF5 file|HDF5, which needs h5py)"
    )


@pytest.mark.parametrize(
    ("options", "pattern"),
    [
        ('name = "nsga2"\noptions = { population_size = 1 }', r"population_size: got 1, "),
        ('name = "qmc"\noptions = { qmc_type = "bogus" }', r"qmc_type: got 'bogus', "),
    ],
)
def test_rejected_sampler_options_warn_nothing(
    options: str,
    pattern: str,
    in_workdir: Path,
    recwarn: pytest.WarningsRecorder,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A warning on standard error before the error line made two lines: NSGA's "population
    more than a quarter of the budget" advice and QMCSampler's ExperimentalWarning came first."""
    cfg = _folder(in_workdir, options) / "good.toml"
    cfg.write_text(_sub('name = "random"', options)((in_workdir / "good.toml").read_text()))
    code, err = _run(["search", "-c", str(cfg), "-q"], capsys)
    _check(code, err, r"^search\.strategy\.options\." + pattern)
    assert [str(w.message) for w in recwarn] == []


@pytest.mark.parametrize("name", ["", "a\\nb", "a\\u0000"])
def test_user_metric_names(name: str, in_workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An empty name or one with control characters (a column of trials.csv, a row of the
    report) is refused at load; it was an error only after the evaluate function ran."""
    case = _folder(in_workdir, "metric name " + name)
    (case / "t.py").write_text("def f(model, batches):\n    return {'x': 1.0}\n")
    text = (in_workdir / "good.toml").read_text()
    text += f'[metrics]\nevaluate = "t.py:f"\ndirections = {{ "{name}" = "minimize" }}\n'
    (case / "good.toml").write_text(text)
    code, err = _run(["search", "-c", str(case / "good.toml"), "-q"], capsys)
    _check(code, err, r'^metrics\.directions\.".*": got .*, allowed: a non-empty name without')


# name -> damage done to a copy of the finished run directory; run as `report COPY`
REPORT_CASES: dict[str, tuple[Callable[[Path], None], str]] = {
    "search_config.json a list": (
        lambda d: (d / "search_config.json").write_text("[]"),
        r"^RUN_DIR: got '.*search_config\.json', which holds a JSON list, allowed: an object",
    ),
    "images a file": (
        lambda d: (shutil.rmtree(d / "images"), (d / "images").write_text("x")),
        r"^RUN_DIR: got '.*images' \(a file\), allowed: the images `quantsearch` writes there",
    ),
}


@pytest.mark.parametrize("name", sorted(REPORT_CASES))
def test_damaged_run_dir(name: str, in_workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    damage, pattern = REPORT_CASES[name]
    copy = _folder(in_workdir, name) / "run"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(in_workdir / "runs" / "good", copy)
    damage(copy)
    code, err = _run(["report", str(copy)], capsys)
    _check(code, err, pattern)
