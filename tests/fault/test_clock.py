"""The wall clock set forward while the split cache is written (a clock jump, NTP stepping
it): the write in progress looks an hour old at once. Every duration in quantsearch is timed
with ``time.monotonic``/``perf_counter`` (search deadlines, group commit, reconnect backoff,
liveness, evaluation and training seconds); the cache's pruning is the one place that compares
the wall clock, with files' modification times, so it must not take an age for a death."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from quantsearch.data.cache import prune


def test_a_write_in_progress_survives_the_clock_set_forward(tmp_path: Path) -> None:
    writer = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        partial = tmp_path / f"jsc-v2-abcd.npz.{writer.pid}.tmp"
        partial.write_bytes(b"half written")
        os.utime(partial, (time.time() - 7200,) * 2)  # as it looks after the clock jumped 2 h
        assert prune(tmp_path) == []
        assert partial.exists()  # its writer runs: kept
    finally:
        writer.kill()
        writer.wait()
    assert prune(tmp_path) == [partial]  # its writer is gone: a leftover, removed
