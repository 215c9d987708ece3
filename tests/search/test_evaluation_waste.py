"""Evaluation waste: trials a search spends on configs it already knows while it could stop or
propose a new one. Referee: the counting model (:mod:`tests.search.counting`), whose forward
passes count the validation samples actually run, and the trials' own config hashes.
"""

from __future__ import annotations

import pytest

from quantsearch.data import DataSplits
from quantsearch.search import search
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
