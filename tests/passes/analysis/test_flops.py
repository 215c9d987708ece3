"""MACs/FLOPs/BitOPs: cross-checked against torch's FlopCounterMode, and hand counts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from quantsearch.graph import annotate, info, trace
from quantsearch.passes.analysis import compute_cost, count_flops

MAC_KINDS = {"linear", "conv1d", "conv2d", "matmul", "bmm"}


@dataclass(frozen=True)
class Bits:
    """Any object with ``bits_per_element`` stands in for a number format."""

    bits_per_element: int


def _fcm(model: nn.Module, x: torch.Tensor) -> tuple[dict[str, int], int, int]:
    """FlopCounterMode's per-module forward FLOPs and its forward / backward totals.

    The input requires grad so that FlopCounterMode counts the first layer's input gradient,
    which our convention always counts.
    """
    x = x.clone().requires_grad_(True)
    with FlopCounterMode(display=False) as fwd:
        y = model(x)
    per_module = {k: sum(v.values()) for k, v in fwd.get_flop_counts().items()}
    with FlopCounterMode(display=False) as bwd:
        y.sum().backward()
    return per_module, fwd.get_total_flops(), bwd.get_total_flops()


def _cost(model: nn.Module, x: torch.Tensor) -> tuple[torch.fx.GraphModule, dict[str, dict]]:
    gm = trace(model, x)
    count_flops(gm)
    return gm, {n.name: info(n).cost for n in gm.graph.nodes if n.op.startswith("call")}


class MLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(20, 32)
        self.fc2 = nn.Linear(32, 16, bias=False)
        self.w3 = nn.Parameter(torch.randn(4, 16))
        self.b3 = nn.Parameter(torch.randn(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.gelu(self.fc2(torch.relu(self.fc1(x))))
        return F.linear(x, self.w3, self.b3)  # a function-call linear on get_attr weights


class ConvNet(nn.Module):
    """Strides, padding, dilation, grouped and depthwise convs, odd spatial sizes."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.c2 = nn.Conv2d(8, 16, 3, padding=2, dilation=2, groups=4)
        self.c3 = nn.Conv2d(16, 16, 3, stride=2, groups=16, bias=False)  # depthwise
        self.c4 = nn.Conv2d(16, 12, (1, 3), stride=(1, 2))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(12, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn(self.c1(x)))
        x = self.c4(self.c3(self.c2(x)))
        return self.fc(torch.flatten(self.pool(x), 1))


class Conv1dNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c = nn.Conv1d(4, 6, 5, stride=3, padding=2, groups=2)
        self.fc = nn.Linear(6 * 7, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.c(x).flatten(1))


class MatmulNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(32, 7))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = x.view(x.shape[0], 4, 8)
        g = torch.bmm(a, a.transpose(1, 2))  # (B, 4, 4)
        return torch.matmul(x, self.w) + g.flatten(1).sum(1, keepdim=True)


def _conv_groups(gm: torch.fx.GraphModule) -> dict[str, int]:
    mods = dict(gm.named_modules())
    return {
        n.name: mods[n.target].groups
        for n in gm.graph.nodes
        if n.op == "call_module" and isinstance(mods[n.target], nn.Conv1d | nn.Conv2d)
    }


@pytest.mark.parametrize(
    ("model", "shape"),
    [(MLP, (5, 20)), (ConvNet, (3, 3, 17, 17)), (Conv1dNet, (2, 4, 19)), (MatmulNet, (6, 32))],
)
def test_mac_layer_flops_match_flop_counter_mode(
    model: type[nn.Module], shape: tuple[int, ...]
) -> None:
    torch.manual_seed(0)
    m = model().eval()
    x = torch.randn(shape)
    per_module, fcm_fwd, fcm_bwd = _fcm(m, x)
    gm, cost = _cost(m, x)
    mac_nodes = {n.name: n for n in gm.graph.nodes if info(n).op_kind in MAC_KINDS}
    assert mac_nodes
    total_macs = sum(cost[n]["macs"] for n in mac_nodes)

    # Forward: FlopCounterMode counts 2 FLOPs per MAC of matmuls and convolutions and nothing
    # else; our FLOPs add the bias adds, BN, activations and pooling on top.
    assert 2 * total_macs == fcm_fwd
    for name, node in mac_nodes.items():
        if node.op == "call_module":  # FlopCounterMode reports per module
            assert 2 * cost[name]["macs"] == per_module[f"{model.__name__}.{node.target}"]
        ni = info(node)
        has_bias = node.op == "call_module" and getattr(m, node.target).bias is not None
        has_bias = has_bias or (ni.op_kind == "linear" and node.op == "call_function")
        bias_adds = ni.outputs[0].numel if has_bias else 0
        assert cost[name]["flops"] == 2 * cost[name]["macs"] + bias_adds

    # Backward: dx and dw each take one MAC per forward MAC, so 4 x MACs FLOPs. FlopCounterMode
    # agrees, except that its grad-weight formula for a grouped conv multiplies by the full
    # C_in instead of C_in / groups, i.e. it counts `groups` times the true work for dw.
    groups = _conv_groups(gm)
    fcm_expected = sum(
        2 * cost[n]["macs"] + 2 * cost[n]["macs"] * groups.get(n, 1) for n in mac_nodes
    )
    assert fcm_bwd == fcm_expected
    ours_mac_bwd = sum(
        cost[n]["flops_backward"]
        - (info(node).outputs[0].numel if cost[n]["flops"] > 2 * cost[n]["macs"] else 0)
        for n, node in mac_nodes.items()
    )
    assert ours_mac_bwd == 4 * total_macs
    if not groups or set(groups.values()) == {1}:
        assert ours_mac_bwd == fcm_bwd


def test_conv_macs_by_hand() -> None:
    # Conv2d(8 -> 16, 3x3, groups 4) on 8x9x9 with padding 2, dilation 2: output 16x9x9.
    # Each output element: (8 / 4) x 3 x 3 = 18 MACs; N = 16 * 81 = 1296.
    _, cost = _cost(
        nn.Sequential(nn.Conv2d(8, 16, 3, padding=2, dilation=2, groups=4)), torch.ones(1, 8, 9, 9)
    )
    assert cost["_0"]["macs"] == 1296 * 18
    assert cost["_0"]["flops"] == 2 * 1296 * 18 + 1296
    assert cost["_0"]["flops_backward"] == 4 * 1296 * 18 + 1296


def test_jsc_tiny_by_hand() -> None:
    from quantsearch.models import build_model

    gm, cost = _cost(build_model("jsc-tiny").eval(), torch.ones(8, 16))
    bn, relu1, lin, relu2 = (
        cost[n] for n in ("seq_blocks_0", "seq_blocks_1", "seq_blocks_2", "seq_blocks_3")
    )
    assert (bn["flops"], bn["flops_backward"]) == (4 * 128, 6 * 128)  # affine BN, eval mode
    assert (relu1["flops"], relu2["flops"]) == (128, 40)
    assert lin["macs"] == 8 * 16 * 5 == 640
    assert lin["flops"] == 2 * 640 + 40  # 40 bias adds
    assert lin["flops_backward"] == 4 * 640 + 40
    total = compute_cost(gm)
    assert (total.macs, total.flops) == (640, 512 + 128 + 1320 + 40)
    assert total.bitops == 640 * 32 * 32
    assert total.batch_size == 8 and total.uncounted == ()


class Elementwise(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.b = nn.Parameter(torch.ones(3))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        s = x + self.b  # broadcast: the bias gradient sums 12 -> 3
        d = x - y
        p = x * y
        q = x * 2.0
        r = x / y
        return s + d + p + q + r


def test_elementwise_by_hand() -> None:
    x, y = torch.randn(4, 3), torch.rand(4, 3) + 1
    gm = trace(Elementwise(), x, y)
    count_flops(gm)
    c = [info(n).cost for n in gm.graph.nodes if info(n).op_kind in {"add", "sub", "mul", "div"}]
    # (fwd, bwd) per node, N = 12 output elements.
    assert [(k["flops"], k["flops_backward"]) for k in c[:5]] == [
        (12, 12 - 3),  # x + b: b's gradient is reduced over 4 rows: 12 - 3 adds
        (12, 12),  # x - y: negate dy for y
        (12, 24),  # x * y: dy * y and dy * x
        (12, 12),  # x * 2: dy * 2
        (12, 12 + 36),  # x / y: dy / y, and -dy * r / y (3 per element)
    ]


@pytest.mark.parametrize(
    ("module", "shape", "fwd", "bwd"),
    [
        (nn.ReLU(), (2, 5), 10, 10),
        (nn.ReLU6(), (2, 5), 20, 20),
        (nn.Sigmoid(), (2, 5), 40, 30),
        (nn.Tanh(), (2, 5), 10, 30),
        (nn.GELU(), (2, 5), 50, 110),
        (nn.GELU(approximate="tanh"), (2, 5), 90, 200),
        (nn.Softmax(dim=1), (2, 5), 50, 40),
        (nn.BatchNorm1d(5), (2, 5), 40, 60),
        (nn.BatchNorm1d(5, affine=False), (2, 5), 20, 10),
        (nn.BatchNorm2d(3), (2, 3, 4, 4), 4 * 96, 6 * 96),
        # LayerNorm over 6 of (2, 3, 6): N = 36, R = 6 rows: 5N + 4R + 2N, 9N + 2R + 4N.
        (nn.LayerNorm(6), (2, 3, 6), 5 * 36 + 4 * 6 + 2 * 36, 9 * 36 + 2 * 6 + 4 * 36),
        (nn.MaxPool2d(2), (1, 1, 4, 4), 4 * 3, 4),  # 4 outputs, 3 comparisons each
        (nn.AvgPool2d(2), (1, 1, 4, 4), 4 * 4, 4 * 5),
        (nn.MaxPool1d(3, stride=2), (1, 2, 9), 8 * 2, 8),  # 2 x 4 outputs
        (nn.AvgPool1d(3), (1, 2, 9), 6 * 3, 6 * 4),
        # Adaptive 5x7 -> 2x3: row windows [0,3) [2,5) = 6 rows, column windows [0,3) [2,5)
        # [4,7) = 9 columns: 54 inputs read per channel, 2 channels: S = 108, N = 12.
        (nn.AdaptiveAvgPool2d((2, 3)), (1, 2, 5, 7), 108, 108 + 12),
        (nn.AdaptiveMaxPool2d((2, 3)), (1, 2, 5, 7), 108 - 12, 12),
        (nn.AdaptiveAvgPool1d(3), (1, 2, 7), 2 * 9, 2 * 9 + 6),
        (nn.Flatten(), (2, 3, 4), 0, 0),
        (nn.Dropout(0.5), (2, 3), 0, 0),
        (nn.Identity(), (2, 3), 0, 0),
        (nn.LeakyReLU(0.1), (2, 5), 20, 20),
        (nn.Hardtanh(), (2, 5), 20, 20),
        (nn.SiLU(), (2, 5), 50, 90),
    ],
)
def test_per_op_formulas(module: nn.Module, shape: tuple[int, ...], fwd: int, bwd: int) -> None:
    _, cost = _cost(nn.Sequential(module).eval(), torch.randn(shape))
    c = cost["_0"]
    assert (c["macs"], c["flops"], c["flops_backward"]) == (0, fwd, bwd)
    assert "uncounted" not in c


def test_embedding_and_views() -> None:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = nn.Embedding(10, 4)

        def forward(self, idx: torch.Tensor) -> torch.Tensor:
            e = self.emb(idx)  # (2, 3, 4)
            return e.reshape(2, 12).view(2, 3, 4).permute(0, 2, 1).softmax(-1)

    gm, cost = _cost(Net(), torch.tensor([[1, 2, 3], [4, 5, 6]]))
    assert (cost["emb"]["flops"], cost["emb"]["flops_backward"]) == (0, 24)  # scatter-add dy
    for n in ("reshape", "view", "permute"):
        assert (cost[n]["flops"], cost[n]["flops_backward"]) == (0, 0)
    assert cost["softmax"]["flops"] == 5 * 24
    assert compute_cost(gm).uncounted == ()


def test_unknown_ops_are_listed_never_zero() -> None:
    class Odd(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 4)
            self.act = nn.CrossMapLRN2d(3)  # a module kind without a cost rule

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.act(self.fc(x).view(2, 4, 1, 1)).view(2, 4)
            return torch.special.zeta(h, 2.0)  # a function without a cost rule

    gm = trace(Odd(), torch.ones(2, 4))
    total = compute_cost(gm)
    assert [(u.node, u.op_kind) for u in total.uncounted] == [
        ("act", "crossmaplrn2d"),
        ("special_zeta", "special_zeta"),
    ]
    assert all("no cost rule" in u.reason for u in total.uncounted)
    for n in gm.graph.nodes:
        if n.name in ("act", "special_zeta"):
            assert info(n).cost["flops"] is None and info(n).cost["macs"] is None
    assert total.macs == 2 * 4 * 4  # the counted part is still counted


def test_bitops_follow_precision_and_dtype() -> None:
    model = nn.Sequential(nn.Linear(16, 5), nn.ReLU(), nn.Linear(5, 3))
    gm = trace(model, torch.ones(8, 16))
    macs = [8 * 16 * 5, 8 * 5 * 3]
    assert compute_cost(gm).bitops == sum(macs) * 32 * 32
    first = next(n for n in gm.graph.nodes if n.name == "_0")
    info(first).precision.update(weight=Bits(8), data_in=Bits(4))
    assert compute_cost(gm).bitops == macs[0] * 8 * 4 + macs[1] * 32 * 32

    half = trace(
        nn.Sequential(nn.Linear(16, 5)).to(torch.bfloat16), torch.ones(8, 16, dtype=torch.bfloat16)
    )
    assert compute_cost(half).bitops == macs[0] * 16 * 16  # widths from the dtype, not 32


def test_quantized_module_declaring_op_kind_is_counted_as_its_kind() -> None:
    class FakeQuantLinear(nn.Module):
        op_kind = "linear"

        def __init__(self, lin: nn.Linear) -> None:
            super().__init__()
            self.weight = nn.Parameter(lin.weight.detach().clone())
            self.bias = nn.Parameter(lin.bias.detach().clone())

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return F.linear(x, torch.round(self.weight * 16) / 16, self.bias)

    x = torch.ones(8, 16)
    gm = trace(nn.Sequential(nn.Linear(16, 5)), x)
    gm.add_submodule("0", FakeQuantLinear(gm.get_submodule("0")))
    annotate(gm, x)
    node = next(n for n in gm.graph.nodes if n.op == "call_module")
    info(node).precision["weight"] = Bits(4)
    c = compute_cost(gm)
    assert (info(node).op_kind, c.macs, c.flops, c.bitops) == ("linear", 640, 1320, 640 * 4 * 32)


def test_stale_costs_are_rewritten_after_reannotation() -> None:
    gm = trace(nn.Sequential(nn.Linear(4, 2)), torch.ones(3, 4))
    assert compute_cost(gm).macs == 24
    annotate(gm, torch.ones(5, 4))  # annotate keeps old cost entries; the pass must overwrite
    assert compute_cost(gm).macs == 40


def test_shape_arithmetic_is_free_not_uncounted() -> None:
    gm = trace(MatmulNet(), torch.randn(6, 32))  # x.shape[0]: getattr and getitem on a Size
    kinds = {info(n).op_kind for n in gm.graph.nodes}
    assert {"getattr", "getitem"} <= kinds
    assert compute_cost(gm).uncounted == ()


def test_a_rule_that_cannot_read_its_node_is_listed() -> None:
    gm = trace(nn.Sequential(nn.Linear(4, 2)), torch.ones(3, 4))
    del gm.get_submodule("0").weight  # a "linear" without a weight
    total = compute_cost(gm)
    assert [(u.node, u.op_kind) for u in total.uncounted] == [("_0", "linear")]
    assert (
        "linear rule could not read the node: ValueError: weight argument"
        in total.uncounted[0].reason
    )


class Einsum(nn.Module):
    def __init__(self, equation: str, shapes: tuple[tuple[int, ...], ...], as_list: bool) -> None:
        super().__init__()
        self.equation, self.as_list = equation, as_list
        self.w = nn.Parameter(torch.randn(shapes[1]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.as_list:
            return torch.einsum(self.equation, [x, self.w])
        return torch.einsum(self.equation, x, self.w)


@pytest.mark.parametrize(
    ("equation", "shapes", "as_list"),
    [
        ("nij,jk->nik", ((3, 2, 8), (8, 5)), False),
        ("bij,bjk->bik", ((3, 4, 6), (3, 6, 2)), True),
        ("bhid,bhjd->bhij", ((2, 3, 4, 5), (2, 3, 6, 5)), False),  # attention scores
        ("ij,jk", ((4, 6), (6, 3)), False),  # implicit output: ik
        ("i,i->", ((7,), (7,)), True),  # a dot product
        ("ni,j->nij", ((3, 4), (5,)), False),  # outer product: multiplies, no MACs
    ],
)
def test_einsum_matches_flop_counter_mode(
    equation: str, shapes: tuple[tuple[int, ...], ...], as_list: bool
) -> None:
    torch.manual_seed(0)
    m = Einsum(equation, shapes, as_list).eval()
    x = torch.randn(shapes[0])
    with FlopCounterMode(display=False) as fcm:
        y = m(x)
    _, cost = _cost(m, x)
    c = cost["einsum"]
    assert "uncounted" not in c
    assert 2 * c["macs"] == fcm.get_total_flops()  # the referee counts the matmul torch runs
    if c["macs"] == 0:
        assert (c["flops"], c["flops_backward"]) == (y.numel(), 2 * y.numel())
    else:
        assert (c["flops"], c["flops_backward"]) == (2 * c["macs"], 4 * c["macs"])
        assert c["bitops"] == c["macs"] * 32 * 32


def test_einsum_of_three_operands_is_listed_uncounted() -> None:
    """Three operands are contracted in an order torch picks (left to right, or opt_einsum's
    path where that is installed): listed uncounted, never a silent zero."""

    class Chain(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.randn(4, 3))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.einsum("bi,ij,jk->bk", x, self.w, self.w.t())

    gm = trace(Chain().eval(), torch.randn(2, 4))
    total = compute_cost(gm)
    assert [u.node for u in total.uncounted] == ["einsum"]
    assert "counted for one or two traced operands" in total.uncounted[0].reason


def test_stack_and_pad_move_data_for_free() -> None:
    class Net(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return F.pad(torch.stack([x, x], 1), (1, 2))

    _, cost = _cost(Net(), torch.randn(2, 3))
    for name in ("stack", "pad"):
        assert (cost[name]["flops"], cost[name]["flops_backward"]) == (0, 0)


@pytest.mark.parametrize(
    ("cell", "kwargs", "shape"),
    [
        (nn.RNN, {}, (6, 5, 4)),
        (nn.RNN, {"nonlinearity": "relu", "bias": False}, (5, 4)),  # unbatched
        (nn.GRU, {"batch_first": True}, (6, 5, 4)),
        (nn.GRU, {"num_layers": 2, "bidirectional": True}, (5, 6, 4)),
        (nn.LSTM, {"batch_first": True}, (6, 5, 4)),
        (nn.LSTM, {"num_layers": 2, "bidirectional": True, "bias": False}, (5, 6, 4)),
        # proj_size: FlopCounterMode counts its matmuls (it was uncounted here)
        (nn.LSTM, {"proj_size": 3}, (6, 5, 4)),
        (nn.LSTM, {"proj_size": 3, "num_layers": 2, "bidirectional": True}, (5, 6, 4)),
    ],
)
@pytest.mark.filterwarnings("ignore:LSTM with projections:UserWarning")  # torch's, on CPU
def test_recurrent_layers_match_flop_counter_mode(
    cell: type[nn.Module], kwargs: dict[str, object], shape: tuple[int, ...]
) -> None:
    """RNN and GRU against FlopCounterMode (it counts their matmuls); LSTM's fused CPU kernel
    it counts as 0, so its MACs by hand: 4 gates x H x (I + H) per step and direction."""
    torch.manual_seed(0)
    m = cell(4, 8, **kwargs).eval()
    x = torch.randn(shape)
    with FlopCounterMode(display=False) as fcm:
        m(x)
    _, cost = _cost(nn.Sequential(m), x)
    c = cost["_0"]
    assert "uncounted" not in c
    layers, d = int(kwargs.get("num_layers", 1)), 2 if kwargs.get("bidirectional") else 1
    steps = x.numel() // 4
    if "proj_size" in kwargs:
        assert 2 * c["macs"] == fcm.get_total_flops()
    elif cell is nn.LSTM:
        assert fcm.get_total_flops() in (0, 2 * c["macs"])  # 0: the fused kernel, uncounted
        assert c["macs"] == sum(
            steps * d * 4 * 8 * ((4 if k == 0 else 8 * d) + 8) for k in range(layers)
        )
    else:
        assert 2 * c["macs"] == fcm.get_total_flops()
    gates, e_fwd, e_bwd = {nn.RNN: (1, 1, 4), nn.GRU: (3, 15, 18), nn.LSTM: (4, 18, 23)}[cell]
    if kwargs.get("nonlinearity") == "relu":
        e_fwd, e_bwd = 1, 2
    units, bias = steps * d * layers * 8, 0 if kwargs.get("bias") is False else 2 * gates
    assert c["flops"] == 2 * c["macs"] + units * (bias + e_fwd)
    assert c["flops_backward"] == 4 * c["macs"] + units * (bias + e_bwd)


@pytest.mark.parametrize(
    ("cell", "kwargs", "shape"),
    [
        (nn.RNNCell, {}, (5, 4)),
        (nn.RNNCell, {"nonlinearity": "relu", "bias": False}, (4,)),  # unbatched
        (nn.GRUCell, {}, (5, 4)),
        (nn.LSTMCell, {"bias": False}, (5, 4)),
        (nn.LSTMCell, {}, (4,)),
    ],
)
def test_recurrent_cells_match_flop_counter_mode(
    cell: type[nn.Module], kwargs: dict[str, object], shape: tuple[int, ...]
) -> None:
    """nn.RNNCell, GRUCell and LSTMCell stepped twice, the state left to the cell on the first
    step: they had no rule (uncounted). FlopCounterMode (referee) counts their matmuls, W_hh
    times the zero state included: gates x H x (I + H) MACs per sample and step; the FLOPs
    the recurrent layers' per-unit formula for one step."""

    class Steps(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.cell = cell(4, 8, **kwargs)

        def forward(self, x: torch.Tensor) -> Any:
            s = self.cell(x)
            return self.cell(x, s)

    torch.manual_seed(0)
    m, x = Steps().eval(), torch.randn(shape)
    with FlopCounterMode(display=False) as fcm:
        m(x)
    _, cost = _cost(m, x)
    gates, e_fwd, e_bwd = {nn.RNNCell: (1, 1, 4), nn.GRUCell: (3, 15, 18)}.get(cell, (4, 18, 23))
    if kwargs.get("nonlinearity") == "relu":
        e_fwd, e_bwd = 1, 2
    batch = x.numel() // 4
    units, bias = batch * 8, 0 if kwargs.get("bias") is False else 2 * gates
    for name in ("cell", "cell_1"):
        c = cost[name]
        assert c["macs"] == batch * gates * 8 * (4 + 8)
        assert c["flops"] == 2 * c["macs"] + units * (bias + e_fwd)
        assert c["flops_backward"] == 4 * c["macs"] + units * (bias + e_bwd)
    assert 2 * (cost["cell"]["macs"] + cost["cell_1"]["macs"]) == fcm.get_total_flops()


def test_arithmetic_on_sizes_costs_nothing() -> None:
    """``n, c = x.shape`` then ``c // 2``, ``n * 2``, ``n + 0``, ``c - 0``, ``c / 2``: Python
    numbers, no tensor read or made. Their rules read an output tensor and failed (IndexError),
    so every channel shuffle written with view listed its size arithmetic uncounted."""

    class Net(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            n, c = x.shape
            a = x.view(n * 2, c // 2).reshape(n + 0, c - 0)
            return a * (c / 2)

    gm = trace(Net(), torch.randn(4, 6))
    total = compute_cost(gm)
    assert total.uncounted == ()
    assert total.flops == 24  # the one tensor multiply, 4 x 6


def test_max_unpool_moves_data_for_free() -> None:
    """nn.MaxUnpool2d after MaxPool2d(return_indices=True) and F.max_unpool1d write each pooled
    value back at its index: 0 FLOPs, as the other data movement; they were uncounted, and so
    was F.max_pool1d(..., return_indices=True) (traced as max_pool1d_with_indices), which costs
    max_pool1d's W - 1 comparisons an output."""

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.pool = nn.MaxPool2d(2, return_indices=True)
            self.unpool = nn.MaxUnpool2d(2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            p, idx = self.pool(x)
            q, idx1 = F.max_pool1d(x.flatten(2), 2, return_indices=True)
            return self.unpool(p, idx).flatten(2) + F.max_unpool1d(q, idx1, 2)

    _, cost = _cost(Net(), torch.randn(2, 3, 4, 4))
    assert all("uncounted" not in c for c in cost.values())
    assert cost["unpool"]["flops"] == cost["max_unpool1d"]["flops"] == 0
    assert cost["max_pool1d_with_indices"]["flops"] == 2 * 3 * 8 * (2 - 1)


def test_edge_padding_modules_and_softmax2d_are_priced() -> None:
    """nn.ReflectionPad1d/2d, ReplicationPad1d and CircularPad2d copy edge values (0, as
    ZeroPad2d), and nn.Softmax2d is softmax over the channels (5 FLOPs an element forward,
    4 backward): they were listed uncounted as modules ('no cost rule for op kind')."""
    net = nn.Sequential(
        nn.ReflectionPad2d(1), nn.ReplicationPad2d((0, 1, 0, 1)), nn.CircularPad2d(1),
        nn.Softmax2d(), nn.Flatten(2), nn.ReflectionPad1d(2), nn.ReplicationPad1d(1),
    )  # fmt: skip
    x = torch.randn(2, 3, 4, 4)
    gm = trace(net, x)
    total = compute_cost(gm)
    assert total.uncounted == ()
    n = 2 * 3 * 9 * 9  # softmax2d's input: 4 + 2, + 1, + 2 a side
    assert (total.flops, total.flops_backward) == (5 * n, 4 * n)
