"""The study loop: Optuna's ``optimize`` with a de-duplicating evaluation cache.

Every trial suggests one value per knob, resolves the full per-node config, and looks its
canonical hash up in the cache: a repeat (TPE re-proposes configs it has seen) is answered at no
cost and marked ``cached``; a new config is quantized and measured once. Trials and distinct
evaluations are counted apart. Results live in each trial's user attributes, so the cache is
persisted with the study and rebuilt when a search resumes.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import FrozenTrial, Trial, TrialState

from quantsearch.errors import ConfigError
from quantsearch.search.config import SearchConfig
from quantsearch.search.evaluate import Evaluation, Evaluator, config_hash
from quantsearch.search.objective import constraint_values, objective_values, study_directions
from quantsearch.search.space import SearchSpace
from quantsearch.search.strategies import STRATEGIES, StrategyContext, build_sampler

__all__ = ["EvaluationCache", "TrialFailed", "run_study"]


INFO_ATTR = "qs"  # one user attribute holds a trial's bookkeeping: each storage write costs


def trial_info(t: FrozenTrial) -> dict[str, Any]:
    """The bookkeeping quantsearch stored on a trial (config hash, cache hit, error ...)."""
    return dict(t.user_attrs.get(INFO_ATTR, {}))


class TrialFailed(Exception):
    """Raised inside the objective so Optuna records the trial as FAIL; the search goes on."""


@dataclass
class CachedResult:
    metrics: dict[str, float] | None
    error: str | None
    trial: int  # the trial that evaluated it
    seconds: float


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

    def __len__(self) -> int:
        return len(self.results)

    def restore(self, trials: Sequence[FrozenTrial]) -> None:
        """Rebuild from finished trials (on resume, or from another study sharing configs)."""
        for t in trials:
            qs = trial_info(t)
            key = qs.get("config_hash")
            if key is None or qs.get("cached") or key in self.results:
                continue
            seconds = float(qs.get("eval_seconds", 0.0))
            if t.state == TrialState.COMPLETE and "metrics" in t.user_attrs:
                metrics = dict(t.user_attrs["metrics"])
                self.results[key] = CachedResult(metrics, None, t.number, seconds)
            elif t.state == TrialState.FAIL and "error" in qs:
                self.results[key] = CachedResult(None, str(qs["error"]), t.number, seconds)


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
    """Trials that use up the budget: completed ones and those whose config itself failed.

    A trial left RUNNING by a killed process, then failed on resume, is not counted: its config
    is tried again.
    """
    return t.state == TrialState.COMPLETE or (
        t.state == TrialState.FAIL and "error" in trial_info(t)
    )


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
    stopped_because: str


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
    fail_running: bool = False,
) -> StudyRun:
    """Create or resume ``study_name`` in ``storage`` and run it to ``cfg.n_trials`` counted trials.

    Stops early when every point of the space has been evaluated (``stop_when_exhausted``) or
    on ``cfg.timeout``. ``cache`` may be shared between studies (strategy comparisons do).
    ``fail_running``: mark trials left RUNNING by a dead process as FAIL first; only safe when
    no other process works on the study (the caller holds the run directory's lock).
    """
    strategy = STRATEGIES.get(cfg.strategy.name, key="search.strategy")
    if not strategy.multi_objective and cfg.combine == "pareto":
        raise ConfigError(f"search.strategy {strategy.name!r} does not support combine = 'pareto'")
    directions = study_directions(cfg)
    multi = len(directions) > 1

    ctx = StrategyContext(
        space=space,
        seed=cfg.seed,
        n_objectives=len(directions),
        options=dict(cfg.strategy.options),
    )
    sampler = build_sampler(cfg.strategy.name, ctx)
    study = optuna.create_study(
        storage=storage,
        study_name=study_name,
        directions=directions,  # type: ignore[arg-type]
        sampler=sampler,
        load_if_exists=True,
    )
    if fail_running:
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            study._storage.set_trial_user_attr(t._trial_id, "interrupted", True)
            study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
    fp = fingerprint(cfg, space, fingerprint_extra or {})
    stored_fp = study.user_attrs.get("fingerprint")
    if stored_fp is None:
        study.set_user_attr("fingerprint", fp)
    elif stored_fp != fp:
        raise ConfigError(
            f"study {study_name!r} in this storage was made with a different config (space, "
            f"objectives, constraints, strategy or seed); pass --study NAME to start a new one"
        )
    if "baseline" in study.user_attrs:
        baseline = dict(study.user_attrs["baseline"])
    else:
        baseline = evaluator.baseline()
        study.set_user_attr("baseline", baseline)

    cache = cache if cache is not None else EvaluationCache()
    if cfg.cache:
        cache.restore(study.get_trials(deepcopy=False))
    done = sum(1 for t in study.get_trials(deepcopy=False) if _counted(t))
    remaining = cfg.n_trials - done
    stopped = {"why": "budget"}

    encoding = strategy.encoding
    knobs = space.knobs

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
        if cfg.cache:
            result, cached = cache.get_or_evaluate(
                key, trial.number, lambda: evaluator.evaluate(resolved)
            )
        else:
            ev = evaluator.evaluate(resolved)
            result, cached = CachedResult(ev.metrics, ev.error, trial.number, ev.seconds), False
        attrs: dict[str, Any] = {
            "config_hash": key,
            "cached": cached,
            "eval_seconds": 0.0 if cached else result.seconds,
        }
        if cached:
            attrs["duplicate_of"] = result.trial
        else:
            attrs["config"] = resolved.to_dict()
        if result.error is not None:
            attrs["error"] = result.error
            trial.set_user_attr(INFO_ATTR, attrs)
            raise TrialFailed(f"config {key} failed: {result.error}")
        assert result.metrics is not None
        values = objective_values(cfg, result.metrics, baseline)
        cons = constraint_values(cfg.constraints, result.metrics, baseline)
        attrs.update(constraints=cons, feasible=all(c <= 0 for c in cons))
        for c, value in zip(cfg.constraints, cons, strict=True):
            trial.set_constraint(c.name, value)  # what constrained samplers read
        trial.set_user_attr("metrics", result.metrics)
        trial.set_user_attr(INFO_ATTR, attrs)
        return values if multi else values[0]

    def after(study_: optuna.Study, trial: FrozenTrial) -> None:
        if on_trial is not None:
            on_trial(study_, trial, cache)
        if cfg.stop_when_exhausted and cfg.cache and len(cache) >= space.size:
            stopped["why"] = "space exhausted"
            study_.stop()

    if on_trial is not None:
        on_trial(study, None, cache)  # show where a resumed study stands before it goes on
    if remaining > 0 and not (cfg.stop_when_exhausted and cfg.cache and len(cache) >= space.size):
        t0 = time.perf_counter()
        with torch_threads(cfg.torch_threads):
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
        if (
            cfg.timeout is not None
            and time.perf_counter() - t0 >= cfg.timeout
            and stopped["why"] == "budget"
        ):
            stopped["why"] = "timeout"
    elif remaining <= 0:
        stopped["why"] = "budget (already complete)"
    else:
        stopped["why"] = "space exhausted"
    return StudyRun(study, baseline, cache, stopped["why"])
