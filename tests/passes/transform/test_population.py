"""A population run against quantize(gm, config) one config at a time: torch.equal outputs.

The referee is the public transform, ``quantize(gm, rc)(x)``, one config at a time. Every
zoo model runs a population holding every deterministic registered format (the contract's
EXAMPLES, on every other quantizable node, so quantized and float layers alternate) and random
per-layer fixed-point configs; a stochastic format is refused.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
import torch
from torch import fx

from quantsearch.formats import FixedPoint, NumberFormat
from quantsearch.graph import info
from quantsearch.models import MODELS
from quantsearch.passes.transform import QUANTIZERS, ResolvedConfig, quantize
from quantsearch.passes.transform import population as population_module
from quantsearch.passes.transform.population import Population, population_refusal
from tests.formats.test_contract import FMTS
from tests.passes.transform.test_slots import _config, _traced


def random_configs(gm: fx.GraphModule, n: int, seed: int) -> list[ResolvedConfig]:
    """``n`` per-layer configs: each quantizable node's roles unset or fixed(w, f) at random."""
    rng = random.Random(seed)
    nodes = [node for node in gm.graph.nodes if info(node).op_kind in QUANTIZERS.names()]
    out = []
    for _ in range(n):
        table: dict[str, dict[str, Any]] = {}
        for node in nodes:
            roles: dict[str, Any] = {}
            for role in QUANTIZERS.get(info(node).op_kind).roles:
                if rng.random() < 0.8:
                    w = rng.randint(2, 12)
                    roles[role] = FixedPoint(w, rng.randint(0, w - 1)).to_dict()
            if roles:
                table[node.name] = roles
        out.append(ResolvedConfig.from_dict(table, gm=gm))
    return out


def _quantized(gm: fx.GraphModule, rc: ResolvedConfig, x: torch.Tensor) -> torch.Tensor | None:
    try:
        out: torch.Tensor = quantize(gm, rc)(x)
    except Exception:  # a format some layer cannot take: not part of the population
        return None
    return out


@pytest.mark.parametrize(
    "name",
    [pytest.param(n, marks=pytest.mark.slow) if n == "cnn-digits" else n for n in MODELS.names()],
)
def test_a_population_equals_quantize_one_config_at_a_time(name: str) -> None:
    gm, x = _traced(name)
    before = {k: v.clone() for k, v in gm.state_dict().items()}
    configs = [_config(gm, fmt, every=2) for fmt in FMTS if fmt.deterministic]
    configs += random_configs(gm, 8, seed=0)
    with torch.no_grad():
        pairs = [(rc, _quantized(gm, rc, x)) for rc in configs]
        wants = [(rc, want) for rc, want in pairs if want is not None]
        configs = [rc for rc, _ in wants] + [wants[0][0], wants[1][0]]  # repeats share values
        assert len(configs) > 20
        pop = Population(gm)
        got = pop.forward(configs, x)
        for (rc, want), out in zip(wants, got, strict=False):
            assert out.dtype == want.dtype and torch.equal(out, want), f"{name}: {rc.key()}"
        assert got[-2] is got[0] and got[-1] is got[1]
        again = pop.forward(configs[::-1], x)  # memoised modules, another order
        assert all(torch.equal(a, b) for a, b in zip(again, got[::-1], strict=True))
    assert all(torch.equal(before[k], v) for k, v in gm.state_dict().items())


def test_configs_share_the_values_they_agree_on() -> None:
    gm, x = _traced("jsc-tiny")
    lin = next(n for n in gm.graph.nodes if info(n).op_kind == "linear")
    # weight only on the linear layer: its input (the unquantized prefix) is computed once
    configs = [
        ResolvedConfig.from_dict({lin.name: {"weight": FixedPoint(w, 2).to_dict()}}, gm=gm)
        for w in (4, 6, 8, 4)
    ]
    calls: list[str] = []
    handle = torch.nn.modules.module.register_module_forward_hook(
        lambda m, i, o: calls.append(type(m).__name__)
    )
    try:
        outs = Population(gm).forward(configs, x)
    finally:
        handle.remove()
    assert calls.count("BatchNorm1d") == 1 and calls.count("QuantLinear") == 3
    assert outs[0] is outs[3]


@pytest.mark.parametrize("fmt", [f for f in FMTS if not f.deterministic], ids=str)
def test_stochastic_rounding_is_refused(fmt: NumberFormat) -> None:
    gm, x = _traced("mlp-digits")
    configs = [_config(gm, None), _config(gm, fmt, every=2)]
    bound = Population(gm).bind(configs)
    assert "stochastic" in str(population_refusal(gm, bound))
    with pytest.raises(ValueError, match="stochastic"):
        Population(gm).forward(configs, x)


def test_a_graph_in_training_mode_is_refused() -> None:
    gm, x = _traced("mlp-digits")
    gm.train()
    with pytest.raises(ValueError, match="training mode"):
        Population(gm).forward([_config(gm, None)], x)


def test_a_layer_input_is_quantized_once_per_distinct_format() -> None:
    gm, x = _traced("jsc-tiny")
    lin = next(n for n in gm.graph.nodes if info(n).op_kind == "linear")
    fmts = [FixedPoint(6, 3), FixedPoint(5, 3)]  # no weight uses these
    configs = [
        ResolvedConfig.from_dict(
            {lin.name: {"data_in": d.to_dict(), "weight": FixedPoint(w, 2).to_dict()}}, gm=gm
        )
        for d in fmts
        for w in (4, 6, 8)
    ]
    calls: list[FixedPoint] = []
    real = population_module.quantize_inputs  # every layer input is quantized through it

    def counting(pairs: list[tuple[FixedPoint, torch.Tensor]]) -> list[torch.Tensor]:
        calls.extend(f for f, _ in pairs)
        return real(pairs)

    with pytest.MonkeyPatch.context() as m:
        m.setattr(population_module, "quantize_inputs", counting)
        outs = Population(gm).forward(configs, x)
    assert sorted(map(str, (c for c in calls if c in fmts))) == sorted(map(str, fmts))
    with torch.no_grad():
        assert all(torch.equal(o, quantize(gm, rc)(x)) for o, rc in zip(outs, configs, strict=True))


class _InPlace(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.fc(x)
        return y.add_(1.0)


def test_a_graph_that_works_in_place_is_refused() -> None:
    from quantsearch.graph import trace

    x = torch.randn(5, 4)
    gm = trace(_InPlace().eval(), x)
    fc = next(n for n in gm.graph.nodes if info(n).op_kind == "linear")
    rc = ResolvedConfig.from_dict({fc.name: {"weight": FixedPoint(4, 2).to_dict()}}, gm=gm)
    with pytest.raises(ValueError, match="in place"):
        Population(gm).forward([rc, rc], x)


def test_new_configs_of_formats_met_before_find_the_first_ones_node_configs() -> None:
    """A search's configs are new objects each trial: :meth:`Population.columns` makes a
    node config with the very same (interned) format objects the first one met, so the
    memos by identity hit and no module is built again; a node config of new but equal
    format objects stays its own object. Outputs stay ``torch.equal`` to ``quantize``."""
    gm, x = _traced("jsc-tiny")
    pop = Population(gm)
    first = random_configs(gm, 6, seed=5)
    again = random_configs(gm, 6, seed=5)  # the same tables, new ResolvedConfigs
    assert all(a is not b for a, b in zip(first, again, strict=True))
    pop.forward(first, x)
    built = len(pop._modules)
    cols_first, cols_again = pop.columns(first), pop.columns(again)
    assert cols_first.keys() == cols_again.keys()
    for name, column in cols_again.items():
        for a, b, rc in zip(cols_first[name], column, again, strict=True):
            assert a is b and (b is None or b == rc[name])
    outs = pop.forward(again, x)
    assert len(pop._modules) == built
    for out, rc in zip(outs, again, strict=True):
        assert torch.equal(out, quantize(gm, rc)(x))
    name, lq = next((n, lq) for rc in first for n, lq in rc.items())
    fmt = lq.weight or lq.data_in
    assert isinstance(fmt, FixedPoint)
    copy = FixedPoint(fmt.width, fmt.frac_width)  # equal, not the interned object
    assert copy == fmt and copy is not fmt
    own = ResolvedConfig.from_dict({name: {"weight" if lq.weight else "data_in": copy}}, gm=gm)
    (column,) = pop.columns([own]).values()
    assert column[0] is own[name]
