"""Optuna's samplers, registered as they are (STYLE.md section 6: use them, don't wrap them).

Constraints reach the samplers that use them (TPE, NSGA-II/III, GP) through the trial's
``"constraints"`` system attribute, which the study loop sets for every trial
(``optuna_compat.set_constraints``: where Optuna's ``constraints_func`` and optuna-dashboard
keep them).

Two defaults are changed, each for a reason measured on quantsearch's spaces:

* ``qmc`` is scrambled: Optuna's ``QMCSampler`` defaults to ``scramble=False``, where the seed
  has no effect and every seed draws the same Sobol sequence.
* ``nsga2``/``nsga3`` get a population of ``min(50, max(4, n_trials // 4))`` when the options do
  not set one (and the study's budget is known): a genetic sampler draws its whole first
  generation at random, so with Optuna's 50 and a budget under 50 it *is* random search, trial
  for trial. A population the options set larger than a quarter of the budget is kept, with a
  warning.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from typing import Any

import optuna.samplers as S

from quantsearch.errors import ConfigError
from quantsearch.search.strategies.base import Strategy, StrategyContext, pass_options
from quantsearch.search.strategies.options import PER_TRIAL_MAX, Option, n_points
from quantsearch.search.strategies.random_batch import BatchRandomSampler
from quantsearch.search.strategies.tpe import tpe_sampler
from quantsearch.validate import COUNT_MAX


def _grid(ctx: StrategyContext) -> S.BaseSampler:
    space = {k.name: list(k.labels) for k in ctx.space.knobs}
    return pass_options(S.GridSampler, ctx, {"search_space": space, "seed": ctx.seed})


def _random(ctx: StrategyContext) -> S.BaseSampler:
    # RandomSampler itself, able to propose a batch of trials draw for draw (random_batch.py)
    return pass_options(BatchRandomSampler, ctx, {"space": ctx.space, "seed": ctx.seed})


def _tpe(ctx: StrategyContext) -> S.BaseSampler:
    # Ours where it proposes what Optuna's would, trial for trial, reading each finished trial
    # once (tpe.py); with options or several objectives, Optuna's own.
    ours = tpe_sampler(ctx.seed, ctx.options, ctx.n_objectives, ctx.space)
    return ours if ours is not None else pass_options(S.TPESampler, ctx, {"seed": ctx.seed})


NSGA_POPULATION = 50  # Optuna's default population_size for NSGA-II and NSGA-III
MIN_POPULATION = 4


def nsga_population(n_trials: int | None, options: dict[str, object]) -> int | None:
    """The population to give NSGA-II/III: ``None`` to leave the options' (or Optuna's) choice.

    Example:
        >>> nsga_population(40, {}), nsga_population(1000, {}), nsga_population(None, {})
        (10, 50, None)
    """
    if n_trials is None or "population_size" in options:
        return None
    return min(NSGA_POPULATION, max(MIN_POPULATION, n_trials // 4))


def _nsga(
    cls: type[S.NSGAIISampler] | type[S.NSGAIIISampler], ctx: StrategyContext
) -> S.BaseSampler:
    fixed: dict[str, object] = {"seed": ctx.seed}
    population = nsga_population(ctx.n_trials, ctx.options)
    if population is not None:
        fixed["population_size"] = population
    sampler = pass_options(cls, ctx, fixed)  # first: a rejected size is one error line
    chosen, budget = ctx.options.get("population_size"), ctx.n_trials
    if budget is not None and isinstance(chosen, int) and chosen > budget // 4:
        warnings.warn(
            f"search.strategy.options.population_size = {chosen} is more than a quarter of the "
            f"budget ({budget} trials): the first {min(chosen, budget)} trials are random "
            "search, trial for trial",
            stacklevel=2,
        )
    return sampler


def _nsga2(ctx: StrategyContext) -> S.BaseSampler:
    return _nsga(S.NSGAIISampler, ctx)


def _nsga3(ctx: StrategyContext) -> S.BaseSampler:
    return _nsga(S.NSGAIIISampler, ctx)


def _qmc(ctx: StrategyContext) -> S.BaseSampler:
    # Sobol points need numeric parameters: the space is offered as cheapest-first indices.
    # Scrambled, so that the seed means something (unscrambled, every seed is one sequence).
    fixed: dict[str, object] = {"seed": ctx.seed}
    if "scramble" not in ctx.options:
        fixed["scramble"] = True
    return pass_options(S.QMCSampler, ctx, fixed)


def _gp(ctx: StrategyContext) -> S.BaseSampler:
    return pass_options(S.GPSampler, ctx, {"seed": ctx.seed})


# What a config may set: the options of each Optuna sampler that TOML can write (functions and
# objects such as gamma, constraints_func or independent_sampler it cannot), with the ranges
# Optuna checks (or fails on mid-search when it does not: a negative n_startup_trials).
COUNT = Option("int", 0, COUNT_MAX)
FLAG = Option("bool")
PROBABILITY = Option("float", 0, 1)
TPE_OPTIONS = {
    "n_startup_trials": COUNT,
    "n_ei_candidates": Option("int", 1, PER_TRIAL_MAX),
    "multivariate": FLAG,
    "group": FLAG,
    "constant_liar": FLAG,
    "warn_independent_sampling": FLAG,
    # deprecated by Optuna (4.3, 4.9), which still takes them with a FutureWarning
    "consider_prior": FLAG,
    "prior_weight": Option("float", 1e-6, 1e6),
    "consider_magic_clip": FLAG,
    "consider_endpoints": FLAG,
}
NSGA2_OPTIONS = {
    "population_size": Option("int", 2, COUNT_MAX),
    "mutation_prob": PROBABILITY,
    "crossover_prob": PROBABILITY,
    "swapping_prob": PROBABILITY,
}
NSGA3_OPTIONS = {
    **NSGA2_OPTIONS,
    "dividing_parameter": Option("int", 1, PER_TRIAL_MAX),
    "reference_points": Option("points"),
}
QMC_OPTIONS = {
    "qmc_type": Option("choice", choices=("sobol", "halton")),
    "scramble": FLAG,
    "warn_asynchronous_seeding": FLAG,
    "warn_independent_sampling": FLAG,
}
GP_OPTIONS = {
    "n_startup_trials": COUNT,
    "deterministic_objective": FLAG,
    "warn_independent_sampling": FLAG,
}


def _check_tpe(options: Mapping[str, Any], n_objectives: int, key: str) -> None:
    if options.get("group") and options.get("multivariate") is False:  # as TPESampler refuses
        raise ConfigError(
            f"{key}.group: got true with multivariate = false, allowed: group = true with "
            "multivariate = true or unset"
        )


def _check_nsga3(options: Mapping[str, Any], n_objectives: int, key: str) -> None:
    """Reference points one per objective; the generated ones (comb(M + p - 1, p) for M
    objectives and dividing_parameter p) at most PER_TRIAL_MAX."""
    if "reference_points" in options:
        dim = n_points(options["reference_points"])[1]
        if dim != n_objectives:
            raise ConfigError(
                f"{key}.reference_points: got points of {dim} coordinates, allowed: "
                f"{n_objectives} (one per objective of this study)"
            )
        return
    p = options.get("dividing_parameter", 3)
    if math.comb(n_objectives + p - 1, p) > PER_TRIAL_MAX:
        raise ConfigError(
            f"{key}.dividing_parameter: got {p}, which makes "
            f"{math.comb(n_objectives + p - 1, p):,} reference points for {n_objectives} "
            f"objectives, allowed: at most {PER_TRIAL_MAX:,}"
        )


STRATEGIES_ = (
    Strategy(
        "grid",
        _grid,
        "Optuna GridSampler: every point once, in seeded random order",
        exhaustive=True,
    ),
    Strategy("random", _random, "Optuna RandomSampler: independent uniform draws"),
    Strategy(
        "tpe",
        _tpe,
        "Optuna TPESampler (Tree-structured Parzen Estimator)",
        options=TPE_OPTIONS,
        check=_check_tpe,
    ),
    Strategy(
        "nsga2",
        _nsga2,
        "Optuna NSGAIISampler (genetic, multi-objective)",
        aliases=("nsga-ii",),
        options=NSGA2_OPTIONS,
    ),
    Strategy(
        "nsga3",
        _nsga3,
        "Optuna NSGAIIISampler (reference-point genetic)",
        aliases=("nsga-iii",),
        options=NSGA3_OPTIONS,
        check=_check_nsga3,
    ),
    Strategy(
        "qmc",
        _qmc,
        "Optuna QMCSampler (scrambled Sobol) over cheapest-first indices",
        encoding="ordinal",
        options=QMC_OPTIONS,
    ),
    Strategy(
        "gp",
        _gp,
        "Optuna GPSampler (Gaussian-process Bayesian optimisation) over cheapest-first indices",
        encoding="ordinal",
        options=GP_OPTIONS,
    ),
)
