"""The evaluation path on a CUDA device: tensors resident, results equal to the CPU's.

Skipped where torch finds no CUDA device (CI has none); where one is present,
``pytest tests/search/test_cuda.py`` runs them. Referees:

- the CPU path of the same configs: the network below quantizes every linear layer's input,
  weight and bias to fixed point, so its outputs are sums of fixed-point products that float32
  holds exactly, and any summation order (a GPU kernel's or the CPU's) gives the same bits;
- torch.profiler's record of the copies the device made (Kineto's ``Memcpy HtoD`` events);
- a search run on the CPU by the CLI in a process that sees no CUDA device
  (``CUDA_VISIBLE_DEVICES=""``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from quantsearch.data import Split
from quantsearch.graph import info, trace
from quantsearch.passes.transform import ResolvedConfig
from quantsearch.search.api import prepare_search
from quantsearch.search.config import parse_search_config
from quantsearch.search.evaluate import Evaluator
from tests.runs import make_run

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

PAIRS = [(8, 4), (8, 6), (6, 3), (4, 2)]
METRICS = ["accuracy", "loss", "model_size_bits", "bitops"]
OBJ = {"accuracy": {"direction": "maximize"}}


def _network() -> tuple[torch.fx.GraphModule, Split]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 5)).eval()
    g = torch.Generator().manual_seed(1)
    data = Split(torch.randn(700, 16, generator=g), torch.randint(0, 5, (700,), generator=g))
    return trace(model, data.x[:8]), data


def _configs(gm: torch.fx.GraphModule) -> list[ResolvedConfig]:
    """16 configs: every linear layer's input, weight and bias on one of four grids."""
    nodes = [n.name for n in gm.graph.nodes if info(n).op_kind == "linear"]

    def fx(p: tuple[int, int]) -> dict[str, Any]:
        return {"format": "fixed", "width": p[0], "frac_width": p[1]}

    return [
        ResolvedConfig.from_dict(
            {n: {"data_in": fx(a), "weight": fx(w), "bias": fx(w)} for n in nodes}, gm=gm
        )
        for a in PAIRS
        for w in PAIRS
    ]


def test_auto_runs_on_cuda_with_model_and_data_resident() -> None:
    gm, data = _network()
    ev = Evaluator(gm, data, METRICS, device="auto")
    assert ev.device.type == "cuda"
    assert all(t.is_cuda for t in [*ev.gm.parameters(), *ev.gm.buffers()])
    assert ev.data.x.is_cuda and ev.data.y.is_cuda
    assert all(not p.is_cuda for p in gm.parameters())  # the user's model stays where it was
    for rc in _configs(gm)[:3]:
        qgm = ev.prepared().apply_(rc.bind(ev.gm, None))
        assert all(t.is_cuda for t in [*qgm.parameters(), *qgm.buffers()])


def test_search_device_cpu_keeps_trials_on_the_cpu() -> None:
    gm, data = _network()
    space = {"choices": {"linear": {"weight": [[8, 4]]}}}
    cfg = parse_search_config({"space": space, "objectives": OBJ, "device": "cpu"})
    assert prepare_search(gm, cfg, data)[1].device.type == "cpu"
    cfg = parse_search_config({"space": space, "objectives": OBJ, "device": "cuda:0"})
    assert prepare_search(gm, cfg, data)[1].device == torch.device("cuda:0")


def test_cuda_outputs_are_the_cpu_outputs_bit_for_bit() -> None:
    gm, data = _network()
    cpu = Evaluator(gm, data, METRICS, device="cpu")
    gpu = Evaluator(gm, data, METRICS, device="cuda")
    for rc in _configs(gm):
        want = cpu.prepared().apply_(rc.bind(cpu.gm, None))(data.x)
        got = gpu.prepared().apply_(rc.bind(gpu.gm, None))(gpu.data.x)
        assert torch.equal(got.cpu(), want), rc.to_dict()
        a, b = cpu.evaluate(rc), gpu.evaluate(rc)
        assert a.error is None and b.error is None, (a.error, b.error)
        assert a.metrics is not None and b.metrics is not None
        for name in ("accuracy", "model_size_bits", "bitops"):
            assert b.metrics[name] == a.metrics[name], name
        # the same logits; the loss's log-sum-exp is the device's own kernel
        assert b.metrics["loss"] == pytest.approx(a.metrics["loss"], rel=1e-6)


def test_a_population_on_cuda_equals_its_single_trials(monkeypatch: pytest.MonkeyPatch) -> None:
    gm, data = _network()
    ev = Evaluator(gm, data, METRICS, device="cuda")
    configs = _configs(gm)
    singles = [ev.evaluate(rc) for rc in configs]
    calls: list[Any] = []
    real = ev.evaluate
    monkeypatch.setattr(ev, "evaluate", lambda rc: calls.append(rc) or real(rc))
    many = ev.evaluate_many(_configs(gm))
    assert calls == []  # the population path answered, not the one-at-a-time fallback
    assert [e.metrics for e in many] == [e.metrics for e in singles]


def _host_to_device(fn: Any, trace_file: Path) -> list[tuple[str, int]]:
    """The host-to-device copies made while ``fn()`` ran: (event name, bytes) each, from the
    profiler's Chrome trace (Kineto's ``gpu_memcpy`` events)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    prof.export_chrome_trace(str(trace_file))
    events = json.loads(trace_file.read_text()).get("traceEvents", [])
    return [
        (e["name"], int(e.get("args", {}).get("bytes", 0)))
        for e in events
        if "HtoD" in str(e.get("name", ""))
    ]


def test_a_trial_makes_no_host_to_device_copy(tmp_path: Path) -> None:
    gm, data = _network()
    ev = Evaluator(gm, data, METRICS, device="cuda")
    for rc in _configs(gm):  # warm-up: the formats' quantized weights, kernels, allocator
        ev.evaluate(rc)
    fresh = _configs(gm)  # new objects, as a search's trials are
    copies = _host_to_device(lambda: [ev.evaluate(rc) for rc in fresh], tmp_path / "t.json")
    assert copies == [], f"{len(copies)} host-to-device copies in 16 trials: {copies[:8]}"


def _trials(run: Path) -> list[dict[str, Any]]:
    lines = (run / "trials.jsonl").read_text().splitlines()
    return sorted((json.loads(line) for line in lines), key=lambda t: t["number"])


def test_a_search_on_cuda_records_the_cpu_search_results(
    tmp_path: Path, mlp_checkpoint: Path
) -> None:
    gpu = make_run(tmp_path / "gpu", mlp_checkpoint)  # in-process: device "auto" is CUDA
    folder = tmp_path / "cpu"
    folder.mkdir()
    config = (gpu.parent.parent / "s.toml").read_text()
    (folder / "s.toml").write_text(config)
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    subprocess.run(
        [sys.executable, "-m", "quantsearch", "search", "-c", str(folder / "s.toml"), "-q",
         "--run-dir", str(folder / "runs")],
        check=True, env=env, cwd=Path(__file__).parents[2],
    )  # fmt: skip
    want, got = _trials(folder / "runs" / "s"), _trials(gpu)
    assert [t["params"] for t in got] == [t["params"] for t in want]
    for a, b in zip(want, got, strict=True):
        assert b["state"] == a["state"] == "COMPLETE"
        for name in ("model_size_bits", "bitops", "avg_weight_bits"):
            assert b["metrics"][name] == a["metrics"][name]
        # mlp-digits' first layer reads float inputs: a few sums may round differently
        assert b["metrics"]["accuracy"] == pytest.approx(a["metrics"]["accuracy"], abs=2 / 360)
        assert b["metrics"]["loss"] == pytest.approx(a["metrics"]["loss"], rel=1e-3)
