"""Search throughput: MASE lab 3's search on quantsearch, and the lab's own loop beside it.

Run from the repository root::

    python benchmarks/bench_search.py            # Markdown tables
    python benchmarks/bench_search.py --quick    # fewer repeats and no 1000-trial runs

The work is MASE's lab-3 search: jsc-tiny, the 16-point space (``data_in`` and ``weight`` of the
linear layer from {(16,8), (8,6), (8,4), (4,2)}), 512 validation samples per trial. The JSC file
cannot be downloaded here, so the 512 samples are seeded Gaussian features with 5 labels: the
cost of a trial does not depend on the values. Parts:

1. quantsearch on that space with the persistent default storage (a journal file): trials/s
   over the trial loop (first trial's start to last trial's end, from the study's timestamps)
   and the whole ``search()`` call (trace, float baseline, storage set-up included). Each on
   two paths, A/B interleaved in one run: ``slots`` (production: the prepared model's quantizer
   slots filled per trial) and ``rebuild`` (before: ``quantize()`` builds and compiles a new
   GraphModule per trial), with the speed-up over ``rebuild``.
2. The lab's own loop, written here as the lab wrote it: per config ``copy.deepcopy`` of the
   model, a fresh trace, quantize, a ``DataLoader`` over the 512 samples (batch 128, with and
   without worker processes), ``time.time()`` around each forward, accuracy and loss per batch;
   and MASE's own loop (``chop``) when MASE is installed (it is left out otherwise).
3. mlp-digits and cnn-digits on the whole validation split (360 samples): a trial's evaluation
   and a search trial's cost all included against one float evaluation (forward + accuracy +
   loss) of the same samples, on both paths.
4. Bookkeeping (sampler + storage + cache, i.e. a trial's time minus its evaluation) per trial
   around trial 10, 100 and 1000, for random and TPE, as a share of the trial time.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from quantsearch.data import Split, load_dataset
from quantsearch.graph import trace
from quantsearch.metrics import compute_metrics
from quantsearch.models import build_model
from quantsearch.passes.transform import ResolvedConfig, quantize
from quantsearch.search.api import search
from quantsearch.search.evaluate import Evaluator

LAB_PAIRS = [[16, 8], [8, 6], [8, 4], [4, 2]]
LAB_SPACE = {"choices": {"linear": {"data_in": LAB_PAIRS, "weight": LAB_PAIRS}}}
OBJ = {"accuracy": {"direction": "maximize"}}


class _Rebuild:
    """The path before issue 15: ``quantize(gm, config)`` every trial (a new GraphModule,
    its forward generated and compiled by torch.fx), standing in for the slot-filled module."""

    def __init__(self, gm: torch.fx.GraphModule, calibration: Any) -> None:
        self.gm, self.calibration = gm, calibration

    def apply_(self, rc: ResolvedConfig) -> torch.fx.GraphModule:
        return quantize(self.gm, rc, calibration=self.calibration)


@contextlib.contextmanager
def path(name: str) -> Iterator[None]:
    """Run searches on the ``slots`` path (production) or the ``rebuild`` path (before)."""
    if name == "slots":
        yield
        return
    real = Evaluator.prepared
    Evaluator.prepared = lambda self: _Rebuild(self.gm, self.calibration)  # type: ignore[assignment,method-assign,return-value]
    try:
        yield
    finally:
        Evaluator.prepared = real  # type: ignore[method-assign]


PATHS = ("rebuild", "slots")


def jsc_like(n: int = 512, seed: int = 0) -> Split:
    g = torch.Generator().manual_seed(seed)
    return Split(torch.randn(n, 16, generator=g), torch.randint(0, 5, (n,), generator=g))


def _trained(name: str) -> tuple[torch.nn.Module, Any]:
    """A quickly trained zoo model (full-batch Adam) and its dataset splits."""
    model = build_model(name)
    data = load_dataset("digits", input_shape=(1, 8, 8) if name == "cnn-digits" else None)
    torch.manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(40):
        opt.zero_grad()
        F.cross_entropy(model(data.train.x), data.train.y).backward()  # type: ignore[no-untyped-call]
        opt.step()
    return model.eval(), data


def loop_rate(result: Any) -> tuple[float, float]:
    """(trials/s, ms/trial) from the first trial's start to the last trial's end."""
    trials = result.study.get_trials(deepcopy=False)
    start = min(t.datetime_start for t in trials)
    end = max(t.datetime_complete for t in trials)
    span = (end - start).total_seconds()
    return len(trials) / span, span * 1000 / len(trials)


def bench_quantsearch(repeats: int) -> list[dict[str, Any]]:
    model = build_model("jsc-tiny").eval()
    data = jsc_like()
    rows = []
    for strategy in ("brute_force", "random", "tpe"):
        got: dict[str, dict[str, list[float]]] = {
            p: {"rate": [], "ms": [], "wall": [], "trials": []} for p in PATHS
        }
        for r in range(repeats + 1):
            for p in PATHS if r % 2 else PATHS[::-1]:  # A/B interleaved, order alternating
                with path(p), tempfile.TemporaryDirectory() as d:
                    t0 = time.perf_counter()
                    res = search(
                        model, data, space=LAB_SPACE, objectives=OBJ, strategy=strategy,
                        n_trials=16 if strategy == "brute_force" else 100, seed=r,
                        run_dir=Path(d),
                    )  # fmt: skip
                    elapsed = time.perf_counter() - t0
                    rate, ms = loop_rate(res)
                if r == 0:
                    continue  # warm-up: first imports and allocations
                for k, v in (("rate", rate), ("ms", ms), ("wall", elapsed)):
                    got[p][k].append(v)
                got[p]["trials"].append(len(res.trials))
        for p in PATHS:
            g = {k: statistics.median(v) for k, v in got[p].items()}
            rows.append(
                {
                    "strategy": strategy,
                    "path": p,
                    "trials": g["trials"],
                    "evaluations": 16,
                    "trials_per_s": g["rate"],
                    "ms_per_trial": g["ms"],
                    "search_call_s": g["wall"],
                    "speed-up": g["rate"] / statistics.median(got["rebuild"]["rate"]),
                }
            )
    return rows


def lab_loop(num_workers: int, repeats: int) -> dict[str, Any]:
    """The lab's loop: deep-copy, re-trace, quantize, DataLoader, time.time() per batch."""
    model = build_model("jsc-tiny").eval()
    data = jsc_like()
    loader = DataLoader(TensorDataset(data.x, data.y), batch_size=128, num_workers=num_workers)
    configs = [
        {"seq_blocks_2": {
            "data_in": {"format": "fixed", "width": a[0], "frac_width": a[1]},
            "weight": {"format": "fixed", "width": w[0], "frac_width": w[1]},
        }}
        for a in LAB_PAIRS
        for w in LAB_PAIRS
    ]  # fmt: skip
    rates = []
    for r in range(repeats + 1):
        t0 = time.perf_counter()
        for config in configs:
            mg = trace(copy.deepcopy(model), data.x[:8])
            qgm = quantize(mg, ResolvedConfig.from_dict(config, gm=mg))
            accs, losses, latency = [], [], 0.0
            with torch.no_grad():
                for xs, ys in loader:
                    start = time.time()
                    preds = qgm(xs)
                    end = time.time()
                    losses.append(F.cross_entropy(preds, ys))
                    accs.append((preds.argmax(1) == ys).float().mean())
                    latency += end - start
            _ = (sum(accs) / len(accs), sum(losses) / len(losses))
        if r:
            rates.append(len(configs) / (time.perf_counter() - t0))
    rate = statistics.median(rates)
    return {
        "loop": f"lab loop, DataLoader num_workers={num_workers}",
        "trials_per_s": rate,
        "ms_per_trial": 1000 / rate,
    }


def mase_loop(repeats: int) -> dict[str, Any] | None:
    """MASE's own lab-3 loop when MASE (``chop``) is installed, else ``None``: per config a deep
    copy of the MaseGraph, ``quantize_transform_pass``, the DataLoader loop (workers off).

    Not exercised on the machine of BENCHMARKS.md (MASE is not installed there); it follows the
    lab's code (``MaseGraph``, ``init_metadata_analysis_pass``,
    ``add_common_metadata_analysis_pass``, ``quantize_transform_pass`` with ``by = "type"``).
    """
    try:
        from chop.ir.graph.mase_graph import MaseGraph  # type: ignore[import-not-found,unused-ignore]
        from chop.passes.graph import (  # type: ignore[import-not-found,unused-ignore]
            add_common_metadata_analysis_pass,
            init_metadata_analysis_pass,
            quantize_transform_pass,
        )
    except ImportError:
        return None
    model = build_model("jsc-tiny").eval()
    data = jsc_like()
    loader = DataLoader(TensorDataset(data.x, data.y), batch_size=128, num_workers=0)
    mg = MaseGraph(model=model)
    mg, _ = init_metadata_analysis_pass(mg, None)
    mg, _ = add_common_metadata_analysis_pass(mg, {"dummy_in": {"x": data.x[:8]}})

    def args(a: list[int], w: list[int]) -> dict[str, Any]:
        cfg = {"name": "integer", "data_in_width": a[0], "data_in_frac_width": a[1],
               "weight_width": w[0], "weight_frac_width": w[1],
               "bias_width": w[0], "bias_frac_width": w[1]}  # fmt: skip
        return {"by": "type", "default": {"config": {"name": None}}, "linear": {"config": cfg}}

    rates = []
    for r in range(repeats + 1):
        t0 = time.perf_counter()
        for a in LAB_PAIRS:
            for w in LAB_PAIRS:
                qmg, _ = quantize_transform_pass(copy.deepcopy(mg), args(a, w))
                with torch.no_grad():
                    for xs, ys in loader:
                        preds = qmg.model(xs)
                        _ = (F.cross_entropy(preds, ys), (preds.argmax(1) == ys).float().mean())
        if r:
            rates.append(16 / (time.perf_counter() - t0))
    rate = statistics.median(rates)
    return {
        "loop": "MASE lab 3 (chop), workers off",
        "trials_per_s": rate,
        "ms_per_trial": 1000 / rate,
    }


def bench_vs_float(repeats: int) -> list[dict[str, Any]]:
    """A trial's cost against a float evaluation of the same samples, on both paths.

    ``float eval``: ``compute_metrics`` (accuracy, loss) of the float model; ``trial eval``: the
    Evaluator on configs of the space, cycled (so the slot path meets formats it has memoised,
    as a search does); the three interleaved 50 times. ``all in``: a 60-trial random search
    with the journal default, per trial from the study's timestamps.
    """
    rows = []
    spaces: dict[str, dict[str, Any]] = {
        "mlp-digits": LAB_SPACE,
        "cnn-digits": {
            "by": "name",
            "choices": {
                "conv2d": {"data_in": LAB_PAIRS, "weight": LAB_PAIRS},
                "linear": {"data_in": LAB_PAIRS, "weight": LAB_PAIRS},
            },
        },
    }
    for name, space in spaces.items():
        model, data = _trained(name)
        val = data.val
        gm = trace(model, val.x[:8])
        ev = Evaluator(gm, val, ["accuracy", "loss"])
        configs = [
            ResolvedConfig.from_dict(
                {n.name: {"data_in": _fx(a), "weight": _fx(w)}
                 for n in gm.graph.nodes if n.op == "call_module"
                 and type(gm.get_submodule(str(n.target))).__name__ in ("Linear", "Conv2d")},
                gm=gm,
            )
            for a in LAB_PAIRS for w in LAB_PAIRS
        ]  # fmt: skip
        rebuild = _Rebuild(gm, None)
        times: dict[str, list[float]] = {"float": [], "rebuild": [], "slots": []}
        for i in range(50):
            rc = configs[i % len(configs)]
            for k in times:
                t0 = time.perf_counter()
                if k == "float":
                    compute_metrics(gm, ["accuracy", "loss"], data=val)
                elif k == "slots":
                    ev.evaluate(rc)
                else:
                    compute_metrics(rebuild.apply_(rc), ev.metrics, data=val)
                times[k].append((time.perf_counter() - t0) * 1000)
        f = statistics.median(times["float"])
        for p in PATHS:
            per_trial = []
            for r in range(repeats):
                with path(p), tempfile.TemporaryDirectory() as d:
                    res = search(
                        model, val, space=space, objectives=OBJ, strategy="random",
                        n_trials=60, seed=100 + r, run_dir=Path(d), metrics=["accuracy", "loss"],
                    )  # fmt: skip
                    per_trial.append(loop_rate(res)[1])
            t = statistics.median(per_trial)
            e = statistics.median(times[p])
            rows.append(
                {
                    "model": name,
                    "path": p,
                    "samples": len(val),
                    "float_eval_ms": f,
                    "trial_eval_ms": e,
                    "eval / float": e / f,
                    "trial_all_in_ms": t,
                    "all in / float": t / f,
                }
            )
    return rows


def _fx(pair: list[int]) -> dict[str, Any]:
    return {"format": "fixed", "width": pair[0], "frac_width": pair[1]}


def bench_bookkeeping(counts: list[int]) -> list[dict[str, Any]]:
    model = build_model("jsc-tiny").eval()
    data = jsc_like()
    widths = {"width": list(range(2, 17)), "frac_width": list(range(0, 9))}
    space = {
        "by": "name",
        "choices": {"linear": {"data_in": widths, "weight": widths, "bias": widths}},
    }
    rows = []
    for strategy in ("random", "tpe"):
        with tempfile.TemporaryDirectory() as d:
            res = search(
                model, data, space=space, objectives=OBJ, strategy=strategy, n_trials=max(counts),
                run_dir=Path(d), metrics=["accuracy", "loss"],
            )  # fmt: skip
            assert res.study is not None
            trials = sorted(res.study.get_trials(deepcopy=False), key=lambda t: t.number)
        for n in counts:
            window = trials[max(1, n - max(2, n // 10)) : n]
            totals, books = [], []
            for t in window:
                prev, done = trials[t.number - 1].datetime_complete, t.datetime_complete
                assert prev is not None and done is not None
                total = (done - prev).total_seconds() * 1000
                ev = float(t.user_attrs["qs"].get("eval_seconds", 0.0)) * 1000
                totals.append(total)
                books.append(total - ev)
            tot, book = statistics.median(totals), statistics.median(books)
            rows.append(
                {
                    "strategy": strategy,
                    "at_trial": n,
                    "trial_ms": tot,
                    "bookkeeping_ms": book,
                    "share": book / tot,
                }
            )
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    cols = list(rows[0])
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        out.append(
            "| "
            + " | ".join(f"{v:.3g}" if isinstance(v, float) else str(v) for v in r.values())
            + " |"
        )
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    repeats = 2 if args.quick else 5
    torch.set_num_threads(1)
    results: dict[str, Any] = {
        "machine": f"{os.cpu_count()} CPUs, Python {platform.python_version()}, torch {torch.__version__}",
        "quantsearch": bench_quantsearch(repeats),
        "lab_loop": [lab_loop(2, repeats), lab_loop(0, repeats)]
        + [r for r in [mase_loop(repeats)] if r is not None],
        "vs_float": bench_vs_float(max(1, repeats // 2)),
        "bookkeeping": bench_bookkeeping([10, 100] if args.quick else [10, 100, 1000]),
    }
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(results["machine"])
    for key in ("quantsearch", "lab_loop", "vs_float", "bookkeeping"):
        print(f"\n### {key}\n")
        print(table(results[key]))


if __name__ == "__main__":
    main()
