"""TPE's choice by the closed form of the categorical mixtures is Optuna's choice.

Referees: Optuna's own ``_ParzenEstimator`` (``optuna.samplers._tpe.parzen_estimator``) for the
log-densities, which the closed form equals within rounding (not bit for bit: the sums are
taken in another order), and ``optuna.samplers.TPESampler(seed)`` for whole proposals, driven in
lockstep with ours (``test_tpe.py``'s ``_lockstep``: ties, constraints, pruned, failed, enqueued
and running trials) over many seeds, on the space of ``bench_search.py``'s cnn-digits
bookkeeping (8 knobs of 8 choices) and on MASE's lab space (2 knobs of 4 choices). The proposals
are identical as long as the closed form's rounding (about ``(kernels + knobs) * 2**-52``
relative) stays under ``MARGIN``: two distinct candidates closer than that are decided by
Optuna's own arithmetic, which these runs reach too (exact ties in the first trials).
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution
from optuna.samplers._tpe.parzen_estimator import _ParzenEstimator

from quantsearch.search.strategies import tpe
from quantsearch.search.strategies.tpe_choice import MARGIN, _kernel_weights, clear_choice, log_pdfs
from tests.search.strategies.test_tpe import CATEGORICAL, _lockstep

PARAMS = optuna.samplers.TPESampler(seed=0)._parzen_estimator_parameters
LAB = {k: CategoricalDistribution([f"fixed{w}" for w in range(4)]) for k in ("data_in", "weight")}


@pytest.mark.parametrize(
    "choices",
    [[8] * 8, [2, 3], [10, 2, 7, 4, 5, 9, 6, 3, 8, 2, 10, 4], [5], [16] * 9, [3] * 20, [127, 2]],
)
def test_closed_form_is_optunas_log_density_within_rounding(choices: list[int]) -> None:
    for n in (1, 2, 7, 25, 26, 27, 100, 301, 1001, 2000):
        rng = np.random.default_rng(n + len(choices))
        space = {f"p{i}": CategoricalDistribution(list(range(c))) for i, c in enumerate(choices)}
        observed = np.stack([rng.integers(0, rng.integers(1, c + 1), n) for c in choices], 1)
        observed = observed.astype(float)
        below = observed[: max(1, n // 10)]
        candidates = np.stack([rng.integers(0, c, 24) for c in choices], 1)
        candidates[: min(5, n)] = observed[:5]  # some at a kernel's own choices
        got = log_pdfs([below, observed], choices, PARAMS.prior_weight, PARAMS.weights, candidates)
        assert got is not None
        for obs, ours in zip((below, observed), got, strict=True):
            theirs = _ParzenEstimator(
                {k: obs[:, i] for i, k in enumerate(space)}, space, PARAMS
            ).log_pdf({k: candidates[:, i].astype(float) for i, k in enumerate(space)})
            # within 2e-15 here (relative to the values' size, as MARGIN is): 1e-13 allowed
            error = np.abs(ours - theirs) / np.maximum(1.0, np.abs(theirs))
            assert error.max() <= 1e-13, (choices, n, error.max())


def test_cases_the_closed_form_leaves_to_optuna() -> None:
    none = np.zeros((0, 2))
    one = np.zeros((1, 2))
    candidates = np.array([[0, 1], [1, 0]])
    assert log_pdfs([one, none], [2, 2], 1.0, PARAMS.weights, candidates) is None
    assert log_pdfs([one, one], [2, 2], 0.0, PARAMS.weights, candidates) is None
    assert log_pdfs([one, one], [128, 2], 1.0, PARAMS.weights, candidates) is None
    # a tie by symmetry: the two candidates' values are equal, so no choice is clear
    below, above = np.array([[0.0, 0.0]]), np.array([[1.0, 1.0]])
    tied = np.array([[0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    assert clear_choice(tied, [2, 2], below, above, 1.0, PARAMS.weights) is None
    # one distinct candidate is the choice, whatever the values
    same = np.array([[1.0, 0.0]] * 3)
    assert clear_choice(same, [2, 2], below, above, 1.0, PARAMS.weights) == [1.0, 0.0]
    clear = np.array([[1.0, 1.0], [0.0, 0.0]])  # the below's own point leads by far
    assert clear_choice(clear, [2, 2], below, above, 1.0, PARAMS.weights) == [0.0, 0.0]
    assert MARGIN < 1e-6


def test_default_weights_by_formula_are_optunas_within_rounding() -> None:
    for n in range(0, 3000):
        ours, theirs = _kernel_weights(n, PARAMS.weights), PARAMS.weights(n)
        assert ours.shape == theirs.shape
        assert np.allclose(ours, theirs, rtol=4e-16, atol=0), n


def _counting(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """How many proposals the closed form decided, and how many it left to Optuna's sums."""
    counts = {"clear": 0, "exact": 0}
    real = tpe.clear_choice

    def counted(*a: Any, **k: Any) -> Any:
        got = real(*a, **k)
        counts["clear" if got is not None else "exact"] += 1
        return got

    monkeypatch.setattr(tpe, "clear_choice", counted)
    return counts


def test_proposals_are_optunas_over_seeds(monkeypatch: pytest.MonkeyPatch) -> None:
    counts = _counting(monkeypatch)
    for seed in range(3):
        assert _lockstep(CATEGORICAL, 120, seed=seed) == 120
        assert _lockstep(LAB, 120, seed=seed, direction="minimize") == 120
    assert counts["clear"] > 250 and counts["exact"] > 0, counts  # both branches taken


def _seed_of_300_trials(seed: int) -> dict[str, int]:
    """Run in a child process: one seed's two lockstep runs, and how the proposals were
    decided."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        counts = _counting(monkeypatch)
        assert _lockstep(CATEGORICAL, 300, seed=seed) == 300
        assert _lockstep(LAB, 300, seed=seed, direction="minimize") == 300
    return counts


@pytest.mark.slow  # Optuna's own TPE, 20 runs of 300 trials: about 13 s, 8 s on two cores
def test_proposals_are_optunas_for_10_seeds_of_300_trials() -> None:
    # the seeds are independent: two processes (spawned: no fork of this one's threads)
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        runs = list(pool.map(_seed_of_300_trials, range(100, 110)))
    counts = {k: sum(run[k] for run in runs) for k in ("clear", "exact")}
    assert counts["clear"] > 10 * 250 and counts["exact"] > 0, counts
