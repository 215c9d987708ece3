"""The slot path (PreparedModel.apply_) against quantize(gm, config): bit-identical outputs.

Every registered format (the contract's EXAMPLES) on every zoo model, one prepared model
reconfigured over and over: each config's output must equal a fresh ``quantize`` exactly
(``torch.equal``), whatever the configs before it were, and so must the per-node records the
metrics read.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import fx

from quantsearch.formats import FixedPoint, NumberFormat
from quantsearch.graph import info, trace
from quantsearch.metrics import compute_metrics
from quantsearch.models import MODELS, build_model
from quantsearch.passes.transform import QUANTIZERS, ResolvedConfig, calibrate, quantize
from quantsearch.passes.transform.slots import PreparedModel
from tests.formats.test_contract import FMTS, IDS

STATIC = ["params", "model_size_bits", "bitops", "macs", "activation_bits"]


def _traced(name: str) -> tuple[fx.GraphModule, torch.Tensor]:
    torch.manual_seed(0)
    spec = MODELS.get(name)
    model = build_model(name).eval()
    x = torch.randn(32, *spec.input_shape)
    with torch.no_grad():  # running statistics that are not the defaults
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                assert m.running_mean is not None and m.running_var is not None
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    return trace(model, x), x


def _config(gm: fx.GraphModule, fmt: NumberFormat | None, every: int = 1) -> ResolvedConfig:
    """``fmt`` on every role of every ``every``-th quantizable node (None: fixed(8,4) there)."""
    table: dict[str, dict[str, Any]] = {}
    nodes = [n for n in gm.graph.nodes if info(n).op_kind in QUANTIZERS.names()]
    for i, node in enumerate(nodes):
        if i % every:
            continue
        f = fmt or FixedPoint(8, 4)
        table[node.name] = {r: f.to_dict() for r in QUANTIZERS.get(info(node).op_kind).roles}
    return ResolvedConfig.from_dict(table, gm=gm)


def _run(fn: Any) -> Any:
    torch.manual_seed(7)  # stochastic rounding draws the same numbers on both paths
    try:
        with torch.no_grad():
            return fn()
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        return a.dtype == b.dtype and torch.equal(a, b)
    return bool(a == b)


@pytest.mark.parametrize("name", MODELS.names())
def test_every_format_on_every_zoo_model_is_bit_identical(name: str) -> None:
    gm, x = _traced(name)
    before = {k: v.clone() for k, v in gm.state_dict().items()}
    pm = PreparedModel(gm)
    configs = [_config(gm, None)]
    for fmt in FMTS:
        configs += [_config(gm, fmt), _config(gm, fmt, every=2)]
    configs += configs[:3]  # back to configs seen before: memoised weights, same results
    for rc in configs:
        want = _run(lambda rc=rc: quantize(gm, rc)(x))
        got = _run(lambda rc=rc: pm.apply_(rc)(x))
        assert _same(got, want), f"{name}: {rc.key()}"
    assert all(torch.equal(before[k], v) for k, v in gm.state_dict().items())


@pytest.mark.parametrize("name", MODELS.names())
def test_auto_binary_points_are_bit_identical(name: str) -> None:
    """``frac_width = "auto"`` on every role (weights from their range, activations from the
    calibration), as a search resolves it and unbound: the slots give what quantize gives."""
    gm, x = _traced(name)
    stats = calibrate(gm, x)
    pm = PreparedModel(gm, stats)
    nodes = [n for n in gm.graph.nodes if info(n).op_kind in QUANTIZERS.names()]
    for width in (6, 8, 4, 8):
        auto = {"format": "fixed", "width": width, "frac_width": "auto"}
        table = {n.name: dict.fromkeys(QUANTIZERS.get(info(n).op_kind).roles, auto) for n in nodes}
        bound = ResolvedConfig.from_dict(table, gm=gm, calibration=stats)  # as a trial does
        assert not bound.pending
        unbound = ResolvedConfig.from_dict(table)  # bound by apply_ and quantize themselves
        assert unbound.pending
        for rc in (bound, unbound):
            want = _run(lambda rc=rc: quantize(gm, rc, calibration=stats)(x))
            got = _run(lambda rc=rc: pm.apply_(rc)(x))
            assert isinstance(want, torch.Tensor) and _same(got, want), f"{name}: {rc.key()}"


@pytest.mark.parametrize("fmt", FMTS, ids=IDS)
def test_node_records_and_static_metrics_match_quantize(fmt: NumberFormat) -> None:
    gm, _ = _traced("cnn-digits")
    pm = PreparedModel(gm)
    pm.apply_(_config(gm, None, every=2))  # the same structure, other formats, first
    for rc in (_config(gm, fmt, every=2), _config(gm, fmt)):
        q = quantize(gm, rc)
        p = pm.apply_(rc)
        assert [info(n) for n in p.graph.nodes] == [info(n) for n in q.graph.nodes]
        assert compute_metrics(p, STATIC) == compute_metrics(q, STATIC)


def test_a_structure_is_priced_without_code_and_compiled_when_it_first_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Referee: quantize(gm, config), whose forward torch.fx generates at once, with
    # torch.equal on outputs and compute_metrics on both graphs.
    gm, x = _traced("cnn-digits")
    rc = _config(gm, FixedPoint(6, 3), every=2)
    q = quantize(gm, rc)
    generated: list[fx.Graph] = []
    real = fx.Graph.python_code

    def counted(self: fx.Graph, *args: Any, **kwargs: Any) -> Any:
        generated.append(self)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(fx.Graph, "python_code", counted)
    pm = PreparedModel(gm)
    p = pm.apply_(rc)
    assert compute_metrics(p, STATIC) == compute_metrics(q, STATIC)
    assert generated == []  # built and priced: no code generated
    assert _same(_run(lambda: p(x)), _run(lambda: q(x)))
    assert generated == [p.graph]  # generated once, on its first run
    assert _same(_run(lambda: pm.apply_(_config(gm, FixedPoint(8, 2), every=2))(x)),
                 _run(lambda: quantize(gm, _config(gm, FixedPoint(8, 2), every=2))(x)))  # fmt: skip
    assert len(generated) == 2  # the new quantize() only: the prepared one is not compiled again


def test_training_mode_graphs_are_quantized_afresh() -> None:
    gm, _ = _traced("mlp-digits")
    gm.train()
    pm = PreparedModel(gm)
    rc = _config(gm, None)
    assert pm.apply_(rc) is not pm.apply_(rc)


def test_quantized_weights_are_memoised_per_node_role_and_format() -> None:
    gm, _ = _traced("mlp-digits")
    pm = PreparedModel(gm)
    a, b = _config(gm, FixedPoint(8, 4)), _config(gm, FixedPoint(4, 2))
    for rc in (a, b, a, b):  # the first builds, the later ones only fill slots
        pm.apply_(rc)
    lin = next(n for n in gm.graph.nodes if info(n).op_kind == "linear")
    w8 = pm.apply_(a).get_submodule(str(lin.target)).weight
    assert pm.apply_(b).get_submodule(str(lin.target)).weight is not w8
    assert pm.apply_(a).get_submodule(str(lin.target)).weight is w8  # not recomputed


def test_the_weight_memo_and_the_structures_are_bounded() -> None:
    gm, x = _traced("mlp-digits")
    weight_bytes = max(p.numel() * 4 for p in gm.parameters())
    pm = PreparedModel(gm, memo_bytes=weight_bytes, structures=1)
    configs = [_config(gm, FixedPoint(w, 2)) for w in (4, 6, 8)] + [_config(gm, None, every=2)]
    for rc in configs + configs:  # evicted weights and structures are rebuilt, identically
        assert torch.equal(
            _run(lambda rc=rc: pm.apply_(rc)(x)), _run(lambda rc=rc: quantize(gm, rc)(x))
        )
        assert pm._held <= weight_bytes and len(pm._structures) == 1
