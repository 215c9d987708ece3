"""A run directory read and turned into everything its report shows, as plain data.

A *search* run directory is what ``quantsearch search`` writes (``trials.jsonl``,
``baseline.json``, ``best.json`` or ``pareto.json``, ``search_config.json``; read by
:meth:`SearchResult.read`); a *comparison* directory is what ``quantsearch compare`` writes
(``comparison.json``, ``configs.jsonl`` ..., read by :meth:`ComparisonResult.read`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from quantsearch.compare.analysis import compare_results
from quantsearch.compare.configs import config_points, read_configs
from quantsearch.compare.result import ComparisonResult, read_meta
from quantsearch.errors import ConfigError
from quantsearch.metrics.specs import declare_user_metrics
from quantsearch.report.figures import Figure, Heatmap
from quantsearch.report.findings import comparison_findings, correlation_finding, search_findings
from quantsearch.report.pictures import correlation, curve_figures, point_figures
from quantsearch.report.tables import (
    Table,
    baseline_table,
    best_table,
    comparison_table,
    constraints_text,
    key_value_table,
    objectives_text,
    reference_words,
    space_table,
    test_split_table,
)
from quantsearch.search.results import SearchResult, read_json
from quantsearch.search.run_files import what_folder

__all__ = ["Report", "build_report"]

_ALLOWED = "a folder `quantsearch search` or `quantsearch compare` wrote"  # as RUN_DIR


@dataclass
class Report:
    """Everything a report shows, computed from a run directory."""

    title: str
    kind: Literal["search", "compare"]
    run_dir: Path
    findings: list[str]
    setup: Table
    space: Table
    baseline: Table
    best: Table
    best_title: str
    comparison: Table | None = None
    test: Table | None = None  # the chosen configs on the held-out test split
    figures: list[Figure] = field(default_factory=list)
    config_json: str = ""


def build_report(run_dir: str | Path, *, memo: dict[str, list[float]] | None = None) -> Report:
    """Read a search or comparison run directory and compute the report's data.

    ``memo``: statistics computed for earlier reports of the directory (see
    :func:`~quantsearch.report.pictures.correlation`); new ones are added to it.
    """
    rd = Path(run_dir)
    if not rd.is_dir():
        what = "which is not a folder" if rd.exists() else "which does not exist"
        raise ConfigError(f"RUN_DIR: got {str(rd)!r}, {what}, allowed: {_ALLOWED}")
    if (rd / "comparison.json").is_file():
        return _build_compare(rd, memo)
    if (rd / "trials.jsonl").is_file():
        return _build_search(rd, memo)
    raise ConfigError(
        f"RUN_DIR: got {str(rd)!r}, neither a search run directory (trials.jsonl) nor a "
        f"comparison directory (comparison.json); it {what_folder(rd)}, "
        f"allowed: {_ALLOWED}"
    )


def _build_compare(rd: Path, memo: dict[str, list[float]] | None) -> Report:
    cmp = ComparisonResult.read(rd)
    meta = read_meta(rd)
    search = meta.get("search", {})
    declare_user_metrics(None, search.get("user_metrics", {}))  # their recorded directions
    points = read_configs(rd / "configs.jsonl") if (rd / "configs.jsonl").is_file() else []
    table = comparison_table(cmp)
    findings = comparison_findings(cmp, table, memo)
    reference = reference_words(cmp)
    if cmp.optimum is not None:
        reference += f" = {cmp.optimum:.6g}"
    elif cmp.front:
        reference += f" ({len(cmp.front)} points)"
    setup = key_value_table(
        [
            ("config", meta.get("source")),
            ("model", meta.get("model")),
            ("dataset", f"{meta.get('dataset')} ({meta.get('samples')} validation samples)")
            if meta.get("dataset")
            else None,
            ("strategies", ", ".join(cmp.strategies)),
            ("seeds", ", ".join(str(s) for s in cmp.seeds)),
            ("trials per run", cmp.n_trials),
            ("space size", f"{cmp.space_size} points"),
            ("objective", objectives_text(search) if search else ", ".join(cmp.objective_names)),
            ("constraints", constraints_text(search) if search else None),
            ("reference", reference),
            ("hypervolume reference point", cmp.reference_point if cmp.mode == "pareto" else None),
            (
                "evaluation cache",
                f"shared: {cmp.evaluations} distinct evaluations in all"
                if cmp.shared_cache
                else f"one per run: {cmp.evaluations} evaluations in all",
            ),
        ]
    )
    best, best_title, chosen = best_table(points, cmp.mode, cmp.directions, cmp.objective_names)
    best_hashes = set(cmp.optimum_configs)  # pareto: none; the front is drawn as the front
    corr = correlation(points, memo=memo)
    figures = curve_figures(cmp, single=False)
    tabled = {p.config_hash for p in chosen}
    figures += point_figures(points, cmp.objective_names, cmp.baseline, best_hashes, corr, tabled)
    if corr is not None:
        findings.append(correlation_finding(corr))
    return Report(
        title=f"Strategy comparison: {rd.name}",
        kind="compare",
        run_dir=rd,
        findings=findings,
        setup=setup,
        space=space_table(search) if search else Table(("parameter",), ()),
        baseline=baseline_table(cmp.baseline),
        best=best,
        best_title=best_title + " — from every config the comparison evaluated",
        comparison=table,
        figures=figures,
        config_json=json.dumps(meta, indent=2, default=str),
    )


def _check_same_search(path: Path, search: dict[str, Any], result: SearchResult) -> None:
    """Refuse a ``search_config.json`` of another search than the result files beside it (a
    copied file, a run directory assembled from two): the report drew one search's trials
    under the other's objectives."""
    if not search:
        return
    objectives = search.get("objectives")
    names = (
        [o.get("metric") for o in objectives if isinstance(o, dict)]
        if isinstance(objectives, list)
        else None
    )
    if names != list(result.objective_names) or search.get("combine") != result.combine:
        raise ConfigError(
            f"RUN_DIR: got {str(path)!r}, not the search of the trials beside it (objectives "
            f"{names}, combine {search.get('combine')!r}; the trials': "
            f"{list(result.objective_names)}, {result.combine!r}), allowed: the search_config.json "
            "that search wrote there; run the same `quantsearch search` again to write it"
        )


_SHAPES: dict[str, type] = {
    "space": dict,
    "constraints": list,
    "user_metrics": dict,
    "knob_labels": dict,
}


def _walkable(value: Any) -> bool:
    """The tables in ``value`` are tables: a list's items, a space's ``choices`` and
    ``dropped`` (its ``by`` is a name; user_metrics and knob_labels hold names)."""
    if isinstance(value, list):
        return all(isinstance(v, dict) for v in value)
    return all(isinstance(v, dict) for k, v in value.items() if k in ("choices", "dropped"))


def _build_search(rd: Path, memo: dict[str, list[float]] | None) -> Report:
    result = SearchResult.read(rd)
    path = rd / "search_config.json"
    search = read_json(path) if path.is_file() else {}
    if not isinstance(search, dict):  # .get below raised AttributeError
        raise ConfigError(
            f"RUN_DIR: got {str(path)!r}, which holds a JSON {type(search).__name__}, allowed: an object "
            "(as search writes it)"
        )
    for key, kind in _SHAPES.items():
        value = search.get(key, kind())  # the tables below walk them: a string was a traceback
        if not isinstance(value, kind) or not _walkable(value):
            raise ConfigError(
                f"RUN_DIR: got {str(path)!r} with {key} = {value!r:.60}, allowed: what search writes "
                f"there (a JSON {'object' if kind is dict else 'list'})"
            )
    _check_same_search(path, search, result)
    declare_user_metrics(None, search.get("user_metrics", {}))  # their recorded directions
    points = config_points(result)
    exhaustive = len(points) >= result.space_size
    cmp = compare_results([result], ground_truth=result if exhaustive else None)
    run = cmp.runs[0]
    best, best_title, chosen = best_table(
        points, result.combine, result.directions, result.objective_names
    )
    findings = search_findings(result, run, chosen, len(points))
    setup = key_value_table(
        [
            ("study", result.study_name),
            ("strategy", f"{result.strategy} (seed {result.seed})"),
            ("trials", run.trials),
            ("space size", f"{result.space_size} points"),
            ("objective", objectives_text(search) if search else None),
            ("constraints", constraints_text(search) if search else None),
            ("n_trials", search.get("n_trials")),
        ]
    )
    best_hashes = set(cmp.optimum_configs)
    corr = correlation(points, memo=memo)
    figures = curve_figures(cmp, single=True)
    tabled = {p.config_hash for p in chosen}
    figures += point_figures(
        points, result.objective_names, result.baseline, best_hashes, corr, tabled
    )
    figures += _sensitivity_figures(rd)
    if corr is not None:
        findings.append(correlation_finding(corr))
    return Report(
        title=f"Search report: {rd.name}",
        kind="search",
        run_dir=rd,
        findings=findings,
        setup=setup,
        space=space_table(search) if search else Table(("parameter",), ()),
        baseline=baseline_table(result.baseline),
        best=best,
        best_title=best_title,
        test=test_split_table(result),
        figures=figures,
        config_json=json.dumps(search, indent=2, default=str),
    )


def _sensitivity_figures(rd: Path) -> list[Figure]:
    """The sensitivity strategy's per-knob predicted drop (``sensitivity.json``), if written."""
    path = rd / "sensitivity.json"
    if not path.is_file():
        return []
    rows = read_json(path)
    knobs = tuple(str(r["parameter"]) for r in rows)
    widths = sorted(
        {k for r in rows for k in r if k.endswith(" bits")}, key=lambda k: float(k.split()[0])
    )
    values = tuple(tuple(float(r.get(w, float("nan"))) for r in rows) for w in widths)
    cells = tuple(tuple(f"{v:.1f}" for v in row) for row in values)
    plot = Heatmap("Predicted accuracy drop (%) of each knob alone", tuple(widths), knobs, values,
                   cells, "predicted drop (percentage points)")  # fmt: skip
    return [
        Figure(
            "sensitivity",
            "Per-layer sensitivity the sensitivity strategy computed before its first trial (no "
            "evaluation): each knob quantized alone at the best choice of each bit width, the "
            "linearised accuracy drop on the evaluation data (docs/sensitivity.md). Rows: widths.",
            plot,
        )
    ]
