"""Evaluation waste: trials a search spends on configs it already knows while it could stop or
propose a new one. Referee: the counting model (:mod:`tests.search.counting`), whose forward
passes count the validation samples actually run, and the trials' own config hashes.
"""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState
from torch import nn

from quantsearch.data import DataSplits
from quantsearch.graph import trace
from quantsearch.search import search
from quantsearch.search.cache import EvaluationCache
from quantsearch.search.config import parse_search_config
from quantsearch.search.evaluate import config_hash
from quantsearch.search.parallel import open_coordinator
from quantsearch.search.parallel.liveness import mark
from quantsearch.search.prepare import prepare_search
from quantsearch.search.trial_objective import TrialObjective
from tests.search.counting import Counter, counting_mlp
from tests.search.spaces import LAB_SPACE

OBJ = {
    "accuracy": {"direction": "maximize", "weight": 1.0},
    "model_size_bits": {"direction": "minimize", "weight": 0.2, "relative_to_baseline": True},
}


@pytest.mark.parametrize("strategy", ["brute_force", "local", "sensitivity", "random"])
def test_threads_stop_when_the_last_configs_are_in_flight(
    digits: DataSplits, strategy: str
) -> None:
    """With ``n_jobs`` threads, a thread that finds every config of the space evaluated or being
    evaluated by another thread stops: it took ticket after ticket and answered repeats from
    the cache (brute force on the lab's 16 points with 2 threads and 40 trials: 29 to 40 trials,
    13 to 24 of them repeats after the last config was proposed). At most ``n_jobs - 1`` trials
    may still be on their way when the last config is taken.

    Our samplers see the point another thread's trial was just given before that trial stores
    it (local search proposed it again: 19 trials for 16 points), and the sensitivity
    strategy probes the float model once (two threads both probed it: 360 samples more)."""
    gm = counting_mlp(digits)
    for _ in range(3):
        Counter.reset()
        result = search(
            gm, digits.val, space=LAB_SPACE, objectives=OBJ, strategy=strategy, n_trials=40,
            n_jobs=2,
        )  # fmt: skip
        distinct = len({t.config_hash for t in result.trials})
        probe = int(strategy == "sensitivity")  # one forward and backward pass of the data
        assert Counter.samples == len(digits.val) * (1 + distinct + probe)  # baseline, each once
        if strategy != "random":  # ours cover the space and repeat no point while one is new
            assert distinct == 16 and len(result.trials) <= 16 + 1


# Each Linear's weight from fixed(8, 0..8) and fixed(8, "auto"), which calibrates to one of them:
# 10 x 10 points, 9 x 9 configs.
AUTO_SPACE = {
    "by": "name",
    "choices": {"linear": {"weight": [[8, "auto"]] + [[8, f] for f in range(9)]}},
}


@pytest.mark.parametrize("strategy", ["brute_force", "local", "sensitivity"])
def test_our_strategies_spend_no_trial_on_a_known_config_while_one_is_new(
    digits: DataSplits, strategy: str
) -> None:
    """Two points that resolve to one config (``"auto"`` beside the choice it calibrates to)
    are one config to our samplers: proposing the second was a cache hit, a trial spent while
    new configs were left (in 81 trials brute force met 73 of the 81 configs, local search and
    the sensitivity strategy 64, with 8, 17 and 17 cache hits). Optuna's samplers (random, TPE,
    NSGA, QMC, GP, grid) propose as Optuna does: their repeats are cache hits at no cost."""
    gm = counting_mlp(digits)
    result = search(
        gm, digits.val, space=AUTO_SPACE, objectives=OBJ, strategy=strategy, n_trials=81,
        calibration_data=digits.train.x[:64],
    )  # fmt: skip
    assert len({t.config_hash for t in result.trials}) == 81
    assert not any(t.cached for t in result.trials)


def test_a_budget_between_the_configs_and_the_points_stops_on_exhaustion(
    digits: DataSplits,
) -> None:
    """90 trials on 100 points of 81 configs: once every config is known the search stops.
    Only a budget of the space's size was checked for exhaustion, so brute force answered 9
    repeats from the cache after its 81 configs."""
    gm = counting_mlp(digits)
    result = search(
        gm, digits.val, space=AUTO_SPACE, objectives=OBJ, strategy="brute_force", n_trials=90,
        calibration_data=digits.train.x[:64],
    )  # fmt: skip
    assert len(result.trials) == result.n_evaluations == 81


def test_workers_stop_when_the_last_configs_are_in_flight_in_another(
    tmp_path: Path, mlp: nn.Module, digits: DataSplits
) -> None:
    """Workers on one journal study (claims in its ``coordination.db``): with every config
    done but one that another worker's live trial is evaluating, a worker stops; it went on
    taking tickets and answering repeats (2 workers, brute force, the lab space, a model of
    0.5 s an evaluation: 20 trials, 4 of them repeats after the last config was claimed). A
    claim whose trial is no longer running does not count."""
    cfg = parse_search_config({"space": LAB_SPACE, "objectives": OBJ, "n_trials": 40})
    space, evaluator = prepare_search(trace(mlp, digits.val.x[:8]), cfg, digits.val)
    storage = JournalStorage(JournalFileBackend(str(tmp_path / "study.journal")))
    study = optuna.create_study(study_name="s", storage=storage)
    with open_coordinator(None, tmp_path, "s", workers=2) as coord:
        coord.attach(study)
        claims = coord.claims
        assert claims is not None
        objective = TrialObjective(evaluator, space, cfg, {}, EvaluationCache(), claims)
        keys = [config_hash(evaluator.resolve(space.layer_formats(p)).key()) for p in space.enumerate()]  # fmt: skip
        for n, key in enumerate(keys[:-1]):
            claims.complete(key, n, {"metrics": {}, "trial": n})
        running = study.ask()  # the other worker's trial on the last config
        mark(running)
        assert claims.claim(keys[-1], running.number).owned
        assert objective.left_to_exhaust() == 0 and objective.exhausted()
        study.tell(running, state=TrialState.FAIL)  # its worker died: the config is not in hand
        assert objective.left_to_exhaust() == 1 and not objective.exhausted()


def test_a_resumed_sensitivity_search_does_not_probe_again(
    tmp_path: Path, digits: DataSplits
) -> None:
    """The sensitivity strategy's probe (a forward and backward pass of the validation split)
    is kept in the study: a resumed search, a new process, probed the float model again."""
    gm = counting_mlp(digits)
    kw = {"space": LAB_SPACE, "objectives": OBJ, "strategy": "sensitivity", "run_dir": tmp_path}
    first = search(gm, digits.val, n_trials=5, **kw)  # type: ignore[arg-type]
    assert Counter.samples == len(digits.val) * (1 + 1 + 5)  # baseline, probe, five configs
    Counter.reset()
    again = search(gm, digits.val, n_trials=10, **kw)  # type: ignore[arg-type]
    assert [t.params for t in again.trials[:5]] == [t.params for t in first.trials]
    assert len({t.config_hash for t in again.trials}) == 10
    assert Counter.samples == len(digits.val) * 5  # five new configs, nothing else
