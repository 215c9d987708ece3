"""The lab-3 search's batched trial loop in CPU time, and where it goes.

Run from the repository root::

    python benchmarks/bench_lab_cpu.py          # 21 searches, the first one dropped
    python benchmarks/bench_lab_cpu.py -n 41

Each search is MASE lab 3's (jsc-tiny, the 16-point space, 512 seeded Gaussian samples, the
journal default), the production path: brute force's trials K at a time (``Batches.run``).
Wall-clock figures on a shared machine follow the other jobs (2x between runs minutes apart
here); the CPU time of the thread running the loop does much less, so this script reports
that: ``time.thread_time()`` inside ``Batches.run`` (the whole batched loop: proposals,
evaluation, storage) and inside the parts of it named below, per search, median over the
searches. Torch runs on one thread, as in ``bench_search.py``, so the evaluation's
arithmetic is in the figure; the journal's committer thread (its fsyncs) is not.

To compare two commits, run the script in a checkout of each, alternating.
"""

from __future__ import annotations

import argparse
import collections
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from bench_search import LAB_SPACE, OBJ, jsc_like, loop_rate
from quantsearch.metrics import static
from quantsearch.models import build_model
from quantsearch.search import batch, evaluate, optuna_compat
from quantsearch.search.api import search

PARTS: list[tuple[Any, str, str]] = [
    (batch.Batches, "run", "loop"),
    (evaluate.Evaluator, "evaluate_many", "evaluate_many"),
    (static.StaticMetrics, "values", "static metrics"),
    (evaluate.Evaluator, "resolve", "resolve"),
    (optuna_compat, "add_trial", "storing (add_trial, add_trials)"),
    (optuna_compat, "add_trials", "storing (add_trial, add_trials)"),  # a batch at once
]
PARTS = [p for p in PARTS if hasattr(p[0], p[1])]  # add_trials: since 61ebebd


def _timed(fn: Callable[..., Any], key: str, spent: dict[str, float]) -> Callable[..., Any]:
    def run(*args: Any, **kwargs: Any) -> Any:
        t0 = time.thread_time()
        try:
            return fn(*args, **kwargs)
        finally:
            spent[key] += time.thread_time() - t0

    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=21, help="searches (the first is a warm-up)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    spent: dict[str, float] = collections.defaultdict(float)
    for owner, name, key in PARTS:
        setattr(owner, name, _timed(getattr(owner, name), key, spent))
    model, data = build_model("jsc-tiny").eval(), jsc_like()
    per: dict[str, list[float]] = collections.defaultdict(list)
    for r in range(args.n):
        spent.clear()
        with tempfile.TemporaryDirectory() as d:
            res = search(
                model, data, space=LAB_SPACE, objectives=OBJ, strategy="brute_force",
                n_trials=16, seed=r, run_dir=Path(d),
            )  # fmt: skip
        if r:
            per["wall ms a trial (trial loop)"].append(loop_rate(res)[1])
            for key in dict.fromkeys(k for _, _, k in PARTS):
                per[f"{key}, CPU ms a search"].append(spent[key] * 1e3)
    print(f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}, {args.n - 1} searches\n")
    print("| lab-3 search, 16 trials | median | min |\n|---|---|---|")
    for key, values in per.items():
        print(f"| {key} | {statistics.median(values):.2f} | {min(values):.2f} |")


if __name__ == "__main__":
    main()
