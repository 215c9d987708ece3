"""A study that holds no trial takes a corrected config instead of refusing it.

A search whose float baseline fails (a user's evaluate function that raises, a metric the
model's output cannot give) leaves its study in the run directory with the identity of that
config. The user corrects the config and runs again: the empty study has nothing to mix, so it
is made anew for the new config (one ``warning:`` line) rather than refused. A study with trials,
one shared with workers, or one whose directions differ is refused as before.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch

from quantsearch.checkpoint import save_checkpoint
from quantsearch.errors import ConfigError, MetricError
from quantsearch.models import build_model
from quantsearch.search import search
from quantsearch.search.identity import StudyMadeAnew
from tests.cli.bad_input import digest, run_cli

SPACE = {"by": "type", "choices": {"linear": {"weight": [[8, 4], [4, 2], [2, 1]]}}}


def _setup() -> tuple[torch.nn.Module, tuple[torch.Tensor, torch.Tensor]]:
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    data = (torch.randn(64, 16, generator=g), torch.randint(0, 5, (64,), generator=g))
    return build_model("jsc-tiny").eval(), data


def failing(model: Any, batches: Any) -> dict[str, float]:
    raise KeyError("no such column")


def agree(model: Any, batches: Any) -> dict[str, float]:
    hits = [(model(x).argmax(1) == y).float().mean() for x, y in batches]
    return {"agree": float(torch.stack(hits).mean())}


def test_a_study_whose_baseline_failed_takes_the_corrected_config(tmp_path: Path) -> None:
    model, data = _setup()
    run = tmp_path / "run"
    with pytest.raises(MetricError, match="evaluate function 'failing' failed"):
        search(
            model, data, space=SPACE, run_dir=run, n_trials=2, evaluate=failing,
            evaluate_directions={"hits": "maximize"}, objectives={"hits": {}},
        )  # fmt: skip
    with pytest.warns(StudyMadeAnew, match=r"made with different .*objectives.*holds no trial"):
        got = search(
            model, data, space=SPACE, run_dir=run, n_trials=2, evaluate=agree,
            objectives={"agree": {"direction": "maximize"}},
        )  # fmt: skip
    assert len(got.trials) == 2
    # the referee: the same config searched in a run directory of its own
    fresh = search(
        model, data, space=SPACE, run_dir=tmp_path / "fresh", n_trials=2, evaluate=agree,
        objectives={"agree": {"direction": "maximize"}},
    )  # fmt: skip
    assert got.baseline == fresh.baseline and "agree" in got.baseline
    assert [t.metrics for t in got.trials] == [t.metrics for t in fresh.trials]
    # resumed again with the same config: no warning, the same study
    with warnings.catch_warnings():
        warnings.simplefilter("error", StudyMadeAnew)
        again = search(
            model, data, space=SPACE, run_dir=run, n_trials=3, evaluate=agree,
            objectives={"agree": {"direction": "maximize"}},
        )  # fmt: skip
    assert len(again.trials) == 3


def test_a_study_with_trials_or_other_directions_is_still_refused(tmp_path: Path) -> None:
    model, data = _setup()
    objectives = {"accuracy": {"direction": "maximize"}}
    search(model, data, space=SPACE, run_dir=tmp_path / "a", n_trials=2, objectives=objectives)
    with pytest.raises(
        ConfigError, match=r"made with different objectives, allowed: .*; pass --study"
    ):
        search(
            model, data, space=SPACE, run_dir=tmp_path / "a", n_trials=2,
            objectives={"loss": {"direction": "minimize"}},
        )  # fmt: skip
    # no trial, but a Pareto study of two directions cannot become one of one
    with pytest.raises(MetricError):
        search(
            model, data, space=SPACE, run_dir=tmp_path / "b", n_trials=2, evaluate=failing,
            evaluate_directions={"hits": "maximize"},
            objectives={"hits": {}, "bitops": {}, "combine": "pareto"},
        )  # fmt: skip
    with pytest.raises(ConfigError, match=r"made with different .*; pass --study"):
        search(model, data, space=SPACE, run_dir=tmp_path / "b", n_trials=2, objectives=objectives)


TOML = """seed = 0
[model]
name = "jsc-tiny"
checkpoint = "tiny.pt"
[data]
name = "task.py:load"
[metrics]
evaluate = "task.py:{fn}"
directions = {{ {metric} = "maximize" }}
[search]
n_trials = 2
study = "s"
[search.strategy]
name = "random"
[search.space.choices.linear]
weight = [[8, 4], [4, 2]]
[search.objectives]
{metric} = {{ direction = "maximize" }}
"""

TASK = """import torch

def load():
    g = torch.Generator().manual_seed(0)
    return torch.randn(300, 16, generator=g), torch.randint(0, 5, (300,), generator=g)

def failing(model, batches):
    raise KeyError("no such column")

def agree(model, batches):
    hits = [(model(x).argmax(1) == y).float().mean() for x, y in batches]
    return {"agree": float(torch.stack(hits).mean())}
"""


def test_the_cli_says_so_in_one_warning_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "task.py").write_text(TASK)
    save_checkpoint(
        tmp_path / "tiny.pt", _setup()[0], model_name="jsc-tiny", dataset="task.py:load"
    )
    cfg = tmp_path / "c.toml"
    cfg.write_text(TOML.format(fn="failing", metric="hits"))
    code, err = run_cli(["search", "-c", str(cfg), "-q"], capsys)
    assert code == 2 and err.startswith("error: evaluate function 'failing' failed"), err
    before = digest(tmp_path / "runs" / "s")
    cfg.write_text(TOML.format(fn="agree", metric="agree"))
    code, err = run_cli(["search", "-c", str(cfg), "-q"], capsys)
    assert code == 0, err
    (line,) = err.strip().splitlines()
    assert re.fullmatch(
        r"warning: --study: got 's', .* different .*, and holds no trial: .*", line
    ), line
    assert digest(tmp_path / "runs" / "s") != before
    assert (tmp_path / "runs" / "s" / "best.json").is_file()
