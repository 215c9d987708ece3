"""A study's identity is what determines its results, each part named when it differs.

Re-training with the same seed writes the same weights with a new timing in the checkpoint:
the study resumes. Other weights, another seed, another objective: the refusal names that part,
and the refused command writes nothing to the study. A run directory holding another study's
results is never written by this one. User code is loaded from the config file's folder only.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import optuna
import pytest
import torch

from quantsearch.checkpoint import load_checkpoint, save_checkpoint
from quantsearch.config import load_config
from quantsearch.errors import ConfigError
from quantsearch.models import build_model
from quantsearch.search import api
from quantsearch.search.identity import LEGACY, fingerprint
from quantsearch.search.storage import open_storage
from tests.cli.bad_input import digest as _digest
from tests.cli.bad_input import run_cli as _run

CONFIG = """seed = {seed}
[model]
name = "mlp-digits"
checkpoint = "{ckpt}"
[train]
epochs = 2
patience = 2
[search]
n_trials = {n}
study = "ident"
[search.strategy]
name = "random"
[search.space.choices.linear]
weight = [[8, 4], [4, 2], [2, 1]]
[search.objectives]
accuracy = {{ direction = "maximize" }}
"""


def _trials(run_dir: Path) -> int:
    return len((run_dir / "trials.jsonl").read_text().splitlines())


@pytest.mark.slow
def test_retrained_same_weights_resume_and_each_difference_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    ckpt = tmp_path / "mlp.pt"
    cfg = tmp_path / "c.toml"

    def write(seed: int = 0, n: int = 2) -> None:
        cfg.write_text(CONFIG.format(seed=seed, ckpt=ckpt.as_posix(), n=n))

    write()
    assert _run(["train", "-c", str(cfg)], capsys)[0] == 0
    first, first_bytes = load_checkpoint(ckpt), ckpt.read_bytes()
    assert _run(["search", "-c", str(cfg), "-q"], capsys)[0] == 0
    rd = tmp_path / "runs" / "ident"
    assert _trials(rd) == 2

    # Train again: same seed, same weights, a new timing in the file. The timing is kept to
    # the millisecond, so two runs can tie (a fresh clone's CI at 14c1db6): train until not.
    for _ in range(3):
        assert _run(["train", "-c", str(cfg)], capsys)[0] == 0
        if ckpt.read_bytes() != first_bytes:
            break
    again = load_checkpoint(ckpt)
    assert ckpt.read_bytes() != first_bytes  # the file differs (its timing) ...
    assert all(torch.equal(first.state_dict[k], again.state_dict[k]) for k in first.state_dict)
    # ... the weights do not: that is what the study is identified by
    write(n=4)
    code, err = _run(["search", "-c", str(cfg), "-q"], capsys)
    assert code == 0, err
    assert _trials(rd) == 4  # resumed, not refused

    def refused(part: str) -> None:
        before = _digest(rd)
        code, err = _run(["search", "-c", str(cfg), "-q"], capsys)
        assert code == 2, err
        (line,) = err.strip().splitlines()
        assert re.fullmatch(
            rf"error: --study: got 'ident', .* made with different {part}, allowed: .*", line
        ), line
        assert _digest(rd) == before  # the refused command wrote nothing

    # Other weights (one parameter nudged) under the same checkpoint path.
    model_state = {k: v.clone() for k, v in again.state_dict.items()}
    name = next(k for k in model_state if k.endswith("weight"))
    model_state[name][0, 0] += 1.0
    model = build_model("mlp-digits")
    model.load_state_dict(model_state)
    save_checkpoint(ckpt, model, model_name="mlp-digits", dataset="digits")
    refused("weights")

    # The same weights back, another seed: the seed is named (the data split follows the seed).
    model.load_state_dict(again.state_dict)
    save_checkpoint(ckpt, model, model_name="mlp-digits", dataset="digits")
    write(seed=1, n=4)
    refused("data, seed")


def test_a_study_made_before_identities_resumes_or_is_refused_in_one_line(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    mlp_checkpoint: Path,
) -> None:
    """A study written by the previous version holds one ``fingerprint``: it resumes when that
    matches, and one with trials is refused, saying why the part cannot be named, when it does
    not."""
    monkeypatch.chdir(tmp_path)
    cfg = tmp_path / "c.toml"
    config_text = CONFIG.format(seed=0, ckpt=mlp_checkpoint.as_posix(), n=2)
    for name, matches in (("old-same", True), ("old-other", False)):
        cfg.write_text(config_text.replace('study = "ident"', f'study = "{name}"'))
        config = load_config(cfg)
        search_cfg, _, rd = api.study_of(config, None, None, None)
        space, _, extra = api.prepare_from_config(config, search_cfg, None)
        old = fingerprint(search_cfg, space, extra[LEGACY]) if matches else "0123456789abcdef"
        storage = open_storage(None, rd)
        study = optuna.create_study(study_name=name, storage=storage, direction="maximize")
        study.set_user_attr("fingerprint", old)  # what the previous version stored
        if not matches:  # a trial of its own (a study without one takes the new config)
            study.add_trial(optuna.trial.create_trial(value=0.5))
        del study, storage
        code, err = _run(["search", "-c", str(cfg), "-q"], capsys)
        if matches:
            assert code == 0, err
            assert _trials(rd) == 2
        else:
            assert code == 2
            (line,) = err.strip().splitlines()
            assert "made by an earlier quantsearch" in line and "--study" in line, line


def test_a_run_directory_holding_another_study_is_not_written(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    mlp_checkpoint: Path,
) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = tmp_path / "c.toml"
    cfg.write_text(CONFIG.format(seed=0, ckpt=mlp_checkpoint.as_posix(), n=2))
    assert _run(["search", "-c", str(cfg), "-q"], capsys)[0] == 0
    rd = tmp_path / "runs" / "ident"
    before = _digest(rd)
    config = load_config(cfg)
    search_cfg, _, _ = api.study_of(config, None, "other", None)
    space, evaluator, extra = api.prepare_from_config(config, search_cfg, None)
    with pytest.raises(ConfigError, match=r"holds study 'ident', not 'other'"):
        api.run_search(
            space, evaluator, search_cfg, run_dir=rd, storage=None, study_name="other",
            fingerprint_extra=extra,
        )  # fmt: skip
    assert _digest(rd) == before
    assert json.loads((rd / "best.json").read_text())["study"] == "ident"


def test_user_code_is_loaded_from_the_config_folder_not_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "cfg").mkdir()
    (tmp_path / "work").mkdir()
    (tmp_path / "cfg" / "net.py").write_text(
        "import torch.nn as nn\n\ndef build():\n    return nn.Sequential(nn.Linear(64, 10))\n"
    )
    (tmp_path / "work" / "net.py").write_text(
        "def build():\n    raise RuntimeError('the working directory net.py ran')\n"
    )
    (tmp_path / "cfg" / "user.toml").write_text(
        '[model]\nname = "net.py:build"\n[data]\nname = "digits"\n'
    )
    monkeypatch.chdir(tmp_path / "work")
    code, err = _run(["summary", "-c", "../cfg/user.toml", "--json"], capsys)
    assert code == 0, err
    # And a file only in the working directory is not found.
    (tmp_path / "cfg" / "net.py").unlink()
    code, err = _run(["summary", "-c", "../cfg/user.toml", "--json"], capsys)
    assert code == 2
    assert re.fullmatch(
        r"error: model\.name: got .*, whose file 'net\.py' does not exist in .*cfg.*\n", err
    ), err
