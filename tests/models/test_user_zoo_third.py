"""The third sweep of other users' models (tests/models/user_zoo_third.py) through the library
and the CLI.

Referees: ``torch.utils.flop_counter.FlopCounterMode`` for the MAC layers' FLOPs (autograd on,
torch's math attention); the layers it counts as 0 are given to it written out with the same
weights, their values checked equal to the layer's: nn.LSTM unrolled into F.linear gates per
step and direction, nn.Bilinear as the matmul of the outer product. ``sum(p.numel())`` for the
parameters (a tied Parameter once), the model itself for the traced graph's outputs, each
trial's own quantized model for its accuracy, and the qonnx executor and hls4ml's C simulation
for export. Every outcome is a number checked so or one ``error:`` line with exit status 2.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from quantsearch.cli import main
from quantsearch.graph import trace
from quantsearch.passes.analysis import compute_cost, param_cost
from tests.cli.bad_input import check_one_line, run_cli
from tests.models import user_zoo, user_zoo_third
from tests.models.test_user_zoo import (
    _run,
    check_cli_run,
    check_evaluation_paths,
    check_hls4ml_exact,
    check_qonnx_exact,
    check_search_and_quantize,
    every_role_fixed,
    write_config,
)

THIRD, ZOO = Path(user_zoo_third.__file__), Path(user_zoo.__file__)
NAMES = list(user_zoo_third.MODELS)
CLASSIFIERS = [n for n in NAMES if n != "named_tuple_out"]


def _model_and_data(name: str, n: int = 64) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    model = getattr(user_zoo_third, f"build_{name}")()
    if name == "embedding_bag":
        return (model, *user_zoo.load_tokens(n))
    if name == "float64":
        return (model, *user_zoo_third.load_double(n))
    return (model, *user_zoo.load(n))


def _lstm_unrolled(lstm: nn.LSTM, x: torch.Tensor) -> torch.Tensor:
    """nn.LSTM (batch_first, no projection) step by step with F.linear: its final states."""
    finals, seq = [], x
    for layer in range(lstm.num_layers):
        outs = []
        for d, sfx in enumerate(["", "_reverse"][: 1 + lstm.bidirectional]):
            w = [getattr(lstm, f"{k}_l{layer}{sfx}") for k in ("weight_ih", "weight_hh")]
            b = [getattr(lstm, f"{k}_l{layer}{sfx}") for k in ("bias_ih", "bias_hh")]
            h = c = seq.new_zeros(seq.shape[0], lstm.hidden_size)
            steps = range(seq.shape[1]) if d == 0 else reversed(range(seq.shape[1]))
            hs = {}
            for t in steps:
                gates = F.linear(seq[:, t], w[0], b[0]) + F.linear(h, w[1], b[1])
                i, f, g, o = gates.chunk(4, 1)
                c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
                h = hs[t] = torch.sigmoid(o) * torch.tanh(c)
            outs.append(torch.stack([hs[t] for t in range(seq.shape[1])], 1))
            finals.append(h)
        seq = torch.cat(outs, 2)
    return torch.stack(finals)


def _unseen_flops(name: str, model: nn.Module, x: torch.Tensor) -> int:
    """FlopCounterMode's FLOPs of the layers it counts as 0, written out (values checked)."""
    with torch.no_grad():
        if name == "lstm":
            seq = x.view(-1, 4, 4)
            with FlopCounterMode(display=False) as fcm:
                h = _lstm_unrolled(model.lstm, seq)
            torch.testing.assert_close(h, model.lstm(seq)[1][0])
        elif name == "bilinear":
            x1, x2 = torch.tanh(model.a(x[:, :8])), x[:, 8:]
            w, b = model.fuse.weight, model.fuse.bias
            outer = torch.einsum("bi,bj->bij", x1, x2).flatten(1)  # multiplies, not MACs
            with FlopCounterMode(display=False) as fcm:
                y = F.linear(outer, w.flatten(1), b)
            torch.testing.assert_close(y, model.fuse(x1, x2))
        else:
            return 0
    return int(fcm.get_total_flops())


def _torch_flops(name: str, model: nn.Module, x: torch.Tensor) -> int:
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as fcm:
        model(x.clone())
    return int(fcm.get_total_flops()) + _unseen_flops(name, model, x)


@pytest.mark.parametrize("name", NAMES)
def test_costs_against_flop_counter_mode(name: str) -> None:
    """Every op priced (none uncounted), the MAC layers' FLOPs equal FlopCounterMode's, the
    parameters sum(p.numel()) (tied_linears' shared weight once), and the traced graph
    computes what the model does."""
    model, x, _ = _model_and_data(name, 6)
    gm = trace(model, x)
    cost = compute_cost(gm)
    assert cost.uncounted == ()
    assert 2 * cost.macs == _torch_flops(name, model, x)
    assert param_cost(gm).params == sum(p.numel() for p in model.parameters())
    with torch.no_grad():
        torch.testing.assert_close(gm(x), model(x.clone()), rtol=0, atol=0)


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_search_and_quantize(name: str) -> None:
    """Two configs of the model's Linear layers: each trial's accuracy is the argmax of its own
    quantized model's outputs against the labels, counted here."""
    check_search_and_quantize(*_model_and_data(name))


@pytest.mark.parametrize("name", ["squeeze_excite", "mobilenet_block", "tied_linears"])
def test_every_evaluation_path_equals_quantize(name: str) -> None:
    """Random per-node configs of every quantizable role (conv2d, batch_norm2d, the gate's
    mul, the residual add, Linear layers sharing a weight): the prepared slots give
    quantize()'s outputs bit for bit, evaluate_many equals evaluate, and both equal
    compute_metrics on quantize()'s module (referee)."""
    check_evaluation_paths(*_model_and_data(name, 32), seed=3)


def test_a_float64_model_is_priced_at_64_bits() -> None:
    """Its parameters, products and activations at float64's width: 181 parameters x 64 bits,
    168 MACs per sample x 64 x 64 BitOPs, (16 + 8 + 8 + 5) activations x 64 bits."""
    from quantsearch.data import Split
    from quantsearch.metrics import compute_metrics

    model, x, y = _model_and_data("float64", 16)
    names = ["params", "model_size_bits", "macs", "bitops", "activation_bits"]
    got = compute_metrics(trace(model, x[:4]), names, data=Split(x, y))
    assert got == {
        "params": 181,
        "model_size_bits": 181 * 64,
        "macs": 16 * 8 + 8 * 5,
        "bitops": (16 * 8 + 8 * 5) * 64 * 64,
        "activation_bits": (16 + 8 + 8 + 5) * 64,
    }


def _fixed(width: int, frac: int) -> dict[str, object]:
    return {"format": "fixed", "width": width, "frac_width": frac}


def test_tied_weights_are_quantized_per_layer_and_stored_once() -> None:
    """fc1 and fc2 share one weight Parameter; fc1 reads it in fixed(4, 2), fc2 in fixed(8, 6):
    each layer computes with its own rounding (referee: the rounding written out here, the
    model run with F.linear), the model's Parameter stays as it was and shared, and the size
    counts the one stored tensor at the wider format: 256 x 8 + 3 biases and out's 80 weights
    at 32 bits."""
    from quantsearch.passes.transform import quantize, resolve
    from quantsearch.passes.transform.config import parse_quantize_config

    model, x, _ = _model_and_data("tied_linears")
    w0 = model.fc1.weight.detach().clone()
    gm = trace(model, x[:8])
    raw = {"by_name": {"fc1": {"weight": _fixed(4, 2)}, "fc2": {"weight": _fixed(8, 6)}}}
    qgm = quantize(gm, resolve(gm, parse_quantize_config(raw)))

    def rounded(w: torch.Tensor, width: int, frac: int) -> torch.Tensor:
        top = 2 ** (width - 1)
        return torch.clamp(torch.round(w * 2**frac), -top, top - 1) / 2**frac

    with torch.no_grad():
        h = F.relu(F.linear(x, rounded(w0, 4, 2), model.fc1.bias))
        want = model.out(F.relu(F.linear(h, rounded(w0, 8, 6), model.fc2.bias)))
        assert torch.equal(qgm(x), want)
    assert torch.equal(model.fc1.weight, w0) and model.fc2.weight is model.fc1.weight
    cost = param_cost(qgm)
    assert cost.params == 256 + 16 + 16 + 85
    assert cost.model_size_bits == 256 * 8 + (16 + 16 + 85) * 32


# --- the CLI ---------------------------------------------------------------------------------

KNOBS = {
    "lstm": ["linear"],
    "embedding_bag": ["linear"],
    "squeeze_excite": ["conv2d", "linear", "mul"],
    "mobilenet_block": ["conv2d", "batch_norm2d", "linear"],
    "norms": ["conv2d", "conv1d", "linear"],
    "causal_sdpa": ["linear"],
    "super_res": ["conv2d", "linear"],
    "tied_linears": ["linear"],
    "inception": ["conv2d", "linear"],
    "conv3d": ["linear"],
    "bilinear": ["linear"],
    "prototypes": ["linear"],
    "cosine_head": ["linear"],
    "lp_pools": ["conv2d", "linear"],
    "gated_residual": ["linear"],
    "decoder": ["linear"],
}
# Linear and ReLU modules in a chain; the others are refused
EXPORTED = ("tied_linears",)
# A layer kind no quantizer handles, and the node a [quantize.by_name] table then names
REFUSED = {
    "lstm": ("lstm", "lstm"),
    "embedding_bag": ("embeddingbag", "bag"),
    "conv3d": ("conv3d", "conv"),
    "bilinear": ("bilinear", "fuse"),
    "prototypes": ("cdist", "cdist"),
    "cosine_head": ("cosine_similarity", "cosine_similarity"),
    "lp_pools": ("lppool2d", "pool2"),
    "gated_residual": ("addcmul", "addcmul"),
    "decoder": ("transformerdecoder", "decoder"),
    "norms": ("group_norm", "gn"),
}


def _config(tmp_path: Path, name: str, extra: tuple[str, ...] = ()) -> Path:
    """A config of the model (its float weights saved as the checkpoint): a 2-trial search of
    fixed-point widths on its layer kinds, and one [quantize] table (and ``extra`` lines)."""
    spec = f"{THIRD.as_posix()}:build_{name}"
    loader = {"embedding_bag": f"{ZOO.as_posix()}:load_tokens"}
    data = loader.get(name, f"{ZOO.as_posix()}:load")
    if name == "float64":
        data = f"{THIRD.as_posix()}:load_double"
    model = getattr(user_zoo_third, f"build_{name}")()
    kinds = KNOBS.get(name, ["linear"])
    return write_config(tmp_path, model, spec, data, kinds, "brute_force", extra)


@pytest.mark.parametrize("name", list(KNOBS))
def test_cli_summary_search_quantize_export(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """summary's totals against FlopCounterMode and sum(p.numel()); search's trials complete;
    quantize writes its model; export is bit-exact against the qonnx executor where the
    layers map, else one error line naming a layer it cannot map; a [quantize] table for a
    kind (or a node) no quantizer handles is one line naming it."""
    monkeypatch.chdir(tmp_path)
    config = str(_config(tmp_path, name))
    model, x, _ = _model_and_data(name, 4)
    check_cli_run(tmp_path, config, model, _torch_flops(name, model, x) / 4, capsys)
    if name == "decoder":  # its -inf mask read back (the checkpoint was refused: not finite)
        from quantsearch.quantized import load_quantized

        assert torch.equal(load_quantized(tmp_path / "q" / "quantized.pt").mask, model.mask)
    if name in EXPORTED:
        args = ["--from-run", "runs/c", "--best", "--verify", "--json"]
        main(["export", "--to", "qonnx", "m.onnx", *args])
        verdict = json.loads(capsys.readouterr().out)["agreement"]
        assert verdict["same_class"] == 1.0 and verdict["max_lsb"] * verdict["lsb"] < 1e-4
    else:
        code, err = run_cli(["export", "--to", "qonnx", "m.onnx", "--from-run", "runs/c"], capsys)
        check_one_line(code, err, r"^export: got (layers .*\(\w+\)|node \w+), allowed: ")
        assert not (tmp_path / "m.onnx").exists()
    if name in REFUSED:
        kind, node = REFUSED[name]
        article = "an" if kind[0] in "aeiou" else "a"  # 'an embeddingbag', 'an addcmul'
        role = 'data_in = { format = "fixed", width = 8, frac_width = 4 }'
        for table, pattern in (
            (
                f"[quantize.by_type.{kind}]",
                rf"^quantize\.by_type\.{kind}: got '{kind}', which is not a ",
            ),
            (
                f"[quantize.by_name.{node}]",
                rf"^quantize\.by_name\.{node}: got node '{node}', {article} {kind} ",
            ),
        ):
            bad = str(_config(tmp_path, name, (table, role)))
            check_one_line(*run_cli(["quantize", "-c", bad, "--out", "q3"], capsys), pattern)
            assert not (tmp_path / "q3").exists()


def test_cli_an_infinite_parameter_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A buffer may hold -inf (decoder's causal mask, searched above); a parameter may not:
    one line naming it, from summary and search."""
    from quantsearch.checkpoint import save_checkpoint

    monkeypatch.chdir(tmp_path)
    config = str(_config(tmp_path, "decoder"))
    model = user_zoo_third.build_decoder()
    with torch.no_grad():
        model.head.bias[1] = float("inf")
    spec = f"{THIRD.as_posix()}:build_decoder"
    save_checkpoint(tmp_path / "ck.pt", model, model_name=spec, dataset=f"{ZOO.as_posix()}:load")
    for command in ("summary", "search"):
        check_one_line(
            *run_cli([command, "-c", config], capsys),
            r"^model\.checkpoint: got 'ck\.pt', which has NaN or infinite values in 'head\.bias', allowed",
        )


def test_cli_a_named_tuple_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A NamedTuple of logits and an embedding: accuracy is one line from search and quantize;
    with the user's evaluate function (user_zoo.evaluate_first, the first output's hits)
    search runs and quantize measures the function on quantized.pt read back (referee: the
    function run here on it, over the same validation samples)."""
    from quantsearch.config import load_config
    from quantsearch.quantized import load_quantized
    from quantsearch.session import open_session

    monkeypatch.chdir(tmp_path)
    config = str(_config(tmp_path, "named_tuple_out"))
    for command in (["search", "-q"], ["quantize", "--out", "q"]):
        check_one_line(
            *run_cli([command[0], "-c", config, *command[1:]], capsys),
            r"^the classification metrics need a model that returns one tensor .*\(got Heads\)",
        )
    # the refused search left its study (runs/c/study.journal) without a trial: the corrected
    # config's objectives take it (a warning line), no need to start afresh
    task = (
        "[metrics]",
        f'evaluate = "{ZOO.as_posix()}:evaluate_first"',
        'directions = { hits = "maximize" }',
    )
    text = Path(config).read_text().replace("accuracy = {", "hits = {")
    Path(config).write_text(text.replace("[search]", "\n".join(task) + "\n[search]"))
    _run(["search", "-c", config, "-q"], capsys)
    _run(["quantize", "-c", config, "--out", "q"], capsys)
    cfg = load_config(Path(config))
    val = open_session(cfg).data.val.head(cfg.data.eval_samples)
    with torch.inference_mode():
        want = user_zoo.evaluate_first(
            load_quantized(tmp_path / "q/quantized.pt"), [(val.x, val.y)]
        )
    after = json.loads((tmp_path / "q/metrics.json").read_text())["after"]
    assert after["hits"] == pytest.approx(want["hits"], rel=1e-6)


def test_cli_a_float64_model_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The CLI casts a loader's float features to float32 (load_double gives float64), so a
    float64 model cannot take them: one line naming both dtypes, from summary, search and
    quantize (the library searches it on float64 data: test_search_and_quantize[float64])."""
    monkeypatch.chdir(tmp_path)
    config = str(_config(tmp_path, "float64"))
    for command in (["summary"], ["search"], ["quantize", "--out", "q"]):
        check_one_line(
            *run_cli([*command, "-c", config], capsys), r"do not fit model .*Float and Double"
        )


def _every_role_fixed(name: str) -> tuple[object, torch.Tensor]:
    return every_role_fixed(*_model_and_data(name)[:2], kinds=("linear",))


@pytest.mark.parametrize("name", EXPORTED)
def test_qonnx_export_is_bit_exact(name: str, tmp_path: Path) -> None:
    """Two layers sharing one weight: the qonnx package's executor (referee) gives
    quantsearch's outputs bit for bit."""
    check_qonnx_exact(*_every_role_fixed(name), tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("name", EXPORTED)
def test_hls4ml_c_simulation_is_bit_exact(name: str, tmp_path: Path) -> None:
    """hls4ml's C simulation (g++; referee) against quantsearch's model, every role fixed."""
    check_hls4ml_exact(*_every_role_fixed(name), tmp_path)
