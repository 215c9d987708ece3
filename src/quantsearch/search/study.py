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

import dataclasses
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
from optuna.trial import FrozenTrial, Trial, TrialState

from quantsearch.errors import ConfigError, StorageError
from quantsearch.search import interrupt, optuna_compat
from quantsearch.search.cache import CachedResult, EvaluationCache
from quantsearch.search.config import SearchConfig
from quantsearch.search.evaluate import Evaluation, Evaluator, config_hash
from quantsearch.search.failed import mark_measured, record_failed
from quantsearch.search.fidelity import ConfidencePruner, Pruned, measure
from quantsearch.search.identity import check_identity
from quantsearch.search.journal import Journal
from quantsearch.search.objective import (
    constraint_values,
    objective_names,
    objective_values,
    study_directions,
)
from quantsearch.search.parallel import Coordinator
from quantsearch.search.parallel.budget import STALLED_TICKET_GRACE
from quantsearch.search.parallel.claims import Claims
from quantsearch.search.parallel.liveness import mark, worker_id
from quantsearch.search.precheck import Precheck, PrecheckVerdict
from quantsearch.search.reconnect import quiet_optuna_storage_errors
from quantsearch.search.space import SearchSpace
from quantsearch.search.strategies import STRATEGIES, StrategyContext, build_sampler
from quantsearch.search.trial import TrialInfo, evaluations_charged

# CachedResult and EvaluationCache are imported from here by compare.py (their old home).
__all__ = ["CachedResult", "EvaluationCache", "OnTrial", "StudyRun", "TrialFailed", "run_study"]

OnTrial = Callable[[optuna.Study, FrozenTrial | None, EvaluationCache], None]
Callback = Callable[[optuna.Study, FrozenTrial], None]  # Optuna's ``optimize(callbacks=)``
WAIT_TIMEOUT = 3600.0  # seconds a trial waits for another worker evaluating the same config
_POLL = 0.25  # seconds between two looks at the study while every ticket is taken


class TrialFailed(Exception):
    """Raised inside the objective so Optuna records the trial as FAIL; the search goes on."""


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
) -> StudyRun:
    """Create or resume ``study_name`` in ``storage`` and run it to ``cfg.n_trials`` counted trials.

    Stops early when every point of the space has been evaluated (``stop_when_exhausted``) or
    on ``cfg.timeout``. ``cache`` may be shared between in-process studies (comparisons do).
    ``coordinator`` (from :func:`~quantsearch.search.parallel.open_coordinator`) shares the
    study with other workers; ``None`` for a study of this process alone (in memory).
    ``callbacks``: Optuna's, each called as ``callback(study, frozen_trial)`` once a trial of
    this process is stored (optuna-integration's MLflow, W&B, TensorBoard callbacks).
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
    objective = _Objective(evaluator, space, cfg, baseline, cache, coord.claims)
    objective.restore([TrialInfo.from_trial(t) for t in study.get_trials(deepcopy=False)])
    if on_trial is not None:
        on_trial(study, None, cache)  # show where a resumed study stands before it goes on
    journal = storage if isinstance(storage, Journal) else None
    quiet_optuna_storage_errors()  # a lost database ends in the CLI's one line, not a traceback
    try:
        with torch_threads(cfg.torch_threads), interrupt.deferred():
            _ticket_loop(study, objective, coord, on_trial, journal, callbacks)
    finally:
        if journal is not None:
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
    seed = cfg.seed
    if claims is not None:
        # Workers seeded alike would propose the same points and wait on each other's results:
        # each worker's sampler takes its seed from the study's and its own process.
        seed = int(hashlib.sha1(f"{cfg.seed}:{worker_id()}".encode()).hexdigest()[:8], 16)

    def claim_point(index: int, trial_number: int) -> bool:
        assert claims is not None
        return claims.claim(f"point:{index}", trial_number).owned

    ctx = StrategyContext(
        space=space,
        seed=seed,
        n_objectives=len(directions),
        options=dict(cfg.strategy.options),
        claim_point=claim_point if claims is not None else None,
        evaluator=evaluator,
        search=cfg,
        n_trials=cfg.n_trials,
    )
    sampler = build_sampler(cfg.strategy.name, ctx)
    try:  # loaded first: a refused study is only read, never written to
        study = optuna.load_study(study_name=study_name, storage=storage, sampler=sampler)
    except KeyError:  # none yet (another worker may create it first: then this loads it)
        study = optuna.create_study(
            storage=storage,
            study_name=study_name,
            directions=directions,  # type: ignore[arg-type]
            sampler=sampler,
            load_if_exists=True,
        )
    new_identity = check_identity(study, study_name, cfg, space, fingerprint_extra)
    if new_identity is not None:
        study.set_user_attr("identity", new_identity)
    if study.metric_names is None:  # optuna-dashboard and optuna.visualization show these
        with warnings.catch_warnings():  # experimental since Optuna 3.2, stable in use
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(objective_names(cfg))
    return study


def _baseline(study: optuna.Study, evaluator: Evaluator) -> dict[str, float]:
    """The float model's metrics, measured once per study and kept in it."""
    if "baseline" in study.user_attrs:
        return dict(study.user_attrs["baseline"])
    baseline = evaluator.baseline()
    study.set_user_attr("baseline", baseline)
    return baseline


class _Objective:
    """One trial: mark it, suggest a point, look its config up (or evaluate it), record it."""

    def __init__(
        self,
        evaluator: Evaluator,
        space: SearchSpace,
        cfg: SearchConfig,
        baseline: dict[str, float],
        cache: EvaluationCache,
        claims: Claims | None,
    ) -> None:
        self.evaluator, self.space, self.cfg, self.baseline = evaluator, space, cfg, baseline
        self.cache, self.claims = cache, claims
        self.categorical = STRATEGIES.get(cfg.strategy.name).encoding == "categorical"
        self.precheck = Precheck(evaluator, cfg, baseline)
        self.prechecked: set[str] = set()  # configs pre-checked infeasible (for exhaustion)

    def __call__(self, trial: Trial) -> float | tuple[float, ...]:
        mark(trial)  # before anything else: how other workers tell this trial is alive
        for k in self.space.knobs:
            if self.categorical:
                trial.suggest_categorical(k.name, k.labels)
            else:
                trial.suggest_int(k.name, 0, k.size - 1)
        choice = self.space.decode(trial.params)
        resolved = self.evaluator.resolve(self.space.layer_formats(choice))
        key = config_hash(resolved.key())
        samples = [0]  # validation samples this trial's forward passes used

        def evaluate() -> Evaluation:
            with interrupt.immediate():  # Ctrl-C here fails this trial, retried on resume
                ev, samples[0] = measure(self.evaluator, resolved, trial)
            return ev

        verdict = None
        try:
            if self.precheck.active and (not self.cfg.cache or self.cache.peek(key) is None):
                verdict = self.precheck(resolved)  # analytic constraints: no forward pass
            if verdict is None:
                result, cached = self._lookup(key, trial.number, evaluate)
        except Pruned as p:
            _store(trial, p.info(trial.number, key))
            raise
        finally:
            if self.claims is not None:  # the point is taken, whatever came of it
                self.claims.complete(f"point:{self.space.index_of(choice)}", trial.number, {})
        if verdict is not None:
            return self._record_prechecked(trial, key, verdict)
        info = TrialInfo(
            number=trial.number,
            state="RUNNING",
            config_hash=key,
            cached=cached,
            duplicate_of=result.trial if cached else None,
            eval_seconds=0.0 if cached else result.seconds,
            config=None if cached else resolved.to_dict(),
            error=result.error,
            samples=0 if cached else samples[0],
        )
        return self._record(trial, info, result)

    def _record_prechecked(
        self, trial: Trial, key: str, verdict: PrecheckVerdict
    ) -> float | tuple[float, ...]:
        """A config infeasible by its analytic constraints: recorded, never evaluated."""
        optuna_compat.set_constraints(trial, verdict.constraints)
        self.prechecked.add(key)
        _store(trial, verdict.info(trial.number, key))
        values = verdict.values
        return values if len(values) > 1 else values[0]

    def _lookup(
        self, key: str, number: int, evaluate: Callable[[], Evaluation]
    ) -> tuple[CachedResult, bool]:
        """The result for config ``key`` and whether it came from a cache (ours or a claim's)."""
        if not self.cfg.cache:
            ev = evaluate()
            return CachedResult(ev.metrics, ev.error, number, ev.seconds), False
        if self.claims is None:
            return self.cache.get_or_evaluate(key, number, evaluate)
        hit = self.cache.peek(key)
        if hit is not None:
            return hit, True
        got = self.claims.claim(key, number)
        if got.busy:
            got = self.claims.wait(key, number, timeout=WAIT_TIMEOUT)
        if got.done and got.result is not None:
            result = CachedResult.from_json(got.result)
            self.cache.put(key, result)
            return result, True
        try:  # owned (or the owner outlived WAIT_TIMEOUT: evaluate it here too)
            result, cached = self.cache.get_or_evaluate(key, number, evaluate)
        except BaseException:
            self.claims.release(key, number)
            raise
        self.claims.complete(key, number, result.to_json())
        return result, cached

    def _record(
        self, trial: Trial, info: TrialInfo, result: CachedResult
    ) -> float | tuple[float, ...]:
        """Store the trial's record; its objective values (a failed config's: the worst)."""
        if result.error is not None:  # COMPLETE and infeasible: the sampler learns from it
            values = record_failed(trial, self.cfg, self.baseline)
            _store(trial, dataclasses.replace(info, feasible=False))
            return values if len(values) > 1 else values[0]
        assert result.metrics is not None
        mark_measured(trial, self.cfg)
        values = objective_values(self.cfg, result.metrics, self.baseline)
        cons = constraint_values(self.cfg.constraints, result.metrics, self.baseline)
        if cons:  # for samplers and optuna-dashboard (else mark_measured set one)
            optuna_compat.set_constraints(trial, cons)
        feasible = all(c <= 0 for c in cons)
        metrics = dict(result.metrics)
        _store(
            trial,
            dataclasses.replace(info, metrics=metrics, constraints=tuple(cons), feasible=feasible),
        )
        return values if len(values) > 1 else values[0]

    def evaluated(self) -> int:
        """Distinct configs evaluated so far, by every worker of the study."""
        if self.claims is None:
            return len(self.cache)
        return sum(1 for k in self.claims.results() if not k.startswith("point:"))

    def exhausted(self) -> bool:
        """Every point of the space is evaluated or pre-checked (and the search stops there)."""
        cfg = self.cfg
        # Only a budget of at least the space's size can exhaust it: skip the count otherwise.
        return (
            cfg.stop_when_exhausted
            and cfg.cache
            and cfg.n_trials >= self.space.size
            and self.evaluated() + len(self.prechecked) >= self.space.size
        )

    def restore(self, trials: list[TrialInfo]) -> None:
        """What a resumed study already pre-checked."""
        self.prechecked.update(t.config_hash for t in trials if t.prechecked and t.config_hash)

    def evaluations_spent(self, study: optuna.Study) -> int:
        """Evaluations charged to ``n_evaluations`` so far (:func:`evaluations_charged`)."""
        states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
        trials = [TrialInfo.from_trial(t) for t in optuna_compat.study_trials(study, states)]
        return evaluations_charged(trials, distinct=self.cfg.cache)


def _store(trial: Trial, info: TrialInfo) -> None:
    for k, v in info.to_user_attrs().items():
        trial.set_user_attr(k, v)


def _ticket_loop(
    study: optuna.Study,
    objective: _Objective,
    coord: Coordinator,
    on_trial: OnTrial | None,
    journal: Journal | None,
    callbacks: Sequence[Callback] = (),
) -> None:
    """``n_jobs`` threads, each: take a ticket of the study's budget, run one trial; again."""
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
        while not (deadline is not None and time.monotonic() >= deadline):
            interrupt.check()  # a deferred Ctrl-C stops here, between two trials
            if objective.exhausted():
                return
            if cfg.n_evaluations is not None and (
                objective.evaluations_spent(study) >= cfg.n_evaluations
            ):
                return  # exact with one thread; n_jobs threads may overshoot by n_jobs - 1
            coord.liveness.reap()  # rate-limited: fails and retries dead workers' trials
            if coord.budget.take(cfg.n_trials) is None:
                if not _wait_for_ticket(study, coord, cfg.n_trials, stall):
                    return
                continue
            stall.clear()
            try:
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
                # The database stayed out of reach (or the disk is full): giving the ticket
                # back would fail too. A leaked ticket is recounted when the budget runs out.
                raise
            except BaseException:
                coord.budget.give_back()  # an interrupted trial does not use up the budget
                raise

    if cfg.n_jobs == 1:
        one_thread()
        return
    with ThreadPoolExecutor(cfg.n_jobs) as pool:
        for f in [pool.submit(one_thread) for _ in range(cfg.n_jobs)]:
            f.result()


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
