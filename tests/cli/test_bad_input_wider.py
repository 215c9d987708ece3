"""Bad inputs the first two corpora (``test_bad_input_corpus.py``, ``test_bad_input_escapes.py``)
left open, found by fuzzing every strategy option, constraint bound, format field, CLI count and
run-directory file; each is now one ``error:`` line naming the key or argument, exit status 2,
no traceback, and an existing study beside it unchanged.

What escaped before: strategy options checked only when the sampler was built, after the model
and data had loaded, and only those Optuna itself checks at construction (a TPE
``n_startup_trials = -1``, a GP ``n_startup_trials = -3`` and a sensitivity ``jitter = -1``
ran; ``keep = 0``, ``ridge = nan`` and ``constraints_func = 1`` were internal-error tracebacks
mid-search; ``gamma = 0.5`` printed Optuna's FutureWarning and ran); constraint bounds no
value can meet or every value meets (``max_ratio = -0.5``, ``accuracy = { min = 2.0 }``); a
block_fp ``block_dim`` the tensor lacks, or a ``block_size`` of 10**14 (every trial failed,
exit 0); a user metric declared but never returned, whose error did not name the key;
``report`` drawing a run directory whose model.pt is garbage or whose trials.csv is a folder;
``finetune --epochs 1e9``, ``summary --repeats 1e9`` (days of work) and ``summary --batch``
past the validation split (silently fewer samples); an option given twice (the last kept);
``compare --seeds 2**31-1`` (a MemoryError); objective weights and learning rates that overflow;
a weight on a Pareto objective; compare budgets past a run's budget; a run directory whose
journal is a folder or a dangling link (written through, outside the run directory); user code
calling ``sys.exit(0)`` (the command's silent success).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.cli.bad_input import ACC, GOOD, W, case_folder, finished_study, unchanged_runs
from tests.cli.bad_input import add as _add
from tests.cli.bad_input import check_one_line as _check
from tests.cli.bad_input import run_cli as _run
from tests.cli.bad_input import sub as _sub

OPT = r"^search\.strategy\.options\."


def _strategy(name: str, options: str) -> Callable[[str], str]:
    return _sub('name = "random"', f'name = "{name}"\noptions = {{ {options} }}')


def _pareto(text: str) -> str:
    return text.replace(ACC, ACC + '\nbitops = { direction = "minimize" }\ncombine = "pareto"')


def _bfp(fields: str, role: str = "weight") -> Callable[[str], str]:
    fmt = f'{{ format = "block_fp", mantissa_width = 4, {fields} }}'
    if role == "weight":
        return _sub(W, f"weight = [{fmt}]")
    return _sub(W, f"{W}\n{role} = [{fmt}]")


# name -> (edit of the good config, regex the error line must match after "error: ")
CONFIG_CASES: dict[str, tuple[Callable[[str], str], str]] = {
    # every strategy's options: names, types and ranges, at load
    "tpe gamma float": (_strategy("tpe", "gamma = 0.5"), OPT + r"gamma: got 0\.5, allowed: opt"),
    "tpe weights": (_strategy("tpe", "weights = 1"), OPT + r"weights: got 1, allowed: options"),
    "tpe n_startup_trials negative": (
        _strategy("tpe", "n_startup_trials = -1"),
        OPT + r"n_startup_trials: got -1, allowed: an integer in \[0, 2147483647\]",
    ),
    "tpe n_startup_trials huge": (
        _strategy("tpe", "n_startup_trials = 99999999999999999"),
        OPT + r"n_startup_trials: got 99999999999999999",
    ),
    "tpe n_startup_trials float": (
        _strategy("tpe", "n_startup_trials = 5.0"),
        OPT + r"n_startup_trials: got 5\.0, allowed: an integer",
    ),
    "tpe n_ei_candidates zero": (_strategy("tpe", "n_ei_candidates = 0"), OPT + r"n_ei_cand"),
    "tpe n_ei_candidates 1e9": (
        _strategy("tpe", "n_ei_candidates = 1_000_000_000"),
        OPT + r"n_ei_candidates: got 1000000000, allowed: an integer in \[1, 100000\]",
    ),
    "tpe prior_weight negative": (_strategy("tpe", "prior_weight = -1.0"), OPT + r"prior_w"),
    "tpe prior_weight nan": (_strategy("tpe", "prior_weight = nan"), OPT + r"prior_weight"),
    "tpe multivariate int": (_strategy("tpe", "multivariate = 1"), OPT + r"multivariate: got 1"),
    "tpe group without multivariate": (
        _strategy("tpe", "group = true, multivariate = false"),
        OPT + r"group: got true with multivariate = false, allowed: group = true with multi",
    ),
    "tpe constraints_func": (_strategy("tpe", "constraints_func = 1"), OPT + r"constraints_f"),
    "tpe seed": (_strategy("tpe", "seed = 3"), OPT + r"seed: got 3, allowed: options"),
    "nsga2 population_size 1": (_strategy("nsga2", "population_size = 1"), OPT + r"populat"),
    "nsga2 population_size huge": (
        _strategy("nsga2", "population_size = 9223372036854775807"),
        OPT + r"population_size",
    ),
    "nsga2 mutation_prob 2": (_strategy("nsga2", "mutation_prob = 2.0"), OPT + r"mutation_p"),
    "nsga2 crossover_prob inf": (_strategy("nsga2", "crossover_prob = inf"), OPT + r"crossov"),
    "nsga2 swapping_prob -0.5": (_strategy("nsga2", "swapping_prob = -0.5"), OPT + r"swapping"),
    "nsga2 crossover object": (_strategy("nsga2", 'crossover = "uniform"'), OPT + r"crossover:"),
    "nsga3 dividing_parameter 0": (_strategy("nsga3", "dividing_parameter = 0"), OPT + r"divid"),
    "nsga3 dividing_parameter explodes": (
        lambda t: _pareto(_strategy("nsga3", "dividing_parameter = 100000")(t)),
        OPT + r"dividing_parameter: got 100000, which makes 100,001 reference points for 2 obj",
    ),
    "nsga3 reference_points ragged": (
        _strategy("nsga3", "reference_points = [[0, 1], [1]]"),
        OPT + r"reference_points: got \[\[0, 1\], \[1\]\], allowed: a list of points",
    ),
    "nsga3 reference_points dimension": (
        lambda t: _pareto(_strategy("nsga3", "reference_points = [[0, 1, 2]]")(t)),
        OPT + r"reference_points: got points of 3 coordinates, allowed: 2 \(one per objective",
    ),
    "nsga3 reference_points nan": (
        _strategy("nsga3", "reference_points = [[nan]]"),
        OPT + r"reference_points",
    ),
    "qmc qmc_type unknown": (
        _strategy("qmc", 'qmc_type = "foo"'),
        OPT + r"qmc_type: got 'foo', allowed: one of \['sobol', 'halton'\]",
    ),
    "qmc independent_sampler": (_strategy("qmc", "independent_sampler = 1"), OPT + r"independ"),
    "gp n_startup_trials negative": (_strategy("gp", "n_startup_trials = -3"), OPT + r"n_start"),
    "gp deterministic_objective string": (
        _strategy("gp", 'deterministic_objective = "no"'),
        OPT + r"deterministic_objective: got 'no', allowed: true or false",
    ),
    "random any option": (
        _strategy("random", "seed = 3"),
        OPT + r"seed: got 3, allowed: no options \(it takes none\)",
    ),
    "grid any option": (_strategy("grid", "shuffle = true"), OPT + r"shuffle: got True, allowed"),
    "local any option": (_strategy("local", "restarts = 2"), OPT + r"restarts: got 2, allowed: no"),
    "brute_force shuffle int": (_strategy("brute_force", "shuffle = 1"), OPT + r"shuffle: got 1"),
    "sensitivity jitter negative": (
        _strategy("sensitivity", "jitter = -1.0"),
        OPT + r"jitter: got -1\.0, allowed: a finite number in \[0, 10\]",
    ),
    "sensitivity keep zero": (_strategy("sensitivity", "keep = 0"), OPT + r"keep: got 0"),
    "sensitivity keep string": (_strategy("sensitivity", 'keep = "a"'), OPT + r"keep: got 'a'"),
    "sensitivity ridge nan": (_strategy("sensitivity", "ridge = nan"), OPT + r"ridge: got nan"),
    "sensitivity unknown": (_strategy("sensitivity", "nope = 1"), OPT + r"nope: got 1, allowed"),
    "options an array": (
        _sub('name = "random"', 'name = "tpe"\noptions = [1]'),
        r"search\.strategy\.options",
    ),
    # constraint bounds some value can meet and some can break
    "max_ratio negative": (
        _add("search.constraints", "bitops = { max_ratio = -0.5 }"),
        r"^search\.constraints\.bitops\.max_ratio: got -0\.5, allowed: a bound > 0 for bitops",
    ),
    "min_ratio negative": (
        _add("search.constraints", "model_size_bits = { min_ratio = -1 }"),
        r"^search\.constraints\.model_size_bits\.min_ratio: got -1\.0",
    ),
    "cost max negative": (
        _add("search.constraints", "bitops = { max = -1 }"),
        r"^search\.constraints\.bitops\.max: got -1\.0, allowed: a bound > 0",
    ),
    "accuracy min above 1": (
        _add("search.constraints", "accuracy = { min = 2.0 }"),
        r"^search\.constraints\.accuracy\.min: got 2\.0, allowed: a bound in \(0, 1\] for acc",
    ),
    "accuracy_drop above 1": (
        _add("search.constraints", "accuracy_drop = { max = 5 }"),
        r"^search\.constraints\.accuracy_drop\.max: got 5\.0, allowed: a bound in \[0, 1\)",
    ),
    # block_fp: a block_dim the tensor has, a block_size that fits in memory
    "block_dim past a weight": (
        _bfp("block_dim = 2"),
        r"^search\.space\.choices\.linear\.weight\[0\]\.block_dim: got 2, allowed: -2 to 1 "
        r"\(the weight of node 'seq_blocks_0' is a 2-d tensor of shape \(64, 64\)\)",
    ),
    "block_dim before a weight": (
        _bfp("block_dim = -3"),
        r"^search\.space\.choices\.linear\.weight\[0\]\.block_dim: got -3, allowed: -2 to 1",
    ),
    "block_dim past an input": (
        _bfp("block_dim = 2", "data_in"),
        r"^search\.space\.choices\.linear\.data_in\[0\]\.block_dim: got 2, allowed: -2 to 1 "
        r"\(the data_in of node 'seq_blocks_0' is a 2-d tensor",
    ),
    "block_dim 99": (
        _bfp("block_dim = 99"),
        r"weight\[0\]\.block_dim: got 99, allowed: an integer in \[-64, 63\]$",
    ),
    "block_size huge": (
        _bfp("block_size = 99999999999999"),
        r"weight\[0\]\.block_size: got 99999999999999, allowed: an integer in \[1, 65536\]$",
    ),
    "objective weight 1e308": (
        _sub(ACC, 'accuracy = { direction = "maximize", weight = 1e308 }'),
        r"^search\.objectives\.accuracy\.weight: got 1e\+308, allowed: at most 1e\+06",
    ),
    "fidelity eta huge": (
        _add("search", 'fidelity = { method = "successive_halving", eta = 99999999999 }'),
        r"^search\.fidelity\.eta: got 99999999999, allowed: an integer in \[2, 2147483647\]$",
    ),
    "weight with combine = pareto": (
        _sub(ACC, ACC + '\nbitops = { direction = "minimize", weight = 2 }\ncombine = "pareto"'),
        r"^search\.objectives\.bitops\.weight: got .* with combine = 'pareto', allowed: no weight",
    ),
    "minifloat exponent_bias 1e13": (
        _sub(
            W,
            'weight = [{ format = "minifloat", exponent_width = 4, mantissa_width = 3, '
            "exponent_bias = 9999999999999 }]",
        ),
        r"weight\[0\]\.exponent_bias: got 9999999999999, allowed: an integer in \[-126, 164\] "
        r"for exponent_width = 4",
    ),
    "log exponent_bias -1000": (
        _sub(W, 'weight = [{ format = "log", exponent_width = 4, exponent_bias = -1000 }]'),
        r"weight\[0\]\.exponent_bias: got -1000, allowed: an integer in \[-126, 164\]",
    ),
    # AdamW: lr past 10 overflowed float32 (a traceback); lr x weight_decay past 1 trained NaN
    "train.lr 1e308": (
        _add("train", "lr = 1e308"),
        r"^train\.lr: got 1e\+308, allowed: a finite number in \[1e-10, 10\.0\]$",
    ),
    "train.weight_decay 1e308": (
        _add("train", "weight_decay = 1e308"),
        r"^train\.weight_decay: got 1e\+308 with lr = 0\.003, allowed: at most 1 / lr = 333",
    ),
    # counts of work with upper bounds
    "compare.seeds 5000": (
        _add("compare", "seeds = 5000"),
        r"^compare\.seeds: got 5000, allowed: an integer in \[1, 1000\]$",
    ),
    "train.epochs 1e9": (
        _add("train", "epochs = 1_000_000_000"),
        r"^train\.epochs: got 1000000000, allowed: an integer in \[1, 10000\]$",
    ),
}

# name -> (arguments, regex); run in the folder holding runs/good
ARG_CASES: dict[str, tuple[list[str], str]] = {
    "finetune --epochs 1e9": (
        ["finetune", "--from-run", "runs/good", "--epochs", "1000000000"],
        r"^--epochs: got 1000000000, allowed: an integer in the range 1<=x<=10000",
    ),
    "train --epochs 1e9": (
        ["train", "-c", "good.toml", "--epochs", "1000000000"],
        r"^--epochs: got 1000000000, allowed: an integer in the range 1<=x<=10000",
    ),
    "summary --repeats 1e9": (
        ["summary", "-c", "good.toml", "--latency", "--repeats", "1000000000"],
        r"^--repeats: got 1000000000, allowed: 1 to 100000$",
    ),
    "summary --warmup 1e9": (
        ["summary", "-c", "good.toml", "--latency", "--warmup", "1000000000"],
        r"^--warmup: got 1000000000, allowed: 0 to 100000$",
    ),
    "summary --batch past the split": (
        ["summary", "-c", "good.toml", "--batch", "100000"],
        r"^--batch: got 100000, allowed: 1 to \d+ \(the validation split's samples\)",
    ),
    "summary --latency-batch past the split": (
        ["summary", "-c", "good.toml", "--latency", "--latency-batch", "100000"],
        r"^--latency-batch: got 100000, allowed: 1 to \d+ \(the validation split's samples\)",
    ),
    "compare --seeds 1001": (
        ["compare", "-c", "good.toml", "-q", "--seeds", "1001"],
        r"^--seeds: got 1001, allowed: an integer in the range 1<=x<=1000",
    ),
    "demo --seeds huge": (
        ["demo", "--seeds", "99999999999", "--run-dir", "demo"],
        r"^--seeds: got 99999999999, allowed: an integer in the range 1<=x<=1000",
    ),
    "compare seeds past 2**32-1": (
        ["compare", "-c", "hiseed.toml", "-q", "--seeds", "2"],
        r"^--seeds: got 2 with seed 4294967295, allowed: at most 1 \(the runs take seeds",
    ),
    "compare.seeds past 2**32-1": (
        ["compare", "-c", "hiseed.toml", "-q"],
        r"^compare\.seeds: got 5 with seed 4294967295, allowed: at most 1",
    ),
    "finetune --lr 1e308": (
        ["finetune", "--from-run", "runs/good", "--lr", "1e308"],
        r"^--lr: got 1e\+308, allowed: a number in the range 1e-10<=x<=10",
    ),
    "finetune --batch-size huge": (
        ["finetune", "--from-run", "runs/good", "--batch-size", "99999999999"],
        r"^--batch-size: got 99999999999, allowed: an integer in the range",
    ),
    "quantize --percentile without percentile calibration": (
        ["quantize", "-c", "good.toml", "--percentile", "50"],
        r"^--percentile: got it without --calibration percentile, allowed: with it",
    ),
    "quantize --from-run --calibration": (
        ["quantize", "--from-run", "runs/good", "--calibration", "minmax"],
        r"^--calibration: got it with --from-run, allowed: without it",
    ),
    # an option given twice: click kept the last without a word
    "--trial twice": (
        ["quantize", "--from-run", "runs/good", "--trial", "0", "--trial", "1"],
        r"^--trial: got it more than once, allowed: once$",
    ),
    "--cache and --no-cache": (
        ["compare", "-c", "good.toml", "--cache", "--no-cache"],
        r"^--cache: got it more than once, allowed: once$",
    ),
    "--config twice": (
        ["search", "-c", "good.toml", "--config=good.toml"],
        r"^--config: got it more than once",
    ),
    "compare.budgets past the trials": (
        ["compare", "-c", "budgets.toml", "-q"],
        r"^compare\.budgets: got 100, allowed: budgets up to the 2 trials of a run "
        r"\(search\.n_trials\)",
    ),
    "compare.budgets past --trials": (
        ["compare", "-c", "budgets.toml", "-q", "--trials", "50"],
        r"^compare\.budgets: got 100, allowed: budgets up to the 50 trials of a run \(--trials\)",
    ),
    "compare.budgets past --evaluations": (
        ["compare", "-c", "budgets.toml", "-q", "--evaluations", "3"],
        r"^compare\.budgets: got 100, allowed: budgets up to the 3 evaluations of a run",
    ),
    "--config a FIFO": (
        ["search", "-c", "fifo.toml", "-q"],
        r"^--config: got 'fifo\.toml', which is not a regular file, allowed: a TOML file",
    ),
    "report --json twice": (["report", "runs/good", "--json", "--json"], r"^--json: got it more"),
    "summary --repeats without --latency": (
        ["summary", "-c", "good.toml", "--repeats", "5"],
        r"^--repeats: got it without --latency, allowed: with it",
    ),
    "summary --latency-batch without --latency": (
        ["summary", "-c", "good.toml", "--latency-batch", "5"],
        r"^--latency-batch: got it without --latency",
    ),
    "summary --batch huge": (
        ["summary", "-c", "good.toml", "--batch", "99999999999999999999999"],
        r"^--batch: got 99999999999999999999999, allowed: 1 to 2147483647",
    ),
}


def _replace_with_dir(d: Path, name: str) -> None:
    (d / name).unlink()
    (d / name).mkdir()


def _dangling(d: Path, name: str) -> None:
    (d / name).unlink()
    (d / name).symlink_to(d / "no-such-file")


# name -> damage done to a copy of the finished run directory; run as `report COPY`
REPORT_CASES: dict[str, tuple[Callable[[Path], None], str]] = {
    "trials.csv a folder": (
        lambda d: _replace_with_dir(d, "trials.csv"),
        r"^RUN_DIR: got '.*trials\.csv' \(a folder\), allowed: the trials\.csv `quantsearch` wr",
    ),
    "trials.csv garbage": (
        lambda d: (d / "trials.csv").write_bytes(b"\x00\xffgarbage"),
        r"^RUN_DIR: got '.*trials\.csv', not what search writes there",
    ),
    "trials.csv empty": (lambda d: (d / "trials.csv").write_bytes(b""), r"trials\.csv', not"),
    "trials.csv dangling link": (
        lambda d: _dangling(d, "trials.csv"),
        r"^RUN_DIR: got '.*trials\.csv' \(a link to nothing\)",
    ),
    "model.pt garbage": (
        lambda d: (d / "model.pt").write_bytes(b"garbage"),
        r"^RUN_DIR: got '.*model\.pt', not a checkpoint \(no torch zip archive\)",
    ),
    "model.pt a folder": (lambda d: _replace_with_dir(d, "model.pt"), r"model\.pt' \(a folder\)"),
    "model.pt dangling link": (lambda d: _dangling(d, "model.pt"), r"model\.pt' \(a link to"),
    "baseline.json empty": (
        lambda d: (d / "baseline.json").write_bytes(b""),
        r"^RUN_DIR: got '.*baseline\.json', not a JSON object",
    ),
    "best.json a folder": (lambda d: _replace_with_dir(d, "best.json"), r"best\.json' \(a fold"),
    "study.journal a folder": (
        lambda d: _replace_with_dir(d, "study.journal"),
        r"study\.journal' \(a folder\)",
    ),
}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory, mlp_checkpoint: Path) -> Path:
    """A folder with a finished study in runs/good and a user evaluate function."""
    d = tmp_path_factory.mktemp("wider")
    (d / "good.toml").write_text(GOOD.format(ckpt=mlp_checkpoint.as_posix()))
    (d / "task.py").write_text("def f(model, batches):\n    return {'score': 1.0}\n")
    (d / "budgets.toml").write_text(
        GOOD.format(ckpt=mlp_checkpoint.as_posix()) + "[compare]\nbudgets = [1, 100]\n"
    )
    os.mkfifo(d / "fifo.toml")  # reading it would block until a writer came
    (d / "hiseed.toml").write_text(
        GOOD.format(ckpt=mlp_checkpoint.as_posix()).replace("seed = 0", "seed = 4294967295")
    )
    finished_study(d)
    return d


@pytest.fixture
def in_workdir(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    yield from unchanged_runs(workdir, monkeypatch)


@pytest.mark.parametrize("name", sorted(CONFIG_CASES))
def test_bad_config(name: str, in_workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    edit, pattern = CONFIG_CASES[name]
    cfg = case_folder(in_workdir, name) / "good.toml"  # same stem: it names the existing study
    cfg.write_text(edit((in_workdir / "good.toml").read_text()))
    code, err = _run(["search", "-c", str(cfg), "--run-dir", "runs", "-q"], capsys)
    _check(code, err, pattern)


@pytest.mark.parametrize("name", sorted(ARG_CASES))
def test_bad_argument(name: str, in_workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args, pattern = ARG_CASES[name]
    code, err = _run(args, capsys)
    _check(code, err, pattern)


@pytest.mark.parametrize("name", sorted(REPORT_CASES))
def test_damaged_run_dir(name: str, in_workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    damage, pattern = REPORT_CASES[name]
    copy = case_folder(in_workdir, name) / "run"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(in_workdir / "runs" / "good", copy)
    damage(copy)
    before = {p.name for p in copy.iterdir()}
    code, err = _run(["report", str(copy)], capsys)
    _check(code, err, pattern)
    assert {p.name for p in copy.iterdir()} == before  # no report drawn beside it


# name -> damage done to a copy of the finished run directory; run as `search` resuming it
RESUME_CASES: dict[str, tuple[Callable[[Path], None], str]] = {
    "study.journal a folder": (
        lambda d: _replace_with_dir(d, "study.journal"),
        r"^--run-dir: got '.*study\.journal' \(a folder\), allowed: the study\.journal a search",
    ),
    "study.journal a dangling link": (
        lambda d: _dangling(d, "study.journal"),
        r"^--run-dir: got '.*study\.journal' \(a link to nothing\), allowed: the study\.journal",
    ),
    "workers.lock a folder": (
        lambda d: _replace_with_dir(d, "workers.lock"),
        r"^--run-dir: got '.*workers\.lock' \(a folder\)",
    ),
}


@pytest.mark.parametrize("name", sorted(RESUME_CASES))
def test_damaged_run_dir_resumed(
    name: str, in_workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A folder where the journal goes was an internal-error traceback; a dangling link there
    had the journal written wherever it pointed, outside the run directory."""
    damage, pattern = RESUME_CASES[name]
    runs = case_folder(in_workdir, name) / "runs"
    shutil.rmtree(runs, ignore_errors=True)
    shutil.copytree(in_workdir / "runs" / "good", runs / "good")
    damage(runs / "good")
    before = sorted(p.name for p in (runs / "good").iterdir())
    code, err = _run(["search", "-c", "good.toml", "--run-dir", str(runs), "-q"], capsys)
    _check(code, err, pattern)
    assert sorted(p.name for p in (runs / "good").iterdir()) == before
    assert not (runs / "good" / "no-such-file").exists()  # nothing written through the link


def test_the_undamaged_copy_reports(in_workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The checks refuse only damage: the copy the cases start from gives a report."""
    copy = case_folder(in_workdir, "undamaged") / "run"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(in_workdir / "runs" / "good", copy)
    code, err = _run(["report", str(copy)], capsys)
    assert code == 0, err
    assert (copy / "report.html").is_file()


def test_a_declared_metric_never_returned_names_its_key(
    in_workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``f`` returns only ``score``; ``missing`` is declared too (the error named no key)."""
    case = case_folder(in_workdir, "declared never returned")
    text = _sub(ACC, "score = {}\nmissing = {}")((in_workdir / "good.toml").read_text())
    text += '[metrics]\nevaluate = "../../task.py:f"\n'
    text += 'directions = { score = "maximize", missing = "minimize" }\n'
    (case / "um.toml").write_text(text)
    code, err = _run(["search", "-c", str(case / "um.toml"), "--run-dir", str(case), "-q"], capsys)
    _check(
        code,
        err,
        r"^metrics\.directions\.missing \(or the objective naming it\): evaluate function 'f' "
        r"returned no 'missing', allowed: the metrics it returns \(\['score'\]\)",
    )


# name -> (user.py, the config's edit, regex): user code that calls sys.exit(0) ended the
# command with exit status 0, silently, as if it had succeeded
EXIT = "import sys\n\n"
SYS_EXIT_CASES: dict[str, tuple[str, Callable[[str], str], str]] = {
    "model file exits on import": (
        EXIT + "sys.exit(0)\n",
        _sub('name = "mlp-digits"', 'name = "user.py:build"'),
        r"^model\.name: got .*, whose import failed \(SystemExit: 0",
    ),
    "model build exits": (
        EXIT + "def build():\n    sys.exit(0)\n",
        _sub('name = "mlp-digits"', 'name = "user.py:build"'),
        r"^model\.name: got 'user\.py:build', whose call failed \(SystemExit: 0",
    ),
    "data loader exits": (
        EXIT + "def load():\n    sys.exit(0)\n",
        _add("data", 'name = "user.py:load"'),
        r"^data\.name: got 'user\.py:load', whose call failed \(SystemExit: 0",
    ),
    "evaluate exits": (
        EXIT + "def f(model, batches):\n    sys.exit(0)\n",
        lambda t: (
            _sub(ACC, "score = { direction = 'maximize' }")(t)
            + '[metrics]\nevaluate = "user.py:f"\n'
        ),
        r"^evaluate function 'f' failed: SystemExit: 0",
    ),
}


@pytest.mark.parametrize("name", sorted(SYS_EXIT_CASES))
def test_user_code_that_exits(
    name: str, in_workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code_text, edit, pattern = SYS_EXIT_CASES[name]
    case = case_folder(in_workdir, name)
    (case / "user.py").write_text(code_text)
    text = edit((in_workdir / "good.toml").read_text())
    if "user.py:build" in text:
        text = re.sub(r'checkpoint = ".*"\n', "", text)  # the zoo's weights fit no user model
    (case / "u.toml").write_text(text)
    code, err = _run(["search", "-c", str(case / "u.toml"), "--run-dir", str(case), "-q"], capsys)
    _check(code, err, pattern)


@pytest.mark.parametrize(
    ("model", "pattern"),
    [
        (
            "m.py:nope",
            r"^--model: got 'm\.py:nope', allowed: a function 'm\.py' defines \(\['build'",
        ),
        ("bad.py:build", r"^--model: got 'bad\.py', not readable Python \(invalid syntax"),
    ],
)
def test_init_reads_the_model_file(
    model: str,
    pattern: str,
    in_workdir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``init`` wrote a config naming a function the file lacks (train failed later)."""
    case = case_folder(in_workdir, "init " + model)
    (case / "m.py").write_text("import torch\n\ndef build():\n    return torch.nn.Linear(4, 2)\n")
    (case / "bad.py").write_text("def build(:\n")
    (case / "d.py").write_text("def load():\n    pass\n")
    monkeypatch.chdir(case)
    code, err = _run(["init", "--model", model, "--data", "d.py:load", "-o", "s.toml"], capsys)
    _check(code, err, pattern)
    assert not (case / "s.toml").exists()


def test_the_corpus_is_large() -> None:
    cases = (CONFIG_CASES, ARG_CASES, REPORT_CASES, RESUME_CASES, SYS_EXIT_CASES)
    assert sum(map(len, cases)) >= 95
    assert os.sep not in "".join(CONFIG_CASES)  # names become folder names
