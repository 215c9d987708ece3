"""The [quantize] table: validation at load (passes/transform/config.py)."""

from __future__ import annotations

import copy

import pytest

from quantsearch.config import parse_config
from quantsearch.errors import ConfigError
from quantsearch.passes.transform import (
    QuantizeConfig,
    parse_quantize_config,
)

# --------------------------------------------------------------------------------------------
# validation at load


def test_the_issue_example_parses_and_raw_is_not_mutated() -> None:
    raw = {
        "default": {
            "format": "fixed",
            "data_in": {"width": 8, "frac_width": 4},
            "weight": {"width": 8, "frac_width": 4},
            "bias": {"width": 8, "frac_width": 4},
        },
        "by_type": {"relu": {"data_in": {"width": 8, "frac_width": 4}}},
        "by_name": {"seq_blocks.2": {"weight": {"width": 4, "frac_width": 3}}},
    }
    before = copy.deepcopy(raw)
    cfg = parse_quantize_config(raw)
    assert raw == before
    assert isinstance(cfg, QuantizeConfig) and cfg.key == "quantize"
    assert cfg.by_name[0][1].role("weight") is not None
    hash(cfg)  # frozen all the way down


def test_config_loader_delegates_the_quantize_table() -> None:
    cfg = parse_config({"quantize": {"default": {"weight": {"width": 8, "frac_width": 4}}}})
    assert isinstance(cfg.quantize, QuantizeConfig)


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        ({"defaults": {}}, r"^quantize\.defaults: got an unknown key, allowed: the keys of quantize: \['by_name', 'by_type', 'default'\]$"),
        ({"default": {"wieght": {}}}, r"quantize\.default\.wieght: got an unknown key, allowed: the keys of quantize\.default: \['bias', 'data_in', 'data_out', 'format', 'skip', 'weight'\]"),
        ({"by_type": {"linear": {"weight": {"width": 8, "frac_width": 9}}}}, r"^quantize\.by_type\.linear\.weight\.frac_width: got 9, allowed: an integer in \[0, width\] \(width = 8\)$"),
        ({"by_type": {"linaer": {}}}, r"quantize\.by_type\.linaer: got 'linaer', which is not a quantizable op kind, allowed: one of \['add', 'batch_norm1d'"),
        ({"by_type": {"relu": {"weight": {"width": 8, "frac_width": 4}}}}, r"quantize\.by_type\.relu\.weight: got a weight for relu, which has none, allowed: the roles of relu \['data_in', 'data_out'\]$"),
        ({"default": {"format": "fixd"}}, r"quantize\.default\.format: got 'fixd', allowed: one of \['block_fp', 'fixed', 'fp32', 'log', 'minifloat'\]"),
        ({"default": {"weight": {"format": "minifloat", "width": 8}}}, r"quantize\.default\.weight\.width: got an unknown key, allowed: the keys of quantize\.default\.weight: \['exponent_bias', 'exponent_width', 'format', 'mantissa_width', 'subnormals'\]"),
        ({"default": {"weight": 8}}, r"^quantize\.default\.weight: got 8, allowed: a table like"),
        ({"default": {"skip": "yes"}}, r"^quantize\.default\.skip: got 'yes', allowed: true or false$"),
        ({"by_name": {"re:seq[": {}}}, r'quantize\.by_name\."re:seq\[": got \'seq\[\', an invalid regular expression \(.*\), allowed: '),
        ({"by_name": {"seq_blocks.2": {"weight": {"width": "8", "frac_width": 4}}}}, r'^quantize\.by_name\."seq_blocks\.2"\.weight\.width: got \'8\', allowed: an integer$'),
        ({"default": {"weight": {"width": 8, "frac_width": "Auto"}}}, r"^quantize\.default\.weight\.frac_width: got 'Auto', allowed: an integer or 'auto'$"),
        ({"default": {"weight": {"format": "log", "exponent_width": "auto"}}}, r"^quantize\.default\.weight\.exponent_width: got 'auto', allowed: an integer \('auto' is for fixed\.frac_width, not for format 'log'\)$"),
        ({"by_type": []}, r"^quantize\.by_type: got \[\], allowed: a table of tables$"),
    ],
)  # fmt: skip
def test_load_errors_name_the_dotted_key(raw: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        parse_quantize_config(raw)


def test_docstring_examples_run() -> None:
    import doctest
    import importlib

    for name in (
        "config",
        "layer",
        "graph_view",
        "resolved",
        "resolve",
        "modules",
        "calibrate",
        "quantize",
    ):
        mod = importlib.import_module(f"quantsearch.passes.transform.{name}")
        result = doctest.testmod(mod, optionflags=doctest.ELLIPSIS)
        assert result.failed == 0 and result.attempted > 0, name
