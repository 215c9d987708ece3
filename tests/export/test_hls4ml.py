"""hls4ml's C simulation (the referee) against quantsearch's quantized model: bit-exact.

Each config costs one g++ build of the C simulation (4-9 s on 2 cores, about half of it
parsing the ``ap_types`` headers): the always-run tests build two (jsc-tiny, a lab pair on every
layer and a random per-layer config, in parallel); the exhaustive ones (16 lab pairs and 3
random per-layer configs on each model, and the measured inexact exports) are marked slow.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import fx, nn

from quantsearch.errors import ConfigError
from quantsearch.export import WIDE, HlsExport, compile_all, export_hls4ml, plan
from quantsearch.formats import FixedPoint
from quantsearch.graph import trace
from quantsearch.models import build_model
from quantsearch.passes.transform import ResolvedConfig
from tests.export.conftest import (
    LAB,
    LAB_PAIRS,
    MODELS,
    every_layer,
    fixed,
    quantized,
    random_per_layer,
)

Zoo = dict[str, tuple[fx.GraphModule, torch.Tensor]]


Case = tuple[str, fx.GraphModule, torch.Tensor]
SLOW = "test_lab_pairs_on_every_layer_and_random_per_layer_configs_are_bit_exact"


def _build(cases: list[Case], tmp: Path, built: dict[str, HlsExport]) -> list[HlsExport]:
    """Each case's project, built by one ``compile_all`` (two g++ builds at a time, in the
    order given); a case ``built`` already holds (an identical project, built by an earlier
    test of this module) is not built again."""
    new = {
        label: export_hls4ml(q, tmp / f"prj{i}")
        for i, (label, q, _) in enumerate(cases)
        if label not in built
    }
    compile_all(list(new.values()))
    built |= new
    return [built[label] for label, _, _ in cases]


def _check_exact(cases: list[Case], exports: list[HlsExport]) -> None:
    for (label, qgm, x), e in zip(cases, exports, strict=True):
        assert e.plan.exact, e.plan.notes()
        a = e.verify(qgm, x)
        assert a.max_lsb == 0.0 and a.same_class == 1.0, f"{label}: {a}"
        assert a.samples == len(x)
        # the search measured in float32: the same outputs here too
        with torch.no_grad():
            f32 = qgm(x).double().numpy()
        assert (f32 == e.predict(x)).all(), label


@pytest.fixture(scope="module")
def built() -> dict[str, HlsExport]:
    """label -> built project, shared by this module's tests (a label is one config of one
    model: its project is the same whichever test builds it)."""
    return {}


def test_jsc_tiny_lab_pair_and_random_per_layer_config_are_bit_exact(
    zoo: Zoo, tmp_path: Path, built: dict[str, HlsExport]
) -> None:
    gm, x = zoo["jsc-tiny"]
    cases = [
        ("jsc-tiny (8, 4)x(8, 6)", quantized(gm, every_layer(gm, (8, 4), (8, 6))), x),
        ("jsc-tiny random 7", quantized(gm, random_per_layer(gm, 7)), x),
    ]
    _check_exact(cases, _build(cases, tmp_path, built))


def _lab_cases(zoo: Zoo, name: str) -> list[Case]:
    """All 16 lab pairs on the lab's own model; on the others each pair's width as both input
    and weight (every g++ build of hls4ml's C simulation takes 3-8 s of a core: 57 builds
    were three minutes of the suite); then 3 random per-layer configs."""
    gm, x = zoo[name]
    pairs = LAB if name == "jsc-tiny" else [(p, p) for p in LAB_PAIRS]
    cases = [(f"{name} {a}x{w}", quantized(gm, every_layer(gm, a, w)), x) for a, w in pairs]
    cases += [(f"{name} random {s}", quantized(gm, random_per_layer(gm, s)), x) for s in range(3)]
    return cases


@pytest.fixture(scope="module")
def lab_builds(
    zoo: Zoo,
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    built: dict[str, HlsExport],
) -> dict[str, list[Case]]:
    """The cases of every model this session runs the lab-pairs test on, built in one
    ``compile_all``: the random configs first (their builds are the longest), so the
    two cores stay busy to the last build instead of idling at each model's odd one out."""
    names = [
        n for n in MODELS
        if any(i.name == f"{SLOW}[{n}]" for i in request.session.items)
    ]  # fmt: skip
    cases = {name: _lab_cases(zoo, name) for name in names}
    everything = [c for name in names for c in cases[name]]
    everything.sort(key=lambda c: "random" not in c[0])  # stable: the rest in their order
    _build(everything, tmp_path_factory.mktemp("lab"), built)
    return cases


@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS)
def test_lab_pairs_on_every_layer_and_random_per_layer_configs_are_bit_exact(
    lab_builds: dict[str, list[Case]], built: dict[str, HlsExport], name: str
) -> None:
    cases = lab_builds[name]
    _check_exact(cases, [built[label] for label, _, _ in cases])


def _float_bn(gm: fx.GraphModule) -> fx.GraphModule:
    """The lab's by-type config: only the Linear quantized; BatchNorm and ReLUs in float."""
    rc = ResolvedConfig.from_dict(
        {"seq_blocks_2": {"data_in": fixed(8, 4), "weight": fixed(8, 6), "bias": fixed(8, 6)}},
        gm=gm,
    )
    return quantized(gm, rc)


def _two_roundings(gm: fx.GraphModule) -> fx.GraphModule:
    """The Linear's data_out fixed(10,6), then the last ReLU's data_in ufixed(8,4) and its
    data_out ufixed(4,1): three roundings, two layers' result types, and rounding to 2^-4 then
    2^-1 is not rounding to 2^-1 (0.74 -> 0.75 -> 1.0, not 0.5). (Two roundings on a Linear
    and a ReLU are exact: tests/export/test_delivery.py.)"""
    rc = every_layer(gm, (8, 4), (8, 6)).to_dict()
    rc["seq_blocks_2"]["data_out"] = fixed(10, 6)
    rc["seq_blocks_3"]["data_out"] = fixed(4, 1)
    return quantized(gm, ResolvedConfig.from_dict(rc, gm=gm))


def test_float_layers_are_refused_without_a_format_and_named_with_one(
    zoo: Zoo, tmp_path: Path
) -> None:
    qgm = _float_bn(zoo["jsc-tiny"][0])
    with pytest.raises(
        ConfigError,
        match=r"seq_blocks_0\.data_in, seq_blocks_0\.weight, seq_blocks_0\.bias left in float.*--float-as",
    ):
        export_hls4ml(qgm, tmp_path / "refused")
    p = plan(qgm, float_as=WIDE)
    assert not p.exact
    assert any("seq_blocks_0" in n and "float" in n for n in p.notes())


def test_two_roundings_in_a_row_are_named(zoo: Zoo) -> None:
    (note,) = plan(_two_roundings(zoo["jsc-tiny"][0])).notes()
    assert note.startswith("seq_blocks_3 (relu): two roundings in a row")


@pytest.mark.slow
def test_inexact_exports_are_measured(
    zoo: Zoo, tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    """Reported, not asserted exact: a float BatchNorm exported as fixed(32,16), and two
    roundings in a row exported as the second."""
    gm, x = zoo["jsc-tiny"]
    floats, two = _float_bn(gm), _two_roundings(gm)
    e_float = export_hls4ml(floats, tmp_path / "wide", float_as=WIDE)
    e_two = export_hls4ml(two, tmp_path / "two")
    compile_all([e_float, e_two])
    a_float, a_two = e_float.verify(floats, x), e_two.verify(two, x)
    record_property("agreement_float_bn_as_fixed_32_16", str(a_float))
    record_property("agreement_two_roundings", str(a_two))
    print(a_float, a_two, sep="\n")
    assert a_float.same_class > 0.9  # a wide format is close, not exact


def test_unsupported_layers_and_formats_are_named(zoo: Zoo, tmp_path: Path) -> None:
    cnn = trace(build_model("cnn-digits").eval(), torch.zeros(2, 1, 8, 8))
    with pytest.raises(
        ConfigError, match=r"export: got layers conv1 \(conv2d\).*allowed: modules of kinds"
    ):
        plan(quantized(cnn, ResolvedConfig.from_dict({}, gm=cnn)), float_as=WIDE)
    gm, _ = zoo["jsc-tiny"]
    mini = ResolvedConfig.from_dict(
        {
            "seq_blocks_2": {
                "weight": {"format": "minifloat", "exponent_width": 4, "mantissa_width": 3}
            }
        },
        gm=gm,
    )
    with pytest.raises(
        ConfigError, match=r"^seq_blocks_2\.weight: got minifloat.*allowed: fixed or ufixed"
    ):
        export_hls4ml(quantized(gm, mini), tmp_path / "m", float_as=WIDE)
    stoch = every_layer(gm, (8, 4), (8, 4)).to_dict()
    stoch["seq_blocks_2"]["weight"]["rounding"] = "stochastic"
    with pytest.raises(
        ConfigError, match=r"seq_blocks_2\.weight: .*stochastic rounding has no exact"
    ):
        plan(quantized(gm, ResolvedConfig.from_dict(stoch, gm=gm)))


def test_precisions_mean_what_quantsearch_computes(zoo: Zoo, tmp_path: Path) -> None:
    gm, _ = zoo["jsc-tiny"]
    rc = every_layer(gm, (8, 4), (8, 6)).to_dict()
    rc["seq_blocks_2"]["weight"] = fixed(6, 3, rounding="floor")
    e = export_hls4ml(quantized(gm, ResolvedConfig.from_dict(rc, gm=gm)), tmp_path / "p")
    prec = {k: v["Precision"] for k, v in e.config["LayerName"].items()}
    assert prec["x"]["result"] == "ap_fixed<8,4,AP_RND_CONV,AP_SAT>"  # fixed(8,4): 4 int bits
    assert prec["seq_blocks_0"]["scale"] == "ap_fixed<8,2,AP_RND_CONV,AP_SAT>"  # fixed(8,6)
    assert (
        prec["seq_blocks_1"]["result"] == "ap_ufixed<7,3,AP_RND_CONV,AP_SAT>"
    )  # ReLU input ufixed(8,4), then the Linear's fixed(8,4): one grid, both ranges
    assert prec["seq_blocks_2"]["weight"] == "ap_fixed<6,3,AP_TRN,AP_SAT>"  # floor
    # Linear(16, 5): ufixed(7,3) x fixed(6,3) products (4 + 3 signed int bits, 4 + 3 frac),
    # 16 of them plus a fixed(8,6) bias: 5 more int bits, 7 frac
    assert prec["seq_blocks_2"]["accum"] == "ap_fixed<19,12>"
    assert FixedPoint(8, 4).step == 2.0**-4


def test_a_missing_extra_names_it(
    monkeypatch: pytest.MonkeyPatch, zoo: Zoo, tmp_path: Path
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "hls4ml", None)  # import hls4ml now raises ImportError
    gm, _ = zoo["jsc-tiny"]
    with pytest.raises(
        ConfigError,
        match=r"^export --to hls4ml: got no module hls4ml, allowed: install the export extra: pip install 'quantsearch\[export\]'$",
    ):
        export_hls4ml(quantized(gm, every_layer(gm, (8, 4), (8, 4))), tmp_path / "x")


class _TwoCalls(nn.Module):
    """A user model: one Linear called twice (tied weights) between functional ReLUs."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(16, 16)
        self.out = nn.Linear(16, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.a(torch.relu(self.a(x)))))


def _two_calls(alike: bool) -> tuple[fx.GraphModule, torch.Tensor]:
    """Both calls of ``a`` configured alike (one quantized module, called twice) or not (the
    second under ``quantized_nodes``); each ReLU's data_in is the next layer's, one grid."""
    torch.manual_seed(0)
    x = torch.randn(256, 16, generator=torch.Generator().manual_seed(0)) * 2
    gm = trace(_TwoCalls().eval(), x[:8])
    second = (fixed(10, 5), fixed(10, 5)) if alike else (fixed(8, 3), fixed(6, 4))
    layer = {"data_in": fixed(10, 5), "weight": fixed(10, 5), "bias": fixed(10, 5)}
    table = {
        "a": layer,
        "relu": {"data_in": second[0]},
        "a_1": {"data_in": second[0], "weight": second[1], "bias": second[1]},
        "relu_1": {"data_in": fixed(10, 5)},
        "out": layer,
    }
    return quantized(gm, ResolvedConfig.from_dict(table, gm=gm)), x


def test_each_call_of_a_module_called_twice_is_its_own_layer(tmp_path: Path) -> None:
    """hls4ml's layers are the plan's, by name: a float model keyed by module path kept one
    layer for both calls of ``a`` and named function ReLUs ``quantized_nodes_relu``."""
    for alike in (True, False):
        qgm, _ = _two_calls(alike)
        e = export_hls4ml(qgm, tmp_path / f"names{alike}")
        names = [layer.name for layer in e.hls_model.get_layers()]
        assert names == [layer.name for layer in e.plan.layers], names


@pytest.mark.slow
def test_a_module_called_twice_is_bit_exact(tmp_path: Path) -> None:
    cases = [(f"two calls alike={alike}", *_two_calls(alike)) for alike in (True, False)]
    # before the fix: 50% the same class, 32 LSB apart
    _check_exact(cases, _build(cases, tmp_path, {}))


TIED_CHAIN = """
import torch
from torch import nn


def build():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 5))
    model[2].weight = model[0].weight  # tied
    with torch.no_grad():  # on fixed(16, 8)'s grid: the second layer's fixed(8, 4) rounds it alone
        model[0].weight.copy_(torch.round(model[0].weight * 256) / 256)
    return model
"""


def test_a_reloaded_tied_weight_is_the_rounding_hls4ml_is_given(tmp_path: Path) -> None:
    """load_quantized ties the second layer's weight to the first's again (rounded by the
    second in every pass); the float model hls4ml converts took the first's values for it.
    Referee: the float model of the model that was saved, whose outputs it must equal."""
    from quantsearch.export.hls import float_model
    from quantsearch.quantized import load_quantized, save_quantized

    (tmp_path / "tied.py").write_text(TIED_CHAIN)
    x = torch.randn(32, 16, generator=torch.Generator().manual_seed(0))
    gm = trace(build_model("tied.py:build", base_dir=tmp_path).eval(), x[:8])
    layer = {"data_in": fixed(16, 8), "bias": fixed(16, 8)}
    table = {
        "_0": {**layer, "weight": fixed(16, 8)},
        "_2": {**layer, "weight": fixed(8, 4)},
        "_4": {**layer, "weight": fixed(16, 8)},
    }
    qgm = quantized(gm, ResolvedConfig.from_dict(table, gm=gm))
    path = save_quantized(
        tmp_path / "q.pt", qgm, model_name="tied.py:build", dataset="user", sample_shape=(16,),
        base_dir=tmp_path,
    )  # fmt: skip
    reloaded = load_quantized(path)
    assert reloaded.get_submodule("2").weight is reloaded.get_submodule("0").weight
    with torch.no_grad():
        assert torch.equal(float_model(reloaded)(x), float_model(qgm)(x))


def _sequential() -> Case:
    """A user model as most are written: an nn.Sequential at the top, whose input fx names
    ``input_1`` (its forward's ``input``), not ``x``."""
    torch.manual_seed(0)
    x = torch.randn(200, 8, generator=torch.Generator().manual_seed(0)) * 2
    gm = trace(nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3)).eval(), x[:8])
    layer = {"data_in": fixed(6, 3), "weight": fixed(6, 3), "bias": fixed(6, 3)}
    return (
        "sequential",
        quantized(gm, ResolvedConfig.from_dict({"_0": layer, "_2": layer}, gm=gm)),
        x,
    )


def test_the_input_of_a_sequential_gets_its_data_in_format(tmp_path: Path) -> None:
    """Referee: the precision hls4ml's own Input layer took. The input's format was keyed by
    the placeholder's name, which hls4ml's input layer does not have: it stayed hls4ml's
    default, fixed<32,16>, unrounded (96.67% the same class, 24 LSB, on a user search)."""
    _, qgm, _ = _sequential()
    assert next(n.name for n in qgm.graph.nodes if n.op == "placeholder") == "input_1"
    e = export_hls4ml(qgm, tmp_path / "p")
    first = next(iter(e.hls_model.get_layers()))
    assert first.class_name == "Input"
    assert str(first.get_output_variable().type.precision) == "fixed<6,3,RND_CONV,SAT,0>"


@pytest.mark.slow
def test_a_sequential_is_bit_exact(tmp_path: Path) -> None:
    cases = [_sequential()]
    _check_exact(cases, _build(cases, tmp_path, {}))
