"""Helpers that run one function in several real processes."""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Callable
from typing import Any

N_PROCS = 4


def run_all(ctx: Any, target: Callable[..., None], *args: Any) -> list[Any]:
    """Run ``target(index, barrier, queue, *args)`` in N_PROCS processes; what they queued."""
    barrier, queue = ctx.Barrier(N_PROCS), ctx.Queue()
    procs = [ctx.Process(target=target, args=(i, barrier, queue, *args)) for i in range(N_PROCS)]
    for p in procs:
        p.start()
    out = [queue.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0, f"worker exited with {p.exitcode}"
    return out


def forkserver(module: str) -> Any:
    """Children fork from a clean server process: fast (modules preloaded once), and safe even
    after other tests started threads (torch) in this process, which a plain fork would copy."""
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload([module])
    return ctx
