"""The fifth sweep of other users' models (tests/models/user_zoo_fifth.py: recurrent cells in a
loop, padded and dilated convolutions, ceil_mode and adaptive pools, a channel shuffle,
masking, matmuls of activations and parameters, nn.Flatten(start_dim=2), index gathers, a
pre-norm transformer layer, a positional-encoding table, bias-free Linears before BatchNorm1d,
a model returning its loss) through the library and the CLI.

Referees: ``torch.utils.flop_counter.FlopCounterMode`` for the FLOPs (the math SDPA kernel,
autograd on: the fused CPU attention and encoder kernels it does not count), ``sum(p.numel())``
for the parameters, a copy of each model whose weights are rounded here and whose layers round
their input in forward pre-hooks (torch.round, clamp) for quantize(), each trial's own
quantized model for its accuracy, the qonnx executor and hls4ml's C simulation for the one
chain export maps. Every other export is one ``error:`` line with exit status 2, as is every
refusal of the loss-returning model.
"""

from __future__ import annotations

import copy
import json
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from quantsearch.cli import main
from quantsearch.errors import ConfigError, MetricError
from quantsearch.graph import trace
from quantsearch.passes.analysis import compute_cost, param_cost
from tests.cli.bad_input import check_one_line, run_cli
from tests.models import user_zoo_fifth
from tests.models.test_user_zoo import (
    HlsCase,
    _run,
    assert_hls4ml_exact,
    check_cli_run,
    check_evaluation_paths,
    check_qonnx_exact,
    check_search_and_quantize,
    every_role_fixed,
    hls4ml_projects,
    write_config,
)

FIFTH = Path(user_zoo_fifth.__file__)
NAMES = list(user_zoo_fifth.MODELS)
CLASSIFIERS = [n for n in NAMES if n != "scalar_out"]
# the quantizable kinds each model's CLI search chooses widths for (besides linear)
KINDS = {
    "padded_convs": ["conv2d", "batch_norm2d"],
    "ceil_pools": ["conv2d", "conv1d"],
    "shuffle_block": ["conv2d"],
    "flatten_tokens": ["conv2d"],
    "matmul_param": ["matmul"],
    "bias_free_bn": ["batch_norm1d"],
}
EXPORTED = ("bias_free_bn",)  # Linear, BatchNorm1d and ReLU in a chain: export maps it
# every MAC of these is a Conv1d, Conv2d or Linear: their BitOPs are the referee's MACs x bits
ONLY_CONV_LINEAR = ["padded_convs", "ceil_pools", "shuffle_block", "flatten_tokens", "masked"]
ONLY_CONV_LINEAR += ["gathers", "positional_encoding", "bias_free_bn"]


def _model_and_data(name: str, n: int = 16) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    model = getattr(user_zoo_fifth, f"build_{name}")()
    return (model, *getattr(user_zoo_fifth, user_zoo_fifth.LOADERS[name])(n))


def _torch_flops(model: nn.Module, x: torch.Tensor) -> int:
    """FlopCounterMode's FLOPs of one forward: autograd on, the math attention kernel (in eval
    mode without autograd nn.TransformerEncoderLayer runs a fused kernel it counts as 0)."""
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as fcm:
        model(x.clone())
    return int(fcm.get_total_flops())


@pytest.mark.parametrize("batch", [1, 4])
@pytest.mark.parametrize("name", NAMES)
def test_costs_against_flop_counter_mode(name: str, batch: int) -> None:
    """Every op priced (the GRU/LSTM/RNN cells and the forward's mse_loss had no rule; the
    channel shuffle's c // 2 was listed uncounted), the FLOPs FlopCounterMode's, the
    parameters sum(p.numel()), and the traced graph computes what the model does (the sliced
    positional table and the expanded gather indices, refused by torch.fx before), at batch
    1 too."""
    model, x, _ = _model_and_data(name, batch)
    gm = trace(model, x)
    cost = compute_cost(gm)
    assert cost.uncounted == ()
    assert 2 * cost.macs == _torch_flops(model, x)
    assert param_cost(gm).params == sum(p.numel() for p in model.parameters())
    with torch.no_grad():
        assert torch.equal(gm(x), model(x.clone()))


def test_a_gather_index_buffer_expanded_to_the_batch_traces() -> None:
    """gathers' self.idx.expand(h.size(0), -1): fx handed the buffer over as a tensor, which
    takes no traced size ('expand() takes 1 positional argument but 2 were given'), and the
    model was refused; the graph now computes what the model does at another batch size."""
    model, x, _ = _model_and_data("gathers", 4)
    gm = trace(model, x)
    x7 = user_zoo_fifth.load(7, seed=3)[0]
    with torch.no_grad():
        assert torch.equal(gm(x7), model(x7))


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


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_quantized_layers_equal_a_hand_quantized_copy(name: str) -> None:
    """Every Conv1d, Conv2d and Linear with weight fixed(4, 2) and data_in fixed(6, 3) (padded
    by reflection, wrap-around and replication; dilated, grouped, strided; a Linear over 16
    tokens; the Linears around recurrent cells and a transformer layer, a leaf whose own
    Linears stay in float): quantize()'s outputs equal the hand-quantized copy's bit for bit,
    at batch 1 too; where every MAC is such a layer, BitOPs are FlopCounterMode's MACs x 6 x
    4."""
    from quantsearch.data import Split
    from quantsearch.metrics import compute_metrics

    model, x, y = _model_and_data(name, 5)
    gm = trace(model, x)
    roles = {"weight": _fixed(4, 2), "data_in": _fixed(6, 3)}
    qgm = _quantize(gm, {"by_type": {k: roles for k in ("conv2d", "conv1d", "linear")}})
    ref = copy.deepcopy(model)
    nodes = {str(n.target) for n in gm.graph.nodes if n.op == "call_module"}
    for path, m in ref.named_modules():  # the encoder layer's own Linears are in a leaf
        if path in nodes and type(m) in (nn.Conv2d, nn.Conv1d, nn.Linear):
            with torch.no_grad():
                m.weight.copy_(_rounded(m.weight, 4, 2))
            m.register_forward_pre_hook(lambda _, args: (_rounded(args[0], 6, 3),))
    with torch.no_grad():
        assert torch.equal(qgm(x), ref(x.clone()))
        assert torch.equal(qgm(x[:1]), ref(x[:1].clone()))
    if name in ONLY_CONV_LINEAR:
        got = compute_metrics(qgm, ["bitops"], data=Split(x, y))["bitops"]
        assert got == _torch_flops(model, x) // 2 // len(x) * 6 * 4


def test_matmuls_of_activations_and_a_parameter_equal_a_hand_computation() -> None:
    """matmul_param by name: torch.matmul(t, self.w) with data_in fixed(6, 3) on the activation
    and weight fixed(4, 2) on the parameter; ``h @ h.transpose(1, 2)`` with data_in fixed(5, 2)
    on both activations and data_out fixed(8, 3); the Linear's weight fixed(4, 2). The same
    arithmetic written here with torch.round and clamp gives quantize()'s outputs bit for
    bit, and BitOPs price each operand at the format applied to it."""
    model, x, y = _model_and_data("matmul_param", 6)
    gm = trace(model, x)
    raw = {
        "by_name": {
            "matmul": {"data_in": _fixed(6, 3), "weight": _fixed(4, 2)},
            "matmul_1": {"data_in": _fixed(5, 2), "data_out": _fixed(8, 3)},
            "fc": {"weight": _fixed(4, 2)},
        }
    }
    qgm = _quantize(gm, raw)
    with torch.no_grad():
        t = x.view(-1, 4, 4)
        h = torch.matmul(_rounded(t, 6, 3), _rounded(model.w, 4, 2))
        g = _rounded(_rounded(h, 5, 2) @ _rounded(h.transpose(1, 2), 5, 2), 8, 3)
        w = _rounded(model.fc.weight, 4, 2)
        want = torch.nn.functional.linear(torch.tanh(g).flatten(1), w, model.fc.bias)
        assert torch.equal(qgm(x), want)
    # BitOPs a sample: (4 x 4) @ (4 x 6) = 96 MACs at 6 x 4 bits, (4 x 6) @ (6 x 4) = 96 at
    # 5 x 5, the Linear's 16 x 5 = 80 at 32 (its input in float) x 4; FlopCounterMode's
    # MACs (referee) are those 272
    from quantsearch.data import Split
    from quantsearch.metrics import compute_metrics

    assert _torch_flops(model, x) // 2 // len(x) == 96 + 96 + 80
    got = compute_metrics(qgm, ["bitops"], data=Split(x, y))["bitops"]
    assert got == 96 * 6 * 4 + 96 * 5 * 5 + 80 * 32 * 4


@pytest.mark.parametrize(
    "name", ["gru_cell", "shuffle_block", "matmul_param", "ceil_pools", "positional_encoding"]
)
def test_every_evaluation_path_equals_quantize(name: str) -> None:
    """Random per-node configs of every quantizable role (the shuffle's residual add, both
    matmuls, Conv1d and Conv2d, the Linear after the unrolled cell): the prepared slots give
    quantize()'s outputs bit for bit, evaluate_many equals evaluate, and both equal
    compute_metrics on quantize()'s module."""
    check_evaluation_paths(*_model_and_data(name, 8), seed=7)


@pytest.mark.parametrize("name", ["recurrent_cells", "masked", "pre_norm_encoder"])
def test_search_and_quantize(name: str) -> None:
    """Two configs of the Linear layers: each trial's accuracy is the argmax of its own
    quantized model's outputs against the labels, counted here."""
    check_search_and_quantize(*_model_and_data(name, 48))


def test_a_scalar_output_is_priced_and_refused_by_every_metric() -> None:
    """scalar_out returns one number a batch (its reconstruction error): its costs are
    FlopCounterMode's (above); a search for accuracy, or for mse against the labels, is one
    line and no trial (mse's a ConfigError before the study: the targets' shape is not the
    output's)."""
    from quantsearch.search import search

    model, x, y = _model_and_data("scalar_out", 24)
    space = {"by": "type", "choices": {"linear": {"weight": [[8, 4]]}}}
    kw: dict[str, Any] = {"strategy": "brute_force", "n_trials": 1, "progress": False}
    for objective, error, pattern in (
        ("accuracy", MetricError, r"logits.* shape \(\)"),  # loose: not yet in the form
        ("mse", ConfigError, r"^search\.objectives\.mse: got mse .* outputs of \(\), allowed: "),
    ):
        with pytest.raises(error, match=pattern):
            search(model, (x, y), space=space, objectives={objective: {}}, **kw)


# --- the CLI ---------------------------------------------------------------------------------


def _config(tmp_path: Path, name: str) -> Path:
    """A config of the model (its float weights saved as the checkpoint): a 2-trial search of
    its kinds' widths and the Linear's."""
    spec = f"{FIFTH.as_posix()}:build_{name}"
    data = f"{FIFTH.as_posix()}:{user_zoo_fifth.LOADERS[name]}"
    model = getattr(user_zoo_fifth, f"build_{name}")()
    return write_config(tmp_path, model, spec, data, [*KINDS.get(name, []), "linear"], "random")


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_cli_summary_search_quantize_export(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """summary's totals against FlopCounterMode and sum(p.numel()); search's trials complete;
    quantize writes its model; export to QONNX agrees with the trial (onnxruntime, float
    inputs) where the layers map, else it is one error line naming layers it cannot map, and
    writes nothing."""
    monkeypatch.chdir(tmp_path)
    config = str(_config(tmp_path, name))
    model, x, _ = _model_and_data(name, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torch's nested-tensor note (encoder)
        check_cli_run(tmp_path, config, model, _torch_flops(model, x) / 4, capsys)
    if name in EXPORTED:  # data_in left in float: float32 sums in onnxruntime's order
        args = ["--from-run", "runs/c", "--best", "--verify", "--json"]
        main(["export", "--to", "qonnx", "m.onnx", *args])
        verdict = json.loads(capsys.readouterr().out)["agreement"]
        assert verdict["same_class"] == 1.0 and verdict["max_lsb"] * verdict["lsb"] < 1e-4
        return
    code, err = run_cli(["export", "--to", "qonnx", "m.onnx", "--from-run", "runs/c"], capsys)
    check_one_line(code, err, r"^export: got layers .*\(\w+\), allowed: ")
    assert len(err) < 500 and not (tmp_path / "m.onnx").exists()
    # the advice to write F.linear(x, self.w) as a module was given for buffer reads too
    # (masked's mask, gathers' indices, the positional table): only a parameter read gets it
    assert ("a get_attr is a parameter read" in err) == (name == "matmul_param"), err


def test_cli_hls4ml_refuses_the_padded_convs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """hls4ml maps no Conv2d here (reflect, circular, replicate padding): one line naming
    them, no project folder."""
    monkeypatch.chdir(tmp_path)
    config = str(_config(tmp_path, "padded_convs"))
    _run(["search", "-c", config, "-q"], capsys)
    code, err = run_cli(["export", "--to", "hls4ml", "prj", "--from-run", "runs/c"], capsys)
    check_one_line(code, err, r"^export: got layers reflect \(conv2d\), circular \(conv2d\), ")
    assert not (tmp_path / "prj").exists()


def test_cli_a_scalar_output_is_one_line_everywhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """scalar_out through the CLI: summary prices it (FlopCounterMode's FLOPs); train (a
    cross_entropy IndexError with a traceback before), summary --sensitivity (the same),
    search and quantize are each one error line with exit status 2, and no trial is written."""
    monkeypatch.chdir(tmp_path)
    config = str(_config(tmp_path, "scalar_out"))
    main(["summary", "-c", config, "--json"])
    summary = json.loads(capsys.readouterr().out)
    model, x, _ = _model_and_data("scalar_out", 4)
    assert 2 * summary["metrics"]["macs"] == _torch_flops(model, x) / 4
    assert summary["costs"]["uncounted"] == []
    for args, pattern in (
        (["train", "--epochs", "1", "--out", "t.pt"], r"^model: got output of shape \(\), allowed for `train`: "),
        (["summary", "--sensitivity"], r"^sensitivity: got output of shape \(\), allowed: "),
        (["search", "-q"], r"logits.* shape \(\)"),
        (["quantize", "--out", "q"], r"logits.* shape \(\)"),
    ):  # fmt: skip
        check_one_line(*run_cli([args[0], "-c", config, *args[1:]], capsys), pattern)
    assert not (tmp_path / "t.pt").exists()
    assert not (tmp_path / "runs/c/trials.jsonl").exists()


# --- export, bit for bit ----------------------------------------------------------------------


def _every_role_fixed(name: str) -> tuple[Any, torch.Tensor]:
    return every_role_fixed(*_model_and_data(name)[:2])


@pytest.mark.parametrize("name", EXPORTED)
def test_qonnx_export_is_bit_exact(name: str, tmp_path: Path) -> None:
    """The qonnx package's executor (referee) gives quantsearch's outputs bit for bit: the
    bias-free Linears, the BatchNorm1d without affine (its statistics alone), at batch 16
    and 1."""
    qgm, x = _every_role_fixed(name)
    check_qonnx_exact(qgm, x, tmp_path)
    check_qonnx_exact(qgm, x[:1], tmp_path / "one")


@pytest.fixture(scope="module")
def hls4ml_built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, HlsCase]:
    return hls4ml_projects({n: _every_role_fixed(n) for n in EXPORTED}, tmp_path_factory)


@pytest.mark.slow
@pytest.mark.parametrize("name", EXPORTED)
def test_hls4ml_c_simulation_is_bit_exact(name: str, hls4ml_built: dict[str, HlsCase]) -> None:
    """hls4ml's C simulation (g++; referee) against quantsearch's model, every role fixed."""
    assert_hls4ml_exact(*hls4ml_built[name])
