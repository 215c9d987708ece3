"""Findings: sentences generated from the tables' own cells (the same formatted strings), that
say only what those numbers show. Nothing here renders."""

from __future__ import annotations

from collections.abc import Sequence

from quantsearch.compare.configs import ConfigPoint
from quantsearch.compare.measures import RunMetrics
from quantsearch.compare.ranking import ALPHA, BudgetRanking, rank_at_budgets, repeated_shares
from quantsearch.compare.result import ComparisonResult
from quantsearch.compare.stats import quantile
from quantsearch.report.figures import CorrelationPlot
from quantsearch.report.formatting import fmt_metric, fmt_share
from quantsearch.report.tables import Table, comparison_table, reference_words
from quantsearch.search.results import SearchResult

__all__ = ["comparison_findings", "correlation_finding", "search_findings"]

_EXHAUSTIVE = {"brute_force", "grid"}


def comparison_findings(
    cmp: ComparisonResult,
    table: Table | None = None,
    memo: dict[str, list[float]] | None = None,
) -> list[str]:
    """Sentences generated from :func:`comparison_table`'s own cells; ``memo``: the paired
    tests' p-values computed for earlier reports (:func:`rank_at_budgets`)."""
    t = table or comparison_table(cmp)
    pareto = cmp.mode == "pareto"
    target = "full hypervolume" if pareto else "optimum"
    ref = reference_words(cmp)
    tcol, ecol = f"trials to {target}", f"distinct evals to {target}"
    out: list[str] = []
    if cmp.optimum is None and not cmp.reference_hypervolume:
        where = "every point" if cmp.reference == "exhaustive" else "every config any run evaluated"
        return [
            f"No feasible config was found ({where} broke a constraint or failed), so there is "
            f"no optimum to reach and no strategy is measured against one.",
            _cost_finding(cmp),
        ]
    for s in cmp.stats:
        name = s.strategy
        reached = f"{s.reached} of {s.runs} seeds"
        dup = t.cell(name, "repeated trials")
        if name == "brute_force" and cmp.reference == "exhaustive":
            certify = (
                f"needs exactly {cmp.space_size} trials to enumerate the space and so certify "
                f"the {ref}"
            )
            if s.reached == s.runs and s.trials_to_optimum.q1 == s.trials_to_optimum.q3:
                out.append(
                    f"brute_force visits points in a fixed order: it first met the {ref} at "
                    f"trial {t.cell(name, tcol)} and {certify}."
                )
            else:
                out.append(f"brute_force {certify}; it reached it in {reached}.")
            continue
        if name == "brute_force":
            out.append(_brute_force_order(cmp))
        if s.reached == 0 and cmp.reference == "best_found":
            continue  # on a space too large to enumerate, the regret ranking below says more
        if s.reached == 0:
            last = f"{'HV missed' if pareto else 'regret'} @{cmp.budgets[-1]}"
            out.append(
                f"{name} did not reach the {ref} within {cmp.n_trials} trials in any of "
                f"{s.runs} seeds (median {last.split(' @')[0]} after {cmp.budgets[-1]} trials: "
                f"{t.cell(name, last).split(' (')[0]})."
            )
            continue
        if 2 * s.reached < s.runs:
            out.append(
                f"{name} reached the {ref} in only {reached} within {cmp.n_trials} trials, so "
                f"its median trials to it is not defined (∞)."
            )
            continue
        sentence = (
            f"{name} reached the {ref} in a median of {_median_iqr(t.cell(name, tcol), 'trials')} "
            f"and {_median_iqr(t.cell(name, ecol), 'distinct evaluations')}, in {reached}; "
            f"{dup.split(' (')[0]} of its trials repeated a config it had already tried"
        )
        if name in _EXHAUSTIVE:
            sentence += " (an exhaustive strategy)"
        out.append(sentence + ".")
    out.extend(_noise(cmp))
    out.extend(_ranking(cmp, t, tcol, ref))
    out.extend(_regret_ranking(r, cmp) for r in rank_at_budgets(cmp, memo))
    out.extend(_repeated(cmp))
    out.extend(_overlaps(cmp))
    out.append(_cost_finding(cmp))
    return out


def _ranking(cmp: ComparisonResult, t: Table, tcol: str, ref: str) -> list[str]:
    ranked = sorted(
        (s for s in cmp.stats if 2 * s.reached >= s.runs),
        key=lambda s: (s.trials_to_optimum.median, s.strategy),
    )
    if len(ranked) < 2:
        return []
    first, second = ranked[0], ranked[1]
    listing = ", ".join(f"{s.strategy} {t.cell(s.strategy, tcol).split(' (')[0]}" for s in ranked)
    line = f"Median trials to the {ref}: {listing}."
    tied = [
        s.strategy for s in ranked if s.trials_to_optimum.median == first.trials_to_optimum.median
    ]
    if len(tied) > 1:
        line += f" {', '.join(tied[:-1])} and {tied[-1]} tie for the fewest."
    elif first.trials_to_optimum.q3 >= second.trials_to_optimum.q1:
        line += (
            f" The interquartile ranges of {first.strategy} and {second.strategy} overlap: "
            f"{len(cmp.seeds)} seeds do not separate them."
        )
    return [line]


def _noise(cmp: ComparisonResult) -> list[str]:
    """What the noisy objectives allow to be told apart."""
    if not cmp.noisy_metrics:
        return []
    names = ", ".join(cmp.noisy_metrics)
    if cmp.mode == "pareto" or cmp.noise <= 0:
        return [
            f"{names} is timed, so noisy: each config was measured once (median of repeats) and "
            "the comparison does not say which differences are within that noise."
        ]
    return [
        f"{names} is timed, so noisy: the float baseline's spread (IQR) is {cmp.noise:.3g} in "
        f"objective units, so regrets below {cmp.noise:.3g} are within the noise and not "
        f"distinguished, and a run within it of the {reference_words(cmp)} counts as reaching it."
    ]


def _brute_force_order(cmp: ComparisonResult) -> str:
    return (
        "brute_force visits points in the order the choices are listed in the config (the "
        "space's stable order), so its trials to the optimum depend on that listing, not on "
        "its seed; its option shuffle = true walks a random order drawn from the seed instead."
    )


def _regret_ranking(r: BudgetRanking, cmp: ComparisonResult) -> str:
    unit = "trials" if r.unit == "trials" else "distinct evaluations"
    what = "regret" if cmp.mode == "weighted_sum" else "hypervolume regret"
    listing = ", ".join(f"{s} {m:.4g}" for s, m in r.medians)
    if len(r.tied) > 1:
        head = (
            f"After {r.budget} {unit}, {', '.join(r.tied)} tie for the lowest median {what} "
            f"({listing})"
        )
    else:
        head = f"After {r.budget} {unit}, {r.leader} has the lowest median {what} ({listing})"
    parts = []
    for t in r.tests:
        if t.p is None:
            parts.append(f"vs {t.other}: identical in all {t.n} paired seeds")
        else:
            verdict = "significant" if t.significant else "not significant"
            parts.append(
                f"vs {t.other}: lower in {t.wins}, higher in {t.losses} of {t.n} paired seeds, "
                f"p = {t.p:.2g} ({verdict} at {ALPHA})"
            )
    return f"{head}; Wilcoxon signed-rank test, two-sided: " + "; ".join(parts) + "."


def _repeated(cmp: ComparisonResult) -> list[str]:
    m, shares = repeated_shares(cmp)
    if m == 0 or len(shares) < 2:
        return []
    listing = ", ".join(f"{s} {fmt_share(q.median)}" for s, q in shares.items())
    return [
        f"Over the first {m} trials of every run (an equal number for all), the median share of "
        f"trials that repeated a config: {listing}."
    ]


def _overlaps(cmp: ComparisonResult) -> list[str]:
    out = []
    for pair in cmp.prefix_overlap:
        a, b, lengths = pair["a"], pair["b"], pair["lengths"]
        if lengths and min(lengths) >= 5:
            if pair.get("identical"):
                out.append(
                    f"{a} and {b} proposed identical trial sequences in all {len(lengths)} seeds."
                )
            else:
                out.append(
                    f"{a} and {b} proposed the same first {min(lengths)} trials in every seed "
                    f"(at most {max(lengths)})."
                )
    return out


def _cost_finding(cmp: ComparisonResult) -> str:
    total_trials = sum(r.trials for r in cmp.runs)
    line = (
        f"The {len(cmp.runs)} runs made {total_trials:,} trials; the comparison evaluated "
        f"{cmp.evaluations:,} distinct configs of the {cmp.space_size:,}-point space"
    )
    if cmp.shared_cache:
        line += (
            f" (one shared cache; with a cache per run it would have cost "
            f"{cmp.evaluations_unshared:,} evaluations)."
        )
    else:
        line += " (a cache per run, no sharing)."
    samples = [r.samples for r in cmp.runs if r.samples is not None]
    if samples and len(samples) == len(cmp.runs):
        line += (
            f" Validation samples per run (forward passes, pruned trials included): median "
            f"{quantile(samples, 0.5):.0f}."
        )
    return line


def _median_iqr(cell: str, unit: str) -> str:
    """``("5.5 (3.25–10.75)", "trials")`` -> ``"5.5 trials (IQR 3.25–10.75)"``.

    Example:
        >>> _median_iqr("5.5 (3.25–10.75)", "trials")
        '5.5 trials (IQR 3.25–10.75)'
    """
    if " (" in cell:
        m, rest = cell.split(" (", 1)
        return f"{m} {unit} (IQR {rest}"
    return f"{cell} {unit} (IQR {cell}–{cell})"


def correlation_finding(c: CorrelationPlot, x: str = "loss", y: str = "accuracy") -> str:
    """What the rank correlations say, in words tied to stated thresholds on ``|ρ|``."""
    n = len(c.x)
    head = (
        f"Across {n} distinct configs, {y} and {x} have Spearman ρ = {c.spearman:.2f} "
        f"(p = {c.spearman_p:.2g}) and Kendall τ = {c.kendall:.2f} (p = {c.kendall_p:.2g})"
    )
    r = abs(c.spearman)
    if r >= 0.8:
        return (
            head + f": |ρ| ≥ 0.8, so ranking configs by {x} nearly reproduces their ranking by "
            f"{y} — here the two act as one quality metric."
        )
    if r >= 0.5:
        return head + ": 0.5 ≤ |ρ| < 0.8, related but not interchangeable rankings."
    return head + f": |ρ| < 0.5, so {x} and {y} rank these configs differently."


def search_findings(
    result: SearchResult,
    run: RunMetrics,
    chosen: Sequence[ConfigPoint],
    evaluated: int,
) -> list[str]:
    """What one search run shows: its cost, its best config (or front), and whether the
    ``evaluated`` distinct points were the whole space."""
    out = [
        f"{run.trials:,} trials made {run.evaluations:,} distinct evaluations of the "
        f"{result.space_size:,}-point space; {fmt_share(run.duplicate_share)} of the trials "
        f"repeated a config."
    ]
    if result.combine == "weighted_sum" and chosen:
        top = chosen[0]
        parts = []
        for m in result.objective_names:
            v, b = top.metrics.get(m), result.baseline.get(m)
            parts.append(
                f"{m} {fmt_metric(v)} (float {fmt_metric(b)})" if b is not None else f"{m} {v}"
            )
        objective = top.values[0] if top.values else float("nan")
        out.append(
            f"Best feasible config: objective {objective:.4f}, " + ", ".join(parts) + "; "
            f"first reached after {run.trials_to_optimum} of the {run.trials} trials."
        )
    elif result.combine == "pareto":
        out.append(f"The front has {len(chosen)} non-dominated feasible configs.")
    if not chosen:
        out.append("No trial was feasible: every config broke a constraint or failed.")
    if evaluated >= result.space_size:
        out.append(
            "The run evaluated every point of the space, so this is the true "
            + ("optimum." if result.combine == "weighted_sum" else "Pareto front.")
        )
    else:
        out.append(
            f"The run evaluated {evaluated} of {result.space_size} points; a better config may "
            f"exist among the rest."
        )
    return out
