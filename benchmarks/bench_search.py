"""Search throughput: MASE lab 3's search on quantsearch, and the lab's own loop beside it.

Run from the repository root::

    python benchmarks/bench_search.py            # Markdown tables
    python benchmarks/bench_search.py --quick    # fewer repeats and no 1000-trial runs
    python benchmarks/bench_search.py --only vs_float --only bookkeeping   # some parts

The work is MASE's lab-3 search: jsc-tiny, the 16-point space (``data_in`` and ``weight`` of the
linear layer from {(16,8), (8,6), (8,4), (4,2)}), 512 validation samples per trial. The JSC file
cannot be downloaded here, so the 512 samples are seeded Gaussian features with 5 labels: the
cost of a trial does not depend on the values. Parts:

1. quantsearch on that space with the persistent default storage (a journal file): trials/s
   over the trial loop (first trial's start to last trial's end, from the study's timestamps)
   and the whole ``search()`` call (trace, float baseline, storage set-up included). Each on
   three paths, interleaved in one run: ``rebuild`` (before issue 15: ``quantize()`` builds
   and compiles a new GraphModule per trial, trials one at a time), ``slots`` (the prepared
   model's quantizer slots filled per trial, every trial through Optuna's ask and tell) and
   ``batched`` (production: slots, and brute force's trials K at a time through
   ``search/batch.py``, each stored as one record), with the speed-up over ``rebuild``.
2. The lab's own loop, written here as the lab wrote it: per config ``copy.deepcopy`` of the
   model, a fresh trace, quantize, a ``DataLoader`` over the 512 samples (batch 128, with and
   without worker processes), ``time.time()`` around each forward, accuracy and loss per batch;
   and MASE's own loop (``chop``) when MASE is installed (it is left out otherwise).
3. mlp-digits and cnn-digits on the whole validation split (360 samples): a trial's evaluation
   and a search trial's cost all included against one float evaluation (forward + accuracy +
   loss) of the same samples: a random search one trial at a time and batched (production),
   and a brute-force search (batched), interleaved, each with the journal default, on a
   per-layer space (lab pairs for every linear and conv layer's ``data_in`` and ``weight``: few
   repeats, so trials are evaluations).
4. Bookkeeping (sampler + storage + cache, i.e. a trial's time minus its evaluation) per trial
   around trial 10, 100 and 1000, for random and TPE on cnn-digits (a per-layer space), each
   one trial at a time (Optuna's ask and tell) and batched (production: TPE one trial a
   batch), as a share of the trial time; the sampler's own share (Optuna's ``sample_*`` calls
   and ``propose_batch``, timed around them) apart.
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
from quantsearch.search.batch import Batches
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
    """Run searches on the ``batched`` path (production), the ``slots`` path (no batches) or the
    ``rebuild`` path (before issue 15: no slots, no batches)."""
    if name == "batched":
        yield
        return
    real, usable = Evaluator.prepared, vars(Batches)["usable"]
    Batches.usable = staticmethod(lambda *a: False)  # type: ignore[assignment,method-assign]
    if name == "rebuild":
        Evaluator.prepared = lambda self: _Rebuild(self.gm, self.calibration)  # type: ignore[assignment,method-assign,return-value]
    try:
        yield
    finally:
        Evaluator.prepared = real  # type: ignore[method-assign]
        Batches.usable = usable  # type: ignore[method-assign]


PATHS = ("rebuild", "slots", "batched")


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
            for p in PATHS if r % 2 else PATHS[::-1]:  # interleaved, order alternating
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
    (one trial at a time, and batched) and a 16-trial brute-force search (batched) with the
    journal default, interleaved, per trial from the study's timestamps.
    """
    rows = []
    for name in ("mlp-digits", "cnn-digits"):
        model, data = _trained(name)
        val = data.val
        gm = trace(model, val.x[:8])
        layers = [
            n.name
            for n in gm.graph.nodes
            if n.op == "call_module"
            and type(gm.get_submodule(str(n.target))).__name__ in ("Linear", "Conv2d")
        ]
        # Per layer (16**3 and 16**4 points): a 60-trial random search repeats few configs,
        # so its trials are evaluations, not cache hits.
        space = {
            "by": "name",
            "choices": {n: {"data_in": LAB_PAIRS, "weight": LAB_PAIRS} for n in layers},
        }
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
        e = statistics.median(times["slots"])
        per_trial: dict[tuple[str, str], list[float]] = {v: [] for v in SEARCHES}
        for r in range(repeats):
            for strategy, p in SEARCHES if r % 2 else SEARCHES[::-1]:  # interleaved
                with path(p), tempfile.TemporaryDirectory() as d:
                    res = search(
                        model, val, space=space, objectives=OBJ, strategy=strategy,
                        n_trials=60 if strategy == "random" else 16, seed=100 + r,
                        run_dir=Path(d), metrics=["accuracy", "loss"],
                    )  # fmt: skip
                    per_trial[strategy, p].append(loop_rate(res)[1])
        for strategy, p in SEARCHES:
            t = statistics.median(per_trial[strategy, p])
            rows.append(
                {
                    "model": name,
                    "search": f"{strategy} ({'one at a time' if p == 'slots' else p})",
                    "samples": len(val),
                    "float_eval_ms": f,
                    "rebuild_eval_ms": statistics.median(times["rebuild"]),
                    "trial_eval_ms": e,
                    "eval / float": e / f,
                    "trial_all_in_ms": t,
                    "all in / float": t / f,
                }
            )
    return rows


# (strategy, path) of the all-in rows: random one trial at a time and batched, brute force batched
SEARCHES = (("random", "slots"), ("random", "batched"), ("brute_force", "batched"))


def _fx(pair: list[int]) -> dict[str, Any]:
    return {"format": "fixed", "width": pair[0], "frac_width": pair[1]}


@contextlib.contextmanager
def sampler_clock(spent: dict[int, float]) -> Iterator[None]:
    """Time Optuna's sampler calls, per trial number, into ``spent`` (seconds); a batch's
    ``propose_batch``, shared evenly among the trials it proposes (the sampler calls it makes
    are inside it: they are not timed again)."""
    import optuna.samplers as S

    from quantsearch.search.strategies.random_batch import BatchRandomSampler
    from quantsearch.search.strategies.tpe import IncrementalTPESampler

    names = ["before_trial", "infer_relative_search_space", "sample_relative"]
    names += ["sample_independent", "after_trial"]
    classes: tuple[type, ...] = (S.RandomSampler, S.TPESampler, IncrementalTPESampler)
    real = {(c, n): vars(c)[n] for c in classes for n in names if n in vars(c)}
    real[BatchRandomSampler, "before_trial"] = BatchRandomSampler.before_trial
    proposers = (BatchRandomSampler, IncrementalTPESampler)
    propose = {c: c.propose_batch for c in proposers}
    inside = [False]  # in a propose_batch: its sampler calls are its time

    def timed(fn: Any) -> Any:
        def call(self: Any, study: Any, trial: Any, *a: Any, **k: Any) -> Any:
            if inside[0]:
                return fn(self, study, trial, *a, **k)
            inside[0] = True  # an override calling its parent's is timed once
            t0 = time.perf_counter()
            try:
                return fn(self, study, trial, *a, **k)
            finally:
                inside[0] = False
                spent[trial.number] = spent.get(trial.number, 0.0) + time.perf_counter() - t0

        return call

    def timed_batch(cls: type) -> Any:
        def call(self: Any, study: Any, k: int) -> Any:
            first = len(study.get_trials(deepcopy=False))
            inside[0] = True
            t0 = time.perf_counter()
            try:
                return propose[cls](self, study, k)
            finally:
                inside[0] = False
                for n in range(first, first + k):
                    spent[n] = spent.get(n, 0.0) + (time.perf_counter() - t0) / k

        return call

    for (c, n), fn in real.items():
        setattr(c, n, timed(fn))
    for c in proposers:
        c.propose_batch = timed_batch(c)  # type: ignore[method-assign]
    try:
        yield
    finally:
        for (c, n), fn in real.items():
            setattr(c, n, fn)
        for c in proposers:
            c.propose_batch = propose[c]  # type: ignore[method-assign]


def bench_bookkeeping(counts: list[int], repeats: int = 1) -> list[dict[str, Any]]:
    """Per trial around trial n: its time, its evaluation, the sampler's calls, and the rest
    (storage, cache, Optuna's trial protocol, the record), as means over the trials before n
    (about a tenth of n, at least 2), widened to whole batches: a batch's trials share its
    start and its evaluation (each records its share), and are stored one after another at
    its end. The time of the window runs from the end of the trial before it to its end.
    ``repeats`` runs of each search, interleaved (seeds 0, 1, ...): medians of the windows."""
    model, data = _trained("cnn-digits")
    pairs = [[w, f] for w in (16, 8, 6, 4) for f in (w // 2, w // 4)]
    space = {
        "by": "name",
        "choices": {
            n: {"data_in": pairs, "weight": pairs} for n in ("conv1", "conv2", "conv3", "fc")
        },
    }
    runs = (("random", "slots"), ("random", "batched"), ("tpe", "slots"), ("tpe", "batched"))
    got: dict[tuple[str, str, int], list[dict[str, float]]] = {}
    for r in range(repeats):
        for strategy, p in runs if r % 2 == 0 else runs[::-1]:  # interleaved, order alternating
            spent: dict[int, float] = {}
            with path(p), tempfile.TemporaryDirectory() as d, sampler_clock(spent):
                res = search(
                    model, data.val, space=space, objectives=OBJ, strategy=strategy,
                    n_trials=max(counts), run_dir=Path(d), metrics=["accuracy", "loss"], seed=r,
                )  # fmt: skip
                assert res.study is not None
                trials = sorted(res.study.get_trials(deepcopy=False), key=lambda t: t.number)
            for n in counts:
                got.setdefault((strategy, p, n), []).append(_window(trials, spent, n))
    rows = []
    for strategy, p in runs:
        for n in counts:
            med = {k: statistics.median(w[k] for w in got[strategy, p, n]) for k in WINDOW}
            tot, book, smp = med["trial_ms"], med["bookkeeping_ms"], med["sampler_ms"]
            rows.append(
                {
                    "strategy": strategy if p == "batched" else f"{strategy} (one at a time)",
                    "at_trial": n,
                    "window": int(med["window"]),
                    "trial_ms": tot,
                    "bookkeeping_ms": book,
                    "share": book / tot,
                    "sampler_ms": smp,
                    "rest_ms": book - smp,
                    "rest share": (book - smp) / tot,
                }
            )
    return rows


WINDOW = ("window", "trial_ms", "bookkeeping_ms", "sampler_ms")


def _window(trials: list[Any], spent: dict[int, float], n: int) -> dict[str, float]:
    """Means per trial over the trials before trial ``n`` (see :func:`bench_bookkeeping`)."""
    starts = [t.datetime_start for t in trials]
    lo, hi = max(1, n - max(2, n // 10)), n
    while lo > 0 and starts[lo - 1] == starts[lo]:  # whole batches
        lo -= 1
    while hi < len(trials) and starts[hi] == starts[hi - 1]:
        hi += 1
    window = trials[lo:hi]
    begin = trials[lo - 1].datetime_complete if lo else starts[0]
    end = window[-1].datetime_complete
    tot = (end - begin).total_seconds() * 1000 / len(window)
    ev = statistics.fmean(float(t.user_attrs["qs"].get("eval_seconds", 0.0)) * 1000 for t in window)
    smp = statistics.fmean(spent.get(t.number, 0.0) * 1000 for t in window)
    return {"window": len(window), "trial_ms": tot, "bookkeeping_ms": tot - ev, "sampler_ms": smp}


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
    parts = ("quantsearch", "lab_loop", "vs_float", "bookkeeping")
    ap.add_argument("--only", choices=parts, action="append", help="these parts (repeatable)")
    args = ap.parse_args()
    repeats = 2 if args.quick else 5
    torch.set_num_threads(1)
    run = {
        "quantsearch": lambda: bench_quantsearch(repeats),
        "lab_loop": lambda: (
            [lab_loop(2, repeats), lab_loop(0, repeats)]
            + [r for r in [mase_loop(repeats)] if r is not None]
        ),
        "vs_float": lambda: bench_vs_float(max(1, repeats // 2)),
        "bookkeeping": lambda: bench_bookkeeping(
            [10, 100] if args.quick else [10, 100, 1000], 1 if args.quick else 2
        ),
    }
    chosen = [p for p in parts if not args.only or p in args.only]
    results: dict[str, Any] = {
        "machine": f"{os.cpu_count()} CPUs, Python {platform.python_version()}, torch {torch.__version__}",
        **{p: run[p]() for p in chosen},
    }
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(results["machine"])
    for key in chosen:
        print(f"\n### {key}\n")
        print(table(results[key]))


if __name__ == "__main__":
    main()
