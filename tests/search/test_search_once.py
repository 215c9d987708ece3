"""``search_from_config`` (what ``quantsearch search`` runs) loads the config's model and data
once and writes the result files once, and what it writes is a function of the study: a
resumed run (no trial left to run) rewrites every file byte for byte.

Referees: the checkpoint the config names (``torch.load`` of it, for ``model.pt``'s weights),
and the first run's own files (for the resumed one).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

import quantsearch.session
from quantsearch.config import load_config
from quantsearch.errors import QuantsearchError
from quantsearch.search.api import search_from_config
from quantsearch.search.results import SearchResult

CONFIG = """
seed = 0
[model]
name = "mlp-digits"
checkpoint = "{ckpt}"
[data]
name = "digits"
[search]
n_trials = 6
[search.strategy]
name = "brute_force"
[search.space.choices.linear]
weight = [[8, 4], [4, 2], [3, 1]]
data_in = [[8, 4], [6, 3]]
[search.objectives]
combine = "weighted_sum"
accuracy = {{ direction = "maximize", weight = 1.0 }}
model_size_bits = {{ direction = "minimize", weight = 0.2, relative_to_baseline = true }}
"""

FILES = (
    "baseline.json",
    "best.json",
    "trials.csv",
    "trials.jsonl",
    "search_config.json",
    "model.pt",
)


def _counting(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str) -> list[int]:
    """Count the calls of ``owner.name``, which still runs."""
    calls: list[int] = []
    real = getattr(owner, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, wrapper)
    return calls


def test_search_loads_data_once_writes_files_once_and_resumes_to_the_same_files(
    write_config: Callable[..., Path],
    mlp_checkpoint: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = load_config(write_config(CONFIG.format(ckpt=mlp_checkpoint), name="once.toml"))
    loads = _counting(monkeypatch, quantsearch.session, "load_dataset")
    writes = _counting(monkeypatch, SearchResult, "write")
    result = search_from_config(config, run_dir=str(tmp_path))
    assert (len(loads), len(writes)) == (1, 1)  # were 2 and 2: finish_run opened its own
    assert len(result.trials) == 6

    rd = tmp_path / "once"
    first = {f: (rd / f).read_bytes() for f in FILES}
    saved = torch.load(rd / "model.pt", weights_only=False)["state_dict"]
    source = torch.load(mlp_checkpoint, weights_only=False)["state_dict"]
    assert saved.keys() == source.keys()
    assert all(torch.equal(saved[k], source[k]) for k in source)  # the search left them alone
    best = result.best
    assert best is not None and set(result.test_metrics) == {best.number}

    again = search_from_config(config, run_dir=str(tmp_path))  # resumes: no trial left
    assert len(again.trials) == 6
    assert (len(loads), len(writes)) == (2, 2)
    assert {f: (rd / f).read_bytes() for f in FILES} == first


def test_the_trials_files_are_written_when_the_end_of_run_fails(
    write_config: Callable[..., Path], mlp_checkpoint: Path, tmp_path: Path
) -> None:
    """model.pt cannot be written (a folder stands in its place): the command fails, and the
    trials' files are still written, as they were before model.pt when the files came first."""
    config = load_config(write_config(CONFIG.format(ckpt=mlp_checkpoint), name="once.toml"))
    (tmp_path / "once" / "model.pt").mkdir(parents=True)
    with pytest.raises(QuantsearchError, match=r"model\.pt"):
        search_from_config(config, run_dir=str(tmp_path))
    rd = tmp_path / "once"
    assert all((rd / f).is_file() for f in FILES if f != "model.pt")
    assert len(SearchResult.read(rd).trials) == 6
