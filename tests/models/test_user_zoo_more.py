"""The second sweep of other users' models (tests/models/user_zoo_more.py) through the library
and the CLI.

Referees: ``torch.utils.flop_counter.FlopCounterMode`` for the MAC layers' FLOPs (run with
autograd on and torch's math attention: nn.MultiheadAttention's no-grad fast path and the CPU's
fused attention are kernels it does not count),
``sum(p.numel())`` for the parameters, the model itself for the traced graph's outputs, and
each trial's own quantized model for its accuracy. Every outcome is a number checked so or one
``error:`` line with exit status 2.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from quantsearch.cli import main
from quantsearch.errors import TraceError
from quantsearch.graph import trace
from quantsearch.metrics import ProbabilityOutputWarning
from quantsearch.passes.analysis import compute_cost, param_cost
from tests.cli.bad_input import check_one_line, run_cli
from tests.models import user_zoo, user_zoo_more
from tests.models.test_user_zoo import (
    HlsCase,
    _run,
    assert_hls4ml_exact,
    check_cli_run,
    check_qonnx_exact,
    check_search_and_quantize,
    every_role_fixed,
    hls4ml_projects,
    write_config,
)

MORE, ZOO = Path(user_zoo_more.__file__), Path(user_zoo.__file__)
UNTRACEABLE = {  # the model, and the cause its one line names
    "per_sample": r"PerSample with torch\.fx at user_zoo_more\.py:\d+: .*Proxy object cannot be iterated",
    "module_in_forward": r"ModuleInForward with torch\.fx at user_zoo_more\.py:\d+: .*not installed as a submodule",
}  # fmt: skip
TRACEABLE = [n for n in user_zoo_more.MODELS if n not in UNTRACEABLE]


def _model_and_data(name: str) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    model = getattr(user_zoo_more, f"build_{name}")()
    x, y = user_zoo.load(64)
    return model, x.half() if name == "half" else x, y


@pytest.mark.parametrize("name", TRACEABLE)
def test_costs_against_flop_counter_mode(name: str) -> None:
    """Every op priced (none uncounted), the MAC layers' FLOPs equal FlopCounterMode's, the
    parameters sum(p.numel()), and the traced graph computes what the model does."""
    model, x, _ = _model_and_data(name)
    x = x[:6]
    gm = trace(model, x)
    cost = compute_cost(gm)
    assert cost.uncounted == ()
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as fcm:
        model(x.clone())
    assert 2 * cost.macs == fcm.get_total_flops()
    want = model(x.clone())  # the kernels gm runs
    assert param_cost(gm).params == sum(p.numel() for p in model.parameters())
    torch.testing.assert_close(gm(x), want, rtol=0, atol=0)


@pytest.mark.parametrize("name", TRACEABLE)
def test_search_and_quantize(name: str) -> None:
    """Two configs of the model's Linear layers: each trial's accuracy is the argmax of its own
    quantized model's outputs against the labels, counted here."""
    check_search_and_quantize(*_model_and_data(name))  # jet_tagger's softmax: tested below


@pytest.mark.parametrize("name", list(UNTRACEABLE))
def test_untraceable_models_are_one_line(name: str) -> None:
    model, x, _ = _model_and_data(name)
    with pytest.raises(TraceError, match=r"^cannot trace " + UNTRACEABLE[name]):
        trace(model, x[:4])


def test_a_softmax_output_warns_that_loss_reads_probabilities() -> None:
    """jet_tagger ends in nn.Softmax: loss is cross_entropy of its probabilities taken as
    logits (1.6107 for the float model, where its own cross-entropy -log p[label] is another
    number), reported before without a word; now a ProbabilityOutputWarning names the node.
    log_softmax_no_bias returns log-probabilities, whose loss is the model's own: no warning."""
    import torch.nn.functional as F

    from quantsearch.data import Split
    from quantsearch.metrics import compute_metrics

    model, x, y = _model_and_data("jet_tagger")
    with pytest.warns(ProbabilityOutputWarning, match=r"^loss: .* node net_7, a softmax"):
        loss = compute_metrics(trace(model, x[:8]), ["loss"], data=Split(x, y))["loss"]
    with torch.no_grad():
        p = model(x)
    assert loss == pytest.approx(float(F.cross_entropy(p, y)), rel=1e-6)
    assert loss != pytest.approx(float(F.nll_loss(p.log(), y)), rel=1e-3)
    model, x, y = _model_and_data("log_softmax_no_bias")
    with warnings.catch_warnings():
        warnings.simplefilter("error", ProbabilityOutputWarning)
        loss = compute_metrics(trace(model, x[:8]), ["loss"], data=Split(x, y))["loss"]
    with torch.no_grad():
        assert loss == pytest.approx(float(F.nll_loss(model(x), y)), rel=1e-6)


@pytest.mark.parametrize("name", ["pruned", "weight_norm"])
def test_pruned_and_parametrized_layers_quantize_the_weight_they_use(name: str) -> None:
    """Referee: torch's own prune.remove / remove_parametrizations(leave_parametrized=True)
    on a second build of the model, then quantize: bit for bit. Pruned: the pre-hook
    overwrote the rounded weight with the float product, so fc1 ran unquantized (0.65 off the
    fixed(3, 1) model computed by hand); weight norm: an AttributeError from every trial
    (the quantized layer had no weight); after a forward with autograd, a pruned layer's
    copy raised deepcopy's RuntimeError from the sensitivity strategy. Every evaluation path
    gives quantize()'s outputs, and the model's own layers are left as they were."""
    from torch.nn.utils import parametrize, prune

    from quantsearch.data import Split
    from quantsearch.passes.transform import quantize
    from quantsearch.search.api import prepare_search
    from quantsearch.search.config import parse_search_config
    from tests.test_user_models import _random_configs

    model, x, y = _model_and_data(name)
    model(x[:2]).sum().backward()  # as the sensitivity probe: weight is then a non-leaf tensor
    with torch.no_grad():
        before = model(x)
    plain, _, _ = _model_and_data(name)
    for m in (plain.fc1, plain.fc2):
        for hook in list(m._forward_pre_hooks.values()):
            prune.remove(m, hook._tensor_name)
        if parametrize.is_parametrized(m):
            parametrize.remove_parametrizations(m, "weight", leave_parametrized=True)
    gm, ref = trace(model, x[:8]), trace(plain, x[:8])
    space = {"by": "type", "choices": {"linear": {"weight": [[3, 1]], "bias": [[4, 2]]}}}
    cfg = parse_search_config({"space": space, "objectives": {"accuracy": {}}, "device": "cpu"})
    _, evaluator = prepare_search(gm, cfg, Split(x, y))
    for rc, rc_ref in zip(_random_configs(gm, 4, 2), _random_configs(ref, 4, 2), strict=True):
        with torch.no_grad():
            want = quantize(ref, rc_ref)(x)
            assert torch.equal(quantize(gm, rc)(x), want)
            assert torch.equal(evaluator.prepared().apply_(rc)(x), want)
    with torch.no_grad():
        assert torch.equal(model(x), before)


# --- the CLI ---------------------------------------------------------------------------------

KNOBS = {
    "nested_dict": ["linear", "batch_norm1d"],
    "keyword_input": ["linear"],
    "size_reshape": ["conv2d", "linear"],
    "depthwise_conv1d": ["conv1d", "batch_norm1d", "linear"],
    "conv_transpose": ["conv2d", "linear"],
    "jet_tagger": ["linear", "batch_norm1d"],
    "layer_norm_channels": ["conv1d", "linear"],
    "prelu_acts": ["linear"],
    "log_softmax_no_bias": ["linear"],
    "non_persistent": ["linear", "matmul"],
    "raw_params": ["linear", "matmul", "conv2d"],
    "einsum_bmm": ["linear", "bmm"],
    "mha": ["linear"],
    "encoder": ["linear"],
    "item_call": ["linear"],
    "pruned": ["linear"],
    "weight_norm": ["linear"],
}
# Linear, BatchNorm1d and ReLU layers; the others are refused
EXPORTED = ("nested_dict", "pruned", "weight_norm")


def _config(tmp_path: Path, name: str) -> Path:
    """A config of the model (its float weights saved as the checkpoint): a 2-trial search of
    fixed-point widths on its layer kinds, and one [quantize] table."""
    spec = f"{MORE.as_posix()}:build_{name}"
    data = f"{MORE.as_posix()}:load_half" if name == "half" else f"{ZOO.as_posix()}:load"
    model = getattr(user_zoo_more, f"build_{name}")()
    return write_config(tmp_path, model, spec, data, KNOBS.get(name, ["linear"]), "random")


@pytest.mark.parametrize("name", list(KNOBS))
def test_cli_summary_search_quantize_export(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """summary's totals against FlopCounterMode and sum(p.numel()); search's trials complete;
    quantize writes its model; export is bit-exact against the qonnx executor where the
    layers map, else one error line naming a layer it cannot map."""
    monkeypatch.chdir(tmp_path)
    config = str(_config(tmp_path, name))
    model, x, _ = _model_and_data(name)
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as fcm:
        model(x[:4].clone())
    check_cli_run(tmp_path, config, model, fcm.get_total_flops() / 4, capsys)
    if name in EXPORTED:
        args = ["--from-run", "runs/c", "--best", "--verify", "--json"]
        main(["export", "--to", "qonnx", "m.onnx", *args])
        verdict = json.loads(capsys.readouterr().out)["agreement"]
        assert verdict["same_class"] == 1.0 and verdict["max_lsb"] * verdict["lsb"] < 1e-4
    else:
        code, err = run_cli(["export", "--to", "qonnx", "m.onnx", "--from-run", "runs/c"], capsys)
        check_one_line(code, err, r"^export: got (layers .*\(\w+\)|node \w+), allowed: ")
        assert not (tmp_path / "m.onnx").exists()


@pytest.mark.parametrize("name", list(UNTRACEABLE))
def test_cli_refuses_untraceable_models_in_one_line(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    config = str(_config(tmp_path, name))
    for command in ("summary", "search"):
        check_one_line(*run_cli([command, "-c", config], capsys), UNTRACEABLE[name])


def test_cli_a_float16_model_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The CLI casts a loader's float features to float32 (load_half gives float16), so a
    float16 model cannot take them: one line naming both dtypes, from summary and search (the
    library searches it on float16 data: test_search_and_quantize[half])."""
    monkeypatch.chdir(tmp_path)
    config = str(_config(tmp_path, "half"))
    for command in ("summary", "search"):
        check_one_line(
            *run_cli([command, "-c", config], capsys), r"do not fit model .*Float and Half"
        )


def _every_role_fixed(name: str) -> tuple[object, torch.Tensor]:
    return every_role_fixed(*_model_and_data(name)[:2])


@pytest.mark.parametrize("name", EXPORTED)
def test_qonnx_export_is_bit_exact(name: str, tmp_path: Path) -> None:
    """Sequentials nested in a ModuleDict, a bias-free Linear, pruned and weight-normed layers
    (their computed weights exported): the qonnx package's executor (referee) gives
    quantsearch's outputs bit for bit."""
    check_qonnx_exact(*_every_role_fixed(name), tmp_path)


HLS4ML = ["nested_dict", "pruned"]


@pytest.fixture(scope="module")
def hls4ml_built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, HlsCase]:
    """The HLS4ML models' C simulations, built side by side (see test_user_zoo's)."""
    return hls4ml_projects({name: _every_role_fixed(name) for name in HLS4ML}, tmp_path_factory)


@pytest.mark.slow
@pytest.mark.parametrize("name", HLS4ML)
def test_hls4ml_c_simulation_is_bit_exact(name: str, hls4ml_built: dict[str, HlsCase]) -> None:
    """hls4ml's C simulation (g++; referee) against quantsearch's model, every role fixed."""
    assert_hls4ml_exact(*hls4ml_built[name])


def test_cli_finetune_keeps_pruning_and_refuses_weight_norm(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """finetune of the pruned model trains through its pruning hooks, so the pruned weights
    stay 0 (the mask, referee: the model's own weight_mask), and writes the plain layers; a
    weight-normed model is one line (its trained weights have no way back into g and v: it
    was a KeyError traceback after training)."""
    from quantsearch.quantized import load_quantized

    monkeypatch.chdir(tmp_path)
    for name in ("pruned", "weight_norm"):
        config = str(_config(tmp_path, name))
        _run(["search", "-c", config, "-q"], capsys)
        args = ["finetune", "--from-run", "runs/c", "--best", "--epochs", "1", "--out", name]
        if name == "weight_norm":
            check_one_line(*run_cli(args, capsys), r"^model: layers fc1, fc2 are parametrized")
            continue
        _run(args, capsys)
        tuned = load_quantized(tmp_path / name / "finetuned.pt")
        mask = _model_and_data(name)[0].fc1.weight_mask
        assert (tuned.get_submodule("fc1").weight[mask == 0] == 0).all()
        assert int((mask == 0).sum()) == 96
        (tmp_path / "runs").rename(tmp_path / f"runs-{name}")
