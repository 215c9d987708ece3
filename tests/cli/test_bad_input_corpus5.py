"""The fifth sweep of bad inputs: absurd-but-finite durations, run files that are not JSON,
folders of another command given where a search's run directory goes, configs in JSON or YAML,
a TOML table given inline and as a header, click's usage errors that named no option (no
command, an unknown one, extra arguments, an option without its value), environment
variables pointing at the wrong file, relative paths from another working directory, SQLite
names past 255 bytes, user data of one class.

Each case: exit status 2, one ``error:`` line naming the key, option or argument, no
traceback, and every file of the folder it runs in (the user's config, checkpoints, a
finished study in ``runs/good``, a quantize output, damaged copies) byte for byte as before.

What escaped before: ``search.timeout = 1e308`` and ``--timeout 1e308`` ran, and so did a
learning rate of 1e-300 (no weight moves); a run file that
is not JSON gave the parser's text without what is allowed, and a damaged comparison.json
wrapped that line in a second one (``is damaged (ConfigError: RUN_DIR: ...)``);
``quantize``/``finetune``/``export --from-run`` of a quantize output or a comparison's folder
said "has no pareto.json" (a single-objective run has none either), and ``search`` and
``worker`` wrote a study into a quantize output's folder, mixing their files; a bare ``quantsearch``
printed its whole help as one ``error:`` line; an unknown command, extra arguments and an
option without its value named no key; click's "Directory 'x' is a file." said nothing of what
is allowed; a ``QUANTSEARCH_CACHE_DIR`` (or ``XDG_CACHE_HOME``) that is a file turned the
cache off without a word; ``--storage sqlite:///<300 bytes>`` was an
internal-error traceback; a file ``QUANTSEARCH_JSC_PATH`` named that is no JSC file was
blamed on ``data.path``; a relative ``model.checkpoint`` missing from the working directory
did not say which one it was looked up in, nor that the file was beside the config; "no trained weights" named no key; "is a
embeddingbag"; user data of one class trained and searched (a constant answer scores
accuracy 1).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from quantsearch.checkpoint import save_checkpoint
from quantsearch.cli.common import TIMEOUT
from quantsearch.search.config import parse_search_config
from quantsearch.validate import TIMEOUT_MAX
from tests.cli.bad_input import ACC, GOOD, case_folder, exit_status, finished_study
from tests.cli.bad_input import add as _add
from tests.cli.bad_input import check_one_line as _check
from tests.cli.bad_input import run_cli as _run

S = "search"
WROTE = r", allowed: the file quantsearch wrote there \(run the same command again to write it"
FROM_RUN = r", allowed: a run directory written by `quantsearch search` \(it holds best\.json or"
COMMANDS = r"one of \['compare', 'demo', .*, 'worker'\]"

# name -> (edit of the good config, regex after "error: "); run as
# `search -c CASE/good.toml --run-dir runs -q` (its stem names the finished study)
CONFIG_CASES: dict[str, tuple[Callable[[str], str], str]] = {
    "timeout 1e308": (
        _add(S, "timeout = 1e308"),
        r"^search\.timeout: got 1e\+308, allowed: a finite number > 0 and <= 31536000$",
    ),
    "timeout a year and a second": (
        _add(S, "timeout = 31536001"),
        r"^search\.timeout: got 31536001\.0, allowed: a finite number > 0 and <= 31536000$",
    ),
    "objectives inline and as a header": (
        _add(S, f"objectives = {{ {ACC} }}"),
        r"^--config: got .*good\.toml, not valid TOML: Cannot declare \('search', 'objectives'\) "
        r"twice \(at line \d+, column \d+\), allowed: TOML \(https://toml\.io\)$",
    ),
    "train.lr 1e-300": (
        _add("train", "lr = 1e-300"),
        r"^train\.lr: got 1e-300, allowed: a finite number in \[1e-10, 10\.0\]$",
    ),
    "storage a SQLite name past 255 bytes": (
        _add(S, f'storage = "sqlite:///{"x" * 300}.db"'),
        r"^search\.storage: got a name of 303 bytes \('xxxxxxxxxxxxxxxx'\.\.\.\), allowed: names",
    ),
    "model inline and as a header": (
        _add("", 'model = { name = "mlp-digits" }'),
        r"^--config: got .*good\.toml, not valid TOML: Cannot declare \('model',\) twice",
    ),
}

# name -> (file name, its text from the good config's, regex); run as `search -c CASE/NAME`
FILE_CASES: dict[str, tuple[str, Callable[[str], str], str]] = {
    "a JSON config": (
        "good.json",
        lambda t: json.dumps({"model": {"name": "mlp-digits"}, "search": {"n_trials": 2}}),
        r"^--config: got .*good\.json, not valid TOML: Invalid statement \(at line 1, column 1\) "
        r"\(a JSON file\?\), allowed: a TOML config \(`quantsearch init` writes one\)$",
    ),
    "a YAML config": (
        "good.yaml",
        lambda t: "model:\n  name: mlp-digits\nsearch:\n  n_trials: 2\n",
        r"^--config: got .*good\.yaml, not valid TOML: .* \(a YAML file\?\), allowed: a TOML",
    ),
    "a YAML config named .yml": (
        "good.yml",
        lambda t: "seed: 0\n",
        r"^--config: got .*good\.yml, not valid TOML: .* \(a YAML file\?\), allowed: a TOML",
    ),
}

LONG = "x" * 300
# name -> (arguments, regex); run in the folder the fixture fills
ARG_CASES: dict[str, tuple[list[str], str]] = {
    "--timeout 1e308": (
        ["search", "-c", "good.toml", "-q", "--timeout", "1e308"],
        r"^--timeout: got '1e308', allowed: seconds > 0, at most 31536000 \(a year\)$",
    ),
    "worker --timeout past a year": (
        ["worker", "-c", "good.toml", "--timeout", "31536000.5"],
        r"^--timeout: got '31536000\.5', allowed: seconds > 0, at most 31536000",
    ),
    "finetune --lr 1e-300": (
        ["finetune", "--from-run", "runs/good", "--lr", "1e-300"],
        r"^--lr: got 1e-300, allowed: a number in the range 1e-10<=x<=10\.0$",
    ),
    "--storage a SQLite name past 255 bytes": (
        ["search", "-c", "good.toml", "-q", "--storage", f"sqlite:///{LONG}.db", "--study", "s"],
        r"^--storage: got a name of 303 bytes \('xxxxxxxxxxxxxxxx'\.\.\.\), allowed: names of at",
    ),
    "--storage a SQLite name with a control character": (
        ["search", "-c", "good.toml", "-q", "--storage", "sqlite:///a\x01b.db", "--study", "s"],
        r"^--storage: got 'a\\x01b\.db', allowed: a path without control characters",
    ),
    # run files that are not JSON
    "report: trials.jsonl not UTF-8": (
        ["report", "bad_utf8"],
        rf"^RUN_DIR: got 'bad_utf8/trials\.jsonl', which cannot be read as UTF-8 text \('utf-8' codec .*\)"
        rf"{WROTE}",
    ),
    "export --from-run: trials.jsonl with a line that is not JSON": (
        ["export", "--to", "qonnx", "--from-run", "bad_trials", "e.onnx"],
        rf"^--from-run: got 'bad_trials/trials\.jsonl', whose line \d+ is not a trial record \(.*{WROTE}",
    ),
    "quantize --from-run: best.json not JSON": (
        ["quantize", "--from-run", "bad_best", "--out", "q5"],
        rf"^--from-run: got 'bad_best/best\.json', not valid UTF-8 JSON \(Expecting .*\){WROTE}",
    ),
    "report: trials.jsonl with a line that is not JSON": (
        ["report", "bad_trials"],
        r"^RUN_DIR: got 'bad_trials/trials\.jsonl', whose line \d+ is not a trial record \(Expecting "
        rf"property name .*{WROTE}",
    ),
    "report: best.json not JSON": (
        ["report", "bad_best"],
        rf"^RUN_DIR: got 'bad_best/best\.json', not valid UTF-8 JSON \(Expecting .*\){WROTE}",
    ),
    "finetune: best.json not JSON": (
        ["finetune", "--from-run", "bad_best", "--epochs", "1"],
        rf"^--from-run: got 'bad_best/best\.json', not valid UTF-8 JSON \(Expecting .*\){WROTE}",
    ),
    "report: comparison.json not JSON (one line, not two)": (
        ["report", "bad_compare"],
        rf"^RUN_DIR: got 'bad_compare/comparison\.json', not valid UTF-8 JSON \([^()]*\([^()]*\)\)"
        rf"{WROTE}, or restore the folder from a copy\)$",
    ),
    # folders of another command, or of a search not finished, where a run directory goes
    "report a quantize output": (
        ["report", "qout"],
        r"^RUN_DIR: got 'qout', neither a search run directory \(trials\.jsonl\) nor a comparison "
        r"directory \(comparison\.json\); it is the output of `quantsearch quantize` or "
        r"`finetune` \(resolved_config\.json\), allowed: a folder `quantsearch search` or "
        r"`quantsearch compare` wrote$",
    ),
    "report a run's images folder": (
        ["report", "runs/good/images"],
        r"^RUN_DIR: got 'runs/good/images', neither .*; it holds no search's results, allowed",
    ),
    "finetune --from-run a quantize output": (
        ["finetune", "--from-run", "qout", "--epochs", "1"],
        rf"^--from-run: got 'qout', which is the output of `quantsearch quantize` or `finetune` "
        rf"\(resolved_config\.json\){FROM_RUN}",
    ),
    "quantize --from-run a comparison's folder": (
        ["quantize", "--from-run", "bad_compare", "--out", "q2"],
        rf"^--from-run: got 'bad_compare', which is a comparison's folder \(comparison\.json; its searches "
        rf"kept no run directory\){FROM_RUN}",
    ),
    "export --from-run a search not finished": (
        ["export", "--to", "qonnx", "--from-run", "half", "e.onnx"],
        rf"^--from-run: got 'half', which holds a search that has not finished \(no best\.json or "
        rf"pareto\.json yet\){FROM_RUN}",
    ),
    "search into a quantize output": (
        ["search", "-c", "good.toml", "-q", "--run-dir", ".", "--study", "qout"],
        r"^--run-dir: got 'qout', which is the output of `quantsearch quantize` or `finetune` "
        r"\(resolved_config\.json\), allowed: a folder of the study's own \(--study NAME, "
        r"--run-dir\)$",
    ),
    "worker into a quantize output": (
        ["worker", "-c", "good.toml", "--run-dir", ".", "--study", "qout"],
        r"^--run-dir: got 'qout', which is the output of `quantsearch quantize` or `finetune`",
    ),
    "search into a comparison's folder": (
        ["search", "-c", "good.toml", "-q", "--run-dir", ".", "--study", "bad_compare"],
        r"^--run-dir: got 'bad_compare', which is a comparison's folder \(comparison\.json; its searches "
        r"kept no run directory\), allowed: a folder of the study's own",
    ),
    # click's usage errors, each now naming its key
    "no command": ([], rf"^COMMAND: got nothing, allowed: {COMMANDS} \(`quantsearch --help`"),
    "an unknown command": (
        ["serch", "-c", "good.toml"],
        rf"^COMMAND: got 'serch', allowed: {COMMANDS} \(did you mean 'search'\?\)$",
    ),
    "a command in capitals": (["REPORT", "runs/good"], r"^COMMAND: got 'REPORT', allowed: "),
    "report given two run directories": (
        ["report", "runs/good", "runs/good"],
        r"^report: got extra argument\(s\) 'runs/good', allowed: quantsearch report \[OPTIONS\] "
        r"RUN_DIR$",
    ),
    "an option after --": (
        ["summary", "-c", "good.toml", "--", "--json"],
        r"^summary: got extra argument\(s\) '--json', allowed: quantsearch summary \[OPTIONS\]$",
    ),
    "summary given the config without -c": (
        ["summary", "good.toml"],
        r"^summary: got extra argument\(s\) 'good\.toml', allowed: quantsearch summary \[OPT",
    ),
    "--run-dir without its value": (
        ["search", "-c", "good.toml", "-q", "--run-dir"],
        r"^--run-dir: got it without a value, allowed: --run-dir VALUE$",
    ),
    "--trial without its value": (
        ["finetune", "--from-run", "runs/good", "--trial"],
        r"^--trial: got it without a value, allowed: --trial VALUE$",
    ),
    "-c without its value": (["summary", "-c"], r"^-c: got it without a value, allowed: -c VALUE"),
    # click.Path's refusals, which said what was wrong but not what is allowed
    "quantize --out the user's config": (
        ["quantize", "--from-run", "runs/good", "--trial", "0", "--out", "good.toml"],
        r"^--out: got 'good\.toml' \(a file\), allowed: a folder$",
    ),
    "report a run's file": (
        ["report", "runs/good/trials.jsonl"],
        r"^RUN_DIR: got 'runs/good/trials\.jsonl' \(a file\), allowed: a folder$",
    ),
    "--load a folder": (
        ["summary", "-c", "good.toml", "--load", "runs"],
        r"^--load: got 'runs' \(a folder\), allowed: a file$",
    ),
    # weights and callables that are not what a key takes
    "no checkpoint and no --load": (
        ["quantize", "-c", "no_ckpt.toml", "--out", "q3"],
        r"^model\.checkpoint: got none and no --load, allowed: trained weights \(pass --load CKPT",
    ),
    "model.name an int": (
        ["summary", "-c", "mint.toml"],
        r"^model\.name: got 'mint\.py:N', an int, allowed: a callable$",
    ),
    "by_name an embeddingbag": (
        ["quantize", "-c", "eb.toml", "--load", "eb.pt", "--out", "q4"],
        r"^quantize\.by_name\.0: got node '_0', an embeddingbag \(EmbeddingBag\), which cannot be "
        r"quantized",
    ),
}

# name -> (environment, working directory under the fixture's folder, arguments, regex)
ENV_CASES: dict[str, tuple[dict[str, str], str, list[str], str]] = {
    "QUANTSEARCH_JSC_PATH a text file": (
        {"QUANTSEARCH_JSC_PATH": "afile.txt", "QUANTSEARCH_CACHE_DIR": ""},
        ".",
        ["summary", "-c", "jsc.toml"],
        r"^QUANTSEARCH_JSC_PATH: 'afile\.txt' is not a JSC file this loader reads",
    ),
    "QUANTSEARCH_JSC_PATH a CSV of other columns": (
        {"QUANTSEARCH_JSC_PATH": "other.csv", "QUANTSEARCH_CACHE_DIR": ""},
        ".",
        ["summary", "-c", "jsc.toml"],
        r"^QUANTSEARCH_JSC_PATH: 'other\.csv' lacks column\(s\) \['zlogz', ",
    ),
    "QUANTSEARCH_CACHE_DIR a file": (
        {"QUANTSEARCH_CACHE_DIR": "afile.txt"},
        ".",
        ["summary", "-c", "good.toml"],
        r"^QUANTSEARCH_CACHE_DIR: got 'afile\.txt', where 'afile\.txt' is not a folder \(for the "
        r"cache 'afile\.txt'\), "
        r"allowed: a folder \(made when missing\), or QUANTSEARCH_CACHE_DIR='' for no cache$",
    ),
    "QUANTSEARCH_CACHE_DIR under a file": (
        {"QUANTSEARCH_CACHE_DIR": "afile.txt/cache"},
        ".",
        ["search", "-c", "good.toml", "-q"],
        r"^QUANTSEARCH_CACHE_DIR: got 'afile\.txt/cache', where 'afile\.txt' is not a folder \(for "
        r"the cache 'afile\.txt/cache'",
    ),
    "XDG_CACHE_HOME a file": (
        {"XDG_CACHE_HOME": "afile.txt"},
        ".",
        ["summary", "-c", "good.toml"],
        r"^XDG_CACHE_HOME: got 'afile\.txt', where 'afile\.txt' is not a folder \(for the cache "
        r"'afile\.txt/quantsearch'",
    ),
    "QUANTSEARCH_CACHE_DIR with a tab": (
        {"QUANTSEARCH_CACHE_DIR": "a\tb"},
        ".",
        ["summary", "-c", "good.toml"],
        r"^QUANTSEARCH_CACHE_DIR: got 'a\\tb', allowed: a path without control characters",
    ),
    "model.checkpoint relative, beside the config, from another working directory": (
        {},
        "elsewhere",
        ["summary", "-c", "../rel.toml"],
        r"^model\.checkpoint: got 'mlp\.pt', not in the working directory '.*elsewhere' but beside "
        r"the config \('.*mlp\.pt'\), allowed: a path from the working directory "
        r"\(model\.checkpoint and run_dir are read from there\), or an absolute one$",
    ),
    "model.checkpoint relative, nowhere": (
        {},
        "elsewhere",
        ["summary", "-c", "../rel_missing.toml"],
        r"^model\.checkpoint: got 'missing\.pt', which does not exist in the working directory "
        r"'.*elsewhere', allowed: a checkpoint file \(train one with `quantsearch train`\)$",
    ),
}

NET = "import torch.nn as nn\n\n\ndef build():\n    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))\n"
X = "import torch\n\nx = torch.randn(200, 4, generator=torch.Generator().manual_seed(0))\n\n\n"
EB = """import torch
import torch.nn as nn


def build():
    return nn.Sequential(nn.EmbeddingBag(20, 8), nn.Linear(8, 3))


def load():
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 20, (200, 4), generator=g), torch.arange(200) % 3
"""

# name -> (d.py after X, regex); run as `train` of net.py:build (4 features, 3 outputs)
DATA_CASES: dict[str, tuple[str, str]] = {
    "one class in a pair": (
        "def load():\n    return x, torch.full((200,), 2)\n",
        r"^data\.name: got 'd\.py:load', which returned labels of one class only \(all 200 are 2\), "
        r"allowed: labels of at least two classes$",
    ),
    "one class in a dict of splits": (
        "def load():\n    z = torch.zeros(50, dtype=torch.long)\n"
        "    return {'train': (x[:100], torch.zeros(100, dtype=torch.long)), "
        "'val': (x[100:150], z), 'test': (x[150:], z)}\n",
        r"^data\.name: got 'd\.py:load', which returned labels of one class only \(all 200 are 0\), allowed",
    ),
}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory, mlp_checkpoint: Path) -> Path:
    """A finished study in runs/good, a quantize output, damaged copies of run files, folders
    of other commands, and the user's models, data and configs."""
    import torch.nn as nn

    d = tmp_path_factory.mktemp("corpus5")
    (d / "mlp.pt").write_bytes(mlp_checkpoint.read_bytes())
    good = GOOD.format(ckpt=(d / "mlp.pt").as_posix())
    (d / "good.toml").write_text(good)
    (d / "q.toml").write_text(good + "[quantize.default]\nweight = { width = 8, frac_width = 4 }\n")
    finished_study(d)
    assert exit_status(["quantize", "-c", str(d / "q.toml"), "--out", str(d / "qout")]) == 0
    shutil.copytree(d / "runs" / "good", d / "bad_trials")
    with (d / "bad_trials" / "trials.jsonl").open("a") as fh:
        fh.write("{not json\n")
    shutil.copytree(d / "runs" / "good", d / "bad_best")
    (d / "bad_best" / "best.json").write_text("{not json\n")
    shutil.copytree(d / "runs" / "good", d / "bad_utf8")
    (d / "bad_utf8" / "trials.jsonl").write_bytes(b'{"number": 0, "\xff"}\n')
    (d / "bad_compare").mkdir()
    (d / "bad_compare" / "comparison.json").write_text("{not json\n")
    (d / "half").mkdir()  # a search stopped before it wrote its results
    shutil.copy(d / "runs" / "good" / "study.journal", d / "half")
    no_ckpt = (d / "q.toml").read_text().replace(f'checkpoint = "{(d / "mlp.pt").as_posix()}"', "")
    (d / "no_ckpt.toml").write_text(no_ckpt)
    (d / "rel.toml").write_text(good.replace((d / "mlp.pt").as_posix(), "mlp.pt"))
    (d / "rel_missing.toml").write_text(good.replace((d / "mlp.pt").as_posix(), "missing.pt"))
    (d / "elsewhere").mkdir()
    (d / "mint.py").write_text("N = 3\n")
    (d / "mint.toml").write_text('[model]\nname = "mint.py:N"\n')
    (d / "eb.py").write_text(EB)
    ns: dict[str, object] = {}
    exec(EB, ns)  # the module the config names, built here for its checkpoint
    model = ns["build"]()
    assert isinstance(model, nn.Module)
    save_checkpoint(d / "eb.pt", model, model_name="eb.py:build", dataset="eb.py:load")
    (d / "eb.toml").write_text(
        '[model]\nname = "eb.py:build"\n[data]\nname = "eb.py:load"\n'
        '[quantize.by_name."0"]\nweight = { width = 8, frac_width = 4 }\n'
    )
    (d / "jsc.toml").write_text('[model]\nname = "jsc-tiny"\n[data]\nname = "jsc"\n')
    (d / "afile.txt").write_text("the user's notes\n")
    (d / "other.csv").write_text("a,b\n1,2\n")
    return d


@pytest.fixture
def in_workdir(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.chdir(workdir)
    return workdir


def _files(folder: Path) -> dict[Path, str]:
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()}


def _checked(
    args: list[str], pattern: str, folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One refusal, and every file under ``folder`` (the user's) as it was, byte for byte."""
    before = _files(folder)
    code, err = _run(args, capsys)
    _check(code, err, pattern)
    after = _files(folder)
    assert {p: after.get(p) for p in before} == before, "a file of the user's was changed"


@pytest.mark.parametrize("name", sorted(CONFIG_CASES))
def test_bad_config(name: str, in_workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    edit, pattern = CONFIG_CASES[name]
    cfg = case_folder(in_workdir, name) / "good.toml"  # same stem: it names the existing study
    cfg.write_text(edit((in_workdir / "good.toml").read_text()))
    _checked(["search", "-c", str(cfg), "--run-dir", "runs", "-q"], pattern, in_workdir, capsys)


@pytest.mark.parametrize("name", sorted(FILE_CASES))
def test_bad_config_file(name: str, in_workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    file_name, content, pattern = FILE_CASES[name]
    cfg = case_folder(in_workdir, name) / file_name
    cfg.write_text(content((in_workdir / "good.toml").read_text()))
    _checked(["search", "-c", str(cfg), "--run-dir", "runs", "-q"], pattern, in_workdir, capsys)


@pytest.mark.parametrize("name", sorted(ARG_CASES))
def test_bad_argument(name: str, in_workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args, pattern = ARG_CASES[name]
    _checked(args, pattern, in_workdir, capsys)


@pytest.mark.parametrize("name", sorted(ENV_CASES))
def test_bad_environment(
    name: str, in_workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env, cwd, args, pattern = ENV_CASES[name]
    monkeypatch.delenv("QUANTSEARCH_CACHE_DIR", raising=False)  # XDG_CACHE_HOME's case
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(in_workdir / cwd)
    _checked(args, pattern, in_workdir, capsys)


@pytest.mark.parametrize("name", sorted(DATA_CASES))
def test_bad_user_data(name: str, in_workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Labels of one class: scikit-learn's DummyClassifier (the referee) answering the most
    frequent class scores accuracy 1 on them, so every trial would tie at 100%."""
    from sklearn.dummy import DummyClassifier

    body, pattern = DATA_CASES[name]
    case = case_folder(in_workdir, name)
    (case / "net.py").write_text(NET)
    (case / "d.py").write_text(X + body)
    (case / "u.toml").write_text('[model]\nname = "net.py:build"\n[data]\nname = "d.py:load"\n')
    args = ["train", "-c", str(case / "u.toml"), "--epochs", "1", "--out", str(case / "o.pt")]
    _checked(args, pattern, in_workdir, capsys)
    ns: dict[str, object] = {}
    exec(X + body, ns)
    result = ns["load"]()  # type: ignore[operator]
    x, y = result if isinstance(result, tuple) else result["train"]
    assert DummyClassifier(strategy="most_frequent").fit(x, y).score(x, y) == 1.0


def test_the_timeout_bound() -> None:
    """A year, as datetime counts it (the referee), in the config and on the command line;
    a year itself passes both."""
    assert timedelta(seconds=TIMEOUT_MAX) == timedelta(days=365)
    raw = {
        "timeout": TIMEOUT_MAX,
        "space": {"choices": {"linear": {"weight": [[8, 4]]}}},
        "objectives": {"accuracy": {"direction": "maximize"}},
    }
    cfg = parse_search_config(raw)
    assert cfg.timeout == TIMEOUT_MAX
    assert TIMEOUT.convert(str(TIMEOUT_MAX), None, None) == TIMEOUT_MAX


def test_the_corpus_is_large() -> None:
    cases = (CONFIG_CASES, FILE_CASES, ARG_CASES, ENV_CASES, DATA_CASES)
    assert sum(map(len, cases)) >= 40
    assert os.sep not in "".join([*CONFIG_CASES, *FILE_CASES, *DATA_CASES])  # folder names
