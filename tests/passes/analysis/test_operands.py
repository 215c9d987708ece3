"""Size and BitOPs of user models whose parameters reach a functional op through ``get_attr``.

Each operand must be priced at the format the quantized model actually applies to it. The
referees are not ours: MACs from ``torch.utils.flop_counter.FlopCounterMode`` (2 FLOPs per MAC
of every matmul/conv), the parameters from ``model.parameters()``, and the formats actually
applied, observed by recording the operands that reach torch's matmul kernels while the
quantized model runs (an operand on a format's grid is unchanged by quantizing it again).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.overrides import TorchFunctionMode
from torch.utils.flop_counter import FlopCounterMode

from quantsearch.formats import FixedPoint
from quantsearch.graph import info, trace
from quantsearch.passes.analysis import compute_cost, param_cost
from quantsearch.passes.transform import ResolvedConfig, quantize

Q8 = FixedPoint(8, 4)
Q8_DICT = {"format": "fixed", "width": 8, "frac_width": 4}
_MM = {torch.matmul, torch.Tensor.matmul, torch.Tensor.__matmul__, torch.bmm, torch.mm}


class ParamMatmul(nn.Module):
    """``torch.matmul`` on a parameter, as a user writes a projection without nn.Linear."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(12, 5))
        self.head = nn.Linear(5, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y: torch.Tensor = self.head(torch.matmul(x, self.w))
        return y


class TransposedParam(nn.Module):
    """``x @ self.w.t()``: the parameter reaches the matmul through a view."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(6, 12))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.w.t()


class Attention(nn.Module):
    """Two activations multiplied (``bmm``), as in attention scores."""

    def __init__(self) -> None:
        super().__init__()
        self.q = nn.Linear(12, 8)
        self.k = nn.Linear(12, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.q(x).view(x.shape[0], 2, 4)
        b = self.k(x).view(x.shape[0], 2, 4)
        return torch.bmm(a, b.transpose(1, 2))


class SharedParam(nn.Module):
    """One parameter read by a quantized matmul and by a float add: stored at full width."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(12, 12))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.matmul(x, self.w) + self.w.sum(0)


def _quantized(model: nn.Module, x: torch.Tensor, nodes: list[str]) -> fx.GraphModule:
    gm = trace(model.eval(), x)
    return quantize(gm, ResolvedConfig.from_dict({n: {"data_in": Q8_DICT} for n in nodes}, gm))


class _RecordMatmuls(TorchFunctionMode):
    """The operands of every matmul-family call made while a model runs."""

    def __init__(self) -> None:
        super().__init__()
        self.operands: list[tuple[torch.Tensor, torch.Tensor]] = []

    def __torch_function__(
        self,
        func: Callable[..., Any],
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        if func in _MM:
            self.operands.append((args[0], args[1]))
        return func(*args, **(kwargs or {}))


def _applied_bits(qgm: fx.GraphModule, x: torch.Tensor) -> list[tuple[int, int]]:
    """Per matmul call, the bits of each operand as the running model saw it: 8 where the
    operand is on Q8's grid (quantizing it again changes nothing), else its dtype's 32."""
    with _RecordMatmuls() as rec:
        qgm(x)
    out = []
    for a, b in rec.operands:
        bits = tuple(8 if torch.equal(Q8.quantize(t), t) else 32 for t in (a, b))
        out.append((bits[0], bits[1]))
    return out


def _flop_counter_macs(model: nn.Module, x: torch.Tensor) -> int:
    with FlopCounterMode(display=False) as fcm:
        model(x)
    return int(fcm.get_total_flops()) // 2


def _macs(qgm: fx.GraphModule, kinds: set[str]) -> int:
    compute_cost(qgm)
    return sum(info(n).cost["macs"] for n in qgm.graph.nodes if info(n).op_kind in kinds)


def test_a_parameter_operand_of_a_quantized_matmul_is_priced_at_its_applied_format() -> None:
    torch.manual_seed(0)
    model, x = ParamMatmul(), torch.randn(4, 12) * 3
    qgm = _quantized(model, x, ["matmul"])
    # what the running model applies: both operands of the matmul on the 8-bit grid
    assert _applied_bits(qgm, x) == [(8, 8)]
    w, head = model.w.numel(), sum(p.numel() for p in model.head.parameters())
    assert param_cost(qgm).model_size_bits == w * 8 + head * 32  # was w * 32
    macs = _macs(qgm, {"matmul"})
    assert macs == 4 * 12 * 5
    assert 2 * (macs + 4 * 5 * 3) == 2 * _flop_counter_macs(model, x)  # matmul + head
    head_macs = 4 * 5 * 3
    assert compute_cost(qgm).bitops == macs * 8 * 8 + head_macs * 32 * 32  # was macs * 8 * 32


def test_a_parameter_reached_through_a_view_is_priced_at_its_consumer_format() -> None:
    torch.manual_seed(0)
    model, x = TransposedParam(), torch.randn(3, 12)
    qgm = _quantized(model, x, ["matmul"])
    assert _applied_bits(qgm, x) == [(8, 8)]
    assert param_cost(qgm).model_size_bits == model.w.numel() * 8
    assert compute_cost(qgm).bitops == _flop_counter_macs(model, x) * 8 * 8


def test_two_activation_operands_of_bmm_are_both_priced_at_data_in() -> None:
    torch.manual_seed(0)
    model, x = Attention(), torch.randn(5, 12)
    qgm = _quantized(model, x, ["bmm"])
    bmm_bits = _applied_bits(qgm, x)[-1]  # the linears' addmm calls come first
    assert bmm_bits == (8, 8)
    macs = _macs(qgm, {"bmm"})
    linear_macs = _macs(qgm, {"linear"})
    assert 2 * (macs + linear_macs) == 2 * _flop_counter_macs(model, x)
    assert compute_cost(qgm).bitops == macs * 8 * 8 + linear_macs * 32 * 32  # was macs * 8 * 32


def test_a_parameter_also_read_in_float_is_stored_at_full_width() -> None:
    model, x = SharedParam(), torch.randn(2, 12)
    qgm = _quantized(model, x, ["matmul"])
    assert param_cost(qgm).model_size_bits == model.w.numel() * 32


def test_float_models_are_unchanged_by_the_operand_rule() -> None:
    model, x = ParamMatmul(), torch.randn(4, 12)
    gm = trace(model.eval(), x)
    assert param_cost(gm).model_size_bits == sum(p.numel() for p in model.parameters()) * 32
    assert compute_cost(gm).bitops == _flop_counter_macs(model, x) * 32 * 32


class FunctionalLayers(nn.Module):
    """``F.conv2d`` and ``F.linear`` on parameters, ``torch.mm`` and ``torch.addmm``."""

    def __init__(self) -> None:
        super().__init__()
        self.cw = nn.Parameter(torch.randn(4, 3, 3, 3))
        self.lw = nn.Parameter(torch.randn(6, 4 * 5 * 5))
        self.mw = nn.Parameter(torch.randn(6, 7))
        self.ab = nn.Parameter(torch.randn(5))
        self.aw = nn.Parameter(torch.randn(7, 5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.conv2d(x, self.cw).flatten(1)
        h = torch.mm(F.linear(h, self.lw), self.mw)
        return torch.addmm(self.ab, h, self.aw)


def test_functional_layers_on_parameters_are_counted_and_priced_at_their_dtype() -> None:
    # The quantize pass does not rewrite function-form conv/linear/mm/addmm, so nothing is
    # applied to their parameters: 32 bits, and MACs equal to FlopCounterMode's.
    torch.manual_seed(0)
    model, x = FunctionalLayers(), torch.randn(2, 3, 7, 7)
    gm = trace(model.eval(), x)
    c = compute_cost(gm)
    assert c.uncounted == ()
    assert 2 * c.macs == 2 * _flop_counter_macs(model, x)
    assert c.bitops == c.macs * 32 * 32
    p = param_cost(gm)
    assert p.model_size_bits == sum(t.numel() for t in model.parameters()) * 32
    by_kind = {info(n).op_kind: info(n).cost for n in gm.graph.nodes if n.op == "call_function"}
    assert by_kind["addmm"]["flops"] == 2 * by_kind["addmm"]["macs"] + 2 * 5  # + the bias adds


def test_an_einsum_form_without_a_rule_is_listed_as_uncounted_never_priced_as_zero() -> None:
    class Einsum(nn.Module):
        def __init__(self, equation: str) -> None:
            super().__init__()
            self.equation = equation
            self.w = nn.Parameter(torch.randn(4, 3))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if self.equation.count(",") == 2:  # three operands
                return torch.einsum(self.equation, x, self.w, self.w.t())
            return torch.einsum(self.equation, x, self.w)

    gm = trace(Einsum("bi,ij,jk->bk").eval(), torch.randn(2, 4))
    assert [u.op_kind for u in compute_cost(gm).uncounted] == ["einsum"]
    gm = trace(Einsum("bi,ij->bj").eval(), torch.randn(2, 4))  # two operands: counted
    assert compute_cost(gm).uncounted == () and compute_cost(gm).macs == 2 * 4 * 3


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_parameters_price_at_their_dtype_width(dtype: torch.dtype) -> None:
    model, x = TransposedParam().to(dtype), torch.randn(3, 12, dtype=dtype)
    gm = trace(model.eval(), x)
    assert param_cost(gm).model_size_bits == model.w.numel() * 16
    assert compute_cost(gm).bitops == 3 * 12 * 6 * 16 * 16
