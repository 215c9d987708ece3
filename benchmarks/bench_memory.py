"""Memory over a long random search: flat with the slot path, growing with a rebuild per trial.

Run from the repository root::

    python benchmarks/bench_memory.py                 # 10,000 trials per path
    python benchmarks/bench_memory.py --trials 3000   # shorter

jsc-tiny, a per-node space far larger than the trial count (data_in, weight and bias of each
linear layer, widths 2-16 by frac_width 0-8), random sampling, 512 samples a trial, in memory
(no storage: the study's own records are what must grow). Each path runs in a fresh process;
reported: resident memory (RSS) after the first tenth of the trials, half-way and near the
end; its growth per trial from the tenth to the end and over the second half (where the weight
memo has met most formats); with ``--owners``, the growth of Python allocations still held
(``tracemalloc``, which slows the search and takes memory of its own) per trial over the
second half, by owner: torch.fx (generated code, graphs), Optuna (the study's
records) and everything else; the weight memo at the end (entries, tensor bytes); and the
allocator's slack at the end (RSS given back by glibc's ``malloc_trim``).
``rebuild`` is the path before issue 15: ``quantize()`` per trial, a new GraphModule whose
forward torch.fx generates and compiles (it has no memo).
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import json
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).parent))

from bench_search import OBJ, jsc_like, path, table
from quantsearch.models import build_model
from quantsearch.passes.transform.slots import PreparedModel
from quantsearch.search.api import search
from quantsearch.search.evaluate import Evaluator

WIDTHS = {"width": list(range(2, 17)), "frac_width": list(range(0, 9))}
SPACE = {"by": "name", "choices": {"linear": {"data_in": WIDTHS, "weight": WIDTHS, "bias": WIDTHS}}}


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def run(p: str, n: int, owners: bool) -> dict[str, Any]:
    """RSS after a tenth of the evaluations, half-way and at the end; Python allocations by
    owner (tracemalloc, if ``owners``) over the second half; the weight memo at the end.
    Marks count evaluations, not trials (a repeated config is answered by the cache)."""
    model, data = build_model("jsc-tiny").eval(), jsc_like()
    rss: list[float] = []  # after each evaluation
    snaps: list[tuple[int, tracemalloc.Snapshot]] = []
    real, real_init = Evaluator.evaluate, PreparedModel.__init__
    prepared: list[PreparedModel] = []

    def evaluate(self: Evaluator, resolved: Any) -> Any:  # measured after each evaluation
        ev = real(self, resolved)
        rss.append(rss_mib())  # before a snapshot, which takes memory itself
        if owners and len(rss) in (n // 2, n - 10):  # while the study is alive
            snaps.append((len(rss) - 1, tracemalloc.take_snapshot()))
        return ev

    def init(self: PreparedModel, *args: Any, **kwargs: Any) -> None:
        real_init(self, *args, **kwargs)
        prepared.append(self)

    if owners:  # tracing costs memory per live block: RSS figures are only clean without it
        tracemalloc.start(12)
    Evaluator.evaluate = evaluate  # type: ignore[method-assign]
    PreparedModel.__init__ = init  # type: ignore[method-assign]
    try:
        with path(p):
            search(
                model, data, space=SPACE, objectives=OBJ, strategy="random", n_trials=n, seed=0,
                metrics=["accuracy", "loss"],
            )  # fmt: skip
    finally:
        Evaluator.evaluate = real  # type: ignore[method-assign]
        PreparedModel.__init__ = real_init  # type: ignore[method-assign]
        tracemalloc.stop()
    end = snaps[1][0] if len(snaps) == 2 else len(rss) - 1
    first, half = end // 10, snaps[0][0] if len(snaps) == 2 else end // 2
    span = end - half
    by: dict[str, float] = {}
    if len(snaps) == 2:
        by = {"torch.fx": 0.0, "optuna": 0.0, "other": 0.0}
        for diff in snaps[1][1].compare_to(snaps[0][1], "traceback"):
            frames = " ".join(f.filename for f in diff.traceback)
            key = next((k for k in ("torch/fx", "optuna") if k in frames), "other")
            by[key.replace("/", ".")] += diff.size_diff / 1024 / span
    memo = [(len(pm._weights), pm._held) for pm in prepared]
    # allocator slack: what glibc holds freed but not returned (RSS before minus after a trim)
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    rss_before_trim = rss_mib()
    trimmed = getattr(libc, "malloc_trim", None)
    slack = rss_before_trim - rss_mib() if trimmed is not None and trimmed(0) >= 0 else None
    return {"path": p, "trials": n, "evaluations": len(rss), "rss_at_10%_mib": rss[first],
            "rss_at_50%_mib": rss[half], "rss_end_mib": rss[end],
            "rss_kib_per_evaluation": (rss[end] - rss[first]) * 1024 / (end - first),
            "rss_kib_per_evaluation_2nd_half": (rss[end] - rss[half]) * 1024 / span,
            **{f"{k}_kib_per_evaluation_2nd_half": v for k, v in by.items()},
            "memo_entries": sum(e for e, _ in memo), "memo_kib": sum(b for _, b in memo) / 1024,
            "allocator_slack_mib": slack}  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=10_000)
    ap.add_argument("--one", choices=("slots", "rebuild"), help="one path, in this process")
    ap.add_argument("--paths", default="slots,rebuild", help="paths to run, comma-separated")
    ap.add_argument(
        "--owners", action="store_true", help="attribute Python allocations (tracemalloc; slow)"
    )
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.one:
        print(json.dumps(run(args.one, args.trials, args.owners)))
        return 0
    rows = []
    for p in args.paths.split(","):  # each in a fresh process: no allocator state shared
        cmd = [sys.executable, __file__, "--one", p, "--trials", str(args.trials)]
        cmd += ["--owners"] if args.owners else []
        rows.append(json.loads(subprocess.run(cmd, check=True, capture_output=True).stdout))
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
