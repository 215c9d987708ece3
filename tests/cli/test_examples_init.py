"""``--config NAME``, ``quantsearch examples`` and ``quantsearch init``, through the real CLI."""

from __future__ import annotations

import json
import tomllib
from importlib.resources import files
from pathlib import Path

import pytest

from quantsearch.cli import main
from quantsearch.config import load_config
from quantsearch.examples import list_examples

USER_CODE = """
import torch
from torch import nn

def build():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))

def load():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(300, 8, generator=g)
    return x, (x[:, 0] > 0).long() + (x[:, 1] > 0).long()
"""


def test_examples_lists_every_packaged_toml_with_its_first_comment(
    capsys: pytest.CaptureFixture[str],
) -> None:
    main(["examples", "--json"])
    rows = json.loads(capsys.readouterr().out)
    package = files("quantsearch.examples")
    tomls = sorted(e.name for e in package.iterdir() if e.name.endswith(".toml"))
    assert [r["name"] + ".toml" for r in rows] == tomls
    first = package.joinpath("jsc_tiny.toml").read_text().splitlines()[0]
    assert {r["name"]: r["description"] for r in rows}["jsc_tiny"] == first.lstrip("# ")
    main(["examples"])
    out = capsys.readouterr().out
    assert all(r["name"] in out for r in rows)


def test_each_description_is_the_whole_first_sentence_of_its_comment() -> None:
    """A first comment line that runs on (most of them) was cut mid-sentence, with an open
    parenthesis ('... (data_in and weight of every linear layer')."""
    package = files("quantsearch.examples")
    for name, description in list_examples():
        text = package.joinpath(f"{name}.toml").read_text()
        comment = " ".join(ln.lstrip("#").strip() for ln in text.splitlines() if ln[:1] == "#")
        assert comment.startswith(description), name
        assert description.endswith("."), (name, description)
        for left, right in ("()", "{}", "[]"):
            assert description.count(left) == description.count(right), (name, description)
    lab = dict(list_examples())["mlp_digits_lab"]
    assert lab.endswith("bias as weight) on scikit-learn's digits, by op kind.")


def test_config_name_resolves_through_the_installed_package_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)  # no examples/ folder here: only the package data can answer
    cfg = load_config("cnn_digits")
    packaged = Path(str(files("quantsearch.examples").joinpath("cnn_digits.toml")))
    assert cfg.source == "cnn_digits"
    assert cfg.model.name == tomllib.loads(packaged.read_text())["model"]["name"]
    with pytest.raises(SystemExit):  # found and read: it asks for its trained weights next
        main(["summary", "--config", "cnn_digits", "--json"])
    assert capsys.readouterr().err.startswith("error: model.checkpoint: got 'runs/cnn-")
    with pytest.raises(SystemExit) as exc:
        main(["summary", "--config", "cnn_digitz"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --config: got 'cnn_digitz', which does not exist")
    assert "cnn_digits" in err and len(err.strip().splitlines()) == 1


def test_init_writes_a_starter_that_searches_and_never_overwrites(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my.py").write_text(USER_CODE)
    (tmp_path / "cfg").mkdir()
    out = "cfg/search.toml"
    main(["init", "--model", "my.py:build", "--data", "my.py:load", "-o", out])
    text = (tmp_path / out).read_text()
    assert text.startswith("# ") and 'name = "../my.py:build"' in text  # relative to the file
    main(["train", "--config", out, "--epochs", "2"])
    main(["search", "--config", out, "--n-trials", "3", "--strategy", "random",
          "--run-dir", str(tmp_path / "run"), "--quiet"])  # fmt: skip
    assert (tmp_path / "run" / "search" / "trials.csv").is_file()  # study: the stem
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main(["init", "--model", "my.py:build", "--data", "my.py:load", "-o", out])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err == (
        f"error: --output: got {out!r}, which exists, allowed: a new file (give another path or "
        "remove it)\n"
    )
    assert (tmp_path / out).read_text() == text
    with pytest.raises(SystemExit):
        main(["init", "--model", "nope.py:build", "--data", "my.py:load", "-o", "x.toml"])
    assert capsys.readouterr().err == (
        "error: --model: got 'nope.py:build', whose file 'nope.py' does not exist, allowed: "
        "file.py:function naming a file\n"
    )


def test_the_starters_commented_options_are_valid_when_uncommented(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The starter's commented [metrics] block and "auto" space line, uncommented, load (the
    referee: the config loader the CLI runs), so a user who follows the comments gets a config."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my.py").write_text(USER_CODE)
    (tmp_path / "task.py").write_text("def evaluate(model, batches):\n    return {}\n")
    main(["init", "--model", "my.py:build", "--data", "my.py:load", "-o", "search.toml"])
    text = (tmp_path / "search.toml").read_text()
    lines = text.splitlines()
    uncomment = ("# [metrics]", "# evaluate = ", "# directions = ", "# weight = { width")
    out = []
    for line in lines:
        if line.startswith("weight = [["):
            continue  # the auto line replaces the pairs
        out.append(line[2:] if line.startswith(uncomment) else line)
    assert sum(a != b for a, b in zip(out, lines, strict=False)) >= 4
    (tmp_path / "edited.toml").write_text("\n".join(out))
    cfg = load_config(tmp_path / "edited.toml")
    assert cfg.metrics.evaluate is not None and cfg.metrics.evaluate.endswith("task.py:evaluate")
    assert cfg.metrics.directions == {"max_abs_error": "minimize"}
    assert cfg.search is not None and "auto" in str(cfg.search.space)
