"""StaticMetrics (memoised per-node entries) against the referee: the analysis passes run on a
freshly quantized graph, ``compute_metrics(quantize(gm, config), names)``. Equal with ``==``,
for every static metric, every zoo model, every registered format's examples, random
per-layer configs, fetched parameters and a module called twice; node records too."""

from __future__ import annotations

import dataclasses
import random
from functools import partial
from typing import Any

import pytest
import torch
from torch import fx, nn

from quantsearch.data import Split
from quantsearch.formats import NumberFormat
from quantsearch.graph import info, trace
from quantsearch.metrics import compute_metrics, metric_specs
from quantsearch.metrics.static import StaticMetrics
from quantsearch.models import MODELS
from quantsearch.passes.transform import QUANTIZERS, ResolvedConfig, quantize
from quantsearch.passes.transform.quantize import CONTAINER
from quantsearch.passes.transform.slots import PreparedModel
from quantsearch.search.evaluate import Evaluator
from tests.formats.test_contract import FMTS
from tests.passes.transform.test_slots import _config, _traced

STATIC = [s.name for s in metric_specs() if s.kind == "static"]


def _random_configs(
    gm: fx.GraphModule, n: int, seed: int, keep: dict[str, Any] | None = None
) -> list[ResolvedConfig]:
    """``n`` seeded configs: each role of each quantizable node float or a random format;
    some nodes left out. With ``keep`` (node -> roles table), those nodes always take that
    table and every other node is quantized: the configs then share their structure."""
    rng = random.Random(seed)
    nodes = [nd for nd in gm.graph.nodes if info(nd).op_kind in QUANTIZERS.names()]
    out: list[ResolvedConfig] = []
    while len(out) < n:
        table: dict[str, dict[str, Any]] = {}
        for node in nodes:
            roles = QUANTIZERS.get(info(node).op_kind).roles
            picks = {r: rng.choice([None, *FMTS]) for r in roles}
            if keep is not None and not any(picks.values()):
                picks[roles[0]] = rng.choice(FMTS)
            chosen = {r: f.to_dict() for r, f in picks.items() if isinstance(f, NumberFormat)}
            if keep is not None and node.name in keep:
                table[node.name] = keep[node.name]
            elif chosen and (keep is not None or rng.random() < 0.8):
                table[node.name] = chosen
        try:
            out.append(ResolvedConfig.from_dict(table, gm=gm))
        except Exception:  # a format a role does not take (e.g. an unsigned one): skip it
            continue
    return out


def _referee(gm: fx.GraphModule, rc: ResolvedConfig) -> Any:
    try:
        return compute_metrics(quantize(gm, rc), STATIC)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"


def _priced(sm: StaticMetrics, gm: fx.GraphModule, rc: ResolvedConfig) -> Any:
    try:
        return sm.values(rc, lambda: quantize(gm, rc))
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"


@pytest.mark.parametrize("name", MODELS.names())
def test_every_zoo_model_and_format_equals_the_passes_on_a_fresh_quantize(name: str) -> None:
    gm, _ = _traced(name)
    configs = [_config(gm, None)]
    for fmt in FMTS:
        configs += [_config(gm, fmt), _config(gm, fmt, every=2)]
    configs += _random_configs(gm, 24, seed=len(name))
    sm = StaticMetrics(gm, STATIC)
    assert sm.names == tuple(STATIC)  # every registered static metric is priced
    want = [_referee(gm, rc) for rc in configs]
    for _ in range(2):  # the second round is priced from the memo alone
        got = [_priced(sm, gm, rc) for rc in configs]
        for rc, g, w in zip(configs, got, want, strict=True):
            assert g == w, f"{name}: {rc.key()}"
            assert not isinstance(w, str), w  # every config was priced, none failed
    assert sm.hits >= len(configs)
    # every config of a known structure summed from its constant part (metrics/static_totals.py)
    assert sm.in_order == 0


class _Shared(nn.Module):
    """A module called twice, parameters fetched by get_attr (one read by a quantizable
    matmul, one through a view), quantizable functions, and a parameter no node uses."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(6, 6)
        self.bn = nn.BatchNorm1d(6)
        self.w = nn.Parameter(torch.randn(6, 5))
        self.v = nn.Parameter(torch.randn(5, 6))
        self.unused = nn.Parameter(torch.randn(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.fc(x))
        h = self.bn(self.fc(h) + x)
        return torch.matmul(h, self.w) * torch.matmul(h, self.v.t())


def test_shared_modules_fetched_parameters_and_functions_equal_the_passes() -> None:
    torch.manual_seed(0)
    gm = trace(_Shared().eval(), torch.randn(4, 6))
    assert {info(n).op_kind for n in gm.graph.nodes} >= {"get_attr", "matmul", "add", "t"}
    fc = [n.name for n in gm.graph.nodes if n.op == "call_module" and n.target == "fc"]
    assert len(fc) == 2
    # the two calls of fc alike (one shared copy) and not (two), in every order
    pairs = []
    for a in [None, *FMTS[4:8]]:
        for b in [None, *FMTS[4:8]]:
            table = {n: {"weight": f.to_dict()} for n, f in zip(fc, (a, b), strict=True) if f}
            pairs.append(ResolvedConfig.from_dict(table, gm=gm))
    keep = {name: {"weight": FMTS[4].to_dict()} for name in fc}
    configs = _random_configs(gm, 40, seed=3) + _random_configs(gm, 40, 4, keep=keep)
    configs += pairs
    random.Random(4).shuffle(configs)
    sm = StaticMetrics(gm, STATIC)
    want = [_referee(gm, rc) for rc in configs]
    copied = f"{CONTAINER}.{fc[1]}"  # fc's second call under another config: a copy of fc
    assert any(copied in dict(quantize(gm, rc).named_modules()) for rc in configs)
    assert all(w["params"] == sum(p.numel() for p in gm.parameters()) for w in want)  # once
    assert len({w["model_size_bits"] for w in want}) > 20
    for _ in range(2):
        for rc, w in zip(configs, want, strict=True):
            assert _priced(sm, gm, rc) == w, rc.key()
    assert sm.hits >= len(configs) and sm.in_order == 0


def test_a_config_with_new_nodes_among_known_ones_prices_those_nodes_alone() -> None:
    """Configs of one structure, each changing one node's formats (a fetched parameter's
    reader among them): priced without building a graph, equal to the passes on a fresh
    quantize, and the kept graph's records are its own afterwards."""
    torch.manual_seed(0)
    gm = trace(_Shared().eval(), torch.randn(4, 6))
    fc = [n.name for n in gm.graph.nodes if n.op == "call_module" and n.target == "fc"]
    nodes = [n for n in gm.graph.nodes if info(n).op_kind in QUANTIZERS.names()]
    assert "matmul" in [n.name for n in nodes]  # reads the fetched parameter w
    base_table = {
        n.name: {r: FMTS[4].to_dict() for r in QUANTIZERS.get(info(n).op_kind).roles} for n in nodes
    }
    base = ResolvedConfig.from_dict(base_table, gm=gm)
    variants = []
    for node in nodes:
        if node.name in fc:  # a shared module's formats change the structure
            continue
        for fmt in FMTS[:8]:
            for role in QUANTIZERS.get(info(node).op_kind).roles:
                table = {**base_table, node.name: {**base_table[node.name], role: fmt.to_dict()}}
                try:
                    variants.append(ResolvedConfig.from_dict(table, gm=gm))
                except Exception:  # a format the role does not take
                    continue
    assert len({rc.key() for rc in variants}) > 40
    kept = quantize(gm, base)
    built: list[ResolvedConfig] = []

    def graph(rc: ResolvedConfig) -> fx.GraphModule:
        built.append(rc)
        return kept if rc is base else quantize(gm, rc)

    sm = StaticMetrics(gm, STATIC)
    assert sm.values(base, partial(graph, base)) == _referee(gm, base)
    own = [dataclasses.replace(info(n), cost=dict(info(n).cost)) for n in kept.graph.nodes]
    for rc in variants:
        assert sm.values(rc, partial(graph, rc)) == _referee(gm, rc), rc.key()
    assert built == [base]  # only the first config's graph was built
    assert sm.misses == 1 and sm.partial + sm.hits == len(variants) and sm.partial > 40
    assert [info(n) for n in kept.graph.nodes] == own


def _same_graph(g: fx.GraphModule) -> fx.GraphModule:
    return g


def test_records_of_the_prepared_graph_are_those_the_passes_write() -> None:
    gm, _ = _traced("cnn-digits")
    pm = PreparedModel(gm)
    sm = StaticMetrics(gm, STATIC)
    configs = [_config(gm, f, every=e) for f in FMTS[:6] for e in (1, 2)]
    for rc in configs + configs:  # misses (the passes run there), then hits (entries copied)
        p = pm.apply_(rc)
        got = sm.values(rc, partial(_same_graph, p), records=True)
        q = quantize(gm, rc)
        assert got == compute_metrics(q, STATIC)
        assert [info(n) for n in p.graph.nodes] == [info(n) for n in q.graph.nodes]
    assert sm.hits == len(configs)


def test_the_memo_is_bounded_and_refills_identically() -> None:
    gm, _ = _traced("mlp-digits")
    nodes = len(gm.graph.nodes)
    sm = StaticMetrics(gm, STATIC, entries=2 * nodes)
    configs = _random_configs(gm, 12, seed=5)
    for rc in configs + configs:
        assert _priced(sm, gm, rc) == _referee(gm, rc)
        assert sm._held <= 2 * nodes
    hits = sm.hits
    sm.max_entries = 0  # off: every config runs the passes, and nothing is kept
    for rc in configs:
        assert _priced(sm, gm, rc) == _referee(gm, rc)
    assert sm._held == 0 and sm.hits == hits


def test_graphs_kept_to_price_new_nodes_on_are_bounded() -> None:
    """A random search over which nodes to quantize meets many structures: at most
    ``graphs`` of their graphs are kept; a structure whose graph was dropped is measured
    whole again, with the same values."""
    gm, _ = _traced("mlp-digits")
    sm = StaticMetrics(gm, STATIC, graphs=2)
    configs = _random_configs(gm, 30, seed=9)
    structures = {tuple(n in rc for n in (nd.name for nd in gm.graph.nodes)) for rc in configs}
    assert len(structures) > 4
    for rc in configs + configs[::-1]:
        assert _priced(sm, gm, rc) == _referee(gm, rc)
        kept = [st for st in sm._structures.values() if st.graph is not None]
        assert len(kept) <= 2 and len(sm._graphs) == len(kept)
    assert sm.misses > len(structures)  # some structures were measured again


def test_an_evaluator_measures_what_compute_metrics_measures_on_quantize() -> None:
    torch.manual_seed(0)
    gm, _ = _traced("jsc-tiny")
    g = torch.Generator().manual_seed(1)
    data = Split(torch.randn(200, 16, generator=g), torch.randint(0, 5, (200,), generator=g))
    names = ["accuracy", "bitops", "loss", "model_size_bits", "peak_activation_bits", "flops"]
    ev = Evaluator(gm, data, names, batch_size=64, device="cpu")
    configs = _random_configs(gm, 12, seed=7)
    configs = [rc for rc in configs if not rc.key().count("stochastic")]
    want = [compute_metrics(quantize(gm, rc), names, data=data, batch_size=64) for rc in configs]
    single = [ev.evaluate(rc).metrics for rc in configs + configs]
    many = [e.metrics for e in ev.evaluate_many(configs)]
    for got in (single[: len(configs)], single[len(configs) :], many):
        assert got == want
        assert [list(d) for d in got if d] == [list(d) for d in want]  # same order of keys
    assert ev.static_metrics().hits > 0
