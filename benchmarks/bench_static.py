"""Analytic (static) metrics of configs of a known structure: ``StaticMetrics.values`` per config.

Run from the repository root::

    python benchmarks/bench_static.py                  # Markdown table
    python benchmarks/bench_static.py --against HEAD~1 # also an earlier commit's StaticMetrics

Workloads (each figure: microseconds per config, the median over the repeats):

1. ``lab``: MASE lab 3's 16 configs of jsc-tiny (``data_in`` and ``weight`` of the linear layer
   from {(16,8), (8,6), (8,4), (4,2)}, ``bias = "same_as_weight"``, as
   ``examples/jsc_tiny.toml``), resolved by the search's evaluator; metrics those of that search.

   - ``hit``: every node's entries met before (the memo warmed with the same 16), each
     config once, between the other paths' work (as ``evaluate_many`` prices a population
     after its forward pass); ``hit, 20 times in a row``: the same, the caches warm;
   - ``new node``: a fresh memo, its first config measured untimed, then the 15 others, each
     bringing a linear layer's formats not met before (priced alone).
2. ``cnn-digits`` and ``mlp-digits`` with every registered static metric: every quantizable
   node quantized, each role from 4 fixed-point formats (one structure), seeded:

   - ``hit``: new combinations of per-node formats all met before (the memo warmed on 64
     configs; each of the 32 timed takes each node's formats from one of them);
   - ``new node``: a warmed memo, each config one node's format changed to one not met before.

Each path is timed against the path before the memo (``compute_metrics(pm.apply_(rc))``: a
slot fill and the passes) interleaved in one process, order alternating, and every value is
checked equal (``==``) to it. ``--against REV`` also loads ``metrics/static.py`` as it was at
commit ``REV`` (``git show``, into memory) and times its ``StaticMetrics`` the same way,
interleaved: the before/after ratio of this one run. Only ratios within one run mean anything
on a shared machine.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import random
import statistics
import subprocess
import sys
import time
import types
from collections.abc import Callable
from functools import partial
from typing import Any

import torch

from quantsearch.data import Split
from quantsearch.formats import FixedPoint
from quantsearch.graph import info, trace
from quantsearch.metrics import compute_metrics, metric_specs
from quantsearch.metrics.specs import metric_spec
from quantsearch.metrics.static import StaticMetrics
from quantsearch.models import build_model
from quantsearch.passes.transform import QUANTIZERS, LayerQuant, ResolvedConfig
from quantsearch.passes.transform.slots import PreparedModel
from quantsearch.search.api import prepare_search
from quantsearch.search.config import parse_search_config

LAB_PAIRS = [[16, 8], [8, 6], [8, 4], [4, 2]]
LAB_SPACE = {
    "choices": {"linear": {"data_in": LAB_PAIRS, "weight": LAB_PAIRS, "bias": "same_as_weight"}}
}
OBJ = {
    "accuracy": {"direction": "maximize", "weight": 1.0},
    "model_size_bits": {"direction": "minimize", "weight": 0.2, "relative_to_baseline": True},
}
STATIC = [s.name for s in metric_specs() if s.kind == "static"]
FORMATS = [FixedPoint(w, w // 2) for w in (4, 6, 8, 12)]
NEW = [FixedPoint(w, w // 2) for w in (3, 5, 7, 9, 10, 11, 13, 14)]  # never in FORMATS
LOOP = 20

Pricer = type[StaticMetrics]


def _at(rev: str) -> Pricer:
    """``StaticMetrics`` as ``metrics/static.py`` was at commit ``rev`` (read from git)."""
    src = subprocess.run(
        ["git", "show", f"{rev}:src/quantsearch/metrics/static.py"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    mod = types.ModuleType(f"static_at_{rev}")
    sys.modules[mod.__name__] = mod  # dataclasses look their module up
    exec(compile(src, f"static.py@{rev}", "exec"), mod.__dict__)
    cls: Pricer = mod.StaticMetrics
    return cls


def _lab() -> tuple[Any, list[ResolvedConfig], list[str]]:
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    data = Split(torch.randn(512, 16, generator=g), torch.randint(0, 5, (512,), generator=g))
    gm = trace(build_model("jsc-tiny").eval(), data.x[:8])
    cfg = parse_search_config({"space": LAB_SPACE, "objectives": OBJ})
    space, ev = prepare_search(gm, cfg, data)
    configs = [ev.resolve(space.layer_formats(space.point(i))) for i in range(space.size)]
    names = [m for m in ev.metrics if metric_spec(m).kind == "static"]
    return ev.gm, configs, names


def _layer_configs(gm: Any, n: int, seed: int) -> list[ResolvedConfig]:
    """``n`` configs quantizing every quantizable node, each role from :data:`FORMATS`."""
    rng = random.Random(seed)
    nodes = [nd for nd in gm.graph.nodes if info(nd).op_kind in QUANTIZERS.names()]
    out = []
    for _ in range(n):
        layers = {}
        for nd in nodes:
            roles = QUANTIZERS.get(info(nd).op_kind).roles
            layers[nd.name] = LayerQuant(**{r: rng.choice(FORMATS) for r in roles})
        out.append(ResolvedConfig(layers))
    return out


def _recombine(configs: list[ResolvedConfig], n: int, seed: int) -> list[ResolvedConfig]:
    """``n`` new combinations of the per-node formats of ``configs`` (each node's from one of
    them, drawn at random): every node's formats met, the combination (almost surely) not."""
    rng = random.Random(seed)
    return [ResolvedConfig({k: rng.choice(configs)[k] for k in configs[0]}) for _ in range(n)]


def _one_new(configs: list[ResolvedConfig], seed: int) -> list[ResolvedConfig]:
    """Each config with one node's role set to a format of :data:`NEW` (never met before)."""
    rng = random.Random(seed)
    out = []
    for rc, new in zip(configs, rng.choices(NEW, k=len(configs)), strict=True):
        name = rng.choice(list(rc))
        role = rng.choice([r for r, _ in rc[name].items()])
        layers = dict(rc.items())
        layers[name] = LayerQuant(**{**dict(rc[name].items()), role: new})
        out.append(ResolvedConfig(layers))
    return out


def _time(fn: Callable[[], Any]) -> tuple[float, Any]:
    """``fn``'s wall time with the cyclic garbage collector off, as ``timeit`` runs (a
    collection of the previous path's garbage would land in whichever path runs next)."""
    gc.collect()
    gc.disable()
    try:
        t0 = time.perf_counter()
        got = fn()
        return time.perf_counter() - t0, got
    finally:
        gc.enable()


def bench(
    gm: Any,
    names: list[str],
    warm: list[ResolvedConfig],
    hits: list[ResolvedConfig],
    news: list[ResolvedConfig] | None,
    pricers: dict[str, Pricer],
    repeats: int,
) -> dict[str, dict[str, float]]:
    """Per-config microseconds of each pricer's ``hit`` and ``new node`` paths and of the
    passes, interleaved. ``news`` None: the lab's fresh memo, ``warm[0]`` measured first."""
    pm = PreparedModel(gm)
    want_hits = [compute_metrics(pm.apply_(rc), names) for rc in hits]
    want_news = [compute_metrics(pm.apply_(rc), names) for rc in (news or hits[1:])]
    warmed: dict[str, StaticMetrics] = {}
    for key, cls in pricers.items():
        sm = warmed[key] = cls(gm, names)
        for rc in warm:
            sm.values(rc, partial(pm.apply_, rc))
    paths = [("passes", "hit"), ("passes", "new")]
    paths += [(k, p) for k in pricers for p in ("hit", "loop", "new")]
    times: dict[tuple[str, str], list[float]] = {p: [] for p in paths}
    for r in range(repeats):
        for key, path in paths if r % 2 == 0 else paths[::-1]:
            todo = hits if path in ("hit", "loop") else (news or hits[1:])
            want = want_hits if path in ("hit", "loop") else want_news
            if key == "passes":
                s, got = _time(
                    lambda todo=todo: [compute_metrics(pm.apply_(rc), names) for rc in todo]
                )
            elif path == "hit":
                sm = warmed[key]
                before = sm.hits
                s, got = _time(lambda sm=sm: [sm.values(rc, partial(pm.apply_, rc)) for rc in hits])
                if sm.hits - before != len(hits):
                    raise SystemExit(f"{key}: {sm.hits - before} of {len(hits)} were memo hits")
            elif path == "loop":  # the same, LOOP times in a row: caches warm
                sm = warmed[key]
                s, every = _time(
                    lambda sm=sm: [
                        [sm.values(rc, partial(pm.apply_, rc)) for rc in hits] for _ in range(LOOP)
                    ]
                )
                got, s = every[-1], s / LOOP
            else:
                sm = pricers[key](gm, names)
                for rc in warm if news is not None else warm[:1]:
                    sm.values(rc, partial(pm.apply_, rc))
                s, got = _time(
                    lambda sm=sm, todo=todo: [sm.values(rc, partial(pm.apply_, rc)) for rc in todo]
                )
                if news is None and sm.partial != len(todo):
                    raise SystemExit(f"{key}: {sm.partial} of {len(todo)} priced as new nodes")
            if got != want:
                raise SystemExit(f"{key} {path}: values differ from the passes'")
            times[(key, path)].append(s / len(todo))
    out: dict[str, dict[str, float]] = {}
    for (key, path), ts in times.items():
        out.setdefault(key, {})[path] = statistics.median(ts) * 1e6
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=31, help="repeats (median)")
    parser.add_argument("--against", metavar="REV", help="also time static.py at commit REV")
    args = parser.parse_args()
    torch.set_num_threads(1)
    pricers: dict[str, Pricer] = {"now": StaticMetrics}
    if args.against:
        pricers[args.against] = _at(args.against)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"Python {platform.python_version()}, torch {torch.__version__}, "
        f"{os.cpu_count()} CPUs, load {load:.1f}\n"
    )
    rows = []
    gm, lab, names = _lab()
    rows.append(
        ("jsc-tiny lab, 16 configs", names, bench(gm, names, lab, lab, None, pricers, args.repeats))
    )
    for model in ("mlp-digits", "cnn-digits"):
        torch.manual_seed(0)
        shape = (8, 1, 8, 8) if model.startswith("cnn") else (8, 64)
        gm = trace(build_model(model).eval(), torch.randn(shape))
        warm = _layer_configs(gm, 64, seed=1)
        hits = _recombine(warm, 32, seed=2)
        news = _one_new(warm[:32], seed=3)
        got = bench(gm, STATIC, warm, hits, news, pricers, args.repeats)
        rows.append((f"{model}, per-layer configs", STATIC, got))
    keys = list(pricers)
    head = "| workload | path | passes (slot fill + passes) |"
    head += "".join(f" {k} |" for k in keys) + " passes / now |"
    if args.against:
        head += f" {args.against} / now |"
    print(head)
    print("|---" * (head.count("|") - 1) + "|")
    for label, _, got in rows:
        for path in ("hit", "loop", "new"):
            p = got["passes"].get(path)
            name = f"hit, {LOOP} times in a row" if path == "loop" else path
            line = f"| {label} | {name} | " + (f"{p:.1f} us |" if p else "- |")
            line += "".join(f" {got[k][path]:.1f} us |" for k in keys)
            line += f" {p / got['now'][path]:.1f}x |" if p else " - |"
            if args.against:
                line += f" **{got[args.against][path] / got['now'][path]:.2f}x** |"
            print(line)
    print(f"\nmetrics: lab {rows[0][1]}; zoo models {STATIC}")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"load at the end {load:.1f}")


if __name__ == "__main__":
    main()
