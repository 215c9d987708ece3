"""``quantsearch compare``: every strategy for every seed on one space, measured and reported.

The compare and report packages import torch and optuna: they are imported inside the functions
so that ``quantsearch --help`` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from quantsearch.cli.common import (
    COUNT,
    config_option,
    figure_format_option,
    folder_value,
    json_option,
    load_config_or_default,
    load_option,
)
from quantsearch.cli.printing import comparison_json, print_comparison
from quantsearch.errors import ConfigError
from quantsearch.search.config import CompareConfig, check_evaluations
from quantsearch.validate import SEED_MAX, SEEDS_MAX, check_unique

if TYPE_CHECKING:
    from quantsearch.compare.result import ComparisonResult
    from quantsearch.config import Config


def parse_strategies(text: str | None) -> tuple[str, ...] | None:
    """``"brute_force, tpe"`` -> ``("brute_force", "tpe")`` (names checked, aliases resolved)."""
    if text is None:
        return None
    from quantsearch.search.strategies import STRATEGIES  # torch: see the module docstring

    names = [s.strip() for s in text.split(",") if s.strip()]
    if not names:
        raise ConfigError(
            f"--strategies: got {text!r}, allowed: a comma-separated list of {STRATEGIES.names()}"
        )
    if len(names) < text.count(",") + 1:  # "random," or "tpe,,random": a name left out?
        raise ConfigError(f"--strategies: got {text!r}, allowed: names between single commas")
    canonical = tuple(STRATEGIES.canonical(s, key="--strategies") for s in names)
    check_unique(canonical, "--strategies")  # an alias counts as its strategy
    return canonical


def check_pareto_strategies(config: Config, given: tuple[str, ...] | None) -> None:
    """A Pareto search compared with a single-objective strategy is refused before the
    comparison's folder is made (run_comparison's own check came after it)."""
    names = given if given is not None else (config.compare or CompareConfig()).strategies
    if config.search is None or config.search.combine != "pareto":
        return
    from quantsearch.search.strategies import STRATEGIES  # torch: see the module docstring

    for s in names:
        if not STRATEGIES.get(STRATEGIES.canonical(s, key="compare.strategies")).multi_objective:
            raise ConfigError(
                f"{'--strategies' if given is not None else 'compare.strategies'}: got {s!r} "
                "with combine = 'pareto', which it does not support, allowed: multi-objective "
                f"strategies {[n for n, st in STRATEGIES.items() if st.multi_objective]}"
            )


def check_seeds(config: Config, seeds: int | None) -> None:
    """Each run's seed (``search.seed`` .. ``search.seed + N - 1``) is one a sampler takes:
    past 2**32 - 1 the first sampler beyond it failed, the error blaming its options."""
    if config.search is None:
        return
    n = seeds if seeds is not None else (config.compare or CompareConfig()).seeds
    first = config.search.seed
    if first + n - 1 > SEED_MAX:
        key = "--seeds" if seeds is not None else "compare.seeds"
        raise ConfigError(
            f"{key}: got {n} with seed {first}, allowed: at most {SEED_MAX - first + 1} "
            f"(the runs take seeds {first}..{first}+N-1, each at most {SEED_MAX})"
        )


def check_budgets(config: Config, n_trials: int | None, n_evaluations: int | None) -> None:
    """``compare.budgets`` within a run's budget: the simple regret "at 100 trials" of runs of
    2 trials was their regret at 2, reported under 100."""
    if config.search is None:
        return
    cc = config.compare or CompareConfig()
    evals = n_evaluations or cc.n_evaluations
    evals_key = "--evaluations" if n_evaluations else "compare.n_evaluations"
    trials = n_trials or cc.n_trials  # without one, an evaluation budget sets the cap (20 x)
    if trials is not None:
        check_evaluations(evals, trials, evals_key, "--trials" if n_trials else "compare.n_trials")
    if evals:
        limit, unit, source = evals, "evaluations", evals_key
    else:
        limit, unit = n_trials or cc.n_trials or config.search.n_trials, "trials"
        source = (
            "--trials" if n_trials else "compare.n_trials" if cc.n_trials else "search.n_trials"
        )
    over = [b for b in cc.budgets if limit is not None and b > limit]
    if over:
        raise ConfigError(
            f"compare.budgets: got {over[0]}, allowed: budgets up to the {limit} {unit} of a run "
            f"({source})"
        )


@click.command()
@config_option
@load_option
@click.option(
    "--strategies",
    default=None,
    help="Comma-separated strategy names (default: compare.strategies).",
)
@click.option(
    "--seeds",
    type=click.IntRange(1, SEEDS_MAX),
    default=None,
    help="Runs per strategy, seeds seed..seed+N-1 (default: compare.seeds).",
)
@click.option(
    "--trials",
    "n_trials",
    type=COUNT,
    default=None,
    help="Trials per run (default: compare.n_trials, else search.n_trials).",
)
@click.option(
    "--evaluations",
    "n_evaluations",
    type=COUNT,
    default=None,
    help="Budget every run in distinct evaluations (equal cost per strategy; regret budgets "
    "then count evaluations; default: compare.n_evaluations, else a trial budget).",
)
@click.option(
    "--cache/--no-cache",
    "shared_cache",
    default=None,
    help="Share one evaluation cache across all runs (default: compare.shared_cache, on).",
)
@click.option(
    "--run-dir",
    default=None,
    callback=folder_value,
    help="Parent folder of run directories (default: run_dir, 'runs').",
)
@click.option(
    "--name", default=None, help="Folder of this comparison (default: <config stem>-compare)."
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar, table or findings.")
@figure_format_option
@json_option
def compare(
    config_path: str | None,
    load: str | None,
    strategies: str | None,
    seeds: int | None,
    n_trials: int | None,
    n_evaluations: int | None,
    shared_cache: bool | None,
    run_dir: str | None,
    name: str | None,
    quiet: bool,
    figure_format: str,
    as_json: bool,
) -> None:
    """Compare search strategies for sample efficiency; writes tables, pictures and a report."""
    cfg = load_config_or_default(config_path)
    check_seeds(cfg, seeds)
    check_budgets(cfg, n_trials, n_evaluations)
    given = parse_strategies(strategies)
    check_pareto_strategies(cfg, given)
    result = compare_and_report(
        cfg,
        load=load,
        strategies=given,
        seeds=seeds,
        n_trials=n_trials,
        n_evaluations=n_evaluations,
        run_dir=run_dir,
        name=name,
        shared_cache=shared_cache,
        progress=not (quiet or as_json),
        figure_format=figure_format.lower(),
    )
    if as_json:
        click.echo(comparison_json(result))
    elif not quiet:
        print_comparison(result)
        if result.report is not None:
            click.echo(f"report: {result.report.html}")


def compare_and_report(
    config: Config, figure_format: str = "svg", **options: Any
) -> ComparisonResult:
    """Run :func:`quantsearch.compare.compare_from_config` with ``options``, then write the
    comparison's report (``result.report``) with its pictures as ``figure_format``."""
    from quantsearch.compare import compare_from_config  # torch and optuna: module docstring
    from quantsearch.report import write_report

    result = compare_from_config(config, **options)
    if result.run_dir is not None:
        result.report = write_report(result.run_dir, figure_format)
    return result
