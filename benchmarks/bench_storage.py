"""Measure per-trial storage bookkeeping, and the cost of cross-worker coordination.

Storage: one trial is ``study.ask()``, two categorical suggestions (a 16-point space),
``trial.set_user_attr("result", ~1 KB dict)`` and ``study.tell()``, timed alone, for
InMemoryStorage, JournalStorage on a file (``journal``: every write fsynced, as several workers
write it; ``journal-group``: a search's default, one writer, group commit within 50 ms), SQLite ``RDBStorage`` on a file and PostgreSQL (when
``QUANTSEARCH_PG_URL`` is set; ``.ci/postgres.sh`` starts one; ``postgres-async`` is the same
server with ``synchronous_commit=off``), with RandomSampler and
TPESampler, in a fresh study of 10, 100 and 1000 trials. Reported: the median ms per trial over
the study, the median over its last tenth (the cost at that trial count), and the storage's
share: median minus InMemory's for the same sampler and count. Each figure is the median of
``--repeats`` fresh studies (one at 1000 trials). Most of the cost is fsync (reported first): on a shared disk the
figures move with the neighbours' writes; the 1-minute load average is printed with them.

Coordination (:mod:`quantsearch.search.parallel`): one trial's ``budget.take`` +
``claims.claim`` + ``claims.complete`` for each coordinator (a single local worker has no claims:
its budget only), and the liveness ``mark`` of a trial (a user attribute naming the worker).
Contention: 4 processes on the journal's SQLite sidecar doing the same, to show it never fails
with "database is locked".

    python benchmarks/bench_storage.py                  # everything (several minutes)
    python benchmarks/bench_storage.py --counts 10 100 --repeats 1  # shorter
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
import uuid
import warnings
from pathlib import Path
from typing import Any

import optuna

from quantsearch.search.parallel import Coordinator, open_coordinator
from quantsearch.search.parallel.liveness import mark
from quantsearch.search.storage import open_storage

optuna.logging.set_verbosity(optuna.logging.ERROR)
warnings.simplefilter("ignore")

CHOICES = [[16, 8], [8, 6], [8, 4], [4, 2]]  # 4 x 4 = 16 points, as in issue 5
RESULT = {f"layer{i}.{m}": 0.123456789 * i for i in range(20) for m in ("acc", "bits")}  # ~1 KB
assert 900 <= len(json.dumps(RESULT)) <= 1300


def _pin_two_cores() -> None:
    if hasattr(os, "sched_setaffinity") and len(os.sched_getaffinity(0)) > 2:
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:2])


def _sampler(name: str) -> optuna.samplers.BaseSampler:
    if name == "random":
        return optuna.samplers.RandomSampler(seed=0)
    return optuna.samplers.TPESampler(seed=0)


def _pg_async(url: str) -> str:
    # The same server, each commit without waiting for its WAL flush (a per-session setting).
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options=-csynchronous_commit%3Doff"


def _storage(kind: str, folder: Path, pg_url: str | None) -> Any:
    if kind == "memory":
        return optuna.storages.InMemoryStorage()
    if kind == "journal":  # every write fsynced (a journal shared by several workers)
        return open_storage(None, folder)
    if kind == "journal-group":  # a search's default: one writer, group commit within 50 ms
        return open_storage(None, folder, exclusive=True, group_commit_s=0.05)
    if kind == "sqlite":
        return open_storage(f"sqlite:///{folder / 'study.db'}", folder)
    assert pg_url is not None
    return open_storage(_pg_async(pg_url) if kind == "postgres-async" else pg_url, folder)


def fsync_ms(n: int = 200) -> float:
    """Median ms of one small append + fsync on this machine's temp disk: the storages' floor."""
    with tempfile.TemporaryDirectory() as tmp, open(Path(tmp) / "f", "ab") as f:
        times = []
        for _ in range(n):
            start = time.perf_counter()
            f.write(b"x" * 200 + b"\n")
            f.flush()
            os.fsync(f.fileno())
            times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def bench_trials(
    kind: str, sampler: str, n: int, pg_url: str | None, repeats: int
) -> dict[str, float]:
    """Median over ``repeats`` fresh studies of each study's figures (damps a shared disk)."""
    runs = [_bench_trials(kind, sampler, n, pg_url) for _ in range(repeats)]
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def _bench_trials(kind: str, sampler: str, n: int, pg_url: str | None) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        storage = _storage(kind, Path(tmp), pg_url)
        name = f"bench-{uuid.uuid4().hex[:8]}"
        study = optuna.create_study(storage=storage, study_name=name, sampler=_sampler(sampler))
        times = []
        for _ in range(n):
            start = time.perf_counter()
            trial = study.ask()
            a = trial.suggest_categorical("linear.data_in", [str(c) for c in CHOICES])
            w = trial.suggest_categorical("linear.weight", [str(c) for c in CHOICES])
            trial.set_user_attr("result", RESULT)
            study.tell(trial, len(a) + len(w))
            times.append(time.perf_counter() - start)
        if kind == "journal-group":
            start = time.perf_counter()
            storage.flush()  # what the study wrote reaches the disk: counted in the last trial
            times[-1] += time.perf_counter() - start
        if kind.startswith("postgres"):
            optuna.delete_study(study_name=name, storage=storage)
        if kind not in ("memory", "journal", "journal-group"):
            storage.engine.dispose()
    tail = times[-max(1, n // 10) :]
    return {
        "median_ms": statistics.median(times) * 1e3,
        "tail_median_ms": statistics.median(tail) * 1e3,
        "mean_ms": statistics.fmean(times) * 1e3,
    }


def _coordinator(kind: str, folder: Path, pg_url: str | None, name: str) -> Coordinator:
    if kind == "local":
        return open_coordinator(None, folder, name, workers=1)
    if kind == "sidecar":
        return open_coordinator(None, folder, name, workers=4)
    if kind == "sqlite":
        return open_coordinator(f"sqlite:///{folder / 'study.db'}", folder, name)
    assert pg_url is not None
    return open_coordinator(pg_url, folder, name)


def bench_coordination(kind: str, pg_url: str | None, n: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        name = f"bench-{uuid.uuid4().hex[:8]}"
        coord = _coordinator(kind, folder, pg_url, name)
        storage_url = {
            "local": None,
            "sidecar": None,
            "sqlite": f"sqlite:///{folder / 'study.db'}",
        }.get(kind, pg_url)
        storage: Any = open_storage(
            storage_url, folder, stale_trial_callback=coord.stale_trial_callback
        )
        study = optuna.create_study(storage=storage, study_name=name)
        coord.attach(study)
        book, alive = [], []
        for i in range(n):
            start = time.perf_counter()
            assert coord.budget.take(n) is not None
            if coord.claims is not None:
                assert coord.claims.claim(f"cfg-{i}", i).owned
                coord.claims.complete(f"cfg-{i}", i, RESULT)
            book.append(time.perf_counter() - start)
            trial = study.ask()
            start = time.perf_counter()
            mark(trial)
            alive.append(time.perf_counter() - start)
            study.tell(trial, 1.0)
        coord.close()
        if storage_url is not None:
            if kind == "postgres":
                optuna.delete_study(study_name=name, storage=storage)
            storage.engine.dispose()
    return {
        "claim_ms": statistics.median(book) * 1e3,
        "running_ms": statistics.median(alive) * 1e3,
    }


def _contend(folder: str, name: str, rounds: int, queue: Any) -> None:
    coord = open_coordinator(None, Path(folder), name, workers=4)
    worst, errors = 0.0, 0
    for i in range(rounds):
        start = time.perf_counter()
        try:
            coord.budget.take(10**9)
            key = f"cfg-{i % 50}"  # 50 keys, 4 processes: claims collide
            assert coord.claims is not None
            got = coord.claims.claim(key, os.getpid() * 10_000 + i)
            if got.owned:
                coord.claims.complete(key, os.getpid() * 10_000 + i, RESULT)
        except Exception:
            errors += 1
        worst = max(worst, time.perf_counter() - start)
    coord.close()
    queue.put((worst, errors))


def bench_contention(rounds: int = 500) -> dict[str, float]:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    with tempfile.TemporaryDirectory() as tmp:
        name = "contend"
        open_coordinator(None, Path(tmp), name, workers=4).close()  # the sidecar, made once
        procs = [ctx.Process(target=_contend, args=(tmp, name, rounds, queue)) for _ in range(4)]
        start = time.perf_counter()
        for p in procs:
            p.start()
        out = [queue.get(timeout=600) for _ in procs]
        for p in procs:
            p.join()
        wall = time.perf_counter() - start
    return {
        "processes": 4,
        "rounds_each": rounds,
        "errors": sum(e for _, e in out),
        "worst_round_ms": max(w for w, _ in out) * 1e3,
        "rounds_per_s": 4 * rounds / wall,
    }


def _table(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(r) + " |" for r in rows]
    lines.insert(1, "|" + "|".join("---" for _ in rows[0]) + "|")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--repeats", type=int, default=3, help="fresh studies per figure")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    _pin_two_cores()
    pg_url = os.environ.get("QUANTSEARCH_PG_URL")
    kinds = ["memory", "journal", "journal-group", "sqlite"] + (
        ["postgres", "postgres-async"] if pg_url else []
    )
    figures: dict[str, Any] = {
        "machine": f"{len(os.sched_getaffinity(0))} cores, Python {sys.version.split()[0]}, "
        f"Optuna {optuna.__version__}",
        "load_before": os.getloadavg()[0],
        "fsync_ms": fsync_ms(),
        "trials": [],
        "coordination": {},
    }
    for sampler in ("random", "tpe"):
        for n in args.counts:
            for kind in kinds:
                reps = args.repeats if n <= 100 else 1  # a 1000-trial median is steady alone
                r = bench_trials(kind, sampler, n, pg_url, reps)
                figures["trials"].append({"storage": kind, "sampler": sampler, "n": n, **r})
                print(f"{kind:8} {sampler:6} {n:5} {r}", file=sys.stderr)
    coord_kinds = ["local", "sidecar", "sqlite"] + (["postgres"] if pg_url else [])
    for kind in coord_kinds:
        figures["coordination"][kind] = bench_coordination(kind, pg_url, 200)
        print(f"{kind:8} {figures['coordination'][kind]}", file=sys.stderr)
    figures["contention"] = bench_contention()
    print(f"contention {figures['contention']}", file=sys.stderr)
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0

    base: dict[tuple[str, int], float] = {
        (r["sampler"], r["n"]): r["median_ms"]
        for r in figures["trials"]
        if r["storage"] == "memory"
    }
    rows = [["storage", "sampler", "trials", "median ms/trial", "last 10% median", "storage share"]]
    for r in figures["trials"]:
        share = r["median_ms"] - base[(r["sampler"], r["n"])]
        rows.append(
            [
                r["storage"],
                r["sampler"],
                str(r["n"]),
                f"{r['median_ms']:.2f}",
                f"{r['tail_median_ms']:.2f}",
                "-" if r["storage"] == "memory" else f"{share:.2f}",
            ]
        )
    figures["load_after"] = os.getloadavg()[0]
    print(
        f"Machine: {figures['machine']}; 1-min load {figures['load_before']:.1f} before, "
        f"{figures['load_after']:.1f} after; append + fsync {figures['fsync_ms']:.2f} ms\n"
    )
    print(_table(rows))
    crow = [["coordinator", "ticket + claim + complete, ms", "mark(trial), ms"]]
    for kind, c in figures["coordination"].items():
        crow.append([kind, f"{c['claim_ms']:.3f}", f"{c['running_ms']:.3f}"])
    print()
    print(_table(crow))
    c = figures["contention"]
    print(
        f"\nSidecar contention: {c['processes']} processes x {c['rounds_each']} rounds, "
        f"{c['errors']} errors, worst round {c['worst_round_ms']:.1f} ms, "
        f"{c['rounds_per_s']:.0f} rounds/s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
