"""The batched trial path (search/batch.py) stores the trials the one-at-a-time path stores.

Referee: the same search with batches off (every trial through Optuna's ask, suggest and tell),
both studies read back from their journal files by Optuna's own, unmodified reader; and a real
process killed with SIGKILL for durability.
"""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import optuna
import pytest
import torch
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from torch import nn

import quantsearch.search.batch as batch_module
from quantsearch.data import DataSplits, load_dataset
from quantsearch.search import search
from quantsearch.search.batch import MAX_K, TARGET_S, Batches, first_k
from quantsearch.search.parallel import WORKER_ATTR
from tests.kill import kill_after
from tests.search.spaces import LAB_SPACE
from tests.search.test_failed_configs import SPACE as NAN_SPACE
from tests.search.test_failed_configs import NaNBelowWidth

OBJ = {
    "accuracy": {"direction": "maximize", "weight": 1.0},
    "model_size_bits": {"direction": "minimize", "weight": 0.2, "relative_to_baseline": True},
}


def _stored(run_dir: Path) -> list[tuple[Any, ...]]:
    """Every trial as Optuna's own reader loads it, less what differs between two runs of one
    search (evaluation seconds, the worker's process id, timestamps)."""
    storage = JournalStorage(JournalFileBackend(str(run_dir / "study.journal")))
    study = optuna.load_study(study_name="search", storage=storage)
    out = []
    for t in study.trials:
        attrs = {k: v for k, v in t.user_attrs.items() if k != WORKER_ATTR}
        attrs["qs"] = {k: v for k, v in attrs["qs"].items() if k != "eval_seconds"}
        assert t.datetime_start is not None and t.datetime_complete is not None
        out.append((t.number, t.state, t.params, t.distributions, t.values, t.system_attrs, attrs))
    return out


def _both(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **kw: Any) -> Any:
    """The search batched (its result) and, in ``single``, one trial at a time."""
    batched = search(run_dir=tmp_path / "batched", **kw)
    with monkeypatch.context() as m:
        m.setattr(Batches, "usable", staticmethod(lambda *a: False))
        search(run_dir=tmp_path / "single", **kw)
    return batched


def test_brute_force_stores_the_same_trials_batched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mlp: nn.Module, digits: DataSplits
) -> None:
    kw = dict(model=mlp, data=digits.val, space=LAB_SPACE, objectives=OBJ)
    batched = _both(
        tmp_path, monkeypatch, strategy="brute_force", n_trials=100, **kw
    )  # fmt: skip
    assert len(batched.trials) == 16 and batched.n_evaluations == 16  # exhausted: stopped
    assert _stored(tmp_path / "batched") == _stored(tmp_path / "single")


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_failed_and_prechecked_configs_are_stored_alike(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, digits: DataSplits
) -> None:
    """NaN below three fraction bits of either bias (8 in 9 configs fail, at the worst values
    seen before them) and a size bound that pre-checks the widest weights."""
    torch.manual_seed(0)
    model = NaNBelowWidth().eval()
    params = 64 * 32 + 32 + 32 * 10 + 10
    batched = _both(
        tmp_path, monkeypatch, model=model, data=digits.val, space=NAN_SPACE, objectives=OBJ,
        strategy="brute_force", n_trials=60,
        constraints={"model_size_bits": {"max": params * 7.5}, "accuracy_drop": {"max": 0.9}},
    )  # fmt: skip
    trials = batched.trials
    assert sum(t.config_failed for t in trials) > 10 and sum(t.prechecked for t in trials) > 5
    assert _stored(tmp_path / "batched") == _stored(tmp_path / "single")


def test_n_evaluations_and_resume_are_kept_batched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mlp: nn.Module, digits: DataSplits
) -> None:
    kw = dict(model=mlp, data=digits.val, space=LAB_SPACE, objectives=OBJ, strategy="brute_force")
    part = search(run_dir=tmp_path / "batched", n_trials=100, n_evaluations=5, **kw)
    assert len(part.trials) == 5 and part.n_evaluations == 5
    search(run_dir=tmp_path / "batched", n_trials=11, **kw)  # resumed: 6 more
    with monkeypatch.context() as m:
        m.setattr(Batches, "usable", staticmethod(lambda *a: False))
        search(run_dir=tmp_path / "single", n_trials=11, **kw)
    assert _stored(tmp_path / "batched") == _stored(tmp_path / "single")


def test_trials_go_in_batches_and_callbacks_see_every_trial(
    mlp: nn.Module, digits: DataSplits, monkeypatch: pytest.MonkeyPatch
) -> None:
    # K is paced by measured time (a batch aims at TARGET_S): on a loaded machine a float
    # baseline or a batch past 50 ms made every batch one trial. A long target keeps the
    # check about batching, not about the machine's speed.
    monkeypatch.setattr(batch_module, "TARGET_S", 60.0)
    seen: list[int] = []
    result = search(
        mlp, digits.val, space=LAB_SPACE, objectives=OBJ, strategy="brute_force", n_trials=16,
        callbacks=[lambda study, trial: seen.append(trial.number)],
    )  # fmt: skip
    assert seen == list(range(16))
    starts = {t.datetime_start for t in result.study.trials}  # type: ignore[union-attr]
    # one start per batch: the first batch is sized from the float baseline's time (a few ms
    # here, so up to all 16 points at once), the next ones from the batches' pace
    assert len(starts) < 16


# -- kill -9 of a batched search: what finished before the flush interval is kept -------------

_CTX = multiprocessing.get_context("spawn")


def _search_until_killed(run_dir: Path) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 10)).eval()
    widths = {"width": list(range(2, 17)), "frac_width": list(range(0, 9))}
    space = {"by": "type", "choices": {"linear": {"weight": widths, "data_in": widths}}}

    def announce(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        print(trial.number, time.monotonic(), flush=True)

    search(
        model, load_dataset("digits").val, space=space, strategy="brute_force",
        objectives={"accuracy": {"direction": "maximize"}}, n_trials=100_000, run_dir=run_dir,
        callbacks=[announce],
    )  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("after_s", [1.0, 2.0])
def test_kill_9_of_a_batched_search_keeps_what_finished_before_the_interval(
    tmp_path: Path, after_s: float
) -> None:
    import sys

    code = (
        "import sys; from pathlib import Path; "
        "from tests.search.test_batch import _search_until_killed; "
        "_search_until_killed(Path(sys.argv[1]))"
    )
    root = Path(__file__).parents[2]
    old = kill_after([sys.executable, "-c", code, str(tmp_path)], after_s, cwd=root)
    assert old, "no trial finished long enough before the kill: nothing was tested"
    storage = JournalStorage(JournalFileBackend(str(tmp_path / "study.journal")))
    study = optuna.load_study(study_name="search", storage=storage)
    complete = {t.number for t in study.trials if t.state.name == "COMPLETE"}
    assert old <= complete
    # Resume: the same command goes on from there; no point is evaluated twice.
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 10)).eval()
    widths = {"width": list(range(2, 17)), "frac_width": list(range(0, 9))}
    space = {"by": "type", "choices": {"linear": {"weight": widths, "data_in": widths}}}
    result = search(
        model, load_dataset("digits").val, space=space, strategy="brute_force",
        objectives={"accuracy": {"direction": "maximize"}}, n_trials=len(complete) + 20,
        run_dir=tmp_path,
    )  # fmt: skip
    evaluated = [t.config_hash for t in result.trials if t.evaluated]
    assert len(evaluated) == len(set(evaluated)) == len(complete) + 20


def test_k_follows_the_pace_of_new_evaluations_only() -> None:
    """K is sized so that a batch of *new* configs would take TARGET_S: a batch of cache hits
    and pre-checked trials (microseconds each) must not grow K, or the next batch of new
    configs would run K evaluations, far past the target (and a kill -9 would lose them all).
    The rule is checked on the method the loop calls, with a stand-in for the rest of a batch."""
    state = SimpleNamespace(k=4)
    Batches._adapt(state, 0.001, 0)  # type: ignore[arg-type]  # 200 hits in 1 ms: no evaluation
    assert state.k == 4
    Batches._adapt(state, 0.040, 2)  # type: ignore[arg-type]  # 2 new ones in a 40 ms batch
    assert state.k == first_k(0.020) == int(TARGET_S / 0.020) == 2
    Batches._adapt(state, 1.0, 1)  # type: ignore[arg-type]  # one evaluation of a second
    assert state.k == 1
    Batches._adapt(state, 1e-6, 1)  # type: ignore[arg-type]
    assert state.k == MAX_K
