"""Parameters, buffers, bit-true size and average bitwidth, against sum(p.numel()) and hand counts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import quantsearch.passes.analysis.owned as owned_module
from quantsearch.graph import PARAM_ORIGINS, info, trace
from quantsearch.metrics import compute_metrics
from quantsearch.metrics.static import StaticMetrics
from quantsearch.models import MODELS, build_model
from quantsearch.passes.analysis import (
    count_node_params,
    count_params,
    counted_before,
    param_cost,
    shares_tensors,
)
from quantsearch.passes.transform import ResolvedConfig, quantize
from tests.tied import TiedHead


@dataclass(frozen=True)
class Bits:
    """Any object with ``bits_per_element`` stands in for a number format."""

    bits_per_element: int | float


def _node(gm: torch.fx.GraphModule, name: str) -> torch.fx.Node:
    return next(n for n in gm.graph.nodes if n.name == name)


@pytest.mark.parametrize("name", MODELS.names())
def test_param_totals_equal_sum_numel_for_every_zoo_model(name: str) -> None:
    spec = MODELS.get(name)
    model = build_model(name).eval()
    gm = trace(model, torch.randn(4, *spec.input_shape))
    p = param_cost(gm)
    assert p.params == sum(t.numel() for t in model.parameters())
    assert p.trainable_params == sum(t.numel() for t in model.parameters() if t.requires_grad)
    assert p.buffers == sum(t.numel() for t in model.buffers())
    assert p.unattributed_params == 0
    # Float32 everywhere: 32 bits per parameter; int64 num_batches_tracked costs 64 bits.
    assert p.model_size_bits == 32 * p.params
    assert p.buffer_bits == sum(t.numel() * t.element_size() * 8 for t in model.buffers())
    assert p.avg_weight_bits == p.avg_param_bits == 32.0
    # Per-layer rows add up to the totals.
    count_params(gm)
    assert sum(info(n).cost.get("params", 0) for n in gm.graph.nodes) == p.params


def test_jsc_tiny_with_8_bit_linear_weights_by_hand() -> None:
    gm = trace(build_model("jsc-tiny").eval(), torch.ones(8, 16))
    info(_node(gm, "seq_blocks_2")).precision["weight"] = Bits(8)
    p = param_cost(gm)
    # BatchNorm1d(16): gamma + beta = 32 float32; Linear(16, 5): 80 weights at 8 bits and
    # 5 float32 biases. Buffers: running mean and var (16 + 16 float32) + int64 counter.
    assert p.params == 32 + 80 + 5 == 117
    assert p.model_size_bits == 32 * 32 + 80 * 8 + 5 * 32 == 1824
    assert p.model_size_bytes == 1824 / 8
    assert p.buffers == 33 and p.buffer_bits == 32 * 32 + 64
    assert p.avg_weight_bits == 8.0  # MASE's: linear/conv weights only
    assert p.avg_param_bits == pytest.approx(1824 / 117)  # every parameter

    info(_node(gm, "seq_blocks_2")).precision["bias"] = Bits(8)
    info(_node(gm, "seq_blocks_0")).precision["weight"] = Bits(16)  # BN's gamma
    p = param_cost(gm)
    assert p.model_size_bits == 16 * 16 + 16 * 32 + 80 * 8 + 5 * 8
    assert p.avg_weight_bits == 8.0


def test_fractional_bits_per_element() -> None:
    gm = trace(nn.Sequential(nn.Linear(4, 2, bias=False)), torch.ones(1, 4))
    info(_node(gm, "_0")).precision["weight"] = Bits(4.25)  # e.g. block FP with a shared exponent
    assert param_cost(gm).model_size_bits == 8 * 4.25


def test_function_call_weights_priced_at_the_consumer_precision() -> None:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.randn(3, 4))
            self.b = nn.Parameter(torch.randn(3))
            self.scale = nn.Parameter(torch.ones(3))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return F.linear(x, self.w, self.b) * self.scale

    gm = trace(Net(), torch.ones(2, 4))
    info(_node(gm, "linear")).precision.update(weight=Bits(4), bias=Bits(8))
    p = param_cost(gm)
    assert p.params == 12 + 3 + 3
    assert p.model_size_bits == 12 * 4 + 3 * 8 + 3 * 32
    assert p.avg_weight_bits == 4.0


def test_shared_module_and_tied_weights_counted_once() -> None:
    class Shared(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 4)
            self.out = nn.Linear(4, 4)
            self.out.weight = self.fc.weight  # tied

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.out(self.fc(self.fc(x)))

    model = Shared()
    gm = trace(model, torch.ones(2, 4))
    p = param_cost(gm)
    assert p.params == sum(t.numel() for t in model.parameters()) == 16 + 4 + 4
    assert p.weight_elems == 16
    # fc's two calls and out (its weight tied to fc's) share tensors
    assert shares_tensors(gm) == [False, True, True, True, False]
    nodes = list(gm.graph.nodes)
    modules = dict(gm.named_modules())
    assert counted_before(gm, nodes[1], modules) == set()
    assert counted_before(gm, nodes[3], modules) == {id(t) for t in model.fc.parameters()}
    costs = [dict(info(n).cost) for n in nodes]
    for n in nodes[1:4]:  # one node priced alone, after what count_params counted before it
        info(n).cost.clear()
        count_node_params(gm, n, modules, counted_before(gm, n, modules))
    assert [dict(info(n).cost) for n in nodes] == costs


W8, W4 = (
    {"format": "fixed", "width": 8, "frac_width": 4},
    {"format": "fixed", "width": 4, "frac_width": 2},
)


@pytest.mark.parametrize(
    "table",
    [
        {},
        {"head": {"weight": W8}},  # the tied weight: float at emb, 8-bit at head
        {"fc": {"weight": W8}, "fc_1": {"weight": W4}},  # fc copied for its second call
        {"fc": {"weight": W8, "bias": W8}, "fc_1": {"data_in": W8}, "head": {"data_in": W4}},
    ],
)
def test_quantize_copies_of_one_tensor_are_counted_once(table: dict[str, Any]) -> None:
    """quantize copies every module, so the tied weight became two tensors and fc's second
    call under another config a third copy: params was 60 + 42 + 60 over sum(p.numel()). Each
    is counted once, at the first node that uses it, as in the float model, at the widest
    format its users apply."""
    model = TiedHead().eval()
    gm = trace(model, torch.randint(0, 10, (3, 4)))
    qgm = quantize(gm, ResolvedConfig.from_dict(table, gm=gm))
    p = param_cost(qgm)
    assert p.params == sum(t.numel() for t in model.parameters()) == 60 + 42
    # fc's weight and bias at the widest format of fc's two calls (float where one has none)
    fc_bits, bias_bits = (
        max(table.get(n, {}).get(role, {}).get("width", 32) for n in ("fc", "fc_1"))
        for role in ("weight", "bias")
    )
    assert p.model_size_bits == 60 * 32 + 36 * fc_bits + 6 * bias_bits  # emb reads it in float
    # fc's weight once, and head's (the embedding's table) once: both are linear weights,
    # though the embedding, met first in the graph, counts the tensor's size
    assert p.weight_elems == 36 + 60
    assert p.weight_elems == param_cost(gm).weight_elems


def test_frozen_parameters_are_not_trainable() -> None:
    model = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))
    model[0].weight.requires_grad_(False)
    p = param_cost(trace(model.eval(), torch.ones(2, 4)))
    assert (p.params, p.trainable_params) == (12 + 3 + 6, 3 + 6)


def test_fixed_point_format_if_available() -> None:
    formats = pytest.importorskip("quantsearch.formats")
    fmt = formats.FixedPoint(width=8, frac_width=4)
    assert fmt.bits_per_element == 8
    gm = trace(build_model("jsc-tiny").eval(), torch.ones(8, 16))
    info(_node(gm, "seq_blocks_2")).precision["weight"] = fmt
    assert param_cost(gm).model_size_bits == 32 * 32 + 80 * 8 + 5 * 32


def test_matmul_parameter_priced_at_the_consumer_data_in_precision() -> None:
    # a quantized matmul rounds every operand, a get_attr parameter included, to data_in
    # (tests/passes/analysis/test_operands.py checks this through the real quantize pass)
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.randn(4, 3))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x @ self.w

    gm = trace(Net(), torch.ones(2, 4))
    info(_node(gm, "matmul")).precision["data_in"] = Bits(2)
    assert param_cost(gm).model_size_bits == 12 * 2


@pytest.mark.parametrize("first", [W4, W8])
def test_a_tensor_two_nodes_quantize_apart_is_stored_at_the_widest_format(
    first: dict[str, Any],
) -> None:
    """fc called twice under fixed(4,2) and fixed(8,4), in either order: its one weight is
    stored at 8 bits (it was priced at the first call's format, 4 bits in one order); the
    tied head weight read in float by the embedding stays 32 bits however head is quantized.
    The static metrics' memo, which prices nodes apart, agrees with the passes."""
    second = W8 if first is W4 else W4
    model = TiedHead().eval()
    gm = trace(model, torch.randint(0, 10, (3, 4)))
    table = {"fc": {"weight": first}, "fc_1": {"weight": second}, "head": {"weight": W4}}
    rc = ResolvedConfig.from_dict(table, gm=gm)
    qgm = quantize(gm, rc)
    p = param_cost(qgm)
    assert p.model_size_bits == 60 * 32 + 36 * 8 + 6 * 32
    assert p.weight_bits == 36 * 8 + 60 * 32  # head's weight: the float table emb reads
    names = ["model_size_bits", "avg_weight_bits", "avg_param_bits"]
    sm = StaticMetrics(gm, names)
    other = ResolvedConfig.from_dict({"fc": {"weight": second}}, gm=gm)
    for config in (other, rc, other, rc):  # the memo: whole graph, then node by node
        want = compute_metrics(quantize(gm, config), names)
        assert sm.values(config, lambda c=config: quantize(gm, c)) == want
    assert sm.values(rc, lambda: quantize(gm, rc))["model_size_bits"] == p.model_size_bits


def test_a_modules_parameter_read_in_forward_costs_the_modules_format() -> None:
    """``self.fc.bias`` read in forward (get_attr) reads the tensor the quantized module
    holds, on its grid: the bias costs fc's bias format, not the float read's 32 bits; a
    format applied to the read (a quantized add) widens it if wider."""

    class ReadsBias(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.fc(x)
            return y * self.fc.bias.abs().min() + self.fc.bias

    gm = trace(ReadsBias().eval(), torch.ones(2, 4))
    b6 = {"format": "fixed", "width": 6, "frac_width": 3}
    q = quantize(gm, ResolvedConfig.from_dict({"fc": {"bias": b6}}, gm=gm))
    assert param_cost(q).model_size_bits == 12 * 32 + 3 * 6
    wide = ResolvedConfig.from_dict({"fc": {"bias": b6}, "add": {"data_in": W8}}, gm=gm)
    assert param_cost(quantize(gm, wide)).model_size_bits == 12 * 32 + 3 * 8


def _ids(entries: list[tuple[str | None, torch.Tensor, bool, int]]) -> list[tuple[Any, ...]]:
    return [(name, id(t), is_param, key) for name, t, is_param, key in entries]


def test_owned_reads_a_leaf_modules_tables_as_torchs_generators_list_them() -> None:
    """owned()'s read of a module's own tables (a module without submodules) against torch's
    named_parameters() and buffers() (the generic path): the same tensors in the same order,
    each once, with the same names and keys, on every zoo model's modules, their quantized
    copies (keyed by the tensor copied) and a module holding a tensor under two names."""
    leaf = nn.Linear(3, 2)
    leaf.register_parameter("alias", leaf.weight)  # one tensor, two names: listed once
    leaf.register_parameter("none", None)
    leaf.register_buffer("scale", torch.ones(2))
    leaf.register_buffer("again", leaf.scale)
    modules: list[nn.Module] = [leaf, nn.BatchNorm1d(4), nn.ReLU()]
    for name in MODELS.names():
        gm = build_model(name).eval()
        modules += [m for m in gm.modules() if not m._modules]
    x = torch.randn(4, 16)
    gm = trace(build_model("jsc-tiny").eval(), x)
    fx8 = {"format": "fixed", "width": 8, "frac_width": 4}
    roles = {"weight": fx8, "bias": fx8, "data_in": fx8}
    table = {n.name: roles for n in gm.graph.nodes if info(n).op_kind in ("linear", "batch_norm1d")}
    qgm = quantize(gm, ResolvedConfig.from_dict(table, gm=gm))
    copies = [m for m in qgm.modules() if not m._modules and any(True for _ in m.parameters())]
    assert copies and all(PARAM_ORIGINS in m.__dict__ for m in copies)
    for mod in [*modules, *copies]:
        assert _ids(owned_module._leaf(mod)) == _ids(owned_module._by_generators(mod)), mod
    assert [e[0] for e in owned_module._leaf(leaf)] == ["weight", "bias", None]
