"""Wall time of one fixed search with 1, 2 and 4 worker processes, and the storage's cost.

Run from the repository root (a PostgreSQL URL adds the PostgreSQL rows)::

    QUANTSEARCH_PG_URL="$(bash .ci/postgres.sh)" python benchmarks/bench_workers.py

The search: cnn-digits (trained here for a few epochs), a per-layer space of its conv and linear
layers (far larger than the budget, so no worker runs out of points), random sampling,
``--trials`` trials (default 240) on the 360 validation samples. Each run is the real command,
``quantsearch search --workers K`` (or ``K`` ``quantsearch worker`` processes on PostgreSQL),
in a fresh run directory: wall time from start to the last worker's exit, start-up included,
and trials/s inside the trial loop (first trial's start to last trial's end, from the study).
Scaling efficiency is ``T(1) / (K x T(K))`` on the trial loop. The storage's cost is a trial's
time minus its evaluation, median over the study, with one worker.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

CONFIG = """
seed = 0
[model]
name = "cnn-digits"
checkpoint = "{ckpt}"
[data]
name = "digits"
[search]
n_trials = {n}
[search.strategy]
name = "random"
[search.space]
by = "name"
[search.space.choices.conv2d]
data_in = {{ width = [4, 6, 8, 12, 16], frac_width = [2, 3, 4, 6] }}
weight = {{ width = [4, 6, 8, 12, 16], frac_width = [2, 3, 4, 6] }}
[search.space.choices.linear]
data_in = {{ width = [4, 6, 8, 12, 16], frac_width = [2, 3, 4, 6] }}
weight = {{ width = [4, 6, 8, 12, 16], frac_width = [2, 3, 4, 6] }}
[search.objectives]
accuracy = {{ direction = "maximize" }}
"""


def loop_stats(url: str, study: str) -> tuple[float, float, float]:
    """(trial-loop seconds, median bookkeeping ms, median evaluation ms) read from the study."""
    import optuna

    trials = optuna.load_study(study_name=study, storage=url).get_trials(deepcopy=False)
    done = [t for t in trials if t.state.name == "COMPLETE"]
    span = (
        max(t.datetime_complete for t in done) - min(t.datetime_start for t in done)
    ).total_seconds()
    evals = [float(t.user_attrs["qs"].get("eval_seconds", 0.0)) * 1000 for t in done]
    totals = [(t.datetime_complete - t.datetime_start).total_seconds() * 1000 for t in done]
    books = [tot - ev for tot, ev in zip(totals, evals, strict=True)]
    return span, statistics.median(books), statistics.median(evals)


def run(cfg: Path, workers: int, url: str | None, tmp: Path, tag: str) -> dict[str, Any]:
    study = f"bench-{tag}-{workers}-{os.getpid()}"
    run_dir = tmp / f"runs-{tag}-{workers}"
    base = [sys.executable, "-m", "quantsearch"]
    common = ["--config", str(cfg), "--study", study, "--run-dir", str(run_dir)]
    t0 = time.perf_counter()
    if url is None:
        subprocess.run([*base, "search", *common, "--workers", str(workers), "-q"], check=True)
        storage = f"journal:{run_dir / study / 'study.journal'}"
    else:
        procs = [
            subprocess.Popen([*base, "worker", *common, "--storage", url]) for _ in range(workers)
        ]
        for p in procs:
            if p.wait() != 0:
                raise SystemExit(f"a worker failed with {p.returncode}")
        storage = url
    wall = time.perf_counter() - t0
    if storage.startswith("journal:"):
        from quantsearch.search.storage import open_storage

        storage_obj: Any = open_storage(None, run_dir / study)
        span, book, ev = loop_stats(storage_obj, study)
    else:
        span, book, ev = loop_stats(storage, study)
    return {
        "storage": tag,
        "workers": workers,
        "wall_s": wall,
        "loop_s": span,
        "bookkeeping_ms": book,
        "eval_ms": ev,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=240)
    args = ap.parse_args()
    url = os.environ.get("QUANTSEARCH_PG_URL")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        ckpt = tmp / "cnn.pt"
        train_cfg = tmp / "train.toml"
        train_cfg.write_text(
            f'[model]\nname = "cnn-digits"\ncheckpoint = "{ckpt}"\n[train]\nepochs = 15\n'
        )
        subprocess.run([sys.executable, "-m", "quantsearch", "train", "--config", str(train_cfg), "--json"],
                       check=True, capture_output=True)  # fmt: skip
        cfg = tmp / "bench.toml"
        cfg.write_text(CONFIG.format(ckpt=ckpt, n=args.trials))
        rows = []
        for tag, storage in (("journal", None), ("postgres", url)):
            if tag == "postgres" and storage is None:
                continue
            for k in (1, 2, 4):
                rows.append(run(cfg, k, storage, tmp, tag))
        for r in rows:
            one = next(x for x in rows if x["storage"] == r["storage"] and x["workers"] == 1)
            r["trials_per_s"] = args.trials / r["loop_s"]
            r["efficiency"] = one["loop_s"] / (r["workers"] * r["loop_s"])
    cols = [
        "storage",
        "workers",
        "wall_s",
        "loop_s",
        "trials_per_s",
        "efficiency",
        "bookkeeping_ms",
        "eval_ms",
    ]
    print(f"{os.cpu_count()} CPUs, {args.trials} trials")
    print("| " + " | ".join(cols) + " |\n|" + "---|" * len(cols))
    for r in rows:
        print(
            "| "
            + " | ".join(f"{r[c]:.3g}" if isinstance(r[c], float) else str(r[c]) for c in cols)
            + " |"
        )


if __name__ == "__main__":
    main()
