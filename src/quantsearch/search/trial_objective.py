"""What one trial does: mark it, suggest a point, resolve its per-node config, pre-check it,
answer it from the cache (or another worker's claim) or evaluate it, and record a
:class:`~quantsearch.search.trial.TrialInfo`. :mod:`quantsearch.search.study` runs it once per
budget ticket.

:meth:`TrialObjective.run_many` does the same for several points known in advance (brute
force, random search), the new configs among them evaluated together;
:mod:`quantsearch.search.batch` stores each as one finished trial. Both paths compute what a trial records with the same
:meth:`TrialObjective.outcome`.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import optuna
from optuna.trial import Trial, TrialState

from quantsearch.passes.transform.resolved import ResolvedConfig
from quantsearch.search import interrupt, optuna_compat
from quantsearch.search.cache import CachedResult, EvaluationCache
from quantsearch.search.config import SearchConfig
from quantsearch.search.evaluate import Evaluation, Evaluator, config_hash
from quantsearch.search.failed import failed_outcome, measured_constraints
from quantsearch.search.fidelity import Pruned, measure
from quantsearch.search.objective import constraint_values, objective_values
from quantsearch.search.parallel.claims import Claims
from quantsearch.search.parallel.liveness import mark
from quantsearch.search.precheck import Precheck, PrecheckVerdict
from quantsearch.search.space import SearchSpace
from quantsearch.search.strategies import STRATEGIES
from quantsearch.search.trial import TrialInfo, evaluations_charged

__all__ = ["WAIT_TIMEOUT", "Outcome", "TrialFailed", "TrialObjective"]

WAIT_TIMEOUT = 3600.0  # seconds a trial waits for another worker evaluating the same config


class TrialFailed(Exception):
    """Raised inside the objective so Optuna records the trial as FAIL; the search goes on."""


@dataclass(frozen=True)
class Outcome:
    """What a finished trial records: its bookkeeping, objective values and constraints list
    (Optuna's ``"constraints"`` system attribute, ``<= 0`` met)."""

    info: TrialInfo
    values: tuple[float, ...]
    constraints: list[float]

    @property
    def returned(self) -> float | tuple[float, ...]:
        """What the objective returns to Optuna: one value, or a tuple for several."""
        return self.values if len(self.values) > 1 else self.values[0]


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
        # Asked once: the space answers by looking at every option of every knob.
        self.has_auto = space.has_auto
        self._configs: int | None = None  # distinct configs of the space (n_configs)
        # Finished trials never change: each is read into a TrialInfo once per study, not at
        # every check of the evaluation budget (before every trial: quadratic in a long
        # n_evaluations search). Other workers' trials are read when they first appear.
        self._finished: set[int] = set()  # numbers of the finished trials read
        self._charged: set[str | None] = set()  # the configs they charged
        self._spent = 0  # evaluations_charged over them, kept as they come
        # n_jobs threads check the budget before each of their trials: the count is shared
        self._spent_lock = threading.Lock()

    def __call__(self, trial: Trial) -> float | tuple[float, ...]:
        mark(trial)  # before anything else: how other workers tell this trial is alive
        for k in self.space.knobs:
            if self.categorical:
                trial.suggest_categorical(k.name, k.labels)
            else:
                trial.suggest_int(k.name, 0, k.size - 1)
        choice = self.space.decode(trial.params)
        resolved, key, formats = self._point(choice)
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
            return _apply(trial, self._prechecked(trial.number, key, verdict, formats))
        info = _info(trial.number, key, resolved, result, cached, samples[0], formats)
        return _apply(trial, self.outcome(trial.study, info, result))

    def run_many(
        self,
        study: optuna.Study,
        choices: Sequence[Mapping[str, int]],
        first_number: int,
        store: Callable[[], None] = lambda: None,
    ) -> Iterator[Outcome]:
        """The outcomes of trials ``first_number, first_number + 1, ...`` on ``choices``, as
        :meth:`__call__` would record them one after the other, the new configs among them
        evaluated in one :meth:`~quantsearch.search.evaluate.Evaluator.evaluate_many` call.

        A failed config's values depend on the trials before it: the outcomes taken so far
        must be stored when ``store`` is called, which is done just before such an outcome is
        computed (so a caller may store the others in one write). For one process (no claims)
        at full fidelity only.
        """
        todo: list[ResolvedConfig] = []
        todo_keys: list[str] = []  # their cache keys
        first_of: dict[str, int] = {}  # a new config -> its index in todo
        slots = []
        for i, choice in enumerate(choices):
            resolved, key, formats = self._point(choice)
            hit = self.cache.peek(key) if self.cfg.cache else None
            verdict, j = None, first_of.get(key)
            if hit is None and j is None:  # new: pre-checked, or evaluated below
                verdict = self.precheck(resolved) if self.precheck.active else None
                if verdict is None:
                    j = len(todo)
                    todo.append(resolved)
                    todo_keys.append(key)
                    if self.cfg.cache:
                        first_of[key] = j
            slots.append((first_number + i, key, resolved, formats, verdict, hit, j))
        with interrupt.immediate():  # Ctrl-C here: no trial of the batch is recorded
            evaluations = self.evaluator.evaluate_many(todo) if todo else []
        owners = {j: n for n, *_, j in reversed(slots) if j is not None}
        results = []
        for j, ev in enumerate(evaluations):
            if self.cfg.cache:  # as EvaluationCache.get_or_evaluate keeps it
                result = CachedResult(
                    ev.metrics if ev.error is None else None, ev.error, owners[j], ev.seconds
                )
                self.cache.put(todo_keys[j], result)  # config_hash(todo[j].key())
            else:
                result = CachedResult(ev.metrics, ev.error, owners[j], ev.seconds)
            results.append(result)
        samples = len(self.evaluator.data)
        for number, key, resolved, formats, verdict, hit, j in slots:
            if verdict is not None:
                yield self._prechecked(number, key, verdict, formats)
                continue
            if hit is not None:  # evaluated before this batch (in this study or another)
                result, cached = hit, True
            else:  # evaluated in this batch, by this trial or an earlier one
                result = results[j]  # type: ignore[index]
                cached = result.trial != number
            info = _info(number, key, resolved, result, cached, samples, formats)
            if result.error is not None:
                store()  # the worst values seen so far include this batch's earlier trials
            yield self.outcome(study, info, result)

    def outcome(self, study: optuna.Study, info: TrialInfo, result: CachedResult) -> Outcome:
        """What a trial with ``result`` records in ``study`` now (a failed config: COMPLETE,
        infeasible, at the worst values seen so far, :mod:`~quantsearch.search.failed`)."""
        if result.error is not None:  # COMPLETE and infeasible: the sampler learns from it
            values, cons = failed_outcome(study, self.cfg, self.baseline)
            return Outcome(dataclasses.replace(info, feasible=False), values, cons)
        assert result.metrics is not None
        values = objective_values(self.cfg, result.metrics, self.baseline)
        measured = constraint_values(self.cfg.constraints, result.metrics, self.baseline)
        info = dataclasses.replace(
            info,
            metrics=dict(result.metrics),
            constraints=tuple(measured),
            feasible=all(c <= 0 for c in measured),
        )
        return Outcome(info, tuple(values), measured_constraints(self.cfg, measured))

    def _point(self, choice: Mapping[str, int]) -> tuple[ResolvedConfig, str, dict[str, str]]:
        """A point's resolved per-node config, its cache key and its ``"auto"`` formats."""
        resolved = self.evaluator.resolve(self.space.layer_formats(dict(choice)))
        formats = _auto_formats(self.space, choice, resolved) if self.has_auto else {}
        return resolved, config_hash(resolved.key()), formats

    def _prechecked(
        self, number: int, key: str, verdict: PrecheckVerdict, formats: dict[str, str]
    ) -> Outcome:
        """A config infeasible by its analytic constraints: recorded, never evaluated."""
        self.prechecked.add(key)
        info = dataclasses.replace(verdict.info(number, key), formats=formats)
        return Outcome(info, tuple(verdict.values), list(verdict.constraints))

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

    def evaluated(self) -> int:
        """Distinct configs evaluated so far, by every worker of the study (without claims:
        also those another thread of this process is evaluating now)."""
        if self.claims is None:
            return self.cache.known()
        return sum(1 for k in self.claims.results() if not k.startswith("point:"))

    def exhausted(self) -> bool:
        """Every point of the space is evaluated or pre-checked (and the search stops there)."""
        left = self.left_to_exhaust()
        return left is not None and left <= 0

    def left_to_exhaust(self) -> int | None:
        """Configs still to evaluate or pre-check before the search stops on exhaustion;
        ``None`` when it does not stop there."""
        cfg = self.cfg
        if not (cfg.stop_when_exhausted and cfg.cache):
            return None
        # Only a budget of at least the space's configs can exhaust it: "auto" choices can make
        # two points one config, which is counted only where such a budget may be enough.
        if cfg.n_trials < self.space.size and not self.has_auto:
            return None
        if self._configs is None:
            self._configs = self.space.n_configs(self.evaluator.resolve)
        if cfg.n_trials < self._configs:
            return None
        left = self._configs - self.evaluated() - len(self.prechecked)
        if left > 0 and self.claims is not None:  # another worker's evaluations in flight
            left -= self.claims.in_flight(left)
        return left

    def restore(self, trials: list[TrialInfo]) -> None:
        """What a resumed study already pre-checked."""
        self.prechecked.update(t.config_hash for t in trials if t.prechecked and t.config_hash)

    def evaluations_spent(self, study: optuna.Study) -> int:
        """Evaluations charged to ``n_evaluations`` so far (:func:`evaluations_charged`)."""
        states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
        finished = optuna_compat.study_trials(study, states)
        with self._spent_lock:  # two threads must not both count a new trial
            # Those read are among them (a finished trial stays finished): the rest are new.
            new = len(finished) - len(self._finished)
            for t in reversed(finished):  # in number order: the new ones are mostly the last
                if new <= 0:
                    break
                if t.number in self._finished:
                    continue
                new -= 1
                self._finished.add(t.number)
                info = TrialInfo.from_trial(t)
                charged = evaluations_charged([info], distinct=False)  # 1: it charges one
                if charged and self.cfg.cache:  # distinct configs: each charged once
                    charged = int(info.config_hash not in self._charged)
                    self._charged.add(info.config_hash)
                self._spent += charged
            return self._spent


def _auto_formats(
    space: SearchSpace, choice: Mapping[str, int], resolved: ResolvedConfig
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


def _info(
    number: int,
    key: str,
    resolved: ResolvedConfig,
    result: CachedResult,
    cached: bool,
    samples: int,
    formats: dict[str, str],
) -> TrialInfo:
    """The record of a trial answered by ``result`` (``cached``: by an earlier evaluation)."""
    return TrialInfo(
        number=number,
        state="RUNNING",
        config_hash=key,
        cached=cached,
        duplicate_of=result.trial if cached else None,
        eval_seconds=0.0 if cached else result.seconds,
        config=None if cached else resolved.to_dict(),
        error=result.error,
        samples=0 if cached else samples,
        formats=formats,
    )


def _apply(trial: Trial, out: Outcome) -> float | tuple[float, ...]:
    """Record ``out`` on a running trial; what its objective returns."""
    optuna_compat.set_constraints(trial, out.constraints)
    _store(trial, out.info)
    return out.returned


def _store(trial: Trial, info: TrialInfo) -> None:
    for k, v in info.to_user_attrs().items():
        trial.set_user_attr(k, v)
