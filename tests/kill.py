"""Killing a real writer process mid-run, for the durability tests of the journal."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

# A trial announced as finished longer ago than the flush interval plus this slack is on disk.
SLACK_S = 0.2


def kill_after(
    argv: Sequence[str], after_s: float, *, flush_s: float = 0.05, cwd: Path | None = None
) -> set[int]:
    """Run ``argv``, a writer that prints ``<trial number> <time.monotonic()>`` as each trial
    finishes; ``kill -9`` it ``after_s`` seconds after its first line, and return the numbers of
    the trials it announced more than ``flush_s`` (its group-commit interval) plus
    :data:`SLACK_S` before the kill: those a durable writer must not have lost."""
    # Unbuffered: the first line is read a byte at a time, so nothing after it waits in a
    # buffer that communicate() (which reads the pipe's descriptor itself) would skip; a
    # buffered readline() lost the start of the second line now and then.
    proc = subprocess.Popen(list(argv), stdout=subprocess.PIPE, bufsize=0, cwd=cwd)
    deadline = time.monotonic() + 30
    first = proc.stdout.readline().decode()  # type: ignore[union-attr]
    assert first, "the writer did not start"
    time.sleep(after_s)
    os.kill(proc.pid, signal.SIGKILL)
    killed_at = time.monotonic()
    raw, _ = proc.communicate(timeout=max(1.0, deadline - killed_at))
    out = raw.decode()
    lines = [line.split() for line in [first, *out.splitlines()] if line.strip()]
    if lines and (len(lines[-1]) != 2 or (out and not out.endswith("\n"))):
        lines.pop()  # the kill cut the writer in the middle of its last line
    assert all(len(fields) == 2 for fields in lines), lines
    return {int(n) for n, t in lines if killed_at - float(t) > flush_s + SLACK_S}
