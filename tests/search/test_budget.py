"""``n_evaluations``: a study ends after that many distinct evaluations, counted by a model that
counts its forward passes; cache hits and pre-checked trials are not charged."""

from __future__ import annotations

from pathlib import Path

import pytest

from quantsearch.data import DataSplits
from quantsearch.errors import ConfigError
from quantsearch.search import search
from quantsearch.search.config import parse_search_config
from quantsearch.search.trial import evaluations_charged
from tests.search.counting import Counter, counting_mlp
from tests.search.spaces import LAB_SPACE

OBJ = {"accuracy": {"direction": "maximize"}}


@pytest.mark.parametrize("strategy", ["tpe", "random"])
def test_n_evaluations_stops_exactly(digits: DataSplits, strategy: str) -> None:
    gm = counting_mlp(digits)
    result = search(
        gm, digits.val, space=LAB_SPACE, objectives=OBJ, strategy=strategy, n_evaluations=6,
    )  # fmt: skip
    assert result.n_evaluations == 6
    assert len({t.config_hash for t in result.trials}) == 6
    assert Counter.samples == len(digits.val) * (1 + 6)  # baseline + six evaluations, no more
    assert len(result.trials) >= 6  # repeats (cache hits) were not charged


def test_prechecked_trials_are_not_charged(digits: DataSplits) -> None:
    gm = counting_mlp(digits)
    result = search(
        gm, digits.val, space=LAB_SPACE, objectives=OBJ, strategy="brute_force", n_evaluations=5,
        constraints={"model_size_bits": {"max": 1210 * 8}},
    )  # fmt: skip
    # In brute force's order every fourth point has 16-bit weights: pre-checked, not charged.
    assert [t.prechecked for t in result.trials] == [True, False, False, False, True, False, False]
    assert result.n_evaluations == 5 and Counter.samples == len(digits.val) * 6
    assert evaluations_charged(result.trials) == 5
    s = result.summary()
    assert (s["trials"], s["evaluations"], s["prechecked"]) == (7, 5, 2)
    assert s["samples"] == len(digits.val) * 5


def test_n_evaluations_stops_exactly_on_resume(digits: DataSplits, tmp_path: Path) -> None:
    gm = counting_mlp(digits)
    kw = {"space": LAB_SPACE, "objectives": OBJ, "strategy": "tpe", "run_dir": tmp_path}
    first = search(gm, digits.val, n_evaluations=3, **kw)  # type: ignore[arg-type]
    assert first.n_evaluations == 3
    Counter.reset()
    again = search(gm, digits.val, n_evaluations=8, **kw)  # type: ignore[arg-type]
    assert again.n_evaluations == 8
    assert [t.params for t in again.trials[: len(first.trials)]] == [t.params for t in first.trials]
    assert Counter.samples == len(digits.val) * 5  # the baseline is stored: five new ones only


def test_n_evaluations_config() -> None:
    base = {"space": LAB_SPACE, "objectives": OBJ}
    cfg = parse_search_config({**base, "n_evaluations": 10})
    assert (cfg.n_evaluations, cfg.n_trials) == (10, 200)  # trials capped at 20 per evaluation
    cfg = parse_search_config({**base, "n_evaluations": 10, "n_trials": 15})
    assert (cfg.n_evaluations, cfg.n_trials) == (10, 15)
    with pytest.raises(
        ConfigError, match=r"search\.n_evaluations: got 0, allowed: an integer in \[1, "
    ):
        parse_search_config({**base, "n_evaluations": 0})
