"""Every bad [search] table gives one ConfigError naming the dotted key."""

from __future__ import annotations

from typing import Any

import pytest

from quantsearch.errors import ConfigError
from quantsearch.search.config import parse_compare_config, parse_search_config

SPACE = {"choices": {"linear": {"weight": [[8, 4], [4, 2]]}}}
OBJ = {"accuracy": {"direction": "maximize"}}


def parse(**over: Any) -> Any:
    raw: dict[str, Any] = {"space": SPACE, "objectives": OBJ}
    raw.update(over)
    return parse_search_config(raw)


@pytest.mark.parametrize(
    ("over", "match"),
    [
        (
            {"strategy": "tpee"},
            r"search\.strategy: got 'tpee', allowed: one of \['brute_force', .*'tpe'\]",
        ),
        (
            {"strategy": {"name": "nsga4"}},
            r"search\.strategy\.name: got 'nsga4', allowed: one of \[",
        ),
        (
            {"strategy": {"name": "tpe", "option": {}}},
            r"search\.strategy\.option: got an unknown key, allowed: the keys of search\.strategy: ",
        ),
        (
            {"n_trial": 5},
            r"search\.n_trial: got an unknown key, allowed: the keys of search: \[.*'n_trials'",
        ),
        ({"n_trials": 0}, r"search\.n_trials: got 0, allowed: an integer in \[1, 2147483647\]"),
        (
            {"n_trials": "ten"},
            r"search\.n_trials: got 'ten', allowed: an integer in \[1, 2147483647\]",
        ),
        (
            {"objectives": {"acuracy": {}}},
            r"search\.objectives: got an unknown metric 'acuracy', allowed: one of \[",
        ),
        (
            {"objectives": {"accuracy": {"direction": "up"}}},
            r"search\.objectives\.accuracy\.direction: got 'up', allowed: one of \['maximize', 'minimize'\]",
        ),
        (
            {"objectives": {"accuracy": {"weight": -1}}},
            r"search\.objectives\.accuracy\.weight: got -1\.0, allowed: a number >= 0 \(the direction gives the sign\)",
        ),
        (
            {"objectives": {"accuracy": {}, "combine": "sum"}},
            r"search\.objectives\.combine: got 'sum', allowed: one of \['pareto', 'weighted_sum'\]",
        ),
        (
            {"objectives": {"combine": "pareto", "accuracy": {}}},
            r"^search\.objectives: got 1 objective with combine = 'pareto', allowed: at least two$",
        ),
        (
            {"objectives": {}},
            r"^search\.objectives: got no metric, allowed: at least one, e\.g\. accuracy = ",
        ),
        (
            {"constraints": {"accuracy_drop": {"min": 0.1}}},
            r"search\.constraints\.accuracy_drop: got an unknown bound 'min', allowed: one of \[",
        ),
        (
            {"constraints": {"bitopz": {"max": 1}}},
            r"search\.constraints: got an unknown metric 'bitopz', allowed: one of \[",
        ),
        (
            {"constraints": {"bitops": {"max_ratio": 0.2, "max": 3}}},
            r"search\.constraints\.bitops: got \{'max_ratio': 0\.2, 'max': 3\}, allowed: a table with exactly one of \[",
        ),
        (
            {"metrics": ["accuracy", "latency_s"]},
            r"search\.metrics: got an unknown metric 'latency_s', allowed: one of \[",
        ),
        (
            {"space": {"choices": {"linear": {"weight": []}}}},
            r"search\.space\.choices\.linear\.weight: got an empty list, allowed: a non-empty list of choices",
        ),
        (
            {"space": {"choices": {"linear": {"weight": {"width": []}}}}},
            r"search\.space\.choices\.linear\.weight\.width: got an empty list, allowed: a value or a non-empty list",
        ),
        (
            {"space": {"choices": {"linear": {"wieght": [[8, 4]]}}}},
            r"search\.space\.choices\.linear\.wieght: got an unknown key, allowed: ",
        ),
        (
            {"space": {"by": "layer", "choices": SPACE["choices"]}},
            r"search\.space\.by: got 'layer', allowed: one of \['name', 'type'\]",
        ),
        (
            {"space": {"choices": {}}},
            r"search\.space\.choices: got no entry, allowed: at least one op kind or node",
        ),
        (
            {"space": {"choices": {"linear": {"weight": [[8, 4], [4, 8]]}}}},
            r"search\.space\.choices\.linear\.weight\[1\]\.frac_width: got 8, allowed: an integer in \[0, width\] \(width = 4\)",
        ),
        (
            {"space": {"choices": {"linear": {"weight": {"width": [4], "frac_width": [6, 8]}}}}},
            r"search\.space\.choices\.linear\.weight: got 2 choices, each with frac_width > width, allowed: at least one with frac_width <= width",
        ),
        (
            {"space": {"choices": {"linear": {"weight": [[8]]}}}},
            r"search\.space\.choices\.linear\.weight\[0\]: got \[8\], allowed: a \[width, frac_width\] pair",
        ),
        (
            {"space": {"choices": {"linear": {"bias": "same_as_weight"}}}},
            r"search\.space\.choices\.linear\.bias: got 'same_as_weight', allowed: 'same_as_weight' only where search\.space\.choices\.linear\.weight is set",
        ),
        ({"space": {"choices": {"linear": {"weight": [[8, 4]], "format": ["fixd"]}}}}, r"fixd"),
        (
            {"group_commit_ms": -1},
            r"^search\.group_commit_ms: got -1\.0, allowed: a finite number in \[0\.0, 10000\]$",
        ),
        (
            {"group_commit_ms": 10_001},
            r"^search\.group_commit_ms: got 10001\.0, allowed: a finite number in \[0\.0, 10000\]$",
        ),
        (
            {"group_commit_ms": "5"},
            r"^search\.group_commit_ms: got '5', allowed: a finite number in \[0\.0, 10000\]$",
        ),
        (
            {"db_retry_s": 86_401},
            r"^search\.db_retry_s: got 86401\.0, allowed: a finite number in \[0\.0, 86400\]$",
        ),
        (
            {"db_retry_s": float("inf")},
            r"^search\.db_retry_s: got inf, allowed: a finite number in \[0\.0, 86400\]$",
        ),
        (
            {"device": "tpu"},
            r"^search\.device: got 'tpu', allowed: 'auto', 'cpu', 'cuda' or 'cuda:N'$",
        ),
        ({"device": 0}, r"^search\.device: got 0, allowed: a string$"),
    ],
)
def test_bad_search_config(over: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match) as info:
        parse(**over)
    assert "\n" not in str(info.value)


def test_group_commit_and_retry_bounds_are_inclusive() -> None:
    assert parse(group_commit_ms=0, db_retry_s=0).group_commit_ms == 0.0
    cfg = parse(group_commit_ms=10_000, db_retry_s=86_400)
    assert (cfg.group_commit_ms, cfg.db_retry_s) == (10_000.0, 86_400.0)


def test_continuous_ranges_are_not_accepted() -> None:
    with pytest.raises(ConfigError, match=r"search\.space\.choices\.linear\.weight"):
        parse(space={"choices": {"linear": {"weight": {"width": {"low": 2, "high": 8}}}}})


def test_alias_and_options_pass_through() -> None:
    cfg = parse(strategy={"name": "brute-force"})
    assert cfg.strategy.name == "brute_force"
    cfg = parse(strategy={"name": "tpe", "options": {"n_startup_trials": 3, "multivariate": True}})
    assert cfg.strategy.options == {"n_startup_trials": 3, "multivariate": True}


def test_raw_is_not_mutated() -> None:
    import copy

    raw = {
        "space": {"choices": {"linear": {"weight": {"width": [8, 4], "frac_width": [2, 6]}}}},
        "objectives": OBJ,
    }
    before = copy.deepcopy(raw)
    cfg = parse_search_config(raw)
    assert raw == before
    assert cfg.space.dropped == {"linear": {"weight": 1}}  # (4, 6) dropped


def test_compare_config_errors() -> None:
    with pytest.raises(
        ConfigError, match=r"compare\.strategies: got 'annealing', allowed: one of \["
    ):
        parse_compare_config({"strategies": ["tpe", "annealing"]})
    with pytest.raises(
        ConfigError, match=r"compare\.seed: got an unknown key, allowed: the keys of compare: "
    ):
        parse_compare_config({"seed": 3})
    assert parse_compare_config({"strategies": ["brute-force"]}).strategies == ("brute_force",)
