"""Constraints on analytic cost metrics, checked before a config is evaluated.

A metric of kind ``static`` in the registry (params, model size, average bits, MACs, FLOPs,
BitOPs, activation bits ...) is read from the quantized graph's per-node records, without a
forward pass. When a search constrains such a metric, each new config is quantized and those
metrics are read first; a config that breaks one of those constraints is recorded as infeasible
(``TrialInfo.prechecked``) with no forward pass and zero evaluation cost. It counts toward
``n_trials`` (the sampler proposed it) but not toward ``n_evaluations``.

What the samplers are told about a pre-checked trial:

* constraints: the analytic ones as measured; those on data metrics (accuracy ...), which were
  not measured, as ``0.0`` (neither met with a margin nor broken), so the trial is infeasible
  by exactly its analytic violations;
* objective values: computed with the analytic metrics as measured and every unmeasured metric
  at its worst value: ``0`` for a maximised fraction (accuracy), ``1`` for a minimised one,
  and the float baseline's value for any other (loss). Constraint-aware samplers (TPE,
  NSGA-II/III, GP) rank infeasible trials by their violation first, so the imputed value only
  matters to a sampler that ignores constraints.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from quantsearch.metrics import compute_metrics
from quantsearch.metrics.specs import metric_spec
from quantsearch.passes.transform import ResolvedConfig
from quantsearch.search.config import ConstraintSpec, SearchConfig
from quantsearch.search.evaluate import Evaluator
from quantsearch.search.objective import constraint_values, objective_values
from quantsearch.search.trial import TrialInfo

__all__ = ["Precheck", "PrecheckVerdict", "analytic_constraints", "is_analytic"]


def is_analytic(metric: str) -> bool:
    """Known from the graph and the config alone, without a forward pass.

    Example:
        >>> is_analytic("bitops"), is_analytic("accuracy")
        (True, False)
    """
    return metric_spec(metric).kind == "static"


def analytic_constraints(constraints: tuple[ConstraintSpec, ...]) -> tuple[ConstraintSpec, ...]:
    """The constraints that can be checked before evaluation."""
    return tuple(c for c in constraints if is_analytic(c.metric))


@dataclass(frozen=True)
class PrecheckVerdict:
    """A config found infeasible before evaluation, and what the trial records of it."""

    metrics: dict[str, float]  # the analytic metrics measured
    constraints: tuple[float, ...]  # every constraint, unmeasured ones as 0.0
    values: tuple[float, ...]  # objective values, unmeasured metrics at their worst
    broken: tuple[str, ...]  # names of the analytic constraints it breaks

    def info(self, number: int, key: str) -> TrialInfo:
        """The trial's record: infeasible, pre-checked, no evaluation cost."""
        return TrialInfo(
            number=number,
            state="RUNNING",
            config_hash=key,
            eval_seconds=0.0,
            metrics=dict(self.metrics),
            constraints=self.constraints,
            feasible=False,
            prechecked=True,
            samples=0,
        )


class Precheck:
    """Checks a resolved config against the analytic constraints of ``cfg``."""

    def __init__(self, evaluator: Evaluator, cfg: SearchConfig, baseline: Mapping[str, float]):
        self.evaluator, self.cfg, self.baseline = evaluator, cfg, dict(baseline)
        self.constraints = analytic_constraints(cfg.constraints)
        self.names = tuple(m for m in cfg.all_metrics if is_analytic(m))

    @property
    def active(self) -> bool:
        """Some constraint is analytic (otherwise nothing is pre-checked)."""
        return bool(self.constraints)

    def __call__(self, resolved: ResolvedConfig) -> PrecheckVerdict | None:
        """The verdict when ``resolved`` breaks an analytic constraint, else ``None``."""
        if not self.active:
            return None
        ev = self.evaluator
        qgm = ev.prepared().apply_(resolved)  # slots filled, no rebuild; no forward pass
        metrics = compute_metrics(qgm, self.names)
        measured = dict(
            zip(
                self.constraints,
                constraint_values(self.constraints, metrics, self.baseline),
                strict=True,
            )
        )
        broken = tuple(c.name for c, v in measured.items() if v > 0)
        if not broken:
            return None
        cons = tuple(measured.get(c, 0.0) for c in self.cfg.constraints)
        values = objective_values(self.cfg, {**self._worst(), **metrics}, self.baseline)
        return PrecheckVerdict(metrics, cons, values, broken)

    def to_measure(self, configs: Iterable[ResolvedConfig]) -> list[ResolvedConfig]:
        """The distinct ``configs`` a search would evaluate: those this check passes (what a
        comparison's ground truth measures ahead of its run, no config it would pre-check)."""
        distinct = {rc.key(): rc for rc in configs}
        return [rc for rc in distinct.values() if self(rc) is None]

    def _worst(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for o in self.cfg.objectives:
            spec = metric_spec(o.metric)
            if spec.unit == "fraction":
                out[o.metric] = 0.0 if o.direction == "maximize" else 1.0
            else:
                out[o.metric] = float(self.baseline.get(o.metric, 0.0))
        return out
