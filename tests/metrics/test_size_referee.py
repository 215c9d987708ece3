"""Bit-true model size, average weight bits and BitOPs of every format, against an external referee.

The referee is written here, independently of quantsearch's passes: parameters are enumerated
from the torch module (``named_parameters``, each tensor once), bits per element come from each
format's definition (fixed: ``width``; minifloat: sign + ``E`` + ``M``; log: sign + ``E``;
fp32: 32), and a block format's storage is ``numel x mantissa_width`` plus one shared exponent of
``exponent_width`` bits per block, the blocks counted with ``ceil`` over the tensor's actual
length along ``block_dim``. MACs come from ``torch.utils.flop_counter.FlopCounterMode`` (2 FLOPs
a MAC) run on each layer alone. The three ways the project reports these figures must agree with
the referee and with one another: ``compute_metrics`` of a fresh ``quantize``, the evaluator's
one-at-a-time path (``Evaluator.evaluate``) and its population path (``evaluate_many``).

BitOPs, as docs/metrics.md defines them: ``MACs x bits(weight) x bits(data_in)`` per MAC layer,
each at its format's ``bits_per_element``. For ``block_fp`` that is the *nominal* amortised width
``mantissa_width + exponent_width / block_size``, whatever the tensor's shape: the definition
prices a block format's multiply as if the shared exponent were spread over every element, not
as a mantissa-by-mantissa product plus one exponent add per block. The test checks the
documented definition; whether it is the right one for block formats is a question for the lead
(reported, not changed).
"""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from quantsearch.data import Split
from quantsearch.formats import BlockFP, FixedPoint, LogFormat, Minifloat, NumberFormat
from quantsearch.graph import info, trace
from quantsearch.metrics import compute_metrics
from quantsearch.passes.transform import ResolvedConfig, quantize
from quantsearch.search.evaluate import Evaluator

NAMES = ["model_size_bits", "avg_weight_bits", "bitops", "params"]


def _storage_bits(fmt: NumberFormat | None, shape: torch.Size) -> float:
    """The referee: bits to store a tensor of ``shape`` in ``fmt``, from the format's definition."""
    n = math.prod(shape)
    if fmt is None:
        return 32.0 * n
    if isinstance(fmt, FixedPoint):
        return float(fmt.width * n)
    if isinstance(fmt, Minifloat):
        return float((1 + fmt.exponent_width + fmt.mantissa_width) * n)
    if isinstance(fmt, LogFormat):
        return float((1 + fmt.exponent_width) * n)
    if isinstance(fmt, BlockFP):
        dims = list(shape) or [1]
        along = dims[fmt.block_dim]
        blocks = (n // along) * math.ceil(along / fmt.block_size)
        return float(fmt.mantissa_width * n + fmt.exponent_width * blocks)
    raise AssertionError(f"no referee for {fmt}")


def _nominal_bits(fmt: NumberFormat | None) -> float:
    """Bits of one operand in BitOPs, as docs/metrics.md defines them (see the module doc)."""
    if fmt is None:
        return 32.0
    if isinstance(fmt, BlockFP):
        return fmt.mantissa_width + fmt.exponent_width / fmt.block_size
    return _storage_bits(fmt, torch.Size([1]))


class _Mlp(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(10, 4), nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.fc1(x)))


class _Conv(nn.Module):
    """Conv1d and grouped Conv2d, BatchNorm (affine weight and bias), then a linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv1d(3, 4, 3, groups=1)
        self.c2 = nn.Conv2d(4, 6, 3, groups=2, bias=False)
        self.bn = nn.BatchNorm2d(6)
        self.fc = nn.Linear(6 * 3 * 3, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.c1(x))  # (N, 4, 5)
        h = h.unsqueeze(-1).expand(-1, -1, -1, 5)  # (N, 4, 5, 5)
        return self.fc(torch.flatten(self.bn(self.c2(h)), 1))


class _Tied(nn.Module):
    """A Linear called twice (one stored weight), an embedding tied to the output layer."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(7, 5)
        self.mid = nn.Linear(5, 5)
        self.out = nn.Linear(5, 7, bias=False)
        self.out.weight = self.emb.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.emb(x).mean(1)
        return self.out(self.mid(torch.relu(self.mid(h))))


F8 = FixedPoint(8, 4)
FORMATS: list[NumberFormat] = [
    FixedPoint(2, 0),
    FixedPoint(3, 3, signed=False),
    FixedPoint(6, 2, rounding="floor"),
    FixedPoint(5, 1, rounding="stochastic"),  # the population path evaluates it alone
    Minifloat(2, 1),
    Minifloat(4, 3, exponent_bias=5, subnormals=False),
    LogFormat(2),
    LogFormat(3, exponent_bias=1),
    BlockFP(4),  # 16 along the last dim: longer than every row here
    BlockFP(3, exponent_width=5, block_size=3),  # 10 = 3 + 3 + 3 + 1
    BlockFP(5, exponent_width=4, block_size=2, block_dim=1),  # the in-channel axis
    BlockFP(4, block_size=4, block_dim=0),  # across output rows
]


def _models() -> list[tuple[str, nn.Module, torch.Tensor]]:
    torch.manual_seed(0)
    return [
        ("mlp", _Mlp().eval(), torch.randn(4, 10)),
        ("conv", _Conv().eval(), torch.randn(4, 3, 7)),
    ]


def _layer_nodes(gm: Any) -> list[Any]:
    return [n for n in gm.graph.nodes if info(n).op_kind in ("linear", "conv1d", "conv2d")]


def _config(gm: Any, fmt: NumberFormat, skip_last: bool) -> dict[str, dict[str, Any]]:
    """``fmt`` on the weight (and bias) of every layer, inputs at fixed(8,4); with
    ``skip_last``, the last layer left in float."""
    table: dict[str, dict[str, Any]] = {}
    nodes = _layer_nodes(gm)
    for node in nodes[:-1] if skip_last else nodes:
        roles = {"weight": fmt.to_dict(), "data_in": F8.to_dict()}
        has_bias = getattr(gm.get_submodule(str(node.target)), "bias", None) is not None
        if has_bias and not (isinstance(fmt, BlockFP) and fmt.block_dim == 1):  # 1-d bias
            roles["bias"] = fmt.to_dict()
        table[node.name] = roles
    return table


def _referee(model: nn.Module, x: torch.Tensor, gm: Any, table: dict[str, Any]) -> dict[str, float]:
    """The referee's figures, from the torch module and the config table alone."""
    from quantsearch.formats import format_from_dict

    nodes = {n.name: n for n in _layer_nodes(gm)}
    # each parameter (by identity) -> the formats its uses apply (a float use: None)
    uses: dict[int, list[NumberFormat | None]] = {}
    tensors: dict[int, torch.Tensor] = {}
    weights: set[int] = set()
    for name, node in nodes.items():
        mod = model.get_submodule(str(node.target))
        roles = table.get(name, {})
        for role in ("weight", "bias"):
            p = getattr(mod, role, None)
            if p is None:
                continue
            tensors[id(p)] = p
            if role == "weight":
                weights.add(id(p))
            f = roles.get(role)
            uses.setdefault(id(p), []).append(format_from_dict(f) if f else None)
    for p in model.parameters():  # the embedding, BatchNorm: float, read as they are
        if id(p) not in tensors or (isinstance(model, _Tied) and p is model.emb.weight):
            tensors[id(p)] = p
            uses.setdefault(id(p), []).append(None)

    def stored(key: int) -> float:  # one stored copy serves every use: the widest
        return max(_storage_bits(f, tensors[key].shape) for f in uses[key])

    size = sum(stored(k) for k in tensors)
    w_bits = sum(stored(k) for k in weights)
    w_elems = sum(tensors[k].numel() for k in weights)
    # BitOPs: each layer call's MACs from FlopCounterMode on the layer alone
    calls: list[tuple[nn.Module, torch.Tensor]] = []
    hooks = [
        m.register_forward_pre_hook(lambda m, a: calls.append((m, a[0])))
        for m in model.modules()
        if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d))
    ]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    bitops = 0.0
    for (mod, inp), node in zip(calls, nodes.values(), strict=True):
        with FlopCounterMode(display=False) as fc, torch.no_grad():
            mod(inp)
        macs = fc.get_total_flops() // 2
        roles = table.get(node.name, {})
        w = format_from_dict(roles["weight"]) if "weight" in roles else None
        d = format_from_dict(roles["data_in"]) if "data_in" in roles else None
        bitops += macs * _nominal_bits(w) * _nominal_bits(d)
    params = sum(p.numel() for p in model.parameters())
    return {
        "model_size_bits": size,
        "avg_weight_bits": w_bits / w_elems,
        "bitops": bitops / len(x),
        "params": float(params),
    }


def _close(got: dict[str, float], want: dict[str, float], where: str) -> None:
    for k, v in want.items():
        assert math.isclose(got[k], v, rel_tol=1e-12), f"{where}: {k} {got[k]} != referee {v}"


def _check(label: str, model: nn.Module, x: torch.Tensor, fmt: NumberFormat) -> None:
    gm = trace(model, x)
    y = torch.zeros(len(x), dtype=torch.long)
    ev = Evaluator(gm, Split(x, y), NAMES, batch_size=4, device="cpu")
    tables = [_config(gm, fmt, skip_last=False), _config(gm, fmt, skip_last=True)]
    if label == "tied":  # the shared Linear's two calls under two formats: the widest
        first, second = (n.name for n in _layer_nodes(gm)[:2])
        tables.append({first: {"weight": fmt.to_dict()}, second: {"weight": F8.to_dict()}})
    rcs = [ResolvedConfig.from_dict(t, gm=gm) for t in tables]
    many = ev.evaluate_many(rcs)
    for table, rc, batched in zip(tables, rcs, many, strict=True):
        where = f"{label} {table}"
        want = _referee(model, x, gm, table)
        _close(compute_metrics(quantize(gm, rc), NAMES), want, f"compute_metrics {where}")
        one = ev.evaluate(rc)
        assert one.metrics is not None and batched.metrics is not None, (one, batched)
        _close(one.metrics, want, f"evaluate {where}")
        _close(batched.metrics, want, f"evaluate_many {where}")


@pytest.mark.parametrize("fmt", FORMATS, ids=str)
def test_every_format_on_small_models_equals_the_referee_on_every_path(fmt: NumberFormat) -> None:
    """Block formats: a block is ``block_size`` elements of one row along ``block_dim``, the
    last one shorter, so a Linear(10, 4) weight in 16-element blocks stores 4 exponents,
    not 40 / 16 = 2.5 of them."""
    for label, model, x in _models():
        _check(label, model, x, fmt)


@pytest.mark.parametrize(
    "fmt", [FixedPoint(2, 0), Minifloat(2, 1), BlockFP(3, block_size=3)], ids=str
)
def test_a_linear_weight_tied_to_an_embedding_is_in_the_average_weight_bits(
    fmt: NumberFormat,
) -> None:
    """The output layer's weight is the embedding's table: stored once, at 32 bits, since the
    embedding reads it in float (docs/metrics.md), and it is a linear layer's weight, so the
    referee puts its 35 elements at 32 bits into ``avg_weight_bits``. The passes left it out
    (the embedding node, met first in the graph, had counted the tensor), so the average was
    the shared Linear's alone: 2.0 instead of (25 x 2 + 35 x 32) / 60 = 19.5 for fixed(2,0)."""
    torch.manual_seed(0)
    _check("tied", _Tied().eval(), torch.randint(0, 7, (4, 3)), fmt)


@pytest.mark.parametrize("strategy", ["brute_force", "random"])
def test_search_records_equal_the_referee_with_bias_same_as_weight(strategy: str) -> None:
    """Each trial's recorded metrics against the referee of its recorded config: block_fp,
    fixed and minifloat weights, the bias ``same_as_weight`` (block_fp in 3-element blocks:
    a Linear(10, 4) weight stores 4 x ceil(10 / 3) = 16 exponents, its 4-element bias 2)."""
    from quantsearch.search.api import search

    torch.manual_seed(0)
    model = _Mlp().eval()
    x, y = torch.randn(32, 10), torch.randint(0, 3, (32,))
    options = [
        BlockFP(3, block_size=3),
        BlockFP(4, exponent_width=5, block_size=16),
        FixedPoint(4, 2),
        Minifloat(2, 1),
    ]
    space = {
        "by": "type",
        "choices": {"linear": {"weight": [f.to_dict() for f in options], "bias": "same_as_weight"}},
    }
    result = search(
        model,
        (x, y),
        space=space,
        objectives={"model_size_bits": {"direction": "minimize"}},
        strategy=strategy,
        n_trials=4 if strategy == "random" else None,
        metrics=NAMES,
        device="cpu",
        progress=False,
    )
    gm = trace(model, x[:4])
    checked = 0
    for t in result.trials:
        if t.config is None:  # a repeat: its metrics are its first evaluation's
            continue
        want = _referee(model, x[:4], gm, t.config)
        _close(t.metrics, want, f"{strategy} trial {t.number} {t.config}")
        checked += 1
    assert checked >= 2


def test_activation_bits_count_a_block_formats_real_blocks() -> None:
    """A Linear(10, 5)'s output in block_fp(m4, e8) blocks of 4 on a batch of 2: each 5-wide
    row is 2 blocks (ceil(5 / 4)), so 2 x 5 x 4 + 4 x 8 = 72 bits, not 10 x (4 + 8 / 4) = 60;
    the graph input is 2 x 10 float32s. Referee: the format's definition, per sample."""
    torch.manual_seed(0)
    gm = trace(nn.Sequential(nn.Linear(10, 5)).eval(), torch.randn(2, 10))
    (node,) = _layer_nodes(gm)
    fmt = BlockFP(4, block_size=4)
    rc = ResolvedConfig.from_dict({node.name: {"data_out": fmt.to_dict()}}, gm=gm)
    got = compute_metrics(quantize(gm, rc), ["activation_bits", "peak_activation_bits"])
    out = _storage_bits(fmt, torch.Size([2, 5]))
    assert out == 72
    assert got == {"activation_bits": (640 + out) / 2, "peak_activation_bits": (640 + out) / 2}
