"""Every use of Optuna's private API, in one place, each with the reason no public API serves.

Optuna is pinned to ``>=5,<6`` (pyproject.toml); a new major version is checked here first.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    from optuna.distributions import BaseDistribution
    from optuna.samplers import RandomSampler, TPESampler
    from optuna.storages import BaseStorage, JournalStorage
    from optuna.study import Study
    from optuna.trial import FrozenTrial, Trial, TrialState

# A categorical mixture's log-density and draw, as quantsearch.search.strategies.tpe computes
# them: (kernel weights, per-parameter tables, candidates) and (rng, weights, tables, count).
CategoricalLogPdf = Callable[["np.ndarray", list["np.ndarray"], "np.ndarray"], "np.ndarray"]
CategoricalDraw = Callable[
    ["np.random.RandomState", "np.ndarray", list["np.ndarray"], int], "np.ndarray"
]

# Where Optuna's ``constraints_func`` path stores a trial's constraint values, as one list.
_CONSTRAINTS_KEY = "constraints"

__all__ = [
    "add_trial",
    "add_trials",
    "compute_hypervolume",
    "constraint_list",
    "constraints_attrs",
    "fresh_trials",
    "journal_create_trials",
    "journal_next_trial",
    "random_state",
    "run_trial",
    "set_constraints",
    "study_storage",
    "study_trials",
    "sync_trials",
    "tpe_gamma",
    "tpe_intersection",
    "tpe_n_startup",
    "tpe_rng_and_candidates",
    "tpe_sample",
    "tpe_sample_as_optuna",
    "tpe_trial_params",
    "tpe_trial_scores",
    "tpe_uses_defaults",
]


def study_trials(study: Study, states: Sequence[TrialState] | None = None) -> list[FrozenTrial]:
    """The study's trials from the storage's in-process cache.

    Samplers call this once per proposal. ``Study.get_trials`` has no ``use_cache`` argument and
    re-reads every trial from an RDB storage, which makes each proposal cost O(trials) queries;
    ``_get_trials(use_cache=True)`` is what Optuna's own samplers call for the same reason.
    """
    return study._get_trials(
        deepcopy=False, states=tuple(states) if states is not None else None, use_cache=True
    )


def sync_trials(study: Study) -> None:
    """Drop the study's per-thread cache of its trials (:func:`study_trials`), as ``Study.ask``
    does first: a sampler proposing without ``ask`` then reads what is stored now (the cache
    is private; ``Study.add_trial`` leaves it as it was)."""
    study._thread_local.cached_all_trials = None


def random_state(sampler: RandomSampler) -> np.random.RandomState:
    """The NumPy random state a ``RandomSampler`` draws every parameter from.

    Random trials proposed K at a time (``strategies/random_batch.py``) must draw the numbers
    ``sample_independent`` would, in the same order, with no trial to call it on; Optuna keeps
    the state as ``_rng`` (a ``LazyRandomState``, created on first use) and has no accessor.
    """
    return sampler._rng.rng


def study_storage(study: Study) -> BaseStorage:
    """The storage a study was created on.

    ``optuna.create_study`` wraps the storage it is given (a URL becomes an RDB storage behind a
    caching proxy); dead-worker detection asks that same object whether it records heartbeats,
    and ``Study`` exposes it only as ``_storage``.
    """
    return study._storage


def journal_next_trial(storage: JournalStorage, study_id: int) -> tuple[int, int]:
    """The id and the number the journal will give the next trial it creates in ``study_id``.

    ``journal_storage.Journal`` holds a short trial in memory and writes it when it finishes;
    its id and number must be the ones Optuna's replay assigns when that record is read
    (``len(_trials)`` and the study's count of trials), and no public API tells them.
    """
    with storage._thread_lock:
        storage._sync_with_backend()
        replay = storage._replay_result
        return len(replay._trials), len(replay._study_id_to_trial_ids[study_id])


def journal_create_trials(
    storage: JournalStorage, study_id: int, templates: Sequence[FrozenTrial]
) -> list[int]:
    """Create ``templates`` (finished trials) in ``study_id`` with one append of their
    ``CREATE_TRIAL`` records and one replay; return their ids, in order.

    Each record is the one ``JournalStorage.create_new_trial(study_id, template)`` writes, field
    for field (the same code, less its first ``datetime.now()``, which a template with a start
    overwrites by its own or by ``None``), so Optuna's reader, optuna-dashboard and a resumed search read the file as if
    the trials had been created one by one. Optuna has no call that creates several trials: one
    at a time, each record is appended, then read back and replayed before the next, and the
    batched trial path stores K trials at once. The record's operation code, the storage's
    worker id, its lock, its replay and the id of the last trial this process created are
    private. The records are appended in one call, so no other writer's record falls between
    them: the ids are consecutive, ending at the last one this process created.
    Distributions shared by the templates (one dict object) are serialised once.
    """
    from datetime import UTC

    from optuna.distributions import distribution_to_json
    from optuna.storages.journal._base import BaseJournalSnapshot
    from optuna.storages.journal._storage import JournalOperation

    if not templates:
        return []
    if isinstance(storage._backend, BaseJournalSnapshot):
        # Optuna snapshots its replay every SNAPSHOT_INTERVAL trial ids; not done here
        return [storage.create_new_trial(study_id, template_trial=t) for t in templates]
    json_of: dict[int, dict[str, str]] = {}
    logs: list[dict[str, Any]] = []
    with storage._thread_lock:
        worker_id = storage._replay_result.worker_id
        for t in templates:
            log: dict[str, Any] = {
                "op_code": JournalOperation.CREATE_TRIAL,
                "worker_id": worker_id,
                "study_id": study_id,
                "datetime_start": None,
                "state": t.state,
            }
            if t.values is not None and len(t.values) > 1:
                log["value"], log["values"] = None, t.values
            else:
                log["value"], log["values"] = t.value, None
            if t.datetime_start:
                start = t.datetime_start.astimezone(UTC)
                log["datetime_start"] = start.isoformat(timespec="microseconds")
            if t.datetime_complete:
                end = t.datetime_complete.astimezone(UTC)
                log["datetime_complete"] = end.isoformat(timespec="microseconds")
            dists = t.distributions
            dist_json = json_of.get(id(dists))
            if dist_json is None:
                dist_json = {k: distribution_to_json(d) for k, d in dists.items()}
                json_of[id(dists)] = dist_json
            log["distributions"] = dist_json
            log["params"] = {k: dists[k].to_internal_repr(v) for k, v in t.params.items()}
            log["user_attrs"] = t.user_attrs
            log["system_attrs"] = t.system_attrs
            log["intermediate_values"] = t.intermediate_values
            logs.append(log)
        storage._backend.append_logs(logs)
        storage._sync_with_backend()
        last = storage._replay_result._last_created_trial_id_by_this_process
    return list(range(last - len(templates) + 1, last + 1))


def compute_hypervolume(points: Any, reference: Any) -> float:
    """Exact hypervolume of ``points`` (every objective minimised) up to ``reference``.

    Optuna's WFG implementation, the one behind ``optuna.visualization.plot_hypervolume_history``,
    is not exported under a public name.
    """
    from optuna._hypervolume import compute_hypervolume as _hv

    return float(_hv(points, reference))


def set_constraints(trial: Trial, values: Sequence[float]) -> None:
    """Store a trial's constraint values (``<= 0``: satisfied), in config order.

    They go where Optuna's own ``constraints_func`` puts them: the list under the trial's
    ``"constraints"`` system attribute. Optuna's samplers read that list (as constraints
    ``"0"``, ``"1"``, ...) and so does optuna-dashboard, which marks a trial infeasible from it;
    the named ``Trial.set_constraint`` keys are read by the samplers but not by the dashboard
    (0.21), and writing both would count every constraint twice. ``Trial`` has no public setter
    for system attributes, hence its storage and ``_trial_id``.
    """
    trial.storage.set_trial_system_attr(
        trial._trial_id, _CONSTRAINTS_KEY, [float(v) for v in values]
    )


def constraints_attrs(values: Sequence[float]) -> dict[str, Any]:
    """The system attributes that hold a finished trial's constraint values, for a trial stored
    whole with :func:`add_trial` (where :func:`set_constraints` puts them on a running one)."""
    return {_CONSTRAINTS_KEY: [float(v) for v in values]}


def add_trial(study: Study, trial: FrozenTrial) -> FrozenTrial:
    """Store a finished trial in one storage write, and return it as stored (with its number).

    ``Study.add_trial`` does the same (it validates the trial, then calls the storage's public
    ``create_new_trial`` with it as template: one journal record, one RDB transaction) but
    returns nothing; the batched trial path needs the stored trial for the callbacks, and the
    study's storage and id, and ``FrozenTrial._validate``, are not public. The study's
    per-thread cache of its trials (:func:`study_trials`), which Optuna resets at each ``ask``
    and ``tell``, is reset here too, so the next reader sees the new trial.
    """
    return add_trials(study, [trial])[0]


def add_trials(study: Study, trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    """Store finished trials as :func:`add_trial` stores each, in order, and return them as
    stored: on a storage with a ``create_new_trials(study_id, templates)`` method
    (``journal_storage.Journal``: one append of their records, one replay) in one call, on any
    other one trial after another. Every trial is validated before any is stored.
    """
    for trial in trials:
        trial._validate()
        if trial.values is not None and len(trial.values) != len(study.directions):
            raise ValueError(f"{len(trial.values)} values for {len(study.directions)} objectives")
    storage = study._storage
    many = getattr(storage, "create_new_trials", None)
    if many is not None:
        ids: list[int] = many(study._study_id, trials)
    else:
        ids = [storage.create_new_trial(study._study_id, template_trial=t) for t in trials]
    study._thread_local.cached_all_trials = None
    return [storage.get_trial(i) for i in ids]


def run_trial(
    study: Study,
    func: Callable[[Trial], float | Sequence[float]],
    catch: tuple[type[Exception], ...],
) -> FrozenTrial:
    """One trial as ``study.optimize(func, n_trials=1, catch=catch)`` runs it on a storage
    without heartbeats, and the finished trial as stored.

    The same steps as Optuna's ``_run_trial``: ``ask``; ``func``; a ``TrialPruned`` is PRUNED,
    any other exception (Ctrl-C too) FAIL and raised again unless in ``catch``; the trial told
    with Optuna's own checks and warnings (``_tell_with_warning``, which ``Study.tell`` also
    runs, and ``_log_failed_trial``). What it leaves out is the deep copy of the finished
    trial that ``optimize`` and ``tell`` make for callbacks: a copy of every attribute, the
    resolved per-node config included, about 0.5 ms a trial. Callers must not modify the
    trial returned. On RDB storages the study loop keeps ``optimize``, which beats the heart.
    """
    import optuna
    from optuna.study._optimize import _log_failed_trial
    from optuna.study._tell import _tell_with_warning
    from optuna.trial import TrialState

    state: TrialState | None = None
    returned: float | Sequence[float] | None = None
    error: BaseException | None = None
    study._thread_local.in_optimize_loop = True  # samplers may call Study.stop (GridSampler)
    try:
        trial = study.ask()
        try:
            returned = func(trial)
        except optuna.TrialPruned as exc:
            state, error = TrialState.PRUNED, exc
        except (Exception, KeyboardInterrupt) as exc:
            state, error = TrialState.FAIL, exc
        told, _, message = _tell_with_warning(
            study=study, trial=trial, value_or_values=returned, state=state, suppress_warning=True
        )
    finally:
        study._thread_local.in_optimize_loop = False
    if told == TrialState.FAIL:
        why = repr(error) if error is not None else message
        _log_failed_trial(trial.number, trial.params, why or "", value_or_values=returned)
        if error is not None and not isinstance(error, catch):
            raise error
    return study._storage.get_trial(trial._trial_id)


def constraint_list(trial: FrozenTrial) -> list[float]:
    """The constraint values :func:`set_constraints` stored, in their order (``[]``: none)."""
    return [float(v) for v in trial.system_attrs.get(_CONSTRAINTS_KEY) or []]


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
    (its incremental state updated the same way) but without the deep copy of every
    distribution it returns each time (about a fifth of an incremental TPE proposal): the
    distributions are the trials' own, to be read, not modified. The state and its update
    (``_calculate``) are private."""
    from optuna.search_space.intersection import _calculate

    space = sampler._search_space
    if space._study_id is None:
        space._study_id = study._study_id
    elif space._study_id != study._study_id:
        raise ValueError("`IntersectionSearchSpace` cannot handle multiple studies.")
    space._search_space, space._cached_trial_number = _calculate(
        study._get_trials(deepcopy=False, use_cache=True),
        space._include_pruned,
        space._search_space,
        space._cached_trial_number,
    )
    return dict(sorted((space._search_space or {}).items(), key=lambda x: x[0]))


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


def tpe_sample(
    sampler: TPESampler,
    search_space: dict[str, BaseDistribution],
    below: dict[str, np.ndarray],
    above: dict[str, np.ndarray],
    categorical: tuple[CategoricalLogPdf, CategoricalDraw] | None = None,
) -> dict[str, Any]:
    """The end of ``TPESampler._sample`` from the observations of the trials below and above:
    two Parzen estimators built with the sampler's parameters, ``n_ei_candidates`` drawn from
    the one below with the sampler's random state, the best by ``log l(x) - log g(x)``
    (``_compute_acquisition_func``, ``_compare``), in external representation. The
    estimator class and these steps have no public API.

    ``categorical = (log_pdf, draw)``, given for a space of categorical parameters only, stands
    in for the mixtures' ``log_pdf`` and ``sample`` (``_MixtureOfProductDistribution``), which
    it must match number for number and draw for draw. Each takes the mixture's kernel weights
    and each parameter's ``(kernels, choices)`` probabilities
    (``_BatchedCategoricalDistributions.weights``); the candidates are one
    ``(candidates, parameters)`` array of choice indices.
    """
    from optuna.samplers import TPESampler as _TPE

    params = sampler._parzen_estimator_parameters
    mpe_below = sampler._parzen_estimator_cls(below, search_space, params)
    mpe_above = sampler._parzen_estimator_cls(above, search_space, params)
    rng, n_candidates = tpe_rng_and_candidates(sampler)
    if categorical is None:
        samples = mpe_below.sample(rng, n_candidates)
        acquisition = sampler._compute_acquisition_func(samples, mpe_below, mpe_above)
    else:
        log_pdf, draw = categorical
        mixtures = [m._mixture_distribution for m in (mpe_below, mpe_above)]
        (w_below, t_below), (w_above, t_above) = (
            (m.weights, [d.weights for d in m.distributions])  # type: ignore[union-attr]
            for m in mixtures
        )
        x = draw(rng, w_below, t_below, n_candidates)
        samples = mpe_below._untransform(x)
        acquisition = log_pdf(w_below, t_below, x) - log_pdf(w_above, t_above, x)
    best = _TPE._compare(samples, acquisition)
    return {name: dist.to_external_repr(best[name]) for name, dist in search_space.items()}


def fresh_trials(study: Study, states: Sequence[TrialState] | None = None) -> list[FrozenTrial]:
    """The study's trials in ``states`` (``None``: all), read from the storage now (not the
    per-thread cache), as ``TPESampler._sample`` reads them with its constant liar: other
    workers' running trials must be current. ``Study.get_trials`` would deep-copy every trial."""
    chosen = tuple(states) if states is not None else None
    return study._get_trials(deepcopy=False, states=chosen, use_cache=False)
