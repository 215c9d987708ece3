"""``[metrics]``: the evaluate spec and the directions, validated at load in one line each."""

from __future__ import annotations

import re

import pytest

from quantsearch.config import parse_config
from quantsearch.errors import ConfigError
from quantsearch.metrics.config import MetricsConfig, parse_metrics_config

SEARCH = {
    "space": {"choices": {"linear": {"weight": [[8, 4]]}}},
    "objectives": {"r2": {"direction": "maximize"}},
}


def test_a_valid_table() -> None:
    cfg = parse_metrics_config(
        {"evaluate": "task.py:evaluate", "directions": {"max_err": "minimize"}}
    )
    assert cfg == MetricsConfig("task.py:evaluate", {"max_err": "minimize"})
    assert parse_metrics_config({}) == MetricsConfig()


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        ({"evaluate": "task.py"}, r"^metrics\.evaluate: got 'task\.py', allowed: 'file\.py:function' or 'module:function'$"),
        ({"evaluate": 3}, r"^metrics\.evaluate: got 3, allowed: a string$"),
        ({"evaluate": "t.py:f", "directions": {"e": "down"}}, r"^metrics\.directions\.e: got 'down', allowed: \['maximize', 'minimize'\]$"),
        ({"evaluate": "t.py:f", "directions": {"mse": "minimize"}}, r"^metrics\.directions\.mse: got 'mse', a built-in metric, allowed: "),
        ({"evaluate": "t.py:f", "directions": "e"}, r"^metrics\.directions: got 'e', allowed: a table$"),
        ({"directions": {"e": "minimize"}}, r"^metrics\.directions: got \['e'\] without metrics\.evaluate, allowed: "),
        ({"evaluate": "t.py:f", "evaluat": 1}, r"^metrics\.evaluat: got an unknown key, allowed: the keys of metrics: \['directions', 'evaluate'\]$"),
    ],
)  # fmt: skip
def test_bad_tables_are_one_line_naming_the_key(raw: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match) as exc:
        parse_metrics_config(raw)
    assert "\n" not in str(exc.value)


def test_search_names_the_evaluate_metrics_with_a_direction() -> None:
    raw = {
        "metrics": {"evaluate": "t.py:f", "directions": {"max_err": "minimize"}},
        "search": {**SEARCH, "constraints": {"max_err": {"max": 0.5}}},
    }
    cfg = parse_config(raw)
    assert cfg.search is not None
    assert cfg.search.user_metrics == {"max_err": "minimize", "r2": "maximize"}
    # recorded by default: the user's metrics and the static trial metrics, no accuracy
    assert cfg.search.metrics == ("max_err", "r2", "model_size_bits", "avg_weight_bits", "bitops")


@pytest.mark.parametrize(
    ("metrics", "search", "match"),
    [
        ({"evaluate": "t.py:f"}, {**SEARCH, "objectives": {"r2": {"weight": 1.0}}}, r"^search\.objectives\.r2\.direction: got no value for an evaluate function's metric with no declared direction"),
        ({"evaluate": "t.py:f"}, {**SEARCH, "metrics": ["r3"]}, r"^search\.metrics: got 'r3', an evaluate function's metric without a declared direction"),
        ({"evaluate": "t.py:f"}, {**SEARCH, "constraints": {"r3": {"max": 1}}}, r"^search\.constraints: got 'r3', an evaluate function's metric without"),
        ({}, SEARCH, r"^search\.objectives: got an unknown metric 'r2', allowed: one of .*, top<k>_accuracy or an evaluate function's metric \(with metrics\.evaluate\)$"),
        ({"evaluate": "t.py:f"}, {**SEARCH, "fidelity": "successive_halving"}, r"^search\.fidelity: got 'successive_halving' with an evaluate function, allowed: 'full'"),
    ],
)  # fmt: skip
def test_a_metric_without_direction_is_one_line(metrics: dict, search: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        parse_config({"metrics": metrics, "search": search})


RECORD_NAMES = ["qs", "metrics", "format.fc1.weight", "quantsearch.worker", "quantsearch.x"]


@pytest.mark.parametrize("name", RECORD_NAMES)
def test_a_name_the_trial_record_uses_is_refused_in_directions(name: str) -> None:
    raw = {"evaluate": "t.py:f", "directions": {name: "maximize"}}
    with pytest.raises(ConfigError) as exc:
        parse_metrics_config(raw)
    msg = str(exc.value)
    assert re.match(rf"^metrics\.directions\.(\"{re.escape(name)}\"|{re.escape(name)}): got "
                    rf"'{re.escape(name)}', a name the trial record uses, allowed: a name other "
                    r"than \['metrics', 'qs', 'quantsearch\.worker'\] that does not start with "
                    r"'format\.' or 'quantsearch\.'$", msg), msg  # fmt: skip


@pytest.mark.parametrize("name", RECORD_NAMES)
def test_a_name_the_trial_record_uses_is_refused_as_an_objective(name: str) -> None:
    search = {**SEARCH, "objectives": {name: {"direction": "maximize"}}}
    with pytest.raises(ConfigError, match=r"^search\.objectives\.\S+: got '.*', a name the trial "):
        parse_config({"metrics": {"evaluate": "t.py:f"}, "search": search})


def test_the_refused_names_cover_every_attribute_a_trial_record_writes() -> None:
    # the referee: the attributes TrialInfo.to_user_attrs and the workers' mark really write
    from quantsearch.search.trial import TrialInfo
    from quantsearch.trial_attrs import WORKER_ATTR, reserved_attr

    info = TrialInfo(number=0, state="COMPLETE", metrics={"r2": 0.5}, config_hash="ab",
                     formats={"fc1.weight": "fixed(8,5)"})  # fmt: skip
    own = [k for k in info.to_user_attrs() if k not in info.metrics] + [WORKER_ATTR]
    assert len(own) == 4 and all(reserved_attr(k) for k in own)
    assert not reserved_attr("r2") and not reserved_attr("formats")
