"""TrialInfo's evaluation rules over every combination of the fields they read."""

from __future__ import annotations

import itertools

import pytest

from quantsearch.search.trial import TrialInfo

STATES = ("COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING")


@pytest.mark.parametrize(
    ("kw", "evaluated", "charged"),
    [
        ({"state": "COMPLETE", "config_hash": "h"}, True, True),  # measured, a new config
        ({"state": "COMPLETE", "config_hash": "h", "cached": True}, False, True),  # cache hit
        ({"state": "COMPLETE", "config_hash": "h", "prechecked": True}, False, False),
        ({"state": "COMPLETE", "config_hash": "h", "error": "nan"}, True, True),  # failed config
        ({"state": "FAIL", "config_hash": "h", "error": "nan"}, True, True),  # older layout
        ({"state": "FAIL", "config_hash": "h"}, False, False),  # its worker died: retried
        ({"state": "PRUNED", "config_hash": "h"}, True, True),  # spent validation samples
        ({"state": "RUNNING", "config_hash": "h"}, False, False),  # not finished
        ({"state": "COMPLETE"}, False, False),  # no config asked for
    ],
)
def test_evaluated_and_charged_by_hand(
    kw: dict[str, object], evaluated: bool, charged: bool
) -> None:
    t = TrialInfo(number=0, **kw)  # type: ignore[arg-type]
    assert (t.evaluated, t.charges_evaluation) == (evaluated, charged)


def test_evaluated_is_a_charged_trial_the_cache_did_not_answer() -> None:
    """Over all 80 combinations: a distinct evaluation is a charged one that ran the model, and
    ran it exactly when it had a config, was not pre-checked or cached, and used a trial."""
    for state, error, config_hash, cached, prechecked in itertools.product(
        STATES, (None, "boom"), (None, "h"), (False, True), (False, True)
    ):
        t = TrialInfo(number=0, state=state, error=error, config_hash=config_hash, cached=cached,
                      prechecked=prechecked)  # fmt: skip
        ran = config_hash is not None and not cached and not prechecked
        assert t.evaluated == (ran and t.counts_toward_budget), t
        assert t.evaluated == (t.charges_evaluation and not cached), t
