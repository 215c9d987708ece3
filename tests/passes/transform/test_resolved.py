"""The per-node config: ResolvedConfig (passes/transform/resolved.py)."""

from __future__ import annotations

import json
import time

import pytest
from torch import fx

from quantsearch.errors import ConfigError
from quantsearch.formats import FixedPoint, Minifloat
from quantsearch.passes.transform import (
    LayerQuant,
    ResolvedConfig,
)
from tests.passes.transform.conftest import formats, fx_table

# --------------------------------------------------------------------------------------------
# ResolvedConfig


def test_from_dict_key_round_trip_and_hash(gm: fx.GraphModule) -> None:
    d = {
        "seq_blocks_2": {
            "weight": fx_table(8, 4),
            "data_in": {"format": "integer", "width": 8, "frac_width": 3},
        },
        "seq_blocks_0": {"bias": {"format": "minifloat", "exponent_width": 4, "mantissa_width": 3}},
    }
    rc = ResolvedConfig.from_dict(d)
    assert rc["seq_blocks_0"].bias == Minifloat(4, 3)
    same = ResolvedConfig.from_dict({k: d[k] for k in reversed(list(d))})  # order and aliases
    assert rc == same and rc.key() == same.key() and len({rc, same}) == 1
    assert rc.key() == json.dumps(rc.to_dict(), sort_keys=True, separators=(",", ":"))
    back = ResolvedConfig.from_dict(json.loads(json.dumps(rc.to_dict())))
    assert back == rc
    other = ResolvedConfig.from_dict({"seq_blocks_2": {"weight": fx_table(8, 5)}})
    assert other != rc and other.key() != rc.key()
    assert (
        ResolvedConfig({"a": LayerQuant(weight=FixedPoint(8, 4))}).key()
        == ResolvedConfig.from_dict({"a": {"weight": fx_table(8, 4)}}).key()
    )


def test_from_dict_with_the_graph_checks_names_and_applies_kind_defaults(
    gm: fx.GraphModule,
) -> None:
    rc = ResolvedConfig.from_dict(
        {
            "seq_blocks.1": {"data_in": fx_table(8, 4)},
            "seq_blocks_4": {"bias": fx_table(8, 4), "weight": None},
        },
        gm=gm,
    )
    assert formats(rc) == {"seq_blocks_1": {"data_in": "ufixed(8,4)"}}  # path -> node; no bias
    with pytest.raises(ConfigError, match=r"config\.lin: got 'lin', which names no node or module"):
        ResolvedConfig.from_dict({"lin": {"weight": fx_table(8, 4)}}, gm=gm)
    with pytest.raises(
        ConfigError,
        match=r"^config\.seq_blocks_0\.weights: got an unknown role, allowed: one of \['data_in', 'weight', 'bias', 'data_out'\]$",
    ):
        ResolvedConfig.from_dict({"seq_blocks_0": {"weights": fx_table(8, 4)}})
    with pytest.raises(
        ConfigError,
        match=r"^config\.seq_blocks_0\.weight\.frac_width: got 5, allowed: an integer in \[0, width\]",
    ):
        ResolvedConfig.from_dict({"seq_blocks_0": {"weight": fx_table(4, 5)}})


def test_from_dict_is_cheap(gm: fx.GraphModule) -> None:
    d = {
        f"seq_blocks_{i}": {"data_in": fx_table(8, 4), "weight": fx_table(8, 4)} for i in (0, 2, 4)
    }
    d["seq_blocks_1"] = {"data_in": fx_table(8, 4)}
    ResolvedConfig.from_dict(d)
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(200):
            ResolvedConfig.from_dict(d).key()
        best = min(best, (time.perf_counter() - t0) / 200)
    assert best < 1e-3  # typically ~20 us; the bound only catches a TOML round trip or worse
