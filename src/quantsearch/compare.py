"""Strategy comparison: seeded runs of several strategies on one space, measured honestly.

Every strategy runs once per seed on the same space, objective and constraints. Evaluations are
deterministic given the config and the data, so all runs may share one evaluation cache: the
whole comparison then costs at most one evaluation per distinct config. Sharing never changes a
run's trial sequence: each run sees the cache through a :class:`RunCache`, which answers from
the shared results but counts only the configs *this run* has asked for, so a run stops when it
has itself seen every point, exactly as it would alone.

What is measured, per run (from its own trial sequence, never from the shared cache's flags):

* **trials**: completed trials and trials whose config failed (the ones that use up a budget).
* **distinct evaluations**: trials whose config had not appeared earlier *in this run*. A failed
  config counts as a trial and an evaluation, never as a best; an infeasible trial never counts
  as best so far.
* **best so far** (``weighted_sum``): the largest feasible objective among the first ``k``
  trials, ``-inf`` until the first feasible one.
* **hypervolume ratio** (``pareto``): the hypervolume of the feasible objective vectors among
  the first ``k`` trials over that of the reference front (computed with Optuna's own
  implementation, ``optuna._hypervolume.compute_hypervolume``, the one behind
  ``optuna.visualization.plot_hypervolume_history``).
* **trials / evaluations to optimum**: the first ``k`` at which best so far is within
  ``tolerance`` of the optimum (pareto: the hypervolume ratio is at least ``1 - tolerance``).
* **simple regret** at fixed trial budgets: optimum minus best so far (pareto: one minus the
  hypervolume ratio).
* **duplicate share**: the share of the run's trials that repeated a config of that run.
* **front share** (``pareto``): the share of the reference front's points (distinct objective
  vectors) whose config the run found.

The *reference* is the true optimum or true Pareto front when the space has at most
``ground_truth_budget`` points (a brute-force run evaluates every point once); otherwise it is
the best value (or front) that any run of the comparison found, and it is labelled so.

Hypervolume reference point: objectives to maximise are negated so that all are minimised; then
for each objective ``r_i = w_i + 0.1 * (w_i - b_i)``, where ``w_i`` and ``b_i`` are the worst and
best value over every feasible config the comparison evaluated (``0.1 * max(|w_i|, 1)`` when
they are equal). Every run is measured against the same point.

Per strategy, each measure is summarised over seeds by its median and interquartile range
(linear interpolation between order statistics, NumPy's default); a run that never reached the
optimum counts as ``inf`` trials, so a median of ``inf`` means most seeds did not reach it.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from quantsearch.errors import ConfigError
from quantsearch.search.results import SearchResult, write_csv
from quantsearch.search.study import EvaluationCache
from quantsearch.search.trial import TrialInfo

if TYPE_CHECKING:
    from quantsearch.search.config import SearchConfig
    from quantsearch.search.evaluate import Evaluation, Evaluator
    from quantsearch.search.space import SearchSpace
    from quantsearch.search.study import CachedResult

__all__ = [
    "ComparisonResult",
    "Curve",
    "Quartiles",
    "RunCache",
    "RunMetrics",
    "StrategyStats",
    "auto_budgets",
    "best_so_far",
    "compare_from_config",
    "compare_results",
    "counted_trials",
    "hypervolume",
    "hypervolume_reference_point",
    "measure_run",
    "new_config_flags",
    "prefix_overlap",
    "quantile",
    "run_comparison",
]

Mode = Literal["weighted_sum", "pareto"]
Reference = Literal["exhaustive", "best_found"]

# Slack for comparing floats that come from separate evaluations of one config (bit-identical
# on CPU; a GPU may differ in the last bits when the cache is off).
_SLACK = 1e-9


# -- order statistics -------------------------------------------------------------------------


def quantile(values: Sequence[float], q: float) -> float:
    """The ``q``-quantile with linear interpolation (NumPy's default), safe for infinities.

    Example:
        >>> quantile([1, 2, 3, 4], 0.25), quantile([1, 2, math.inf], 0.75)
        (1.75, inf)
    """
    v = sorted(float(x) for x in values)
    if not v:
        return math.nan
    pos = q * (len(v) - 1)
    lo, hi = math.floor(pos), math.ceil(pos)
    a, b = v[lo], v[hi]
    frac = pos - lo
    if frac == 0 or a == b:
        return a
    if math.isinf(a) or math.isinf(b):
        return a if math.isinf(a) else b
    return a + frac * (b - a)


@dataclass(frozen=True)
class Quartiles:
    """First quartile, median and third quartile of one measure over seeds."""

    q1: float
    median: float
    q3: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Quartiles:
        return cls(quantile(values, 0.25), quantile(values, 0.5), quantile(values, 0.75))


@dataclass(frozen=True)
class Curve:
    """Median and IQR of a per-run curve at each ``x``; ``n`` runs contribute at each point.

    Points where fewer than half of the runs have a value are ``nan`` (not drawn).
    """

    x: tuple[int, ...]
    median: tuple[float, ...]
    q1: tuple[float, ...]
    q3: tuple[float, ...]
    n: tuple[int, ...]


def _curve(series: Sequence[Sequence[float]], length: int) -> Curve:
    xs, med, lo, hi, ns = [], [], [], [], []
    runs = len(series)
    for i in range(length):
        vals = [s[i] for s in series if i < len(s)]
        xs.append(i + 1)
        ns.append(len(vals))
        if vals and 2 * len(vals) >= runs:
            q = Quartiles.of(vals)
            med.append(q.median)
            lo.append(q.q1)
            hi.append(q.q3)
        else:
            med.append(math.nan)
            lo.append(math.nan)
            hi.append(math.nan)
    return Curve(tuple(xs), tuple(med), tuple(lo), tuple(hi), tuple(ns))


# -- one run's trial sequence -----------------------------------------------------------------


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


def _feasible_values(t: TrialInfo) -> tuple[float, ...] | None:
    if t.is_feasible and t.values is not None:
        return tuple(t.values)
    return None


def best_so_far(trials: Sequence[TrialInfo]) -> list[float]:
    """After each trial, the best feasible (single) objective so far; ``-inf`` before any."""
    best = -math.inf
    out = []
    for t in trials:
        v = _feasible_values(t)
        if v is not None and v[0] > best:
            best = v[0]
        out.append(best)
    return out


def _to_loss(values: Sequence[float], directions: Sequence[str]) -> tuple[float, ...]:
    return tuple(-v if d == "maximize" else v for v, d in zip(values, directions, strict=True))


def hypervolume(points: Sequence[Sequence[float]], reference: Sequence[float]) -> float:
    """The hypervolume dominated by ``points`` (all objectives minimised) up to ``reference``.

    Optuna's exact implementation (WFG; closed forms in 2-D and 3-D). Points not strictly
    better than the reference in every objective add nothing.

    Example:
        >>> hypervolume([(1.0, 2.0), (2.0, 1.0)], (3.0, 3.0))
        3.0
    """
    import numpy as np
    from optuna._hypervolume import compute_hypervolume

    ref = np.asarray(reference, dtype=float)
    pts = np.asarray([p for p in points if all(x < r for x, r in zip(p, ref, strict=True))])
    if len(pts) == 0:
        return 0.0
    return float(compute_hypervolume(pts, ref))


def hypervolume_reference_point(points: Sequence[Sequence[float]]) -> tuple[float, ...]:
    """The reference point rule: worst value plus 10% of the range, per (minimised) objective.

    Example:
        >>> hypervolume_reference_point([(0.0, 4.0), (2.0, 2.0)])
        (2.2, 4.2)
    """
    if not points:
        raise ValueError("a hypervolume reference point needs at least one point")
    ref = []
    for col in zip(*points, strict=True):
        worst, best = max(col), min(col)
        span = worst - best
        ref.append(worst + (0.1 * span if span > 0 else 0.1 * max(abs(worst), 1.0)))
    return tuple(ref)


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
    exhausted: bool  # the run saw every point of the space
    quality_by_trial: tuple[float, ...]
    quality_by_evaluation: tuple[float, ...]
    front_share: float | None = None  # pareto: share of the reference front's points found
    front_share_by_trial: tuple[float, ...] = ()


@dataclass(frozen=True)
class _Target:
    """What a run is measured against (the reference optimum or front)."""

    mode: Mode
    optimum: float | None = None  # weighted sum
    tolerance: float = 0.0
    directions: tuple[str, ...] = ()
    reference_point: tuple[float, ...] | None = None
    reference_hypervolume: float | None = None
    front_groups: tuple[frozenset[str], ...] = ()  # per front point: the configs that have it


def measure_run(
    trials: Sequence[TrialInfo],
    target: _Target,
    *,
    strategy: str = "",
    seed: int = 0,
    space_size: int | None = None,
) -> RunMetrics:
    """Measure one run's trial sequence against ``target`` (see the module docstring)."""
    seq = counted_trials(trials)
    new = new_config_flags(seq)
    evals = sum(new)
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
    by_eval = [q for q, is_new in zip(quality, new, strict=True) if is_new]
    return RunMetrics(
        strategy=strategy,
        seed=seed,
        trials=len(seq),
        evaluations=evals,
        duplicate_share=(len(seq) - evals) / len(seq) if seq else 0.0,
        trials_to_optimum=None if reached_at is None else reached_at + 1,
        evaluations_to_optimum=None if reached_at is None else sum(new[: reached_at + 1]),
        exhausted=space_size is not None and evals >= space_size,
        quality_by_trial=tuple(quality),
        quality_by_evaluation=tuple(by_eval),
        front_share=share,
        front_share_by_trial=share_by_trial,
    )


def _pareto_curves(seq: Sequence[TrialInfo], target: _Target) -> tuple[list[float], list[float]]:
    ref, ref_hv = target.reference_point, target.reference_hypervolume
    points: set[tuple[float, ...]] = set()
    found: set[str] = set()
    hv = 0.0
    ratios, shares = [], []
    n_front = len(target.front_groups)
    for t in seq:
        v = _feasible_values(t)
        if v is not None and ref is not None and ref_hv:
            loss = _to_loss(v, target.directions)
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


# -- many runs --------------------------------------------------------------------------------


@dataclass(frozen=True)
class StrategyStats:
    """One row of the comparison table: a strategy's measures over its seeds.

    ``at_budget[b]`` is the simple regret after ``b`` trials (pareto: one minus the hypervolume
    ratio); ``final`` the best objective (pareto: hypervolume ratio) at the end of the runs.
    """

    strategy: str
    runs: int
    reached: int  # runs that reached the optimum within their trials
    trials_to_optimum: Quartiles
    evaluations_to_optimum: Quartiles
    at_budget: dict[int, Quartiles]
    final: Quartiles
    duplicate_share: Quartiles
    evaluations: Quartiles
    trials: Quartiles
    front_share: Quartiles | None
    by_trial: Curve
    by_evaluation: Curve


def auto_budgets(n_trials: int, space_size: int) -> tuple[int, ...]:
    """A quarter, half and all of ``min(space size, n_trials)``, and ``n_trials``.

    Example:
        >>> auto_budgets(48, 16)
        (4, 8, 16, 48)
    """
    base = max(1, min(space_size, n_trials))
    return tuple(sorted({math.ceil(base / 4), math.ceil(base / 2), base, n_trials}))


def _value_at(run: RunMetrics, budget: int) -> float | None:
    """Quality after ``budget`` trials; a run that exhausted the space keeps its final value."""
    q = run.quality_by_trial
    if budget <= len(q):
        return q[budget - 1]
    if run.exhausted and q:
        return q[-1]
    return None


def _extended(run: RunMetrics, length: int) -> tuple[float, ...]:
    q = run.quality_by_trial
    if run.exhausted and q and len(q) < length:
        return q + (q[-1],) * (length - len(q))
    return q


def _stats(
    strategy: str, runs: Sequence[RunMetrics], target: _Target, budgets: Sequence[int], n: int
) -> StrategyStats:
    inf = math.inf

    def regret(q: float) -> float:
        if target.mode == "weighted_sum":
            return (target.optimum - q) if target.optimum is not None else math.nan
        return 1.0 - q

    at_budget = {}
    for b in budgets:
        vals = [v for r in runs if (v := _value_at(r, b)) is not None]
        at_budget[b] = Quartiles.of([regret(v) for v in vals])
    longest = max((len(r.quality_by_evaluation) for r in runs), default=0)
    return StrategyStats(
        strategy=strategy,
        runs=len(runs),
        reached=sum(1 for r in runs if r.trials_to_optimum is not None),
        trials_to_optimum=Quartiles.of(
            [inf if r.trials_to_optimum is None else r.trials_to_optimum for r in runs]
        ),
        evaluations_to_optimum=Quartiles.of(
            [inf if r.evaluations_to_optimum is None else r.evaluations_to_optimum for r in runs]
        ),
        at_budget=at_budget,
        final=Quartiles.of([r.quality_by_trial[-1] if r.quality_by_trial else -inf for r in runs]),
        duplicate_share=Quartiles.of([r.duplicate_share for r in runs]),
        evaluations=Quartiles.of([r.evaluations for r in runs]),
        trials=Quartiles.of([r.trials for r in runs]),
        front_share=Quartiles.of([r.front_share or 0.0 for r in runs])
        if target.mode == "pareto"
        else None,
        by_trial=_curve([_extended(r, n) for r in runs], n),
        by_evaluation=_curve([r.quality_by_evaluation for r in runs], longest),
    )


@dataclass
class ComparisonResult:
    """A strategy comparison: settings, the reference, per-run measures and the table.

    Attributes:
        mode: ``weighted_sum`` or ``pareto``.
        reference: ``exhaustive`` (every point was evaluated: the true optimum or front) or
            ``best_found`` (the best any run found; the space was too large to enumerate).
        optimum: the reference optimum of the weighted-sum objective.
        optimum_configs: config hashes that attain it.
        front: the reference front's distinct objective vectors (pareto), in study directions.
        reference_point: the hypervolume reference point (objectives minimised, see the module
            docstring) and ``reference_hypervolume`` that of the reference front.
        evaluations: distinct evaluations the whole comparison cost.
        evaluations_unshared: what it would have cost had every run its own cache (the sum of
            each run's distinct evaluations, the ground-truth run included).
        stats: one :class:`StrategyStats` per strategy (the table), in ``strategies`` order.
        runs: every run's :class:`RunMetrics`.
        prefix_overlap: per pair of strategies, for each seed both ran, the number of leading
            trials with the same configs (``{"a", "b", "lengths", "identical"}``): Optuna's
            TPE starts with random trials, NSGA-II's first generation is random.
        results: the runs' :class:`SearchResult` objects (not written to files).
        ground_truth: the exhaustive brute-force run, when the space was enumerated.
        report: the report files, once written (:func:`quantsearch.report.write_report`).
    """

    mode: Mode
    strategies: tuple[str, ...]
    seeds: tuple[int, ...]
    n_trials: int
    space_size: int
    budgets: tuple[int, ...]
    tolerance: float
    shared_cache: bool
    objective_names: tuple[str, ...]
    directions: tuple[str, ...]
    baseline: dict[str, float]
    reference: Reference
    optimum: float | None
    optimum_configs: tuple[str, ...]
    front: tuple[tuple[float, ...], ...]
    reference_point: tuple[float, ...] | None
    reference_hypervolume: float | None
    evaluations: int
    evaluations_unshared: int
    stats: list[StrategyStats]
    runs: list[RunMetrics]
    prefix_overlap: list[dict[str, Any]] = field(default_factory=list)
    results: list[SearchResult] = field(default_factory=list)
    ground_truth: SearchResult | None = None
    run_dir: Path | None = None
    report: Any = None

    @property
    def report_path(self) -> Path | None:
        """The HTML report, once written."""
        return None if self.report is None else self.report.html

    def print(self) -> None:
        """Print the table, the findings and where the tables are saved (not the report)."""
        from quantsearch.report import print_comparison

        print_comparison(self)

    def stats_of(self, strategy: str) -> StrategyStats:
        for s in self.stats:
            if s.strategy == strategy:
                return s
        raise KeyError(f"strategy {strategy!r} is not in this comparison ({list(self.strategies)})")

    def table_rows(self) -> list[dict[str, Any]]:
        """The comparison table as numbers (one row per strategy): what ``comparison.csv`` holds.

        ``inf`` in a ``*_to_optimum`` column means the optimum was not reached.
        """
        rows = []
        for s in self.stats:
            row: dict[str, Any] = {"strategy": s.strategy, "runs": s.runs, "reached": s.reached}

            def put(name: str, q: Quartiles | None, row: dict[str, Any] = row) -> None:
                if q is None:
                    return
                row[f"{name}_median"], row[f"{name}_q1"], row[f"{name}_q3"] = (
                    q.median,
                    q.q1,
                    q.q3,
                )

            put("trials_to_optimum", s.trials_to_optimum)
            put("evaluations_to_optimum", s.evaluations_to_optimum)
            what = "regret" if self.mode == "weighted_sum" else "hv_regret"
            for b, q in s.at_budget.items():
                put(f"{what}_at_{b}", q)
            put("final_best" if self.mode == "weighted_sum" else "final_hv_ratio", s.final)
            put("front_share", s.front_share)
            put("duplicate_share", s.duplicate_share)
            put("evaluations_per_run", s.evaluations)
            put("trials_per_run", s.trials)
            rows.append(row)
        return rows

    # -- files ----------------------------------------------------------------------------

    def write(self, run_dir: Path, meta: Mapping[str, Any] | None = None) -> list[Path]:
        """Write the comparison's data files (the report is written by ``quantsearch.report``).

        Files: ``comparison.json`` (everything but the raw results), ``comparison.csv`` (the
        table as numbers), ``runs.jsonl`` (every run's trial records), ``configs.jsonl`` (every
        distinct config evaluated, with its metrics and per-layer formats), ``compare_config.json``
        (``meta``: the config it ran) and ``ground_truth/`` (the brute-force run's own files).
        """
        run_dir.mkdir(parents=True, exist_ok=True)
        self.run_dir = run_dir
        paths = [run_dir / n for n in ("comparison.json", "comparison.csv", "runs.jsonl")]
        paths[0].write_text(json.dumps(_jsonable(self.to_dict()), indent=1) + "\n")
        write_csv(paths[1], self.table_rows())
        with paths[2].open("w") as fh:
            for r in self.results:
                trials = [
                    {k: v for k, v in dataclasses.asdict(t).items() if k != "config"}
                    for t in r.trials
                ]
                line = {"strategy": r.strategy, "seed": r.seed, "trials": trials}
                fh.write(json.dumps(_jsonable(line)) + "\n")
        configs = run_dir / "configs.jsonl"
        with configs.open("w") as fh:
            for row in distinct_configs(
                [*([self.ground_truth] if self.ground_truth else []), *self.results]
            ):
                fh.write(json.dumps(_jsonable(row)) + "\n")
        paths.append(configs)
        if meta is not None:
            path = run_dir / "compare_config.json"
            path.write_text(json.dumps(_jsonable(dict(meta)), indent=2, default=str) + "\n")
            paths.append(path)
        if self.ground_truth is not None:
            paths.extend(self.ground_truth.write(run_dir / "ground_truth"))
        return paths

    def to_dict(self) -> dict[str, Any]:
        """Everything but the raw results, as JSON-able data (infinities kept as floats)."""
        d = {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name not in ("results", "ground_truth", "run_dir", "report")
        }
        d["stats"] = [dataclasses.asdict(s) for s in self.stats]
        d["runs"] = [dataclasses.asdict(r) for r in self.runs]
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ComparisonResult:
        """Read back :meth:`to_dict` (as loaded from ``comparison.json``)."""
        d = _unjsonable(d)

        def quart(q: Any) -> Quartiles | None:
            return None if q is None else Quartiles(q["q1"], q["median"], q["q3"])

        def curve(c: Mapping[str, Any]) -> Curve:
            return Curve(*(tuple(c[k]) for k in ("x", "median", "q1", "q3", "n")))

        stats = [
            StrategyStats(
                strategy=s["strategy"],
                runs=s["runs"],
                reached=s["reached"],
                trials_to_optimum=quart(s["trials_to_optimum"]),  # type: ignore[arg-type]
                evaluations_to_optimum=quart(s["evaluations_to_optimum"]),  # type: ignore[arg-type]
                at_budget={int(b): quart(q) for b, q in s["at_budget"].items()},  # type: ignore[misc]
                final=quart(s["final"]),  # type: ignore[arg-type]
                duplicate_share=quart(s["duplicate_share"]),  # type: ignore[arg-type]
                evaluations=quart(s["evaluations"]),  # type: ignore[arg-type]
                trials=quart(s["trials"]),  # type: ignore[arg-type]
                front_share=quart(s.get("front_share")),
                by_trial=curve(s["by_trial"]),
                by_evaluation=curve(s["by_evaluation"]),
            )
            for s in d["stats"]
        ]
        runs = []
        for r in d["runs"]:
            kw: dict[str, Any] = {
                k: tuple(v) if isinstance(v, list) else v
                for k, v in r.items()
                if k in RunMetrics.__dataclass_fields__
            }
            runs.append(RunMetrics(**kw))
        front = tuple(tuple(p) for p in d["front"])
        rp = d.get("reference_point")
        return cls(
            mode=d["mode"],
            strategies=tuple(d["strategies"]),
            seeds=tuple(d["seeds"]),
            n_trials=d["n_trials"],
            space_size=d["space_size"],
            budgets=tuple(d["budgets"]),
            tolerance=d["tolerance"],
            shared_cache=d["shared_cache"],
            objective_names=tuple(d["objective_names"]),
            directions=tuple(d["directions"]),
            baseline=dict(d["baseline"]),
            reference=d["reference"],
            optimum=d["optimum"],
            optimum_configs=tuple(d["optimum_configs"]),
            front=front,
            reference_point=tuple(rp) if rp is not None else None,
            reference_hypervolume=d["reference_hypervolume"],
            evaluations=d["evaluations"],
            evaluations_unshared=d["evaluations_unshared"],
            stats=stats,
            runs=runs,
            prefix_overlap=list(d.get("prefix_overlap", [])),
        )


def _jsonable(o: Any) -> Any:
    """Infinities and NaN as the strings ``"inf"``, ``"-inf"``, ``"nan"`` (standard JSON)."""
    if isinstance(o, float) and not math.isfinite(o):
        return "nan" if o != o else ("inf" if o > 0 else "-inf")
    if isinstance(o, Mapping):
        return {str(k): _jsonable(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_jsonable(v) for v in o]
    if isinstance(o, Path):
        return str(o)
    return o


_NONFINITE = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}


def _unjsonable(o: Any) -> Any:
    if isinstance(o, str) and o in _NONFINITE:
        return _NONFINITE[o]
    if isinstance(o, Mapping):
        return {k: _unjsonable(v) for k, v in o.items()}
    if isinstance(o, list):
        return [_unjsonable(v) for v in o]
    return o


def distinct_configs(results: Sequence[SearchResult]) -> list[dict[str, Any]]:
    """One row per distinct config evaluated by any of ``results``: metrics, values, formats."""
    rows: dict[str, dict[str, Any]] = {}
    configs: dict[str, Any] = {}
    for r in results:
        configs.update({k: v for k, v in r.configs.items() if v is not None})
        for t in counted_trials(r.trials):
            if t.config_hash is None or t.config_hash in rows:
                continue
            rows[t.config_hash] = {
                "config_hash": t.config_hash,
                "state": t.state,
                "values": t.values,
                "metrics": t.metrics,
                "feasible": t.feasible,
                "error": t.error,
                "params": t.params,
                "first_seen": {"strategy": r.strategy, "seed": r.seed, "trial": t.number},
            }
    for h, row in rows.items():
        row["config"] = configs.get(h)
    return list(rows.values())


def prefix_overlap(results: Sequence[SearchResult]) -> list[dict[str, Any]]:
    """Per pair of strategies: how many leading trials had the same configs, seed by seed."""
    seqs: dict[tuple[str, int], list[str | None]] = {
        (r.strategy, r.seed): [t.config_hash for t in counted_trials(r.trials)] for r in results
    }
    names = list(dict.fromkeys(r.strategy for r in results))
    out = []
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            seeds = [s for (n, s) in seqs if n == a and (b, s) in seqs]
            lengths, identical = [], True
            for s in seeds:
                x, y = seqs[(a, s)], seqs[(b, s)]
                k = 0
                while k < min(len(x), len(y)) and x[k] == y[k]:
                    k += 1
                lengths.append(k)
                identical = identical and x == y
            if seeds:
                out.append({"a": a, "b": b, "lengths": lengths, "identical": identical})
    return out


def _target(
    points: Sequence[TrialInfo], mode: Mode, directions: Sequence[str], tolerance: float
) -> tuple[_Target, float | None, tuple[str, ...], tuple[tuple[float, ...], ...]]:
    """The reference from every distinct evaluated trial ``points`` (feasible ones count)."""
    from quantsearch.search.objective import pareto_front

    feas = [(t, v) for t in points if (v := _feasible_values(t)) is not None]
    if mode == "weighted_sum":
        if not feas:
            return _Target(mode, None, tolerance), None, (), ()
        opt = max(v[0] for _, v in feas)
        hashes = tuple(sorted({t.config_hash for t, v in feas if v[0] == opt and t.config_hash}))
        return _Target(mode, opt, tolerance), opt, hashes, ()
    if not feas:
        return _Target(mode, None, tolerance, tuple(directions)), None, (), ()
    values = [v for _, v in feas]
    ref = hypervolume_reference_point([_to_loss(v, directions) for v in values])
    idx = pareto_front(values, directions)
    groups: dict[tuple[float, ...], set[str]] = {}
    for i in idx:
        t, v = feas[i]
        groups.setdefault(v, set()).update([t.config_hash] if t.config_hash else [])
    front = tuple(sorted(groups))
    ref_hv = hypervolume([_to_loss(v, directions) for v in front], ref)
    target = _Target(
        mode,
        None,
        tolerance,
        tuple(directions),
        ref,
        ref_hv,
        tuple(frozenset(groups[v]) for v in front),
    )
    return target, None, (), front


def compare_results(
    results: Sequence[SearchResult],
    *,
    ground_truth: SearchResult | None = None,
    tolerance: float = 0.0,
    budgets: Sequence[int] = (),
    n_trials: int | None = None,
    evaluations: int | None = None,
    shared_cache: bool = True,
) -> ComparisonResult:
    """Measure finished runs (one :class:`SearchResult` per strategy and seed).

    Args:
        results: the runs, all on the same space, objective and constraints.
        ground_truth: a run that evaluated every point (the reference is then exact).
        tolerance: "reached the optimum" means within this of it (pareto: a hypervolume ratio
            of at least ``1 - tolerance``).
        budgets: trial counts for the simple regret; ``()`` picks :func:`auto_budgets`.
        n_trials: the trial budget each run had (default: the longest run).
        evaluations: distinct evaluations the comparison cost (default: the per-run sum).
        shared_cache: whether the runs shared one cache (recorded, for the report).
    """
    if not results:
        raise ConfigError("compare: no runs to compare (strategies and seeds must not be empty)")
    first = ground_truth or results[0]
    mode: Mode = "weighted_sum" if first.combine == "weighted_sum" else "pareto"
    directions = tuple(first.directions)
    everything = [*([ground_truth] if ground_truth else []), *results]
    seen: set[str] = set()
    points = []
    for r in everything:
        for t in counted_trials(r.trials):
            if t.config_hash is not None and t.config_hash not in seen:
                seen.add(t.config_hash)
                points.append(t)
    target, optimum, opt_hashes, front = _target(points, mode, directions, tolerance)
    n = n_trials or max(len(counted_trials(r.trials)) for r in results)
    space_size = first.space_size
    budgets = tuple(sorted(set(budgets))) or auto_budgets(n, space_size)
    runs = [
        measure_run(r.trials, target, strategy=r.strategy, seed=r.seed, space_size=space_size)
        for r in results
    ]
    strategies = tuple(dict.fromkeys(r.strategy for r in results))
    stats = [
        _stats(s, [m for m in runs if m.strategy == s], target, budgets, n) for s in strategies
    ]
    unshared = sum(sum(new_config_flags(counted_trials(r.trials))) for r in everything)
    overlap = prefix_overlap(results)
    return ComparisonResult(
        mode=mode,
        strategies=strategies,
        seeds=tuple(dict.fromkeys(r.seed for r in results)),
        n_trials=n,
        space_size=space_size,
        budgets=budgets,
        tolerance=tolerance,
        shared_cache=shared_cache,
        objective_names=tuple(first.objective_names),
        directions=directions,
        baseline=dict(first.baseline),
        reference="exhaustive" if ground_truth is not None else "best_found",
        optimum=optimum,
        optimum_configs=opt_hashes,
        front=front,
        reference_point=target.reference_point,
        reference_hypervolume=target.reference_hypervolume,
        evaluations=evaluations if evaluations is not None else unshared,
        evaluations_unshared=unshared,
        stats=stats,
        runs=runs,
        prefix_overlap=overlap,
        results=list(results),
        ground_truth=ground_truth,
    )


# -- running the comparison -------------------------------------------------------------------


@dataclass
class RunCache(EvaluationCache):
    """One run's view of a shared :class:`EvaluationCache`.

    Results come from (and go to) ``shared``, so a config is evaluated once in the whole
    comparison; ``len()`` is the number of distinct configs *this run* asked for, so the study
    loop's ``stop_when_exhausted`` stops the run when it has seen every point, as it would alone
    (with the shared cache's length, every run after a full enumeration would stop at once).
    """

    shared: EvaluationCache = field(default_factory=EvaluationCache)
    seen: set[str] = field(default_factory=set)

    def get_or_evaluate(
        self, key: str, trial_number: int, evaluate: Callable[[], Evaluation]
    ) -> tuple[CachedResult, bool]:
        self.seen.add(key)
        return self.shared.get_or_evaluate(key, trial_number, evaluate)

    def __len__(self) -> int:
        return len(self.seen)

    def restore(self, trials: Sequence[Any]) -> None:
        self.shared.restore(trials)
        for t in trials:
            key = TrialInfo.from_trial(t).config_hash
            if key is not None and key in self.shared.results:
                self.seen.add(key)


def _run_config(cfg: SearchConfig, strategy: str, seed: int, n_trials: int) -> SearchConfig:
    from quantsearch.search.config import StrategySpec

    options = dict(cfg.strategy.options) if strategy == cfg.strategy.name else {}
    # A comparison must be reproducible: no timeout, one trial at a time, cached repeats.
    return dataclasses.replace(
        cfg,
        strategy=StrategySpec(strategy, options),
        seed=seed,
        n_trials=n_trials,
        timeout=None,
        n_jobs=1,
        cache=True,
        stop_when_exhausted=True,
        study=None,
        storage=None,
    )


def run_comparison(
    space: SearchSpace,
    evaluator: Evaluator,
    cfg: SearchConfig,
    *,
    strategies: Sequence[str],
    seeds: Sequence[int],
    n_trials: int,
    ground_truth_budget: int = 4096,
    tolerance: float = 0.0,
    budgets: Sequence[int] = (),
    shared_cache: bool = True,
    progress: bool = False,
    fingerprint_extra: dict[str, Any] | None = None,
) -> ComparisonResult:
    """Run every strategy for every seed (in memory) and measure them.

    Args:
        space, evaluator, cfg: as from :func:`quantsearch.search.api.prepare_search`.
        strategies: registered strategy names (aliases allowed).
        seeds: one run per strategy and seed.
        n_trials: the trial budget of every run.
        ground_truth_budget: enumerate the space first when it has at most this many points.
        shared_cache: one evaluation cache for all runs; ``False`` gives each run its own (the
            trial sequences are the same either way; only the evaluation count differs).
        progress: a progress bar over the runs.

    Example:
        >>> import torch
        >>> from quantsearch.graph import trace
        >>> from quantsearch.models import build_model
        >>> from quantsearch.data import Split
        >>> from quantsearch.search.api import prepare_search
        >>> from quantsearch.search.config import parse_search_config
        >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
        <...>
        >>> model = build_model("jsc-tiny").eval()
        >>> data = Split(torch.randn(64, 16), torch.randint(0, 5, (64,)))
        >>> cfg = parse_search_config({
        ...     "space": {"choices": {"linear": {"weight": [[8, 4], [4, 2]]}}},
        ...     "objectives": {"accuracy": {"direction": "maximize"}}})
        >>> space, evaluator = prepare_search(trace(model, data.x[:8]), cfg, data)
        >>> res = run_comparison(space, evaluator, cfg, strategies=["tpe", "random"],
        ...     seeds=[0, 1], n_trials=4)
        >>> res.reference, res.evaluations <= space.size
        ('exhaustive', True)
    """
    from quantsearch.search.api import run_search
    from quantsearch.search.strategies import STRATEGIES

    names = tuple(STRATEGIES.canonical(s, key="compare.strategies") for s in strategies)
    if not names:
        raise ConfigError("compare.strategies must name at least one strategy (got [])")
    if not seeds:
        raise ConfigError("compare.seeds must be >= 1 (got 0 seeds)")
    if cfg.combine == "pareto":
        for s in names:
            if not STRATEGIES.get(s).multi_objective:
                raise ConfigError(
                    f"compare.strategies: {s!r} does not support combine = 'pareto'; "
                    f"multi-objective strategies: "
                    f"{[n for n, st in STRATEGIES.items() if st.multi_objective]}"
                )
    shared = EvaluationCache()
    caches: list[EvaluationCache] = []

    def cache() -> EvaluationCache:
        c = RunCache(shared=shared) if shared_cache else EvaluationCache()
        caches.append(c)
        return c

    enumerate_space = space.size <= ground_truth_budget
    total = len(names) * len(seeds) + int(enumerate_space)
    results: list[SearchResult] = []
    truth = None
    with _progress(progress, total) as step:
        if enumerate_space:
            step("ground truth (brute force, every point)")
            truth = run_search(
                space,
                evaluator,
                _run_config(cfg, "brute_force", cfg.seed, space.size),
                run_dir=None,
                storage=None,
                study_name="ground-truth",
                cache=cache(),
                fingerprint_extra=fingerprint_extra,
            )
        for name in names:
            for seed in seeds:
                step(f"{name} seed {seed}")
                results.append(
                    run_search(
                        space,
                        evaluator,
                        _run_config(cfg, name, seed, n_trials),
                        run_dir=None,
                        storage=None,
                        study_name=f"{name}-seed{seed}",
                        cache=cache(),
                        fingerprint_extra=fingerprint_extra,
                    )
                )
        step(None)
    spent = len(shared.results) if shared_cache else sum(len(c) for c in caches)
    return compare_results(
        results,
        ground_truth=truth,
        tolerance=tolerance,
        budgets=budgets,
        n_trials=n_trials,
        evaluations=spent,
        shared_cache=shared_cache,
    )


@contextmanager
def _progress(enabled: bool, total: int) -> Iterator[Callable[[str | None], None]]:
    if not enabled:
        yield lambda label: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    with Progress(
        TextColumn("[bold]runs"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[s]}")
    ) as bar:
        task = bar.add_task("runs", total=total, s="")
        started = {"n": 0}

        def step(label: str | None) -> None:
            bar.update(task, completed=started["n"], s=label or "done")
            started["n"] += 1

        yield step
        bar.update(task, completed=total)


def compare_from_config(
    config: Any,
    *,
    load: str | None = None,
    strategies: Sequence[str] | None = None,
    seeds: int | None = None,
    n_trials: int | None = None,
    run_dir: str | Path | None = None,
    name: str | None = None,
    shared_cache: bool | None = None,
    progress: bool = False,
    report: bool = True,
) -> ComparisonResult:
    """What ``quantsearch compare`` runs: the config's model, data, ``[search]`` and ``[compare]``.

    Arguments given here override ``[compare]`` (``n_trials``: then ``search.n_trials``). The
    comparison is written to ``<run_dir>/<name>`` (default ``<config run_dir>/<stem>-compare``)
    with its report; ``result.report_path`` is the HTML file.
    """
    from quantsearch.search.api import prepare_from_config, run_dir_lock
    from quantsearch.search.config import CompareConfig

    if config.search is None:
        raise ConfigError(f"{config.source}: a [search] table is required for `compare`")
    cfg: SearchConfig = config.search
    cc: CompareConfig = config.compare or CompareConfig()
    n_seeds = seeds if seeds is not None else cc.seeds
    if n_seeds < 1:
        raise ConfigError(f"--seeds must be >= 1 (got {n_seeds})")
    trials = n_trials or cc.n_trials or cfg.n_trials
    if trials < 1:
        raise ConfigError(f"--trials must be >= 1 (got {trials})")
    names = tuple(strategies) if strategies is not None else cc.strategies
    share = cc.shared_cache if shared_cache is None else shared_cache

    space, evaluator, extra = prepare_from_config(config, cfg, load)
    out = Path(run_dir or config.run_dir) / (name or f"{Path(config.source).stem}-compare")
    with run_dir_lock(out):
        result = run_comparison(
            space,
            evaluator,
            cfg,
            strategies=names,
            seeds=[cfg.seed + i for i in range(n_seeds)],
            n_trials=trials,
            ground_truth_budget=cc.ground_truth_budget,
            tolerance=cc.tolerance,
            budgets=cc.budgets,
            shared_cache=share,
            progress=progress,
            fingerprint_extra=extra,
        )
        meta = {
            "source": config.source,
            "model": extra["model"],
            "dataset": extra["dataset"],
            "samples": extra["samples"],
            "search": dataclasses.asdict(cfg),
            "compare": {
                "strategies": list(result.strategies),
                "seeds": list(result.seeds),
                "n_trials": trials,
                "ground_truth_budget": cc.ground_truth_budget,
                "tolerance": cc.tolerance,
                "budgets": list(result.budgets),
                "shared_cache": share,
            },
            "space": space.describe(),
        }
        result.write(out, meta)
        if report:
            from quantsearch.report import write_report

            result.report = write_report(out)
    return result
