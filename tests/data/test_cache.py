"""The split cache's folder stays small: :func:`quantsearch.data.cache.prune` removes the files
of versions no longer read, half-done writes of killed processes and, past its byte budget,
the least recently used files; a hit renews its file; nothing but the cache's own files is
ever removed. Referee: the folder's listing and ``os.stat`` times."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from quantsearch.data.cache import cached_splits, prune, read_arrays, write_arrays

KEYS = {f"{a}_{s}" for a in ("x", "y") for s in ("train", "val", "test")}


def _write(folder: Path, name: str, size: int = 100, age: float = 0.0) -> Path:
    path = folder / name
    write_arrays(path, {"x": np.zeros(size, dtype=np.uint8)})
    stamp = time.time() - age
    os.utime(path, (stamp, stamp))
    return path


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def _dead_pid() -> int:
    """The id of a child that ran and was reaped: it names no process (a fixed id like 4242
    may be a live one on the machine running the test)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_stale_versions_and_old_partial_writes_go_and_nothing_else(tmp_path: Path) -> None:
    dead = _dead_pid()  # both partial writes' writer: the young one is kept for its age alone
    _write(tmp_path, "jsc-v1-aaaa.npz")
    _write(tmp_path, "jsc-v2-bbbb.npz")
    _write(tmp_path, "digits-v1-sklearn1.9-seed0-val0.2-test0.2.npz")
    for name, age in (
        (f"jsc-v2-cccc.npz.{dead}.tmp", 7200.0),
        (f"jsc-v2-dddd.npz.{dead}.tmp", 5.0),
    ):
        (tmp_path / name).write_bytes(b"half")
        os.utime(tmp_path / name, (time.time() - age,) * 2)
    (tmp_path / "mine.txt").write_text("a user's file")
    (tmp_path / "jsc-v1-dir.npz").mkdir()  # not a file: left alone
    removed = prune(tmp_path)
    assert sorted(p.name for p in removed) == ["jsc-v1-aaaa.npz", f"jsc-v2-cccc.npz.{dead}.tmp"]
    assert _names(tmp_path) == [
        "digits-v1-sklearn1.9-seed0-val0.2-test0.2.npz",
        "jsc-v1-dir.npz",
        "jsc-v2-bbbb.npz",
        f"jsc-v2-dddd.npz.{dead}.tmp",  # young: a writer elsewhere may still be writing it
        "mine.txt",
    ]


def test_past_the_budget_the_least_recently_used_go_first(tmp_path: Path) -> None:
    old = _write(tmp_path, "jsc-v2-old.npz", age=300)
    mid = _write(tmp_path, "jsc-v2-mid.npz", age=200)
    new = _write(tmp_path, "jsc-v2-new.npz", age=100)
    size = old.stat().st_size
    assert read_arrays(old, {"x"}) is not None  # a hit: now the most recently used
    assert old.stat().st_mtime > new.stat().st_mtime
    removed = prune(tmp_path, max_bytes=2 * size)
    assert removed == [mid]
    assert _names(tmp_path) == ["jsc-v2-new.npz", "jsc-v2-old.npz"]
    # the file just written is never removed, even alone over the budget
    assert prune(tmp_path, keep=new, max_bytes=0) == [old]
    assert _names(tmp_path) == ["jsc-v2-new.npz"]


def test_a_miss_writes_then_prunes_the_folder(tmp_path: Path) -> None:
    _write(tmp_path, "jsc-v1-stale.npz")
    arrays = {k: np.arange(4, dtype=np.float32 if k[0] == "x" else np.int64) for k in KEYS}
    train, _, _ = cached_splits(tmp_path / "jsc-v2-fresh.npz", lambda: arrays)
    assert train.x.tolist() == [0.0, 1.0, 2.0, 3.0]
    assert _names(tmp_path) == ["jsc-v2-fresh.npz"]


def test_an_unreadable_folder_prunes_nothing(tmp_path: Path) -> None:
    assert prune(tmp_path / "missing") == []
