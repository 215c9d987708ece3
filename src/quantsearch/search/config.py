"""``[search]`` and ``[compare]``: validated, frozen, with errors that name the dotted key.

What can be checked without a graph is checked here, at load: strategy and metric names,
directions, weights, constraint forms, and ``[search.space]`` (:func:`~.space.parse_space`).
Node names and op kinds are checked when the space meets the traced model, before any trial runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from quantsearch.errors import ConfigError
from quantsearch.metrics.config import check_directions
from quantsearch.metrics.specs import TRIAL_METRICS
from quantsearch.paths import check_path_text, not_a_file
from quantsearch.search.goals import (
    DERIVED,
    ConstraintSpec,
    ObjectiveSpec,
    check_bound,
    check_metric,
    default_recorded,
    parse_constraints,
    parse_objectives,
)
from quantsearch.search.space import SpaceSpec, parse_space
from quantsearch.validate import (
    COUNT_MAX,
    SEED_MAX,
    SEEDS_MAX,
    THREADS_MAX,
    TIMEOUT_MAX,
    check_device,
    check_keys,
    check_unique,
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
    "check_evaluations",
    "check_storage_url",
    "parse_compare_config",
    "parse_search_config",
]

DEFAULT_RECORDED = TRIAL_METRICS


@dataclass(frozen=True)
class StrategySpec:
    name: str = "tpe"
    options: dict[str, Any] = field(default_factory=dict)


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
    # Where trials run: "auto" (CUDA when torch finds it, else the CPU), "cpu", "cuda:N".
    device: str = "auto"
    # Group commit of the journal default (one process): finished trials reach the disk
    # together within this many milliseconds; a kill -9 loses at most that much. 0: each write.
    group_commit_ms: float = 50.0
    # RDB storages: seconds a worker rides out a lost database connection (a restart) before
    # it stops in one line (quantsearch.search.reconnect).
    db_retry_s: float = 60.0
    # The metrics of a user's evaluate function, name -> direction: the declared ones and
    # those an objective gave a direction. Empty without an evaluate function.
    user_metrics: dict[str, str] = field(default_factory=dict)

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


def _canonical_strategy(name: str, key: str) -> str:
    # lazy: the registry imports optuna, which a config without [search] (and --help) need not
    from quantsearch.search.strategies import STRATEGIES

    return STRATEGIES.canonical(name, key=key)


def _parse_strategy(raw: Any, key: str) -> StrategySpec:
    if isinstance(raw, str):
        return StrategySpec(_canonical_strategy(raw, key), {})
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{key}: got {raw!r}, allowed: a strategy name or a table")
    check_keys(raw, {"name", "options"}, key)
    name = get_str(raw, "name", key, "tpe") or "tpe"
    options = get_table(raw, "options", key)
    return StrategySpec(_canonical_strategy(name, f"{key}.name"), options)


_SEARCH_KEYS = {
    "strategy", "space", "objectives", "constraints", "metrics", "n_trials", "timeout", "n_jobs",
    "seed", "study", "storage", "cache", "stop_when_exhausted", "torch_threads", "group_commit_ms",
    "n_evaluations", "fidelity", "db_retry_s", "device",
}  # fmt: skip

# Objective weights: relative, so 1e6 already lets one metric swamp the others; 1e308 times
# a BitOP count overflowed the weighted sum to -inf for every trial.
WEIGHT_MAX = 1e6

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
        raise ConfigError(f"{key}: got {raw!r}, allowed: one of {methods} or a table")
    check_keys(raw, {"method", "min_samples", "eta", "confidence"}, key)
    method = get_str(raw, "method", key, "successive_halving")
    if method not in methods:
        raise ConfigError(f"{key}.method: got {method!r}, allowed: one of {methods}")
    unused = sorted(set(raw) - {"method"})
    if method == "full" and unused:  # a full evaluation has no rungs: they were ignored
        raise ConfigError(
            f"{key}.{unused[0]}: got {raw[unused[0]]!r} with method = 'full', allowed: only "
            "with method = 'successive_halving'"
        )
    confidence = get_float(raw, "confidence", key, 0.95)
    assert confidence is not None
    if not 0.5 <= confidence < 1:
        raise ConfigError(f"{key}.confidence: got {confidence}, allowed: a number in [0.5, 1)")
    return FidelitySpec(
        method,  # type: ignore[arg-type]
        get_int(raw, "min_samples", key, None, minimum=1, maximum=COUNT_MAX),
        get_int(raw, "eta", key, 4, minimum=2, maximum=COUNT_MAX) or 4,
        confidence,
    )


def parse_search_config(
    raw: Mapping[str, Any],
    key: str = "search",
    seed: int = 0,
    *,
    user_metrics: Mapping[str, str] | None = None,
) -> SearchConfig:
    """Validate a ``[search]`` table. Does not mutate ``raw``.

    ``user_metrics``: ``None`` without a user evaluate function; with one, the declared
    directions of its metrics (``[metrics] directions``), possibly empty. Its metrics are then
    usable by name; by default a trial records them and the static trial metrics (the built-in
    quality metrics are for classification).

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
        raise ConfigError(f"{key}.space: got no value, allowed: a table of choices (required)")
    space = parse_space(get_table(raw, "space", key), f"{key}.space")
    if "objectives" not in raw:
        raise ConfigError(
            f"{key}.objectives: got no value, allowed: a table of objectives (required), e.g. "
            "accuracy = { direction = 'maximize' }"
        )
    user = None if user_metrics is None else check_directions(user_metrics, "evaluate_directions")
    objectives_raw = get_table(raw, "objectives", key)
    combine, objectives = parse_objectives(objectives_raw, f"{key}.objectives", user)
    for name, value in objectives_raw.items():
        weighted = not isinstance(value, Mapping) or "weight" in value  # `bitops = 2`: a weight
        if combine == "pareto" and name != "combine" and weighted:  # else ignored without a word
            raise ConfigError(
                f"{key}.objectives.{name}.weight: got {value!r} with combine = 'pareto', "
                "allowed: no weight (a Pareto search ranks by each objective, never a sum)"
            )
    for o in objectives:
        if o.weight > WEIGHT_MAX:  # x a cost in the billions: past float's range, every sum -inf
            raise ConfigError(
                f"{key}.objectives.{o.metric}.weight: got {o.weight}, allowed: at most "
                f"{WEIGHT_MAX:g} (weights are relative; the sum overflowed to -inf for every trial)"
            )
    if combine == "weighted_sum" and objectives and all(o.weight == 0 for o in objectives):
        raise ConfigError(
            f"{key}.objectives: got every weight 0, allowed: at least one weight > 0 (the "
            "weighted sum would be 0 for every config)"
        )
    constraints = parse_constraints(get_table(raw, "constraints", key), f"{key}.constraints", user)
    for c in constraints:
        check_bound(c, f"{key}.constraints.{c.name}.{'max' if c.kind in DERIVED else c.kind}")
    _check_strategy(strategy, combine, objectives, f"{key}.strategy")
    named = [o.metric for o in objectives] + [c.metric for c in constraints]
    metrics_raw = raw.get("metrics", list(default_recorded(user, named)))
    if not isinstance(metrics_raw, list) or not all(isinstance(m, str) for m in metrics_raw):
        raise ConfigError(f"{key}.metrics: got {metrics_raw!r}, allowed: a list of metric names")
    for m in metrics_raw:
        check_metric(m, f"{key}.metrics", user)
    check_unique(metrics_raw, f"{key}.metrics")
    fidelity = _parse_fidelity(raw.get("fidelity"), f"{key}.fidelity")
    if user is not None and fidelity.method != "full":
        raise ConfigError(
            f"{key}.fidelity: got {fidelity.method!r} with an evaluate function, allowed: "
            f"'full' (successive halving prunes on accuracy)"
        )
    timeout = get_float(raw, "timeout", key, None, positive=True, maximum=TIMEOUT_MAX)
    n_evaluations = get_int(raw, "n_evaluations", key, None, minimum=1, maximum=COUNT_MAX)
    n_trials = get_int(raw, "n_trials", key, None, minimum=1, maximum=COUNT_MAX)
    if n_trials is None:
        n_trials = (
            d.n_trials if n_evaluations is None else TRIALS_PER_EVALUATION_CAP * n_evaluations
        )
    check_evaluations(n_evaluations, n_trials, f"{key}.n_evaluations", f"{key}.n_trials")
    return SearchConfig(
        strategy=strategy,
        space=space,
        combine=combine,  # type: ignore[arg-type]
        objectives=objectives,
        constraints=constraints,
        metrics=tuple(metrics_raw),
        n_trials=n_trials,
        n_evaluations=n_evaluations,
        fidelity=fidelity,
        timeout=timeout,
        n_jobs=get_int(raw, "n_jobs", key, 1, minimum=1, maximum=THREADS_MAX) or 1,
        seed=get_int(raw, "seed", key, seed, minimum=0, maximum=SEED_MAX) or 0,
        study=_study(raw, key),
        storage=_storage(raw, key),
        cache=get_bool(raw, "cache", key, True),
        stop_when_exhausted=get_bool(raw, "stop_when_exhausted", key, True),
        torch_threads=get_int(raw, "torch_threads", key, 1, minimum=1, maximum=THREADS_MAX),
        device=check_device(get_str(raw, "device", key, "auto") or "auto", f"{key}.device"),
        group_commit_ms=_bounded(raw, "group_commit_ms", key, SearchConfig.group_commit_ms, 10_000),
        db_retry_s=_bounded(raw, "db_retry_s", key, SearchConfig.db_retry_s, 86_400),
        user_metrics=dict(user or {}),
    )


def _check_strategy(
    strategy: StrategySpec, combine: str, objectives: tuple[ObjectiveSpec, ...], key: str
) -> None:
    """The strategy's options, checked now that the study's number of objectives is known."""
    from quantsearch.search.strategies import STRATEGIES  # lazy: as _canonical_strategy

    n_objectives = len(objectives) if combine == "pareto" else 1
    STRATEGIES.get(strategy.name).check_options(strategy.options, f"{key}.options", n_objectives)


def _study(raw: Mapping[str, Any], key: str) -> str | None:
    name = get_str(raw, "study", key)
    return None if name is None else study_name(name, f"{key}.study")


def check_evaluations(n_evaluations: int | None, n_trials: int, key: str, trials_key: str) -> None:
    """Refuse an evaluation budget the trial budget never reaches: every evaluation is a
    trial, so ``n_evaluations`` past ``n_trials`` is a stop that cannot happen.

    Example:
        >>> check_evaluations(10, 2, "search.n_evaluations", "search.n_trials")
        Traceback (most recent call last):
        ...
        quantsearch.errors.ConfigError: search.n_evaluations: got 10 with search.n_trials = 2, allowed: at most 2 (every evaluation is a trial)
    """
    if n_evaluations is not None and n_evaluations > n_trials:
        raise ConfigError(
            f"{key}: got {n_evaluations} with {trials_key} = {n_trials}, allowed: at most "
            f"{n_trials} (every evaluation is a trial)"
        )


def _storage(raw: Mapping[str, Any], key: str) -> str | None:
    url = get_str(raw, "storage", key)
    return None if url is None else check_storage_url(url, f"{key}.storage")


def check_storage_url(url: str, key: str) -> str:
    """An RDB URL that SQLAlchemy can parse and that names a database which outlives the
    command (the database is reached when the study opens).

    An in-memory SQLite database (``sqlite://``, ``sqlite:///:memory:``) is refused: every
    trial would be lost at exit, and a second connection sees an empty database.

    Example:
        >>> check_storage_url("sqlite://", "--storage")
        Traceback (most recent call last):
        ...
        quantsearch.errors.ConfigError: --storage: got 'sqlite://' (an in-memory database: every trial is lost at exit), allowed: a database file or server, such as 'sqlite:///study.db'
    """
    # lazy: SQLAlchemy is Optuna's dependency, needed only by a config that names a database
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        raise ConfigError(
            f"{key}: got {url!r}, allowed: an RDB URL such as "
            "'postgresql://user@host/db' or 'sqlite:///study.db'"
        ) from None
    database = parsed.database or ""
    memory = database in ("", ":memory:") or "mode=memory" in database
    if parsed.get_backend_name() == "sqlite" and (memory or parsed.query.get("mode") == "memory"):
        raise ConfigError(
            f"{key}: got {url!r} (an in-memory database: every trial is lost at exit), "
            "allowed: a database file or server, such as 'sqlite:///study.db'"
        )
    if parsed.get_backend_name() == "sqlite":
        check_path_text(database, key)  # a name past 255 bytes: every stat() raised OSError
        if not_a_file(Path(database)) == "a link to nothing":
            raise ConfigError(  # SQLite made the database where the link pointed, outside
                f"{key}: got {database!r}, a link to nothing, allowed: a database file or a new name"
            )
    return url


def _bounded(raw: Mapping[str, Any], name: str, key: str, default: float, maximum: float) -> float:
    """``raw[name]`` (default ``default``), a finite number in ``[0, maximum]``."""
    value = get_float(raw, name, key, default, minimum=0.0, maximum=maximum)
    assert value is not None
    return value


def parse_compare_config(raw: Mapping[str, Any], key: str = "compare") -> CompareConfig:
    """Validate a ``[compare]`` table."""
    d = CompareConfig()
    check_keys(raw, set(CompareConfig.__dataclass_fields__), key)
    strategies = raw.get("strategies", list(d.strategies))
    if not isinstance(strategies, list) or not strategies:
        raise ConfigError(
            f"{key}.strategies: got {strategies!r}, allowed: a non-empty list of names"
        )
    for s in strategies:
        if not isinstance(s, str):
            raise ConfigError(f"{key}.strategies: got {s!r}, allowed: strategy names (strings)")
    names = tuple(_canonical_strategy(s, f"{key}.strategies") for s in strategies)
    check_unique(names, f"{key}.strategies")  # an alias counts as its strategy
    budgets = raw.get("budgets", [])
    if not isinstance(budgets, list) or not all(
        isinstance(b, int) and not isinstance(b, bool) and 0 < b <= COUNT_MAX for b in budgets
    ):
        raise ConfigError(
            f"{key}.budgets: got {budgets!r}, allowed: a list of integers in [1, {COUNT_MAX}]"
        )
    check_unique(budgets, f"{key}.budgets")
    n_trials = get_int(raw, "n_trials", key, None, minimum=1, maximum=COUNT_MAX)
    n_evaluations = get_int(raw, "n_evaluations", key, None, minimum=1, maximum=COUNT_MAX)
    if n_trials is not None:
        check_evaluations(n_evaluations, n_trials, f"{key}.n_evaluations", f"{key}.n_trials")
    return CompareConfig(
        strategies=names,
        seeds=get_int(raw, "seeds", key, d.seeds, minimum=1, maximum=SEEDS_MAX) or d.seeds,
        n_trials=n_trials,
        ground_truth_budget=get_int(
            raw, "ground_truth_budget", key, d.ground_truth_budget, minimum=0, maximum=COUNT_MAX
        )
        or 0,
        tolerance=get_float(raw, "tolerance", key, 0.0, minimum=0.0) or 0.0,
        budgets=tuple(budgets),
        shared_cache=get_bool(raw, "shared_cache", key, True),
        n_evaluations=n_evaluations,
    )
