"""Precedence against a graph and "auto" fields: resolve() (passes/transform/resolve.py)."""

from __future__ import annotations

import json

import pytest
import torch
from torch import fx, nn

from quantsearch.errors import ConfigError
from quantsearch.formats import FixedPoint
from quantsearch.graph import trace
from quantsearch.passes.transform import (
    calibrate,
    parse_quantize_config,
    quantizable_kinds,
    resolve,
)
from tests.passes.transform.conftest import formats, fx_table

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
        ({"seq_block.2": {"weight": fx_table(8, 4)}}, r'quantize\.by_name\."seq_block\.2": got \'seq_block\.2\', which names no node or module in the graph, allowed: a quantizable node\'s name or module path \(quantizable nodes: \[\'seq_blocks_0\','),
        ({"flat": {"data_in": fx_table(8, 4)}}, r"quantize\.by_name\.flat: got node 'flat', a flatten \(Flatten\), which cannot be quantized, allowed: a node of a quantizable kind \(\['add',"),
        ({"seq_blocks_1": {"weight": fx_table(8, 4)}}, r"quantize\.by_name\.seq_blocks_1\.weight: got a weight for node 'seq_blocks_1', a relu, which has no weight, allowed: the roles of relu \['data_in', 'data_out'\]$"),
        ({"re:conv.*": {"weight": fx_table(8, 4)}}, r"quantize\.by_name\.\"re:conv\.\*\": got 'conv\.\*', which matches no quantizable node name or module path, allowed: "),
        ({"re:seq_blocks_[13]": {"weight": fx_table(8, 4)}}, r"got a weight for the nodes it matches \(\['relu'\]\), none of which has a weight, allowed: "),
        ({"seq_blocks.2": {"weight": fx_table(8, 4)}, "seq_blocks_2": {"bias": fx_table(8, 4)}}, r"quantize\.by_name\.seq_blocks_2: got node 'seq_blocks_2', which is already configured by quantize\.by_name\.\"seq_blocks\.2\", allowed: "),
        ({"nothing": {"skip": True}}, r"got 'nothing', which names no node or module"),
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


class _NameCollision(nn.Module):
    """A top-level Linear ``enc_0`` beside an nn.Sequential ``enc``, whose first Linear fx
    names ``enc_0``: the top-level one's node is then ``enc_2``."""

    def __init__(self) -> None:
        super().__init__()
        self.enc = nn.Sequential(nn.Linear(16, 8), nn.ReLU())
        self.enc_0 = nn.Linear(8, 8)
        self.out = nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.enc_0(self.enc(x))))


def test_a_name_of_one_node_and_the_path_of_another_module_is_refused() -> None:
    """by_name ``enc_0``, meant for the module ``self.enc_0``, quantized the node fx named
    enc_0, which is ``enc.0``, and left the user's layer (node enc_2) in float. One line
    naming both and the names that tell them apart; each of those resolves to its node."""
    gm = trace(_NameCollision(), torch.randn(4, 16))
    w = fx_table(3, 1)
    with pytest.raises(
        ConfigError,
        match=r"^quantize\.by_name\.enc_0: got 'enc_0', the name of node enc_0 \(module "
        r"enc\.0\) and the path of module enc_0 \(node enc_2\), allowed: a name of one of "
        r"them alone: 'enc\.0' or 'enc_2'$",
    ):
        resolve(gm, parse_quantize_config({"by_name": {"enc_0": {"weight": w}}}))
    for key, node in (("enc.0", "enc_0"), ("enc_2", "enc_2"), ("out", "out")):
        rc = resolve(gm, parse_quantize_config({"by_name": {key: {"weight": w}}}))
        assert list(rc.to_dict()) == [node], key


def test_the_node_name_of_a_module_called_twice_names_its_first_call() -> None:
    """``fc`` is the node name of the first call and the path of the module of both: no
    ambiguity (the same module), the first call as before; ``fc_1`` the second."""

    class Twice(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(torch.relu(self.fc(x)))

    gm = trace(Twice(), torch.randn(2, 4))
    for key in ("fc", "fc_1"):
        rc = resolve(gm, parse_quantize_config({"by_name": {key: {"weight": fx_table(4, 2)}}}))
        assert list(rc.to_dict()) == [key]
