"""Sensitivity-guided search: predicted per-layer damage, exact costs, an integer program, feedback.

HAWQ-V2/V3 rank layers by a Hessian-weighted quantization perturbation and pick per-layer bit
widths by integer linear programming under a cost budget; AIMET's automatic mixed precision
measures per-layer sensitivity first and then walks the cost/accuracy frontier. This strategy
does both and closes the loop with the search's real evaluations (docs/sensitivity.md):

1. Before the first trial, every choice of every knob gets a predicted accuracy drop (and
   loss increase) from one forward and backward pass over the evaluator's data
   (:mod:`quantsearch.passes.analysis.sensitivity`): no evaluation of the objective.
2. Analytic cost metrics (params, size, average bits, MACs, FLOPs, BitOPs) are additive over
   nodes and depend on a node's formats only through their bits, so the exact cost of every
   point is the reference point's plus one measured delta per group of knobs that share nodes.
3. Each trial solves a multiple-choice knapsack with ``scipy.optimize.milp``: one binary per
   joint choice of each group, the weighted objective predicted, the constraints predicted
   (data metrics with a safety margin; analytic ones exactly), and a no-good cut per point
   already proposed, so it never proposes a point (nor a config) twice.
4. After each evaluation the per-knob scale of the predicted damage is refitted by
   non-negative, ridge-regularised least squares on (predicted damage, measured drop), and the
   margin by the fit's residuals; the next solve uses them. The seed draws the scales around
   their fit (Thompson sampling's idea), so seeds give different, reproducible sequences.

Single objective (weighted sum) only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from optuna.samplers import BaseSampler
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState

from quantsearch.errors import ConfigError
from quantsearch.metrics.specs import metric_spec
from quantsearch.search import optuna_compat
from quantsearch.search.sensitivity import (
    Tables,
    is_analytic,
    sensitivity_rows,
    sensitivity_tables,
)
from quantsearch.search.strategies.base import Space, SpaceSampler, Strategy, StrategyContext
from quantsearch.search.strategies.options import Option
from quantsearch.search.trial import TrialInfo

__all__ = ["SensitivitySampler"]


# Candidate combinations up to which the program is solved by enumeration (numpy, about a
# millisecond) rather than by milp (tens of milliseconds per call, even for a few variables).
ENUMERATE_LIMIT = 200_000


@dataclass(frozen=True)
class _Linear:
    """A predicted quantity: ``const + sum_g coef[g][joint choice of g]``."""

    const: float
    coef: list[np.ndarray]


class SensitivitySampler(SpaceSampler):
    """Proposes the point an integer program over predicted damage and exact costs finds best.

    Args:
        space: the finite space.
        seed: seeds the draw of damage scales around their fit.
        evaluator: the study's evaluator (model, data, calibration).
        search: the study's ``SearchConfig`` (objectives, constraints).
        jitter: relative spread (log scale) of the drawn damage scales.
        keep: per group and distinct cost, how many joint choices the program sees (the least
            damaging ones; the others have the same cost and more predicted damage).
        ridge: pull of each knob's scale towards the global fit (in units of observations).
    """

    encoding = "categorical"

    def __init__(
        self,
        space: Space,
        seed: int | None = None,
        evaluator: Any = None,
        search: Any = None,
        jitter: float = 0.15,
        keep: int = 3,
        ridge: float = 2.0,
    ) -> None:
        super().__init__(space, seed=seed, resolve=getattr(evaluator, "resolve", None))
        if evaluator is None or search is None:
            raise ConfigError(
                "search.strategy 'sensitivity' needs the study's evaluator and config"
            )
        check_goals(search)
        self._ev, self._cfg = evaluator, search
        self._seed = 0 if seed is None else seed
        self._jitter, self._keep, self._ridge = jitter, keep, ridge
        self._tables: Tables | None = None
        self._classes: dict[int, np.ndarray] = {}
        self._points: dict[int, tuple[int, ...]] = {}
        self._metrics: dict[int, dict[str, float] | None] = {}

    def _cost_classes(self, gi: int) -> np.ndarray:
        """Per joint choice of group ``gi``: an id shared by the choices of equal analytic costs."""
        if gi not in self._classes:
            d = self.tables().delta[gi]
            m = np.stack([d[k] for k in sorted(d)], 1) if d else np.zeros((len(self._joint(gi)), 0))
            self._classes[gi] = np.unique(np.round(m, 6), axis=0, return_inverse=True)[1].ravel()
        return self._classes[gi]

    def _joint(self, gi: int) -> range:
        return range(math.prod(self._space.knobs[i].size for i in self.tables().groups[gi]))

    def tables(self, study: Study | None = None) -> Tables:
        if self._tables is None:  # first asked by propose, with the study that keeps them
            metrics = [o.metric for o in self._cfg.objectives] + [
                c.metric for c in self._cfg.constraints
            ]
            self._tables = sensitivity_tables(self._space, self._ev, metrics, study)
            import scipy.optimize  # noqa: F401  (deferred for start-up; paid here, once, not per trial)
        return self._tables

    # -- the model -------------------------------------------------------------------------

    def _point_of(self, tr: FrozenTrial) -> tuple[int, ...]:
        """A trial's choice indices (memoised: a trial's parameters never change)."""
        point = self._points.get(tr.number)
        if point is None:
            choice = self._space.decode(self.params_of(tr))
            point = self.canonical([choice[k.name] for k in self._space.knobs])
            self._points[tr.number] = point
        return point

    def _metrics_of(self, tr: FrozenTrial) -> dict[str, float] | None:
        """A finished trial's metrics (memoised once it is finished)."""
        if tr.number in self._metrics:
            return self._metrics[tr.number]
        metrics = TrialInfo.from_trial(tr).metrics
        if tr.state.is_finished():
            self._metrics[tr.number] = metrics
        return metrics

    def _scales(
        self, study: Study, trials: list[FrozenTrial], metric: str, base: float
    ) -> tuple[np.ndarray, float]:
        """Per-knob scales of the predicted damage of ``metric`` and the fit's residual RMS."""
        t = self.tables()
        kind = _damage_kind(metric)
        table = t.loss if kind == "loss" else t.drop
        knobs = self._space.knobs
        rows, ys = [], []
        for tr in trials:
            metrics = self._metrics_of(tr)
            if metrics is None or metric not in metrics:
                continue
            point = self._point_of(tr)
            x = np.array([table[i][point[i]] for i in range(len(knobs))])
            y = (base - metrics[metric]) if kind == "drop" else (metrics[metric] - base)
            if y > 0.25 and x.sum() > 0.25:  # far outside the region that matters: unhelpful
                continue
            rows.append(x)
            ys.append(y)
        n = len(knobs)
        if not rows:
            return np.ones(n), 0.0
        from scipy.optimize import lsq_linear  # deferred: scipy costs start-up time

        X, Y = np.array(rows), np.array(ys)
        tot = X.sum(1)
        g = float(tot @ Y / (tot @ tot)) if tot @ tot > 0 else 1.0
        g = min(max(g, 0.25), 4.0)  # one global scale, then each knob around it
        lam = math.sqrt(self._ridge) * max(float(np.sqrt((X**2).mean())), 1e-6)
        A = np.vstack([X, lam * np.eye(n)])
        b = np.concatenate([Y, lam * g * np.ones(n)])
        s = lsq_linear(A, b, bounds=(0.0, np.inf)).x
        resid = Y - X @ s
        return s, float(np.sqrt((resid**2).mean())) if len(Y) > 2 else 0.0

    def propose(self, study: Study, trial: FrozenTrial) -> dict[str, Any]:
        knobs = self._space.knobs
        t = self.tables(study)
        if "sensitivity" not in study.user_attrs:  # the run directory's sensitivity.json
            study.set_user_attr("sensitivity", sensitivity_rows(self._space, t))
        baseline: dict[str, float] = dict(study.user_attrs.get("baseline") or self._ev.baseline())
        trials = [
            tr
            for tr in optuna_compat.study_trials(study)
            if tr.number != trial.number and len(self.params_of(tr)) == len(knobs)
        ]
        seen = {self._point_of(tr) for tr in trials}
        done = [tr for tr in trials if tr.state == TrialState.COMPLETE]
        rng = np.random.default_rng([self._seed, trial.number])
        n_val = max(1, len(self._ev.data.y))
        preds: dict[str, _Linear] = {}
        margins: dict[str, float] = {}
        for m in {o.metric for o in self._cfg.objectives} | {
            c.metric for c in self._cfg.constraints
        }:
            if is_analytic(m):
                preds[m] = _Linear(t.ref[m], [d[m] for d in t.delta])
                margins[m] = 0.0
                continue
            scales, rms = self._scales(study, done, m, baseline[m])
            scales = scales * np.exp(self._jitter * rng.standard_normal(len(scales)))
            kind = _damage_kind(m)
            table = t.loss if kind == "loss" else t.drop
            sign = -1.0 if kind == "drop" else 1.0
            coef = []
            for g in t.groups:
                joint = np.zeros(math.prod(knobs[i].size for i in g))
                grids = np.meshgrid(*(table[i] * scales[i] for i in g), indexing="ij")
                for grid in grids:
                    joint = joint + grid.ravel()
                coef.append(sign * joint)
            preds[m] = _Linear(baseline[m], coef)
            margins[m] = (1.0 / n_val if kind == "drop" else 0.0) + rms
        point = self._solve(preds, margins, baseline, seen)
        if point is None:
            return self._fallback_point(seen, rng)
        return {k.name: k.labels[c] for k, c in zip(knobs, point, strict=True)}

    def _solve(
        self,
        preds: dict[str, _Linear],
        margins: dict[str, float],
        baseline: Mapping[str, float],
        seen: set[tuple[int, ...]],
    ) -> tuple[int, ...] | None:
        """The best unvisited point of the predicted program, or ``None`` when it has none."""
        knobs = self._space.knobs
        t = self.tables()
        n_groups = len(t.groups)
        obj = [np.zeros(math.prod(knobs[i].size for i in g)) for g in t.groups]
        for o in self._cfg.objectives:
            w = (1.0 if o.direction == "maximize" else -1.0) * o.weight
            if o.relative_to_baseline:
                w /= baseline[o.metric]
            obj = [a + w * c for a, c in zip(obj, preds[o.metric].coef, strict=True)]
        cons = []  # per constraint: per-group coefficients and the right-hand side
        for c in self._cfg.constraints:
            p = preds[c.metric]
            alpha, beta = _affine(c.kind, c.bound, baseline.get(c.metric, 0.0))
            cons.append(([alpha * g for g in p.coef], -beta - alpha * p.const - margins[c.metric]))
        for layers in (self._keep, 2 * self._keep, 4 * self._keep, 10**9):
            kept = [self._candidates(gi, obj, cons, layers) for gi in range(n_groups)]
            small = math.prod(len(k) for k in kept) <= ENUMERATE_LIMIT
            solve = self._enumerate if small else self._milp
            for constrained in (cons, []):  # constraints the model cannot meet: dropped
                point = solve(kept, obj, constrained, seen)
                if point is not None:
                    return point
        return None

    def _candidates(
        self, gi: int, obj: list[np.ndarray], cons: list[Any], layers: int
    ) -> np.ndarray:
        """Joint choices of group ``gi`` that fewer than ``layers`` others dominate.

        First, per cost class (equal analytic costs), the ``layers`` best by objective; then those
        dominated (objective at least as high, every constraint coefficient at most as high; ties
        broken by index) by fewer than ``layers`` of them. Without cuts the optimum uses only
        undominated choices; each layer more leaves room for the points cut off.
        """
        cls = self._cost_classes(gi)
        order = np.lexsort((-obj[gi], cls))
        order = order[np.asarray(self.own_joint(self.tables().groups[gi]))[order]]
        starts = np.searchsorted(cls[order], cls[order], side="left")
        cand = np.sort(order[np.arange(len(order)) - starts < layers])
        f = np.stack([-obj[gi][cand]] + [cc[0][gi][cand] for cc in cons], 1)  # smaller: better
        le = (f[:, None, :] <= f[None, :, :] + 1e-15).all(2)  # le[i, j]: i no worse than j
        lt = (f[:, None, :] < f[None, :, :] - 1e-15).any(2)
        idx = np.arange(len(f))
        dom = le & (lt | (le & le.T & (idx[:, None] < idx[None, :])))
        out: np.ndarray = cand[dom.sum(0) < layers]
        return out

    def _visited(self, kept: list[np.ndarray], seen: set[tuple[int, ...]]) -> np.ndarray:
        """Per visited point whose choices are all candidates: its candidate index per group."""
        knobs, t = self._space.knobs, self.tables()
        if not seen:
            return np.zeros((0, len(kept)), dtype=int)
        pts = np.array(sorted(seen))
        cols = []
        for gi, g in enumerate(t.groups):
            pos = np.full(math.prod(knobs[i].size for i in g), -1)
            pos[kept[gi]] = np.arange(len(kept[gi]))
            joint = np.ravel_multi_index(
                tuple(pts[:, i] for i in g), tuple(knobs[i].size for i in g)
            )
            cols.append(pos[joint])
        at = np.stack(cols, 1)
        out: np.ndarray = at[(at >= 0).all(1)]
        return out

    def _point(self, kept: list[np.ndarray], picks: Sequence[int]) -> tuple[int, ...]:
        knobs, t = self._space.knobs, self.tables()
        choice = [0] * len(knobs)
        for gi, g in enumerate(t.groups):
            combo = np.unravel_index(int(kept[gi][picks[gi]]), tuple(knobs[k].size for k in g))
            for k, v in zip(g, combo, strict=True):
                choice[k] = int(v)
        return tuple(choice)

    def _enumerate(
        self,
        kept: list[np.ndarray],
        obj: list[np.ndarray],
        cons: list[Any],
        seen: set[tuple[int, ...]],
    ) -> tuple[int, ...] | None:
        """The program solved exactly by evaluating every combination of the candidates."""
        n = len(kept)

        def total(parts: list[np.ndarray]) -> np.ndarray:
            out = np.zeros([len(k) for k in kept])
            for gi, part in enumerate(parts):
                out = out + part.reshape([-1 if a == gi else 1 for a in range(n)])
            return out

        value = total([obj[gi][k] for gi, k in enumerate(kept)])
        for coefs, rhs in cons:
            value[total([coefs[gi][k] for gi, k in enumerate(kept)]) > rhs + 1e-12] = -np.inf
        at = self._visited(kept, seen)
        if len(at):
            value[tuple(at.T)] = -np.inf  # never a point already proposed
        best = int(np.argmax(value))
        if not np.isfinite(value.flat[best]):
            return None
        return self._point(kept, [int(v) for v in np.unravel_index(best, value.shape)])

    def _milp(
        self,
        kept: list[np.ndarray],
        obj: list[np.ndarray],
        cons: list[Any],
        seen: set[tuple[int, ...]],
    ) -> tuple[int, ...] | None:
        """The program solved by ``scipy.optimize.milp``, a no-good cut per visited point."""
        from scipy.optimize import Bounds, LinearConstraint, milp  # deferred: start-up time
        from scipy.sparse import coo_array

        n_groups = len(kept)
        sizes = np.array([len(k) for k in kept])
        offsets = np.concatenate([[0], np.cumsum(sizes)])
        n_var = int(offsets[-1])
        c_vec = -np.concatenate([obj[gi][k] for gi, k in enumerate(kept)])
        r_idx = [np.repeat(np.arange(n_groups), sizes)]  # one joint choice per group
        c_idx = [np.arange(n_var)]
        vals = [np.ones(n_var)]
        lb, ub = [1.0] * n_groups, [1.0] * n_groups
        at = self._visited(kept, seen) + offsets[:-1]
        r_idx.append(np.repeat(np.arange(n_groups, n_groups + len(at)), n_groups))
        c_idx.append(at.ravel())
        vals.append(np.ones(at.size))
        lb += [-np.inf] * len(at)
        ub += [n_groups - 1.0] * len(at)
        row = n_groups + len(at)
        for coefs, rhs in cons:
            r_idx.append(np.full(n_var, row))
            c_idx.append(np.arange(n_var))
            vals.append(np.concatenate([coefs[gi][k] for gi, k in enumerate(kept)]))
            lb.append(-np.inf)
            ub.append(rhs)
            row += 1
        A = coo_array(
            (np.concatenate(vals), (np.concatenate(r_idx), np.concatenate(c_idx))),
            shape=(row, n_var),
        )
        res = milp(
            c_vec,
            constraints=LinearConstraint(A.tocsr(), np.array(lb), np.array(ub)),
            integrality=np.ones(n_var),
            bounds=Bounds(0, 1),
            options={"time_limit": 5.0},
        )
        if res.x is None:
            return None
        picks = [int(np.argmax(res.x[offsets[gi] : offsets[gi + 1]])) for gi in range(n_groups)]
        point = self._point(kept, picks)
        return None if point in seen else point

    def _fallback_point(
        self, seen: set[tuple[int, ...]], rng: np.random.Generator
    ) -> dict[str, Any]:
        knobs = self._space.knobs
        point = self.canonical([int(rng.integers(0, k.size)) for k in knobs])
        for _ in range(256):  # rejection sampling: the space is far larger than what was seen
            if point not in seen:
                break
            point = self.canonical([int(rng.integers(0, k.size)) for k in knobs])
        return {k.name: k.labels[c] for k, c in zip(knobs, point, strict=True)}


def check_goals(search: Any) -> None:
    """Refuse a Pareto study, or a goal on a metric it neither predicts nor reads exactly."""
    goals = {o.metric for o in search.objectives} | {c.metric for c in search.constraints}
    bad = sorted(m for m in goals if not is_analytic(m) and _damage_kind(m) is None)
    if search.combine != "weighted_sum" or bad:
        what = "combine = 'pareto'" if search.combine != "weighted_sum" else f"{bad[0]!r} to meet"
        raise ConfigError(
            f"search.strategy.name: got 'sensitivity' with {what}, allowed: one weighted sum of "
            "objectives and constraints on what it predicts (accuracy-like metrics and loss) or "
            "reads exactly (analytic costs), or another strategy"
        )


def _damage_kind(metric: str) -> str | None:
    """How the damage tables predict ``metric``: as an accuracy drop, a loss increase, or not."""
    spec = metric_spec(metric)
    if spec.kind != "data":
        return None
    if spec.unit == "fraction" and spec.direction == "maximize":
        return "drop"
    return "loss" if metric == "loss" else None


def _affine(kind: str, bound: float, base: float) -> tuple[float, float]:
    """``(alpha, beta)`` with the constraint value ``alpha * metric + beta`` (``<= 0``: met)."""
    return {
        "max": (1.0, -bound),
        "min": (-1.0, bound),
        "max_ratio": (1.0 / base if base else 0.0, -bound),
        "min_ratio": (-1.0 / base if base else 0.0, bound),
        "drop": (-1.0, base - bound),
        "increase": (1.0, -base - bound),
    }[kind]


def _build(ctx: StrategyContext) -> BaseSampler:
    # options: checked against STRATEGY.options (build_sampler, and at config load)
    return SensitivitySampler(ctx.space, ctx.seed, ctx.evaluator, ctx.search, **ctx.options)


STRATEGY = Strategy(
    "sensitivity",
    _build,
    "predicted per-layer damage + exact costs -> integer program (milp), refitted after each trial",
    aliases=("hawq",),
    multi_objective=False,
    # jitter is a log-scale spread: e**10 is a factor of 22,000 already
    options={
        "jitter": Option("float", 0, 10),
        "keep": Option("int", 1, 10**4),
        "ridge": Option("float", 0, 1e6),
    },
)
