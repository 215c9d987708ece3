"""``frac_width = "auto"`` in ``[search.space]``: the width is searched, the binary point is the
quantize pass's calibration, and every trial records the point each node got.

Referee for the recorded binary points: numpy, from ranges gathered without quantsearch's
calibration pass (weights and biases from the state dict, activations by forward hooks on the
modules), and the closed form ``frac = clip(floor(log2(max_code / absmax)), 0, width)``, the
most fraction bits whose largest code still reaches the range.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from torch import fx, nn

from quantsearch.data import DataSplits, Split
from quantsearch.errors import ConfigError
from quantsearch.formats import format_from_str
from quantsearch.graph import trace
from quantsearch.models import build_model
from quantsearch.search import search
from quantsearch.search.config import parse_search_config
from quantsearch.search.prepare import prepare_search
from quantsearch.search.space.spec import option_bits, option_label, parse_space

OBJ = {"accuracy": {"direction": "maximize"}}


def ref_frac(width: int, signed: bool, lo: float, hi: float) -> int:
    """numpy's binary point for a range: the closed form, not quantsearch's loop."""
    absmax = max(abs(lo), abs(hi)) if signed else max(hi, 0.0)
    max_code = 2.0 ** (width - 1) - 1 if signed else 2.0**width - 1
    if absmax == 0:
        return width
    return int(np.clip(np.floor(np.log2(max_code / absmax)), 0, width))


def ref_ranges(gm: fx.GraphModule, x: torch.Tensor) -> dict[str, dict[str, tuple[float, float]]]:
    """Per node: the range of every role, by numpy on tensors torch's own hooks hand over."""
    out: dict[str, dict[str, tuple[float, float]]] = {}
    hooks = []
    for n in gm.graph.nodes:
        if n.op != "call_module":
            continue
        module = gm.get_submodule(str(n.target))
        roles = out.setdefault(n.name, {})
        for role in ("weight", "bias"):
            p = getattr(module, role, None)
            if isinstance(p, torch.Tensor):
                a = p.detach().numpy()
                roles[role] = (float(a.min()), float(a.max()))

        def hook(_m: nn.Module, args: tuple[Any, ...], _out: Any, roles: dict = roles) -> None:
            a = args[0].detach().numpy()
            roles["data_in"] = (float(np.min(a)), float(np.max(a)))

        hooks.append(module.register_forward_hook(hook))
    with torch.no_grad():
        gm.eval()(x)
    for h in hooks:
        h.remove()
    return out


@pytest.fixture(scope="module")
def mlp_gm(mlp: nn.Module, digits: DataSplits) -> fx.GraphModule:
    return trace(mlp, digits.val.x[:8])


# -- the language -------------------------------------------------------------------------------


def test_every_form_of_the_language_takes_auto() -> None:
    spec = parse_space(
        {
            "choices": {
                "linear": {
                    "weight": {"width": [4, 6, 8], "frac_width": "auto"},
                    "data_in": [[8, "auto"], [8, 4], {"width": 6, "frac_width": "auto"}],
                    "bias": "same_as_weight",
                },
                "relu": {"data_in": {"width": [4, 8], "frac_width": ["auto", 2]}},
            }
        }
    )
    labels = {
        (t, r): [option_label(o) for o in c]
        for t, roles in spec.choices.items()
        for r, c in roles.items()
        if not isinstance(c, str)
    }
    assert labels == {
        ("linear", "weight"): ["fixed(4,auto)", "fixed(6,auto)", "fixed(8,auto)"],
        ("linear", "data_in"): ["fixed(8,auto)", "fixed(8,4)", "fixed(6,auto)"],
        ("relu", "data_in"): ["fixed(4,auto)", "fixed(4,2)", "fixed(8,auto)", "fixed(8,2)"],
    }
    assert option_label({"format": "fixed", "width": 8, "frac_width": "auto"}, unsigned=True) == (
        "ufixed(8,auto)"
    )
    # "auto" stores as many bits as the width says (the referee: the concrete format's own)
    assert option_bits({"format": "fixed", "width": 6, "frac_width": "auto"}) == float(
        format_from_str("fixed(6,3)").bits_per_element
    )
    assert spec.calibrated_keys() == [
        "search.space.choices.linear.data_in",
        "search.space.choices.relu.data_in",
    ]


def test_the_same_auto_choice_spelled_twice_is_one_choice() -> None:
    spec = parse_space(
        {
            "choices": {
                "linear": {
                    "weight": [[8, "auto"], {"format": "integer", "width": 8, "frac_width": "auto"}]
                }
            }
        }
    )
    assert len(spec.choices["linear"]["weight"]) == 1


@pytest.mark.parametrize(
    ("role", "match"),
    [
        ([[8, "autoo"]], r"search\.space\.choices\.linear\.weight\[0\]: got \[8, 'autoo'\], allowed: a \[width, frac_width\] pair of integers \(frac_width may be 'auto'\) or a table of fields$"),
        ({"width": [4, 8], "frac_width": "Auto"}, r"search\.space\.choices\.linear\.weight\.frac_width: got 'Auto', allowed: an integer or 'auto'$"),
        ({"width": "auto", "frac_width": 2}, r"search\.space\.choices\.linear\.weight\.width: got 'auto', allowed: an integer \('auto' is for fixed\.frac_width, not for format 'fixed'\)$"),
        ([{"format": "minifloat", "exponent_width": "auto", "mantissa_width": 3}], r"search\.space\.choices\.linear\.weight\[0\]\.exponent_width: got 'auto', allowed: an integer \('auto' is for fixed\.frac_width, not for format 'minifloat'\)$"),
        ({"format": "log", "exponent_width": ["auto", 4]}, r"search\.space\.choices\.linear\.weight\.exponent_width: got 'auto', allowed: an integer \('auto' is for fixed\.frac_width, not for format 'log'\)$"),
    ],
)  # fmt: skip
def test_bad_auto_names_the_key(role: Any, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        parse_space({"choices": {"linear": {"weight": role}}})


# -- a search ----------------------------------------------------------------------------------

# a space and the roles its "auto" choices leave to calibration
SPACES: dict[str, tuple[dict[str, Any], int]] = {
    "by type": ({
        "choices": {
            "linear": {
                "weight": {"width": [4, 6, 8], "frac_width": "auto"},
                "data_in": [[8, "auto"], [6, "auto"]],
                "bias": "same_as_weight",
            }
        }
    }, 9),  # three Linears x (weight, bias, data_in)
    "by name": ({
        "by": "name",
        "choices": {
            "seq_blocks.3": {"weight": [[5, "auto"], [7, "auto"]], "data_in": [[8, "auto"]]},
            "seq_blocks_5": {"data_in": {"width": [4, 6], "frac_width": "auto"}},  # a ReLU
        },
    }, 3),
}  # fmt: skip


@pytest.mark.parametrize(("space", "n_auto"), list(SPACES.values()), ids=list(SPACES))
def test_every_trial_records_the_calibrated_binary_point(
    space: dict[str, Any], n_auto: int, mlp_gm: fx.GraphModule, digits: DataSplits
) -> None:
    calib = digits.train.x[:256]
    val = (digits.val.x[:200], digits.val.y[:200])
    result = search(mlp_gm, val, space=space, objectives=OBJ, strategy="brute_force",
                    n_trials=20, calibration_data=calib)  # fmt: skip
    ranges = ref_ranges(mlp_gm, calib)
    unsigned = {"seq_blocks_5"}  # a ReLU's input is unsigned by default
    points = {tuple(sorted(t.params.items())) for t in result.trials}
    assert len(points) == result.space_size  # every point visited
    seen = set()
    for t in result.trials:
        assert t.error is None and len(t.formats) == n_auto, t
        config = result.config_of(t)
        assert config is not None
        for name, label in t.formats.items():
            node, role = name.rsplit(".", 1)
            fmt = format_from_str(label)
            lo, hi = ranges[node][role]
            want = ref_frac(fmt.width, node not in unsigned, lo, hi)  # type: ignore[attr-defined]
            assert fmt.frac_width == want, (t.number, name, label, want)  # type: ignore[attr-defined]
            stored = config[node][role]  # the run's config: the same point, never "auto"
            assert (stored["width"], stored["frac_width"]) == (fmt.width, want)  # type: ignore[attr-defined]
            seen.add((name, label))
    assert len({frac for _, frac in seen}) > 2  # the binary points differ between nodes/widths
    df = result.to_dataframe()
    cols = [c for c in df.columns if c.startswith("formats.")]
    assert cols and not df[cols].astype(str).apply(lambda s: s.str.contains("auto")).any().any()


def test_an_explicit_choice_equal_to_the_calibrated_one_is_a_cache_hit() -> None:
    torch.manual_seed(0)
    model = build_model("jsc-tiny").eval()
    x, y = torch.randn(128, 16), torch.randint(0, 5, (128,))
    gm = trace(model, x[:8])
    lo, hi = ref_ranges(gm, x)["seq_blocks_2"]["weight"]
    frac = ref_frac(8, True, lo, hi)
    # brute force visits one point per config: random search draws both spellings (n_trials
    # below the space's size: no stop on exhaustion), for the first seed whose two draws they are
    space = {"choices": {"linear": {"weight": [[8, "auto"], [8, frac], [4, 2]]}}}
    for seed in range(50):
        result = search(gm, (x, y), objectives=OBJ, strategy="random", n_trials=2, seed=seed,
                        space=space)  # fmt: skip
        if len({str(t.params) for t in result.trials} - {"{'linear.weight': 'fixed(4,2)'}"}) == 2:
            break
    first, second = result.trials
    auto, explicit = sorted((first, second), key=lambda t: -len(t.formats))
    assert auto.formats == {"seq_blocks_2.weight": f"fixed(8,{frac})"}
    assert explicit.formats == {}  # an explicit choice: its label says it all
    assert explicit.config_hash == auto.config_hash
    assert second.cached and second.duplicate_of == 0 and result.n_evaluations == 1


def test_activation_auto_without_calibration_samples_is_refused_before_any_trial(
    mlp_gm: fx.GraphModule, digits: DataSplits
) -> None:
    space = {"choices": {"linear": {"weight": [[8, "auto"]], "data_in": [[8, "auto"]]}}}
    with pytest.raises(
        ConfigError,
        match=r"search\.space\.choices\.linear\.data_in: "
        r"frac_width = 'auto' for an activation without calibration samples",
    ):
        search(mlp_gm, (digits.val.x, digits.val.y), space=space, objectives=OBJ)
    with pytest.raises(ConfigError, match=r"^quantize: frac_width = 'auto'"):
        search(
            mlp_gm,
            (digits.val.x, digits.val.y),
            objectives=OBJ,
            space={"choices": {"linear": {"weight": [[8, 4]]}}},
            quantize={"default": {"data_in": {"width": 8, "frac_width": "auto"}}},
        )


def test_points_that_calibrate_to_one_config_count_once() -> None:
    torch.manual_seed(0)
    model = build_model("mlp-digits").eval()
    with torch.no_grad():
        model.seq_blocks[6].weight.mul_(4)  # a range of its own: another binary point
    x, y = torch.randn(64, 64), torch.randint(0, 10, (64,))
    gm = trace(model, x[:8])
    ranges = ref_ranges(gm, x)
    f = ref_frac(8, True, *ranges["seq_blocks_0"]["weight"])
    cfg = parse_search_config(
        {
            "space": {
                "by": "name",
                "choices": {"seq_blocks.0": {"weight": [[8, "auto"], [8, f], [4, 2]]}},
            },
            "objectives": OBJ,
        }
    )
    space, evaluator = prepare_search(gm, cfg, Split(x, y))
    assert (space.size, space.n_configs(evaluator.resolve)) == (3, 2)
    # by type, one knob sets every Linear: [8, f] matches the calibrated point of one node only
    fs = {
        ref_frac(8, True, *ranges[n]["weight"])
        for n in ("seq_blocks_0", "seq_blocks_3", "seq_blocks_6")
    }
    assert len(fs) > 1
    cfg = parse_search_config(
        {
            "space": {"choices": {"linear": {"weight": [[8, "auto"], [8, f], [4, 2]]}}},
            "objectives": OBJ,
        }
    )
    space, evaluator = prepare_search(gm, cfg, Split(x, y))
    assert (space.size, space.n_configs(evaluator.resolve)) == (3, 3)


@pytest.mark.parametrize("strategy", ["brute_force", "random"])
def test_a_search_stops_when_every_config_is_known(strategy: str) -> None:
    """Three points, two configs: ``[8, "auto"]`` calibrates to the explicit ``[8, f]``."""
    torch.manual_seed(0)
    model = build_model("jsc-tiny").eval()
    x, y = torch.randn(128, 16), torch.randint(0, 5, (128,))
    gm = trace(model, x[:8])
    f = ref_frac(8, True, *ref_ranges(gm, x)["seq_blocks_2"]["weight"])
    space = {"choices": {"linear": {"weight": [[8, "auto"], [8, f], [4, 2]]}}}
    result = search(gm, (x, y), objectives=OBJ, strategy=strategy, n_trials=30, space=space)
    assert result.n_evaluations == 2 and len({t.config_hash for t in result.trials}) == 2
    assert len(result.trials) < 30  # stopped on exhaustion, not at the budget
    if strategy == "brute_force":  # one point per config: the second spelling is skipped
        assert len(result.trials) == 2
