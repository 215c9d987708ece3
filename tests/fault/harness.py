"""Write faults injected into real `quantsearch` processes, as the same user CI runs as.

A file-size limit (``RLIMIT_FSIZE``, set in the child by ``preexec_fn``) makes every write past
the limit fail with ``EFBIG`` ("File too large"), the way a full disk fails one with ``ENOSPC``:
a real process, real files, no mount and no root needed. Python ignores ``SIGXFSZ`` from start-up
(the default action would kill the process instead of failing the write), and the child
restores nothing else. Raising the limit again (a second run without it) is "freeing space".
"""

from __future__ import annotations

import hashlib
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from quantsearch.cli import main

__all__ = ["Result", "digest", "in_process", "quantsearch", "run_in", "start"]


class Result:
    """A finished child: its exit status and its stderr's non-blank lines."""

    def __init__(self, proc: subprocess.CompletedProcess[bytes]) -> None:
        self.code = proc.returncode
        self.out = proc.stdout.decode(errors="replace")
        self.err = proc.stderr.decode(errors="replace")
        self.lines = [ln for ln in self.err.splitlines() if ln.strip()]

    def one_error_line(self) -> str:
        """The single ``error: ...`` line of a failed command (asserts that is all there is)."""
        assert self.code == 2, (self.code, self.err[-3000:])
        errors = [ln for ln in self.lines if ln.startswith("error")]  # not progress lines
        assert len(errors) == 1 and self.lines[-1] == errors[0], self.err[-3000:]
        assert "Traceback" not in self.err and errors[0].startswith("error: "), self.err[-3000:]
        return errors[0]


def _limit(fsize: int | None) -> None:
    if fsize is not None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # what Python's start-up does anyway


def _env(cache: Path | None) -> dict[str, str]:
    env = dict(os.environ)
    env["QUANTSEARCH_CACHE_DIR"] = "" if cache is None else str(cache)
    env["PYTHONFAULTHANDLER"] = ""
    return env


def start(
    args: list[str], *, fsize: int | None = None, cwd: Path | None = None, cache: Path | None = None
) -> subprocess.Popen[bytes]:
    """``python -m quantsearch ARGS`` with files limited to ``fsize`` bytes (None: no limit)."""
    return subprocess.Popen(
        [sys.executable, "-m", "quantsearch", *args],
        cwd=cwd,
        env=_env(cache),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=lambda: _limit(fsize),
    )


def quantsearch(
    args: list[str],
    *,
    fsize: int | None = None,
    cwd: Path | None = None,
    cache: Path | None = None,
    timeout: float = 300,
) -> Result:
    """Run ``python -m quantsearch ARGS`` to its end (see :func:`start`)."""
    proc = start(args, fsize=fsize, cwd=cwd, cache=cache)
    out, err = proc.communicate(timeout=timeout)
    return Result(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))


def run_in(folder: Path, *commands: list[str]) -> None:
    """Each ``quantsearch`` command through :func:`quantsearch.cli.main` in this process, in
    ``folder`` and with the environment :func:`start` gives a child; each must succeed (a
    fixture's set-up, whose files the tests then damage)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(folder)
        mp.setenv("QUANTSEARCH_CACHE_DIR", "")
        for args in commands:
            try:
                main(args)
            except SystemExit as exc:
                assert not exc.code, f"quantsearch {args}: exit status {exc.code}"


def in_process(
    args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Result:
    """``quantsearch ARGS`` through :func:`quantsearch.cli.main` in this process (the code a
    process runs, without its ~3 s start-up), in the current folder and with the environment
    :func:`start` gives a child; for the cases whose subject is a file's handling, not a
    process's end."""
    monkeypatch.setenv("QUANTSEARCH_CACHE_DIR", "")
    capsys.readouterr()
    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    cap = capsys.readouterr()
    return Result(subprocess.CompletedProcess(args, code, cap.out.encode(), cap.err.encode()))


def digest(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (hidden ones too: a temporary left behind shows) by its
    relative path, as a SHA-256."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }
