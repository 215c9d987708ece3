"""Damaged inputs a user may hand the tool, for every file a command reads: a search's run
directory (its summary, trials, baseline, recorded config and model, its images folder), a
comparison's folder, a previous quantize output, the config and the checkpoint. Each is made
empty, cut in the middle, random bytes, a folder where a file goes (or a file where a folder
goes), a link to itself, or a valid file of the wrong kind (JSON where TOML goes, a quantized
checkpoint where the run's float model goes, a checkpoint of other shapes).

What escaped before: a comparison's compare_config.json that held a JSON list or null, a
comparison.json that was a folder and a ground_truth that was a file were internal-error
tracebacks (the last two after comparison.json was rewritten); a file where a search's
images folder goes failed the search and the report after their work, the search having
rewritten model.pt; a folder where quantize's metrics.json goes failed after quantized.pt
was replaced; and the refusals named the file but not in the one form (``RUN_DIR: 'x' is
a folder, allowed: ...``, ``model.name: importing 'net.py' failed: ...``: no ``got``).

Each case runs the CLI's entry point in-process (the code a process runs; a process's
start-up was most of the cost), in a copy of the folder: exit status 2, one line of the form
``error: <key>: got <given>, allowed: <allowed>`` (test_message_form's checker), no traceback,
and every file of the folder byte for byte as before, none added. chmod 000 is not among the
damages: these tests may run as root, whom it does not stop (test_bad_input_corpus4 covers it
for others). Referees: the form the brief states, the folder's SHA-256 digest.
"""

from __future__ import annotations

import os
import random
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from tests.cli.test_message_form import FORM
from tests.fault.harness import digest, in_process, run_in

Damage = Callable[[Path], None]


def _replace(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p)
    else:
        p.unlink()


def empty(p: Path) -> None:
    p.write_bytes(b"")


def cut(p: Path) -> None:
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])


def noise(p: Path) -> None:
    p.write_bytes(random.Random(0).randbytes(3000))


def folder(p: Path) -> None:
    _replace(p)
    p.mkdir()
    (p / "x").write_text("x")


def a_file(p: Path) -> None:
    _replace(p)
    p.write_text("x")


def loop(p: Path) -> None:
    _replace(p)
    os.symlink(p.name, p)


def json_list(p: Path) -> None:
    p.write_text("[1, 2, 3]\n")


def json_null(p: Path) -> None:
    p.write_text("null\n")


def json_text(p: Path) -> None:
    p.write_text('{"seed": 0, "model": {"name": "mlp-digits"}}\n')


def utf16(p: Path) -> None:
    p.write_bytes(p.read_text().encode("utf-16"))


def _state(edit: Callable[[dict[str, torch.Tensor]], None]) -> Damage:
    def damage(p: Path) -> None:
        ckpt = torch.load(p.parent.parent.parent / "m.pt", weights_only=True)
        sd = dict(ckpt["state_dict"])
        edit(sd)
        torch.save({**ckpt, "state_dict": sd}, p)

    return damage


def _other_shape(sd: dict[str, torch.Tensor]) -> None:
    k = next(k for k in sd if k.endswith("weight"))
    sd[k] = torch.zeros(sd[k].shape[0] + 3, sd[k].shape[1])


def _state_at_top(top: str) -> Damage:
    """``_state`` for the checkpoint at the folder's top (m.pt), not in runs/s."""

    def damage(p: Path) -> None:
        ckpt = torch.load(p, weights_only=True)
        sd = dict(ckpt["state_dict"])
        if top == "other shape":
            _other_shape(sd)
        else:
            sd.pop(next(iter(sd)))
        torch.save({**ckpt, "state_dict": sd}, p)

    return damage


def quantized(p: Path) -> None:
    shutil.copy(p.parents[2] / "q" / "quantized.pt", p)


FILE_DAMAGE: dict[str, Damage] = {
    "empty": empty,
    "cut": cut,
    "random bytes": noise,
    "a folder": folder,
    "a link loop": loop,
}
JSON_DAMAGE = {**FILE_DAMAGE, "a JSON list": json_list, "JSON null": json_null}
RUN = "runs/s"
REPORT = ["report", RUN]
FROM_RUN = {
    "quantize": ["quantize", "--from-run", RUN, "--best", "--out", "qx"],
    "finetune": ["finetune", "--from-run", RUN, "--best", "--epochs", "1", "--out", "fx"],
}
RESUME = ["search", "-c", "s.toml", "-q", "--run-dir", "runs"]


def _run_cases() -> dict[str, tuple[str, Damage, list[str]]]:
    cases: dict[str, tuple[str, Damage, list[str]]] = {}
    read_by_all = ("best.json", "trials.jsonl")
    for name in ("best.json", "baseline.json", "search_config.json", "trials.jsonl"):
        for how, damage in JSON_DAMAGE.items():
            if name == "trials.jsonl" and how == "JSON null":
                continue  # one line "null": the same case as a list
            cases[f"report: {name} {how}"] = (f"{RUN}/{name}", damage, REPORT)
            if name in read_by_all:
                for cmd, args in FROM_RUN.items():
                    cases[f"{cmd}: {name} {how}"] = (f"{RUN}/{name}", damage, args)
    for how, damage in {"empty": empty, "random bytes": noise, "a folder": folder}.items():
        cases[f"report: trials.csv {how}"] = (f"{RUN}/trials.csv", damage, REPORT)
    model = {
        **FILE_DAMAGE,
        "a quantized checkpoint": quantized,
        "of other shapes": _state(_other_shape),
    }
    for how, damage in model.items():
        for cmd, args in FROM_RUN.items():
            cases[f"{cmd}: model.pt {how}"] = (f"{RUN}/model.pt", damage, args)
    for how in ("empty", "random bytes", "a folder", "a link loop"):
        cases[f"report: model.pt {how}"] = (f"{RUN}/model.pt", FILE_DAMAGE[how], REPORT)
    # the journal (its damage has its own tests, test_journal_damage): the resume's line
    for how in ("empty", "cut", "random bytes"):
        cases[f"resume: study.journal {how}"] = (f"{RUN}/study.journal", FILE_DAMAGE[how], RESUME)
    # things in the way of a search's resume: refused before it writes
    for name in ("best.json", "trials.jsonl", "trials.csv", "model.pt", "workers.lock"):
        for how in ("a folder", "a link loop"):
            cases[f"resume: {name} {how}"] = (f"{RUN}/{name}", FILE_DAMAGE[how], RESUME)
    for how, damage in {"a file": a_file, "a link loop": loop}.items():
        cases[f"report: images {how}"] = (f"{RUN}/images", damage, REPORT)
        cases[f"resume: images {how}"] = (f"{RUN}/images", damage, RESUME)
    return cases


def _other_cases() -> dict[str, tuple[str, Damage, list[str]]]:
    cases: dict[str, tuple[str, Damage, list[str]]] = {}
    cfg = {
        "search": ["search", "-c", "s.toml", "-q", "--run-dir", "r2"],
        "worker": ["worker", "-c", "s.toml", "--run-dir", "r2"],
        "summary": ["summary", "-c", "s.toml"],
        "train": ["train", "-c", "s.toml", "--out", "t.pt"],
        "quantize": ["quantize", "-c", "s.toml", "--out", "qx"],
        "compare": ["compare", "-c", "s.toml", "-q", "--run-dir", "r2"],
    }
    config_damage = {
        "cut": cut,
        "random bytes": noise,
        "a folder": folder,
        "a link loop": loop,
        "JSON": json_text,
        "UTF-16": utf16,
    }
    for how, damage in config_damage.items():
        for cmd, args in cfg.items():
            cases[f"{cmd}: config {how}"] = ("s.toml", damage, args)
    ckpt = {
        **FILE_DAMAGE,
        "of other shapes": _state_at_top("other shape"),
        "missing a tensor": _state_at_top("missing"),
    }
    for how, damage in ckpt.items():
        for cmd in ("search", "summary", "quantize"):
            cases[f"{cmd}: checkpoint {how}"] = ("m.pt", damage, cfg[cmd])
    cmp_dir = "runs/c-compare"
    rerun = ["compare", "-c", "c.toml", "-q", "--run-dir", "runs"]
    for name in ("compare_config.json", "comparison.json", "runs.jsonl", "configs.jsonl"):
        for how in ("a folder", "a link loop"):
            cases[f"compare: {name} {how}"] = (f"{cmp_dir}/{name}", FILE_DAMAGE[how], rerun)
    for how, damage in {"a JSON list": json_list, "JSON null": json_null}.items():
        for cmd, args in {"report": ["report", cmp_dir], "compare": rerun}.items():
            cases[f"{cmd}: compare_config.json {how}"] = (
                f"{cmp_dir}/compare_config.json",
                damage,
                args,
            )
    for how, damage in {"a file": a_file, "a link loop": loop}.items():
        for part in ("ground_truth", "images"):
            cases[f"compare: {part} {how}"] = (f"{cmp_dir}/{part}", damage, rerun)
    for name in ("metrics.json", "resolved_config.json"):
        for how in ("a folder", "a link loop"):
            cases[f"quantize --out: {name} {how}"] = (
                f"q/{name}",
                FILE_DAMAGE[how],
                ["quantize", "-c", "q.toml", "--out", "q"],
            )
    return cases


def nul_bytes(p: Path) -> None:
    p.write_bytes(b"\x00" * 100)


def _spec_cases() -> dict[str, tuple[str, Damage, list[str]]]:
    """The user's model and data modules (a config's model.name and data.name, init's --model
    and --data): read by init (parsed), imported by summary and train."""
    cases: dict[str, tuple[str, Damage, list[str]]] = {}
    module_damage = {
        "empty": empty,
        "cut": cut,
        "random bytes": noise,
        "NUL bytes": nul_bytes,
        "a folder": folder,
        "a link loop": loop,
    }
    init = ["init", "--model", "net.py:build", "--data", "data.py:load", "-o", "new.toml"]
    for module in ("net.py", "data.py"):
        for how, damage in module_damage.items():
            if how != "cut":  # init parses a cut file's functions, found whole: not damage to it
                cases[f"init: {module} {how}"] = (module, damage, init)
            cases[f"summary: {module} {how}"] = (module, damage, ["summary", "-c", "user.toml"])
    return cases


CASES = {**_run_cases(), **_other_cases(), **_spec_cases()}
NET = "import torch.nn as nn\n\n\ndef build():\n    return nn.Sequential(nn.Linear(4, 3))\n"
DATA = (
    "import torch\n\n\ndef load():\n    g = torch.Generator().manual_seed(0)\n"
    "    return torch.randn(60, 4, generator=g), torch.arange(60) % 3\n"
)
USER = '[model]\nname = "net.py:build"\n[data]\nname = "data.py:load"\n'

Q_TABLE = '[quantize.default]\nweight = { format = "fixed", width = 8, frac_width = 4 }\n'
COMPARE = """
[model]
name = "mlp-digits"
checkpoint = "m.pt"
[search]
n_trials = 3
[search.strategy]
name = "random"
[search.space.choices.linear]
weight = [[8, 4], [4, 2]]
[search.objectives]
accuracy = { direction = "maximize" }
[compare]
strategies = ["random", "tpe"]
seeds = 1
"""


@pytest.fixture(scope="module")
def base(made: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``made`` (m.pt, s.toml and its finished search runs/s) with a quantize output (q/, of
    q.toml: s.toml and a [quantize] table) and a finished comparison (runs/c-compare)."""
    folder = tmp_path_factory.mktemp("damaged")
    shutil.copytree(made, folder, dirs_exist_ok=True)
    (folder / "q.toml").write_text((folder / "s.toml").read_text() + Q_TABLE)
    (folder / "c.toml").write_text(COMPARE)
    (folder / "net.py").write_text(NET)
    (folder / "data.py").write_text(DATA)
    (folder / "user.toml").write_text(USER)
    run_in(
        folder,
        ["quantize", "-c", "q.toml", "--out", "q"],
        ["compare", "-c", "c.toml", "-q", "--run-dir", "runs"],
    )
    return folder


def _listing(folder: Path) -> dict[str, str]:
    """:func:`digest`, and the links (a loop is no file) by where they point."""
    links = {
        str(p.relative_to(folder)): os.readlink(p) for p in folder.rglob("*") if p.is_symlink()
    }
    return {**digest(folder), **links}


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_damaged_input_is_one_line_and_changes_nothing(
    name: str,
    base: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path, damage, args = CASES[name]
    shutil.copytree(base, tmp_path, dirs_exist_ok=True, symlinks=True)
    damage(tmp_path / path)
    before = _listing(tmp_path)
    monkeypatch.chdir(tmp_path)
    result = in_process(args, monkeypatch, capsys)
    assert "Traceback" not in result.err, result.err[-3000:]
    line = result.one_error_line()
    assert FORM.match(line), line
    if "--from-run" in args:  # the option the user gave names the run directory's files
        assert line.startswith("error: --from-run: got "), line
    elif args[0] == "report":
        assert line.startswith("error: RUN_DIR: got "), line
    assert _listing(tmp_path) == before, "a file of the folder was changed, added or removed"


def test_the_corpus_is_large() -> None:
    assert len(CASES) >= 180, len(CASES)


@pytest.mark.parametrize("name", ["best.json", "trials.jsonl", "baseline.json", "trials.csv"])
def test_a_resume_writes_a_damaged_result_file_again_from_the_journal(
    name: str,
    base: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A result file is the journal's summary: a finished search run again writes it whole
    from the journal, equal to the one the search wrote (the referee: that file's bytes)."""
    shutil.copytree(base, tmp_path, dirs_exist_ok=True, symlinks=True)
    good = (tmp_path / RUN / name).read_bytes()
    noise(tmp_path / RUN / name)
    monkeypatch.chdir(tmp_path)
    result = in_process(RESUME, monkeypatch, capsys)
    assert result.code == 0, result.err[-3000:]
    assert (tmp_path / RUN / name).read_bytes() == good
