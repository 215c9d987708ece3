"""Every use of Optuna's private API, in one place, each with the reason no public API serves.

Optuna is pinned to ``>=5,<6`` (pyproject.toml); a new major version is checked here first.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    import numpy as np
    from optuna.samplers import RandomSampler
    from optuna.storages import BaseStorage, JournalStorage
    from optuna.study import Study
    from optuna.trial import FrozenTrial, Trial, TrialState

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
    "journal_trials",
    "new_running_trial",
    "random_state",
    "run_trial",
    "set_constraints",
    "study_storage",
    "study_trials",
    "sync_trials",
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
    """Drop the study's per-thread cache of its trials (:func:`study_trials`, private), as
    ``Study.ask`` does first: a sampler proposing without ``ask`` reads what is stored now."""
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


def new_running_trial(number: int, trial_id: int) -> FrozenTrial:
    """A trial as Optuna's storages create one in ``ask`` (RUNNING, started now, nothing
    else), for the code that stands in for that step: the journal's deferred trial and TPE's
    batched proposal. No public API builds it (``optuna.trial.create_trial`` numbers it -1)."""
    from datetime import datetime

    from optuna.trial import FrozenTrial, TrialState

    return FrozenTrial(
        number=number,
        state=TrialState.RUNNING,
        value=None,
        datetime_start=datetime.now(),
        datetime_complete=None,
        params={},
        distributions={},
        user_attrs={},
        system_attrs={},
        intermediate_values={},
        trial_id=trial_id,
    )


def journal_trials(
    storage: JournalStorage, study_id: int, memo: dict[int, tuple[int, int, list[FrozenTrial]]]
) -> list[FrozenTrial]:
    """``JournalStorage.get_all_trials(study_id, deepcopy=False)``: the same trials, in order.

    Samplers and the trial loop list the trials several times a trial, and Optuna's replay
    walks every trial each time. Here the list is kept (``memo``, the caller's: study id ->
    records read, leading finished trials, list) and, after the replay has read new records
    (the one way a trial changes), walked again only from its first unfinished trial: a
    finished trial is never replaced (the replay refuses to update one). The lock, the sync,
    the replay's count of records read, its trials and the study's ids are private.
    """
    with storage._thread_lock:
        storage._sync_with_backend()
        replay = storage._replay_result
        read, hit = replay.log_number_read, memo.get(study_id)
        if hit is None or hit[0] != read:
            if study_id not in replay._studies:
                raise KeyError(f"no study with id {study_id}")
            final, listed = (hit[1], hit[2][: hit[1]]) if hit is not None else (0, [])
            ids = replay._study_id_to_trial_ids[study_id]
            listed += [replay._trials[i] for i in ids[final:]]
            while final < len(listed) and listed[final].state.is_finished():
                final += 1
            hit = memo[study_id] = (read, final, listed)
        return list(hit[2])


def journal_create_trials(
    storage: JournalStorage,
    study_id: int,
    templates: Sequence[FrozenTrial],
    *,
    only_writer: bool = False,
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
    Distributions shared by the templates (one dict object, holding the same distribution
    objects) are serialised once, also across calls (:func:`_distributions_json`).

    ``only_writer``: no other process appends to the journal (group commit), so the records
    follow the last one read: they are replayed from memory, as Optuna's replay applies them,
    but with the distributions parsed once from their JSON (:func:`_replay_created`) instead
    of read back and parsed again per trial (about 0.1 ms a trial of 8 parameters).
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
    logs: list[dict[str, Any]] = []
    parsed: list[dict[str, Any]] = []
    with storage._thread_lock:
        if only_writer:
            storage._sync_with_backend()  # records before these are replayed first, in order
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
            log["distributions"], parsed_dists = _distributions_json(dists, distribution_to_json)
            parsed.append(parsed_dists)
            log["params"] = {k: dists[k].to_internal_repr(v) for k, v in t.params.items()}
            log["user_attrs"] = t.user_attrs
            log["system_attrs"] = t.system_attrs
            log["intermediate_values"] = t.intermediate_values
            logs.append(log)
        storage._backend.append_logs(logs)
        if only_writer:
            _replay_created(storage, logs, parsed)
        else:
            storage._sync_with_backend()
        last = storage._replay_result._last_created_trial_id_by_this_process
    return list(range(last - len(templates) + 1, last + 1))


# id(dict) -> (the dict, its names, its distribution objects, their JSON, the distributions
# parsed back from it): the last few distributions dicts serialised. The dict is held, so its
# id is not reused while it is here; a hit needs the same names bound to the same (immutable)
# distribution objects.
_DISTRIBUTIONS_JSON: dict[
    int, tuple[Any, tuple[str, ...], tuple[Any, ...], dict[str, str], dict[str, Any]]
] = {}


def _distributions_json(
    dists: dict[str, Any], to_json: Callable[[Any], str]
) -> tuple[dict[str, str], dict[str, Any]]:
    """``{name: to_json(d)}`` and the distributions Optuna's replay parses from it, kept for
    the dict the batched trial path stores every trial with (its points share the space's
    distributions): about 40 us a trial of 8 knobs to serialise, as much to parse."""
    from optuna.distributions import json_to_distribution

    hit = _DISTRIBUTIONS_JSON.get(id(dists))
    if (
        hit is not None
        and hit[0] is dists
        and hit[1] == tuple(dists)
        and all(a is b for a, b in zip(hit[2], dists.values(), strict=True))
    ):
        return hit[3], hit[4]
    out = {k: to_json(d) for k, d in dists.items()}
    parsed = {k: json_to_distribution(v) for k, v in out.items()}
    if len(_DISTRIBUTIONS_JSON) >= 8:
        _DISTRIBUTIONS_JSON.clear()
    _DISTRIBUTIONS_JSON[id(dists)] = (dists, tuple(dists), tuple(dists.values()), out, parsed)
    return out, parsed


def _replay_created(
    storage: JournalStorage, logs: Sequence[dict[str, Any]], parsed: Sequence[dict[str, Any]]
) -> None:
    """Apply ``logs``, this process's ``CREATE_TRIAL`` records just appended after the last
    record read, to the storage's replay as its ``apply_logs`` does (the count of records
    read, then ``_apply_create_trial``), except that each record's distributions are
    ``parsed`` (its JSON's, parsed once for every trial that shares them; Optuna parses them
    per record) and its parameters are made external with them, as Optuna does. The replay,
    its count and its apply method are private."""
    replay = storage._replay_result
    for log, dists in zip(logs, parsed, strict=True):
        replay.log_number_read += 1
        before = len(replay._trials)
        replay._apply_create_trial(
            {k: v for k, v in log.items() if k != "distributions" and k != "params"}
        )
        if len(replay._trials) > before:  # created (the study exists)
            trial = replay._trials[before]
            trial.distributions = dict(dists)
            trial.params = {k: dists[k].to_external_repr(v) for k, v in log["params"].items()}


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
    other one trial after another. Every trial is validated before any is stored. The
    journal's lock and replay, read for the stored trials, are private.
    """
    for trial in trials:
        trial._validate()
        if trial.values is not None and len(trial.values) != len(study.directions):
            raise ValueError(f"{len(trial.values)} values for {len(study.directions)} objectives")
    storage = study._storage
    many = getattr(storage, "create_new_trials", None)
    study._thread_local.cached_all_trials = None
    if many is None:
        ids = [storage.create_new_trial(study._study_id, template_trial=t) for t in trials]
        return [storage.get_trial(i) for i in ids]
    ids = many(study._study_id, trials)
    # The journal replayed its records as it appended them (journal_create_trials): the
    # trials are read from its replay, not after one more read of the file each.
    journal = cast("JournalStorage", storage)
    with journal._thread_lock:
        return [journal._replay_result.get_trial(i) for i in ids]


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


def fresh_trials(study: Study, states: Sequence[TrialState] | None = None) -> list[FrozenTrial]:
    """The study's trials in ``states`` (``None``: all), read from the storage now (not the
    per-thread cache), as ``TPESampler._sample`` reads them with its constant liar: other
    workers' running trials must be current. ``Study.get_trials`` would deep-copy every trial."""
    chosen = tuple(states) if states is not None else None
    return study._get_trials(deepcopy=False, states=chosen, use_cache=False)
