"""2-D max pooling on a channels-last copy gives torch's NCHW result bit for bit.

Referee: torch's own ``F.max_pool2d`` on the contiguous (NCHW) input, compared by bits (NaN
payloads, infinities and signed zeros included), and ``quantize(gm, config)(x)`` for whole
models run as a population and through the prepared (slot-filled) model, with the
channels-last way forced on and off.
"""

from __future__ import annotations

import copy
import itertools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from quantsearch.data import Split
from quantsearch.graph import trace
from quantsearch.passes.transform import ResolvedConfig, quantize
from quantsearch.passes.transform.modules import submodule
from quantsearch.passes.transform.pool_layout import MaxPoolLayout
from quantsearch.passes.transform.population import Population
from quantsearch.passes.transform.slots import PreparedModel
from quantsearch.search.evaluate import Evaluator


def _awkward(shape: tuple[int, ...], dtype: torch.dtype, seed: int) -> torch.Tensor:
    """Normal values with zeros of both signs, NaN and infinities of both signs mixed in."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g)
    x[x.abs() < 0.3] = 0.0
    x[torch.rand(shape, generator=g) < 0.2] *= -1.0  # -0.0 where zero
    x[torch.rand(shape, generator=g) < 0.05] = float("nan")
    x[torch.rand(shape, generator=g) < 0.05] = float("inf")
    x[torch.rand(shape, generator=g) < 0.05] = -float("inf")
    return x.to(dtype)


def _bits(t: torch.Tensor) -> torch.Tensor:
    return t.contiguous().view(torch.int64 if t.dtype == torch.float64 else torch.int32)


PARAMS = [
    (k, s, p, d, c)
    for k, s, p, d, c in itertools.product((1, 2, 3), (1, 2, 3), (0, 1), (1, 2), (False, True))
    if p <= k // 2
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_channels_last_is_torchs_nchw_result_bit_for_bit(dtype: torch.dtype) -> None:
    pools = MaxPoolLayout(force=True)
    n = 0
    for i, (k, s, p, d, c) in enumerate(PARAMS):
        for shape in ((5, 16, 9, 7), (2, 3, 8, 8), (1, 1, 5, 5), (4, 24, 6, 6)):
            x = _awkward(shape, dtype, seed=i)
            want = F.max_pool2d(x, k, s, p, d, c)
            got = pools.call(f"f{i}", F.max_pool2d, (x, k, s, p, d, c), {})
            assert got.is_contiguous() and torch.equal(_bits(got), _bits(want)), (k, s, p, d, c)
            module = nn.MaxPool2d(k, s, p, d, ceil_mode=c)
            got = pools.call(f"m{i}", module, (x,), {})
            assert torch.equal(_bits(got), _bits(want))
            n += 1
    assert n > 100 and all(pools._faster.values())


def test_other_calls_are_made_as_given() -> None:
    """Indices asked for, a 3-D (unbatched) input, another op: called as given, not timed."""
    pools = MaxPoolLayout(force=True)
    x = torch.randn(2, 4, 6, 6)
    _vals, idx = pools.call("a", nn.MaxPool2d(2, return_indices=True), (x,), {})
    assert torch.equal(idx, F.max_pool2d(x, 2, return_indices=True)[1])
    pools.call("b", F.max_pool2d, (x, 2), {"return_indices": True})
    pools.call("c", F.max_pool2d, (x, 2, 2, 0, 1, False, True), {})
    pools.call("d", nn.MaxPool2d(2), (x[0],), {})
    pools.call("e", F.avg_pool2d, (x, 2), {})
    assert pools._faster == {}


def test_timing_decides_after_two_calls_each_way() -> None:
    """Each node and input shape is decided on its own, after its first four calls (each way
    twice, in turn); every call before and after gives the module's own result."""
    pools = MaxPoolLayout()
    module = nn.MaxPool2d(2)
    for shape, calls in (((8, 16, 8, 8), 3), ((8, 16, 8, 8), 2), ((3, 16, 8, 8), 4)):
        x = torch.randn(shape)
        for _ in range(calls):
            assert torch.equal(pools.call("p", module, (x,), {}), module(x))
    assert len(pools._faster) == 2 and pools._times == {}


class Pools(nn.Module):
    """Convolutions between a MaxPool2d module and F.max_pool2d (padding, ceil mode)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.pool = nn.MaxPool2d(2, ceil_mode=True)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.fc = nn.Linear(8 * 3 * 3, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(torch.relu(self.conv1(x)))
        x = F.max_pool2d(self.conv2(x), 3, 2, 1)
        return self.fc(x.flatten(1))


@pytest.mark.parametrize("force", [True, False])
def test_a_population_equals_quantize_either_way(force: bool) -> None:
    torch.manual_seed(0)
    x = torch.randn(16, 1, 9, 9)
    gm = trace(Pools().eval(), x[:2])
    configs = []
    for w in (4, 6, 8):
        fx_w = {"format": "fixed", "width": w, "frac_width": w // 2}
        table = {n: {"weight": fx_w, "data_in": fx_w} for n in ("conv1", "conv2", "fc")}
        configs.append(ResolvedConfig.from_dict(table))
    pop = Population(gm)
    pop.pools.force = force
    outs = pop.forward(configs, x)
    for out, rc in zip(outs, configs, strict=True):
        assert torch.equal(out, quantize(gm, rc)(x))
    assert {key[0] for key in pop.pools._faster} == {"pool", "max_pool2d"}  # both went through it


@pytest.mark.parametrize("force", [True, False])
def test_the_prepared_model_equals_quantize_either_way(force: bool) -> None:
    torch.manual_seed(0)
    x = torch.randn(16, 1, 9, 9)
    gm = trace(Pools().eval(), x[:2])
    pm = PreparedModel(gm, pools=True)
    assert pm.pools is not None
    pm.pools.force = force
    for w in (4, 6, 4):
        fx_w = {"format": "fixed", "width": w, "frac_width": w // 2}
        rc = ResolvedConfig.from_dict({n: {"weight": fx_w} for n in ("conv1", "conv2", "fc")})
        qgm = pm.apply_(rc)
        assert torch.equal(qgm(x), quantize(gm, rc)(x))
        assert type(qgm.pool) is nn.MaxPool2d  # the records read the module: unchanged
    assert {key[0] for key in pm.pools._faster} == {"pool"}  # the module went through it
    assert "forward" not in vars(submodule(gm, "pool"))  # the user's module untouched
    assert torch.equal(copy.deepcopy(qgm)(x), qgm(x))  # a copy routes its own module


def test_pools_stay_as_built_under_a_latency_metric() -> None:
    """A noisy metric (latency) times the model as ``quantize`` builds it: no routing."""
    x = torch.randn(8, 1, 9, 9)
    gm = trace(Pools().eval(), x[:2])
    data = Split(x, torch.zeros(8, dtype=torch.long))
    assert Evaluator(gm, data, ["accuracy", "model_size_bits"]).prepared().pools is not None
    assert Evaluator(gm, data, ["accuracy", "latency_ms"]).prepared().pools is None
