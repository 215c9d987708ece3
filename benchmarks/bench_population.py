"""Population evaluation (issue 15, item 4): many configs in one call against one at a time.

Run from the repository root::

    python benchmarks/bench_population.py            # Markdown tables
    python benchmarks/bench_population.py --quick    # fewer repeats, a 1,000-point subset

The model is jsc-tiny on 512 seeded Gaussian samples with 5 labels (the JSC file cannot be
downloaded here; a trial's cost does not depend on the values), the metrics a search of that
space measures (``prepare_search``: its objectives plus the report's columns). Parts:

1. MASE lab 3's 16-point space (``data_in`` and ``weight`` of the linear layer from
   {(16,8), (8,6), (8,4), (4,2)}, the bias in the weight's format: MASE's lab code sets the
   bias's width and frac width to the weight's, and ``examples/jsc_tiny.toml`` has ``bias =
   "same_as_weight"``; with the bias on the weight's grid the population runs the linear
   layer's 16 variants as one batched kernel, exact by the fixed-point bound of
   ``passes/transform/batched.py``): ``Evaluator.evaluate_many`` of all 16 configs against 16
   ``Evaluator.evaluate`` calls, the two interleaved (order alternating) in one process, and
   the results compared dict for dict every repeat. Each repeat resolves the configs anew
   (untimed), as a search's trials are new objects: memos keyed by object identity hit no
   more than they would in a search. Three settings, each its own pair of paths: **first
   call** (the headline: a new evaluator for each path every repeat, built untimed as
   ``prepare_search`` builds a search's, so nothing the call computes was met before: the
   quantized modules, the analytic metrics' structure and entries, the totals); **formats
   met before** (one evaluator kept across repeats, its memo of the analytic metrics' values
   by their totals emptied before each timed call, so only what a later population of a
   search over the same formats would find hits: per-node entries, quantized modules); and
   **warm** (nothing emptied: the same configs' every value met in an earlier repeat, which
   no user's first call sees; the only setting this benchmark timed before). Beside them,
   interleaved too: the first call's floor, the analytic metrics of the 16 priced on a new
   evaluator (its first structure measured on a slot-filled graph, each other config's new
   linear entries by the passes' per-node functions, equal totals once: what
   ``evaluate_many`` and the 16 ``evaluate`` calls each pay on a first call), in the thread's
   CPU time, printed beside a tenth of the 16 single evaluations' CPU time (what 10x leaves
   for the whole population call); the
   analytic metrics of the 16 configs two ways: as ``evaluate_many`` prices them now
   (``Evaluator.static_metrics``: per-node entries memoised across configs, no slot fill for
   a config whose nodes were met) and as it did before (a slot fill and the analysis passes
   on each config's graph, ``compute_metrics(pm.apply_(rc), static)``), checked equal, and
   ``evaluate_many`` of a second, identical evaluator whose memo is off (``max_entries =
   0``: every config misses, which is the path before it plus the look-ups), and its 16
   single evaluations (the single-trial figure with the memo off). And, as a search meets
   them (a new evaluator each search, so an empty memo): the analytic metrics of the 16 with
   a fresh ``StaticMetrics`` (the first config measured on the whole graph, each later one
   bringing a new linear layer priced alone), and the 16 configs resolved by
   ``Evaluator.resolve`` against ``ResolvedConfig.from_dict`` on the graph without the
   evaluator's kept ``GraphView`` (the path before), checked equal.
   The same space with a float bias (``LAB_SPACE_FLOAT_BIAS``, the space this benchmark had
   before): the bias's float32 values lie on no grid coarse enough for the bound, so the
   population runs each variant's own call there; ``evaluate_many`` against 16 ``evaluate``
   calls, interleaved alike.
2. A 10^4-point per-layer space of jsc-tiny (``data_in`` and ``weight`` of the BatchNorm and
   of the linear layer, each from widths 3..12 with frac_width = width // 2): every point
   resolved and evaluated with ``evaluate_many``, wall time, with the memo of analytic
   metrics on and off (alternating); beside it, one evaluation at a
   time on a seeded sample of the points (interleaved in blocks), which must give the same
   dicts, for the per-config ratio.

Each figure is the median over the repeats; only ratios within one run mean anything on a
shared machine. The lab's two main paths are also timed in the thread's CPU time
(``time.thread_time``), which other processes on a loaded machine inflate far less than wall
time (the 16 single calls, being longer, are preempted more often).
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import time
from functools import partial
from typing import Any

import torch

from quantsearch.data import Split
from quantsearch.graph import trace
from quantsearch.metrics import compute_metrics
from quantsearch.metrics.specs import metric_spec
from quantsearch.metrics.static import StaticMetrics
from quantsearch.models import build_model
from quantsearch.passes.transform import ResolvedConfig
from quantsearch.search.api import prepare_search
from quantsearch.search.config import parse_search_config
from quantsearch.search.evaluate import Evaluation, Evaluator

LAB_PAIRS = [[16, 8], [8, 6], [8, 4], [4, 2]]
LAB_SPACE = {
    "choices": {"linear": {"data_in": LAB_PAIRS, "weight": LAB_PAIRS, "bias": "same_as_weight"}}
}
LAB_SPACE_FLOAT_BIAS = {"choices": {"linear": {"data_in": LAB_PAIRS, "weight": LAB_PAIRS}}}
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


def _memo_off(space_table: dict[str, Any]) -> tuple[Evaluator, list[ResolvedConfig]]:
    """A second evaluator like :func:`_setup`'s, its analytic metrics never memoised, and
    the space's configs resolved for it."""
    space, ev = _setup(space_table)
    ev.static_metrics().max_entries = 0
    return ev, [ev.resolve(space.layer_formats(space.point(i))) for i in range(space.size)]


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


def _forget_totals(ev: Evaluator) -> None:
    """Empty ``ev``'s memo of analytic-metric values by their totals (this thread's), which
    would otherwise hit on every config a repeat meets again."""
    ev._local.same = {}


def bench_lab(repeats: int) -> dict[str, Any]:
    space, ev = _setup(LAB_SPACE)
    configs = [ev.resolve(space.layer_formats(space.point(i))) for i in range(space.size)]
    ev.evaluate_many(configs), [ev.evaluate(rc) for rc in configs]  # warm both paths
    static = [m for m in ev.metrics if metric_spec(m).kind == "static"]
    pm, sm = ev.prepared(), ev.static_metrics()
    ev_off, configs_off = _memo_off(LAB_SPACE)
    ev_off.evaluate_many(configs_off)  # warm
    formats = [space.layer_formats(space.point(i)) for i in range(space.size)]
    paths = ["first_many", "first_single", "many", "single", "warm_many", "warm_single"]
    paths += ["first_static", "static", "passes", "memo_off", "single_off", "fresh", "resolve"]
    paths += ["from_dict"]
    times: dict[str, list[float]] = {p: [] for p in paths}
    cpu: dict[str, list[float]] = {p: [] for p in paths[:7]}  # thread CPU time
    for r in range(repeats):
        # new config objects every repeat, as a search's trials are (the population's memos
        # keyed by object identity must not hit where a search's would miss), untimed
        configs = [ev.resolve(f) for f in formats]
        configs_off = [ev_off.resolve(f) for f in formats]
        # a new evaluator for each first-call path, as a search builds one (untimed)
        ev_first = {p: _setup(LAB_SPACE)[1] for p in (*paths[:2], "first_static")}
        first_cfgs = {p: [e.resolve(f) for f in formats] for p, e in ev_first.items()}
        ev_s = ev_first["first_static"]
        bound_s = [rc.bind(ev_s.gm, ev_s.calibration) for rc in first_cfgs["first_static"]]
        for path in paths if r % 2 == 0 else paths[::-1]:
            if path in ("many", "single"):
                _forget_totals(ev)
            elif path in ("memo_off", "single_off"):
                _forget_totals(ev_off)
            c0 = time.thread_time()
            t0 = time.perf_counter()
            if path == "first_many":
                got_first = ev_first[path].evaluate_many(first_cfgs[path])
            elif path == "first_single":
                want_first = [ev_first[path].evaluate(rc) for rc in first_cfgs[path]]
            elif path == "first_static":  # as evaluate_many prices them on a new evaluator
                sm_s, pm_s, same = ev_s.static_metrics(), ev_s.prepared(), ev_s._same_totals()
                floor = [sm_s.values(rc, partial(pm_s.apply_, rc), same=same) for rc in bound_s]
            elif path == "many":
                got = ev.evaluate_many(configs)
            elif path == "warm_many":
                got_warm = ev.evaluate_many(configs)
            elif path == "warm_single":
                want_warm = [ev.evaluate(rc) for rc in configs]
            elif path == "memo_off":
                off = ev_off.evaluate_many(configs_off)
            elif path == "single_off":
                single_off = [ev_off.evaluate(rc) for rc in configs_off]
            elif path == "single":
                want = [ev.evaluate(rc) for rc in configs]
            elif path == "static":  # the analytic metrics as evaluate_many prices them now
                memo = [sm.values(rc, partial(pm.apply_, rc)) for rc in configs]
            elif path == "fresh":  # ... with the empty memo a search starts with
                sm_new = StaticMetrics(ev.gm, ev.metrics)
                first = [sm_new.values(rc, partial(pm.apply_, rc)) for rc in configs]
            elif path == "resolve":
                resolved = [ev.resolve(f) for f in formats]
            elif path == "from_dict":  # as Evaluator.resolve did before: a GraphView each
                plain = [ResolvedConfig.from_dict(f, gm=ev.gm, key="search") for f in formats]
            else:  # as before: a slot fill and the analysis passes per config
                fresh = [compute_metrics(pm.apply_(rc), static) for rc in configs]
            times[path].append(time.perf_counter() - t0)
            if path in cpu:
                cpu[path].append(time.thread_time() - c0)
        if not all(
            _same(x, want) for x in (got, off, single_off, got_warm, want_warm, got_first)
        ) or not _same(want_first, want):
            raise SystemExit("evaluate_many differs from evaluate on the lab space")
        if memo != fresh or first != fresh or floor != fresh:
            raise SystemExit("memoised analytic metrics differ from the passes' on the lab space")
        if [rc.key() for rc in resolved] != [rc.key() for rc in plain]:
            raise SystemExit("Evaluator.resolve differs from ResolvedConfig.from_dict")
    ms = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    cpu_ms = {k: statistics.median(v) * 1e3 for k, v in cpu.items()}
    many, single, static_s, passes_s, off_s, single_off_s, fresh_s, resolve_s, plain_s = (
        statistics.median(times[k]) for k in ["many", "single", *paths[7:]]
    )
    return {
        "batched": ev._local.population.batched_calls > 0,
        "configs": len(configs),
        "metrics": list(ev.metrics),
        "settings": {
            name: (ms[f"{p}many"], ms[f"{p}single"], cpu_ms[f"{p}many"], cpu_ms[f"{p}single"])
            for name, p in (
                ("first call: a new evaluator each path (headline)", "first_"),
                ("formats met before, totals memo emptied", ""),
                ("warm: every value met in an earlier repeat", "warm_"),
            )
        },
        "floor_cpu_ms": cpu_ms["first_static"],
        "many_ms": many * 1e3,
        "single_ms": single * 1e3,
        "speedup": single / many,
        "static_ms": static_s * 1e3,
        "passes_ms": passes_s * 1e3,
        "memo_off_ms": off_s * 1e3,
        "memo_off_speedup": single / off_s,
        "single_off_ms": single_off_s * 1e3,
        "fresh_ms": fresh_s * 1e3,
        "resolve_ms": resolve_s * 1e3,
        "from_dict_ms": plain_s * 1e3,
    }


def bench_pair(space_table: dict[str, Any], repeats: int) -> dict[str, Any]:
    """``evaluate_many`` of a space's configs against one ``evaluate`` each, interleaved."""
    space, ev = _setup(space_table)
    configs = [ev.resolve(space.layer_formats(space.point(i))) for i in range(space.size)]
    ev.evaluate_many(configs), [ev.evaluate(rc) for rc in configs]  # warm both paths
    times: dict[str, list[float]] = {"many": [], "single": []}
    formats = [space.layer_formats(space.point(i)) for i in range(space.size)]
    for r in range(repeats):
        configs = [ev.resolve(f) for f in formats]  # new objects every repeat, as in a search
        for path in ("many", "single") if r % 2 == 0 else ("single", "many"):
            t0 = time.perf_counter()
            if path == "many":
                got = ev.evaluate_many(configs)
            else:
                want = [ev.evaluate(rc) for rc in configs]
            times[path].append(time.perf_counter() - t0)
        if not _same(got, want):
            raise SystemExit("evaluate_many differs from evaluate")
    many, single = (statistics.median(times[k]) for k in ("many", "single"))
    pop = ev._local.population
    return {
        "many_ms": many * 1e3,
        "single_ms": single * 1e3,
        "speedup": single / many,
        "batched": pop.batched_calls > 0,
    }


def bench_enumeration(sample: int, repeats: int) -> dict[str, Any]:
    space, ev = _setup(LAYER_SPACE)
    t0 = time.perf_counter()
    configs = [ev.resolve(space.layer_formats(space.point(i))) for i in range(space.size)]
    resolve_s = time.perf_counter() - t0
    picked = sorted(random.Random(0).sample(range(space.size), sample))
    subset = [configs[i] for i in picked]
    ev.evaluate_many(subset[:16]), [ev.evaluate(rc) for rc in subset[:16]]  # warm both paths
    ev_off, configs_off = _memo_off(LAYER_SPACE)
    ev_off.evaluate_many(configs_off[:16])  # warm
    whole_s: list[float] = []
    off_s: list[float] = []
    for r in range(repeats):
        for memo in (True, False) if r % 2 == 0 else (False, True):
            t0 = time.perf_counter()
            result = ev.evaluate_many(configs) if memo else ev_off.evaluate_many(configs_off)
            (whole_s if memo else off_s).append(time.perf_counter() - t0)
            if memo:
                every = result
            elif not _same(result, every):  # round 0 runs the memo first: every is set
                raise SystemExit("the memo of analytic metrics changes a result")
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
        "memo_off_s": statistics.median(off_s),
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
    print(
        f"## Lab space (bias same_as_weight): {lab['configs']} configs, metrics "
        f"{lab['metrics']}; linear layer batched: {'yes' if lab['batched'] else 'no'}\n"
    )
    print(
        f"| evaluate_many of the {lab['configs']} against {lab['configs']} x evaluate | many ms | "
        "single ms | speed-up | the same in the thread's CPU time (less inflated by other "
        "processes) |\n|---|---|---|---|---|"
    )
    for name, (many_ms, single_ms, cpu_many, cpu_single) in lab["settings"].items():
        print(
            f"| {name} | {many_ms:.2f} | {single_ms:.2f} | **{single_ms / many_ms:.2f}x** | "
            f"{cpu_many:.2f} against {cpu_single:.2f} ms: {cpu_single / cpu_many:.2f}x |"
        )
    first_single_cpu = lab["settings"]["first call: a new evaluator each path (headline)"][3]
    print(
        f"\nFirst call's floor (thread CPU time): the {lab['configs']} configs' analytic "
        f"metrics priced on a new evaluator, which both paths pay, {lab['floor_cpu_ms']:.2f} ms;"
        f" 10x leaves the whole evaluate_many {first_single_cpu / 10:.2f} ms (a tenth of the "
        f"{lab['configs']} single evaluations' {first_single_cpu:.2f} ms)."
    )
    print(
        "\nThe rest with the totals memo emptied, as the second row (memo off: the analytic "
        "metrics' per-node memo too)\n"
    )
    print("| | analytic metrics memoised | memo off (the path before) | ratio |\n|---|---|---|---|")
    print(
        f"| evaluate_many of the {lab['configs']} configs, ms | {lab['many_ms']:.2f} | "
        f"{lab['memo_off_ms']:.2f} | {lab['memo_off_ms'] / lab['many_ms']:.2f}x |"
    )
    print(
        f"| {lab['configs']} x evaluate, ms | {lab['single_ms']:.2f} | "
        f"{lab['single_off_ms']:.2f} | {lab['single_off_ms'] / lab['single_ms']:.2f}x |"
    )
    print(
        f"| analytic metrics of the {lab['configs']} alone, ms (off: slot fill + passes) | "
        f"{lab['static_ms']:.3f} | {lab['passes_ms']:.2f} | "
        f"{lab['passes_ms'] / lab['static_ms']:.1f}x |"
    )
    print(
        f"| analytic metrics of the {lab['configs']} alone, empty memo (a search's), ms | "
        f"{lab['fresh_ms']:.3f} | {lab['passes_ms']:.2f} | "
        f"{lab['passes_ms'] / lab['fresh_ms']:.1f}x |"
    )
    print(
        f"| {lab['configs']} configs resolved, ms (off: from_dict, a GraphView each) | "
        f"{lab['resolve_ms']:.3f} | {lab['from_dict_ms']:.3f} | "
        f"{lab['from_dict_ms'] / lab['resolve_ms']:.1f}x |"
    )
    print(
        f"| evaluate_many against {lab['configs']} x evaluate (same memo setting) | "
        f"{lab['speedup']:.2f}x | {lab['single_off_ms'] / lab['memo_off_ms']:.2f}x | |"
    )
    print()
    fb = bench_pair(LAB_SPACE_FLOAT_BIAS, repeats)
    print("## Lab space with a float bias (the space before; no batched kernel)\n")
    print("| evaluate_many ms | 16 x evaluate ms | speed-up | linear layer batched |")
    print("|---|---|---|---|")
    print(
        f"| {fb['many_ms']:.2f} | {fb['single_ms']:.2f} | **{fb['speedup']:.2f}x** | "
        f"{'yes' if fb['batched'] else 'no'} |\n"
    )
    en = bench_enumeration(1000 if args.quick else 2000, 1 if args.quick else 3)
    print(f"## Per-layer space: {en['points']:,} points, all evaluated\n")
    print(
        "| resolve s | evaluate_many s | total s | evaluate_many, memo off s | "
        "us/config many | us/config single | speed-up | one at a time, extrapolated s |"
        "\n|---|---|---|---|---|---|---|---|"
    )
    print(
        f"| {en['resolve_s']:.2f} | {en['evaluate_many_s']:.2f} | {en['total_s']:.2f} | "
        f"{en['memo_off_s']:.2f} | "
        f"{en['many_us_per_config']:.0f} | {en['single_us_per_config']:.0f} | "
        f"{en['single_us_per_config'] / en['many_us_per_config']:.2f}x | "
        f"{en['single_extrapolated_s']:.1f} |"
    )
    print(f"\nload at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
