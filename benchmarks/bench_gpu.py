"""GPU trials: the evaluation path on CUDA (``device = "auto"`` finds it), timed with CUDA events.

Run from the repository root on a machine with a CUDA device::

    python benchmarks/bench_gpu.py            # Markdown tables
    python benchmarks/bench_gpu.py --json

Without one it says so and exits 0 (nothing to measure). Parts:

1. Per-trial latency of ``Evaluator.evaluate`` on the 16 lab configs of jsc-tiny (512 samples)
   and of cnn-digits (conv2d + linear, 360-sample stand-in), cycled, measured between CUDA
   events recorded around each call (and wall-clock beside them), against a float evaluation;
   the model and data are resident on the device (the Evaluator moves them once).
2. The lab's brute-force search and a 200-trial random search with the durable journal
   default: trials/s over the trial loop, from the study's timestamps.
3. Host transfers: the copies between host and device that 16 warm trials of jsc-tiny make
   (torch.profiler's Kineto ``Memcpy`` events), per trial and direction (a trial reads its
   labels and logits back, where the loss's float64 sums run; it sends nothing).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).parent))

from bench_search import table  # the same Markdown table as the other benchmarks
from quantsearch.data import Split
from quantsearch.graph import info, trace
from quantsearch.metrics import compute_metrics
from quantsearch.models import build_model
from quantsearch.passes.transform import ResolvedConfig
from quantsearch.search.api import search
from quantsearch.search.evaluate import Evaluator

PAIRS = [[16, 8], [8, 6], [8, 4], [4, 2]]
LAB_SPACE = {"choices": {"linear": {"data_in": PAIRS, "weight": PAIRS}}}
OBJ = {"accuracy": {"direction": "maximize"}}


def _split(name: str, n: int) -> Split:
    g = torch.Generator().manual_seed(0)
    shape = (16,) if name.startswith("jsc") else (1, 8, 8)
    classes = 5 if name.startswith("jsc") else 10
    return Split(torch.randn(n, *shape, generator=g), torch.randint(0, classes, (n,), generator=g))


def _configs(gm: torch.fx.GraphModule) -> list[ResolvedConfig]:
    nodes = [n.name for n in gm.graph.nodes if info(n).op_kind in ("linear", "conv2d")]

    def fx(p: list[int]) -> dict[str, Any]:
        return {"format": "fixed", "width": p[0], "frac_width": p[1]}

    return [
        ResolvedConfig.from_dict({n: {"data_in": fx(a), "weight": fx(w)} for n in nodes}, gm=gm)
        for a in PAIRS
        for w in PAIRS
    ]


def _cuda_ms(fn: Any, repeats: int) -> tuple[float, float]:
    """Median CUDA-event and wall-clock ms of ``fn()``."""
    events, walls = [], []
    for i in range(repeats):
        start = torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call]
        end = torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call]
        t0 = time.perf_counter()
        start.record()
        fn(i)
        end.record()
        torch.cuda.synchronize()
        walls.append((time.perf_counter() - t0) * 1000)
        events.append(start.elapsed_time(end))
    return statistics.median(events), statistics.median(walls)


def bench_latency(repeats: int) -> list[dict[str, Any]]:
    return [_latency(name, n, repeats) for name, n in (("jsc-tiny", 512), ("cnn-digits", 360))]


def _latency(name: str, n: int, repeats: int) -> dict[str, Any]:
    data = _split(name, n)
    gm = trace(build_model(name).eval(), data.x[:8])
    ev = Evaluator(gm, data, ["accuracy", "loss"], device="auto")
    assert ev.device.type == "cuda", ev.device
    configs = [ev.resolve(rc.to_dict()) for rc in _configs(gm)]  # as a search resolves them
    for rc in configs:  # warm-up: kernels, allocator, memoised weights
        ev.evaluate(rc)
    trial = _cuda_ms(lambda i: ev.evaluate(configs[i % len(configs)]), repeats)
    base = _cuda_ms(lambda i: compute_metrics(ev.gm, ev.metrics, data=ev.data), repeats)
    return {
        "model": name,
        "samples": n,
        "float_eval_ms (events)": base[0],
        "trial_eval_ms (events)": trial[0],
        "trial_eval_ms (wall)": trial[1],
        "trial / float": trial[0] / base[0],
    }


def bench_search(repeats: int) -> list[dict[str, Any]]:
    model, data = build_model("jsc-tiny").eval(), _split("jsc-tiny", 512)
    rows = []
    for strategy, n in (("brute_force", 16), ("random", 200)):
        rates = []
        for r in range(repeats + 1):
            with tempfile.TemporaryDirectory() as d:
                res = search(
                    model, data, space=LAB_SPACE, objectives=OBJ, strategy=strategy,
                    n_trials=n, seed=r, run_dir=Path(d), metrics=["accuracy", "loss"],
                )  # fmt: skip
                trials = res.trials
                assert res.study is not None
                frozen = res.study.get_trials(deepcopy=False)
                ends = [t.datetime_complete for t in frozen if t.datetime_complete is not None]
                starts = [t.datetime_start for t in frozen if t.datetime_start is not None]
                span = max(ends) - min(starts)
            if r:
                rates.append(len(trials) / span.total_seconds())
        rows.append({"strategy": strategy, "trials": n, "trials_per_s": statistics.median(rates)})
    return rows


def bench_transfers() -> list[dict[str, Any]]:
    from torch.profiler import ProfilerActivity, profile

    data = _split("jsc-tiny", 512)
    gm = trace(build_model("jsc-tiny").eval(), data.x[:8])
    ev = Evaluator(gm, data, ["accuracy", "loss"], device="auto")
    for rc in _configs(gm):
        ev.evaluate(ev.resolve(rc.to_dict()))
    fresh = [ev.resolve(rc.to_dict()) for rc in _configs(gm)]  # new objects, as trials are
    activities = [ProfilerActivity.CPU, ProfilerActivity.CUDA]
    with profile(activities=activities) as prof:
        for rc in fresh:
            ev.evaluate(rc)
        torch.cuda.synchronize()
    counts: dict[str, int] = {}
    for evt in prof.events():  # the device's side: "Memcpy HtoD (Pageable -> Device)"...
        if evt.name.startswith("Memcpy"):
            counts[evt.name] = counts.get(evt.name, 0) + 1
    rows = [{"copy": k, "per_trial": v / len(fresh)} for k, v in sorted(counts.items())]
    return rows or [{"copy": "none", "per_trial": 0.0}]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=200)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("bench_gpu: no CUDA device on this machine; nothing measured (skipped)")
        return 0
    out: dict[str, Any] = {
        "machine": f"{torch.cuda.get_device_name()}, torch {torch.__version__}",
        "latency": bench_latency(args.repeats),
        "search": bench_search(3),
        "transfers": bench_transfers(),
    }
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print(out["machine"])
    for key in ("latency", "search", "transfers"):
        rows = out[key]
        print(f"\n### {key}\n")
        print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
