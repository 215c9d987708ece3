"""Multi-fidelity evaluation: successive halving over prefixes of the validation split.

With ``[search] fidelity = "successive_halving"`` a new config is measured on the first
``m`` validation samples, then ``m * eta``, ``m * eta^2`` ... (the rungs), and finally on the
whole split. At each rung below the last it reports its accuracy on the prefix to Optuna
(``trial.report``), and :class:`ConfidencePruner` (the study's pruner) stops it, recorded as
PRUNED, when it can no longer, with ``confidence``, meet a constraint or beat the incumbent:

* ``k`` correct of ``n`` samples give a one-sided Clopper-Pearson upper bound ``U`` on the
  accuracy: the ``U`` with ``P(Binomial(n, U) <= k) = 1 - confidence``, i.e. the
  ``confidence``-quantile of ``Beta(k + 1, n - k)`` (``U = 1`` when ``k = n``);
* a constraint that bounds ``accuracy`` from below (``min``, ``min_ratio``, ``accuracy_drop``)
  is broken for sure when it is broken at ``U``;
* with a weighted-sum objective whose only data metric is ``accuracy`` (maximised), the
  objective at ``U`` (and the config's analytic metrics as measured) below the best feasible
  objective of the study so far cannot beat it.

The bound treats the prefix as a random sample of the split, so the split must be in random
order (digits' validation split comes from scikit-learn's shuffling
``train_test_split``; check a dataset of your own). Cost is counted in samples: a
pruned trial records the samples of the rungs it ran, a finished one those rungs plus the whole
split (``TrialInfo.samples``). The full evaluation re-measures the prefix: every metric comes
from one pass, as without fidelity.

A rung's accuracy is a function of the config alone, so each is measured once per study
(:meth:`ConfidencePruner.measured`, and, for what a resumed search or another worker measured,
the intermediate values of the study's finished trials, :meth:`ConfidencePruner.stored`): a
config pruned before and proposed again replays the rungs measured, judged anew against the
study as it is now, and measures only the rungs past them. A repeat pruned again without
measuring anything records 0 samples, ``cached`` and the trial that measured it
(``duplicate_of``); strategies propose pruned configs again (a random search of 48 trials over
the lab's 16 points did), each a forward pass over the prefixes before.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.pruners import BasePruner
from optuna.study import Study
from optuna.trial import FrozenTrial, Trial, TrialState

from quantsearch.metrics import compute_metrics
from quantsearch.metrics.quality import evaluate
from quantsearch.passes.transform import ResolvedConfig
from quantsearch.search import optuna_compat
from quantsearch.search.config import FidelitySpec, SearchConfig
from quantsearch.search.evaluate import Evaluation, Evaluator, config_hash
from quantsearch.search.objective import constraint_values, objective_values
from quantsearch.search.precheck import is_analytic
from quantsearch.search.trial import INFO_ATTR, TrialInfo

__all__ = [
    "ConfidencePruner",
    "Pruned",
    "accuracy_upper_bound",
    "evaluate_with_fidelity",
    "measure",
    "rungs",
]

_LOWER_BOUNDED = ("min", "min_ratio", "drop")  # constraint kinds that accuracy must stay above


class Pruned(optuna.TrialPruned):
    """A trial stopped at a rung: the samples it used and the rule that stopped it."""

    def __init__(self, samples: int, reason: str, replayed_from: int | None = None) -> None:
        super().__init__(f"pruned by {reason} after {samples} samples")
        self.samples, self.reason = samples, reason
        self.replayed_from = replayed_from  # nothing measured: the trial whose rungs it judged

    def info(self, number: int, key: str) -> TrialInfo:
        """The pruned trial's record (Optuna sets its state to PRUNED)."""
        replay = self.replayed_from if self.samples == 0 else None
        return TrialInfo(
            number=number,
            state="RUNNING",
            config_hash=key,
            samples=self.samples,
            pruned_by=self.reason,
            cached=replay is not None,
            duplicate_of=replay,
        )


def rungs(n_total: int, spec: FidelitySpec) -> list[int]:
    """Prefix sizes a trial is measured on, ending with the whole split.

    Example:
        >>> rungs(1000, FidelitySpec("successive_halving"))
        [62, 248, 1000]
        >>> rungs(1000, FidelitySpec("full"))
        [1000]
    """
    if spec.method == "full":
        return [n_total]
    n = spec.min_samples or max(1, n_total // spec.eta**2)
    out = []
    while n <= n_total // spec.eta:  # the last rung below the whole split is a 1/eta of it
        out.append(n)
        n *= spec.eta
    return [*out, n_total]


def accuracy_upper_bound(correct: int, n: int, confidence: float) -> float:
    """One-sided Clopper-Pearson upper bound on a proportion (see the module docstring).

    Example:
        >>> round(accuracy_upper_bound(5, 10, 0.95), 4)
        0.7776
    """
    if correct >= n:
        return 1.0
    from scipy.stats import beta  # scipy is slow to import: only multi-fidelity searches need it

    return float(beta.ppf(confidence, correct + 1, n - correct))


@dataclass(frozen=True)
class _Rung:
    samples: int
    correct: int
    analytic: dict[str, float]


@dataclass
class Measured:
    """What a config's rungs measured so far: the first trial that measured them, its analytic
    metrics (``None``: not computed in this process yet) and, per rung from the first, the
    accuracy reported and the samples right."""

    trial: int
    analytic: dict[str, float] | None
    rungs: list[tuple[float, int]]


class _Stored:
    """The finished trials of a study that reported rungs, by config hash: the first of most
    rungs each, read as they come (a finished trial never changes), so that looking a config
    up costs a pass over the trials' numbers, not a read of each trial's attributes."""

    def __init__(self) -> None:
        self.seen: set[int] = set()
        self.by_hash: dict[str, FrozenTrial] = {}

    def lookup(self, study: Study, key: str, sizes: list[int]) -> Measured | None:
        """The rungs a finished trial of config ``key`` (its hash) reported to ``study``: each
        rung's accuracy is the trial's intermediate value at its sample count. What a resumed
        search, or another worker, measured before."""
        for t in optuna_compat.study_trials(study, (TrialState.PRUNED, TrialState.COMPLETE)):
            if t.number in self.seen:
                continue
            self.seen.add(t.number)
            info = t.user_attrs.get(INFO_ATTR)
            h = info.get("config_hash") if isinstance(info, dict) else None
            kept = self.by_hash.get(h) if isinstance(h, str) else None
            if (
                isinstance(h, str)
                and t.intermediate_values
                and (kept is None or len(t.intermediate_values) > len(kept.intermediate_values))
            ):
                self.by_hash[h] = t
        first = self.by_hash.get(key)
        if first is None:
            return None
        got: list[tuple[float, int]] = []
        for n in sizes:
            accuracy = first.intermediate_values.get(n)
            if accuracy is None or not math.isfinite(accuracy):
                break
            got.append((accuracy, round(accuracy * n)))
        return Measured(first.number, None, got) if got else None


class ConfidencePruner(BasePruner):
    """Optuna pruner for :func:`evaluate_with_fidelity`'s rungs (the rule: module docstring).

    The objective tells it what a rung measured (:meth:`observe`) before ``trial.report``;
    :meth:`prune` judges the trial's latest rung and remembers why (:meth:`reason`).
    """

    def __init__(self, cfg: SearchConfig, baseline: Mapping[str, float]) -> None:
        self.cfg, self.baseline = cfg, dict(baseline)
        self.confidence = cfg.fidelity.confidence
        self._rungs: dict[int, _Rung] = {}
        self._reasons: dict[int, str] = {}
        self._measured: dict[Any, Measured] = {}  # config key -> its rungs measured
        self._stored = _Stored()
        self._lock = threading.Lock()
        objective_data = {o.metric for o in cfg.objectives if not is_analytic(o.metric)}
        acc = [o for o in cfg.objectives if o.metric == "accuracy"]
        self._incumbent_rule = (
            cfg.combine == "weighted_sum"
            and objective_data == {"accuracy"}
            and all(o.direction == "maximize" for o in acc)
        )

    def observe(self, number: int, samples: int, correct: int, analytic: dict[str, float]) -> None:
        with self._lock:
            self._rungs[number] = _Rung(samples, correct, analytic)

    def measured(self, key: Any) -> Measured | None:
        """The rungs measured of the config of ``key`` (``ResolvedConfig.key()``) in this
        process, kept as they come (:meth:`remember`)."""
        with self._lock:
            return self._measured.get(key)

    def stored(self, study: Study, key: str, sizes: list[int]) -> Measured | None:
        """The rungs of config ``key`` (its hash) a finished trial of ``study`` reported
        (:class:`_Stored`), or ``None``."""
        with self._lock:
            return self._stored.lookup(study, key, sizes)

    def keep(self, key: Any, measured: Measured) -> Measured:
        """Keep ``measured`` as config ``key``'s memo unless one is kept: the one kept."""
        with self._lock:
            return self._measured.setdefault(key, measured)

    def remember(self, key: Any, measured: Measured, rung: int, value: tuple[float, int]) -> None:
        """Keep rung ``rung``'s ``value`` (accuracy, samples right) in ``measured``, the memo
        of config ``key``; a thread that measured it too does not add it twice."""
        with self._lock:
            if len(measured.rungs) == rung:
                measured.rungs.append(value)
            self._measured.setdefault(key, measured)

    def reason(self, number: int) -> str | None:
        with self._lock:
            return self._reasons.get(number)

    def prune(self, study: Study, trial: FrozenTrial) -> bool:
        with self._lock:
            rung = self._rungs.get(trial.number)
        if rung is None:
            return False
        why = self.judge(study, rung.samples, rung.correct, rung.analytic)
        if why is not None:
            with self._lock:
                self._reasons[trial.number] = why
        return why is not None

    def judge(
        self, study: Study | None, samples: int, correct: int, analytic: Mapping[str, float]
    ) -> str | None:
        """Why a config with ``correct`` of ``samples`` right is stopped, or ``None``."""
        upper = accuracy_upper_bound(correct, samples, self.confidence)
        best = {**analytic, "accuracy": upper}
        for c in self.cfg.constraints:
            lower = c.metric == "accuracy" and c.kind in _LOWER_BOUNDED
            if lower and constraint_values([c], best, self.baseline)[0] > 0:
                return c.name
        if self._incumbent_rule and study is not None:
            incumbent = _incumbent(study)
            if (
                incumbent is not None
                and objective_values(self.cfg, best, self.baseline)[0] < incumbent
            ):
                return "incumbent"
        return None


def _incumbent(study: Study) -> float | None:
    """The best feasible objective value among the study's finished trials."""
    values = [
        t.values[0]
        for ft in optuna_compat.study_trials(study, (TrialState.COMPLETE,))
        if (t := TrialInfo.from_trial(ft)).is_feasible and t.values
    ]
    return max(values) if values else None


def measure(evaluator: Evaluator, resolved: ResolvedConfig, trial: Trial) -> tuple[Evaluation, int]:
    """Evaluate ``resolved`` at the study's fidelity: the evaluation and the samples it used."""
    pruner = trial.study.pruner
    if isinstance(pruner, ConfidencePruner):
        return evaluate_with_fidelity(evaluator, resolved, trial, pruner)
    return evaluator.evaluate(resolved), len(evaluator.data)


def evaluate_with_fidelity(
    evaluator: Evaluator, resolved: ResolvedConfig, trial: Trial, pruner: ConfidencePruner
) -> tuple[Evaluation, int]:
    """Quantize once, measure the rungs (raising :class:`Pruned`), then every metric on the
    whole split; the evaluation and the validation samples it used. Rungs this config
    measured in an earlier trial are replayed, not measured again (module doc)."""
    t0 = time.perf_counter()
    data = evaluator.data
    spent = 0
    metrics: dict[str, Any]
    key = resolved.key()
    sizes = rungs(len(data), pruner.cfg.fidelity)[:-1]
    known = pruner.measured(key)
    if known is None:
        known = pruner.stored(trial.study, config_hash(key), sizes)
    try:
        qgm = None
        if known is None or known.analytic is None:
            qgm = evaluator.prepared().apply_(resolved)  # slots filled: no per-trial rebuild
            analytic = compute_metrics(qgm, [m for m in evaluator.metrics if is_analytic(m)])
            if known is None:
                known = Measured(trial.number, analytic, [])
            else:  # read from the study: kept from now on
                known = pruner.keep(key, Measured(known.trial, analytic, known.rungs))
        for i, n in enumerate(sizes):
            if i < len(known.rungs):
                accuracy, correct = known.rungs[i]
            else:
                if qgm is None:
                    qgm = evaluator.prepared().apply_(resolved)
                q = evaluate(qgm, data, batch_size=evaluator.batch_size, samples=n)
                accuracy, correct = q.accuracy, round(q.accuracy * n)
                spent += n
                pruner.remember(key, known, i, (accuracy, correct))
            assert known.analytic is not None
            pruner.observe(trial.number, n, correct, known.analytic)
            trial.report(accuracy, step=n)
            if trial.should_prune():
                why = pruner.reason(trial.number) or "pruner"
                raise Pruned(spent, why, replayed_from=known.trial)
        if qgm is None:
            qgm = evaluator.prepared().apply_(resolved)
        metrics = compute_metrics(
            qgm, evaluator.metrics, data=data, batch_size=evaluator.batch_size
        )
        spent += len(data)
    except Pruned:
        raise
    except Exception as exc:  # recorded on the trial with its config; the search goes on
        return Evaluation(None, f"{type(exc).__name__}: {exc}", time.perf_counter() - t0), spent
    bad = sorted(k for k, v in metrics.items() if not math.isfinite(v))
    seconds = time.perf_counter() - t0
    if bad:
        return Evaluation(metrics, f"non-finite metric(s) {bad}", seconds), spent
    return Evaluation(metrics, None, seconds), spent
