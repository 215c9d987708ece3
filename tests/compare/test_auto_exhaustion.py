"""A comparison on a space whose ``"auto"`` choice calibrates to an explicit one: three points,
two configs. A run that met both configs has seen the whole space, and keeps its final value
at later budgets, as a run of a space without such merges does.

Referee for the binary point: numpy's closed form on the weight's range
(``tests/search/test_space_auto.py``), not quantsearch's calibration.
"""

from __future__ import annotations

import torch

from quantsearch.compare import run_comparison
from quantsearch.compare.summary import value_at
from quantsearch.data import Split
from quantsearch.graph import trace
from quantsearch.models import build_model
from quantsearch.search.api import prepare_search
from quantsearch.search.config import parse_search_config
from tests.search.test_space_auto import ref_frac, ref_ranges

OBJ = {"accuracy": {"direction": "maximize"}}


def test_a_run_that_met_every_config_of_an_auto_space_is_exhausted() -> None:
    torch.manual_seed(0)
    x, y = torch.randn(128, 16), torch.randint(0, 5, (128,))
    gm = trace(build_model("jsc-tiny").eval(), x[:8])
    f = ref_frac(8, True, *ref_ranges(gm, x)["seq_blocks_2"]["weight"])
    cfg = parse_search_config(
        {
            "space": {"choices": {"linear": {"weight": [[8, "auto"], [8, f], [4, 2]]}}},
            "objectives": OBJ,
        }
    )
    space, evaluator = prepare_search(gm, cfg, Split(x, y))
    assert (space.size, space.n_configs(evaluator.resolve)) == (3, 2)
    res = run_comparison(
        space, evaluator, cfg, strategies=["brute_force"], seeds=[0], n_trials=10, budgets=(10,)
    )
    (run,) = res.runs
    assert run.evaluations == 2 and run.trials == 2  # one point per config, then exhausted
    assert run.exhausted
    assert value_at(run, 10) == run.quality_by_trial[-1]  # was None: "stopped before"
    assert res.stats_of("brute_force") is not None
