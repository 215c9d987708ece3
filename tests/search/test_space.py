from __future__ import annotations

import pytest
import torch

from quantsearch.errors import ConfigError
from quantsearch.graph import trace
from quantsearch.models import build_model
from quantsearch.search.config import parse_search_config
from quantsearch.search.space import SearchSpace

OBJ = {"accuracy": {"direction": "maximize"}}


def space_of(model_name: str, space: dict, shape: tuple[int, ...]) -> SearchSpace:
    cfg = parse_search_config({"space": space, "objectives": OBJ})
    gm = trace(build_model(model_name).eval(), torch.zeros(2, *shape))
    return SearchSpace(cfg.space, gm)


def test_lab_space_has_16_points_in_stable_order() -> None:
    from tests.search.spaces import LAB_SPACE

    space = space_of("mlp-digits", LAB_SPACE, (64,))
    assert space.size == 16
    assert [k.name for k in space.knobs] == ["linear.data_in", "linear.weight"]
    assert space.knobs[0].nodes == ("seq_blocks_0", "seq_blocks_3", "seq_blocks_6")
    points = list(space.enumerate())
    assert len(points) == 16 and len({tuple(p.values()) for p in points}) == 16
    assert [space.point(i) for i in range(16)] == points  # mixed radix, last knob fastest
    assert points[1] == {"linear.data_in": 0, "linear.weight": 1}
    assert all(space.index_of(p) == i for i, p in enumerate(points))


def test_cartesian_drops_frac_above_width_and_counts() -> None:
    space = space_of(
        "jsc-tiny",
        {"choices": {"linear": {"data_in": {"width": [4, 8, 16], "frac_width": [2, 4, 8]}}}},
        (16,),
    )
    # (4,8) is impossible: 9 combinations, 1 dropped
    assert space.size == 8 and space.dropped == 1
    assert "fixed(4,8)" not in space.knobs[0].labels


def test_by_name_gives_each_node_its_own_knobs_and_node_overrides_kind() -> None:
    space = space_of(
        "mlp-digits",
        {
            "by": "name",
            "choices": {
                "linear": {"weight": [[8, 4], [4, 2]]},
                "seq_blocks_6": {"weight": [[16, 8], [8, 4], [4, 2]]},
            },
        },
        (64,),
    )
    assert [k.name for k in space.knobs] == [
        "seq_blocks_0.weight",
        "seq_blocks_3.weight",
        "seq_blocks_6.weight",
    ]
    assert space.size == 2 * 2 * 3


def test_same_as_weight_follows_the_weight_choice() -> None:
    from tests.search.spaces import LAB_SPACE

    space = space_of("mlp-digits", LAB_SPACE, (64,))
    formats = space.layer_formats({"linear.data_in": 3, "linear.weight": 2})
    assert formats["seq_blocks_3"]["bias"] == formats["seq_blocks_3"]["weight"]
    assert formats["seq_blocks_3"]["weight"] == {"format": "fixed", "width": 8, "frac_width": 4}
    assert formats["seq_blocks_3"]["data_in"] == {"format": "fixed", "width": 4, "frac_width": 2}


def test_encodings_round_trip() -> None:
    from tests.search.spaces import LAB_SPACE

    space = space_of("mlp-digits", LAB_SPACE, (64,))
    for choice in space.enumerate():
        for enc in ("categorical", "ordinal"):
            assert space.decode(space.encode(choice, enc)) == choice  # type: ignore[arg-type]
    # ordinal index 0 is the cheapest choice
    assert space.knobs[0].options[space.knobs[0].by_cost[0]]["width"] == 4


@pytest.mark.parametrize(
    ("space", "match"),
    [
        (
            {"choices": {"lineer": {"weight": [[8, 4]]}}},
            r"search\.space\.choices\.lineer: got 'lineer', neither an op kind nor a node of the model, allowed: a kind of \[",
        ),
        (
            {"by": "name", "choices": {"nope_7": {"weight": [[8, 4]]}}},
            r"search\.space\.choices\.nope_7",
        ),
        (
            {"choices": {"seq_blocks_2": {"weight": [[8, 4]]}}},
            r"^search\.space\.choices\.seq_blocks_2: got choices for a node with search\.space\.by = 'type', allowed: choices per node with search\.space\.by = 'name'$",
        ),
    ],
)
def test_graph_checks_name_the_key(space: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        space_of("jsc-tiny", space, (16,))


def test_module_path_is_accepted_as_a_node_name() -> None:
    space = space_of(
        "jsc-tiny", {"by": "name", "choices": {"seq_blocks.2": {"weight": [[8, 4], [4, 2]]}}}, (16,)
    )
    assert [k.name for k in space.knobs] == ["seq_blocks_2.weight"]


# --------------------------------------------------------------------------------------------
# labels: the format's own str(), the same as every other table prints


def test_labels_are_the_formats_str_and_match_the_resolved_config() -> None:
    from quantsearch.passes.transform import ResolvedConfig

    cfg = parse_search_config(
        {
            "space": {
                "choices": {
                    "linear": {"weight": [[8, 4], {"format": "minifloat", "exponent_width": 4, "mantissa_width": 3}]},
                    "relu": {"data_in": [[8, 4], [4, 2, ]]},
                }
            },
            "objectives": OBJ,
        }
    )  # fmt: skip
    gm = trace(build_model("mlp-digits").eval(), torch.zeros(2, 64))
    space = SearchSpace(cfg.space, gm)
    labels = {k.name: k.labels for k in space.knobs}
    assert labels == {
        "linear.weight": ("fixed(8,4)", "minifloat(e4m3,b7)"),
        "relu.data_in": ("ufixed(8,4)", "ufixed(4,2)"),  # a ReLU's input is unsigned
    }
    for choice in space.enumerate():
        resolved = ResolvedConfig.from_dict(space.layer_formats(choice), gm)
        for knob in space.knobs:
            label = knob.labels[choice[knob.name]]
            assert {str(resolved[n].format(knob.role)) for n in knob.nodes} == {label}


def test_old_labels_still_decode() -> None:
    space = space_of(
        "mlp-digits",
        {
            "choices": {
                "linear": {"weight": [{"width": 8, "frac_width": 4, "signed": False}, [4, 2]]}
            }
        },
        (64,),
    )
    (knob,) = space.knobs
    assert knob.labels == ("ufixed(8,4)", "fixed(4,2)")
    assert space.decode({"linear.weight": "fixed(8,4,False)"}) == {"linear.weight": 0}
    assert space.decode({"linear.weight": "fixed(4,2)"}) == {"linear.weight": 1}
    with pytest.raises(
        ConfigError, match=r"parameter 'linear\.weight' = 'fixed\(3,2\)' is not one of"
    ):
        space.decode({"linear.weight": "fixed(3,2)"})


def test_equal_formats_are_one_choice() -> None:
    space = space_of(
        "jsc-tiny",
        {
            "choices": {
                "linear": {
                    "weight": {"format": ["fixed", "integer"], "width": [8], "frac_width": [4]}
                }
            }
        },
        (16,),
    )
    assert space.size == 1 and space.knobs[0].labels == ("fixed(8,4)",)


def test_a_module_path_names_every_call_of_the_module() -> None:
    from torch import nn

    class Twice(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.blk = nn.Sequential(nn.Linear(4, 4))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.blk(self.blk(x))

    cfg = parse_search_config(
        {
            "space": {"by": "name", "choices": {"blk.0": {"weight": [[8, 4], [4, 2]]}}},
            "objectives": OBJ,
        }
    )
    space = SearchSpace(cfg.space, trace(Twice(), torch.zeros(2, 4)))
    # the same check as [quantize] by_name (GraphView): both calls of the module
    assert [k.name for k in space.knobs] == ["blk_0.weight", "blk_1.weight"]


class _NoParamOperand(torch.nn.Module):
    """A bmm of a normalised adjacency buffer and computed node features (a GCN layer), a
    Linear with a bias and one without."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("adj", torch.full((4, 4), 0.25))
        self.a = torch.nn.Linear(4, 4)
        self.b = torch.nn.Linear(4, 4, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.view(-1, 4, 4)
        return self.b(torch.bmm(self.adj.expand(h.size(0), -1, -1), self.a(h))).flatten(1)


def _space(space: dict) -> SearchSpace:
    cfg = parse_search_config({"space": space, "objectives": OBJ})
    return SearchSpace(cfg.space, trace(_NoParamOperand(), torch.zeros(2, 16)))


@pytest.mark.parametrize("by", ["type", "name"])
def test_choices_for_a_parameter_no_node_has_are_refused(by: str) -> None:
    """weight choices for a bmm whose operands are both computed (the adjacency buffer is no
    parameter): every trial quantized nothing there, the trials were one config under
    several names, and summary --sensitivity raised KeyError 'bmm' (an internal error). One
    ConfigError naming the key and what the node has."""
    with pytest.raises(
        ConfigError,
        match=r"^search\.space\.choices\.bmm\.weight: got weight choices, but node bmm \(bmm\) has "
        r"no weight parameter, allowed: choices for the roles it has \(data_in rounds computed "
        r"operands\)$",
    ):
        _space({"by": by, "choices": {"bmm": {"weight": [[8, 4], [4, 2]]}}})


def test_a_parameter_choice_goes_to_the_nodes_that_have_it() -> None:
    """linear.bias choices where one Linear has no bias: the knob is the biased Linear's
    alone (the other quantized nothing; summary --sensitivity raised KeyError on it), and
    the sensitivity tables are made (referee: the knob's nodes)."""
    from quantsearch.data import Split
    from quantsearch.search.api import prepare_search
    from quantsearch.search.sensitivity import sensitivity_tables

    raw = {"choices": {"linear": {"bias": [[8, 4], [4, 2]], "weight": [[8, 4]]}}}
    space = _space(raw)
    assert {k.name: k.nodes for k in space.knobs} == {
        "linear.bias": ("a",),
        "linear.weight": ("a", "b"),
    }
    cfg = parse_search_config({"space": raw, "objectives": OBJ})
    x = torch.randn(8, 16, generator=torch.Generator().manual_seed(0))
    gm = trace(_NoParamOperand(), x)
    space, ev = prepare_search(gm, cfg, Split(x, torch.arange(8) % 4))
    tables = sensitivity_tables(space, ev, ["bitops"])
    sizes = {k.name: len(d) for k, d in zip(space.knobs, tables.drop, strict=True)}
    assert sizes == {"linear.bias": 2, "linear.weight": 1}


def test_a_name_of_one_node_and_the_path_of_another_module_is_refused() -> None:
    """by = "name" choices for ``enc_0``: the node fx named enc_0 is ``enc.0``, the module
    ``enc_0`` is node enc_2; the knob went to the first. One line naming both."""
    from tests.passes.transform.test_resolve import _NameCollision

    cfg = parse_search_config(
        {"space": {"by": "name", "choices": {"enc_0": {"weight": [[8, 4]]}}}, "objectives": OBJ}
    )
    gm = trace(_NameCollision(), torch.zeros(2, 16))
    with pytest.raises(
        ConfigError, match=r"^search\.space\.choices\.enc_0: got 'enc_0', the name of node enc_0 "
    ):
        SearchSpace(cfg.space, gm)
