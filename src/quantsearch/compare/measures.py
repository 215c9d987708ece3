"""What is measured of one run (one strategy, one seed), from its own trial sequence.

Never from a shared cache's flags:

* **trials**: completed trials and trials whose config failed (the ones that use up a budget,
  :attr:`TrialInfo.counts_toward_budget`).
* **distinct evaluations**: trials whose config had not been evaluated earlier *in this run*,
  as ``n_evaluations`` charges them (:func:`evaluation_flags`): a config pre-checked infeasible
  ran no forward pass and is none. A failed config counts as a trial and an evaluation, never
  as a best; an infeasible trial never counts as best so far.
* **best so far** (``weighted_sum``): the largest feasible objective among the first ``k``
  trials, ``-inf`` until the first feasible one.
* **hypervolume ratio** (``pareto``): the hypervolume of the feasible objective vectors among
  the first ``k`` trials over that of the reference front (:func:`quantsearch.search.pareto.hypervolume`).
* **trials / evaluations to optimum**: the first ``k`` at which best so far is within
  ``tolerance`` of the optimum (pareto: the hypervolume ratio is at least ``1 - tolerance``).
* **duplicate share**: the share of the run's trials that repeated a config of that run
  (evaluated or pre-checked)
  (``new_by_trial`` keeps the per-trial flags, so shares can be compared over equal numbers of
  trials: :func:`quantsearch.compare.ranking.repeated_shares`).
* **samples**: validation samples the run's forward passes used (``TrialInfo.samples``; with
  multi-fidelity, pruned trials cost only their rungs), a config new to the run that a shared
  cache answered at what its evaluation cost in the run that made it; ``None`` for records
  without them.
* **front share** (``pareto``): the share of the reference front's points (distinct objective
  vectors) whose config the run found.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from quantsearch.search.pareto import hypervolume, to_loss
from quantsearch.search.trial import TrialInfo

__all__ = [
    "Mode",
    "RunMetrics",
    "Target",
    "best_so_far",
    "counted_trials",
    "evaluation_flags",
    "feasible_values",
    "measure_run",
    "new_config_flags",
]

Mode = Literal["weighted_sum", "pareto"]

# Slack for comparing floats that come from separate evaluations of one config (bit-identical
# on CPU; a GPU may differ in the last bits when the cache is off).
_SLACK = 1e-9


def counted_trials(trials: Sequence[TrialInfo]) -> list[TrialInfo]:
    """The trials that use up a budget, in trial order: completed ones and failed configs."""
    return [t for t in sorted(trials, key=lambda t: t.number) if t.counts_toward_budget]


def new_config_flags(trials: Sequence[TrialInfo]) -> list[bool]:
    """Per trial: was its config new *to this run* (a distinct evaluation for the run)?

    Computed from the run's own sequence of config hashes, not from ``TrialInfo.cached``,
    which says whether a (possibly shared) cache answered.
    """
    seen: set[str] = set()
    out = []
    for t in trials:
        new = t.config_hash is not None and t.config_hash not in seen
        if t.config_hash is not None:
            seen.add(t.config_hash)
        out.append(new)
    return out


def evaluation_flags(trials: Sequence[TrialInfo]) -> list[bool]:
    """Per trial: did it charge this run a distinct evaluation (its config's first trial that
    charges one, :attr:`TrialInfo.charges_evaluation`: not a pre-checked config), as the run's
    own ``n_evaluations`` budget counts it (:func:`~quantsearch.search.trial.evaluations_charged`)?

    Example:
        >>> evaluation_flags([TrialInfo(0, "COMPLETE", config_hash="a", prechecked=True),
        ...                   TrialInfo(1, "COMPLETE", config_hash="b"),
        ...                   TrialInfo(2, "COMPLETE", config_hash="b", cached=True)])
        [False, True, False]
    """
    seen: set[str | None] = set()
    out = []
    for t in trials:
        out.append(t.charges_evaluation and t.config_hash not in seen)
        if t.charges_evaluation:
            seen.add(t.config_hash)
    return out


def feasible_values(t: TrialInfo) -> tuple[float, ...] | None:
    """The trial's objective values when it is feasible, else ``None``."""
    if t.is_feasible and t.values is not None:
        return tuple(t.values)
    return None


def best_so_far(trials: Sequence[TrialInfo]) -> list[float]:
    """After each trial, the best feasible (single) objective so far; ``-inf`` before any.

    Example:
        >>> best_so_far([TrialInfo(0, "COMPLETE", values=(0.5,)),
        ...              TrialInfo(1, "COMPLETE", values=(0.9,), feasible=False)])
        [0.5, 0.5]
    """
    best = -math.inf
    out = []
    for t in trials:
        v = feasible_values(t)
        if v is not None and v[0] > best:
            best = v[0]
        out.append(best)
    return out


@dataclass(frozen=True)
class RunMetrics:
    """The measurements of one run (one strategy, one seed), as plain data.

    ``quality_by_trial[k-1]`` is the best feasible objective (weighted sum) or the hypervolume
    ratio (pareto) after ``k`` trials; ``quality_by_evaluation[e-1]`` the same after the run's
    ``e``-th distinct evaluation. ``trials_to_optimum`` is ``None`` when never reached.
    """

    strategy: str
    seed: int
    trials: int
    evaluations: int
    duplicate_share: float
    trials_to_optimum: int | None
    evaluations_to_optimum: int | None
    exhausted: bool  # the run saw every config of the space (two points may be one config)
    quality_by_trial: tuple[float, ...]
    quality_by_evaluation: tuple[float, ...]
    front_share: float | None = None  # pareto: share of the reference front's points found
    front_share_by_trial: tuple[float, ...] = ()
    new_by_trial: tuple[bool, ...] = ()  # per trial: its config was new to this run
    samples: int | None = None  # validation samples forwarded (None: not recorded)


@dataclass(frozen=True)
class Target:
    """What a run is measured against (the reference optimum or front)."""

    mode: Mode
    optimum: float | None = None  # weighted sum
    tolerance: float = 0.0
    directions: tuple[str, ...] = ()
    reference_point: tuple[float, ...] | None = None
    reference_hypervolume: float | None = None
    front_groups: tuple[frozenset[str], ...] = ()  # per front point: the configs that have it

    def regret(self, quality: float) -> float:
        """Simple regret of a run's quality: optimum minus best (pareto: 1 - HV ratio)."""
        if self.mode == "weighted_sum":
            return (self.optimum - quality) if self.optimum is not None else math.nan
        return 1.0 - quality


def measure_run(
    trials: Sequence[TrialInfo],
    target: Target,
    *,
    strategy: str = "",
    seed: int = 0,
    space_size: int | None = None,
    measured: Mapping[str, int] | None = None,
) -> RunMetrics:
    """Measure one run's trial sequence against ``target`` (see the module docstring).

    ``measured``: config hash -> the validation samples its evaluation used, in whichever run
    of a comparison measured it first; a config new to this run that a shared cache answered
    is charged those (each run then pays for its own evaluations, as with a cache per run).
    """
    seq = counted_trials(trials)
    new = new_config_flags(seq)  # configs seen: repeats and exhaustion
    charged = evaluation_flags(seq)  # evaluations: the cost axis
    evals = sum(charged)
    reached_at: int | None
    if target.mode == "weighted_sum":
        quality = best_so_far(seq)
        if target.optimum is None:
            reached_at = None
        else:
            goal = target.optimum - target.tolerance - _SLACK * max(1.0, abs(target.optimum))
            reached_at = next((i for i, q in enumerate(quality) if q >= goal), None)
        share: float | None = None
        share_by_trial: tuple[float, ...] = ()
    else:
        quality, share_curve = _pareto_curves(seq, target)
        goal = 1.0 - target.tolerance - _SLACK
        reached_at = (
            next((i for i, q in enumerate(quality) if q >= goal), None)
            if target.reference_hypervolume
            else None
        )
        share = share_curve[-1] if share_curve else 0.0
        share_by_trial = tuple(share_curve)
    by_eval = [q for q, is_charged in zip(quality, charged, strict=True) if is_charged]
    return RunMetrics(
        strategy=strategy,
        seed=seed,
        trials=len(seq),
        evaluations=evals,
        duplicate_share=(len(seq) - sum(new)) / len(seq) if seq else 0.0,
        trials_to_optimum=None if reached_at is None else reached_at + 1,
        evaluations_to_optimum=None if reached_at is None else sum(charged[: reached_at + 1]),
        exhausted=space_size is not None and sum(new) >= space_size,
        quality_by_trial=tuple(quality),
        quality_by_evaluation=tuple(by_eval),
        front_share=share,
        front_share_by_trial=share_by_trial,
        new_by_trial=tuple(new),
        samples=_samples(seq, charged, measured or {}),
    )


def _samples(
    seq: Sequence[TrialInfo], charged: Sequence[bool], measured: Mapping[str, int]
) -> int | None:
    """Validation samples the run used, its shared-cache answers charged as measured."""
    if any(t.samples is None for t in seq):
        return None
    return sum(
        measured.get(t.config_hash or "", t.samples or 0) if new and t.cached else t.samples or 0
        for t, new in zip(seq, charged, strict=True)
    )


def _pareto_curves(seq: Sequence[TrialInfo], target: Target) -> tuple[list[float], list[float]]:
    """Per trial: the hypervolume ratio and the share of the reference front found so far."""
    ref, ref_hv = target.reference_point, target.reference_hypervolume
    points: set[tuple[float, ...]] = set()
    found: set[str] = set()
    hv = 0.0
    ratios, shares = [], []
    n_front = len(target.front_groups)
    for t in seq:
        v = feasible_values(t)
        if v is not None and ref is not None and ref_hv:
            loss = to_loss(v, target.directions)
            if loss not in points:
                points.add(loss)
                hv = hypervolume(sorted(points), ref)
            if t.config_hash is not None:
                found.add(t.config_hash)
        ratios.append(hv / ref_hv if ref_hv else 0.0)
        shares.append(
            sum(1 for g in target.front_groups if g & found) / n_front if n_front else 0.0
        )
    return ratios, shares
