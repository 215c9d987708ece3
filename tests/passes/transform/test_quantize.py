"""The quantize pass: a new module, its input untouched, layers equal to hand-built ones."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from unittest import mock

import pytest
import torch
import torch.nn.functional as F
from torch import fx, nn

from quantsearch.data import DataSplits
from quantsearch.errors import ConfigError
from quantsearch.formats import FixedPoint
from quantsearch.graph import info, op_kind_of, trace
from quantsearch.models import MODELS, build_model
from quantsearch.passes.transform import (
    ResolvedConfig,
    calibrate,
    parse_quantize_config,
    quantize,
    resolve,
)
from quantsearch.passes.transform.modules import (
    QuantBatchNorm1d,
    QuantBatchNorm2d,
    QuantConv1d,
    QuantConv2d,
    QuantLinear,
)
from tests.passes.transform.conftest import fixed, fx_table
from tests.tied import TiedHead

EIGHT_BIT = {
    "default": {"data_in": fx_table(8, 4), "weight": fx_table(8, 4), "bias": fx_table(8, 4)},
}


def snapshot(gm: fx.GraphModule) -> dict[str, object]:
    return {
        "state": {k: v.clone() for k, v in gm.state_dict(keep_vars=True).items()},
        "grads": {k: p.grad for k, p in gm.named_parameters()},
        "ids": {k: id(v) for k, v in gm.state_dict(keep_vars=True).items()},
        "code": gm.code,
        "modes": [(n, m.training) for n, m in gm.named_modules()],
        "types": [(n, type(m)) for n, m in gm.named_modules()],
        "meta": [(n.name, copy.deepcopy(info(n))) for n in gm.graph.nodes],
    }


def assert_untouched(gm: fx.GraphModule, before: dict[str, object]) -> None:
    now = gm.state_dict(keep_vars=True)
    assert {k: id(v) for k, v in now.items()} == before["ids"]
    for k, v in before["state"].items():  # type: ignore[attr-defined]
        assert torch.equal(now[k], v) and now[k].dtype == v.dtype, k  # bit-identical
    assert {k: p.grad for k, p in gm.named_parameters()} == before["grads"]  # no grads appeared
    assert gm.code == before["code"]
    assert [(n, m.training) for n, m in gm.named_modules()] == before["modes"]
    assert [(n, type(m)) for n, m in gm.named_modules()] == before["types"]
    assert [(n.name, info(n)) for n in gm.graph.nodes] == before["meta"]


# --------------------------------------------------------------------------------------------
# never touches its input


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_input_module_parameters_and_config_are_unchanged(
    mlp_gm: fx.GraphModule, digits: DataSplits, mode: str
) -> None:
    gm = mlp_gm.train(mode == "train")
    raw = copy.deepcopy(EIGHT_BIT)
    cfg = parse_quantize_config(raw)
    cfg_before = copy.deepcopy(cfg)
    before = snapshot(gm)
    qgm = quantize(gm, cfg)
    # forward, backward, an optimizer step, mode switches: none of it reaches the input
    opt = torch.optim.SGD(qgm.parameters(), lr=0.1)
    for _ in range(2):
        loss = F.cross_entropy(qgm(digits.train.x[:64]), digits.train.y[:64])
        loss.backward()
        opt.step()
    qgm.train(mode != "train")
    qgm(digits.val.x[:16])
    assert_untouched(gm, before)
    assert cfg == cfg_before and raw == EIGHT_BIT
    shared = {id(t) for t in gm.state_dict(keep_vars=True).values()}
    assert not shared & {id(t) for t in qgm.state_dict(keep_vars=True).values()}
    assert not {id(m) for m in gm.modules()} & {id(m) for m in qgm.modules()}


def test_result_has_the_same_nodes_with_precision_recorded(mlp_gm: fx.GraphModule) -> None:
    qgm = quantize(mlp_gm, parse_quantize_config(EIGHT_BIT))
    assert qgm is not mlp_gm and isinstance(qgm, fx.GraphModule)
    old, new = list(mlp_gm.graph.nodes), list(qgm.graph.nodes)
    assert [n.name for n in old] == [n.name for n in new]
    modules = dict(qgm.named_modules())
    for o, n in zip(old, new, strict=True):
        ni, oi = info(n), info(o)
        assert ni is not oi and ni.op_kind == oi.op_kind == op_kind_of(n, modules)
        assert ni.inputs == oi.inputs and ni.outputs == oi.outputs and ni.cost == {}
        assert oi.precision == {}  # the input's records are not written to
    prec = {n.name: info(n).precision for n in new if info(n).precision}
    assert prec["seq_blocks_0"] == {
        "data_in": FixedPoint(8, 4),
        "weight": FixedPoint(8, 4),
        "bias": FixedPoint(8, 4),
    }
    assert prec["seq_blocks_2"] == {"data_in": FixedPoint(8, 4, signed=False)}
    assert all(f.bits_per_element == 8 for p in prec.values() for f in p.values())
    assert ResolvedConfig.from_graph(qgm) == resolve(mlp_gm, parse_quantize_config(EIGHT_BIT))


# --------------------------------------------------------------------------------------------
# layers against hand-built quantized layers


@pytest.mark.parametrize(
    ("conv_cls", "shape", "qcls", "fn"),
    [
        (nn.Conv1d, (4, 3, 9), QuantConv1d, F.conv1d),
        (nn.Conv2d, (4, 3, 9, 9), QuantConv2d, F.conv2d),
    ],
)
def test_conv_with_bias_matches_a_hand_built_layer(
    conv_cls: type, shape: tuple, qcls: type, fn: Callable[..., torch.Tensor]
) -> None:
    torch.manual_seed(0)
    conv, x = conv_cls(3, 5, 3, padding=1, stride=2), torch.randn(*shape)
    gm = trace(nn.Sequential(conv).eval(), x)
    rc = ResolvedConfig.from_dict(
        {
            "_0": {
                "data_in": fx_table(8, 4),
                "weight": fx_table(6, 5),
                "bias": fx_table(6, 3),
                "data_out": fx_table(8, 3),
            }
        }
    )
    q = quantize(gm, rc).get_submodule("0")
    assert type(q) is qcls and isinstance(q, type(conv))
    assert q.weight.shape == conv.weight.shape and q.bias.shape == conv.bias.shape
    assert torch.equal(q.weight, fixed(conv.weight.detach(), 6, 5))  # on the grid, carried over
    assert torch.equal(q.bias, fixed(conv.bias.detach(), 6, 3))
    assert (q.bias != 0).any()  # MASE dropped conv biases
    w, b = fixed(conv.weight, 6, 5), fixed(conv.bias, 6, 3)
    want = fixed(fn(fixed(x, 8, 4), w, b, stride=2, padding=1), 8, 3)
    with torch.no_grad():
        assert torch.equal(q(x), want)


@pytest.mark.parametrize(
    ("layer", "shape"),
    [
        (nn.Linear(4, 3), (2, 4)),
        (nn.Linear(4, 3, bias=False), (2, 4)),
        (nn.Conv1d(2, 3, 3), (2, 2, 5)),
        (nn.Conv2d(2, 3, 3, groups=1, dilation=2, padding=2), (2, 2, 6, 6)),
        (nn.BatchNorm1d(4), (3, 4)),
        (nn.BatchNorm2d(2, momentum=None), (3, 2, 4, 4)),
        (nn.BatchNorm1d(4, affine=False), (3, 4)),
        (nn.ReLU(inplace=True), (2, 4)),
    ],
)
def test_every_parameter_buffer_and_setting_is_carried_over(layer: nn.Module, shape: tuple) -> None:
    torch.manual_seed(0)
    layer.train()
    for _ in range(3):  # move BN statistics off their initial values
        layer(torch.randn(*shape))
    gm = trace(nn.Sequential(layer).train(), torch.randn(*shape))
    kind = info(next(n for n in gm.graph.nodes if n.op == "call_module")).op_kind  # after a
    roles = {"data_in": fx_table(8, 4)}  # clone of the input where ReLU(inplace=True) changes it
    if kind != "relu":
        roles |= {"weight": fx_table(8, 4), "bias": fx_table(8, 4)}
    q = quantize(gm, ResolvedConfig.from_dict({"_0": roles}, gm=gm)).get_submodule("0")
    assert type(q).__name__.startswith("Quant") and isinstance(q, type(layer))
    before, after = layer.state_dict(), q.state_dict()
    assert list(after) == list(before)
    for k in before:  # training mode: float master copies, bit-identical, not shared
        assert torch.equal(after[k], before[k]) and after[k].data_ptr() != before[k].data_ptr(), k
    assert q.extra_repr().startswith(layer.extra_repr())  # stride, eps, momentum, inplace ...


@pytest.mark.parametrize(
    ("bn_cls", "qcls", "shape"),
    [(nn.BatchNorm1d, QuantBatchNorm1d, (6, 4)), (nn.BatchNorm2d, QuantBatchNorm2d, (6, 4, 3, 3))],
)
def test_batch_norm_carries_running_stats_and_uses_them_in_eval(
    bn_cls: type, qcls: type, shape: tuple
) -> None:
    torch.manual_seed(0)
    bn = bn_cls(4)
    for _ in range(5):  # non-trivial running statistics
        bn(torch.randn(*shape) * 3 + 2)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-1, 1)
    bn.eval()
    x = torch.randn(*shape) * 3 + 2
    gm = trace(nn.Sequential(bn).eval(), x)
    rc = ResolvedConfig.from_dict(
        {"_0": {"data_in": fx_table(8, 4), "weight": fx_table(8, 6), "bias": fx_table(8, 5)}}
    )
    qgm = quantize(gm, rc)
    q = qgm.get_submodule("0")
    assert isinstance(q, qcls)
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        assert torch.equal(getattr(q, name), getattr(bn, name)) and getattr(q, name) is not getattr(
            bn, name
        )
    assert int(q.num_batches_tracked) == 5 and not torch.equal(q.running_mean, torch.zeros(4))
    # folded, as hardware computes it: the formats quantize scale and shift, not gamma and beta
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    shift = bn.bias - bn.running_mean * scale
    view = [1, -1] + [1] * (x.dim() - 2)
    want = fixed(x, 8, 4) * fixed(scale, 8, 6).view(view) + fixed(shift, 8, 5).view(view)
    with torch.no_grad():
        assert torch.equal(qgm(x), want)
    # training mode: batch statistics, and the running ones move on the copy only
    q.train()
    mean_before = bn.running_mean.clone()
    q(x)
    assert not torch.equal(q.running_mean, mean_before) and torch.equal(
        bn.running_mean, mean_before
    )
    assert int(q.num_batches_tracked) == 6 and int(bn.num_batches_tracked) == 5


def test_batch_norm1d_in_the_zoo_is_quantized(mlp_gm: fx.GraphModule) -> None:
    qgm = quantize(mlp_gm, parse_quantize_config(EIGHT_BIT))
    assert isinstance(qgm.get_submodule("seq_blocks.1"), QuantBatchNorm1d)
    assert (
        info(next(n for n in qgm.graph.nodes if n.name == "seq_blocks_1")).op_kind == "batch_norm1d"
    )


def test_function_nodes_become_quantized_modules() -> None:
    class Ops(nn.Module):
        def forward(self, x: torch.Tensor, y: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            s = F.relu(x + y)
            m = (s * y).matmul(y.transpose(0, 1))
            return torch.bmm(b, b) + m.add(1.0).sum()

    torch.manual_seed(0)
    args = (torch.randn(3, 4), torch.randn(3, 4), torch.randn(2, 3, 3))
    gm = trace(Ops(), *args)
    cfg = parse_quantize_config(
        {"default": {"data_in": fx_table(6, 3), "data_out": fx_table(8, 2)}}
    )
    qgm = quantize(gm, cfg)
    x, y, b = args
    q_in, q_out = (lambda t: fixed(t, 6, 3)), (lambda t: fixed(t, 8, 2))
    s = q_out(F.relu(fixed(q_out(q_in(x) + q_in(y)), 6, 3, signed=False)))
    s = fixed(s, 8, 2, signed=False)
    m = q_out(q_in(q_out(q_in(s) * q_in(y))) @ q_in(y).transpose(0, 1))
    want = q_out(q_in(q_out(q_in(b) @ q_in(b))) + q_in(q_out(q_in(m) + 1.0).sum()))
    with torch.no_grad():
        assert torch.equal(qgm(*args), want)
    kinds = {n.name: info(n).op_kind for n in qgm.graph.nodes if info(n).precision}
    assert kinds == {
        "add": "add",
        "relu": "relu",
        "mul": "mul",
        "matmul": "matmul",
        "bmm": "bmm",
        "add_1": "add",
        "add_2": "add",
    }
    assert all(n.op == "call_module" for n in qgm.graph.nodes if n.name in kinds)
    assert all(n.op != "call_module" for n in gm.graph.nodes)  # the input graph is as it was


def test_a_module_called_twice_with_different_configs_gets_two_copies() -> None:
    class Twice(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 4)
            self.relu = nn.ReLU()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.relu(self.fc(self.relu(x)))

    torch.manual_seed(0)
    x = torch.randn(5, 4) * 4
    gm = trace(Twice().eval(), x)
    same = quantize(gm, parse_quantize_config({"default": {"data_in": fx_table(4, 1)}}))
    assert len([m for m in same.modules() if type(m).__name__ == "QuantReLU"]) == 1
    cfg = parse_quantize_config({"by_name": {"relu_1": {"data_in": fx_table(4, 1)}}})
    qgm = quantize(gm, cfg)
    fc = gm.get_submodule("fc")
    with torch.no_grad():
        want = fixed(fc(F.relu(x)), 4, 1, signed=False)
        assert torch.equal(qgm(x), want)
    assert info(next(n for n in qgm.graph.nodes if n.name == "relu")).precision == {}


def test_quantizing_a_quantized_graph_again_uses_the_new_formats(
    mlp_gm: fx.GraphModule, digits: DataSplits
) -> None:
    once = quantize(mlp_gm, parse_quantize_config(EIGHT_BIT))
    four = {
        "default": {"data_in": fx_table(4, 2), "weight": fx_table(4, 2), "bias": fx_table(4, 2)}
    }
    twice = quantize(once, parse_quantize_config(four))
    direct = quantize(mlp_gm, parse_quantize_config(four))
    x = digits.val.x[:32]
    with torch.no_grad():
        assert not torch.equal(twice(x), once(x))
        assert torch.isfinite(twice(x)).all() and ResolvedConfig.from_graph(
            twice
        ) == ResolvedConfig.from_graph(direct)


# --------------------------------------------------------------------------------------------
# eval mode: weights quantized once; training mode: in the forward pass, gradients flow


def test_eval_mode_quantizes_weights_at_transform_time_only(
    mlp_gm: fx.GraphModule, digits: DataSplits
) -> None:
    rc = ResolvedConfig.from_dict(
        {"seq_blocks_0": {"weight": fx_table(8, 4), "bias": fx_table(8, 4)}}
    )
    qgm = quantize(mlp_gm, rc)
    lin = qgm.get_submodule("seq_blocks.0")
    assert isinstance(lin, QuantLinear) and lin.weights_on_grid
    assert torch.equal(
        lin.weight, fixed(mlp_gm.get_submodule("seq_blocks.0").weight.detach(), 8, 4)
    )
    with (
        mock.patch.object(
            FixedPoint, "quantize", autospec=True, side_effect=FixedPoint.quantize
        ) as spy,
        torch.no_grad(),
    ):
        qgm(digits.val.x[:8])
    assert spy.call_count == 0


def test_training_mode_quantizes_in_forward_with_straight_through_gradients(
    mlp_gm: fx.GraphModule, digits: DataSplits
) -> None:
    gm = mlp_gm.train()
    rc = ResolvedConfig.from_dict(
        {"seq_blocks_0": {"weight": fx_table(4, 2), "data_in": fx_table(8, 4)}}
    )
    qgm = quantize(gm, rc)
    lin = qgm.get_submodule("seq_blocks.0")
    float_w = gm.get_submodule("seq_blocks.0").weight
    assert torch.equal(lin.weight, float_w) and not lin.weights_on_grid  # float master weights
    x = digits.train.x[:64]
    with mock.patch.object(
        FixedPoint, "quantize", autospec=True, side_effect=FixedPoint.quantize
    ) as spy:
        out = qgm(x)
    assert spy.call_count == 2  # weight and data_in, in the forward pass
    F.cross_entropy(out, digits.train.y[:64]).backward()
    grad = lin.weight.grad
    assert grad is not None and grad.abs().sum() > 0
    inside = float_w.detach().abs() < 1.75  # 4-bit, 2 fractional bits: [-2, 1.75]
    assert (grad[~inside & (float_w.detach() > 1.75)] == 0).all()  # clipped where saturated
    qgm.eval()  # after training, eval still quantizes the (moved) float weights
    with torch.no_grad():
        y = qgm(x)
        h = F.linear(fixed(x, 8, 4), fixed(lin.weight, 4, 2), lin.bias)
        for i in range(1, 7):
            h = qgm.get_submodule(f"seq_blocks.{i}")(h)  # float layers, as in the input
        assert torch.equal(y, h)


# --------------------------------------------------------------------------------------------
# accuracy: 16 bits is close to float, 2 bits is not


def _accuracy(model: nn.Module, split: object) -> float:
    with torch.no_grad():
        return float((model(split.x).argmax(1) == split.y).float().mean())  # type: ignore[attr-defined]


def _all_roles(width: int, frac: int) -> dict[str, object]:
    t = fx_table(width, frac)
    return {"default": {"data_in": t, "weight": t, "bias": t, "data_out": t}}


def test_16_bit_fixed_point_keeps_logits_within_the_sqnr_bound(
    mlp_gm: fx.GraphModule, digits: DataSplits
) -> None:
    x = digits.val.x
    assert x.abs().max() < 256  # standardised pixels reach ~186: activations get 8 integer bits
    act, par = fx_table(16, 7), fx_table(16, 12)
    cfg = {"default": {"data_in": act, "data_out": act, "weight": par, "bias": par}}
    qgm = quantize(mlp_gm, parse_quantize_config(cfg))
    with torch.no_grad():
        y, yq = mlp_gm(x), qgm(x)
    sqnr_db = 20 * math.log10(y.norm() / (y - yq).norm())
    assert sqnr_db > 40.0  # the stated bound, for 16 bits on every tensor; measured ~52 dB
    assert _accuracy(qgm, digits.val) >= _accuracy(mlp_gm, digits.val) - 0.01


def test_2_bit_fixed_point_visibly_hurts_accuracy(
    mlp_gm: fx.GraphModule, digits: DataSplits
) -> None:
    base = _accuracy(mlp_gm, digits.val)
    assert base > 0.85
    two = _accuracy(quantize(mlp_gm, parse_quantize_config(_all_roles(2, 1))), digits.val)
    assert two < base - 0.3


# --------------------------------------------------------------------------------------------
# the zoo


@pytest.mark.parametrize("name", MODELS.names())
def test_every_zoo_model_quantizes_and_still_traces(name: str) -> None:
    torch.manual_seed(0)
    spec = MODELS.get(name)
    x = torch.randn(16, *spec.input_shape)
    gm = trace(build_model(name).eval(), x)
    qgm = quantize(gm, parse_quantize_config(EIGHT_BIT))
    with torch.no_grad():
        out = qgm(x)
    assert out.shape == gm(x).shape and torch.isfinite(out).all()
    quantized = [n for n in qgm.graph.nodes if info(n).precision]
    assert quantized and all(
        type(qgm.get_submodule(n.target)).__name__.startswith("Quant") for n in quantized
    )
    again = trace(qgm, x)  # quantized modules are fx leaves: the same ops, in the same order
    assert [info(n).op_kind for n in again.graph.nodes] == [
        info(n).op_kind for n in qgm.graph.nodes
    ]
    with torch.no_grad():
        assert torch.equal(again(x), out)


# --------------------------------------------------------------------------------------------
# errors


def test_auto_activation_without_calibration_is_a_clear_error(
    mlp_gm: fx.GraphModule, digits: DataSplits
) -> None:
    cfg = parse_quantize_config({"by_type": {"linear": {"data_in": fx_table(8, "auto")}}})
    with pytest.raises(
        ConfigError,
        match=r"quantize\.by_type\.linear\.data_in: frac_width = 'auto' for the data_in of node 'seq_blocks_0' needs calibration statistics",
    ):
        quantize(mlp_gm, cfg)
    stats = calibrate(mlp_gm, digits.train.x[:256])
    qgm = quantize(mlp_gm, cfg, calibration=stats)
    lo, hi = stats.range("seq_blocks_0", "data_in")
    frac = FixedPoint.frac_width_for(8, True, max(abs(lo), hi))
    assert info(list(qgm.graph.nodes)[1]).precision["data_in"] == FixedPoint(8, frac)


def test_a_resolved_config_for_another_graph_is_rejected(mlp_gm: fx.GraphModule) -> None:
    rc = ResolvedConfig.from_dict({"conv1": {"weight": fx_table(8, 4)}})
    with pytest.raises(
        ConfigError, match=r"config\.conv1: got 'conv1', which names no node or module"
    ):
        quantize(mlp_gm, rc)
    with pytest.raises(ConfigError, match=r"must be a QuantizeConfig or ResolvedConfig"):
        quantize(mlp_gm, {"default": {}})  # type: ignore[arg-type]


def test_copies_of_one_tensor_train_as_one_and_round_apart() -> None:
    """In training mode (quantization-aware fine-tuning) the tied weight and the two copies
    of fc were trained apart, untying the user's model; in eval mode each copy holds its own
    rounding."""
    torch.manual_seed(0)
    idx, y = torch.randint(0, 10, (8, 4)), torch.randint(0, 10, (8,))
    gm = trace(TiedHead(), idx)
    table = {
        "head": {"weight": FixedPoint(8, 4).to_dict()},
        "fc": {"weight": FixedPoint(8, 4).to_dict()},
        "fc_1": {"weight": FixedPoint(4, 2).to_dict()},
    }
    rc = ResolvedConfig.from_dict(table, gm=gm)
    qgm = quantize(gm.train(), rc)
    fc_1 = qgm.get_submodule("quantized_nodes.fc_1")
    assert qgm.head.weight is qgm.emb.weight and fc_1.weight is qgm.fc.weight
    assert len(list(qgm.parameters())) == len(list(gm.parameters())) == 3
    opt = torch.optim.SGD(qgm.parameters(), lr=0.1)
    F.cross_entropy(qgm(idx), y).backward()
    opt.step()  # one step moves each tied tensor once, for every use
    assert qgm.head.weight is qgm.emb.weight and not torch.equal(qgm.emb.weight, gm.emb.weight)
    evq = quantize(gm.eval(), rc)
    assert torch.equal(evq.head.weight, fixed(gm.emb.weight, 8, 4))
    assert torch.equal(evq.emb.weight, gm.emb.weight)  # float where emb reads it
    assert torch.equal(evq.get_submodule("quantized_nodes.fc_1").weight, fixed(gm.fc.weight, 4, 2))


class _TiedAutoencoder(nn.Module):
    """An autoencoder whose decoder is the encoder's weight transposed (F.linear of
    ``self.enc.weight.t()``), and a head."""

    def __init__(self) -> None:
        super().__init__()
        self.enc = nn.Linear(16, 6)
        self.dec_bias = nn.Parameter(torch.randn(16) * 0.1)
        self.head = nn.Linear(22, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = torch.relu(self.enc(x))
        r = F.linear(z, self.enc.weight.t(), self.dec_bias)
        return self.head(torch.cat([z, r], 1))


@pytest.mark.parametrize(("enc", "dec"), [((4, 2), (6, 3)), ((4, 2), None), (None, (4, 2))])
def test_a_quantized_layers_weight_read_elsewhere_is_its_float_tensor(
    enc: tuple[int, int] | None, dec: tuple[int, int] | None
) -> None:
    """The decoder reads the quantized encoder's weight through ``self.enc.weight.t()``: the
    read took enc's rounding (fixed(4, 2)), so the decoder's weight fixed(6, 3) computed on
    enc's coarser grid. A reader with a format of its own now rounds the float tensor to it;
    one without (the decoder left in float) reads enc's stored rounding, as any other read
    of a quantized layer's tensor does. The model written out with torch.round (referee), in
    eval mode, and the prepared slots of a search give quantize()'s outputs."""
    torch.manual_seed(0)
    model, x = _TiedAutoencoder().eval(), torch.randn(8, 16)
    gm = trace(model, x)
    table = {}
    if enc is not None:
        table["enc"] = {"weight": FixedPoint(*enc).to_dict()}
    if dec is not None:
        table["linear"] = {"weight": FixedPoint(*dec).to_dict()}
    qgm = quantize(gm, ResolvedConfig.from_dict(table, gm=gm))
    w = model.enc.weight
    with torch.no_grad():
        w_enc = w if enc is None else fixed(w, *enc)
        w_dec = w_enc if dec is None else fixed(w, *dec)
        z = torch.relu(F.linear(x, w_enc, model.enc.bias))
        want = model.head(torch.cat([z, F.linear(z, w_dec.t(), model.dec_bias)], 1))
        assert torch.equal(qgm(x), want)
    assert torch.equal(model.enc.weight, w) and torch.equal(gm.enc.weight, w)
    from quantsearch.data import Split
    from quantsearch.search.api import prepare_search
    from quantsearch.search.config import parse_search_config

    space = {"by": "type", "choices": {"linear": {"weight": [[8, 4], [4, 2]]}}}
    cfg = parse_search_config({"space": space, "objectives": {"accuracy": {}}, "device": "cpu"})
    _, evaluator = prepare_search(gm, cfg, Split(x, torch.arange(8) % 5))
    with torch.no_grad():
        assert torch.equal(
            evaluator.prepared().apply_(ResolvedConfig.from_dict(table, gm=gm))(x), want
        )
