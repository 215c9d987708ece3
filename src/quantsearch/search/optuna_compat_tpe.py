"""Optuna's ``TPESampler``, fed from :mod:`quantsearch.search.strategies.tpe`'s arrays: the
private pieces its proposal is built from, each with the reason no public API serves (the rest
of Optuna's private API in use is in :mod:`quantsearch.search.optuna_compat`).

Optuna is pinned to ``>=5,<6`` (pyproject.toml); a new major version is checked here first.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    from optuna.distributions import BaseDistribution
    from optuna.samplers import TPESampler
    from optuna.study import Study
    from optuna.trial import FrozenTrial

__all__ = [
    "tpe_best",
    "tpe_default_weights",
    "tpe_gamma",
    "tpe_intersection",
    "tpe_n_startup",
    "tpe_parzen_defaults",
    "tpe_rng_and_candidates",
    "tpe_sample",
    "tpe_sample_as_optuna",
    "tpe_trial_params",
    "tpe_trial_scores",
    "tpe_uses_defaults",
]

# Optuna's TPESampler, fed from quantsearch.search.strategies.tpe's arrays. TPESampler._sample
# re-reads and re-encodes every finished trial on every proposal and has no public way to be
# given its observations; these reach the pieces it is built from, so that the proposals stay
# Optuna's own, draw for draw.


def tpe_uses_defaults(sampler: TPESampler) -> bool:
    """Whether ``sampler`` runs TPESampler's default algorithm: multivariate or not decided by
    the study, no groups, constant liar, no ``constraints_func``, Optuna's Parzen estimator.
    Its options are kept only as private attributes."""
    from optuna.samplers._tpe.parzen_estimator import _ParzenEstimator

    return (
        sampler._multivariate is None
        and not sampler._group
        and sampler._constant_liar
        and sampler._constraints_func is None
        and sampler._parzen_estimator_cls is _ParzenEstimator
    )


def tpe_gamma(sampler: TPESampler, n_finished: int) -> int:
    """How many of ``n_finished`` trials are "below" (good), as ``TPESampler._sample`` counts
    them for a single-objective study; it sets the default gamma on its first proposal, which
    is done here the same way (the attribute is private)."""
    from optuna.samplers._tpe.sampler import default_gamma

    if sampler._gamma is None:
        sampler._gamma = default_gamma
    return int(sampler._gamma(n_finished))


def tpe_sample_as_optuna(
    sampler: TPESampler,
    study: Study,
    trial: FrozenTrial,
    search_space: dict[str, BaseDistribution],
) -> dict[str, Any]:
    """``TPESampler._sample`` itself, for a subclass's proposal in a case it leaves to Optuna
    (the method is private: it is what ``sample_relative`` and ``sample_independent`` call)."""
    from optuna.samplers import TPESampler as _TPE

    return _TPE._sample(sampler, study, trial, search_space)


def tpe_intersection(sampler: TPESampler, study: Study) -> dict[str, BaseDistribution]:
    """The parameters every finished trial of ``study`` has with the same distribution, by name,
    as ``sampler``'s ``IntersectionSearchSpace.calculate(study, use_cache=True)`` returns them
    (its incremental state updated the same way, by the steps of Optuna's ``_calculate``) but
    without the deep copy of every distribution it returns each time (about a fifth of an
    incremental TPE proposal): the distributions are the trials' own, to be read, not
    modified. Two distributions of one type with equal attributes are equal without Optuna's
    choice-by-choice comparison (which only adds NaN choices to what equal tuples are);
    others are compared by Optuna's ``==``. The state is private.
    """
    import copy

    from optuna.trial import TrialState

    space = sampler._search_space
    if space._study_id is None:
        space._study_id = study._study_id
    elif space._study_id != study._study_id:
        raise ValueError("`IntersectionSearchSpace` cannot handle multiple studies.")
    of_interest = [TrialState.COMPLETE, TrialState.WAITING, TrialState.RUNNING]
    if space._include_pruned:
        of_interest.append(TrialState.PRUNED)
    search_space, cached = space._search_space, space._cached_trial_number
    next_cached = -1
    for trial in reversed(study._get_trials(deepcopy=False, use_cache=True)):
        if trial.state not in of_interest:
            continue
        if next_cached == -1:
            next_cached = trial.number + 1
        if cached > trial.number:
            break
        if not trial.state.is_finished():
            next_cached = trial.number
            continue
        if search_space is None:
            search_space = copy.copy(trial.distributions)
            continue
        dists = trial.distributions
        search_space = {name: d for name, d in search_space.items() if _same(dists.get(name), d)}
    space._search_space, space._cached_trial_number = search_space, next_cached
    return dict(sorted((search_space or {}).items(), key=lambda x: x[0]))


def _same(a: BaseDistribution | None, b: BaseDistribution) -> bool:
    """``a == b`` for Optuna's distributions (see :func:`tpe_intersection`)."""
    return a is b or (type(a) is type(b) and a.__dict__ == b.__dict__) or a == b


def tpe_n_startup(sampler: TPESampler) -> int:
    """The finished trials a ``TPESampler`` waits for before it models (``n_startup_trials``,
    kept as a private attribute)."""
    return int(sampler._n_startup_trials)


def tpe_rng_and_candidates(sampler: TPESampler) -> tuple[np.random.RandomState, int]:
    """The sampler's seeded random state and its ``n_ei_candidates`` (private attributes)."""
    return sampler._rng.rng, int(sampler._n_ei_candidates)


def tpe_trial_scores(trial: FrozenTrial, study: Study) -> tuple[float, tuple[float, float]]:
    """A finished trial's infeasibility (sum of its violated constraints) and its pruned-trial
    sort key, computed by the functions ``TPESampler``'s split of the trials uses (private)."""
    from optuna.samplers._tpe.sampler import (
        _get_infeasible_trial_score,
        _get_pruned_trial_score,
    )

    return _get_infeasible_trial_score(trial), _get_pruned_trial_score(trial, study)


def tpe_trial_params(sampler: TPESampler, trial: FrozenTrial, study: Study) -> dict[str, Any]:
    """A trial's parameters as ``TPESampler`` reads them: for a running trial of another
    worker, also those its sampler has proposed and not yet suggested (the constant liar's
    ``tpe:relative_params`` system attributes), through ``TPESampler._get_params``."""
    return sampler._get_params(trial, study)


def tpe_parzen_defaults(sampler: TPESampler) -> tuple[float, Callable[[int], np.ndarray]] | None:
    """The prior's weight and the kernel weights function of ``sampler``'s Parzen estimators
    (``_parzen_estimator_parameters``, private), where they are Optuna's defaults' kind: a
    non-negative prior and Optuna's ``default_weights`` (whose values ``_ParzenEstimator``
    never has to refuse); ``None`` otherwise."""
    from optuna.samplers._tpe.sampler import default_weights

    params = sampler._parzen_estimator_parameters
    if params.weights is not default_weights or not params.prior_weight >= 0:
        return None
    return float(params.prior_weight), params.weights


def tpe_default_weights() -> Callable[[int], np.ndarray]:
    """Optuna's ``default_weights``, the kernel weights ``TPESampler`` uses by default (not
    exported: its formula is reproduced where only its values within rounding are needed)."""
    from optuna.samplers._tpe.sampler import default_weights

    return default_weights


def tpe_best(
    search_space: dict[str, BaseDistribution], samples: np.ndarray, acquisition: np.ndarray
) -> dict[str, Any]:
    """The end of ``TPESampler._sample``: the candidate (a row of ``samples``, internal
    representations in the space's order) of the largest acquisition value, by
    ``TPESampler._compare`` (private), in external representation."""
    from optuna.samplers import TPESampler as _TPE

    columns = {name: samples[:, i] for i, name in enumerate(search_space)}
    best = _TPE._compare(columns, acquisition)
    return {name: dist.to_external_repr(best[name]) for name, dist in search_space.items()}


def tpe_sample(
    sampler: TPESampler,
    search_space: dict[str, BaseDistribution],
    below: dict[str, np.ndarray],
    above: dict[str, np.ndarray],
) -> dict[str, Any]:
    """The end of ``TPESampler._sample`` from the observations of the trials below and above:
    two Parzen estimators built with the sampler's parameters, ``n_ei_candidates`` drawn from
    the one below with the sampler's random state, the best by ``log l(x) - log g(x)``
    (``_compute_acquisition_func``, ``_compare``), in external representation. The
    estimator class and these steps have no public API. (A space of categorical parameters
    goes through :mod:`quantsearch.search.strategies.tpe_parzen` instead.)
    """
    from optuna.samplers import TPESampler as _TPE

    params = sampler._parzen_estimator_parameters
    mpe_below = sampler._parzen_estimator_cls(below, search_space, params)
    mpe_above = sampler._parzen_estimator_cls(above, search_space, params)
    rng, n_candidates = tpe_rng_and_candidates(sampler)
    samples = mpe_below.sample(rng, n_candidates)
    acquisition = sampler._compute_acquisition_func(samples, mpe_below, mpe_above)
    best = _TPE._compare(samples, acquisition)
    return {name: dist.to_external_repr(best[name]) for name, dist in search_space.items()}
