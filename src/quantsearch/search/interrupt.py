"""Ctrl-C during a search: at once inside an evaluation, deferred while a trial is being stored.

A ``KeyboardInterrupt`` that lands while Optuna writes a trial's result (``tell``) or asks for
the next trial cuts that write in half; Optuna 5 then fails with an ``UnboundLocalError`` from
its own ``finally`` and a 50-line traceback. Inside :func:`deferred` the first SIGINT is only
noted, unless the main thread is evaluating a config (:func:`immediate`: Optuna records that
trial as failed and it is retried on resume); the trial loop stops at its next safe point
(:func:`check`). A second SIGINT interrupts at once, wherever it lands (the journal is repaired
on open). The last flush of what finished runs :func:`shielded`: a SIGINT then is dropped,
not raised between the journal's write and its bookkeeping (which would write those records
twice on the next flush).

Only the main thread receives signals: trials in other threads (``n_jobs > 1``) finish the one
they are running and stop at their next :func:`check`.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

__all__ = ["check", "deferred", "immediate", "shielded"]


class _State:
    active = False  # our handler is installed
    pending = False  # a SIGINT arrived and waits for a safe point
    evaluating = False  # the main thread is inside an evaluation: interrupt at once
    raised = False  # a KeyboardInterrupt is on its way out of the trial loop


_state = _State()


class _DropInterrupted(logging.Filter):
    """Optuna logs a trial cut by Ctrl-C as failed, with the KeyboardInterrupt's traceback and
    the value it did not get; the CLI says it in one line instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not (isinstance(exc, KeyboardInterrupt) or _state.raised)


_FILTER = _DropInterrupted()


def _quiet_optuna() -> None:
    logger = logging.getLogger("optuna")
    for f in (logger, *logger.handlers):
        if _FILTER not in f.filters:
            f.addFilter(_FILTER)


def _handler(signum: int, frame: FrameType | None) -> None:
    interrupt_now = _state.evaluating or _state.pending
    _state.pending = True  # also stops the other threads at their next check()
    if interrupt_now:
        _state.raised = True
        raise KeyboardInterrupt


@contextmanager
def deferred() -> Iterator[None]:
    """Defer SIGINT to the next :func:`check` while the body runs (main thread, default
    handler only: a handler of the caller's own is left alone); raise it on the way out."""
    if (
        _state.active
        or threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    ):
        yield
        return
    _state.active, _state.pending = True, False
    _quiet_optuna()
    signal.signal(signal.SIGINT, _handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        stop = _state.pending
        _state.active = _state.evaluating = _state.pending = _state.raised = False
    if stop:  # a SIGINT after the last check
        raise KeyboardInterrupt


def check() -> None:
    """Raise the deferred ``KeyboardInterrupt``, if a SIGINT is waiting (any thread)."""
    if _state.pending:
        _state.raised = True
        raise KeyboardInterrupt


@contextmanager
def immediate() -> Iterator[None]:
    """A SIGINT interrupts the body at once (in the main thread: it is where signals land)."""
    if not _state.active or threading.current_thread() is not threading.main_thread():
        yield
        return
    check()
    _state.evaluating = True
    try:
        yield
    finally:
        _state.evaluating = False


@contextmanager
def shielded() -> Iterator[None]:
    """SIGINT ignored while the body runs (main thread, default handler only: a handler of the
    caller's own is left alone), for a few milliseconds of work that must not be cut."""
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    ):
        yield
        return
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
