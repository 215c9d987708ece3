"""The one trial loop: Optuna's ``optimize``, one trial per budget ticket, with a de-duplicating
evaluation cache and, for several workers, the coordination of :mod:`quantsearch.search.parallel`.

Every trial suggests one value per knob, resolves the full per-node config, and looks its
canonical hash up in the cache: a repeat (TPE re-proposes configs it has seen) is answered at no
cost and marked ``cached``; a new config is quantized and measured once. Trials and distinct
evaluations are counted apart. Results live in each trial's user attributes, so the cache is
persisted with the study and rebuilt when a search resumes.

Each trial first takes a ticket of the study's budget (so workers on one study run ``n_trials``
between them), and trials left RUNNING by a dead worker are failed and retried. With other
workers on the study, a config is claimed before it is evaluated, so no distinct config is
evaluated twice across workers.
"""

from __future__ import annotations

import hashlib
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import optuna
import torch
from optuna.trial import FrozenTrial

from quantsearch.errors import ConfigError, StorageError
from quantsearch.search import interrupt, optuna_compat
from quantsearch.search.batch import Batches
from quantsearch.search.cache import CachedResult, EvaluationCache
from quantsearch.search.config import SearchConfig
from quantsearch.search.evaluate import Evaluator
from quantsearch.search.fidelity import ConfidencePruner
from quantsearch.search.identity import StudyMadeAnew, check_identity, identity
from quantsearch.search.journal_storage import Journal
from quantsearch.search.objective import (
    objective_names,
    study_directions,
)
from quantsearch.search.parallel import Coordinator
from quantsearch.search.parallel.budget import STALLED_TICKET_GRACE
from quantsearch.search.parallel.claims import Claims
from quantsearch.search.parallel.liveness import worker_id
from quantsearch.search.reconnect import quiet_optuna_storage_errors
from quantsearch.search.space import SearchSpace
from quantsearch.search.storage import heartbeat_interval_of
from quantsearch.search.strategies import STRATEGIES, StrategyContext, build_sampler
from quantsearch.search.trial import TrialInfo
from quantsearch.search.trial_objective import TrialFailed, TrialObjective

# CachedResult and EvaluationCache are imported from here by compare.py (their old home).
__all__ = ["CachedResult", "EvaluationCache", "OnTrial", "StudyRun", "TrialFailed", "run_study"]

OnTrial = Callable[[optuna.Study, FrozenTrial | None, EvaluationCache], None]
Callback = Callable[[optuna.Study, FrozenTrial], None]  # Optuna's ``optimize(callbacks=)``
_POLL = 0.25  # seconds between two looks at the study while every ticket is taken


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run with ``n`` intra-op threads (``None``: unchanged), restoring the setting after."""
    if n is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass
class StudyRun:
    study: optuna.Study
    baseline: dict[str, float]
    cache: EvaluationCache


def run_study(
    evaluator: Evaluator,
    space: SearchSpace,
    cfg: SearchConfig,
    *,
    storage: Any,
    study_name: str,
    fingerprint_extra: dict[str, Any] | None = None,
    cache: EvaluationCache | None = None,
    on_trial: OnTrial | None = None,
    coordinator: Coordinator | None = None,
    callbacks: Sequence[Callback] = (),
    batch: bool = True,
) -> StudyRun:
    """Create or resume ``study_name`` in ``storage`` and run it to ``cfg.n_trials`` counted trials.

    Stops early when every point of the space has been evaluated (``stop_when_exhausted``) or
    on ``cfg.timeout``. ``cache`` may be shared between in-process studies (comparisons do).
    ``coordinator`` (from :func:`~quantsearch.search.parallel.open_coordinator`) shares the
    study with other workers; ``None`` for a study of this process alone (in memory).
    ``callbacks``: Optuna's, each called as ``callback(study, frozen_trial)`` once a trial of
    this process is stored (optuna-integration's MLflow, W&B, TensorBoard callbacks).
    ``batch``: run trials K at a time where the strategy allows it (:mod:`~.batch`); ``False``
    runs every trial through Optuna's ask and tell (the same trials, slower).
    """
    coord = coordinator if coordinator is not None else Coordinator.in_memory()
    study = _open_study(
        cfg, space, storage, study_name, coord.claims, fingerprint_extra or {}, evaluator
    )
    coord.attach(study)  # reaps orphans, counts the tickets in use
    baseline = _baseline(study, evaluator)
    if cfg.fidelity.method != "full":
        study.pruner = ConfidencePruner(cfg, baseline)
    cache = cache if cache is not None else EvaluationCache()
    if cfg.cache:
        cache.restore(study.get_trials(deepcopy=False))
    objective = TrialObjective(evaluator, space, cfg, baseline, cache, coord.claims)
    objective.restore([TrialInfo.from_trial(t) for t in study.get_trials(deepcopy=False)])
    if on_trial is not None:
        on_trial(study, None, cache)  # show where a resumed study stands before it goes on
    journal = storage if isinstance(storage, Journal) else None
    batches = None
    if batch and Batches.usable(objective, study.sampler, coord):
        batches = Batches(objective, study.sampler, coord)
    quiet_optuna_storage_errors()  # a lost database ends in the CLI's one line, not a traceback
    try:
        with torch_threads(cfg.torch_threads), interrupt.deferred():
            _ticket_loop(study, objective, coord, on_trial, journal, callbacks, batches)
    finally:
        if journal is not None:
            with interrupt.shielded():  # a second Ctrl-C must not cut it
                journal.flush()  # group commit: what finished reaches the disk, even on Ctrl-C
    return StudyRun(study, baseline, cache)


def _open_study(
    cfg: SearchConfig,
    space: SearchSpace,
    storage: Any,
    study_name: str,
    claims: Claims | None,
    fingerprint_extra: dict[str, Any],
    evaluator: Evaluator | None = None,
) -> optuna.Study:
    """Create or load the study with the strategy's sampler; refuse one made by another config."""
    strategy = STRATEGIES.get(cfg.strategy.name, key="search.strategy")
    if not strategy.multi_objective and cfg.combine == "pareto":
        raise ConfigError(f"search.strategy {strategy.name!r} does not support combine = 'pareto'")
    directions = study_directions(cfg)
    # The process that creates the study samples with its seed, so that a search of one process
    # is reproducible on every storage. Workers joining a shared study seeded alike would
    # propose the same points and wait on each other's results: each of them takes its seed
    # from the study's and its own process.
    joining_seed = cfg.seed
    if claims is not None:
        joining_seed = int(hashlib.sha1(f"{cfg.seed}:{worker_id()}".encode()).hexdigest()[:8], 16)

    def claim_point(index: int, trial_number: int) -> bool:
        assert claims is not None
        return claims.claim(f"point:{index}", trial_number).owned

    def sampler(seed: int) -> optuna.samplers.BaseSampler:
        ctx = StrategyContext(
            space=space,
            seed=seed,
            n_objectives=len(directions),
            options=dict(cfg.strategy.options),
            claim_point=claim_point if claims is not None else None,
            evaluator=evaluator,
            search=cfg,
            # the budget that binds: with n_evaluations, n_trials is a cap (20 x by default),
            # and NSGA's population, a quarter of it, outlasted the evaluations (random search)
            n_trials=min(cfg.n_trials, cfg.n_evaluations or cfg.n_trials),
        )
        return build_sampler(cfg.strategy.name, ctx)

    def load() -> optuna.Study:
        return optuna.load_study(
            study_name=study_name, storage=storage, sampler=sampler(joining_seed)
        )

    try:  # loaded first: a refused study is only read, never written to
        study = load()
    except KeyError:  # none yet
        try:
            study = optuna.create_study(
                storage=storage,
                study_name=study_name,
                directions=directions,  # type: ignore[arg-type]
                sampler=sampler(cfg.seed),
            )
        except optuna.exceptions.DuplicatedStudyError:  # another worker created it first
            study = load()
    made_anew = False
    try:
        new_identity = check_identity(study, study_name, cfg, space, fingerprint_extra)
    except ConfigError as exc:
        # A study of this process alone that holds no trial (its float baseline failed, or it
        # stopped before its first trial) has nothing to mix: the corrected config takes it,
        # rather than the user having to name a new study. Its baseline is measured anew.
        same_directions = [d.name.lower() for d in study.directions] == directions
        if claims is not None or not same_directions or study.get_trials():
            raise
        made = str(exc).split(", allowed")[0]  # "--study: got 'x', a study ... made with ..."
        warnings.warn(StudyMadeAnew(f"{made}, and holds no trial: it is made anew"), stacklevel=2)
        new_identity, made_anew = identity(cfg, space, fingerprint_extra), True
        study.set_user_attr("baseline", None)
        study.set_user_attr("sensitivity_tables", None)  # another model's probe, maybe
    if new_identity is not None:
        study.set_user_attr("identity", new_identity)
    if study.metric_names is None or made_anew:  # optuna-dashboard and optuna.visualization
        with warnings.catch_warnings():  # experimental since Optuna 3.2, stable in use
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(objective_names(cfg))
    return study


def _baseline(study: optuna.Study, evaluator: Evaluator) -> dict[str, float]:
    """The float model's metrics, measured once per study and kept in it."""
    if study.user_attrs.get("baseline") is not None:  # None: its study was made anew
        return dict(study.user_attrs["baseline"])
    baseline = evaluator.baseline()
    study.set_user_attr("baseline", baseline)
    return baseline


def _ticket_loop(
    study: optuna.Study,
    objective: TrialObjective,
    coord: Coordinator,
    on_trial: OnTrial | None,
    journal: Journal | None,
    callbacks: Sequence[Callback] = (),
    batches: Batches | None = None,
) -> None:
    """``n_jobs`` threads, each: take a ticket of the study's budget, run one trial (or, with
    ``batches``, a batch of trials from that ticket on); again."""
    cfg = objective.cfg
    deadline = None if cfg.timeout is None else time.monotonic() + cfg.timeout

    def after(study_: optuna.Study, trial: FrozenTrial) -> None:
        if journal is not None:
            journal.check()  # a failed write (disk full) stops the search here, in one line
        if on_trial is not None:
            on_trial(study_, trial, objective.cache)
        for callback in callbacks:
            callback(study_, trial)

    def one_thread() -> None:
        stall: list[Any] = []
        while not _done(study, objective, deadline):
            coord.liveness.reap()  # rate-limited: fails and retries dead workers' trials
            if coord.budget.take(cfg.n_trials) is None:
                if not _wait_for_ticket(study, coord, cfg.n_trials, stall):
                    return
                continue
            stall.clear()
            if batches is not None and batches.ready(study):
                batches.run(study, after)
            else:
                _one_trial(study, objective, coord, after)

    if cfg.n_jobs == 1:
        one_thread()
        return
    with ThreadPoolExecutor(cfg.n_jobs) as pool:
        for f in [pool.submit(one_thread) for _ in range(cfg.n_jobs)]:
            f.result()


def _done(study: optuna.Study, objective: TrialObjective, deadline: float | None) -> bool:
    """Whether this thread stops before taking another ticket."""
    interrupt.check()  # a deferred Ctrl-C stops here, between two trials
    cfg = objective.cfg
    return (
        (deadline is not None and time.monotonic() >= deadline)
        or objective.exhausted()
        # exact with one thread; n_jobs threads may overshoot by n_jobs - 1
        or (
            cfg.n_evaluations is not None
            and objective.evaluations_spent(study) >= cfg.n_evaluations
        )
    )


def _one_trial(
    study: optuna.Study,
    objective: TrialObjective,
    coord: Coordinator,
    after: Callable[[optuna.Study, FrozenTrial], None],
) -> None:
    """Run one trial on the ticket just taken; an interrupted one gives its ticket back."""
    try:
        if heartbeat_interval_of(optuna_compat.study_storage(study)) is None:
            # Optuna's optimize, less its deep copy of the finished trial (journal, memory).
            after(study, optuna_compat.run_trial(study, objective, catch=(TrialFailed,)))
            return
        # optimize, not ask/tell: it records Optuna's heartbeats on RDB storages.
        study.optimize(
            objective,
            n_trials=1,
            catch=(TrialFailed,),
            callbacks=[after],
            gc_after_trial=False,
            show_progress_bar=False,
        )
    except StorageError:
        # The database stayed out of reach (or the disk is full): giving the ticket back
        # would fail too. A leaked ticket is recounted when the budget runs out.
        raise
    except BaseException:
        coord.budget.give_back()  # an interrupted trial does not use up the budget
        raise


def _wait_for_ticket(
    study: optuna.Study, coord: Coordinator, n_trials: int, stall: list[Any]
) -> bool:
    """Every ticket is taken: whether to wait (after a pause) for one to come back.

    A trial still running may belong to a dead worker: once it is failed, its retry takes its
    ticket, so stay while any trial is RUNNING or WAITING. With none, the budget is met, or a
    worker died between taking a ticket and starting its trial: a count of tickets in use above
    what the trials hold, unchanged for ``STALLED_TICKET_GRACE`` seconds, is corrected.
    """
    trials = [TrialInfo.from_trial(t) for t in study.get_trials(deepcopy=False)]
    if not any(t.state in ("RUNNING", "WAITING") for t in trials):
        if sum(t.counts_toward_budget for t in trials) >= n_trials:
            return False
        seen = (coord.budget.used(), coord.consumed(study))
        if not stall or stall[0] != seen:
            stall[:] = [seen, time.monotonic()]
        elif time.monotonic() - stall[1] > STALLED_TICKET_GRACE:
            coord.budget.recount(*seen)  # the leaked tickets come back
            stall.clear()
            return True
    else:
        stall.clear()
    time.sleep(_POLL)
    return True
