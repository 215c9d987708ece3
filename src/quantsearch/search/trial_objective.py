"""What one trial does: mark it, suggest a point, resolve its per-node config, pre-check it,
answer it from the cache (or another worker's claim) or evaluate it, and record a
:class:`~quantsearch.search.trial.TrialInfo`. :mod:`quantsearch.search.study` runs it once per
budget ticket.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import optuna
from optuna.trial import Trial, TrialState

from quantsearch.passes.transform.resolved import ResolvedConfig
from quantsearch.search import interrupt, optuna_compat
from quantsearch.search.cache import CachedResult, EvaluationCache
from quantsearch.search.config import SearchConfig
from quantsearch.search.evaluate import Evaluation, Evaluator, config_hash
from quantsearch.search.failed import mark_measured, record_failed
from quantsearch.search.fidelity import Pruned, measure
from quantsearch.search.objective import constraint_values, objective_values
from quantsearch.search.parallel.claims import Claims
from quantsearch.search.parallel.liveness import mark
from quantsearch.search.precheck import Precheck, PrecheckVerdict
from quantsearch.search.space import SearchSpace
from quantsearch.search.strategies import STRATEGIES
from quantsearch.search.trial import TrialInfo, evaluations_charged

__all__ = ["WAIT_TIMEOUT", "TrialFailed", "TrialObjective"]

WAIT_TIMEOUT = 3600.0  # seconds a trial waits for another worker evaluating the same config


class TrialFailed(Exception):
    """Raised inside the objective so Optuna records the trial as FAIL; the search goes on."""


class TrialObjective:
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
        formats = _auto_formats(self.space, choice, resolved)
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
            _store(trial, dataclasses.replace(p.info(trial.number, key), formats=formats))
            raise
        finally:
            if self.claims is not None:  # the point is taken, whatever came of it
                self.claims.complete(f"point:{self.space.index_of(choice)}", trial.number, {})
        if verdict is not None:
            return self._record_prechecked(trial, key, verdict, formats)
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
            formats=formats,
        )
        return self._record(trial, info, result)

    def _record_prechecked(
        self, trial: Trial, key: str, verdict: PrecheckVerdict, formats: dict[str, str]
    ) -> float | tuple[float, ...]:
        """A config infeasible by its analytic constraints: recorded, never evaluated."""
        optuna_compat.set_constraints(trial, verdict.constraints)
        self.prechecked.add(key)
        _store(trial, dataclasses.replace(verdict.info(trial.number, key), formats=formats))
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


def _auto_formats(
    space: SearchSpace, choice: dict[str, int], resolved: ResolvedConfig
) -> dict[str, str]:
    """What each ``"auto"`` choice became at each node (``fixed(8,5)``): the binary point the
    quantize pass chose from the weights' range or the calibration statistics."""
    out = {}
    for node, role in space.auto_roles(choice):
        lq = resolved.get(node)
        fmt = getattr(lq, role) if lq is not None else None
        if fmt is not None:  # None: a role the node lacks (a Linear without bias)
            out[f"{node}.{role}"] = str(fmt)
    return out


def _store(trial: Trial, info: TrialInfo) -> None:
    for k, v in info.to_user_attrs().items():
        trial.set_user_attr(k, v)
