"""The study loop: Optuna's ``optimize`` with a de-duplicating evaluation cache.

Every trial suggests one value per knob, resolves the full per-node config, and looks its
canonical hash up in the cache: a repeat (TPE re-proposes configs it has seen) is answered at no
cost and marked ``cached``; a new config is quantized and measured once. Trials and distinct
evaluations are counted apart. Results live in each trial's user attributes, so the cache is
persisted with the study and rebuilt when a search resumes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import FrozenTrial, Trial, TrialState

from quantsearch.errors import ConfigError
from quantsearch.search.config import SearchConfig
from quantsearch.search.evaluate import Evaluation, Evaluator, config_hash
from quantsearch.search.objective import constraint_values, objective_values, study_directions
from quantsearch.search.space import SearchSpace
from quantsearch.search.strategies import STRATEGIES, StrategyContext, build_sampler
from quantsearch.search.trial import TrialInfo

if TYPE_CHECKING:
    from quantsearch.search.coordination import Coordinator

__all__ = ["EvaluationCache", "TrialFailed", "run_study"]


class TrialFailed(Exception):
    """Raised inside the objective so Optuna records the trial as FAIL; the search goes on."""


@dataclass
class CachedResult:
    metrics: dict[str, float] | None
    error: str | None
    trial: int  # the trial that evaluated it
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return {
            "metrics": self.metrics,
            "error": self.error,
            "trial": self.trial,
            "seconds": self.seconds,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> CachedResult:
        return cls(
            d.get("metrics"), d.get("error"), int(d.get("trial", -1)), float(d.get("seconds", 0.0))
        )


@dataclass
class EvaluationCache:
    """In-process cache: config hash -> result, with one evaluation per hash across threads."""

    results: dict[str, CachedResult] = field(default_factory=dict)
    _inflight: dict[str, threading.Event] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def get_or_evaluate(
        self, key: str, trial_number: int, evaluate: Callable[[], Evaluation]
    ) -> tuple[CachedResult, bool]:
        """The result for ``key`` and whether it came from the cache."""
        while True:
            with self._lock:
                if key in self.results:
                    return self.results[key], True
                event = self._inflight.get(key)
                if event is None:
                    event = self._inflight[key] = threading.Event()
                    break
            event.wait()  # another thread is evaluating this very config
        try:
            ev = evaluate()
            result = CachedResult(
                ev.metrics if ev.error is None else None, ev.error, trial_number, ev.seconds
            )
            with self._lock:
                self.results[key] = result
            return result, False
        finally:
            with self._lock:
                self._inflight.pop(key).set()

    def peek(self, key: str) -> CachedResult | None:
        with self._lock:
            return self.results.get(key)

    def put(self, key: str, result: CachedResult) -> None:
        with self._lock:
            self.results.setdefault(key, result)

    def __len__(self) -> int:
        return len(self.results)

    def restore(self, trials: Sequence[FrozenTrial]) -> None:
        """Rebuild from finished trials (on resume, or from another study sharing configs)."""
        for ft in trials:
            t = TrialInfo.from_trial(ft)
            key = t.config_hash
            if key is None or not t.evaluated or key in self.results:
                continue
            seconds = float(t.eval_seconds or 0.0)
            if t.state == "COMPLETE" and t.metrics:
                self.results[key] = CachedResult(dict(t.metrics), None, t.number, seconds)
            elif t.config_failed:
                self.results[key] = CachedResult(None, t.error, t.number, seconds)


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run with ``n`` intra-op threads (``None``: unchanged), restoring the setting after."""
    import torch

    if n is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _counted(t: FrozenTrial) -> bool:
    """See :attr:`TrialInfo.counts_toward_budget`."""
    return TrialInfo.from_trial(t).counts_toward_budget


def fingerprint(cfg: SearchConfig, space: SearchSpace, extra: dict[str, Any]) -> str:
    """What must match for a study to be resumed (trial budget, timeout and n_jobs may change)."""
    payload = {
        "strategy": [cfg.strategy.name, cfg.strategy.options],
        "knobs": [[k.name, list(k.labels), list(k.nodes)] for k in space.knobs],
        "combine": cfg.combine,
        "objectives": [
            [o.metric, o.direction, o.weight, o.relative_to_baseline] for o in cfg.objectives
        ],
        "constraints": [[c.name, c.kind, c.bound] for c in cfg.constraints],
        "metrics": list(cfg.all_metrics),
        "seed": cfg.seed,
        **extra,
    }
    return config_hash(json.dumps(payload, sort_keys=True, default=str))


@dataclass
class StudyRun:
    study: optuna.Study
    baseline: dict[str, float]
    cache: EvaluationCache


def _store(trial: Trial, info: TrialInfo) -> None:
    for k, v in info.to_user_attrs().items():
        trial.set_user_attr(k, v)


def run_study(
    evaluator: Evaluator,
    space: SearchSpace,
    cfg: SearchConfig,
    *,
    storage: Any,
    study_name: str,
    fingerprint_extra: dict[str, Any] | None = None,
    cache: EvaluationCache | None = None,
    on_trial: Callable[[optuna.Study, FrozenTrial | None, EvaluationCache], None] | None = None,
    coordinator: Coordinator | None = None,
    wait_timeout: float = 3600.0,
) -> StudyRun:
    """Create or resume ``study_name`` in ``storage`` and run it to ``cfg.n_trials`` counted trials.

    Stops early when every point of the space has been evaluated (``stop_when_exhausted``) or
    on ``cfg.timeout``. ``cache`` may be shared between in-process studies (comparisons do).

    With a ``coordinator`` (every persistent storage), each trial first takes a ticket of the
    study's global budget, so workers on one study run ``n_trials`` between them; trials left
    RUNNING by a dead worker are failed and retried; and, when the coordinator is shared between
    processes, a config is claimed before it is evaluated, so no distinct config is evaluated
    twice across workers (a trial whose config another worker is evaluating waits for its
    result, up to ``wait_timeout`` seconds).
    """
    from quantsearch.search.coordination import LocalCoordinator

    strategy = STRATEGIES.get(cfg.strategy.name, key="search.strategy")
    if not strategy.multi_objective and cfg.combine == "pareto":
        raise ConfigError(f"search.strategy {strategy.name!r} does not support combine = 'pareto'")
    directions = study_directions(cfg)
    multi = len(directions) > 1
    shared = coordinator is not None and not isinstance(coordinator, LocalCoordinator)

    def claim_point(index: int, trial_number: int) -> bool:
        assert coordinator is not None
        return coordinator.claim(f"point:{index}", trial_number).owned

    seed = cfg.seed
    if shared:
        # Workers seeded alike would propose the same points and wait on each other's results:
        # each worker's sampler takes its seed from the study's and its own process.
        from quantsearch.search.coordination import worker_id

        seed = int(hashlib.sha1(f"{cfg.seed}:{worker_id()}".encode()).hexdigest()[:8], 16)
    ctx = StrategyContext(
        space=space,
        seed=seed,
        n_objectives=len(directions),
        options=dict(cfg.strategy.options),
        claim_point=claim_point if shared else None,
    )
    sampler = build_sampler(cfg.strategy.name, ctx)
    study = optuna.create_study(
        storage=storage,
        study_name=study_name,
        directions=directions,  # type: ignore[arg-type]
        sampler=sampler,
        load_if_exists=True,
    )
    fp = fingerprint(cfg, space, fingerprint_extra or {})
    stored_fp = study.user_attrs.get("fingerprint")
    if stored_fp is None:
        study.set_user_attr("fingerprint", fp)
    elif stored_fp != fp:
        raise ConfigError(
            f"study {study_name!r} in this storage was made with a different config (space, "
            f"objectives, constraints, strategy or seed); pass --study NAME to start a new one"
        )
    if coordinator is not None:
        coordinator.attach(study, study._storage, counted=_counted)  # reaps orphans, counts
    if "baseline" in study.user_attrs:
        baseline = dict(study.user_attrs["baseline"])
    else:
        baseline = evaluator.baseline()
        study.set_user_attr("baseline", baseline)

    cache = cache if cache is not None else EvaluationCache()
    if cfg.cache:
        cache.restore(study.get_trials(deepcopy=False))
    encoding = strategy.encoding
    knobs = space.knobs

    def lookup(
        key: str, number: int, evaluate: Callable[[], Evaluation]
    ) -> tuple[CachedResult, bool]:
        if not cfg.cache:
            ev = evaluate()
            return CachedResult(ev.metrics, ev.error, number, ev.seconds), False
        if not shared:
            return cache.get_or_evaluate(key, number, evaluate)
        assert coordinator is not None
        hit = cache.peek(key)
        if hit is not None:
            return hit, True
        got = coordinator.claim(key, number)
        if got.busy:
            got = coordinator.wait(key, number, timeout=wait_timeout)
        if got.done and got.result is not None:
            result = CachedResult.from_json(got.result)
            cache.put(key, result)
            return result, True
        try:  # owned (or the owner outlived wait_timeout: evaluate it here too)
            result, cached = cache.get_or_evaluate(key, number, evaluate)
        except BaseException:
            coordinator.release(key, number)
            raise
        coordinator.complete(key, number, result.to_json())
        return result, cached

    def objective(trial: Trial) -> float | tuple[float, ...]:
        if encoding == "categorical":
            for k in knobs:
                trial.suggest_categorical(k.name, k.labels)
        else:
            for k in knobs:
                trial.suggest_int(k.name, 0, k.size - 1)
        choice = space.decode(trial.params)
        resolved = evaluator.resolve(space.layer_formats(choice))
        key = config_hash(resolved.key())
        try:
            result, cached = lookup(key, trial.number, lambda: evaluator.evaluate(resolved))
        finally:
            if shared and coordinator is not None:  # the point is taken, whatever came of it
                coordinator.complete(f"point:{space.index_of(choice)}", trial.number, {})
        info = TrialInfo(
            number=trial.number,
            state="RUNNING",
            config_hash=key,
            cached=cached,
            duplicate_of=result.trial if cached else None,
            eval_seconds=0.0 if cached else result.seconds,
            config=None if cached else resolved.to_dict(),
            error=result.error,
        )
        if result.error is not None:
            _store(trial, info)
            raise TrialFailed(f"config {key} failed: {result.error}")
        assert result.metrics is not None
        values = objective_values(cfg, result.metrics, baseline)
        cons = constraint_values(cfg.constraints, result.metrics, baseline)
        for c, value in zip(cfg.constraints, cons, strict=True):
            trial.set_constraint(c.name, value)  # what constrained samplers read
        _store(
            trial,
            dataclasses.replace(
                info,
                metrics=dict(result.metrics),
                constraints=tuple(cons),
                feasible=all(c <= 0 for c in cons),
            ),
        )
        return values if multi else values[0]

    def evaluated() -> int:
        if not shared:
            return len(cache)
        assert coordinator is not None
        return sum(1 for k in coordinator.results() if not k.startswith("point:"))

    def exhausted() -> bool:
        # Only a budget of at least the space's size can exhaust it: skip the count otherwise.
        return (
            cfg.stop_when_exhausted
            and cfg.cache
            and cfg.n_trials >= space.size
            and evaluated() >= space.size
        )

    def after(study_: optuna.Study, trial: FrozenTrial) -> None:
        if on_trial is not None:
            on_trial(study_, trial, cache)
        if coordinator is None and exhausted():
            study_.stop()

    if on_trial is not None:
        on_trial(study, None, cache)  # show where a resumed study stands before it goes on
    t0 = time.perf_counter()
    with torch_threads(cfg.torch_threads):
        if coordinator is None:
            done = sum(1 for t in study.get_trials(deepcopy=False) if _counted(t))
            remaining = cfg.n_trials - done
            if remaining > 0 and not exhausted():
                study.optimize(
                    objective,
                    n_trials=remaining,
                    timeout=cfg.timeout,
                    n_jobs=cfg.n_jobs,
                    catch=(TrialFailed,),
                    callbacks=[after],
                    gc_after_trial=False,
                    show_progress_bar=False,
                )
        else:
            _ticket_loop(study, objective, after, coordinator, cfg, exhausted, t0)
    return StudyRun(study, baseline, cache)


def _ticket_loop(
    study: optuna.Study,
    objective: Callable[[Trial], Any],
    after: Callable[[optuna.Study, FrozenTrial], None],
    coordinator: Coordinator,
    cfg: SearchConfig,
    exhausted: Callable[[], bool],
    t0: float,
) -> None:
    """``cfg.n_jobs`` threads, each: take a ticket of the global budget, run one trial."""

    def one_thread() -> None:
        while True:
            if cfg.timeout is not None and time.perf_counter() - t0 >= cfg.timeout:
                return
            if exhausted():
                return
            coordinator.reap()  # rate-limited: fails and retries dead workers' trials
            if coordinator.take_ticket(cfg.n_trials) is None:
                # Every ticket is taken. A trial still running may belong to a dead worker:
                # once the reaper fails it, its retry's ticket comes back. Stay until none is.
                unfinished = study.get_trials(
                    deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING)
                )
                if not unfinished:
                    return
                time.sleep(0.25)
                continue
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
            except BaseException:
                coordinator.return_ticket()  # an interrupted trial does not use up the budget
                raise

    if cfg.n_jobs == 1:
        one_thread()
        return
    with ThreadPoolExecutor(cfg.n_jobs) as pool:
        for f in [pool.submit(one_thread) for _ in range(cfg.n_jobs)]:
            f.result()
