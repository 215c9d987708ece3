"""The contract every registered number format keeps (as Optuna runs one suite over its samplers).

Each format's own test file (``tests/formats/test_<module>.py``, the module its class lives in)
lists ``EXAMPLES``, instances to run through this contract, and, for an element-wise format,
``grid(fmt)``: every value the format can hold, enumerated independently of its ``quantize``
(by hand or by decoding bit patterns). A new format therefore costs one source file, one test
file and one registry line; forgetting ``EXAMPLES`` fails :func:`test_every_format_has_examples`.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest
import torch

from quantsearch.formats import FORMATS, NumberFormat, format_from_dict, format_from_str


def _test_module(name: str) -> ModuleType | None:
    module = FORMATS.get(name).__module__.rsplit(".", 1)[-1]
    try:
        return importlib.import_module(f"tests.formats.test_{module}")
    except ModuleNotFoundError:
        return None


def _examples() -> list[tuple[str, NumberFormat]]:
    out = []
    for name in FORMATS.names():
        mod = _test_module(name)
        for fmt in getattr(mod, "EXAMPLES", []):
            out.append((f"{fmt}", fmt))
    return out


EXAMPLES = _examples()
IDS = [label for label, _ in EXAMPLES]
FMTS = [fmt for _, fmt in EXAMPLES]


def _grid(fmt: NumberFormat) -> torch.Tensor | None:
    mod = _test_module(fmt.name)
    enumerate_grid: Callable[[Any], list[float]] | None = getattr(mod, "grid", None)
    if enumerate_grid is None:
        return None
    return torch.tensor(sorted(enumerate_grid(fmt)), dtype=torch.float64)


def _range(fmt: NumberFormat) -> tuple[float, float]:
    """The smallest and largest values the format gives, from inputs far beyond any range."""
    big = torch.finfo(torch.float32).max
    lo, hi = fmt.quantize(torch.tensor([-big, big])).tolist()
    return lo, hi


def _saturation(fmt: NumberFormat) -> float:
    """The largest magnitude the format gives."""
    return max(abs(v) for v in _range(fmt))


def _inputs(fmt: NumberFormat, seed: int = 0) -> torch.Tensor:
    """Values across every scale the format covers, both signs, and beyond its range."""
    g = torch.Generator().manual_seed(seed)
    top = min(_saturation(fmt), 1e30)
    magnitudes = torch.logspace(-8, 1, 96) * top  # from deep underflow to 10x saturation
    signs = torch.where(torch.rand(96, generator=g) < 0.5, -1.0, 1.0)
    noise = torch.randn(160, generator=g) * top / 3
    edges = torch.tensor([0.0, top, -top, 3.4e38, -3.4e38])  # and float32's largest
    return torch.cat([magnitudes * signs, noise[:155], edges])


def _shaped(fmt: NumberFormat, x: torch.Tensor) -> torch.Tensor:
    return x.reshape(8, 32)  # two dimensions, so block formats meet a block_dim of 0 or -1


def _q(fmt: NumberFormat, x: torch.Tensor) -> torch.Tensor:
    # stochastic rounding draws: a fixed generator makes a run reproducible
    return fmt.quantize(x, generator=torch.Generator().manual_seed(1))


def test_every_format_has_examples() -> None:
    covered = {fmt.name for fmt in FMTS}
    missing = [n for n in FORMATS.names() if n not in covered]
    assert not missing, f"list EXAMPLES for {missing} in tests/formats/test_<module>.py"
    for fmt in FMTS:  # every element-wise format also has an independent grid
        assert not fmt.elementwise or fmt.is_identity or _grid(fmt) is not None, fmt.name


@pytest.mark.parametrize("fmt", FMTS, ids=IDS)
def test_quantize_is_idempotent_and_keeps_shape_and_dtype(fmt: NumberFormat) -> None:
    x = _shaped(fmt, _inputs(fmt))
    q = _q(fmt, x)
    assert q.shape == x.shape and q.dtype == x.dtype
    assert torch.equal(_q(fmt, q), q)
    assert torch.isfinite(q).all()


@pytest.mark.parametrize("fmt", FMTS, ids=IDS)
def test_values_are_on_the_independent_grid(fmt: NumberFormat) -> None:
    grid = _grid(fmt)
    if grid is None:
        pytest.skip(f"{fmt.name} has no per-element grid")
    grid = grid[grid.abs() <= torch.finfo(torch.float32).max]  # what float32 holds
    x = torch.cat([_inputs(fmt), grid.float(), ((grid[1:] + grid[:-1]) / 2).float()])
    q = _q(fmt, x).double()
    assert torch.isin(q, grid).all(), q[~torch.isin(q, grid)][:5]
    assert torch.equal(_q(fmt, grid.float()).double(), grid)  # every grid value is kept
    # the range is the grid's: saturation gives its largest magnitude
    assert _saturation(fmt) == float(grid.abs().max())


@pytest.mark.parametrize("fmt", FMTS, ids=IDS)
def test_element_wise_formats_are_monotone_and_element_wise(fmt: NumberFormat) -> None:
    if not fmt.elementwise:
        pytest.skip("a block format's values depend on their block")
    if not fmt.deterministic:
        pytest.skip("stochastic rounding is monotone only in expectation")
    x, _ = _inputs(fmt).sort()
    q = _q(fmt, x)
    assert (q[1:] >= q[:-1]).all()
    one_by_one = torch.cat([_q(fmt, v.reshape(1)) for v in x])
    assert torch.equal(one_by_one, q)


@pytest.mark.parametrize("fmt", FMTS, ids=IDS)
def test_bits_per_element_bounds_the_distinct_values(fmt: NumberFormat) -> None:
    bits = fmt.bits_per_element
    assert 0 < bits <= 32 and format_from_dict(fmt.to_dict()).bits_per_element == bits
    if fmt.is_identity:
        return
    grid = _grid(fmt)
    if grid is not None:
        assert len(grid) <= 2**bits
    if fmt.elementwise:
        sweep = torch.linspace(-1.5, 1.5, 200_001) * _saturation(fmt)
        assert _q(fmt, sweep).unique().numel() <= 2**bits


@pytest.mark.parametrize("fmt", FMTS, ids=IDS)
def test_str_round_trips_through_the_parser(fmt: NumberFormat) -> None:
    assert format_from_str(str(fmt)) == fmt
    assert format_from_dict(fmt.to_dict()) == fmt


@pytest.mark.parametrize("fmt", FMTS, ids=IDS)
def test_frozen_hashable_and_equal_by_value(fmt: NumberFormat) -> None:
    field = dataclasses.fields(fmt)[0].name if dataclasses.fields(fmt) else "anything"  # type: ignore[arg-type]
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(fmt, field, 1)
    twin = format_from_dict(dict(fmt.to_dict()))
    assert twin == fmt and hash(twin) == hash(fmt) and len({fmt, twin}) == 1
    assert twin.canonical() == fmt.canonical()


@pytest.mark.parametrize("fmt", FMTS, ids=IDS)
def test_straight_through_gradient_is_identity_inside_the_range(fmt: NumberFormat) -> None:
    on_grid = _q(fmt, _shaped(fmt, _inputs(fmt))).detach().requires_grad_(True)
    _q(fmt, on_grid).sum().backward()
    assert on_grid.grad is not None and torch.equal(on_grid.grad, torch.ones_like(on_grid))
    if fmt.elementwise:  # off the grid, well inside the range
        lo, hi = _range(fmt)
        inside = (lo + hi) / 2 + (torch.rand(256) - 0.5) * (hi / 2 - lo / 2)
        inside.requires_grad_(True)
        _q(fmt, inside).sum().backward()
        assert inside.grad is not None and torch.equal(inside.grad, torch.ones_like(inside))
    if not fmt.is_identity:  # saturated values get no gradient (clipped straight-through)
        beyond = (torch.tensor([4.0, -4.0]) * _saturation(fmt)).nan_to_num()  # inf: float max
        beyond.requires_grad_(True)
        _q(fmt, beyond).sum().backward()
        assert beyond.grad is not None and torch.equal(beyond.grad, torch.zeros(2))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("fmt", FMTS, ids=IDS)
def test_half_precision_inputs_stay_in_range(fmt: NumberFormat, dtype: torch.dtype) -> None:
    top = _saturation(fmt)
    limit = torch.finfo(dtype).max
    x = _shaped(fmt, _inputs(fmt).clamp(-limit, limit).to(dtype))
    q = _q(fmt, x)
    assert q.dtype == dtype and q.shape == x.shape
    assert torch.isfinite(q).all()
    assert (q.float().abs() <= top).all()
    grid = _grid(fmt)
    if grid is not None and top <= limit:  # a range the dtype holds: values stay on the grid
        assert torch.isin(q.double(), grid).all()
