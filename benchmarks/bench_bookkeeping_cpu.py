"""Search bookkeeping in main-thread CPU time: a measure that a shared machine's load inflates
far less than wall time.

``bench_search.py --only bookkeeping`` measures wall time, which on a loaded machine counts the
time the search waits for a core. This runs the same search (cnn-digits, the bookkeeping space
of ``bench_search.py``, journal default, one process: the batched trial path) and reads the
main thread's CPU clock (``time.thread_time``) at the end of each batch and around each
``Evaluator.evaluate_many`` call; per trial over the windows of ``bench_search.py`` (the
trials before trial n, about a tenth of n, at least 2): the CPU time, the part outside the
evaluation (bookkeeping) and its share. Another thread's CPU time (the journal's group commit)
is not counted. A batch's time is shared evenly among the trials it stores (TPE's random
start-up comes in batches, then one trial a batch).

Run from the repository root::

    python benchmarks/bench_bookkeeping_cpu.py                     # tpe, seeds 0 and 1
    PYTHONPATH=<a checkout of another commit>/src python benchmarks/bench_bookkeeping_cpu.py
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).parent))
from bench_search import OBJ, _trained, table
from quantsearch.search import batch, evaluate
from quantsearch.search.api import search

COUNTS = (10, 100, 1000)


def one_search(strategy: str, seed: int, model: Any, data: Any) -> dict[int, dict[str, float]]:
    pairs = [[w, f] for w in (16, 8, 6, 4) for f in (w // 2, w // 4)]
    layers = ("conv1", "conv2", "conv3", "fc")
    space = {"by": "name", "choices": {n: {"data_in": pairs, "weight": pairs} for n in layers}}
    ends: list[float] = []  # CPU clock at the end of each batch
    sizes: list[int] = []  # the trials each batch stored
    spent: dict[int, float] = {}  # batch index -> CPU seconds in evaluate_many
    real_run, real_many = batch.Batches.run, evaluate.Evaluator.evaluate_many

    def run(self: Any, study: Any, after: Any) -> None:
        stored = [0]

        def counted(s: Any, t: Any) -> None:
            stored[0] += 1
            after(s, t)

        real_run(self, study, counted)
        ends.append(time.thread_time())
        sizes.append(stored[0])

    def many(self: Any, *a: Any, **k: Any) -> Any:
        t0 = time.thread_time()
        try:
            return real_many(self, *a, **k)
        finally:
            spent[len(ends)] = spent.get(len(ends), 0.0) + time.thread_time() - t0

    batch.Batches.run = run  # type: ignore[method-assign]
    evaluate.Evaluator.evaluate_many = many  # type: ignore[method-assign]
    try:
        with tempfile.TemporaryDirectory() as d:
            res = search(
                model, data.val, space=space, objectives=OBJ, strategy=strategy,
                n_trials=max(COUNTS), run_dir=Path(d), metrics=["accuracy", "loss"], seed=seed,
            )  # fmt: skip
    finally:
        batch.Batches.run = real_run  # type: ignore[method-assign]
        evaluate.Evaluator.evaluate_many = real_many  # type: ignore[method-assign]
    assert res.study is not None and sum(sizes) == max(COUNTS), "every trial in a batch expected"
    # each trial: its batch's share of the batch's CPU time and of its evaluation (the first
    # batch's time runs from its own end: it is left out of every window)
    cpu: list[float] = []
    ev: list[float] = []
    for b, size in enumerate(sizes):
        total = ends[b] - ends[b - 1] if b else math.nan
        cpu += [total / size] * size
        ev += [spent.get(b, 0.0) / size] * size
    out = {}
    for n in COUNTS:
        lo, hi = max(sizes[0], n - max(2, n // 10)), n
        total = statistics.fmean(cpu[lo:hi]) * 1000
        out[n] = {"cpu_ms": total, "bookkeeping_cpu_ms": total - statistics.fmean(ev[lo:hi]) * 1000}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--strategy", default="tpe")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    args = ap.parse_args()
    torch.set_num_threads(1)
    model, data = _trained("cnn-digits")
    load = os.getloadavg()[0]
    got = [one_search(args.strategy, s, model, data) for s in args.seeds]
    rows = []
    for n in COUNTS:
        cpu = statistics.median(g[n]["cpu_ms"] for g in got)
        book = statistics.median(g[n]["bookkeeping_cpu_ms"] for g in got)
        rows.append(
            {
                "strategy": args.strategy,
                "at_trial": n,
                "trial_cpu_ms": cpu,
                "bookkeeping_cpu_ms": book,
                "share": statistics.median(
                    g[n]["bookkeeping_cpu_ms"] / g[n]["cpu_ms"] for g in got
                ),
            }
        )
    print(f"1-min load {load:.2f} at the start, {os.getloadavg()[0]:.2f} at the end")
    print(table(rows))


if __name__ == "__main__":
    main()
