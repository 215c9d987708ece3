"""The seventh sweep of other users' models (tests/models/user_zoo_seventh.py: odd names in an
OrderedDict Sequential, ModuleDict routing, a ``(logits, aux_loss)`` output, Flatten /
Unflatten round trips, a bidirectional GRU, masked attention without weights, a feature
extractor frozen by requires_grad_(False), uint8 images, shape arithmetic, a negative-pad
crop with an in-place add on a view, int8 tokens, a dataclass output, upsampling decoders,
a batch fold, running statistics, weight-normed convs, forward hooks, nn.DataParallel)
through the library and the CLI.

Referees: ``torch.utils.flop_counter.FlopCounterMode`` for the MAC layers' FLOPs (plus the
attention products it does not count, by hand), ``sum(p.numel())`` for the parameters, the
model itself for the traced graph's outputs, a copy of each model whose weights are rounded
here and whose layers round their input in forward pre-hooks for quantize(), and each
trial's own quantized model for its accuracy.
"""

from __future__ import annotations

import copy
import dataclasses
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
from tests.models import user_zoo_seventh
from tests.models.test_user_zoo import (
    check_cli_run,
    check_evaluation_paths,
    check_search_and_quantize,
    write_config,
)

SEVENTH = Path(user_zoo_seventh.__file__)
NAMES = list(user_zoo_seventh.MODELS)
TRACED = [n for n in NAMES if n != "crop_in_place"]
EXPORTED = ("odd_names", "frozen_extractor")  # Linear and ReLU alone: export maps them
KINDS = {
    "unflattens": ["conv2d"],
    "uint8_images": ["conv2d"],
    "int8_tokens": ["conv1d"],
    "up_decoder": ["conv2d"],
    "neg_pad": ["conv1d"],
    "weight_norm_conv": ["conv1d"],
}
# masked_mha's two attention products a sample, which FlopCounterMode leaves at 0 (torch's
# CPU kernel _scaled_dot_product_flash_attention_for_cpu has no formula there): 2 heads x
# (6 x 6 x 4 for the scores + 6 x 6 x 4 for the weighted values) MACs
UNCOUNTED_BY_FCM = {"masked_mha": 2 * (6 * 6 * 4 + 6 * 6 * 4)}


def _model_and_data(name: str, n: int = 16) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    model = getattr(user_zoo_seventh, f"build_{name}")()
    return (model, *getattr(user_zoo_seventh, user_zoo_seventh.LOADERS[name])(n))


def _flops_per_sample(name: str, model: nn.Module, x: torch.Tensor) -> float:
    with FlopCounterMode(display=False) as fcm:
        model(x.clone())
    return int(fcm.get_total_flops()) / len(x) + 2 * UNCOUNTED_BY_FCM.get(name, 0)


def _used_params(name: str, model: nn.Module) -> int:
    """sum(p.numel()) over the parameters forward reads: routed's unused head is left out of
    the traced graph (docs/metrics.md)."""
    params = sum(p.numel() for p in model.parameters())
    if name == "routed":
        params -= sum(p.numel() for p in model.heads["coarse"].parameters())
    return params


@pytest.mark.parametrize("batch", [1, 4])
@pytest.mark.parametrize("name", TRACED)
def test_costs_against_flop_counter_mode(name: str, batch: int) -> None:
    """Nothing uncounted, the FLOPs FlopCounterMode's, the parameters sum(p.numel()), and
    the graph computes what the model does, at batch 1 too."""
    model, x, _ = _model_and_data(name, batch)
    gm = trace(model, x)
    cost = compute_cost(gm)
    assert cost.uncounted == ()
    assert 2 * cost.macs == _flops_per_sample(name, model, x) * batch
    assert param_cost(gm).params == _used_params(name, model)
    with torch.no_grad():
        got, want = gm(x), model(x.clone())
    for g, w in zip(_tensors(got), _tensors(want), strict=True):
        assert torch.equal(g, w)


def _tensors(out: Any) -> tuple[torch.Tensor, ...]:
    """A model's output as its tensors: a tuple's, a dataclass's fields, or the one."""
    if isinstance(out, tuple):
        return out
    if dataclasses.is_dataclass(out):
        return tuple(getattr(out, f.name) for f in dataclasses.fields(out))
    return (out,)


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


@pytest.mark.parametrize("name", [n for n in TRACED if n not in ("masked_mha", "weight_norm_conv")])
def test_quantized_layers_equal_a_hand_quantized_copy(name: str) -> None:
    """Every Conv1d, Conv2d and Linear module with weight fixed(4, 2) and data_in fixed(6, 3)
    gives the hand-quantized copy's outputs bit for bit, at batch 1 too."""
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
    for xs in (x, x[:1]):
        with torch.no_grad():
            got, want = qgm(xs), ref(xs.clone())
        assert torch.equal(_tensors(got)[0], _tensors(want)[0])


@pytest.mark.parametrize("name", ["odd_names", "routed", "frozen_extractor", "shape_arith"])
def test_search_and_quantize(name: str) -> None:
    """Two configs of the Linear layers: each trial's accuracy is the argmax of its own
    quantized model's outputs against the labels, counted here."""
    check_search_and_quantize(*_model_and_data(name, 48))


def test_an_in_place_add_on_a_view_is_one_line() -> None:
    """crop_in_place's ``h[:, :2] += 1``: torch.fx cannot record an item assignment."""
    from quantsearch.errors import TraceError

    model, x, _ = _model_and_data("crop_in_place", 4)
    with pytest.raises(TraceError, match=r"^cannot trace CropInPlace with torch\.fx at "):
        trace(model, x)


# --- the CLI ---------------------------------------------------------------------------------


def _config(tmp_path: Path, name: str, extra: tuple[str, ...] = ()) -> Path:
    """A config of the model (its float weights saved as the checkpoint): a 2-trial random
    search of its kinds' widths and the Linear's."""
    spec = f"{SEVENTH.as_posix()}:build_{name}"
    data = f"{SEVENTH.as_posix()}:{user_zoo_seventh.LOADERS[name]}"
    model = getattr(user_zoo_seventh, f"build_{name}")()
    kinds = [*KINDS.get(name, []), "linear"]
    return write_config(tmp_path, model, spec, data, kinds, "random", extra)


@pytest.mark.parametrize(
    "name", [n for n in TRACED if n not in ("aux_loss", "routed", "dataclass_out")]
)
def test_cli_summary_search_report_quantize_export(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """summary's totals against FlopCounterMode and sum(p.numel()), nothing uncounted;
    search's trials complete; report writes; quantize writes its model; export to QONNX and
    hls4ml is one error line or a verified export."""
    monkeypatch.chdir(tmp_path)
    config = str(_config(tmp_path, name))
    model, x, _ = _model_and_data(name, 4)
    check_cli_run(tmp_path, config, model, _flops_per_sample(name, model, x), capsys)
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
        check_one_line(code, err, r"^export: got layers .*\([\w ,-]+\), allowed: ")
        assert len(err) < 500 and not (tmp_path / out).exists()


def test_cli_an_in_place_add_on_a_view_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    config = str(_config(tmp_path, "crop_in_place"))
    for command in ("summary", "search"):
        check_one_line(
            *run_cli([command, "-c", config], capsys),
            r"cannot trace CropInPlace with torch\.fx at user_zoo_seventh\.py:\d+: h\[:, :2\] \+= 1",
        )


def test_cli_a_dataclass_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """dataclass_out returns a dataclass: fx records its construction as a call of the class,
    which summary listed uncounted as op kind 'output' (the class's name); it is a container,
    free as a NamedTuple's. search's classification metrics refuse it in one line."""
    monkeypatch.chdir(tmp_path)
    config = str(_config(tmp_path, "dataclass_out"))
    main(["summary", "-c", config, "--json"])
    summary = json.loads(capsys.readouterr().out)
    assert summary["costs"]["uncounted"] == []
    model, x, _ = _model_and_data("dataclass_out", 4)
    assert 2 * summary["metrics"]["macs"] == _flops_per_sample("dataclass_out", model, x)
    code, err = run_cli(["search", "-c", config, "-q"], capsys)
    check_one_line(code, err, r"need a model that returns one tensor of logits \(got Output\)")


@pytest.mark.parametrize("name", ["batch_fold", "shape_arith"])
def test_size_arithmetic_is_not_quantized(name: str) -> None:
    """``x.shape[0] * 4`` and ``h.shape[-1] * h.shape[-2]`` are fx ``mul`` nodes of Python
    ints: by_type mul took them as quantizable, and a data_out format ended every forward
    with AttributeError ('int' object has no attribute 'dtype'). They are not candidates:
    the config resolves to nothing, the outputs are the float model's (referee), and random
    per-node configs pass every evaluation path."""
    model, x, y = _model_and_data(name, 8)
    gm = trace(model, x)
    role = {"data_in": _fixed(4, 2), "data_out": _fixed(4, 2)}
    qgm = _quantize(gm, {"by_type": {"mul": role}})
    with torch.no_grad():
        assert torch.equal(qgm(x), model(x.clone()))
    from quantsearch.passes.transform import resolve
    from quantsearch.passes.transform.config import parse_quantize_config

    assert len(resolve(gm, parse_quantize_config({"by_type": {"mul": role}}))) == 0
    check_evaluation_paths(model, x, y, seed=11)


def test_parametrized_layers_count_each_weight_once_per_layer() -> None:
    """weight_norm_conv's two quantized convs hold the weights their parametrizations
    compute, each a temporary parameter made per quantize call; its copy was keyed (for
    counting a tied tensor once) by that temporary's id, which a later temporary reuses: the
    second layer's 48 weights were taken for the first's and dropped (params 165 of 213,
    after a search's evaluation). Referee: sum(p.numel()) of the quantized module, every
    call; every evaluation path agrees."""
    from quantsearch.data import Split
    from quantsearch.search.api import prepare_search
    from quantsearch.search.config import parse_search_config

    model, x, y = _model_and_data("weight_norm_conv", 32)
    gm = trace(model, x[:8])
    roles = {"weight": _fixed(8, 4), "data_in": _fixed(8, 4)}
    raw = {"by_type": {"conv1d": roles}, "by_name": {"relu": {"data_out": _fixed(8, 4)}}}
    space = {"by": "type", "choices": {"linear": {"weight": [[8, 4]]}}}
    cfg = parse_search_config(
        {"space": space, "objectives": {"accuracy": {}}, "metrics": ["params"], "device": "cpu"}
    )
    from quantsearch.passes.transform import resolve
    from quantsearch.passes.transform.config import parse_quantize_config

    rc = resolve(gm, parse_quantize_config(raw))
    _, evaluator = prepare_search(gm, cfg, Split(x, y))
    for _ in range(3):
        assert evaluator.evaluate(rc).metrics["params"] == 213  # 217 less g's 4 of c1
        qgm = _quantize(gm, raw)
        assert param_cost(qgm).params == sum(p.numel() for p in qgm.parameters()) == 213
    check_evaluation_paths(model, x, y, seed=11)


def test_cli_export_refuses_layers_with_hooks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """hooked's Linears carry a forward hook (a clamp) and a forward pre-hook (a doubling),
    which the quantized model keeps (its outputs the hand-quantized copy's, hooks and all)
    but which no exported layer does: export to QONNX wrote the file without them (79% same
    class, 734,666 LSB off, exit status 0). Now one error line naming the hooked layers,
    exit status 2, nothing written."""
    monkeypatch.chdir(tmp_path)
    config = str(_config(tmp_path, "hooked"))
    code, err = run_cli(["search", "-c", config, "-q"], capsys)
    assert code == 0, err
    for to, out in (("qonnx", "m.onnx"), ("hls4ml", "prj")):
        args = ["export", "--to", to, out, "--from-run", "runs/c", "--best", "--verify"]
        code, err = run_cli(args, capsys)
        check_one_line(code, err, r"^export: got layers fc1 \(linear, with a forward hook\), ")
        assert "; without forward hooks, whose code no exported layer runs" in err
        assert "fc2 (linear, with a forward pre-hook)" in err
        assert not (tmp_path / out).exists()


def test_a_data_parallel_model_traces_as_the_model_it_wraps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """nn.DataParallel(model), as a multi-GPU training script leaves it: trace said 'cannot
    trace DataParallel with torch.fx: TraceError: Proxy object cannot be iterated' (its
    forward scatters the inputs). It traces the module it wraps, as a torch.compile'd one:
    the model's outputs (referee), its parameters, and the CLI's summary, search and
    quantize, the checkpoint saved from the wrapper."""
    model, x, _ = _model_and_data("data_parallel", 4)
    gm = trace(model, x)
    assert [k for k, _ in gm.named_parameters()] == [k for k, _ in model.module.named_parameters()]
    with torch.no_grad():
        assert torch.equal(gm(x), model(x))
    monkeypatch.chdir(tmp_path)
    config = str(_config(tmp_path, "data_parallel"))
    check_cli_run(tmp_path, config, model, _flops_per_sample("data_parallel", model, x), capsys)


def test_cli_choices_for_a_kind_of_shape_arithmetic_alone_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """batch_fold's one mul is ``x.shape[0] * 4``, of Python ints: [search.space.choices.mul]
    made a knob of it, and every trial failed ('search.mul: got node 'mul', a mul (mul), which
    cannot be quantized, allowed: a node of a quantizable kind ([... 'mul' ...])'). The space
    is refused before any trial, in one line naming the kind and its nodes; nothing is run."""
    monkeypatch.chdir(tmp_path)
    model = user_zoo_seventh.build_batch_fold()
    spec = f"{SEVENTH.as_posix()}:build_batch_fold"
    data = f"{SEVENTH.as_posix()}:load"
    config = str(write_config(tmp_path, model, spec, data, ["mul", "linear"], "random"))
    code, err = run_cli(["search", "-c", config, "-q"], capsys)
    check_one_line(
        code, err, r"^search\.space\.choices\.mul: got op kind 'mul', whose nodes \(mul\) "
    )
    assert not (tmp_path / "runs/c/trials.jsonl").exists()


def test_every_evaluation_path_runs_the_hooks() -> None:
    """hooked's Linears carry a forward hook and a pre-hook, which quantize()'s model runs:
    evaluate_many's population path computed the layers without them (accuracy 0.1875 where
    evaluate gave 0.125). It evaluates such a graph one config at a time: every path equals
    quantize()'s module (referee: compute_metrics on it)."""
    check_evaluation_paths(*_model_and_data("hooked", 32), seed=11)


def test_calibration_sees_what_a_hooked_module_rounds() -> None:
    """The quantized layer rounds the input its forward gets (after the forward pre-hooks)
    and its forward's output (before the forward hooks); calibration recorded the node's
    input and the hooked output, so fc2's "auto" data_in was fitted to half the range the
    layer rounds (its pre-hook doubles) and fc1's data_out to the clamp's [-0.5, 0.5].
    Referee: the ranges computed here from the model's own arithmetic."""
    from quantsearch.passes.transform import calibrate

    model, x, _ = _model_and_data("hooked", 64)
    stats = calibrate(trace(model, x[:8]), x)
    with torch.no_grad():
        raw = F.linear(x, model.fc1.weight, model.fc1.bias)
        doubled = 2 * torch.relu(raw.clamp(-0.5, 0.5))
    assert stats.range("fc1", "data_out") == (float(raw.min()), float(raw.max()))
    assert stats.range("fc2", "data_in") == (float(doubled.min()), float(doubled.max()))
