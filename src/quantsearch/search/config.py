"""``[search]`` and ``[compare]``: validated, frozen, with errors that name the dotted key.

What can be checked without a graph is checked here, at load (strategy names, metric names,
directions, weights, constraint forms) and, for ``[search.space]``, by
:func:`quantsearch.search.space.parse_space`. Node names and op kinds are checked when the
space meets the traced model, before any trial runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from quantsearch.errors import ConfigError, MetricError
from quantsearch.metrics.specs import METRICS, TRIAL_METRICS, MetricSpec, metric_names, metric_spec
from quantsearch.search.space import SpaceSpec, parse_space
from quantsearch.validate import (
    COUNT_MAX,
    SEED_MAX,
    check_keys,
    get_bool,
    get_float,
    get_int,
    get_str,
    get_table,
    study_name,
)

__all__ = [
    "CompareConfig",
    "ConstraintSpec",
    "FidelitySpec",
    "ObjectiveSpec",
    "SearchConfig",
    "StrategySpec",
    "parse_compare_config",
    "parse_search_config",
]

DEFAULT_RECORDED = TRIAL_METRICS


@dataclass(frozen=True)
class StrategySpec:
    name: str = "tpe"
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ObjectiveSpec:
    """One metric in the objective. ``weight`` is used by ``weighted_sum`` only."""

    metric: str
    direction: Literal["maximize", "minimize"]
    weight: float = 1.0
    relative_to_baseline: bool = False


@dataclass(frozen=True)
class ConstraintSpec:
    """``value(trial) <op> bound``. ``kind`` says how ``value`` derives from the metric.

    kinds: ``max``/``min`` (the metric itself), ``max_ratio``/``min_ratio`` (metric / baseline),
    ``drop`` (baseline - metric, bounded above; ``accuracy_drop = { max = 0.01 }``) and
    ``increase`` (metric - baseline, bounded above; ``loss_increase = { max = 0.1 }``).
    """

    name: str  # the key as written, e.g. "accuracy_drop"
    metric: str
    kind: Literal["max", "min", "max_ratio", "min_ratio", "drop", "increase"]
    bound: float


@dataclass(frozen=True)
class FidelitySpec:
    """``[search] fidelity``: how much validation data a trial is measured on.

    ``full``: every trial sees the whole split. ``successive_halving``: a trial is measured on
    the first ``min_samples`` samples, then ``eta`` times as many, ... up to the whole split,
    and is pruned at a rung where a one-sided Clopper-Pearson bound at ``confidence`` says its
    accuracy cannot meet a constraint or its objective cannot beat the incumbent
    (:mod:`quantsearch.search.fidelity`). ``min_samples = None``: the split's size / eta^2.
    """

    method: Literal["full", "successive_halving"] = "full"
    min_samples: int | None = None
    eta: int = 4
    confidence: float = 0.95

    def identity(self) -> dict[str, Any]:
        """What a resumed study must match (nothing at ``full``: older studies still resume)."""
        if self.method == "full":
            return {}
        return {"fidelity": [self.method, self.min_samples, self.eta, self.confidence]}


@dataclass(frozen=True)
class SearchConfig:
    strategy: StrategySpec = field(default_factory=StrategySpec)
    space: SpaceSpec = field(default_factory=SpaceSpec)
    combine: Literal["weighted_sum", "pareto"] = "weighted_sum"
    objectives: tuple[ObjectiveSpec, ...] = ()
    constraints: tuple[ConstraintSpec, ...] = ()
    metrics: tuple[str, ...] = DEFAULT_RECORDED  # recorded for every trial besides the above
    n_trials: int = 100
    # The study also ends after this many distinct evaluations (cache hits and pre-checked
    # trials are not charged); None: no such budget.
    n_evaluations: int | None = None
    fidelity: FidelitySpec = field(default_factory=FidelitySpec)
    timeout: float | None = None
    n_jobs: int = 1
    seed: int = 0
    study: str | None = None
    storage: str | None = None
    cache: bool = True
    stop_when_exhausted: bool = True
    # Intra-op threads while trials run: small models evaluate fastest on one thread, and
    # parallel trials (n_jobs) should not fight over cores. None leaves torch's setting.
    torch_threads: int | None = 1
    # Group commit of the journal default (one process): finished trials reach the disk
    # together within this many milliseconds; a kill -9 loses at most that much. 0: each write.
    group_commit_ms: float = 50.0
    # RDB storages: seconds a worker rides out a lost database connection (a restart) before
    # it stops in one line (quantsearch.search.reconnect).
    db_retry_s: float = 60.0

    @property
    def group_commit_s(self) -> float:
        return self.group_commit_ms / 1000.0

    @property
    def all_metrics(self) -> tuple[str, ...]:
        """Every metric a trial computes: objectives, constraints, then recorded extras."""
        names: list[str] = []
        for n in (
            *(o.metric for o in self.objectives),
            *(c.metric for c in self.constraints),
            *self.metrics,
        ):
            if n not in names:
                names.append(n)
        return tuple(names)


@dataclass(frozen=True)
class CompareConfig:
    strategies: tuple[str, ...] = ("brute_force", "tpe", "random", "nsga2")
    seeds: int = 5
    n_trials: int | None = None  # None: the search's n_trials
    ground_truth_budget: int = 4096  # enumerate the space when it has at most this many points
    tolerance: float = 0.0  # "reached the optimum" means within this of it
    budgets: tuple[int, ...] = ()  # simple regret at these trial counts; () = automatic
    shared_cache: bool = True
    # Budget every run in distinct evaluations instead of trials (equal cost per strategy).
    n_evaluations: int | None = None


# ---------------------------------------------------------------------------------------------


def _spec(name: str, key: str) -> MetricSpec:
    """The metric's spec; an unknown name is a ConfigError naming ``key`` and the known ones."""
    try:
        return metric_spec(name)
    except MetricError:
        raise ConfigError(
            f"{key}: unknown metric {name!r}; known metrics: {metric_names()} and top<k>_accuracy"
        ) from None


def _canonical_strategy(name: str, key: str) -> str:
    # The registry lives with the samplers, which import optuna: imported here, not at the top,
    # so loading a config without [search] (and `quantsearch --help`) does not pay for optuna.
    from quantsearch.search.strategies import STRATEGIES

    return STRATEGIES.canonical(name, key=key)


def _parse_strategy(raw: Any, key: str) -> StrategySpec:
    if isinstance(raw, str):
        return StrategySpec(_canonical_strategy(raw, key), {})
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{key} must be a strategy name or a table (got {raw!r})")
    check_keys(raw, {"name", "options"}, key)
    name = get_str(raw, "name", key, "tpe") or "tpe"
    options = get_table(raw, "options", key)
    return StrategySpec(_canonical_strategy(name, f"{key}.name"), options)


def _parse_objectives(raw: Mapping[str, Any], key: str) -> tuple[str, tuple[ObjectiveSpec, ...]]:
    combine = get_str(raw, "combine", key, "weighted_sum") or "weighted_sum"
    if combine not in ("weighted_sum", "pareto"):
        raise ConfigError(
            f"{key}.combine must be one of ['pareto', 'weighted_sum'] (got {combine!r})"
        )
    out: list[ObjectiveSpec] = []
    for name, table in raw.items():
        if name == "combine":
            continue
        okey = f"{key}.{name}"
        spec = _spec(name, key)
        if isinstance(table, (int, float)) and not isinstance(table, bool):
            table = {"weight": table}
        if not isinstance(table, Mapping):
            raise ConfigError(
                f"{okey} must be a table like {{ direction = 'maximize', weight = 1.0 }} (got {table!r})"
            )
        check_keys(table, {"direction", "weight", "relative_to_baseline"}, okey)
        direction = get_str(table, "direction", okey, spec.direction)
        if direction not in ("maximize", "minimize"):
            raise ConfigError(
                f"{okey}.direction must be one of ['maximize', 'minimize'] (got {direction!r})"
            )
        weight = get_float(table, "weight", okey, 1.0)
        assert weight is not None
        if weight < 0:
            raise ConfigError(
                f"{okey}.weight must be >= 0; the direction gives the sign (got {weight})"
            )
        out.append(
            ObjectiveSpec(
                name,
                direction,  # type: ignore[arg-type]
                weight,
                get_bool(table, "relative_to_baseline", okey, False),
            )
        )
    if not out:
        raise ConfigError(
            f"{key} must name at least one metric, e.g. accuracy = {{ direction = 'maximize' }}"
        )
    if combine == "pareto" and len(out) < 2:
        raise ConfigError(
            f"{key}: combine = 'pareto' needs at least two objectives (got {len(out)})"
        )
    return combine, tuple(out)


_CONSTRAINT_SUFFIXES = {"_drop": "drop", "_increase": "increase"}


def _parse_constraints(raw: Mapping[str, Any], key: str) -> tuple[ConstraintSpec, ...]:
    out: list[ConstraintSpec] = []
    for name, table in raw.items():
        ckey = f"{key}.{name}"
        metric, derived = name, None
        for suffix, kind in _CONSTRAINT_SUFFIXES.items():
            if name.endswith(suffix) and name not in METRICS:
                metric, derived = name[: -len(suffix)], kind
        _spec(metric, key)
        if not isinstance(table, Mapping) or len(table) != 1:
            allowed = ["max"] if derived else ["max", "max_ratio", "min", "min_ratio"]
            raise ConfigError(
                f"{ckey} must be a table with exactly one of {allowed} (got {table!r})"
            )
        (form,) = table
        allowed_forms = {"max"} if derived else {"max", "min", "max_ratio", "min_ratio"}
        if form not in allowed_forms:
            raise ConfigError(f"{ckey}: unknown bound {form!r}; allowed: {sorted(allowed_forms)}")
        value = get_float(table, form, ckey)
        assert value is not None
        kind = derived or form
        out.append(ConstraintSpec(name, metric, kind, value))  # type: ignore[arg-type]
    return tuple(out)


_SEARCH_KEYS = {
    "strategy", "space", "objectives", "constraints", "metrics", "n_trials", "timeout", "n_jobs",
    "seed", "study", "storage", "cache", "stop_when_exhausted", "torch_threads", "group_commit_ms",
    "n_evaluations", "fidelity", "db_retry_s",
}  # fmt: skip

# With n_evaluations set and n_trials not given, trials are capped at this many per evaluation:
# a sampler that only repeats configs (or only proposes pre-checked ones) must still stop.
TRIALS_PER_EVALUATION_CAP = 20


def _parse_fidelity(raw: Any, key: str) -> FidelitySpec:
    """``fidelity = "successive_halving"`` or a table ``{ method, min_samples, eta, confidence }``."""
    methods = ["full", "successive_halving"]
    if raw is None:
        return FidelitySpec()
    if isinstance(raw, str):
        raw = {"method": raw}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{key} must be one of {methods} or a table (got {raw!r})")
    check_keys(raw, {"method", "min_samples", "eta", "confidence"}, key)
    method = get_str(raw, "method", key, "successive_halving")
    if method not in methods:
        raise ConfigError(f"{key}.method must be one of {methods} (got {method!r})")
    confidence = get_float(raw, "confidence", key, 0.95)
    assert confidence is not None
    if not 0.5 <= confidence < 1:
        raise ConfigError(f"{key}.confidence must satisfy 0.5 <= confidence < 1 (got {confidence})")
    return FidelitySpec(
        method,  # type: ignore[arg-type]
        get_int(raw, "min_samples", key, None, minimum=1),
        get_int(raw, "eta", key, 4, minimum=2) or 4,
        confidence,
    )


def parse_search_config(raw: Mapping[str, Any], key: str = "search", seed: int = 0) -> SearchConfig:
    """Validate a ``[search]`` table. Does not mutate ``raw``.

    Example:
        >>> cfg = parse_search_config({
        ...     "strategy": "brute-force",
        ...     "space": {"choices": {"linear": {"weight": [[8, 4], [4, 2]]}}},
        ...     "objectives": {"accuracy": {"direction": "maximize"}},
        ... })
        >>> cfg.strategy.name, len(cfg.space.choices["linear"]["weight"])
        ('brute_force', 2)
    """
    check_keys(raw, _SEARCH_KEYS, key)
    d = SearchConfig()
    strategy = _parse_strategy(raw.get("strategy", "tpe"), f"{key}.strategy")
    if "space" not in raw:
        raise ConfigError(f"{key}.space is required (a table with choices per op kind or node)")
    space = parse_space(get_table(raw, "space", key), f"{key}.space")
    if "objectives" not in raw:
        raise ConfigError(
            f"{key}.objectives is required, e.g. accuracy = {{ direction = 'maximize' }}"
        )
    combine, objectives = _parse_objectives(get_table(raw, "objectives", key), f"{key}.objectives")
    constraints = _parse_constraints(get_table(raw, "constraints", key), f"{key}.constraints")
    metrics_raw = raw.get("metrics", list(DEFAULT_RECORDED))
    if not isinstance(metrics_raw, list) or not all(isinstance(m, str) for m in metrics_raw):
        raise ConfigError(f"{key}.metrics must be a list of metric names (got {metrics_raw!r})")
    for m in metrics_raw:
        _spec(m, f"{key}.metrics")
    timeout = get_float(raw, "timeout", key, None, positive=True)
    n_evaluations = get_int(raw, "n_evaluations", key, None, minimum=1, maximum=COUNT_MAX)
    n_trials = get_int(raw, "n_trials", key, None, minimum=1, maximum=COUNT_MAX)
    if n_trials is None:
        n_trials = (
            d.n_trials if n_evaluations is None else TRIALS_PER_EVALUATION_CAP * n_evaluations
        )
    return SearchConfig(
        strategy=strategy,
        space=space,
        combine=combine,  # type: ignore[arg-type]
        objectives=objectives,
        constraints=constraints,
        metrics=tuple(metrics_raw),
        n_trials=n_trials,
        n_evaluations=n_evaluations,
        fidelity=_parse_fidelity(raw.get("fidelity"), f"{key}.fidelity"),
        timeout=timeout,
        n_jobs=get_int(raw, "n_jobs", key, 1, minimum=1) or 1,
        seed=get_int(raw, "seed", key, seed, minimum=0, maximum=SEED_MAX) or 0,
        study=_study(raw, key),
        storage=get_str(raw, "storage", key),
        cache=get_bool(raw, "cache", key, True),
        stop_when_exhausted=get_bool(raw, "stop_when_exhausted", key, True),
        torch_threads=get_int(raw, "torch_threads", key, 1, minimum=1),
        group_commit_ms=_group_commit_ms(raw, key),
        db_retry_s=_db_retry_s(raw, key),
    )


def _study(raw: Mapping[str, Any], key: str) -> str | None:
    name = get_str(raw, "study", key)
    return None if name is None else study_name(name, f"{key}.study")


def _group_commit_ms(raw: Mapping[str, Any], key: str) -> float:
    value = get_float(raw, "group_commit_ms", key, SearchConfig.group_commit_ms, minimum=0.0)
    assert value is not None
    if not value <= 10_000:  # also refuses NaN and inf
        raise ConfigError(
            f"{key}.group_commit_ms must be a number of milliseconds in [0, 10000] (got {value!r})"
        )
    return value


def _db_retry_s(raw: Mapping[str, Any], key: str) -> float:
    value = get_float(raw, "db_retry_s", key, SearchConfig.db_retry_s, minimum=0.0)
    assert value is not None
    if not value <= 86_400:  # also refuses NaN and inf
        raise ConfigError(
            f"{key}.db_retry_s must be a number of seconds in [0, 86400] (got {value!r})"
        )
    return value


def parse_compare_config(raw: Mapping[str, Any], key: str = "compare") -> CompareConfig:
    """Validate a ``[compare]`` table."""
    d = CompareConfig()
    check_keys(raw, set(CompareConfig.__dataclass_fields__), key)
    strategies = raw.get("strategies", list(d.strategies))
    if not isinstance(strategies, list) or not strategies:
        raise ConfigError(
            f"{key}.strategies must be a non-empty list of names (got {strategies!r})"
        )
    names = tuple(_canonical_strategy(s, f"{key}.strategies") for s in strategies)
    budgets = raw.get("budgets", [])
    if not isinstance(budgets, list) or not all(isinstance(b, int) and b > 0 for b in budgets):
        raise ConfigError(f"{key}.budgets must be a list of positive integers (got {budgets!r})")
    return CompareConfig(
        strategies=names,
        seeds=get_int(raw, "seeds", key, d.seeds, minimum=1) or d.seeds,
        n_trials=get_int(raw, "n_trials", key, None, minimum=1, maximum=COUNT_MAX),
        ground_truth_budget=get_int(
            raw, "ground_truth_budget", key, d.ground_truth_budget, minimum=0
        )
        or 0,
        tolerance=get_float(raw, "tolerance", key, 0.0, minimum=0.0) or 0.0,
        budgets=tuple(budgets),
        shared_cache=get_bool(raw, "shared_cache", key, True),
        n_evaluations=get_int(raw, "n_evaluations", key, None, minimum=1, maximum=COUNT_MAX),
    )
