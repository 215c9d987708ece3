"""A search's configs resolved node by node (``NodeConfigs``) are ``from_dict``'s configs.

Referee: ``ResolvedConfig.from_dict`` of the whole table against the graph (what
``Evaluator.resolve`` built before): equal keys, the same formats, the same binding to the
graph, the same errors; with ``"auto"`` binary points bound from the weights and from
calibration, a ``[quantize]`` base under the search's choices, and tables made anew each call.
"""

from __future__ import annotations

import numpy as np
import pytest
from torch import fx, nn

from quantsearch.data import DataSplits
from quantsearch.errors import ConfigError
from quantsearch.graph import trace
from quantsearch.models import build_model
from quantsearch.passes.transform import ResolvedConfig, calibrate
from quantsearch.passes.transform.modules import quantizable_kinds
from quantsearch.passes.transform.resolved import NodeConfigs
from quantsearch.search.evaluate import Evaluator
from quantsearch.search.space import SearchSpace, parse_space
from tests.passes.transform.conftest import fx_table

PAIRS = [[16, 8], [8, 4], [6, "auto"], [4, 2]]


@pytest.fixture(scope="module")
def mlp(digits: DataSplits) -> fx.GraphModule:
    return trace(build_model("mlp-digits").eval(), digits.val.x[:8])


def _module(gm: fx.GraphModule, node: fx.Node) -> object:
    return gm.get_submodule(str(node.target)) if node.op == "call_module" else None


def _same(ours: ResolvedConfig, theirs: ResolvedConfig, gm: fx.GraphModule) -> None:
    assert ours.key() == theirs.key() and ours.to_dict() == theirs.to_dict()
    assert (ours.bind(gm, allow_pending=True) is ours) == (
        theirs.bind(gm, allow_pending=True) is theirs
    )


@pytest.mark.parametrize("base", [None, {"default": {"bias": fx_table(8, 4)}}])
def test_search_points_resolve_as_from_dict(
    mlp: fx.GraphModule, digits: DataSplits, base: dict[str, object] | None
) -> None:
    from quantsearch.passes.transform import parse_quantize_config

    stats = calibrate(mlp, digits.train.x[:64])
    nodes = [n.name for n in mlp.graph.nodes if isinstance(_module(mlp, n), nn.Linear)]
    spec = {"by": "name", "choices": {n: {"data_in": PAIRS, "weight": PAIRS} for n in nodes}}
    space = SearchSpace(parse_space(spec), mlp, set(quantizable_kinds()))
    config = parse_quantize_config(base) if base is not None else None
    evaluator = Evaluator(mlp, digits.val, ["accuracy"], quantize_config=config, calibration=stats)
    rng = np.random.default_rng(0)
    for _ in range(150):  # points repeat their nodes' tables: most parts are met before
        choice = {k.name: int(rng.integers(0, k.size)) for k in space.knobs}
        formats = space.layer_formats(choice)
        merged = {n: dict(r) for n, r in evaluator._base.items()}
        for node, roles in formats.items():
            merged.setdefault(node, {}).update(roles)
        theirs = ResolvedConfig.from_dict(merged, mlp, calibration=stats, key="search")
        _same(evaluator.resolve(formats), theirs, mlp)
    assert len(evaluator._nodes._parts) < 150  # type: ignore[union-attr]


def test_tables_made_anew_each_call_are_read_anew(mlp: fx.GraphModule) -> None:
    # each call's table is a new object with other contents: it must not hit an earlier part
    # (the parts keep their tables alive, so no new table can take an old one's id)
    nodes = NodeConfigs(mlp, None, "search")
    name = next(n.name for n in mlp.graph.nodes if isinstance(_module(mlp, n), nn.Linear))
    for i in range(60):
        table = fx_table(4 + i % 5, 2, rounding="nearest")
        got = nodes({name: {"weight": table, "data_in": None}})
        _same(got, ResolvedConfig.from_dict({name: {"weight": table}}, mlp), mlp)
        del table


def test_errors_are_from_dicts(mlp: fx.GraphModule) -> None:
    nodes = NodeConfigs(mlp, None, "search")
    for bad in ({"nope": {"weight": fx_table(8, 4)}}, {"seq_blocks_0": {"weight": "fixed"}}):
        with pytest.raises(ConfigError) as theirs:
            ResolvedConfig.from_dict(bad, mlp, key="search")
        for _ in range(2):  # not remembered
            with pytest.raises(ConfigError) as ours:
                nodes(bad)
            assert str(ours.value) == str(theirs.value)
