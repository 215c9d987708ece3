"""Function-form layers (``F.linear(x, self.w, self.b)``, ``F.conv1d/conv2d``) quantized as
their module forms.

Referees: the module form (``nn.Linear``/``nn.Conv*d`` with the same weights, quantized by the
same config: ``torch.equal`` outputs and equal static metrics), numpy's integer dot products
for fixed point, and ``quantize()`` itself for the slot and population paths.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from quantsearch.errors import ConfigError
from quantsearch.formats import FixedPoint
from quantsearch.graph import trace
from quantsearch.int_weights import read_int_weights, save_int_weights
from quantsearch.metrics import compute_metrics
from quantsearch.passes.analysis import compute_cost, param_cost
from quantsearch.passes.transform import ResolvedConfig, quantize, resolve
from quantsearch.passes.transform.config import parse_quantize_config
from quantsearch.passes.transform.population import Population
from quantsearch.passes.transform.slots import PreparedModel


class FnLinear(nn.Module):
    """An MLP holding its own parameters; ``style`` picks how the first layer is written."""

    def __init__(self, style: str = "positional", bias: bool = True) -> None:
        super().__init__()
        self.style = style
        # view, T: stored transposed, read as .t() or .T
        shape = (16, 8) if style in ("view", "T") else (8, 16)
        self.w1 = nn.Parameter(torch.randn(shape) * 0.4)
        self.b1 = nn.Parameter(torch.randn(8) * 0.3) if bias else None
        self.w2 = nn.Parameter(torch.randn(5, 8) * 0.4)
        self.b2 = nn.Parameter(torch.randn(5) * 0.3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.style == "keyword":
            h = F.linear(input=x, weight=self.w1, bias=self.b1)
        elif self.style == "view":
            h = F.linear(x, self.w1.t(), self.b1)
        elif self.style == "T":
            h = F.linear(x, self.w1.T, self.b1)
        else:
            h = F.linear(x, self.w1, self.b1)
        return F.linear(torch.relu(h), self.w2, self.b2)


class ModLinear(nn.Module):
    """:class:`FnLinear`'s module twin, with its weights."""

    def __init__(self, fn: FnLinear) -> None:
        super().__init__()
        w1 = fn.w1.detach().t() if fn.style in ("view", "T") else fn.w1.detach()
        self.fc1 = nn.Linear(16, 8, bias=fn.b1 is not None)
        self.fc2 = nn.Linear(8, 5)
        with torch.no_grad():
            self.fc1.weight.copy_(w1)
            if fn.b1 is not None:
                self.fc1.bias.copy_(fn.b1)
            self.fc2.weight.copy_(fn.w2)
            self.fc2.bias.copy_(fn.b2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.fc1(x)))


class FnConv(nn.Module):
    """conv1d and conv2d with stride, padding, dilation and groups given as arguments."""

    def __init__(self) -> None:
        super().__init__()
        self.w1 = nn.Parameter(torch.randn(4, 1, 3) * 0.5)
        self.b1 = nn.Parameter(torch.randn(4) * 0.2)
        self.w2 = nn.Parameter(torch.randn(6, 2, 3, 3) * 0.3)
        self.b2 = nn.Parameter(torch.randn(6) * 0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.conv1d(x.view(-1, 1, 16), self.w1, self.b1, 2, 1)  # (N, 4, 8)
        h = torch.relu(h).view(-1, 4, 4, 2)
        return F.conv2d(h, self.w2, self.b2, stride=1, padding=1, dilation=1, groups=2).flatten(1)


class ModConv(nn.Module):
    def __init__(self, fn: FnConv) -> None:
        super().__init__()
        self.c1 = nn.Conv1d(1, 4, 3, stride=2, padding=1)
        self.c2 = nn.Conv2d(4, 6, 3, padding=1, groups=2)
        with torch.no_grad():
            for mod, w, b in ((self.c1, fn.w1, fn.b1), (self.c2, fn.w2, fn.b2)):
                mod.weight.copy_(w)
                mod.bias.copy_(b)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.c1(x.view(-1, 1, 16))).view(-1, 4, 4, 2)
        return self.c2(h).flatten(1)


FORMATS: dict[str, dict[str, Any]] = {
    "fixed": {"format": "fixed", "width": 6, "frac_width": 3},
    "fixed_floor": {"format": "fixed", "width": 5, "frac_width": 2, "rounding": "floor"},
    "minifloat": {"format": "minifloat", "exponent_width": 3, "mantissa_width": 2},
    "log": {"format": "log", "exponent_width": 3},
    "block_fp": {"format": "block_fp", "mantissa_width": 4, "block_size": 4},
}


def _twins(kind: str, style: str = "positional") -> tuple[nn.Module, nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    fn: nn.Module = FnConv() if kind == "conv" else FnLinear(style)
    mod = ModConv(fn) if isinstance(fn, FnConv) else ModLinear(fn)  # type: ignore[arg-type]
    x = torch.randn(12, 16, generator=torch.Generator().manual_seed(1))
    return fn.eval(), mod.eval(), x


def _by_type(fmt: dict[str, Any], kinds: tuple[str, ...]) -> Any:
    roles = {r: fmt for r in ("data_in", "weight", "bias", "data_out")}
    return parse_quantize_config({"by_type": dict.fromkeys(kinds, roles)})


CASES = [("linear", s) for s in ("positional", "keyword", "view", "T")] + [("conv", "")]


@pytest.mark.parametrize(("kind", "style"), CASES)
@pytest.mark.parametrize("fmt", FORMATS)
def test_function_form_equals_its_module_twin(kind: str, style: str, fmt: str) -> None:
    """Outputs torch.equal and static metrics equal to the module twin's, under every format,
    in every role; the function-form nodes are quantized (none left in float)."""
    fn, mod, x = _twins(kind, style)
    kinds = ("conv1d", "conv2d") if kind == "conv" else ("linear",)
    cfg = _by_type(FORMATS[fmt], kinds)
    gf, gm = trace(fn, x), trace(mod, x)
    rf, rm = resolve(gf, cfg), resolve(gm, cfg)
    assert len(rf) == len(rm) == 2
    assert [lq for _, lq in rf.items()] == [lq for _, lq in rm.items()]
    qf, qm = quantize(gf, rf), quantize(gm, rm)
    with torch.no_grad():
        out = qf(x)
        assert torch.equal(out, qm(x))
        assert torch.equal(qf(x), out)  # the rounded weights kept: the same again
        assert not torch.equal(out, gf(x))
    names = ["model_size_bits", "bitops", "macs", "flops", "params", "avg_weight_bits"]
    assert compute_metrics(qf, names) == compute_metrics(qm, names)


def test_fixed_point_against_numpy_integer_dot_products() -> None:
    """F.linear under fixed(8,4) inputs and fixed(6,3) weights, fixed(10,6) bias: the output
    is (X_int @ W_int^T) * 2**-7 + b_int * 2**-6 computed in numpy's int64."""
    torch.manual_seed(3)
    fn = FnLinear().eval()
    x = torch.randn(10, 16)
    cfg = ResolvedConfig.from_dict(
        {
            "linear": {
                "data_in": FixedPoint(8, 4).to_dict(),
                "weight": FixedPoint(6, 3).to_dict(),
                "bias": FixedPoint(10, 6).to_dict(),
            }
        }
    )
    gf = trace(fn, x)
    qgm = quantize(gf, cfg)
    with torch.no_grad():
        got = qgm.get_submodule("quantized_nodes.linear")(x, fn.w1, fn.b1).double().numpy()

    def ints(t: torch.Tensor, width: int, frac: int) -> np.ndarray[Any, Any]:
        k = np.round(t.detach().double().numpy() * 2**frac)  # half to even, as torch.round
        return np.clip(k, -(2 ** (width - 1)), 2 ** (width - 1) - 1).astype(np.int64)

    xi, wi, bi = ints(x, 8, 4), ints(fn.w1, 6, 3), ints(fn.b1, 10, 6)  # type: ignore[arg-type]
    want = (xi @ wi.T) * 2.0**-7 + bi * 2.0**-6
    assert np.array_equal(got, want)


def test_named_by_node_name_regex_and_type_alike() -> None:
    """by_type.linear, by_name (node name) and a regex give the function-form nodes the same
    formats; before, by_type left them in float and by_name refused them."""
    fn, _, x = _twins("linear")
    gf = trace(fn, x)
    w = {"weight": {"width": 4, "frac_width": 2}}
    by_type = resolve(gf, parse_quantize_config({"by_type": {"linear": w}}))
    by_name = resolve(gf, parse_quantize_config({"by_name": {"linear": w, "linear_1": w}}))
    by_regex = resolve(gf, parse_quantize_config({"by_name": {"re:linear.*": w}}))
    assert by_type.to_dict() == by_name.to_dict() == by_regex.to_dict()
    assert sorted(by_type.to_dict()) == ["linear", "linear_1"]


def test_a_tied_parameter_read_by_two_function_layers_is_counted_once() -> None:
    class Tied(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.randn(16, 16))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return F.linear(torch.relu(F.linear(x, self.w)), self.w)

    gm = trace(Tied().eval(), torch.randn(4, 16))
    fmt = {"weight": {"width": 4, "frac_width": 2}}
    q = quantize(gm, parse_quantize_config({"by_type": {"linear": fmt}}))
    cost = param_cost(q)
    assert cost.params == 256 and cost.model_size_bits == 256 * 4
    assert compute_cost(q).bitops == 2 * (4 * 16 * 16) * 4 * 32


class Computed(nn.Module):
    """A weight computed in forward: no parameter to store in a weight format."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(5, 16))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.w * 2.0)


def test_a_computed_weight_is_refused_by_name_and_skipped_by_type() -> None:
    gm = trace(Computed().eval(), torch.randn(4, 16))
    w = {"weight": {"width": 4, "frac_width": 2}}
    with pytest.raises(
        ConfigError, match=r"^quantize\.by_name\.linear\.weight: got a weight for node 'linear'"
    ) as e:
        resolve(gm, parse_quantize_config({"by_name": {"linear": w}}))
    assert "computed in forward" in str(e.value) and "\n" not in str(e.value)
    table = {"data_in": {"width": 8, "frac_width": 4}, **w}
    rc = resolve(gm, parse_quantize_config({"by_type": {"linear": table}}))
    assert rc.to_dict() == {"linear": {"data_in": FixedPoint(8, 4).to_dict()}}


@pytest.mark.parametrize("kind", ["linear", "conv"])
def test_slot_and_population_paths_equal_quantize(kind: str) -> None:
    """PreparedModel.apply_ and Population.forward (its generic per-call path) give
    quantize()'s outputs bit for bit, config after config."""
    fn, _, x = _twins(kind)
    gf = trace(fn, x)
    kinds = ("conv1d", "conv2d") if kind == "conv" else ("linear",)
    configs = [resolve(gf, _by_type(f, kinds)) for f in FORMATS.values()]
    configs.append(resolve(gf, _by_type(FORMATS["fixed"], kinds[:1])))
    pm, pop = PreparedModel(gf), Population(gf)
    with torch.no_grad():
        want = [quantize(gf, rc)(x) for rc in configs]
        for rc, w in zip(configs * 2, want * 2, strict=True):
            assert torch.equal(pm.apply_(rc)(x), w)
        for got, w in zip(pop.forward(configs, x), want, strict=True):
            assert torch.equal(got, w)


def test_training_mode_gradients_equal_the_module_twins() -> None:
    """In training mode the weights are rounded in every forward pass with straight-through
    gradients, as the module form's: equal losses and equal weight gradients."""
    fn, mod, x = _twins("linear")
    cfg = _by_type(FORMATS["fixed"], ("linear",))
    qf = quantize(trace(fn, x), cfg).train()
    qm = quantize(trace(mod, x), cfg).train()
    lf, lm = qf(x).square().sum(), qm(x).square().sum()
    lf.backward()
    lm.backward()
    assert torch.equal(lf, lm)
    assert torch.equal(qf.get_parameter("w1").grad, qm.get_submodule("fc1").weight.grad)  # type: ignore[arg-type]


def test_hardware_export_refuses_function_form_layers_in_one_line() -> None:
    from quantsearch.export.plan import plan

    fn, _, x = _twins("linear")
    gf = trace(fn, x)
    q = quantize(gf, _by_type(FixedPoint(8, 4).to_dict(), ("linear",)))
    with pytest.raises(ConfigError, match=r"^export: got layers w1 \(get_attr\)") as e:
        plan(q)
    assert "not F.linear(x, self.w)" in str(e.value) and "\n" not in str(e.value)


def test_integer_weights_of_function_form_layers_equal_the_module_twins(tmp_path: Path) -> None:
    """save_int_weights stores a function-form layer's parameter rounded, under its own name
    (read through .T too), with the integers its module twin's weight gets; one parameter in
    two formats is refused in one line."""
    fn, mod, x = _twins("linear", "T")
    cfg = _by_type(FixedPoint(6, 3).to_dict(), ("linear",))
    qf, qm = quantize(trace(fn, x), cfg), quantize(trace(mod, x), cfg)
    save_int_weights(qf, tmp_path / "f")
    save_int_weights(qm, tmp_path / "m")
    got, want = read_int_weights(tmp_path / "f"), read_int_weights(tmp_path / "m")
    assert np.array_equal(got["w1"].T, want["fc1.weight"])
    assert np.array_equal(got["b2"], want["fc2.bias"])
    ints = np.load(tmp_path / "f" / "weights.npz")["w2"]
    assert ints.dtype == np.int8 and np.array_equal(ints * 2.0**-3, want["fc2.weight"])

    class TwoFormats(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.randn(16, 16))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return F.linear(F.linear(x, self.w), self.w)

    gm = trace(TwoFormats().eval(), x)
    rc = ResolvedConfig.from_dict(
        {n: {"weight": FixedPoint(w, 2).to_dict()} for n, w in (("linear", 4), ("linear_1", 6))}
    )
    with pytest.raises(ConfigError, match=r"^linear_1\.weight: parameter 'w' is read by linear"):
        save_int_weights(quantize(gm, rc), tmp_path / "t")


class FnMatmul(nn.Module):
    """``x @ self.w.t()`` and ``x @ self.m``: nn.Linear(bias=False) written as matmuls."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(8, 16) * 0.4)
        self.m = nn.Parameter(torch.randn(8, 5) * 0.4)  # stored (in, out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x @ self.w.t()) @ self.m


class ModMatmul(nn.Module):
    def __init__(self, fn: FnMatmul) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(16, 8, bias=False), nn.Linear(8, 5, bias=False)
        with torch.no_grad():
            self.fc1.weight.copy_(fn.w)
            self.fc2.weight.copy_(fn.m.t())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.fc1(x)))


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_matmul_with_a_parameter_has_a_weight_role_like_its_linear_twin(fmt: str) -> None:
    """by_type.matmul with data_in, weight and data_out: outputs torch.equal to the
    nn.Linear(bias=False) twin's under by_type.linear, and equal static metrics. A format
    rounds the operand as the node reads it: a matmul's right operand is (in, out), so
    block_fp's blocks run along its reduction dimension with block_dim = -2, as they do along
    nn.Linear's (out, in) weight with -1."""
    torch.manual_seed(0)
    fn = FnMatmul().eval()
    mod = ModMatmul(fn).eval()
    x = torch.randn(12, 16, generator=torch.Generator().manual_seed(1))
    roles = {r: FORMATS[fmt] for r in ("data_in", "weight", "data_out")}
    w = {**FORMATS[fmt], "block_dim": -2} if fmt == "block_fp" else FORMATS[fmt]
    table = {"by_type": {"matmul": {**roles, "weight": w}}}
    qf = quantize(trace(fn, x), parse_quantize_config(table))
    qm = quantize(trace(mod, x), parse_quantize_config({"by_type": {"linear": roles}}))
    with torch.no_grad():
        assert torch.equal(qf(x), qm(x))
    names = ["model_size_bits", "bitops", "macs", "params"]
    assert compute_metrics(qf, names) == compute_metrics(qm, names)


def test_a_matmul_without_a_weight_format_rounds_its_parameter_as_data_in() -> None:
    """Unchanged for configs without a weight: data_in rounds every operand, and prices the
    parameter at it (fixed(6,3) x fixed(6,3) BitOPs, the parameter at 6 bits)."""
    torch.manual_seed(0)
    fn = FnMatmul().eval()
    x = torch.randn(4, 16)
    gm = trace(fn, x)
    fmt = FixedPoint(6, 3)
    q = quantize(gm, ResolvedConfig.from_dict({"matmul": {"data_in": fmt.to_dict()}}))
    with torch.no_grad():
        assert torch.equal(q(x), torch.relu(fmt.quantize(x) @ fmt.quantize(fn.w).t()) @ fn.m)
    assert param_cost(q).model_size_bits == 8 * 16 * 6 + 8 * 5 * 32
    macs = 4 * 8 * 16
    assert compute_cost(q).bitops == macs * 6 * 6 + 4 * 5 * 8 * 32 * 32


def test_a_weight_on_a_matmul_of_computed_tensors_is_refused_by_name() -> None:
    class Attention(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x @ x.t()

    gm = trace(Attention(), torch.randn(4, 16))
    w = {"weight": {"width": 4, "frac_width": 2}}
    with pytest.raises(ConfigError, match=r"no operand that is a parameter") as e:
        resolve(gm, parse_quantize_config({"by_name": {"matmul": w}}))
    assert "\n" not in str(e.value)
    assert resolve(gm, parse_quantize_config({"by_type": {"matmul": w}})).to_dict() == {}


def test_sensitivity_and_mase_view_read_function_form_layers_as_quantize_does() -> None:
    """The sensitivity probe's perturbed output of a function-form layer is the quantized
    layer's (its weight format applied to the parameter operand, data_in to the input only),
    and MASE's view lists the quantized layer as the function it was, not a traceback."""
    from quantsearch.passes.analysis.mase_view import mase_stats
    from quantsearch.passes.analysis.sensitivity import _node_call, probe

    fn, _, x = _twins("linear")
    gf = trace(fn, x)
    roles = {"data_in": (8, 4), "weight": (4, 2), "bias": (6, 3)}  # apart: a role mixed up shows
    table = {r: {"width": w, "frac_width": f} for r, (w, f) in roles.items()}
    rc = resolve(gf, parse_quantize_config({"by_type": {"linear": table}}))
    probes = probe(gf, x, torch.randint(0, 5, (12,)))
    node = next(n for n in gf.graph.nodes if n.name == "linear")
    got = _node_call(gf, node, probes["linear"].args, probes["linear"].kwargs, rc.get("linear"))
    q = quantize(gf, rc)
    with torch.no_grad():
        want = q.get_submodule("quantized_nodes.linear")(x, fn.w1, fn.b1)
    assert torch.equal(got, want)
    stats = mase_stats(q)
    assert "linear" not in stats.stats


def test_weights_rounded_under_inference_mode_do_not_leak_into_autograd() -> None:
    """A frozen function-form weight rounded under inference_mode (as the metrics run) and
    then read with gradients on the input (as a sensitivity probe does): no inference tensor
    is saved for backward, and the rounded weight is the same."""
    fn, _, x = _twins("linear")
    for p in fn.parameters():
        p.requires_grad_(False)
    q = quantize(trace(fn, x), _by_type(FORMATS["fixed"], ("linear",)))
    with torch.inference_mode():
        want = q(x)
    xg = x.clone().requires_grad_(True)
    out = q(xg)
    out.sum().backward()
    assert xg.grad is not None and torch.equal(out.detach(), want)


def test_a_rounded_weight_follows_the_model_to_another_dtype_and_in_place_edits() -> None:
    """q.double() swaps the parameter's storage, an in-place edit bumps its version: each
    gives the weight rounded anew (a kept float32 copy met float64 inputs before)."""
    fn, _, x = _twins("linear")
    q = quantize(trace(fn, x), _by_type(FORMATS["fixed"], ("linear",)))
    with torch.no_grad():
        want = q(x)
        assert torch.equal(q.double()(x.double()), want.double())
        q.get_parameter("w2").mul_(0.0)  # the output is then fc2's rounded bias alone
        fmt = FixedPoint(6, 3)
        assert torch.equal(q(x.double()), fmt.quantize(fmt.quantize(q.b2)).expand(12, 5))
