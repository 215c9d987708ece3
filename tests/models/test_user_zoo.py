"""Other users' models (tests/models/user_zoo.py) through the library and the CLI.

Each model is traced and priced (referees: ``torch.utils.flop_counter.FlopCounterMode`` for the
MAC layers' FLOPs, ``sum(p.numel())`` for the parameters, the model itself for the traced
graph's outputs), searched and quantized; every outcome is a number checked against torch or
one ``error:`` line with exit status 2. Export maps chains of Linear, BatchNorm1d and ReLU
modules, bit for bit against the qonnx executor and hls4ml's C simulation (slow, g++); other
layers are refused in one line naming them.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from quantsearch.cli import main
from quantsearch.errors import TraceError
from quantsearch.graph import trace
from quantsearch.metrics import ProbabilityOutputWarning
from quantsearch.passes.analysis import compute_cost, param_cost
from quantsearch.search import search
from tests.cli.bad_input import check_one_line, run_cli
from tests.models import user_zoo

ZOO = Path(user_zoo.__file__)
TRACEABLE = [n for n in user_zoo.MODELS if n not in ("data_flow", "counts_calls")]
CLASSIFIERS = [n for n in TRACEABLE if n not in ("tuple_out", "dict_out", "regression")]


def _model_and_data(name: str) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    model = getattr(user_zoo, f"build_{name}")().eval()
    load = {"embed": user_zoo.load_tokens, "regression": user_zoo.load_regression}
    x, y = load.get(name, user_zoo.load)()
    return model, x, y


@pytest.mark.parametrize("name", TRACEABLE)
def test_costs_against_flop_counter_mode(name: str) -> None:
    """Every op priced (none uncounted), the MAC layers' FLOPs equal FlopCounterMode's, the
    parameters sum(p.numel()), and the traced graph computes what the model does."""
    model, x, _ = _model_and_data(name)
    x = x[:6]
    gm = trace(model, x)
    cost = compute_cost(gm)
    assert cost.uncounted == ()
    with FlopCounterMode(display=False) as fcm, torch.no_grad():
        want = model(x.clone())
    assert 2 * cost.macs == fcm.get_total_flops()
    assert param_cost(gm).params == sum(p.numel() for p in model.parameters())
    with torch.no_grad():
        got = gm(x)
    torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_in_place_ops_cost_what_their_op_costs() -> None:
    """h.relu_(), y.mul_(0.5) and torch.relu_(y) of in_place were uncounted (no rule for
    'relu_', 'mul_'); each costs its op's per-element FLOPs on 6 x 16 elements."""
    model, x, _ = _model_and_data("in_place")
    gm = trace(model, x[:6])
    compute_cost(gm)
    costs = {n.name: n.meta["quantsearch"].cost for n in gm.graph.nodes}
    n = 6 * 16
    assert (costs["relu_"]["flops"], costs["relu_"]["flops_backward"]) == (n, n)
    assert (costs["mul_"]["flops"], costs["mul_"]["flops_backward"]) == (n, n)
    assert costs["relu__1"]["flops"] == n


def test_a_model_that_changes_its_input_leaves_the_data_alone() -> None:
    """mutates_input does x.mul_(2); x += 1: trace changed the caller's example, and search
    the validation tensor on every forward, so each trial saw other data (loss 2.35 -> 2.59
    -> 4.18 -> 8.34 for one config). Now the data stay as given and the float baseline's loss
    is torch's cross_entropy of the model on a copy (referee)."""
    model, x, y = _model_and_data("mutates_input")
    x0 = x.clone()
    trace(model, x[:8])
    assert torch.equal(x, x0)
    kw: dict[str, Any] = {"strategy": "brute_force", "n_trials": 3, "progress": False}
    space = {"by": "type", "choices": {"linear": {"weight": [[16, 8], [8, 4]]}}}
    result = search(model, (x, y), space=space, objectives={"loss": {}}, metrics=["loss"], **kw)
    assert torch.equal(x, x0)
    with torch.no_grad():
        want = float(F.cross_entropy(model(x0.clone()), y))
    assert result.baseline["loss"] == pytest.approx(want, rel=1e-6)
    for trial in result.trials:
        with torch.no_grad():
            loss = float(F.cross_entropy(result.model(trial)(x.clone()), y))
        assert trial.metrics["loss"] == pytest.approx(loss, rel=1e-6)
    assert torch.equal(x, x0)


def test_a_model_that_changes_its_input_under_inference_mode() -> None:
    """Inference tensors keep no version count (reading it raised a RuntimeError): the change
    is told by the values, and the graph reads a copy all the same."""
    model, x, _ = _model_and_data("mutates_input")
    with torch.inference_mode():
        x = x.clone()
        x0 = x.clone()
        gm = trace(model, x[:8])
        out = gm(x)
    assert torch.equal(x, x0)
    with torch.no_grad():
        torch.testing.assert_close(out, model(x0.clone()), rtol=0, atol=0)


@pytest.mark.parametrize("name", ["mutates_input", "in_place", "relu_first", "attention"])
def test_every_evaluation_path_equals_quantize(name: str) -> None:
    """In-place ops and the input's copy through each path: the prepared slots give
    quantize()'s outputs bit for bit, evaluate_many equals evaluate, and both equal
    compute_metrics on quantize()'s module; the data are left as they were."""
    check_evaluation_paths(*_model_and_data(name), seed=1)


def write_config(
    folder: Path,
    model: nn.Module,
    spec: str,
    data: str,
    kinds: list[str],
    strategy: str,
    extra: tuple[str, ...] = (),
) -> Path:
    """``folder/c.toml`` for a user's ``model`` (``spec``, its float weights saved as the
    checkpoint ``ck.pt``) on ``data``: a 2-trial search of fixed-point widths on its layer
    ``kinds`` (a mul's and a bmm's data_in, the others' weight), one [quantize] table and
    ``extra`` lines."""
    from quantsearch.checkpoint import save_checkpoint

    save_checkpoint(folder / "ck.pt", model, model_name=spec, dataset=data)
    lines = ["seed = 0", "[model]", f'name = "{spec}"', 'checkpoint = "ck.pt"', "[data]"]
    lines += [f'name = "{data}"', "eval_samples = 32"]
    lines += ["[search]", "n_trials = 2", "[search.strategy]", f'name = "{strategy}"']
    for kind in kinds:
        role = "data_in" if kind in ("mul", "bmm") else "weight"  # bmm: of computed operands
        lines += [f"[search.space.choices.{kind}]", f"{role} = [[8, 4], [4, 2]]"]
    lines += ["[search.objectives]", 'accuracy = { direction = "maximize" }']
    lines += [
        "[quantize.by_type.linear]",
        'weight = { format = "fixed", width = 6, frac_width = 3 }',
        *extra,
    ]
    (folder / "c.toml").write_text("\n".join(lines) + "\n")
    return folder / "c.toml"


def check_evaluation_paths(model: nn.Module, x: torch.Tensor, y: torch.Tensor, seed: int) -> None:
    """Three random per-node configs (seeded) of ``model``: the prepared slots give quantize()'s
    outputs bit for bit, evaluate_many equals evaluate, and both equal compute_metrics on
    quantize()'s module (the referee), on the CPU, where it runs; ``x`` is left as it was."""
    from quantsearch.data import Split
    from quantsearch.metrics import compute_metrics
    from quantsearch.passes.transform import quantize
    from quantsearch.search.api import prepare_search
    from quantsearch.search.config import parse_search_config
    from tests.test_user_models import _random_configs

    x0 = x.clone()
    gm = trace(model, x[:8])
    names = ["accuracy", "loss", "model_size_bits", "bitops", "flops"]
    space = {"by": "type", "choices": {"linear": {"weight": [[8, 4], [4, 2]]}}}
    cfg = parse_search_config(
        {"space": space, "objectives": {"accuracy": {}}, "metrics": names, "device": "cpu"}
    )
    _, evaluator = prepare_search(gm, cfg, Split(x, y))
    configs = _random_configs(gm, 3, seed=seed)
    for rc, pop in zip(configs, evaluator.evaluate_many(configs), strict=True):
        qgm = quantize(gm, rc)
        with torch.no_grad():
            assert torch.equal(evaluator.prepared().apply_(rc)(x), qgm(x))
        one = evaluator.evaluate(rc)
        assert one.error is None and one.metrics == pop.metrics and one.metrics is not None
        assert {k: one.metrics[k] for k in names} == compute_metrics(qgm, names, data=Split(x, y))
    assert torch.equal(x, x0)


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_search_and_quantize(name: str) -> None:
    """Two configs of the model's Linear layers: each trial's accuracy is the argmax of its own
    quantized model's outputs against the labels, counted here."""
    check_search_and_quantize(*_model_and_data(name))


def check_search_and_quantize(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
    """A brute-force search of two configs of ``model``'s Linear layers; each trial's accuracy
    is checked against the argmax of its own quantized model's outputs, counted here."""
    space = {"by": "type", "choices": {"linear": {"weight": [[8, 4], [3, 1]], "data_in": [[8, 4]]}}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ProbabilityOutputWarning)  # a softmax output's loss
        result = search(
            model, (x, y), space=space, strategy="brute_force", n_trials=2, progress=False,
            objectives={"accuracy": {"direction": "maximize"}}, metrics=["accuracy", "bitops"],
        )  # fmt: skip
    assert len(result.trials) == 2
    for trial in result.trials:
        assert trial.error is None
        with torch.no_grad():
            hits = (result.model(trial)(x.clone()).argmax(1) == y).float().mean()
        assert trial.metrics["accuracy"] == pytest.approx(float(hits))


def test_data_dependent_control_flow_is_one_line() -> None:
    model, x, _ = _model_and_data("data_flow")
    with pytest.raises(TraceError, match=r"^cannot trace DataFlow with torch\.fx at user_zoo\.py:"):
        trace(model, x[:4])


def test_a_forward_that_changes_its_buffers_is_refused() -> None:
    """counts_calls does self.calls += 1: torch.fx ran that line once while tracing and left it
    out of the graph, so every trial measured a model whose count was frozen at 1 while the
    model's own grows with each call."""
    model, x, _ = _model_and_data("counts_calls")
    with pytest.raises(TraceError, match=r"^model: CountsCalls\.forward changes calls in place, "):
        trace(model, x[:4])


def test_cli_refuses_untraceable_models_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Control flow on data, and a forward that changes its buffers: one error line naming
    the line of the user's file or the buffer, exit status 2, from summary and search."""
    monkeypatch.chdir(tmp_path)
    for name, pattern in (
        ("data_flow", r"cannot trace DataFlow with torch\.fx at user_zoo\.py:\d+: if x\.sum"),
        ("counts_calls", r"CountsCalls\.forward changes calls in place"),
    ):
        config = str(_config(tmp_path, name))
        for command in ("summary", "search"):
            check_one_line(*run_cli([command, "-c", config], capsys), pattern)


def test_sensitivity_of_a_regression_model_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """summary --sensitivity on float targets: cross_entropy's RuntimeError was an internal
    error with a traceback; the probe needs class labels and says so."""
    monkeypatch.chdir(tmp_path)
    config = str(_config(tmp_path, "regression"))
    code, err = run_cli(["summary", "-c", config, "--sensitivity"], capsys)
    check_one_line(
        code, err, r"^sensitivity: got torch\.float32 targets of shape \(\d+, 2\), allowed"
    )


# --- the CLI ---------------------------------------------------------------------------------

KNOBS = {
    "acts": ["linear"],
    "embed": ["linear"],
    "jsc_conv1d": ["conv1d", "batch_norm1d", "linear"],
    "cnn": ["conv2d", "batch_norm2d", "linear"],
    "res_cat": ["linear"],
    "views": ["linear"],
    "loops": ["linear"],
    "shared": ["linear"],
    "buffers": ["linear"],
    "in_place": ["linear"],
    "attention": ["linear", "matmul"],
    "tuple_out": ["linear"],
    "dict_out": ["linear"],
    "regression": ["linear"],
    "hls_mlp": ["linear", "batch_norm1d"],
    "relu_first": ["linear", "batch_norm1d"],
    "dropout_mlp": ["linear", "batch_norm1d"],
    "function_relus": ["linear", "batch_norm1d"],
    "mutates_input": ["linear"],
}
# Linear, BatchNorm1d and ReLU modules in a chain (and what passes its input through)
EXPORTED = ("hls_mlp", "relu_first", "dropout_mlp", "function_relus", "shared")
DATA = {"embed": "load_tokens", "regression": "load_regression"}
TASK = {  # a user's evaluate function and its direction, and the objective
    "regression": ("evaluate_regression", 'max_abs_error = "minimize"', "mse"),
    "tuple_out": ("evaluate_first", 'hits = "maximize"', "hits"),
    "dict_out": ("evaluate_first", 'hits = "maximize"', "hits"),
}


def _config(tmp_path: Path, name: str) -> Path:
    """A config of the model (its float weights saved as the checkpoint): a 2-trial search of
    fixed-point widths on its layer kinds, and one [quantize] table."""
    from quantsearch.checkpoint import save_checkpoint

    spec, data = (f"{ZOO.as_posix()}:{f}" for f in (f"build_{name}", DATA.get(name, "load")))
    model = getattr(user_zoo, f"build_{name}")()
    save_checkpoint(tmp_path / "ck.pt", model, model_name=spec, dataset=data)
    lines = ["seed = 0", "[model]", f'name = "{spec}"', 'checkpoint = "ck.pt"', "[data]"]
    lines += [f'name = "{data}"', "eval_samples = 32"]
    evaluate, direction, objective = TASK.get(name, ("", "", "accuracy"))
    if evaluate:
        lines += ["[metrics]", f'evaluate = "{ZOO.as_posix()}:{evaluate}"']
        lines += [f"directions = {{ {direction} }}"]
    lines += ["[search]", "n_trials = 2", "[search.strategy]", 'name = "random"']
    for kind in KNOBS.get(name, ["linear"]):  # attention's matmuls: of computed operands
        role = "data_in" if kind == "matmul" else "weight"
        lines += [f"[search.space.choices.{kind}]", f"{role} = [[8, 4], [4, 2]]"]
    direction = "minimize" if objective == "mse" else "maximize"
    lines += ["[search.objectives]", f'{objective} = {{ direction = "{direction}" }}']
    lines += [
        "[quantize.by_type.linear]",
        'weight = { format = "fixed", width = 6, frac_width = 3 }',
    ]
    (tmp_path / "c.toml").write_text("\n".join(lines) + "\n")
    return tmp_path / "c.toml"


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    code, err = run_cli(args, capsys)
    assert code == 0 and "Traceback" not in err, err
    return err


def _check_task_metrics(name: str, config: Path, out: Path) -> None:
    """quantize measured the config's own metrics (it measured accuracy, refusing a tuple
    output or float targets in one line): the user's evaluate function, run here on the
    float model and on quantized.pt read back, over the same validation samples (referee)."""
    from quantsearch.config import load_config
    from quantsearch.quantized import load_quantized
    from quantsearch.session import open_session

    cfg = load_config(config)
    val = open_session(cfg).data.val.head(cfg.data.eval_samples)
    fn = getattr(user_zoo, TASK[name][0])
    record = json.loads((out / "metrics.json").read_text())
    metric = TASK[name][1].split(" ")[0]
    model = getattr(user_zoo, f"build_{name}")().eval()
    with torch.inference_mode():
        want = {
            "before": fn(model, [(val.x, val.y)]),
            "after": fn(load_quantized(out / "quantized.pt"), [(val.x, val.y)]),
        }
    for when in ("before", "after"):
        assert record[when][metric] == pytest.approx(want[when][metric], rel=1e-6)
    assert "accuracy" not in record["after"] and record["after"]["bitops"] > 0


def _check_from_run_metrics(name: str, config: Path, out: Path) -> None:
    """quantize --from-run of such a run measures what the trial recorded but the evaluate
    function's metrics (not imported there): mse against torch's mse_loss of quantized.pt
    read back (referee); it measured accuracy and refused in one line before."""
    from quantsearch.config import load_config
    from quantsearch.quantized import load_quantized
    from quantsearch.session import open_session

    record = json.loads((out / "metrics.json").read_text())
    assert TASK[name][1].split(" ")[0] not in record["after"] and "accuracy" not in record["after"]
    assert record["after"]["model_size_bits"] > 0
    if name == "regression":
        cfg = load_config(config)
        val = open_session(cfg).data.val.head(cfg.data.eval_samples)
        with torch.inference_mode():
            want = float(F.mse_loss(load_quantized(out / "quantized.pt")(val.x), val.y))
        assert record["after"]["mse"] == pytest.approx(want, rel=1e-6)


@pytest.mark.parametrize("name", list(KNOBS))
def test_cli_summary_search_quantize(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """summary's totals against FlopCounterMode and sum(p.numel()); search's trials complete;
    quantize writes its model; export of anything but Linear/BatchNorm1d/ReLU modules is one
    error line naming a layer it cannot map."""
    monkeypatch.chdir(tmp_path)
    config = str(_config(tmp_path, name))
    model, x, _ = _model_and_data(name)
    with FlopCounterMode(display=False) as fcm, torch.no_grad():
        model(x[:4].clone())
    check_cli_run(tmp_path, config, model, fcm.get_total_flops() / 4, capsys)
    if name in TASK:
        _check_task_metrics(name, Path(config), tmp_path / "q")
        _run(["quantize", "--from-run", "runs/c", "--best", "--out", "q2"], capsys)
        _check_from_run_metrics(name, Path(config), tmp_path / "q2")
    if name in EXPORTED:  # ReLUs and data_in left in float: QONNX holds them
        args = ["--from-run", "runs/c", "--best", "--verify", "--json"]
        main(["export", "--to", "qonnx", "m.onnx", *args])
        verdict = json.loads(capsys.readouterr().out)["agreement"]
        # float32 products of float inputs, summed in onnxruntime's order: a few LSB of 2^-16
        assert verdict["same_class"] == 1.0 and verdict["max_lsb"] * verdict["lsb"] < 1e-4
    else:
        code, err = run_cli(["export", "--to", "qonnx", "m.onnx", "--from-run", "runs/c"], capsys)
        check_one_line(code, err, r"^export: got (layers .*\(\w+\)|node \w+), allowed: ")
        assert not (tmp_path / "m.onnx").exists()


def check_cli_run(
    folder: Path,
    config: str,
    model: nn.Module,
    flops_per_sample: float,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A zoo model's ``config`` through the CLI, run in ``folder``: ``summary``'s totals
    against the referee's FLOPs a sample (FlopCounterMode's, or a hand count) and
    ``sum(p.numel())``, nothing uncounted; ``search``'s two trials complete; ``quantize`` writes
    its model."""
    main(["summary", "-c", config, "--json"])
    summary = json.loads(capsys.readouterr().out)
    assert summary["costs"]["uncounted"] == []
    assert 2 * summary["metrics"]["macs"] == flops_per_sample
    assert summary["metrics"]["params"] == sum(p.numel() for p in model.parameters())
    _run(["search", "-c", config, "-q"], capsys)
    rows = [json.loads(s) for s in (folder / "runs/c/trials.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and all(r.get("error") is None for r in rows)
    _run(["quantize", "-c", config, "--out", "q"], capsys)
    assert (folder / "q" / "quantized.pt").is_file()


EVERY_ROLE = {"format": "fixed", "width": 8, "frac_width": 4}


def every_role_fixed(
    model: nn.Module, x: torch.Tensor, kinds: tuple[str, ...] = ("linear", "batch_norm1d")
) -> tuple[Any, torch.Tensor]:
    """``model`` quantized with every role of its layers of ``kinds`` and the data_in of its
    ReLUs in fixed(8, 4), and ``x``: what the export checks compare."""
    from quantsearch.passes.transform import quantize, resolve
    from quantsearch.passes.transform.config import parse_quantize_config

    gm = trace(model, x[:8])
    roles = {"data_in": EVERY_ROLE, "weight": EVERY_ROLE, "bias": EVERY_ROLE}
    raw = {"by_type": {**dict.fromkeys(kinds, roles), "relu": {"data_in": EVERY_ROLE}}}
    return quantize(gm, resolve(gm, parse_quantize_config(raw))), x


def _quantized(name: str) -> tuple[Any, torch.Tensor]:
    return every_role_fixed(*_model_and_data(name)[:2])


@pytest.mark.parametrize("name", EXPORTED)
def test_qonnx_export_is_bit_exact(name: str, tmp_path: Path) -> None:
    """The qonnx package's executor (referee) gives quantsearch's outputs bit for bit; for
    relu_first too, whose graph reads a copy of the input (its first ReLU works in place)."""
    check_qonnx_exact(*_quantized(name), tmp_path)


def check_qonnx_exact(qgm: torch.fx.GraphModule, x: torch.Tensor, folder: Path) -> None:
    """``qgm`` exported to QONNX: the qonnx package's executor (referee) gives its outputs on
    ``x`` bit for bit."""
    pytest.importorskip("qonnx")
    from quantsearch.export import export_qonnx, verify_qonnx

    export_qonnx(qgm, folder / "m.onnx")
    verdict = verify_qonnx(folder / "m.onnx", qgm, x)
    assert verdict.same_class == 1.0 and verdict.max_lsb == 0, verdict


HlsCase = tuple[Any, torch.fx.GraphModule, torch.Tensor]  # hls4ml project, model, inputs


@pytest.fixture(scope="module")
def hls4ml_built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, HlsCase]:
    """Every EXPORTED model quantized, exported and its C simulation built, the g++ builds side
    by side (one g++ build takes a core for seconds: one after the other, the other core idled)."""
    return hls4ml_projects({name: _quantized(name) for name in EXPORTED}, tmp_path_factory)


@pytest.mark.slow
@pytest.mark.parametrize("name", EXPORTED)
def test_hls4ml_c_simulation_is_bit_exact(name: str, hls4ml_built: dict[str, HlsCase]) -> None:
    """hls4ml's C simulation (g++; referee) against quantsearch's model, every role fixed."""
    assert_hls4ml_exact(*hls4ml_built[name])


def hls4ml_projects(
    cases: dict[str, tuple[torch.fx.GraphModule, torch.Tensor]],
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, HlsCase]:
    """Each model exported to an hls4ml project, the C simulations built by ``compile_all``."""
    pytest.importorskip("hls4ml")
    from quantsearch.export import compile_all, export_hls4ml

    folder = tmp_path_factory.mktemp("hls4ml")
    built = {name: (export_hls4ml(qgm, folder / name), qgm, x) for name, (qgm, x) in cases.items()}
    compile_all([project for project, _, _ in built.values()])
    return built


def check_hls4ml_exact(qgm: torch.fx.GraphModule, x: torch.Tensor, folder: Path) -> None:
    """``qgm`` exported to an hls4ml project: its C simulation (g++; referee) gives its
    outputs on ``x`` bit for bit."""
    pytest.importorskip("hls4ml")
    from quantsearch.export import export_hls4ml

    project = export_hls4ml(qgm, folder / "prj")
    project.compile()
    assert_hls4ml_exact(project, qgm, x)


def assert_hls4ml_exact(project: Any, qgm: torch.fx.GraphModule, x: torch.Tensor) -> None:
    """A built hls4ml project's C simulation (referee) gives ``qgm``'s outputs on ``x`` bit
    for bit."""
    verdict = project.verify(qgm, x)
    assert verdict.same_class == 1.0 and verdict.max_lsb == 0, verdict
