"""StaticMetrics' totals from a structure's constant sum and a config's varying entries
(metrics/static_totals.py), against the referee: the analysis passes on a freshly quantized
graph, ``compute_metrics(quantize(gm, config), names)``, equal with ``==``. Where the sums
could differ from the passes' in-order ones (non-dyadic bits, a node without a cost rule, a
formula that is not the groups'), the values still equal the passes' and are totalled in
graph order."""

from __future__ import annotations

import gc
import random
import warnings
from dataclasses import dataclass
from functools import partial
from typing import Any

import pytest
import torch
from torch import fx, nn

from quantsearch.formats import FixedPoint
from quantsearch.graph import info, trace
from quantsearch.metrics import UncountedOpsWarning, compute_metrics, metric_specs
from quantsearch.metrics.static import StaticMetrics
from quantsearch.passes.transform import QUANTIZERS, LayerQuant, ResolvedConfig, quantize
from quantsearch.passes.transform.slots import PreparedModel
from tests.passes.transform.test_slots import _traced

STATIC = [s.name for s in metric_specs() if s.kind == "static"]


@dataclass(frozen=True)
class _Tenths(FixedPoint):
    """Quantizes as fixed point, priced at ``width / 10`` bits: no float sum of those is
    exact, so the order of the additions shows in the last bits."""

    @property
    def bits_per_element(self) -> float:
        return self.width / 10


def _configs(gm: fx.GraphModule, n: int, seed: int, fmts: list[Any]) -> list[ResolvedConfig]:
    """``n`` configs quantizing every quantizable node, each role from ``fmts``."""
    rng = random.Random(seed)
    nodes = [nd for nd in gm.graph.nodes if info(nd).op_kind in QUANTIZERS.names()]
    out = []
    for _ in range(n):
        layers = {}
        for nd in nodes:
            roles = QUANTIZERS.get(info(nd).op_kind).roles
            layers[nd.name] = LayerQuant(**{r: rng.choice(fmts) for r in roles})
        out.append(ResolvedConfig(layers))
    return out


def _check(sm: StaticMetrics, gm: fx.GraphModule, configs: list[ResolvedConfig]) -> None:
    pm = PreparedModel(gm)
    for _ in range(2):  # the second round from the memo alone
        for rc in configs:
            assert sm.values(rc, partial(pm.apply_, rc)) == compute_metrics(
                quantize(gm, rc), sm.names
            ), rc.key()


@pytest.mark.parametrize("name", ["mlp-digits", "cnn-digits"])
def test_configs_of_known_structures_are_summed_from_the_constant_part(name: str) -> None:
    """Fixed point (integer bits) and block floating point (4.5, 6.625 bits: dyadic): every
    config of a known structure is totalled without a walk in graph order, and equal."""
    gm, _ = _traced(name)
    fmts = [FixedPoint(4, 2), FixedPoint(8, 4), *_block_formats()]
    configs = _configs(gm, 24, seed=1, fmts=fmts)
    sm = StaticMetrics(gm, STATIC)
    _check(sm, gm, configs)
    assert sm.misses == 1 and sm.hits + sm.partial == 2 * len(configs) - 1
    assert sm.in_order == 0


def test_a_populations_equal_totals_share_one_computation_and_equal_the_passes() -> None:
    """``same`` (one population's dict): configs of few widths repeat their totals; each
    still gets values ``==`` the passes on its own quantized graph, as a dict of its own
    (changing one changes no other), and each distinct totals is computed once."""
    gm, _ = _traced("mlp-digits")
    configs = _configs(gm, 24, seed=4, fmts=[FixedPoint(4, 2), FixedPoint(8, 4)])
    configs += configs[:6]  # equal configs: equal totals for certain
    sm = StaticMetrics(gm, STATIC)
    pm = PreparedModel(gm)
    sm.values(configs[0], partial(pm.apply_, configs[0]))  # the structure measured
    same: dict[Any, dict[str, float]] = {}
    got = [sm.values(rc, partial(pm.apply_, rc), same=same) for rc in configs]
    for values, rc in zip(got, configs, strict=True):
        assert values == compute_metrics(quantize(gm, rc), sm.names), rc.key()
    assert len({id(v) for v in got}) == len(got)
    assert 0 < len(same) <= len(configs) - 6
    assert len({tuple(v.items()) for v in got}) <= len(same)


def _block_formats() -> list[Any]:
    from tests.formats.test_contract import FMTS

    blocks = [f for f in FMTS if not float(f.bits_per_element).is_integer()]
    assert {f.bits_per_element for f in blocks} >= {4.5, 6.625}
    return blocks


def test_sums_whose_order_shows_are_totalled_in_graph_order() -> None:
    """Bits of 0.4, 0.6, 0.8 a element: float sums differ with the order of the additions,
    so such configs are totalled in graph order, to the passes' very bits."""
    gm, _ = _traced("cnn-digits")
    tenths = [_Tenths(4, 2), _Tenths(6, 3), _Tenths(8, 4)]
    configs = _configs(gm, 16, seed=2, fmts=tenths)
    sm = StaticMetrics(gm, STATIC)
    _check(sm, gm, configs)
    assert sm.in_order == sm.hits + sm.partial > 0
    # the referee's in-order sums differ from a sum in another order: the check is needed
    q = quantize(gm, configs[0])
    compute_metrics(q, ["model_size_bits"])
    bits = [info(n).cost["param_bits"] for n in q.graph.nodes if "param_bits" in info(n).cost]
    assert sum(bits) != sum(reversed(bits)) or sum(bits) != sum(sorted(bits))


def test_a_node_without_a_cost_rule_warns_on_every_config_as_the_passes_do() -> None:
    class Odd(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 4)
            self.act = nn.CrossMapLRN2d(3)  # a module kind without a cost rule

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.act(self.fc(x).view(2, 4, 1, 1))

    gm = trace(Odd().eval(), torch.ones(2, 4))
    sm = StaticMetrics(gm, STATIC)
    configs = _configs(gm, 6, seed=3, fmts=[FixedPoint(4, 2), FixedPoint(8, 4)])
    for rc in configs + configs:
        with pytest.warns(UncountedOpsWarning, match=r"act \(crossmaplrn2d\)"):
            got = sm.values(rc, partial(quantize, gm, rc))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UncountedOpsWarning)
            assert got == compute_metrics(quantize(gm, rc), STATIC)
    assert sm.in_order == sm.hits + sm.partial > 0


def test_fresh_equal_formats_and_reused_ids_give_the_same_entries() -> None:
    """Entries are also found by the ids of a LayerQuant's formats (kept alive with them):
    configs made of new, equal format objects, the old ones dropped (their ids free to be
    reused), are priced from the memo by equality, with the same values."""
    gm, _ = _traced("mlp-digits")
    sm = StaticMetrics(gm, STATIC)
    pm = PreparedModel(gm)
    want: dict[str, Any] = {}
    for round_ in range(4):
        widths = [(4, 2), (6, 3), (8, 4)]
        fmts = [FixedPoint(w, f) for w, f in widths]  # new objects every round
        configs = _configs(gm, 12, seed=5, fmts=fmts)  # the same configs every round
        for rc in configs:
            got = sm.values(rc, partial(pm.apply_, rc))
            if round_ == 0:
                want[rc.key()] = compute_metrics(quantize(gm, rc), STATIC)
            assert got == want[rc.key()], rc.key()
        del fmts, configs
        gc.collect()
    assert sm.misses == 1 and sm.in_order == 0
