"""Storage faults through the real CLI (`quantsearch search --run-dir`): a full disk, a read-only
run directory, and two processes on one run directory. Each ends in one line, exit status 2, and
leaves the study loadable. The full and read-only disks are real tmpfs mounts (root only)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.search.test_workers import setup

pytestmark = pytest.mark.slow


def _search(cfg: Path, ckpt: Path, run_dir: Path, *extra: str) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "quantsearch", "search", "--config", str(cfg), "--load",
           str(ckpt), "--run-dir", str(run_dir), "-q", *extra]  # fmt: skip
    return subprocess.Popen(cmd, cwd=cfg.parent, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _one_line_error(proc: subprocess.Popen[bytes], timeout: float = 180) -> str:
    _, err = proc.communicate(timeout=timeout)
    lines = [ln for ln in err.decode().splitlines() if ln.strip()]
    assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def _complete(run_dir: Path, study: str = "w") -> int:
    import optuna

    from quantsearch.search.storage import open_storage

    s = optuna.load_study(study_name=study, storage=open_storage(None, run_dir))
    return sum(t.state.name == "COMPLETE" for t in s.get_trials(deepcopy=False))


def _mount_tmpfs(where: Path, size: str) -> bool:
    if shutil.which("mount") is None or os.geteuid() != 0:
        return False
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True
    )
    return r.returncode == 0


def test_a_second_process_on_a_run_directory_is_refused_in_one_line(tmp_path: Path) -> None:
    cfg, ckpt = setup(tmp_path, "random", 400)
    cfg.write_text(cfg.read_text().replace("[search]\n", "[search]\ncache = false\n"))
    runs = tmp_path / "runs"
    first = _search(cfg, ckpt, runs)
    try:
        deadline = time.monotonic() + 120
        while not (runs / "w" / "study.journal").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert first.poll() is None, "the first search ended before the second started"
        line = _one_line_error(_search(cfg, ckpt, runs))
        assert "in use by another quantsearch process" in line, line
    finally:
        first.kill()
        first.wait()
    assert _complete(runs / "w") >= 0  # the first one's study is still loadable


def test_disk_full_stops_the_cli_in_one_line_and_resumes_after_space_is_freed(
    tmp_path: Path,
) -> None:
    """The journal fills the disk: one line. Space freed: the same command resumes and writes
    the run directory. The disk full again: `quantsearch report` ends in one line and the
    previous report and result files are left whole (written atomically), no temporary left.
    The tmpfs holds the result files (about 0.7 MB with the report's figures) once freed."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    if not _mount_tmpfs(mnt, "2m"):
        pytest.skip("needs root and mount(8) for a real tmpfs")
    try:
        # forward passes of 60 ms: a trial outlasts batch.TARGET_S, so random search's batches
        # stay one trial, one journal record, each (without the sleep, batches of many trials
        # filled the disk before one was complete: 1 of 3 tries); 0.15 s waited for nothing more
        cfg, ckpt = setup(tmp_path, "random", 400, sleep=0.06)
        cfg.write_text(cfg.read_text().replace("[search]\n", "[search]\ncache = false\n"))
        # freed below, to resume; it leaves 13 pages of the 512: the run directory's first files
        # (4 pages) and about 25 trials' journal records (1.4 kB each) before the disk is full
        (mnt / "filler").write_bytes(b"\0" * 2_040_000)
        line = _one_line_error(_search(cfg, ckpt, mnt))
        assert "free" in line, line
        done = _complete(mnt / "w")  # loadable: the cut record was not left behind
        assert done > 0
        (mnt / "filler").unlink()
        cfg.write_text(cfg.read_text().replace("n_trials = 400", f"n_trials = {done + 2}"))
        resumed = _search(cfg, ckpt, mnt)
        _, err = resumed.communicate(timeout=180)
        assert resumed.returncode == 0, err.decode()
        assert _complete(mnt / "w") == done + 2  # what was kept, and two more
        rd = mnt / "w"
        before = {p.name: p.read_bytes() for p in rd.iterdir() if p.is_file()}
        assert {"report.html", "trials.csv", "best.json"} <= set(before)
        (rd / "report.html").write_bytes(b"previous")  # so a rewrite would be needed and seen
        before["report.html"] = b"previous"
        with (mnt / "filler").open("wb", buffering=0) as fh, pytest.raises(OSError):
            while True:  # fill the disk to its last byte
                fh.write(b"\0" * 4096)
        report = subprocess.Popen(
            [sys.executable, "-m", "quantsearch", "report", str(rd)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert "free space" in _one_line_error(report)
        after = {p.name: p.read_bytes() for p in rd.iterdir() if p.is_file()}
        assert after == before  # nothing half-written, no temporary file left behind
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


def test_a_read_only_run_directory_is_refused_in_one_line(tmp_path: Path) -> None:
    mnt = tmp_path / "ro"
    mnt.mkdir()
    if not _mount_tmpfs(mnt, "1m"):
        pytest.skip("needs root and mount(8) for a real tmpfs")
    try:
        cfg, ckpt = setup(tmp_path, "random", 2)
        subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
        _one_line_error(_search(cfg, ckpt, mnt))
    finally:
        subprocess.run(["umount", str(mnt)], check=False)
