"""``[search]`` and ``[compare]``: validated, frozen, with errors that name the dotted key.

What can be checked without a graph is checked here, at load (strategy names, metric names,
directions, weights, constraint forms, choice lists). Node names and op kinds are checked when the
space meets the traced model, before any trial runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from quantsearch.config import check_keys, get_bool, get_float, get_int, get_str, get_table
from quantsearch.errors import ConfigError
from quantsearch.metrics.specs import TRIAL_METRICS
from quantsearch.passes.transform.modules import ROLES

__all__ = [
    "CompareConfig",
    "ConstraintSpec",
    "ObjectiveSpec",
    "SearchConfig",
    "SpaceSpec",
    "StrategySpec",
    "parse_compare_config",
    "parse_search_config",
]

SAME_AS = {"same_as_weight": "weight", "same_as_data_in": "data_in"}
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
class SpaceSpec:
    """``[search.space]``: per op kind or node name, per role, the list of format choices.

    ``choices[target][role]`` is a tuple of ``{"format": name, **fields}`` dicts, or the string
    ``"same_as_weight"`` / ``"same_as_data_in"``. ``dropped[target][role]`` counts cartesian
    combinations left out because they were invalid (``frac_width > width``).
    """

    by: Literal["type", "name"] = "type"
    choices: dict[str, dict[str, tuple[dict[str, Any], ...] | str]] = field(default_factory=dict)
    dropped: dict[str, dict[str, int]] = field(default_factory=dict)


@dataclass(frozen=True)
class SearchConfig:
    strategy: StrategySpec = field(default_factory=StrategySpec)
    space: SpaceSpec = field(default_factory=SpaceSpec)
    combine: Literal["weighted_sum", "pareto"] = "weighted_sum"
    objectives: tuple[ObjectiveSpec, ...] = ()
    constraints: tuple[ConstraintSpec, ...] = ()
    metrics: tuple[str, ...] = DEFAULT_RECORDED  # recorded for every trial besides the above
    n_trials: int = 100
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


# ---------------------------------------------------------------------------------------------


def _spec(name: str, key: str) -> Any:
    """The metric's spec; an unknown name is a ConfigError naming ``key`` and the known ones."""
    from quantsearch.errors import MetricError
    from quantsearch.metrics import metric_names, metric_spec

    try:
        return metric_spec(name)
    except MetricError:
        raise ConfigError(
            f"{key}: unknown metric {name!r}; known metrics: {metric_names()} and top<k>_accuracy"
        ) from None


def _parse_strategy(raw: Any, key: str) -> StrategySpec:
    from quantsearch.search.strategies import STRATEGIES

    if isinstance(raw, str):
        return StrategySpec(STRATEGIES.canonical(raw, key=key), {})
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{key} must be a strategy name or a table (got {raw!r})")
    check_keys(raw, {"name", "options"}, key)
    name = get_str(raw, "name", key, "tpe") or "tpe"
    options = get_table(raw, "options", key)
    return StrategySpec(STRATEGIES.canonical(name, key=f"{key}.name"), options)


def _role_choices(
    raw: Any, key: str, default_format: tuple[str, ...]
) -> tuple[tuple[dict[str, Any], ...], int]:
    """Expand one role's choices into format-option dicts; return them and the dropped count."""
    from quantsearch.formats import make_format

    candidates: list[dict[str, Any]] = []
    if isinstance(raw, Mapping):
        fields = dict(raw)
        formats = fields.pop("format", list(default_format))
        if isinstance(formats, str):
            formats = [formats]
        lists: dict[str, list[Any]] = {}
        for f, v in fields.items():
            vals = v if isinstance(v, list) else [v]
            if not vals:
                raise ConfigError(f"{key}.{f} must not be an empty list")
            lists[f] = vals
        import itertools

        names = list(lists)
        for fmt in formats:
            for combo in itertools.product(*(lists[n] for n in names)):
                candidates.append({"format": fmt, **dict(zip(names, combo, strict=True))})
    elif isinstance(raw, list):
        if not raw:
            raise ConfigError(f"{key} must not be an empty list")
        for i, item in enumerate(raw):
            if isinstance(item, Mapping):
                d = dict(item)
                d.setdefault("format", default_format[0])
                explicit = [d]
            elif (
                isinstance(item, list)
                and len(item) == 2
                and all(isinstance(v, int) or v == "auto" for v in item)
            ):
                explicit = [
                    {"format": fmt, "width": item[0], "frac_width": item[1]}
                    for fmt in default_format
                ]
            else:
                raise ConfigError(
                    f"{key}[{i}] must be a [width, frac_width] pair or a table of fields (got {item!r})"
                )
            for cand in explicit:  # written out one by one: an impossible one is a mistake
                fields = {k: v for k, v in cand.items() if k != "format"}
                make_format(str(cand["format"]), fields, key=f"{key}[{i}]")
            candidates.extend(explicit)
    else:
        raise ConfigError(
            f"{key} must be a table of field lists, a list of [width, frac_width] pairs, "
            f"'same_as_weight' or 'same_as_data_in' (got {raw!r})"
        )
    kept: list[dict[str, Any]] = []
    dropped = 0
    seen: set[str] = set()
    for cand in candidates:
        fields = {k: v for k, v in cand.items() if k != "format"}
        w, fw = fields.get("width"), fields.get("frac_width")
        if isinstance(w, int) and isinstance(fw, int) and fw > w:
            dropped += 1  # the cartesian product of width x frac_width holds impossible pairs
            continue
        make_format(str(cand["format"]), fields, key=key)  # validates: raises ConfigError
        ident = repr(sorted(cand.items()))
        if ident not in seen:
            seen.add(ident)
            kept.append(cand)
    if not kept:
        raise ConfigError(
            f"{key}: no valid choice is left after dropping {dropped} with frac_width > width"
        )
    return tuple(kept), dropped


def _parse_space(raw: Mapping[str, Any], key: str) -> SpaceSpec:
    check_keys(raw, {"by", "choices", "format"}, key)
    by = get_str(raw, "by", key, "type") or "type"
    if by not in ("type", "name"):
        raise ConfigError(f"{key}.by must be one of ['name', 'type'] (got {by!r})")
    fmt_raw = raw.get("format", ["fixed"])
    default_format = tuple([fmt_raw] if isinstance(fmt_raw, str) else fmt_raw)
    choices_raw = get_table(raw, "choices", key)
    if not choices_raw:
        raise ConfigError(f"{key}.choices must name at least one op kind or node")
    choices: dict[str, dict[str, tuple[dict[str, Any], ...] | str]] = {}
    dropped: dict[str, dict[str, int]] = {}
    for target, table in choices_raw.items():
        tkey = f"{key}.choices.{target}"
        if not isinstance(table, Mapping):
            raise ConfigError(f"{tkey} must be a table of roles (got {table!r})")
        check_keys(table, {*ROLES, "format"}, tkey)
        t_fmt = table.get("format", list(default_format))
        t_formats = tuple([t_fmt] if isinstance(t_fmt, str) else t_fmt)
        if not t_formats:
            raise ConfigError(f"{tkey}.format must not be an empty list")
        roles: dict[str, tuple[dict[str, Any], ...] | str] = {}
        for role in ROLES:
            if role not in table:
                continue
            value = table[role]
            if isinstance(value, str):
                if value not in SAME_AS:
                    raise ConfigError(
                        f"{tkey}.{role} must be a list of choices or one of {sorted(SAME_AS)} (got {value!r})"
                    )
                if SAME_AS[value] == role or SAME_AS[value] not in table:
                    raise ConfigError(
                        f"{tkey}.{role} = {value!r} needs {tkey}.{SAME_AS[value]} to be set"
                    )
                roles[role] = value
            else:
                roles[role], n = _role_choices(value, f"{tkey}.{role}", t_formats)
                if n:
                    dropped.setdefault(target, {})[role] = n
        if not roles:
            raise ConfigError(f"{tkey} must give choices for at least one of {list(ROLES)}")
        choices[target] = roles
    return SpaceSpec(by=by, choices=choices, dropped=dropped)  # type: ignore[arg-type]


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
    from quantsearch.metrics import METRICS

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
    "seed", "study", "storage", "cache", "stop_when_exhausted", "torch_threads",
}  # fmt: skip


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
    space = _parse_space(get_table(raw, "space", key), f"{key}.space")
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
    return SearchConfig(
        strategy=strategy,
        space=space,
        combine=combine,  # type: ignore[arg-type]
        objectives=objectives,
        constraints=constraints,
        metrics=tuple(metrics_raw),
        n_trials=get_int(raw, "n_trials", key, d.n_trials, minimum=1) or d.n_trials,
        timeout=timeout,
        n_jobs=get_int(raw, "n_jobs", key, 1, minimum=1) or 1,
        seed=get_int(raw, "seed", key, seed) or 0,
        study=get_str(raw, "study", key),
        storage=get_str(raw, "storage", key),
        cache=get_bool(raw, "cache", key, True),
        stop_when_exhausted=get_bool(raw, "stop_when_exhausted", key, True),
        torch_threads=get_int(raw, "torch_threads", key, 1, minimum=1),
    )


def parse_compare_config(raw: Mapping[str, Any], key: str = "compare") -> CompareConfig:
    """Validate a ``[compare]`` table."""
    from quantsearch.search.strategies import STRATEGIES

    d = CompareConfig()
    check_keys(raw, set(CompareConfig.__dataclass_fields__), key)
    strategies = raw.get("strategies", list(d.strategies))
    if not isinstance(strategies, list) or not strategies:
        raise ConfigError(
            f"{key}.strategies must be a non-empty list of names (got {strategies!r})"
        )
    names = tuple(STRATEGIES.canonical(s, key=f"{key}.strategies") for s in strategies)
    budgets = raw.get("budgets", [])
    if not isinstance(budgets, list) or not all(isinstance(b, int) and b > 0 for b in budgets):
        raise ConfigError(f"{key}.budgets must be a list of positive integers (got {budgets!r})")
    return CompareConfig(
        strategies=names,
        seeds=get_int(raw, "seeds", key, d.seeds, minimum=1) or d.seeds,
        n_trials=get_int(raw, "n_trials", key, None, minimum=1),
        ground_truth_budget=get_int(
            raw, "ground_truth_budget", key, d.ground_truth_budget, minimum=0
        )
        or 0,
        tolerance=get_float(raw, "tolerance", key, 0.0, minimum=0.0) or 0.0,
        budgets=tuple(budgets),
        shared_cache=get_bool(raw, "shared_cache", key, True),
    )
