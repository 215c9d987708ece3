"""Optuna's samplers, registered as they are (STYLE.md section 6: use them, don't wrap them).

Constraints reach the samplers that use them (TPE, NSGA-II/III, GP) through
``trial.set_constraint``, which the study loop calls for every trial (Optuna 5's interface).
"""

from __future__ import annotations

import optuna.samplers as S

from quantsearch.search.strategies.base import Strategy, StrategyContext, pass_options


def _grid(ctx: StrategyContext) -> S.BaseSampler:
    space = {k.name: list(k.labels) for k in ctx.space.knobs}
    return pass_options(S.GridSampler, ctx, {"search_space": space, "seed": ctx.seed})


def _random(ctx: StrategyContext) -> S.BaseSampler:
    return pass_options(S.RandomSampler, ctx, {"seed": ctx.seed})


def _tpe(ctx: StrategyContext) -> S.BaseSampler:
    return pass_options(S.TPESampler, ctx, {"seed": ctx.seed})


def _nsga2(ctx: StrategyContext) -> S.BaseSampler:
    return pass_options(S.NSGAIISampler, ctx, {"seed": ctx.seed})


def _nsga3(ctx: StrategyContext) -> S.BaseSampler:
    return pass_options(S.NSGAIIISampler, ctx, {"seed": ctx.seed})


def _qmc(ctx: StrategyContext) -> S.BaseSampler:
    # Sobol points need numeric parameters: the space is offered as cheapest-first indices.
    return pass_options(S.QMCSampler, ctx, {"seed": ctx.seed})


def _gp(ctx: StrategyContext) -> S.BaseSampler:
    return pass_options(S.GPSampler, ctx, {"seed": ctx.seed})


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
    ),
    Strategy(
        "nsga2",
        _nsga2,
        "Optuna NSGAIISampler (genetic, multi-objective)",
        aliases=("nsga-ii",),
    ),
    Strategy(
        "nsga3",
        _nsga3,
        "Optuna NSGAIIISampler (reference-point genetic)",
        aliases=("nsga-iii",),
    ),
    Strategy(
        "qmc",
        _qmc,
        "Optuna QMCSampler (scrambled Sobol) over cheapest-first indices",
        encoding="ordinal",
    ),
    Strategy(
        "gp",
        _gp,
        "Optuna GPSampler (Gaussian-process Bayesian optimisation) over cheapest-first indices",
        encoding="ordinal",
    ),
)
