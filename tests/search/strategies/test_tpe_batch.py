"""TPE through the batched trial path proposes and stores what Optuna's TPESampler does.

Referee: ``optuna.samplers.TPESampler(seed=...)`` itself: driven in lockstep through Optuna's
``ask`` and suggestions against ``IncrementalTPESampler.propose_batch``, and as the sampler of
the same whole search run through Optuna's ask and tell (the ``tpe`` strategy builds Optuna's
sampler when given an option, here its default ``n_startup_trials``), both studies read back
from their journal files by Optuna's own reader (``tests/search/test_batch.py``'s ``_stored``);
a real search process killed with SIGKILL for the resume.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
import torch
from optuna.trial import FrozenTrial, TrialState, create_trial
from torch import nn

from quantsearch.data import DataSplits, load_dataset
from quantsearch.graph import trace
from quantsearch.passes.transform.modules import quantizable_kinds
from quantsearch.search import optuna_compat, search
from quantsearch.search.batch import Batches
from quantsearch.search.space import SearchSpace, parse_space
from quantsearch.search.strategies.base import Encoding
from quantsearch.search.strategies.tpe import IncrementalTPESampler
from tests.kill import kill_after
from tests.search.test_batch import _stored
from tests.search.test_failed_configs import OBJ as NAN_OBJ
from tests.search.test_failed_configs import SPACE as NAN_SPACE
from tests.search.test_failed_configs import NaNBelowWidth

optuna.logging.set_verbosity(optuna.logging.WARNING)

# Per layer, with a knob of one choice (Trial._suggest draws nothing for it) among knobs of 4,
# 3 and 2 choices.
SPACE = {
    "by": "name",
    "choices": {
        "seq_blocks_0": {"data_in": [[16, 8], [8, 6], [8, 4], [4, 2]], "weight": [[8, 4]]},
        "seq_blocks_3": {"data_in": [[16, 8], [8, 4], [4, 2]], "weight": [[8, 4], [4, 2]]},
    },
}
# Optuna's TPESampler through the strategy: an option (its default) builds Optuna's own.
OPTUNA_TPE = {"name": "tpe", "options": {"n_startup_trials": 10}}


def _mirror(trial: FrozenTrial) -> FrozenTrial:
    """A finished trial of Optuna's study, to store in ours as it stands there."""
    return create_trial(
        state=trial.state,
        value=trial.value if trial.state == TrialState.COMPLETE else None,
        params=trial.params,
        distributions=trial.distributions,
        system_attrs=trial.system_attrs,
        intermediate_values=trial.intermediate_values,
    )


@pytest.mark.parametrize("direction", ["maximize", "minimize"])
def test_propose_batch_is_optunas_ask_trial_for_trial(
    mlp: nn.Module, digits: DataSplits, direction: str
) -> None:
    """300 trials: each point ``propose_batch`` gives equals the one Optuna's ``ask`` and the
    suggestions of the knobs in order give, with a history of ties, constraints (met and
    violated), pruned and failed trials, through the random start-up and after it."""
    space = SearchSpace(parse_space(SPACE), trace(mlp, digits.val.x[:8]), set(quantizable_kinds()))
    assert [k.size for k in space.knobs] == [4, 1, 3, 2]
    theirs = optuna.create_study(direction=direction, sampler=optuna.samplers.TPESampler(seed=7))
    sampler = IncrementalTPESampler(seed=7, space=space)
    ours = optuna.create_study(direction=direction, sampler=sampler)
    rng = np.random.default_rng(7)
    for n in range(300):
        trial = theirs.ask()
        suggested = {k.name: trial.suggest_categorical(k.name, k.labels) for k in space.knobs}
        assert sampler.propose_batch(ours, 1) == [space.decode(suggested)], f"trial {n}"
        draw, value = rng.random(), float(np.round(rng.random(), 1))  # ties
        if draw < 0.15:
            optuna_compat.set_constraints(trial, [0.15 - draw, -1.0])  # violated
        elif draw < 0.3:
            optuna_compat.set_constraints(trial, [-draw, 0.0])  # met
        if draw > 0.95:
            trial.report(value, step=int(draw * 100) % 3)
            theirs.tell(trial, state=TrialState.PRUNED)
        elif draw > 0.9:
            theirs.tell(trial, state=TrialState.FAIL)
        else:
            theirs.tell(trial, value)
        ours.add_trial(_mirror(theirs.trials[-1]))
    states = {t.state for t in ours.trials}
    assert states == {TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL}
    with pytest.raises(ValueError, match="one trial at a time"):
        sampler.propose_batch(ours, 2)


@pytest.mark.parametrize("encoding", ["categorical", "ordinal"])
def test_the_start_up_is_proposed_in_batches_as_optunas_ask_draws_it(
    mlp: nn.Module, digits: DataSplits, encoding: Encoding
) -> None:
    """During the random start-up ``propose_batch`` gives up to ``batch_limit`` points at once,
    each the one Optuna's ``ask`` and suggestions give that trial; the batch's trials are stored
    after it, as the batched path stores them. A failed trial does not count towards the
    start-up, so the limit shrinks by the finished trials only, and is 1 after it."""
    space = SearchSpace(parse_space(SPACE), trace(mlp, digits.val.x[:8]), set(quantizable_kinds()))
    dists = space.distributions(encoding)
    theirs = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=3))
    sampler = IncrementalTPESampler(seed=3, space=space, encoding=encoding)
    ours = optuna.create_study(sampler=sampler)
    limits = []
    while len(ours.trials) < 30:
        limits.append(sampler.batch_limit(ours))
        points = sampler.propose_batch(ours, min(limits[-1], 6))
        for point in points:
            trial = theirs.ask()
            suggested = {
                name: trial.suggest_categorical(name, d.choices)  # type: ignore[attr-defined]
                if encoding == "categorical"
                else trial.suggest_int(name, d.low, d.high)  # type: ignore[attr-defined]
                for name, d in dists.items()
            }
            assert point == space.decode(suggested), f"trial {trial.number}"
            if trial.number in (2, 5, 11):
                theirs.tell(trial, state=TrialState.FAIL)
            else:
                theirs.tell(trial, float(trial.number % 7))
        for t in theirs.trials[len(ours.trials) :]:
            ours.add_trial(_mirror(t))
    # 10 start-up trials: 6 of 10 (trials 2 and 5 fail), 6 of the 6 left (trial 11 fails), the
    # last start-up trial alone, then one a proposal
    assert limits[:3] == [10, 6, 1] and set(limits[2:]) == {1}
    with pytest.raises(ValueError, match="one trial at a time"):
        sampler.propose_batch(ours, 2)


def _without_liar(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """``_stored`` rows less the constant liar's ``tpe:relative_params`` system attributes,
    which Optuna's TPE writes on a running trial for other workers to read; a trial stored
    finished, by the batched path, never runs."""
    out = []
    for number, state, params, dists, values, system_attrs, attrs in rows:
        kept = {k: v for k, v in system_attrs.items() if not k.startswith("tpe:relative_params")}
        out.append((number, state, params, dists, values, kept, attrs))
    return out


def _nan_search(run_dir: Path, strategy: Any, n_trials: int, digits: DataSplits) -> Any:
    torch.manual_seed(0)
    model = NaNBelowWidth().eval()
    params = 64 * 32 + 32 + 32 * 10 + 10
    return search(
        model, digits.val, space=NAN_SPACE, objectives=NAN_OBJ, strategy=strategy,
        n_trials=n_trials, seed=3, run_dir=run_dir,
        constraints={"model_size_bits": {"max": params * 7.5}, "accuracy_drop": {"max": 0.9}},
    )  # fmt: skip


@pytest.mark.slow  # two 220-trial searches, Optuna's TPE one of them: ~5 s
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_a_tpe_search_stores_optunas_trials_batched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, digits: DataSplits
) -> None:
    """220 trials of the ``tpe`` strategy, every one through the batched path, and the same
    search with Optuna's TPESampler through its ask and tell: the same trials in the same
    order (parameters, states, values, constraints, records), with failed configs (NaN below
    three fraction bits of a bias), pre-checked ones (a size bound) and cache repeats."""
    batches: list[int] = []
    run = Batches.run

    def counted(self: Batches, study: optuna.Study, after: Any) -> None:
        batches.append(len(study.trials))
        run(self, study, after)

    monkeypatch.setattr(Batches, "run", counted)
    # K is paced by measured time (a batch aims at TARGET_S): on a loaded machine the baseline
    # alone outlasted it, K was 1 and the start-up ran one a batch (CI, load 7 on 2 cores)
    monkeypatch.setattr("quantsearch.search.batch.TARGET_S", 60.0)
    ours = _nan_search(tmp_path / "ours", "tpe", 220, digits)
    assert type(ours.study.sampler) is IncrementalTPESampler
    sizes = [b - a for a, b in zip(batches, [*batches[1:], 220], strict=True)]
    assert sizes[0] > 1 and set(sizes[-200:]) == {1}  # the start-up batched, then one a batch
    monkeypatch.setattr(Batches, "run", run)
    theirs = _nan_search(tmp_path / "theirs", OPTUNA_TPE, 220, digits)
    assert type(theirs.study.sampler) is optuna.samplers.TPESampler
    trials = ours.trials
    assert sum(t.config_failed for t in trials) > 20 and sum(t.prechecked for t in trials) > 5
    assert sum(t.cached for t in trials) > 20
    stored = _stored(tmp_path / "theirs")
    assert any("tpe:relative_params:0" in row[5] for row in stored)  # Optuna's ask did run
    assert _without_liar(_stored(tmp_path / "ours")) == _without_liar(stored)


# -- kill -9 of a batched TPE search, then resumed ----------------------------------------------

KILL_SPACE = {
    "by": "type",
    "choices": {
        "linear": {
            "weight": {"width": list(range(2, 17)), "frac_width": list(range(0, 9))},
            "data_in": {"width": list(range(2, 17)), "frac_width": list(range(0, 9))},
        }
    },
}


def _kill_search(run_dir: Path, strategy: Any, n_trials: int, **kw: Any) -> Any:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 10)).eval()
    return search(
        model, load_dataset("digits").val, space=KILL_SPACE, strategy=strategy, seed=4,
        objectives={"accuracy": {"direction": "maximize"}}, n_trials=n_trials, run_dir=run_dir,
        **kw,
    )  # fmt: skip


def _tpe_until_killed(run_dir: Path) -> None:
    def announce(study: optuna.Study, trial: FrozenTrial) -> None:
        print(trial.number, time.monotonic(), flush=True)

    _kill_search(run_dir, "tpe", 100_000, callbacks=[announce])


@pytest.mark.slow
def test_a_killed_tpe_search_resumes_as_optunas_does(tmp_path: Path) -> None:
    """A batched TPE search killed with SIGKILL keeps its finished trials, and resumed it goes
    on as a search with Optuna's TPESampler stopped after as many trials and resumed does."""
    code = (
        "import sys; from pathlib import Path; "
        "from tests.search.strategies.test_tpe_batch import _tpe_until_killed; "
        "_tpe_until_killed(Path(sys.argv[1]))"
    )
    root = Path(__file__).parents[3]
    # 0.5 s: 330-460 trials, 160-240 of them on disk for sure (at load 3); 1.5 s made 1,173,
    # and Optuna's TPE over as many was 10 of this test's 15 s
    old = kill_after([sys.executable, "-c", code, str(tmp_path / "ours")], 0.5, cwd=root)
    assert old, "no trial finished long enough before the kill: nothing was tested"
    kept = [row for row in _stored(tmp_path / "ours") if row[1] == TrialState.COMPLETE]
    n = len(kept)
    assert {row[0] for row in kept} >= old and n > 15  # past TPE's random start-up
    _kill_search(tmp_path / "ours", "tpe", n + 30)
    _kill_search(tmp_path / "theirs", OPTUNA_TPE, n)
    _kill_search(tmp_path / "theirs", OPTUNA_TPE, n + 30)
    stored = _without_liar(_stored(tmp_path / "theirs"))
    assert len(stored) == n + 30
    assert _without_liar(_stored(tmp_path / "ours")) == stored
