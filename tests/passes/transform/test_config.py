"""The [quantize] table: validation at load, precedence against a graph, ResolvedConfig."""

from __future__ import annotations

import copy
import json
import time

import pytest
import torch
from torch import fx, nn

from quantsearch.config import parse_config
from quantsearch.errors import ConfigError
from quantsearch.formats import FixedPoint, Minifloat
from quantsearch.graph import trace
from quantsearch.passes.transform import (
    LayerQuant,
    QuantizeConfig,
    ResolvedConfig,
    calibrate,
    parse_quantize_config,
    quantizable_kinds,
    resolve,
)
from tests.passes.transform.conftest import fx_table


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.seq_blocks = nn.Sequential(
            nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 3, bias=False)
        )
        self.flat = nn.Flatten()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.flat(self.seq_blocks(x))


@pytest.fixture
def gm() -> fx.GraphModule:
    torch.manual_seed(0)
    return trace(Net().eval(), torch.randn(5, 4))


def formats(rc: ResolvedConfig) -> dict[str, dict[str, str]]:
    return {n: {r: str(f) for r, f in lq.items()} for n, lq in rc.items()}


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
        ({"defaults": {}}, r"^unknown key quantize\.defaults \(allowed in quantize: \['by_name', 'by_type', 'default'\]\)$"),
        ({"default": {"wieght": {}}}, r"unknown key quantize\.default\.wieght \(allowed in quantize\.default: \['bias', 'data_in', 'data_out', 'format', 'skip', 'weight'\]\)"),
        ({"by_type": {"linear": {"weight": {"width": 8, "frac_width": 9}}}}, r"^quantize\.by_type\.linear\.weight: frac_width must satisfy 0 <= frac_width <= width \(got 9 > 8\)$"),
        ({"by_type": {"linaer": {}}}, r"quantize\.by_type\.linaer: 'linaer' is not a quantizable op kind \(allowed: \['add', 'batch_norm1d'"),
        ({"by_type": {"relu": {"weight": {"width": 8, "frac_width": 4}}}}, r"quantize\.by_type\.relu\.weight: relu has no weight \(roles of relu: \['data_in', 'data_out'\]\)"),
        ({"default": {"format": "fixd"}}, r"quantize\.default\.format must be one of \['block_fp', 'fixed', 'fp32', 'log', 'minifloat'\] \(got 'fixd'\)"),
        ({"default": {"weight": {"format": "minifloat", "width": 8}}}, r"unknown key quantize\.default\.weight\.width \(allowed in quantize\.default\.weight: \['exponent_bias', 'exponent_width', 'format', 'mantissa_width', 'subnormals'\]\)"),
        ({"default": {"weight": 8}}, r"quantize\.default\.weight must be a table like"),
        ({"default": {"skip": "yes"}}, r"quantize\.default\.skip must be true or false \(got 'yes'\)"),
        ({"by_name": {"re:seq[": {}}}, r'quantize\.by_name\."re:seq\[": invalid regular expression'),
        ({"by_name": {"seq_blocks.2": {"weight": {"width": "8", "frac_width": 4}}}}, r'quantize\.by_name\."seq_blocks\.2"\.weight\.width must be an integer'),
        ({"default": {"weight": {"width": 8, "frac_width": "Auto"}}}, r"frac_width must be an integer \(got 'Auto'\)"),
        ({"default": {"weight": {"format": "log", "exponent_width": "auto"}}}, r"exponent_width must be an integer \(got 'auto'\)"),
        ({"by_type": []}, r"quantize\.by_type must be a table of tables"),
    ],
)  # fmt: skip
def test_load_errors_name_the_dotted_key(raw: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        parse_quantize_config(raw)


# --------------------------------------------------------------------------------------------
# precedence


def test_precedence_exact_name_over_regex_over_type_over_default(gm: fx.GraphModule) -> None:
    cfg = parse_quantize_config(
        {
            "default": {
                "data_in": fx_table(8, 4),
                "weight": fx_table(8, 4),
                "bias": fx_table(8, 4),
            },
            "by_type": {"linear": {"weight": fx_table(6, 4)}},
            "by_name": {
                "re:seq_blocks_[02]": {"weight": fx_table(5, 4)},
                "re:seq_blocks_.*": {
                    "weight": fx_table(3, 2)
                },  # later regex: never wins over the first
                "seq_blocks.2": {"weight": fx_table(4, 3)},  # module path = node seq_blocks_2
            },
        }
    )
    assert formats(resolve(gm, cfg)) == {
        "seq_blocks_0": {"data_in": "fixed(8,4)", "weight": "fixed(5,4)", "bias": "fixed(8,4)"},
        "seq_blocks_1": {"data_in": "ufixed(8,4)"},  # relu: unsigned unless signed is given
        "seq_blocks_2": {"data_in": "fixed(8,4)", "weight": "fixed(4,3)", "bias": "fixed(8,4)"},
        "seq_blocks_3": {"data_in": "ufixed(8,4)"},
        "seq_blocks_4": {"data_in": "fixed(8,4)", "weight": "fixed(3,2)"},  # no bias to quantize
    }


def test_skip_at_the_most_specific_level_wins(gm: fx.GraphModule) -> None:
    cfg = parse_quantize_config(
        {
            "default": {"data_in": fx_table(8, 4)},
            "by_type": {"relu": {"skip": True}},
            "by_name": {
                "seq_blocks_3": {"skip": False},
                "seq_blocks.4": {"skip": True},
                "flat": {"skip": True},
            },
        }
    )
    assert sorted(resolve(gm, cfg)) == ["seq_blocks_0", "seq_blocks_2", "seq_blocks_3"]


def test_format_inherits_from_the_level_then_the_default() -> None:
    cfg = parse_quantize_config(
        {
            "default": {
                "format": "minifloat",
                "weight": {"exponent_width": 4, "mantissa_width": 3},
            },
            "by_type": {"linear": {"format": "fixed", "weight": {"width": 4, "frac_width": 2}}},
            "by_name": {"x": {"weight": {"exponent_width": 2, "mantissa_width": 1}}},
        }
    )
    assert cfg.by_type[0][1].role("weight").format == "fixed"
    assert cfg.by_name[0][1].role("weight").format == "minifloat"


def test_fp32_role_stays_float_and_signed_overrides_the_relu_default(gm: fx.GraphModule) -> None:
    cfg = parse_quantize_config(
        {
            "default": {"data_in": fx_table(8, 4, signed=True), "weight": {"format": "none"}},
            "by_name": {"seq_blocks_0": {"data_in": {"format": "fp32"}}},
        }
    )
    rc = resolve(gm, cfg)
    assert "seq_blocks_0" not in rc
    assert str(rc["seq_blocks_1"].data_in) == "fixed(8,4)"
    assert rc["seq_blocks_2"].weight is None


@pytest.mark.parametrize(
    ("by_name", "match"),
    [
        ({"seq_block.2": {"weight": fx_table(8, 4)}}, r'quantize\.by_name\."seq_block\.2": no node or module named \'seq_block\.2\' in the graph \(quantizable nodes: \[\'seq_blocks_0\','),
        ({"flat": {"data_in": fx_table(8, 4)}}, r"quantize\.by_name\.flat: node 'flat' is a flatten \(Flatten\), which cannot be quantized \(quantizable kinds: \['add',"),
        ({"seq_blocks_1": {"weight": fx_table(8, 4)}}, r"quantize\.by_name\.seq_blocks_1\.weight: node 'seq_blocks_1' is a relu, which has no weight \(roles of relu: \['data_in', 'data_out'\]\)"),
        ({"re:conv.*": {"weight": fx_table(8, 4)}}, r"quantize\.by_name\.\"re:conv\.\*\": 'conv\.\*' matches no quantizable node name or module path"),
        ({"re:seq_blocks_[13]": {"weight": fx_table(8, 4)}}, r"none of the nodes it matches \(\['relu'\]\) has a weight"),
        ({"seq_blocks.2": {"weight": fx_table(8, 4)}, "seq_blocks_2": {"bias": fx_table(8, 4)}}, r"quantize\.by_name\.seq_blocks_2: node 'seq_blocks_2' is already configured by quantize\.by_name\.\"seq_blocks\.2\""),
        ({"nothing": {"skip": True}}, r"no node or module named 'nothing'"),
    ],
)  # fmt: skip
def test_graph_errors_list_what_is_valid(gm: fx.GraphModule, by_name: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        resolve(gm, parse_quantize_config({"by_name": by_name}))


def test_function_nodes_are_quantizable() -> None:
    class Res(nn.Module):
        def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return torch.relu(x + y) * y

    g = trace(Res(), torch.randn(2, 3), torch.randn(2, 3))
    cfg = parse_quantize_config(
        {"default": {"data_in": fx_table(8, 4), "data_out": fx_table(8, 2)}}
    )
    assert formats(resolve(g, cfg)) == {
        "add": {"data_in": "fixed(8,4)", "data_out": "fixed(8,2)"},
        "relu": {"data_in": "ufixed(8,4)", "data_out": "ufixed(8,2)"},
        "mul": {"data_in": "fixed(8,4)", "data_out": "fixed(8,2)"},
    }


def test_quantizable_kinds() -> None:
    assert quantizable_kinds() == [
        "add", "batch_norm1d", "batch_norm2d", "bmm", "conv1d", "conv2d", "linear", "matmul", "mul", "relu",
    ]  # fmt: skip


# --------------------------------------------------------------------------------------------
# frac_width = "auto"


def test_auto_weights_use_their_largest_magnitude(gm: fx.GraphModule) -> None:
    cfg = parse_quantize_config({"by_type": {"linear": {"weight": fx_table(8, "auto")}}})
    rc = resolve(gm, cfg)
    for i in (0, 2, 4):
        name, w = f"seq_blocks_{i}", gm.get_submodule(f"seq_blocks.{i}").weight
        absmax = w.detach().abs().max().item()
        frac = rc[name].weight.frac_width
        assert 127 / 2**frac >= absmax > 127 / 2 ** (frac + 1)  # covers it, and no finer one does
        assert rc.to_dict()[name]["weight"]["frac_width"] == frac  # recorded in the resolved config


def test_auto_activations_need_calibration_and_then_follow_it(gm: fx.GraphModule) -> None:
    cfg = parse_quantize_config({"by_type": {"linear": {"data_in": fx_table(8, "auto")}}})
    assert cfg.needs_calibration
    pending = resolve(gm, cfg)
    assert pending.pending and pending.to_dict()["seq_blocks_0"]["data_in"]["frac_width"] == "auto"
    assert pending.key() == json.dumps(pending.to_dict(), sort_keys=True, separators=(",", ":"))
    x = torch.randn(64, 4) * 3
    stats = calibrate(gm, x)
    rc = resolve(gm, cfg, calibration=stats)
    assert not rc.pending
    absmax = x.abs().max().item()
    assert rc["seq_blocks_0"].data_in == FixedPoint(8, FixedPoint.frac_width_for(8, True, absmax))
    assert pending.bind(gm, stats) == rc  # binding later gives the same config


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
    with pytest.raises(ConfigError, match=r"config\.lin: no node or module named 'lin'"):
        ResolvedConfig.from_dict({"lin": {"weight": fx_table(8, 4)}}, gm=gm)
    with pytest.raises(
        ConfigError,
        match=r"unknown role config\.seq_blocks_0\.weights \(allowed: \['data_in', 'weight', 'bias', 'data_out'\]\)",
    ):
        ResolvedConfig.from_dict({"seq_blocks_0": {"weights": fx_table(8, 4)}})
    with pytest.raises(ConfigError, match=r"config\.seq_blocks_0\.weight: frac_width must satisfy"):
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


def test_docstring_examples_run() -> None:
    import doctest
    import importlib

    for name in ("config", "modules", "calibrate", "quantize"):
        mod = importlib.import_module(f"quantsearch.passes.transform.{name}")
        result = doctest.testmod(mod, optionflags=doctest.ELLIPSIS)
        assert result.failed == 0 and result.attempted > 0, name
