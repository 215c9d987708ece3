"""Memory over a long random search: flat with the slot path, growing with a rebuild per trial.

Run from the repository root::

    python benchmarks/bench_memory.py                 # 10,000 trials per path
    python benchmarks/bench_memory.py --trials 3000   # shorter

jsc-tiny, a per-node space far larger than the trial count (data_in, weight and bias of each
linear layer, widths 2-16 by frac_width 0-8), random sampling, 512 samples a trial, in memory
(no storage, so the study's own records are the only thing that must grow). Reported per path:
resident memory (RSS) after the first 10% of trials and at the end, and the growth per trial
between the two; and, from ``tracemalloc`` on a second, shorter run, the Python allocations
still held at the end that were made in torch.fx (its generated code and linecache entries),
and in Optuna's storage (the trials). ``rebuild`` is the path before issue 15: ``quantize()``
per trial, a new GraphModule whose forward torch.fx generates and compiles.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tracemalloc
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).parent))

from bench_search import OBJ, jsc_like, path
from quantsearch.models import build_model
from quantsearch.search.api import search
from quantsearch.search.evaluate import Evaluator

WIDTHS = {"width": list(range(2, 17)), "frac_width": list(range(0, 9))}
SPACE = {"by": "name", "choices": {"linear": {"data_in": WIDTHS, "weight": WIDTHS, "bias": WIDTHS}}}


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def run(p: str, n: int) -> dict[str, Any]:
    model, data = build_model("jsc-tiny").eval(), jsc_like()
    marks: list[float] = []
    real = Evaluator.evaluate

    def evaluate(self: Evaluator, resolved: Any) -> Any:  # RSS after each evaluation
        ev = real(self, resolved)
        marks.append(rss_mib())
        return ev

    Evaluator.evaluate = evaluate  # type: ignore[method-assign]
    try:
        with path(p):
            search(
                model, data, space=SPACE, objectives=OBJ, strategy="random", n_trials=n, seed=0,
                metrics=["accuracy", "loss"],
            )  # fmt: skip
    finally:
        Evaluator.evaluate = real  # type: ignore[method-assign]
    first = len(marks) // 10
    growth = (marks[-1] - marks[first]) / (len(marks) - 1 - first) * 1024
    return {"path": p, "trials": n, "evaluations": len(marks), "rss_at_10%_mib": marks[first],
            "rss_end_mib": marks[-1], "growth_kib_per_trial": growth}  # fmt: skip


def held(p: str, n: int) -> dict[str, Any]:
    model, data = build_model("jsc-tiny").eval(), jsc_like()
    tracemalloc.start(8)
    with path(p):
        search(
            model, data, space=SPACE, objectives=OBJ, strategy="random", n_trials=n, seed=1,
            metrics=["accuracy", "loss"],
        )  # fmt: skip
        snap = tracemalloc.take_snapshot()
    tracemalloc.stop()
    by: dict[str, float] = {"torch.fx": 0.0, "optuna": 0.0, "linecache": 0.0}
    for stat in snap.statistics("traceback"):
        frames = " ".join(f.filename for f in stat.traceback)
        for key in by:
            if key.replace(".", "/") in frames:
                by[key] += stat.size / 1024
                break
    return {"path": p, "trials": n, **{f"held_{k}_kib": v for k, v in by.items()}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=10_000)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    out = {
        "rss": [run(p, args.trials) for p in ("slots", "rebuild")],
        "held": [held(p, max(200, args.trials // 10)) for p in ("slots", "rebuild")],
    }
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    for key in ("rss", "held"):
        rows = out[key]
        print("| " + " | ".join(rows[0]) + " |\n|" + "---|" * len(rows[0]))
        for r in rows:
            cells = (f"{v:.3g}" if isinstance(v, float) else str(v) for v in r.values())
            print("| " + " | ".join(cells) + " |")
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
