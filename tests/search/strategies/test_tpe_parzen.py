"""The categorical Parzen mixture is Optuna's ``_ParzenEstimator``'s, bit for bit.

Referee: Optuna's own ``_ParzenEstimator`` (``optuna.samplers._tpe.parzen_estimator``) built
with ``TPESampler(seed)``'s parameters from the same observations: its kernel weights, its
``(kernels, choices)`` tables, ``log_pdf`` of the same candidates (with repeats, as TPE's draws
from the few kernels below have) and ``sample`` from the same seeded random state (the draws,
and the state left after them), over spaces of 1 to 14 parameters of 2 to 16 choices and 0 to
1,200 observations: spaces whose sums are looked up by hit pattern (2, 8 or 16 choices), in
part or not at all.
"""

from __future__ import annotations

import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution
from optuna.samplers._tpe.parzen_estimator import _ParzenEstimator

from quantsearch.search.strategies.tpe_parzen import categorical_mixture

PARAMS = optuna.samplers.TPESampler(seed=0)._parzen_estimator_parameters

CASES = [
    (choices, n)
    for choices in (
        [8] * 8,
        [2, 3],
        [10, 2, 7, 4, 5, 9, 6, 3, 8, 2, 10, 4],
        [5],
        [2] * 12,
        [2, 16, 8, 3, 8, 16],  # hit patterns of the first three, then gathered
        [8, 2] * 7,  # patterns of twelve, then two gathered
        [16] * 9,
    )
    for n in (0, 1, 2, 7, 24, 25, 26, 27, 100, 301, 1001, 1200)
]


@pytest.mark.parametrize(("choices", "n"), CASES)
def test_mixture_is_optunas_bit_for_bit(choices: list[int], n: int) -> None:
    rng = np.random.default_rng(n * 31 + len(choices))
    space = {f"p{i}": CategoricalDistribution(list(range(c))) for i, c in enumerate(choices)}
    for _ in range(3):
        # skewed draws: a few choices most often, as TPE's history has them
        observed = np.stack([rng.integers(0, rng.integers(1, c + 1), n) for c in choices], 1)
        observed = observed.astype(float)
        theirs = _ParzenEstimator(
            {k: observed[:, i] for i, k in enumerate(space)}, space, PARAMS
        )._mixture_distribution
        ours = categorical_mixture(observed, choices, PARAMS.prior_weight, PARAMS.weights)
        assert np.array_equal(ours.weights, theirs.weights)
        for i, d in enumerate(theirs.distributions):
            assert np.array_equal(ours.table(i), d.weights)  # type: ignore[union-attr]
        drawn = np.stack([rng.integers(0, c, 12) for c in choices], 1).astype(float)
        candidates = np.concatenate([drawn, drawn[::-1], drawn[:3]])
        assert np.array_equal(ours.log_pdf(candidates), theirs.log_pdf(candidates))
        rng_ours, rng_theirs = np.random.RandomState(n), np.random.RandomState(n)
        for size in (24, 1, 5):
            assert np.array_equal(ours.sample(rng_ours, size), theirs.sample(rng_theirs, size))
        assert rng_ours.rand() == rng_theirs.rand()


def test_tied_and_extreme_weights_are_optunas() -> None:
    """One choice observed every time (the rows of the other choices never used), and a prior
    weight far from the default: the tables, log-density and draws still Optuna's."""
    from optuna.samplers._tpe.parzen_estimator import _ParzenEstimatorParameters

    for prior in (1.0, 0.25, 1e6):
        params = _ParzenEstimatorParameters(prior, True, False, PARAMS.weights, False)
        space = {"a": CategoricalDistribution([0, 1, 2]), "b": CategoricalDistribution([0, 1])}
        observed = np.zeros((40, 2))
        theirs = _ParzenEstimator(
            {"a": observed[:, 0], "b": observed[:, 1]}, space, params
        )._mixture_distribution
        ours = categorical_mixture(observed, [3, 2], prior, PARAMS.weights)
        candidates = np.array([[0.0, 0.0], [2.0, 1.0], [1.0, 0.0], [0.0, 0.0]])
        assert np.array_equal(ours.log_pdf(candidates), theirs.log_pdf(candidates))
        a, b = np.random.RandomState(3), np.random.RandomState(3)
        assert np.array_equal(ours.sample(a, 24), theirs.sample(b, 24))


def test_hit_patterns_cover_the_leading_two_valued_parameters() -> None:
    """The look-up by hit pattern is what the cases above check where it applies: for 8 x 8
    choices every parameter, for ``[2, 16, 8, 3, ...]`` at least the first three; for 3 or 10
    choices first none at 26 observations (a row's sum then depends on where its observation
    sits; at some counts it does not, and those are tabulated too)."""
    from quantsearch.search.strategies.tpe_parzen import _hit_table

    for n in (1, 26, 1001):
        for choices, tabulated in (([8] * 8, 8), ([2, 16, 8, 3, 8], 3), ([8, 2] * 7, 12)):
            table = _hit_table(tuple(choices), n, PARAMS.prior_weight)
            assert table is not None and table.size - 1 >= 2**tabulated
    assert _hit_table((8, 2) * 7, 26, PARAMS.prior_weight).size == 2**12 + 1  # type: ignore[union-attr]
    assert _hit_table((10, 8), 26, PARAMS.prior_weight) is None
    assert _hit_table((3, 8), 26, PARAMS.prior_weight) is None
    assert _hit_table((8, 8), 0, PARAMS.prior_weight) is None
