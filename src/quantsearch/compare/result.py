"""A finished comparison as data, and its files: written by :meth:`ComparisonResult.write`, read
back by :meth:`ComparisonResult.read` (``comparison.json``, ``comparison.csv``, ``runs.jsonl``,
``configs.jsonl``, ``compare_config.json``, ``ground_truth/``).

JSON has no infinities: ``inf``, ``-inf`` and ``nan`` are stored as those strings.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from quantsearch.atomic import open_atomic, write_atomic
from quantsearch.compare.configs import distinct_configs
from quantsearch.compare.measures import Mode, RunMetrics
from quantsearch.compare.stats import Curve, Quartiles
from quantsearch.compare.summary import StrategyStats
from quantsearch.errors import ConfigError
from quantsearch.search.results import ReportFiles, SearchResult, read_json, write_csv

__all__ = ["ComparisonResult", "Reference", "jsonable", "read_meta"]

Reference = Literal["exhaustive", "best_found"]


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
        reference_point: the hypervolume reference point (objectives minimised, see
            :mod:`quantsearch.compare.analysis`) and ``reference_hypervolume`` that of the
            reference front.
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
    report: ReportFiles | None = None
    budget_unit: str = "trials"  # what ``budgets`` count: trials or (distinct) evaluations
    noise: float = 0.0  # objective differences below this are within the noisy metrics' spread
    noisy_metrics: tuple[str, ...] = ()  # objectives measured with noise (latency_ms ...)

    @property
    def report_path(self) -> Path | None:
        """The HTML report, once written."""
        return None if self.report is None else self.report.html

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
                if q is not None:
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

        ``comparison.json``, which :meth:`read` and the report read, is removed first and
        written last: a command stopped in between leaves no comparison beside files of
        another write (rerunning it writes them all again). The files only a comparison
        writes (``runs.jsonl``, ``configs.jsonl``, ``compare_config.json``) come before those
        of names a user's folder may hold (``comparison.csv``): a folder a stopped write left
        is still one a comparison wrote, which a rerun may write again.
        """
        run_dir.mkdir(parents=True, exist_ok=True)
        self.run_dir = run_dir
        paths = [run_dir / n for n in ("comparison.json", "comparison.csv", "runs.jsonl")]
        paths[0].unlink(missing_ok=True)
        with open_atomic(paths[2]) as fh:
            for r in self.results:
                trials = [{k: v for k, v in t.to_dict().items() if k != "config"} for t in r.trials]
                line = {"strategy": r.strategy, "seed": r.seed, "trials": trials}
                fh.write(json.dumps(jsonable(line)) + "\n")
        configs = run_dir / "configs.jsonl"
        with open_atomic(configs) as fh:
            for row in distinct_configs(
                [*([self.ground_truth] if self.ground_truth else []), *self.results]
            ):
                fh.write(json.dumps(jsonable(row)) + "\n")
        paths.append(configs)
        if meta is not None:
            path = run_dir / "compare_config.json"
            write_atomic(path, json.dumps(jsonable(dict(meta)), indent=2, default=str) + "\n")
            paths.append(path)
        write_csv(paths[1], self.table_rows())
        if self.ground_truth is not None:
            paths.extend(self.ground_truth.write(run_dir / "ground_truth"))
        write_atomic(paths[0], json.dumps(jsonable(self.to_dict()), indent=1) + "\n")
        return paths

    @classmethod
    def read(cls, run_dir: str | Path) -> ComparisonResult:
        """The comparison of a directory :meth:`write` wrote (``comparison.json``; the raw
        results are not read back)."""
        rd = Path(run_dir)
        path = rd / "comparison.json"
        doc = read_json(path)  # not valid JSON: its own one line (a ConfigError is a ValueError)
        try:
            result = cls.from_dict(doc)
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise ConfigError(
                f"RUN_DIR: got {str(path)!r}, which is damaged ({type(exc).__name__}: {exc}), allowed: "
                "the file `quantsearch compare` wrote (run it again, or restore the folder)"
            ) from None
        result.run_dir = rd
        return result

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
    def from_dict(cls, raw: Mapping[str, Any]) -> ComparisonResult:
        """Read back :meth:`to_dict` (as loaded from ``comparison.json``)."""
        d = _unjsonable(raw)
        _check_types(d)
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
            front=tuple(tuple(p) for p in d["front"]),
            reference_point=tuple(rp) if rp is not None else None,
            reference_hypervolume=d["reference_hypervolume"],
            evaluations=d["evaluations"],
            evaluations_unshared=d["evaluations_unshared"],
            stats=[_stats_from_dict(s) for s in d["stats"]],
            runs=[_run_from_dict(r) for r in d["runs"]],
            prefix_overlap=list(d.get("prefix_overlap", [])),
            budget_unit=d.get("budget_unit", "trials"),
            noise=float(d.get("noise", 0.0)),
            noisy_metrics=tuple(d.get("noisy_metrics", ())),
        )


# The settings a report reads as numbers, names and lists of them: a string there was a
# TypeError deep inside the report's tables (a traceback), or a table of its characters
_SCALARS: dict[str, type | tuple[type, ...]] = {
    "mode": str,
    "n_trials": int,
    "space_size": int,
    "tolerance": (int, float),
    "shared_cache": bool,
    "reference": str,
    "evaluations": int,
    "evaluations_unshared": int,
}
_LISTS: dict[str, type] = {
    "strategies": str,
    "seeds": int,
    "budgets": int,
    "objective_names": str,
    "directions": str,
}


def _is(value: Any, kind: type | tuple[type, ...]) -> bool:
    return isinstance(value, kind) and (kind is bool or not isinstance(value, bool))


def _check_types(d: Mapping[str, Any]) -> None:
    """Raise TypeError naming the first setting of ``d`` of the wrong type."""
    for name, kind in _SCALARS.items():
        if not _is(d[name], kind):
            raise TypeError(f"{name} = {d[name]!r}")
    for name, item in _LISTS.items():
        v = d[name]
        if not isinstance(v, (list, tuple)) or not all(_is(x, item) for x in v):
            raise TypeError(f"{name} = {v!r}")


def read_meta(run_dir: str | Path, key: str = "RUN_DIR") -> dict[str, Any]:
    """``compare_config.json`` (the ``meta`` given to :meth:`ComparisonResult.write`), or ``{}``.

    Raises:
        ConfigError: naming ``key``: the file is not a JSON object.
    """
    path = Path(run_dir) / "compare_config.json"
    meta = read_json(path) if path.is_file() else {}
    if not isinstance(meta, dict):
        raise ConfigError(
            f"{key}: got {str(path)!r}, which holds a JSON {type(meta).__name__}, allowed: the "
            "object `quantsearch compare` wrote there (run it again, or restore the folder)"
        )
    return meta


def _quartiles(q: Mapping[str, float]) -> Quartiles:
    return Quartiles(q["q1"], q["median"], q["q3"])


def _curve(c: Mapping[str, Any]) -> Curve:
    return Curve(*(tuple(c[k]) for k in ("x", "median", "q1", "q3", "n")))


def _stats_from_dict(s: Mapping[str, Any]) -> StrategyStats:
    share = s.get("front_share")
    return StrategyStats(
        strategy=s["strategy"],
        runs=s["runs"],
        reached=s["reached"],
        trials_to_optimum=_quartiles(s["trials_to_optimum"]),
        evaluations_to_optimum=_quartiles(s["evaluations_to_optimum"]),
        at_budget={int(b): _quartiles(q) for b, q in s["at_budget"].items()},
        final=_quartiles(s["final"]),
        duplicate_share=_quartiles(s["duplicate_share"]),
        evaluations=_quartiles(s["evaluations"]),
        trials=_quartiles(s["trials"]),
        front_share=None if share is None else _quartiles(share),
        by_trial=_curve(s["by_trial"]),
        by_evaluation=_curve(s["by_evaluation"]),
    )


def _run_from_dict(r: Mapping[str, Any]) -> RunMetrics:
    """A run's measures; keys this version does not know (a newer writer's) are ignored."""
    known = {f.name for f in dataclasses.fields(RunMetrics)}
    kw: dict[str, Any] = {
        k: tuple(v) if isinstance(v, list) else v for k, v in r.items() if k in known
    }
    return RunMetrics(**kw)


def jsonable(o: Any) -> Any:
    """Infinities and NaN as the strings ``"inf"``, ``"-inf"``, ``"nan"`` (standard JSON).

    Example:
        >>> jsonable({"a": (1.0, math.inf), "b": Path("x")})
        {'a': [1.0, 'inf'], 'b': 'x'}
    """
    if isinstance(o, float) and not math.isfinite(o):
        return "nan" if o != o else ("inf" if o > 0 else "-inf")
    if isinstance(o, Mapping):
        return {str(k): jsonable(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [jsonable(v) for v in o]
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
