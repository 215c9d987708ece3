"""The batched linear layer of a population against each config's own call, bit for bit.

Referees: ``quantize(gm, rc)(x)`` one config at a time (``torch.equal``), and the dot products
computed as integers by numpy (float64 holds every one exactly here), which the fast path must
equal as values; Python's ``float.as_integer_ratio`` for the grid of a tensor. Each test says
which path must have run: the batched kernel where the bound holds, each layer's own call where
it fails (wide formats, a float bias off any coarse grid, a reduced matmul precision).
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from quantsearch.formats import FixedPoint
from quantsearch.graph import info, trace
from quantsearch.models import build_model
from quantsearch.passes.transform import ResolvedConfig, quantize
from quantsearch.passes.transform.batched import (
    Blocks,
    input_frac,
    linear_many,
    quantize_inputs,
    stack,
    stacked_views,
)
from quantsearch.passes.transform.grid_facts import frac_bits, linear_facts
from quantsearch.passes.transform.population import Population


def _fx(w: int, f: int) -> dict[str, Any]:
    return {"format": "fixed", "width": w, "frac_width": f}


def _model(bias: bool = True, out: int = 5, dtype: torch.dtype = torch.float32) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(16, out, bias=bias), nn.ReLU()).to(dtype).eval()


def _configs(pairs: list[tuple[int, int]], bias: str | None) -> list[ResolvedConfig]:
    out = []
    for wi, fi in pairs:
        for ww, fw in pairs:
            roles: dict[str, Any] = {"data_in": _fx(wi, fi), "weight": _fx(ww, fw)}
            if bias == "same":
                roles["bias"] = _fx(ww, fw)
            out.append(ResolvedConfig.from_dict({"_0": roles}))
    return out


def _run(model: nn.Module, configs: list[ResolvedConfig], x: torch.Tensor) -> int:
    """Population outputs checked torch.equal to quantize(); returns the batched calls made.
    Each output is contiguous, or (a batched layer whose value reaches the output through
    float ReLUs only) the transpose of a contiguous block."""
    gm = trace(model, x[:4])
    pop = Population(gm)
    outs = pop.forward(configs, x)
    for out, rc in zip(outs, configs, strict=True):
        want = quantize(gm, rc)(x)
        assert out.shape == want.shape and (out.is_contiguous() or out.t().is_contiguous())
        assert torch.equal(out, want), rc
    return pop.batched_calls


LAB = [(16, 8), (8, 6), (8, 4), (4, 2)]


def _frac_of(v: float) -> int:
    """The smallest f with v * 2^f an integer, from Python's exact fraction of the float."""
    p, q = v.as_integer_ratio()  # q is a power of two
    return q.bit_length() - 1 if q > 1 else -((p & -p).bit_length() - 1)


def test_frac_bits_against_as_integer_ratio() -> None:
    g = torch.Generator().manual_seed(0)
    for scale in (1e-6, 1.0, 1e6, 2.0**30):
        t = torch.randn(200, generator=g) * scale
        t[::7] = 0.0
        if scale > 1e6:
            t = t.round()  # large integers: f < 0 where they share trailing zero bits
        assert frac_bits(t) == max(_frac_of(v) for v in t.tolist() if v != 0)
        assert frac_bits(t.double()) == frac_bits(t)
    # subnormals: float32's (normal in float64) and float64's own
    for t in (
        torch.randn(50, generator=g) * 1e-40,
        torch.tensor([2.0**-1070, -3 * 2.0**-1060], dtype=torch.float64),
    ):
        assert frac_bits(t) == max(_frac_of(v) for v in t.tolist() if v != 0)
    with torch.inference_mode():  # as linear_facts reads a layer's weights
        t = torch.randn(16, generator=g)
        assert frac_bits(t) == max(_frac_of(v) for v in t.tolist())
    assert frac_bits(torch.tensor([0.75, -2.5])) == 2
    assert frac_bits(torch.tensor([8.0, -24.0])) == -3
    assert frac_bits(torch.zeros(3)) == 0
    assert frac_bits(torch.tensor([1.0, float("nan")])) is None
    assert frac_bits(torch.tensor([float("inf")])) is None


def test_input_frac_is_deterministic_fixed_point_only() -> None:
    assert input_frac(FixedPoint(8, 4)) == 4
    assert input_frac(FixedPoint(8, 4, rounding="floor")) == 4
    assert input_frac(FixedPoint(8, 4, rounding="stochastic")) is None
    assert input_frac(None) is None


@pytest.mark.parametrize("n", [1, 7, 512, 1029])
def test_the_lab_grid_runs_batched_and_equals_quantize(n: int) -> None:
    x = torch.randn(n, 16, generator=torch.Generator().manual_seed(n))
    assert _run(_model(), _configs(LAB, "same"), x) == 1


def test_transposed_outputs_only_where_every_consumer_is_exact_per_element() -> None:
    """A batched layer's variants are transposed views (``W x^T``, the loss's layout) only
    when its value reaches the graph's output through ReLUs no config quantizes; a later
    linear layer gets contiguous inputs, and a quantized ReLU contiguous ones too. Every
    output ``torch.equal`` to ``quantize``'s."""
    x = torch.randn(64, 16, generator=torch.Generator().manual_seed(5))
    torch.manual_seed(0)
    deep = nn.Sequential(nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 5)).eval()
    for model, loose in ((_model(), True), (deep, False)):
        gm = trace(model, x[:4])
        pop = Population(gm)
        lin = next(n for n in gm.graph.nodes if info(n).op_kind == "linear")
        pop._quantized = ()
        assert pop._loose(lin) is loose
        pop._quantized = {"_1"}  # the ReLU quantized by some config
        assert not pop._loose(lin)
        configs = _configs(LAB, "same")
        outs = pop.forward(configs, x)
        assert pop.batched_calls == 1
        for out, rc in zip(outs, configs, strict=True):
            assert torch.equal(out, quantize(gm, rc)(x))
            assert out.is_contiguous() is not loose


def test_without_bias_runs_batched() -> None:
    x = torch.randn(64, 16, generator=torch.Generator().manual_seed(1))
    assert _run(_model(bias=False), _configs(LAB, None), x) == 1


def test_a_float_bias_off_the_grid_falls_back() -> None:
    # the bias keeps its float32 value: its grid is about 2^-26, so B / g is far over 2^24
    x = torch.randn(64, 16, generator=torch.Generator().manual_seed(2))
    assert _run(_model(), _configs(LAB, None), x) == 0


def test_a_float_bias_on_a_coarse_grid_runs_batched() -> None:
    model = _model()
    with torch.no_grad():
        model[0].bias.copy_(torch.tensor([0.5, -0.25, 0.0, 1.0, -2.0]))  # on 2^-2
    x = torch.randn(64, 16, generator=torch.Generator().manual_seed(3))
    assert _run(model, _configs(LAB, None), x) == 1


def test_wide_formats_where_the_bound_fails_fall_back() -> None:
    # fixed(24, 16) inputs and weights: products on 2^-32, |x| * sum|w| far over 2^(24 - 32)
    x = torch.randn(64, 16, generator=torch.Generator().manual_seed(4)) * 8
    assert _run(_model(), _configs([(24, 16), (20, 14)], "same"), x) == 0


def test_the_bound_is_checked_per_batch_of_data() -> None:
    model = _model()
    configs = _configs([(16, 8), (12, 8)], "same")
    small = torch.randn(64, 16, generator=torch.Generator().manual_seed(5)) * 0.1
    assert _run(model, configs, small) == 1
    # fixed(16, 8) saturates at 128: 128 * 2^8 * sum_i max_j |w| * 2^8 > 2^24 for these weights
    large = small * 1e4
    assert _run(model, configs, large) == 0


def test_a_reduced_matmul_precision_falls_back() -> None:
    x = torch.randn(64, 16, generator=torch.Generator().manual_seed(6))
    before = torch.get_float32_matmul_precision()
    try:
        torch.set_float32_matmul_precision("medium")
        assert _run(_model(), _configs(LAB, "same"), x) == 0
    finally:
        torch.set_float32_matmul_precision(before)


@pytest.mark.parametrize(("setting", "batched"), [("bf16", 0), ("ieee", 1)])
def test_the_per_backend_matmul_precision_is_read(setting: str, batched: int) -> None:
    """torch's per-backend setting (torch.backends.mkldnn.matmul.fp32_precision) makes its
    legacy reading raise: a reduced one falls back, full float32 ("ieee") still batches, and
    neither raises (it did, and evaluate_many then fell back silently on every chunk)."""
    x = torch.randn(64, 16, generator=torch.Generator().manual_seed(6))
    matmul = torch.backends.mkldnn.matmul
    before = matmul.fp32_precision
    try:
        matmul.fp32_precision = setting
        assert _run(_model(), _configs(LAB, "same"), x) == batched
    finally:
        matmul.fp32_precision = before


def test_an_empty_batch_gives_empty_outputs_as_quantize_does() -> None:
    x = torch.randn(64, 16, generator=torch.Generator().manual_seed(6))
    assert _run(_model(), _configs(LAB, "same"), x[:0]) == 0


def test_float64_runs_batched_with_wider_formats() -> None:
    x = torch.randn(64, 16, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    configs = _configs([(24, 16), (20, 14)], "same")
    assert _run(_model(dtype=torch.float64), configs, x) == 1


def test_random_configs_against_integer_dot_products() -> None:
    """Random widths and frac widths, some pairs under the bound and some over: the population
    equals quantize() either way, and where the kernel ran batched its outputs are the exact
    integer dot products (numpy, int64) scaled by their grid."""
    rng = random.Random(0)
    model = _model(out=7)
    x = torch.randn(100, 16, generator=torch.Generator().manual_seed(8)) * 3
    taken = fallen = 0
    for _ in range(12):
        pairs = [(w, rng.randint(0, w - 1)) for w in rng.sample(range(2, 23), 3)]
        configs = _configs(pairs, "same")
        taken += _run(model, configs, x)
        gm = trace(model, x[:4])
        layers = [quantize(gm, rc).get_submodule("0") for rc in configs]
        xs = [FixedPoint(w, f).quantize(x) for w, f in pairs]
        index = [i for i in range(len(pairs)) for _ in pairs]
        bits = [f for _, f in pairs]
        got = linear_many(layers, xs, bits, stack([linear_facts(m) for m in layers], index))
        if got is None:
            fallen += 1
            continue
        for y, m, i in zip(got, layers, index, strict=True):
            fx, fw = bits[i], frac_bits(m.weight)
            fb = frac_bits(m.bias)
            assert fw is not None and fb is not None
            e = max(fx + fw, fb)
            kx = (xs[i].double().numpy() * 2.0**fx).astype(np.int64)
            kw = (m.weight.detach().double().numpy() * 2.0**fw).astype(np.int64)
            kb = (m.bias.detach().double().numpy() * 2.0**fb).astype(np.int64)
            exact = (kx @ kw.T) * 2 ** (e - fx - fw) + kb * 2 ** (e - fb)
            assert np.array_equal(y.double().numpy(), exact / 2.0**e)
            assert torch.equal(y, m(x))  # the layer's own call, data_in included
    assert taken > 0 and fallen > 0  # the widths drawn take both paths


def test_uneven_groups_and_any_order_equal_each_layer() -> None:
    """Inputs read by different numbers of layers (zero-padded slots) and layers listed in an
    order the grouping does not follow: each output is still its own layer's, contiguous."""
    gm = trace(_model(), torch.ones(4, 16))
    configs = [
        ResolvedConfig.from_dict(
            {"_0": {"data_in": _fx(8, fi), "weight": _fx(8, fw), "bias": _fx(8, fw)}}
        )
        for fi, fw in [(4, 4), (3, 5), (4, 6), (4, 2), (2, 4), (3, 3)]
    ]
    layers = [quantize(gm, rc).get_submodule("0") for rc in configs]
    x = torch.randn(33, 16, generator=torch.Generator().manual_seed(9))
    fmts = sorted({rc["_0"].format("data_in").frac_width for rc in configs})  # type: ignore[union-attr]
    xs = [FixedPoint(8, f).quantize(x) for f in fmts]
    index = [fmts.index(rc["_0"].format("data_in").frac_width) for rc in configs]  # type: ignore[union-attr]
    st = stack([linear_facts(m) for m in layers], index)
    assert st is not None and st.order is not None and st.slots == 3
    # the layout Stacked documents, block by block: each layer's transposed weight and bias
    # at (its input, its slot), zeros in the slots an input does not fill
    out, weight, bias = 5, torch.zeros(len(fmts), 16, 3 * 5), torch.zeros(len(fmts), 1, 3 * 5)
    for m, i, s in zip(layers, st.index, st.slot, strict=True):
        weight[i, :, s * out : (s + 1) * out] = m.weight.detach().t()
        bias[i, 0, s * out : (s + 1) * out] = m.bias.detach()
    assert st.bias is not None and st.bias_cf is not None
    assert torch.equal(st.weight, weight) and torch.equal(st.bias, bias)
    assert torch.equal(st.weight_cf, weight.transpose(1, 2)) and st.weight_cf.is_contiguous()
    assert torch.equal(st.bias_cf, bias.transpose(1, 2)) and st.weight.is_contiguous()
    got = linear_many(layers, xs, fmts, st)
    assert got is not None
    for y, m in zip(got, layers, strict=True):
        assert y.is_contiguous() and torch.equal(y, m(x))


def test_weights_too_large_to_stack_run_one_call_each() -> None:
    gm = trace(_model(), torch.ones(4, 16))
    layers = [quantize(gm, rc).get_submodule("0") for rc in _configs(LAB, "same")]
    facts = [linear_facts(m) for m in layers]
    index = [i for i in range(4) for _ in range(4)]
    assert stack(facts, index) is not None
    both = 2 * 4 * 16 * 20 * 4  # two layouts of 4 inputs x 16 in x (4 slots x 5 out) float32
    assert stack(facts, index, max_bytes=both) is not None
    assert stack(facts, index, max_bytes=both - 1) is None


def test_a_three_dimensional_input_and_a_data_out_format() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 5)).eval()
    gm = trace(model, torch.ones(2, 3, 16))
    configs = [
        ResolvedConfig.from_dict(
            {
                "_0": {
                    "data_in": _fx(8, 4),
                    "weight": _fx(w, w // 2),
                    "bias": _fx(w, w // 2),
                    "data_out": _fx(6, 2),
                }
            }
        )
        for w in (4, 6, 8)
    ]
    x = torch.randn(4, 7, 16, generator=torch.Generator().manual_seed(10))
    pop = Population(gm)
    for out, rc in zip(pop.forward(configs, x), configs, strict=True):
        assert out.shape == (4, 7, 5) and torch.equal(out, quantize(gm, rc)(x))
    assert pop.batched_calls == 1


def test_jsc_tiny_lab_space_runs_batched() -> None:
    model = build_model("jsc-tiny").eval()
    x = torch.randn(512, 16, generator=torch.Generator().manual_seed(11))
    gm = trace(model, x[:8])
    lin = next(n.name for n in gm.graph.nodes if info(n).op_kind == "linear")
    configs = [ResolvedConfig.from_dict({lin: rc["_0"].to_dict()}) for rc in _configs(LAB, "same")]
    pop = Population(gm)
    for out, rc in zip(pop.forward(configs, x), configs, strict=True):
        assert torch.equal(out, quantize(gm, rc)(x))
    assert pop.batched_calls == 1


def test_stacked_views_only_for_blocks_that_tile_one_tensor_in_order() -> None:
    whole = torch.arange(24.0).view(4, 3, 2)
    views = list(whole.unbind(0))
    s = stacked_views(views)
    assert s is not None and torch.equal(s, whole) and s.data_ptr() == whole.data_ptr()
    with torch.inference_mode():
        inf = torch.arange(24.0).view(4, 3, 2)
        assert stacked_views([inf[i].view(6) for i in range(4)]) is not None
    assert stacked_views(views[::-1]) is None
    assert stacked_views([views[0], views[2]]) is None
    assert stacked_views([t.clone() for t in views]) is None
    assert stacked_views([whole[:, 0], whole[:, 1]]) is None  # not contiguous blocks
    assert stacked_views(views[:1]) is None
    assert stacked_views(views[:3]) is not None  # a prefix tiles a prefix of the storage


def test_blocks_are_their_whole_and_a_changed_list_is_checked_again() -> None:
    """A :class:`Blocks` is ``whole.unbind(0)``, and ``stacked_views`` answers its whole
    itself (of any layout: a transposed whole too); a Blocks grown by a foreign tensor is no
    longer its whole's blocks, and the address check refuses it."""
    whole = torch.arange(24.0).view(4, 3, 2)
    blocks = Blocks(whole)
    assert len(blocks) == 4 and all(
        b.data_ptr() == whole[i].data_ptr() for i, b in enumerate(blocks)
    )
    assert stacked_views(blocks) is whole
    t = whole.transpose(1, 2)
    assert stacked_views(Blocks(t)) is t
    blocks.append(torch.zeros(3, 2))
    assert stacked_views(blocks) is None


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_quantize_inputs_stacked_equals_each_formats_own_quantize(dtype: torch.dtype) -> None:
    """One input through many nearest-rounding fixed-point formats in one stacked op: each
    block ``torch.equal`` to its format's own ``quantize`` (ties to even, saturation, NaN,
    infinities, -0.0 included) and to numpy's integer-grid referee, handed out as contiguous
    blocks of one tensor (so linear_many reads them without a stack); a mix with another
    rounding, another input or one format takes each format's own call."""
    g = torch.Generator().manual_seed(5)
    x = (torch.randn(37, 11, generator=g, dtype=torch.float64) * 50).to(dtype)
    x[0, :6] = torch.tensor([0.5, -2.5, float("nan"), float("inf"), -float("inf"), -0.0])
    fmts = [FixedPoint(w, f) for w, f in ((16, 8), (8, 6), (8, 4), (4, 2), (13, 0))]
    fmts.append(FixedPoint(6, 3, signed=False))
    got = quantize_inputs([(f, x) for f in fmts])
    assert stacked_views(got) is not None
    a = x.double().numpy()
    for q, f in zip(got, fmts, strict=True):
        assert q.is_contiguous() and q.dtype == dtype
        assert torch.equal(q.isnan(), x.isnan())
        own = f.quantize(x)
        assert torch.equal(q.nan_to_num(), own.nan_to_num())
        assert torch.equal(torch.signbit(q), torch.signbit(own))  # -0.0 kept as its own
        scale = 2.0**f.frac_width
        ref = np.clip(np.round(a * scale), f.min_int, f.max_int) / scale
        assert np.array_equal(q.double().numpy(), ref, equal_nan=True), f
    floor = FixedPoint(8, 4, rounding="floor")
    for pairs in ([(fmts[0], x), (floor, x)], [(fmts[0], x), (fmts[1], x.clone())], [(floor, x)]):
        mixed = quantize_inputs(pairs)
        assert stacked_views(mixed) is None
        assert all(
            torch.equal(q.nan_to_num(), f.quantize(t).nan_to_num())
            for q, (f, t) in zip(mixed, pairs, strict=True)
        )
