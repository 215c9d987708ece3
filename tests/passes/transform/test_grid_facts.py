"""The grids and bounds of many linear layers read in one pass, against one tensor at a time.

Referees: Python's ``float.as_integer_ratio`` for the grid of every value (the smallest ``f``
with ``v * 2^f`` an integer) and ``math.fsum`` (a correctly rounded sum) for the weight's
bound; the per-layer :func:`linear_facts` for everything else.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from quantsearch.formats import FixedPoint
from quantsearch.passes.transform.grid_facts import (
    frac_bits,
    frac_bits_many,
    linear_facts,
    linear_facts_many,
)
from quantsearch.passes.transform.layer import LayerQuant
from quantsearch.passes.transform.modules import QuantLinear


def _frac_of(v: float) -> int:
    """The smallest f with v * 2^f an integer, from Python's exact fraction of the float."""
    p, q = v.as_integer_ratio()  # q is a power of two
    return q.bit_length() - 1 if q > 1 else -((p & -p).bit_length() - 1)


def _want(values: list[float]) -> int | None:
    if not all(math.isfinite(v) for v in values):
        return None
    return max((_frac_of(v) for v in values if v != 0), default=0)


def test_frac_bits_many_equals_each_array_alone() -> None:
    g = np.random.default_rng(0)
    arrays = [
        g.standard_normal(40) * 1e-6,
        np.zeros(0),
        np.zeros(5),
        np.round(g.standard_normal(30) * 2.0**30),  # large integers: f < 0
        np.array([2.0**-1070, -3 * 2.0**-1060]),  # float64 subnormals
        np.array([0.75, np.nan, 1.0]),
        np.array([np.inf]),
        np.array([0.0, -0.0, 6.0]),
        g.standard_normal(7).astype(np.float32).astype(np.float64),
    ]
    arrays[0][::3] = 0.0
    want = [_want(a.tolist()) for a in arrays]
    assert want[1:3] == [0, 0] and want[5:7] == [None, None] and want[7] == -1
    assert frac_bits_many(arrays) == want
    assert [frac_bits_many([a])[0] for a in arrays] == want
    assert [frac_bits(torch.from_numpy(a)) for a in arrays] == want
    assert frac_bits_many([np.zeros(0), np.zeros(0)]) == [0, 0]
    # every order and grouping of the same arrays
    for i in range(len(arrays)):
        rest = arrays[i:] + arrays[:i]
        assert frac_bits_many(rest) == want[i:] + want[:i]


def _layer(lin: nn.Linear, fmt: FixedPoint | None, bias: bool = True) -> QuantLinear:
    """As ``quantize`` builds it in eval mode: weight and bias rounded once by ``fmt``."""
    m = QuantLinear(lin.in_features, lin.out_features, bias=bias)
    state = {k: v if fmt is None else fmt.quantize(v) for k, v in lin.state_dict().items()}
    m.load_state_dict(state if bias else {"weight": state["weight"]})
    m._set_formats(LayerQuant(weight=fmt, bias=fmt if bias else None), True)
    return m.eval()


def test_linear_facts_many_against_one_layer_at_a_time_and_exact_sums() -> None:
    torch.manual_seed(0)
    lin = nn.Linear(16, 5)
    lin_nb = nn.Linear(16, 5, bias=False)
    training = _layer(lin, FixedPoint(8, 4)).train()
    layers: list[nn.Module] = [
        _layer(lin, FixedPoint(16, 8)),
        _layer(lin, FixedPoint(4, 2)),
        nn.Linear(16, 5),  # not a quantized layer: no facts
        _layer(lin, None),  # float weights: on no coarse grid, bits still read
        training,  # quantized anew on every call: no facts
        _layer(lin_nb, FixedPoint(8, 6), bias=False),
        _layer(lin, FixedPoint(8, 4)),
    ]
    got = linear_facts_many(layers)
    assert got[2] is None and got[4] is None
    for m, f in zip(layers, got, strict=True):
        if f is None:
            continue
        assert isinstance(m, QuantLinear)
        one = linear_facts(m)
        assert one is not None
        w = m.weight.detach()
        b = None if m.bias is None else m.bias.detach()
        assert torch.equal(f.weight_t, w.t()) and f.weight_t.data_ptr() == w.data_ptr()
        assert (f.bias is None) == (b is None)
        if b is not None:
            assert f.bias is not None and torch.equal(f.bias, b.view(1, -1))
        assert f.bits == one.bits
        want_b = 0 if b is None else _want(b.tolist())
        assert f.bits == (_want(w.flatten().tolist()), want_b)
        assert f.bias_max == one.bias_max == (0.0 if b is None else max(map(abs, b.tolist())))
        # a bound summed in some order: within float64 rounding of the exact sum
        exact = math.fsum(max(abs(v) for v in col) for col in w.t().tolist())
        assert math.isclose(f.weight_sum, exact, rel_tol=2**-45)
        assert math.isclose(one.weight_sum, exact, rel_tol=2**-45)
    assert linear_facts_many([]) == []
    assert linear_facts_many([nn.Linear(2, 2)]) == [None]
