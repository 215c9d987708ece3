"""File locks on a run directory: who may run a study there, and who sets its sidecar up.

A process on the journal default holds ``run_dir/workers.lock``: exclusively when it runs alone
(so a second command on the same run directory is refused rather than silently evaluating the
same configs), shared when it is one of ``--workers K``. ``flock`` locks belong to the open file,
so a killed process frees its lock; a forked child inherits its parent's, which is why each
worker takes its own.
"""

from __future__ import annotations

import contextlib
import fcntl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from quantsearch.errors import ConfigError

__all__ = ["INIT_LOCK_FILE", "LOCK_FILE", "hold_run_dir", "init_lock"]

LOCK_FILE = "workers.lock"  # exclusive: one process; shared: several workers on the journal
INIT_LOCK_FILE = "coordination.lock"  # held while a worker sets the sidecar up


def hold_run_dir(run_dir: Path, workers: int) -> IO[bytes]:
    """Lock ``run_dir`` for this process: alone (``workers == 1``) or shared with its workers.

    Returns the open lock file; closing it releases the lock.

    Raises:
        ConfigError: another process holds the run directory in the other way.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = (run_dir / LOCK_FILE).open("ab")
    exclusive = workers == 1
    try:
        fcntl.flock(lock.fileno(), (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        raise ConfigError(
            f"--workers: run directory {str(run_dir)!r} is in use by another quantsearch "
            f"process {'' if exclusive else 'running alone '}(got --workers {workers}); wait for "
            "it, or start all workers with the same --workers K, or use --storage postgresql://..."
        ) from None
    return lock


@contextlib.contextmanager
def init_lock(path: Path, timeout: float = 60.0) -> Iterator[None]:
    """Hold ``path`` exclusively while the block sets up shared files (milliseconds)."""
    with path.open("ab") as f:
        deadline = time.monotonic() + timeout
        while True:  # bounded by the deadline; the holder only creates tables
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise ConfigError(
                        f"--workers: {str(path)!r} stayed locked for {timeout:.0f} s by another "
                        "worker setting up the run directory; is one stuck?"
                    ) from None
                time.sleep(0.01)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)
