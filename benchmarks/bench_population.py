"""Population evaluation (issue 15, item 4): many configs in one call against one at a time.

Run from the repository root::

    python benchmarks/bench_population.py            # Markdown tables
    python benchmarks/bench_population.py --quick    # fewer repeats, a 1,000-point subset

The model is jsc-tiny on 512 seeded Gaussian samples with 5 labels (the JSC file cannot be
downloaded here; a trial's cost does not depend on the values), the metrics a search of that
space measures (``prepare_search``: its objectives plus the report's columns). Parts:

1. MASE lab 3's 16-point space (``data_in`` and ``weight`` of the linear layer from
   {(16,8), (8,6), (8,4), (4,2)}): ``Evaluator.evaluate_many`` of all 16 configs against 16
   ``Evaluator.evaluate`` calls, the two interleaved (order alternating) in one process, and
   the results compared dict for dict every repeat. Beside them, interleaved too, the part
   ``evaluate_many`` still spends per config (the slot fill and the analytic metrics, read
   from each config's graph as ``evaluate`` reads them), which bounds its speed-up.
2. A 10^4-point per-layer space of jsc-tiny (``data_in`` and ``weight`` of the BatchNorm and
   of the linear layer, each from widths 3..12 with frac_width = width // 2): every point
   resolved and evaluated with ``evaluate_many``, wall time; beside it, one evaluation at a
   time on a seeded sample of the points (interleaved in blocks), which must give the same
   dicts, for the per-config ratio.

Each figure is the median over the repeats; only ratios within one run mean anything on a
shared machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import time
from typing import Any

import torch

from quantsearch.data import Split
from quantsearch.graph import trace
from quantsearch.metrics import compute_metrics
from quantsearch.metrics.specs import metric_spec
from quantsearch.models import build_model
from quantsearch.search.api import prepare_search
from quantsearch.search.config import parse_search_config
from quantsearch.search.evaluate import Evaluation, Evaluator

LAB_PAIRS = [[16, 8], [8, 6], [8, 4], [4, 2]]
LAB_SPACE = {"choices": {"linear": {"data_in": LAB_PAIRS, "weight": LAB_PAIRS}}}
WIDE = [[w, w // 2] for w in range(3, 13)]
LAYER_SPACE = {
    "by": "name",
    "choices": {
        kind: {"data_in": WIDE, "weight": WIDE, "bias": "same_as_weight"}
        for kind in ("batch_norm1d", "linear")
    },
}
OBJ = {
    "accuracy": {"direction": "maximize", "weight": 1.0},
    "model_size_bits": {"direction": "minimize", "weight": 0.2, "relative_to_baseline": True},
}


def _setup(space_table: dict[str, Any]) -> tuple[Any, Evaluator]:
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    data = Split(torch.randn(512, 16, generator=g), torch.randint(0, 5, (512,), generator=g))
    gm = trace(build_model("jsc-tiny").eval(), data.x[:8])
    cfg = parse_search_config({"space": space_table, "objectives": OBJ})
    space, evaluator = prepare_search(gm, cfg, data)
    return space, evaluator


def _same(a: list[Evaluation], b: list[Evaluation]) -> bool:
    return [(x.metrics, x.error) for x in a] == [(x.metrics, x.error) for x in b]


def bench_lab(repeats: int) -> dict[str, Any]:
    space, ev = _setup(LAB_SPACE)
    configs = [ev.resolve(space.layer_formats(space.point(i))) for i in range(space.size)]
    ev.evaluate_many(configs), [ev.evaluate(rc) for rc in configs]  # warm both paths
    static = [m for m in ev.metrics if metric_spec(m).kind == "static"]
    pm = ev.prepared()
    times: dict[str, list[float]] = {"many": [], "single": [], "static": []}
    for r in range(repeats):
        order = ["many", "single", "static"]
        for path in order if r % 2 == 0 else order[::-1]:
            t0 = time.perf_counter()
            if path == "many":
                got = ev.evaluate_many(configs)
            elif path == "single":
                want = [ev.evaluate(rc) for rc in configs]
            else:  # what evaluate_many still does per config: slot fill + analytic metrics
                for rc in configs:
                    compute_metrics(pm.apply_(rc), static)
            times[path].append(time.perf_counter() - t0)
        if not _same(got, want):
            raise SystemExit("evaluate_many differs from evaluate on the lab space")
    many, single, per_config = (statistics.median(times[k]) for k in ("many", "single", "static"))
    return {
        "configs": len(configs),
        "metrics": list(ev.metrics),
        "many_ms": many * 1e3,
        "single_ms": single * 1e3,
        "speedup": single / many,
        "static_ms": per_config * 1e3,
        "ceiling": single / per_config,
    }


def bench_enumeration(sample: int, repeats: int) -> dict[str, Any]:
    space, ev = _setup(LAYER_SPACE)
    t0 = time.perf_counter()
    configs = [ev.resolve(space.layer_formats(space.point(i))) for i in range(space.size)]
    resolve_s = time.perf_counter() - t0
    picked = sorted(random.Random(0).sample(range(space.size), sample))
    subset = [configs[i] for i in picked]
    ev.evaluate_many(subset[:16]), [ev.evaluate(rc) for rc in subset[:16]]  # warm both paths
    whole_s: list[float] = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        every = ev.evaluate_many(configs)
        whole_s.append(time.perf_counter() - t0)
    many_s: list[float] = []
    single_s: list[float] = []
    block = 100
    for start in range(0, sample, block):  # interleaved in blocks, order alternating
        part = subset[start : start + block]
        for path in ("many", "single") if (start // block) % 2 == 0 else ("single", "many"):
            t0 = time.perf_counter()
            if path == "many":
                got = ev.evaluate_many(part)
                many_s.append(time.perf_counter() - t0)
            else:
                want = [ev.evaluate(rc) for rc in part]
                single_s.append(time.perf_counter() - t0)
        if not _same(got, want) or not _same(
            [every[i] for i in picked[start : start + block]], want
        ):
            raise SystemExit("evaluate_many differs from evaluate on the per-layer space")
    whole = statistics.median(whole_s)
    return {
        "points": space.size,
        "resolve_s": resolve_s,
        "evaluate_many_s": whole,
        "total_s": resolve_s + whole,
        "sample": sample,
        "many_us_per_config": sum(many_s) / sample * 1e6,
        "single_us_per_config": sum(single_s) / sample * 1e6,
        "single_extrapolated_s": resolve_s + sum(single_s) / sample * space.size,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=21, help="lab repeats (median)")
    parser.add_argument("--quick", action="store_true", help="5 lab repeats, 1,000-point sample")
    args = parser.parse_args()
    torch.set_num_threads(1)
    repeats = 5 if args.quick else args.repeats
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"Python {platform.python_version()}, torch {torch.__version__} "
        f"({torch.get_num_threads()} thread), {os.cpu_count()} CPUs, load {load:.1f}\n"
    )
    lab = bench_lab(repeats)
    print(f"## Lab space: {lab['configs']} configs, metrics {lab['metrics']}\n")
    print(
        "| evaluate_many ms | 16 x evaluate ms | speed-up | of which per config: slot fill + "
        "analytic metrics, ms | speed-up bound by it |\n|---|---|---|---|---|"
    )
    print(
        f"| {lab['many_ms']:.2f} | {lab['single_ms']:.2f} | {lab['speedup']:.2f}x | "
        f"{lab['static_ms']:.2f} | {lab['ceiling']:.2f}x |\n"
    )
    en = bench_enumeration(1000 if args.quick else 2000, 1 if args.quick else 3)
    print(f"## Per-layer space: {en['points']:,} points, all evaluated\n")
    print(
        "| resolve s | evaluate_many s | total s | us/config many | us/config single | "
        "speed-up | one at a time, extrapolated s |\n|---|---|---|---|---|---|---|"
    )
    print(
        f"| {en['resolve_s']:.2f} | {en['evaluate_many_s']:.2f} | {en['total_s']:.2f} | "
        f"{en['many_us_per_config']:.0f} | {en['single_us_per_config']:.0f} | "
        f"{en['single_us_per_config'] / en['many_us_per_config']:.2f}x | "
        f"{en['single_extrapolated_s']:.1f} |"
    )
    print(f"\nload at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
