"""The sixth sweep of other users' models (tests/models/user_zoo_sixth.py: an MLP-Mixer, a
graph network of index_add and scatter_add, names that collide with fx's, hand-written logits,
a QAT-style forward, a one-logit head, optional forward arguments, a backbone frozen under
torch.no_grad(), a ConvNeXt block, "same" convolutions on channels-last inputs, the shrink
activations, stack/split, a TCN, a padded embedding, a tied autoencoder) through the library
and the CLI.

Referees: ``torch.utils.flop_counter.FlopCounterMode`` for the MAC layers' FLOPs,
``sum(p.numel())`` for the parameters, the model itself for the traced graph's outputs and
(autograd) for which parameters get gradients, a copy of each model whose weights are
rounded here and whose layers round their input in forward pre-hooks for quantize(), torch's
own arithmetic written out for the hand-written layers, each trial's own quantized model for
its accuracy, and the qonnx executor and hls4ml's C simulation (slow) for the one chain
export maps. Every other export is one ``error:`` line with exit status 2.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from quantsearch.cli import main
from quantsearch.graph import trace
from quantsearch.passes.analysis import compute_cost, param_cost
from tests.cli.bad_input import check_one_line, run_cli
from tests.models import user_zoo_sixth
from tests.models.test_user_zoo import (
    HlsCase,
    assert_hls4ml_exact,
    check_cli_run,
    check_evaluation_paths,
    check_qonnx_exact,
    check_search_and_quantize,
    every_role_fixed,
    hls4ml_projects,
    write_config,
)

SIXTH = Path(user_zoo_sixth.__file__)
NAMES = list(user_zoo_sixth.MODELS)
CLASSIFIERS = [n for n in NAMES if n != "one_logit"]
# the quantizable kinds each model's CLI search chooses widths for (besides linear)
KINDS = {
    "graph_net": ["bmm"],
    "collide": ["matmul"],
    "hand_logits": ["matmul"],
    "convnext": ["conv2d"],
    "same_convs": ["conv2d", "conv1d"],
    "tcn": ["conv1d"],
}
EXPORTED = ("frozen_backbone",)  # Linear, F.relu, F.dropout (eval) and Linear: export maps it


def _model_and_data(name: str, n: int = 16) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    model = getattr(user_zoo_sixth, f"build_{name}")()
    return (model, *getattr(user_zoo_sixth, user_zoo_sixth.LOADERS[name])(n))


def _torch_flops(model: nn.Module, x: torch.Tensor) -> int:
    with FlopCounterMode(display=False) as fcm:
        model(x.clone())
    return int(fcm.get_total_flops())


@pytest.mark.parametrize("batch", [1, 4])
@pytest.mark.parametrize("name", NAMES)
def test_costs_against_flop_counter_mode(name: str, batch: int) -> None:
    """Every op priced (index_add, scatter_add, fake quantization, softshrink, hardshrink,
    RReLU and hstack were listed uncounted), the FLOPs FlopCounterMode's, the parameters
    sum(p.numel()), and the graph computes what the model does (optional_args' traced mask
    failed the example run: None * x), at batch 1 too."""
    model, x, _ = _model_and_data(name, batch)
    gm = trace(model, x)
    cost = compute_cost(gm)
    assert cost.uncounted == ()
    assert 2 * cost.macs == _torch_flops(model, x)
    assert param_cost(gm).params == sum(p.numel() for p in model.parameters())
    with torch.no_grad():
        assert torch.equal(gm(x), model(x.clone()))


def test_message_sums_and_fake_quantization_by_hand() -> None:
    """graph_net sums 6 messages of 8 features into 4 nodes twice (index_add, scatter_add):
    48 adds each a sample; qat_forward's fake quantization of 12 features: 7 FLOPs each
    (divide, add the zero point, round, clamp 2, subtract it, multiply), 1 backward."""
    model, x, _ = _model_and_data("graph_net", 3)
    gm = trace(model, x)
    compute_cost(gm)
    costs = {n.name: n.meta["quantsearch"].cost for n in gm.graph.nodes}
    for node in ("index_add", "scatter_add"):
        assert (costs[node]["flops"], costs[node]["flops_backward"]) == (3 * 48, 0)
    model, x, _ = _model_and_data("qat_forward", 3)
    gm = trace(model, x)
    compute_cost(gm)
    fake = next(n for n in gm.graph.nodes if n.name.startswith("fake_quantize"))
    assert (
        fake.meta["quantsearch"].cost["flops"],
        fake.meta["quantsearch"].cost["flops_backward"],
    ) == (3 * 12 * 7, 3 * 12)


def _rounded(t: torch.Tensor, width: int, frac: int) -> torch.Tensor:
    """Signed fixed(width, frac), round half to even, saturating: the referee's rounding."""
    top = 2 ** (width - 1)
    return torch.clamp(torch.round(t * 2**frac), -top, top - 1) / 2**frac


def _fixed(width: int, frac: int) -> dict[str, object]:
    return {"format": "fixed", "width": width, "frac_width": frac}


def _quantize(gm: torch.fx.GraphModule, raw: dict[str, Any]) -> torch.fx.GraphModule:
    from quantsearch.passes.transform import quantize, resolve
    from quantsearch.passes.transform.config import parse_quantize_config

    return quantize(gm, resolve(gm, parse_quantize_config(raw)))


MODULE_LAYERS = [n for n in CLASSIFIERS if n not in ("hand_logits", "tied_autoencoder")]


@pytest.mark.parametrize("name", MODULE_LAYERS)
def test_quantized_layers_equal_a_hand_quantized_copy(name: str) -> None:
    """Every Conv1d, Conv2d and Linear module with weight fixed(4, 2) and data_in fixed(6, 3)
    ("same" padding, dilated and grouped on channels-last maps; a Linear over a Mixer's
    transposed tokens and a ConvNeXt's channels-last map; the layers beside fx-named ones):
    quantize()'s outputs equal the hand-quantized copy's bit for bit, at batch 1 too."""
    model, x, _ = _model_and_data(name, 5)
    gm = trace(model, x)
    roles = {"weight": _fixed(4, 2), "data_in": _fixed(6, 3)}
    qgm = _quantize(gm, {"by_type": {k: roles for k in ("conv2d", "conv1d", "linear")}})
    ref = copy.deepcopy(model)
    for m in ref.modules():
        if type(m) in (nn.Conv2d, nn.Conv1d, nn.Linear):
            with torch.no_grad():
                m.weight.copy_(_rounded(m.weight, 4, 2))
            m.register_forward_pre_hook(lambda _, args: (_rounded(args[0], 6, 3),))
    with torch.no_grad():
        assert torch.equal(qgm(x), ref(x.clone()))
        assert torch.equal(qgm(x[:1]), ref(x[:1].clone()))


@pytest.mark.parametrize("name", [n for n in MODULE_LAYERS if n not in ("graph_net", "collide")])
def test_bitops_are_the_referees_macs_times_the_bits(name: str) -> None:
    """Every MAC of these is a Conv1d, Conv2d or Linear ("same" padding, dilated, grouped,
    channels-last; over transposed tokens; behind a detach): with weight fixed(4, 2) and
    data_in fixed(6, 3) the BitOPs are FlopCounterMode's MACs x 6 x 4 a sample."""
    from quantsearch.data import Split
    from quantsearch.metrics import compute_metrics

    model, x, y = _model_and_data(name, 5)
    gm = trace(model, x)
    roles = {"weight": _fixed(4, 2), "data_in": _fixed(6, 3)}
    qgm = _quantize(gm, {"by_type": {k: roles for k in ("conv2d", "conv1d", "linear")}})
    got = compute_metrics(qgm, ["bitops"], data=Split(x, y))["bitops"]
    assert got == _torch_flops(model, x) // 2 // len(x) * 6 * 4


def test_hand_written_layers_equal_a_hand_computation() -> None:
    """hand_logits: F.linear of raw parameters (a linear) and ``h @ self.W.t() + self.b`` (a
    matmul whose second operand is a parameter read through .t()) take weight fixed(4, 2)
    and data_in fixed(6, 3); torch.addmm stays in float. torch's arithmetic written out with
    the rounding gives quantize()'s outputs bit for bit, and BitOPs price addmm at 32 x 32
    bits and the two others at 6 x 4 (FlopCounterMode's MACs: 16 x 12 + 12 x 8 + 8 x 5)."""
    from quantsearch.data import Split
    from quantsearch.metrics import compute_metrics

    model, x, y = _model_and_data("hand_logits", 6)
    gm = trace(model, x)
    roles = {"weight": _fixed(4, 2), "data_in": _fixed(6, 3)}
    qgm = _quantize(gm, {"by_type": {"linear": roles, "matmul": roles}})
    m = model
    with torch.no_grad():
        h = torch.relu(torch.addmm(m.b1, x, m.W1.t()))
        h = torch.tanh(F.linear(_rounded(h, 6, 3), _rounded(m.W2, 4, 2), m.b2))
        want = _rounded(h, 6, 3) @ _rounded(m.W, 4, 2).t() + m.b
        assert torch.equal(qgm(x), want)
    assert _torch_flops(model, x) // 2 // len(x) == 16 * 12 + 12 * 8 + 8 * 5
    got = compute_metrics(qgm, ["bitops"], data=Split(x, y))["bitops"]
    assert got == 16 * 12 * 32 * 32 + 12 * 8 * 6 * 4 + 8 * 5 * 6 * 4


def test_a_tied_decoder_rounds_the_float_weight(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """tied_autoencoder's decoder reads ``self.enc.weight.t()``: with enc's weight fixed(4, 2)
    and the decoder's fixed(6, 3), the decoder computed on enc's rounding (its read of the
    quantized layer); each now rounds the float weight to its own format (referee: the model
    written out), and the quantized checkpoint the CLI's quantize writes of the same config
    reloads to the same outputs."""
    from quantsearch.quantized import load_quantized

    model, x, _ = _model_and_data("tied_autoencoder", 6)
    gm = trace(model, x)
    raw = {
        "by_type": {"linear": {"weight": _fixed(6, 3)}},
        "by_name": {"enc": {"weight": _fixed(4, 2)}},
    }
    qgm = _quantize(gm, raw)
    w, m = model.enc.weight, model
    with torch.no_grad():
        z = torch.relu(F.linear(x, _rounded(w, 4, 2), m.enc.bias))
        r = F.linear(z, _rounded(w, 6, 3).t(), m.dec_bias)
        h = _rounded(m.head.weight, 6, 3)  # by_type linear: the head's too
        assert torch.equal(qgm(x), F.linear(torch.cat([z, r], 1), h, m.head.bias))
    monkeypatch.chdir(tmp_path)
    extra = ("[quantize.by_name.enc]", 'weight = { format = "fixed", width = 4, frac_width = 2 }')
    config = str(_config(tmp_path, "tied_autoencoder", extra=extra))
    code, err = run_cli(["quantize", "-c", config, "--out", "q"], capsys)
    assert code == 0, err
    with torch.no_grad():
        assert torch.equal(load_quantized(tmp_path / "q/quantized.pt")(x), qgm(x))


def test_names_fx_also_makes_address_the_users_layers() -> None:
    """collide's submodules ``output`` and ``add`` (fx names the output node ``output_1`` and
    the ``+`` ``add_1``) and its parameter ``linear_weight`` beside the submodule ``linear``:
    by_name ``output`` and ``add`` round those Linears' weights, ``matmul`` the parameter's
    product's operands, ``block.0`` and ``block_2`` the Linear fx names block_0 and the
    one named so by the user, and the outputs equal the model written out (referee)."""
    model, x, _ = _model_and_data("collide", 6)
    gm = trace(model, x)
    w = _fixed(4, 2)
    raw = {"by_name": {"output": {"weight": w}, "add": {"weight": w}, "matmul": {"weight": w}}}
    raw["by_name"]["block.0"] = raw["by_name"]["block_2"] = {"weight": _fixed(3, 1)}
    qgm = _quantize(gm, raw)
    m = model
    with torch.no_grad():
        h = torch.relu(m.linear(x))
        h = F.relu(h @ _rounded(m.linear_weight, 4, 2)) + F.linear(
            h, _rounded(m.add.weight, 4, 2), m.add.bias
        )
        h = torch.tanh(F.linear(h, _rounded(m.block[0].weight, 3, 1), m.block[0].bias))
        h = F.linear(h, _rounded(m.block_0.weight, 3, 1), m.block_0.bias)
        want = F.linear(h, _rounded(m.output.weight, 4, 2), m.output.bias)
        assert torch.equal(qgm(x), want)


def test_cli_a_name_of_two_layers_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """[quantize.by_name.block_0] of collide: fx's node block_0 is ``block.0``, the module
    ``block_0`` is node block_2; quantize rounded the first and left the user's layer in
    float. One error line naming both, exit status 2, nothing written."""
    monkeypatch.chdir(tmp_path)
    extra = (
        "[quantize.by_name.block_0]",
        'weight = { format = "fixed", width = 3, frac_width = 1 }',
    )
    config = str(_config(tmp_path, "collide", extra=extra))
    code, err = run_cli(["quantize", "-c", config, "--out", "q"], capsys)
    check_one_line(
        code, err, r"^quantize\.by_name\.block_0: got 'block_0', the name of node block_0 "
    )
    assert not (tmp_path / "q").exists()


def test_auto_formats_run_on_every_model() -> None:
    """frac_width "auto" on every Linear's and conv's data_in and weight, calibrated on the
    model's own samples: each model quantizes and runs, its outputs finite and near the
    float model's (8 bits: within 0.5 of its largest output)."""
    from quantsearch.passes.transform import calibrate, quantize, resolve
    from quantsearch.passes.transform.config import parse_quantize_config

    auto = {"format": "fixed", "width": 8, "frac_width": "auto"}
    for name in CLASSIFIERS:
        model, x, _ = _model_and_data(name, 32)
        gm = trace(model, x[:8])
        roles = {"weight": auto, "data_in": auto}
        raw = {"by_type": {k: roles for k in ("conv2d", "conv1d", "linear")}}
        stats = calibrate(gm, x)
        qgm = quantize(gm, resolve(gm, parse_quantize_config(raw), calibration=stats))
        with torch.no_grad():
            got, want = qgm(x), model(x.clone())
        assert torch.isfinite(got).all(), name
        assert (got - want).abs().max() <= 0.5 * want.abs().max(), name


@pytest.mark.parametrize(
    "name", ["graph_net", "mixer", "collide", "same_convs", "optional_args", "tied_autoencoder"]
)
def test_every_evaluation_path_equals_quantize(name: str) -> None:
    """Random per-node configs of every quantizable role (the bmm with an adjacency buffer,
    the matmul of a parameter named like fx's node, channels-last convolutions, the graph of
    a forward with optional arguments): the prepared slots give quantize()'s outputs bit
    for bit, evaluate_many equals evaluate, and both equal compute_metrics on quantize()'s
    module."""
    check_evaluation_paths(*_model_and_data(name, 8), seed=11)


@pytest.mark.parametrize("name", ["qat_forward", "shrink_acts", "embed_mean"])
def test_search_and_quantize(name: str) -> None:
    """Two configs of the Linear layers: each trial's accuracy is the argmax of its own
    quantized model's outputs against the labels, counted here."""
    check_search_and_quantize(*_model_and_data(name, 48))


def test_a_frozen_backbone_stays_frozen_when_fine_tuned() -> None:
    """frozen_backbone runs its backbone under torch.no_grad(): fine-tuning its quantized
    graph (weights fixed(8, 4), biases left in float) moved the backbone's bias, which
    autograd on the model never touches; it is now the float model's, bit for bit, while the
    head's bias moves."""
    from quantsearch.data import Split
    from quantsearch.data.splits import DataSplits
    from quantsearch.finetune import finetune
    from quantsearch.passes.transform.config import parse_quantize_config

    model, x, y = _model_and_data("frozen_backbone", 96)
    data = DataSplits(
        "d",
        Split(x[:64], y[:64]),
        Split(x[64:80], y[64:80]),
        Split(x[80:], y[80:]),
        5,
        tuple("abcde"),
    )
    raw = parse_quantize_config({"by_type": {"linear": {"weight": _fixed(8, 4)}}})
    result = finetune(trace(model, x[:8]), raw, data, epochs=2, lr=1e-2, batch_size=16)
    params = dict(result.model.named_parameters())
    assert torch.equal(params["backbone.bias"], model.backbone.bias)
    assert not torch.equal(params["head.bias"], model.head.bias)
    assert torch.equal(params["backbone.weight"], _rounded(model.backbone.weight, 8, 4))


# --- the CLI ---------------------------------------------------------------------------------


def _config(
    tmp_path: Path, name: str, data: str | None = None, extra: tuple[str, ...] = ()
) -> Path:
    """A config of the model (its float weights saved as the checkpoint): a 2-trial random
    search of its kinds' widths and the Linear's."""
    spec = f"{SIXTH.as_posix()}:build_{name}"
    data = f"{SIXTH.as_posix()}:{data or user_zoo_sixth.LOADERS[name]}"
    model = getattr(user_zoo_sixth, f"build_{name}")()
    kinds = [*KINDS.get(name, []), "linear"]
    return write_config(tmp_path, model, spec, data, kinds, "random", extra)


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_cli_summary_search_report_quantize_export(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """summary's totals against FlopCounterMode and sum(p.numel()), nothing uncounted;
    search's trials complete; report writes; quantize writes its model; export to QONNX
    agrees with the trial where the layers map, else it is one error line naming layers it
    cannot map, and writes nothing."""
    monkeypatch.chdir(tmp_path)
    config = str(_config(tmp_path, name))
    model, x, _ = _model_and_data(name, 4)
    check_cli_run(tmp_path, config, model, _torch_flops(model, x) / 4, capsys)
    code, err = run_cli(["report", "runs/c"], capsys)
    assert code == 0 and (tmp_path / "runs/c/report.html").is_file(), err
    if name in EXPORTED:  # data_in left in float: float32 sums in onnxruntime's order
        args = ["--from-run", "runs/c", "--best", "--verify", "--json"]
        main(["export", "--to", "qonnx", "m.onnx", *args])
        verdict = json.loads(capsys.readouterr().out)["agreement"]
        assert verdict["same_class"] == 1.0 and verdict["max_lsb"] * verdict["lsb"] < 1e-4
        return
    for to, out in (("qonnx", "m.onnx"), ("hls4ml", "prj")):
        code, err = run_cli(["export", "--to", to, out, "--from-run", "runs/c"], capsys)
        check_one_line(code, err, r"^export: got layers .*\(\w+\), allowed: ")
        assert len(err) < 500 and not (tmp_path / out).exists()


def test_cli_a_one_logit_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """one_logit: a binary classifier's single logit against labels 0 and 1 is refused in one
    line by summary, search and quantize (the built-in accuracy is an argmax over outputs),
    which says how such a model is measured (it allowed 'labels below 1' alone);
    as a regression head on float targets of shape (samples,), a search for mse completes
    and its float baseline is torch's mse_loss of the squeezed output (referee)."""
    monkeypatch.chdir(tmp_path)
    config = str(_config(tmp_path, "one_logit"))
    for args in (["summary"], ["search", "-q"], ["quantize", "--out", "q"]):
        code, err = run_cli([args[0], "-c", config, *args[1:]], capsys)
        check_one_line(
            code, err, r"^data\.name: got 2 classes \(labels 0\.\.1\) but model .* gives 1 outputs"
        )
        # not 'labels below 1' alone: a one-output model is measured another way
        assert "allowed: labels below 1, or for a model of one output" in err, err
    reg = tmp_path / "reg"
    reg.mkdir()
    text = _config(reg, "one_logit", "load_estimate").read_text()
    text = text.replace('accuracy = { direction = "maximize" }', 'mse = { direction = "minimize" }')
    (reg / "c.toml").write_text(text)
    monkeypatch.chdir(reg)
    code, err = run_cli(["search", "-c", "c.toml", "-q"], capsys)
    assert code == 0, err
    baseline = json.loads((reg / "runs/c/baseline.json").read_text())
    from quantsearch.config import load_config
    from quantsearch.session import open_session

    cfg = load_config(reg / "c.toml")
    val = open_session(cfg).data.val.head(cfg.data.eval_samples)
    model = user_zoo_sixth.build_one_logit()
    with torch.no_grad():
        want = float(F.mse_loss(model(val.x).squeeze(1), val.y))
    assert baseline["mse"] == pytest.approx(want, rel=1e-6)


@pytest.mark.parametrize("name", EXPORTED)
def test_qonnx_export_is_bit_exact(name: str, tmp_path: Path) -> None:
    """The qonnx package's executor (referee) gives quantsearch's outputs bit for bit, every
    role fixed: the backbone's detach (what forward computes under torch.no_grad()) passes
    its values through (export refused it as a layer), at batch 16 and 1."""
    qgm, x = every_role_fixed(*_model_and_data(name)[:2])
    check_qonnx_exact(qgm, x, tmp_path)
    check_qonnx_exact(qgm, x[:1], tmp_path / "one")


@pytest.fixture(scope="module")
def hls4ml_built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, HlsCase]:
    cases = {n: every_role_fixed(*_model_and_data(n)[:2]) for n in EXPORTED}
    return hls4ml_projects(cases, tmp_path_factory)


@pytest.mark.slow
@pytest.mark.parametrize("name", EXPORTED)
def test_hls4ml_c_simulation_is_bit_exact(name: str, hls4ml_built: dict[str, HlsCase]) -> None:
    """hls4ml's C simulation (g++; referee) against quantsearch's model, every role fixed:
    the frozen backbone's detach passes through."""
    assert_hls4ml_exact(*hls4ml_built[name])
