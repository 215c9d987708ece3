"""The fourth sweep of other users' models (tests/models/user_zoo_fourth.py: MLPerf Tiny's
DS-CNN, ResNet-8, anomaly-detection autoencoder and MobileNetV1 0.25; hls4ml's jet-tagging MLP,
its softmax-ending form, a Conv2D and a Conv1D tutorial CNN) through the library and the CLI.

Referees: ``torch.utils.flop_counter.FlopCounterMode`` for the FLOPs, ``sum(p.numel())`` for
the parameters, the parameters' widths summed here for the size, each trial's own quantized
model for its accuracy (argmax) or ``F.mse_loss`` (the autoencoder), and the qonnx executor and
hls4ml's C simulation for export. Every outcome is a number checked so or one ``error:`` line
with exit status 2.
"""

from __future__ import annotations

import copy
import json
import re
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from quantsearch.cli import main
from quantsearch.graph import trace
from quantsearch.metrics import ProbabilityOutputWarning
from quantsearch.passes.analysis import compute_cost, param_cost
from quantsearch.search import search
from tests.cli.bad_input import check_one_line, run_cli
from tests.models import user_zoo_fourth
from tests.models.test_user_zoo import (
    HlsCase,
    _run,
    assert_hls4ml_exact,
    check_cli_run,
    check_evaluation_paths,
    check_qonnx_exact,
    every_role_fixed,
    hls4ml_projects,
    write_config,
)

FOURTH = Path(user_zoo_fourth.__file__)
NAMES = list(user_zoo_fourth.MODELS)
CLASSIFIERS = [n for n in NAMES if n != "autoencoder"]
CONV = {"ds_cnn": "conv2d", "resnet8": "conv2d", "mobilenet_v1": "conv2d"}
CONV |= {"hls_conv2d": "conv2d", "hls_conv1d": "conv1d"}
EXPORTED = ("jet_mlp", "autoencoder")  # Linear, BatchNorm1d and ReLU modules in a chain


def _model_and_data(name: str, n: int = 16) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    model = getattr(user_zoo_fourth, f"build_{name}")()
    return (model, *getattr(user_zoo_fourth, user_zoo_fourth.LOADERS[name])(n))


def _torch_flops(model: nn.Module, x: torch.Tensor) -> int:
    with FlopCounterMode(display=False) as fcm, torch.no_grad():
        model(x.clone())
    return int(fcm.get_total_flops())


@pytest.mark.parametrize("name", NAMES)
def test_costs_against_flop_counter_mode(name: str) -> None:
    """Every op priced (the ZeroPad2d, the residual adds, the depthwise convs), the FLOPs
    FlopCounterMode's (ResNet-8: 12.5 M MACs per 32x32 image, as MLPerf Tiny gives), the
    parameters sum(p.numel()), and the traced graph computes what the model does."""
    model, x, _ = _model_and_data(name, 4)
    gm = trace(model, x)
    cost = compute_cost(gm)
    assert cost.uncounted == ()
    assert 2 * cost.macs == _torch_flops(model, x)
    if name == "resnet8":
        assert cost.macs // 4 == 12_501_632
    assert param_cost(gm).params == sum(p.numel() for p in model.parameters())
    with torch.no_grad():
        assert torch.equal(gm(x), model(x.clone()))


def _size_bits(model: nn.Module, widths: dict[str, int]) -> int:
    """The model's size with each kind's weights at ``widths[kind]`` bits, the rest at 32."""
    kinds = {nn.Linear: "linear", nn.Conv2d: "conv2d", nn.Conv1d: "conv1d"}
    bits = 0
    for m in model.modules():
        for pname, p in m.named_parameters(recurse=False):
            kind = kinds.get(type(m))
            bits += p.numel() * (widths.get(kind, 32) if pname == "weight" and kind else 32)
    return bits


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_search_and_quantize(name: str) -> None:
    """Two configs of the conv and Linear weights: each trial's accuracy is the argmax of its
    own quantized model's outputs against the labels, and its size the weights' widths
    summed here (the BatchNorms and biases at 32 bits)."""
    model, x, y = _model_and_data(name)
    conv = CONV.get(name, "linear")
    choices = {"linear": {"weight": [[6, 3]]}, conv: {"weight": [[8, 4], [4, 2]]}}
    space = {"by": "type", "choices": choices}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ProbabilityOutputWarning)  # softmax_mlp: tested below
        result = search(
            model, (x, y), space=space, strategy="brute_force", n_trials=2, progress=False,
            objectives={"accuracy": {"direction": "maximize"}},
        )  # fmt: skip
    assert [t.params[f"{conv}.weight"] for t in result.trials] == ["fixed(8,4)", "fixed(4,2)"]
    for trial in result.trials:
        assert trial.error is None
        with torch.no_grad():
            hits = (result.model(trial)(x.clone()).argmax(1) == y).float().mean()
        assert trial.metrics["accuracy"] == pytest.approx(float(hits))
        width = int(trial.params[f"{conv}.weight"][6])
        want = _size_bits(model, {conv: width, "linear": 6 if conv != "linear" else width})
        assert trial.metrics["model_size_bits"] == want


def _rounded(t: torch.Tensor, width: int, frac: int) -> torch.Tensor:
    top = 2 ** (width - 1)
    return torch.clamp(torch.round(t * 2**frac), -top, top - 1) / 2**frac


@pytest.mark.parametrize("name", list(CONV))
def test_quantized_convs_equal_a_hand_quantized_copy(name: str) -> None:
    """Every conv and Linear with weight fixed(4, 2) and data_in fixed(6, 3) (depthwise groups,
    1x1 shortcuts, the padded stem): quantize()'s outputs equal a copy of the model whose
    weights are rounded here and whose layers round their input in a forward pre-hook, bit for
    bit; BitOPs are FlopCounterMode's MACs x 6 x 4."""
    from quantsearch.data import Split
    from quantsearch.metrics import compute_metrics
    from quantsearch.passes.transform import quantize, resolve
    from quantsearch.passes.transform.config import parse_quantize_config

    model, x, y = _model_and_data(name, 4)
    gm = trace(model, x)
    roles = {"weight": _fixed(4, 2), "data_in": _fixed(6, 3)}
    raw = {"by_type": {kind: roles for kind in ("conv2d", "conv1d", "linear")}}
    qgm = quantize(gm, resolve(gm, parse_quantize_config(raw)))
    ref = copy.deepcopy(model)
    for m in ref.modules():
        if isinstance(m, (nn.Conv2d, nn.Conv1d, nn.Linear)):
            with torch.no_grad():
                m.weight.copy_(_rounded(m.weight, 4, 2))
            m.register_forward_pre_hook(lambda _, args: (_rounded(args[0], 6, 3),))
    with torch.no_grad():
        assert torch.equal(qgm(x), ref(x.clone()))
    got = compute_metrics(qgm, ["bitops"], data=Split(x, y))["bitops"]
    assert got == _torch_flops(model, x) // 2 // len(x) * 6 * 4


def _fixed(width: int, frac: int) -> dict[str, object]:
    return {"format": "fixed", "width": width, "frac_width": frac}


def test_the_autoencoder_searches_mse_and_refuses_accuracy() -> None:
    """A regression output: each trial's mse is torch's F.mse_loss of its own quantized
    model's reconstruction; accuracy and loss (cross-entropy) are one line naming mse."""
    from quantsearch.errors import MetricError

    model, x, y = _model_and_data("autoencoder")
    space = {"by": "type", "choices": {"linear": {"weight": [[8, 4], [4, 2]]}}}
    kw = {"strategy": "brute_force", "n_trials": 2, "progress": False, "space": space}
    result = search(model, (x, y), objectives={"mse": {"direction": "minimize"}}, **kw)
    for trial in result.trials:
        with torch.no_grad():
            want = float(F.mse_loss(result.model(trial)(x.clone()), y))
        assert trial.metrics["mse"] == pytest.approx(want, rel=1e-6)
    for objective in ("accuracy", "loss"):
        with pytest.raises(MetricError, match=r"^labels must have shape .* use mse/mae"):
            search(model, (x, y), objectives={objective: {}}, **kw)


@pytest.mark.parametrize("name", ["resnet8", "hls_conv1d"])
def test_every_evaluation_path_equals_quantize(name: str) -> None:
    """Random per-node configs of every quantizable role (the residual adds and 1x1 shortcut
    convs, Conv1d and MaxPool1d): the prepared slots give quantize()'s outputs bit for bit,
    evaluate_many equals evaluate, and both equal compute_metrics on quantize()'s module."""
    check_evaluation_paths(*_model_and_data(name, 8), seed=4)


def test_train_warns_of_a_softmax_output() -> None:
    """train (and finetune) minimize cross_entropy of the outputs as logits: on softmax_mlp's
    probabilities that is a second softmax, trained before without a word; now one
    ProbabilityOutputWarning naming the node (jet_mlp, the same layers returning logits:
    none). The search's loss warns alike; export refuses the softmax (below)."""
    from quantsearch.config import TrainConfig
    from quantsearch.data import DataSplits, Split
    from quantsearch.finetune import finetune
    from quantsearch.train import train

    splits = [Split(*user_zoo_fourth.load_jets(32, seed)) for seed in range(3)]
    data = DataSplits("jets", *splits, num_classes=5, class_names=tuple("abcde"))
    cfg = TrainConfig(epochs=1)
    with pytest.warns(ProbabilityOutputWarning, match=r"^train: .* node softmax, a softmax"):
        train(user_zoo_fourth.build_softmax_mlp(), data, cfg, progress=False)
    config = {"net_0": {"weight": {"format": "fixed", "width": 8, "frac_width": 4}}}
    with (
        pytest.warns(ProbabilityOutputWarning, match=r"^finetune: .* node softmax, a softmax"),
        warnings.catch_warnings(),
    ):
        warnings.filterwarnings("ignore", "loss: ", ProbabilityOutputWarning)  # its metrics'
        finetune(user_zoo_fourth.build_softmax_mlp(), config, data, epochs=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ProbabilityOutputWarning)
        train(user_zoo_fourth.build_jet_mlp(), data, cfg, progress=False)
        finetune(user_zoo_fourth.build_jet_mlp(), config, data, epochs=1)


# --- the CLI ---------------------------------------------------------------------------------


def _config(tmp_path: Path, name: str, objective: str = "") -> Path:
    """A config of the model (its float weights saved as the checkpoint): a 2-trial search of
    its conv (or Linear) weights' widths; the autoencoder's objective is mse."""
    spec = f"{FOURTH.as_posix()}:build_{name}"
    data = f"{FOURTH.as_posix()}:{user_zoo_fourth.LOADERS[name]}"
    model = getattr(user_zoo_fourth, f"build_{name}")()
    kinds = [CONV[name], "linear"] if name in CONV else ["linear", "batch_norm1d"]
    config = write_config(tmp_path, model, spec, data, kinds, "brute_force")
    objective = objective or ("mse" if name == "autoencoder" else "")
    if objective:
        text = config.read_text().replace("accuracy = {", f"{objective} = {{")
        config.write_text(text.replace('"maximize"', '"minimize"'))
    return config


@pytest.mark.parametrize("name", NAMES)
def test_cli_summary_search_quantize_export(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """summary's totals against FlopCounterMode and sum(p.numel()); search's trials complete;
    quantize writes its model; export is checked by the qonnx executor where the layers map,
    else one error line of reasonable length naming the first and last layer it cannot map."""
    monkeypatch.chdir(tmp_path)
    config = str(_config(tmp_path, name))
    model, x, _ = _model_and_data(name, 4)
    check_cli_run(tmp_path, config, model, _torch_flops(model, x) / 4, capsys)
    if name in EXPORTED:  # data_in left in float: float32 sums in onnxruntime's order
        args = ["--from-run", "runs/c", "--best", "--verify", "--json"]
        main(["export", "--to", "qonnx", "m.onnx", *args])
        verdict = json.loads(capsys.readouterr().out)["agreement"]
        assert verdict["max_lsb"] * verdict["lsb"] < 1e-4
        # the autoencoder's 640 reconstructed values are no class scores: no argmax share
        assert (verdict["same_class"] is None) == (name == "autoencoder"), verdict
    else:
        code, err = run_cli(["export", "--to", "hls4ml", "prj", "--from-run", "runs/c"], capsys)
        check_one_line(code, err, r"^export: got layers \w+ \(\w+\)(, .*)?, allowed: ")
        assert len(err) < 400 and not (tmp_path / "prj").exists()
        last = r"softmax \(softmax\)" if name == "softmax_mlp" else r"\w+ \(flatten\)"
        assert re.search(rf"{last}, allowed", err)
        if name == "softmax_mlp":  # hls4ml's tutorials end in one: the way out is named
            assert err.rstrip().endswith(
                "softmax is a final softmax: export the model without it (its logits have the same argmax)"
            )


def test_cli_the_autoencoder_refuses_accuracy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Its targets are the 640 inputs: a search for accuracy is one line naming mse, and
    writes no trial; quantize (which searches nothing) measures mse and mae, not accuracy:
    mse against torch's F.mse_loss of quantized.pt read back on the same samples (referee)."""
    from quantsearch.config import load_config
    from quantsearch.quantized import load_quantized
    from quantsearch.session import open_session

    monkeypatch.chdir(tmp_path)
    config = str(_config(tmp_path, "autoencoder", objective="accuracy"))
    check_one_line(
        *run_cli(["search", "-c", config, "-q"], capsys),
        r"^labels must have shape \(\d+,\) .*got \(\d+, 640\)\).*use mse/mae",
    )
    assert not (tmp_path / "runs/c/trials.jsonl").exists()
    _run(["quantize", "-c", config, "--out", "q"], capsys)
    after = json.loads((tmp_path / "q/metrics.json").read_text())["after"]
    cfg = load_config(Path(config))
    val = open_session(cfg).data.val.head(cfg.data.eval_samples)
    with torch.inference_mode():
        want = float(F.mse_loss(load_quantized(tmp_path / "q/quantized.pt")(val.x), val.y))
    assert after["mse"] == pytest.approx(want, rel=1e-6) and "accuracy" not in after


def test_cli_init_train_search_of_a_softmax_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """init reads this zoo file, whose build functions are bound through globals(), and a file
    that star-imports them: it refused both ('allowed: a function ... defines', naming every
    other name), since it parses the file rather than running it. Then train and search of
    the softmax model: train's warning line (it trained on a second softmax without a word),
    search's loss warning once (it was printed twice, from the baseline and from the trials),
    and the trials' accuracy in trials.jsonl."""
    monkeypatch.chdir(tmp_path)
    Path("star.py").write_text("from math import *  # noqa: F403\n")
    _run(["init", "--model", "star.py:sqrt", "--data", "star.py:cos", "-o", "s.toml"], capsys)
    assert 'name = "star.py:sqrt"' in Path("s.toml").read_text()
    spec = f"{FOURTH.as_posix()}:build_softmax_mlp"
    _run(
        ["init", "--model", spec, "--data", f"{FOURTH.as_posix()}:load_jets", "-o", "c.toml"],
        capsys,
    )
    err = _run(["train", "-c", "c.toml", "--epochs", "1", "--json"], capsys)
    assert err.count("warning: train: the model returns probabilities") == 1
    err = _run(["search", "-c", "c.toml", "-q", "--n-trials", "2", "--strategy", "random"], capsys)
    warned = {line for line in err.splitlines() if line.startswith("warning:")}
    assert err.count("warning: loss: the model returns probabilities") == 1 and len(warned) == 1
    rows = [json.loads(s) for s in Path("runs/c/trials.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and all(0 <= r["metrics"]["accuracy"] <= 1 for r in rows)


def _every_role_fixed(name: str) -> tuple[object, torch.Tensor]:
    return every_role_fixed(*_model_and_data(name)[:2])


@pytest.mark.parametrize("name", EXPORTED)
def test_qonnx_export_is_bit_exact(name: str, tmp_path: Path) -> None:
    """The qonnx package's executor (referee) gives quantsearch's outputs bit for bit: the jet
    tagger's logits and the autoencoder's 640 reconstructed values."""
    check_qonnx_exact(*_every_role_fixed(name), tmp_path)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def hls4ml_built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, HlsCase]:
    return hls4ml_projects({n: _every_role_fixed(n) for n in EXPORTED}, tmp_path_factory)  # type: ignore[misc]


@pytest.mark.slow
@pytest.mark.parametrize("name", EXPORTED)
def test_hls4ml_c_simulation_is_bit_exact(name: str, hls4ml_built: dict[str, HlsCase]) -> None:
    """hls4ml's C simulation (g++; referee) against quantsearch's model, every role fixed."""
    assert_hls4ml_exact(*hls4ml_built[name])
