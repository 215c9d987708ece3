"""TPE's next proposal computed ahead, in a helper process, while the trial before it runs.

After its random start-up, TPE's proposal for trial ``m + 1`` reads the result of trial ``m``,
so the batched trial path runs one trial a batch and the proposal (two Parzen estimators over
every finished trial, Optuna's arithmetic: about 0.6 ms of a trial at 1,000 trials) sits
between two evaluations. What trial ``m``'s result changes in that proposal is one bit:
whether trial ``m`` is among the trials below (the best ``gamma(n)``, sorted as
``TPESampler``'s split sorts them) or not. Adding one trial to the sorted lists leaves the
others' order as it was, so the trials below are either the first ``gamma(n) - 1`` of the
others and trial ``m``, or the first ``gamma(n)`` of the others; trial ``m``'s point is known
once it is proposed, and the proposal's draws from the random state are the same in both
cases. So while trial ``m`` is evaluated, :class:`Ahead`'s process computes both proposals,
each from a copy of the sampler's history and its random state; the sampler then takes the one
whose trials below are those it finds itself, and sets its random state to what the draws
left, and has the proposal it would have computed, draw for draw
(``tests/search/strategies/test_tpe_ahead.py`` against Optuna's ``TPESampler``). In any other
case (the reply not there yet, another trial than ``m`` finished since, the random state used
since, trials read out of number order) the sampler computes the proposal itself, as before.

The process is forked from the search once it has :data:`START_AT` finished trials, so it has
the sampler's modules and history as they are (a spawned one would import torch, seconds);
the search sends it each trial's entry of the history as it comes. It closes every descriptor
but its two pipe ends (a run directory's lock must not outlive the search in it), ignores
SIGINT (a Ctrl-C is the search's to answer), and exits when the sampler's end of the pipe
closes (the search done with it, or killed: the kernel closes it) or after :data:`IDLE_S`
without a request. Linux only (a fork of a process with threads is not safe on macOS).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import pickle
import select
import signal
import struct
import sys
import time
import warnings
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np

from quantsearch.search.strategies.tpe_history import History

__all__ = ["IDLE_S", "START_AT", "WAIT_S", "Ahead", "Point", "available"]

START_AT = 64  # finished trials before the process is forked: short searches never fork
IDLE_S = 10.0  # the process exits after this long without a request
# How long a proposal waits for the helper's reply: not at all (the sampler then computes it
# itself, as fast as the helper would; tests wait, to take every reply that can be taken)
WAIT_S = 0.0

# (observations below, observations above, the random state) -> the proposal's internal values
Point = Callable[[np.ndarray, np.ndarray, np.random.RandomState], list[float]]
_HEADER = struct.Struct("<I")


def available() -> bool:
    """Whether this platform forks the helper (Linux) and the random state reads as expected."""
    return sys.platform.startswith("linux") and hasattr(os, "fork") and _layout_is_known()


class Ahead:
    """The helper process of one sampler's history (see the module doc).

    Args:
        history: the sampler's history; its entries from now on go to the process
            (``history.log``), which starts with a copy of it.
        gamma: the trials below out of ``n`` (``TPESampler``'s gamma).
        point: the proposal from the observations below and above and the random state.
    """

    def __init__(self, history: History, gamma: Callable[[int], int], point: Point) -> None:
        history.log = []
        asks_r, asks_w = os.pipe()
        replies_r, replies_w = os.pipe()
        with warnings.catch_warnings():  # Python >= 3.12 warns of a fork with threads
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid == 0:  # the helper: never returns
            try:
                signal.signal(signal.SIGINT, signal.SIG_IGN)
                _no_wakeup_preemption()
                _close_others(asks_r, replies_w)
                _serve(asks_r, replies_w, history, gamma, point)
            finally:
                os._exit(0)
        os.close(asks_r)
        os.close(replies_w)
        os.set_blocking(replies_r, False)
        os.set_blocking(asks_w, False)  # a helper that does not keep up must not stall the search
        self.pid, self.history = pid, history
        self._asks, self._replies = asks_w, replies_r
        self._read = b""
        self._asked: tuple[int, int, tuple[float, ...], bytes] | None = None
        self._reply: tuple[int, Any, list[tuple[tuple[int, ...], list[float]]]] | None = None
        self._outstanding: int | None = None  # the request not answered yet
        self.gave_up = False  # closed: it did not keep up (the sampler does not start another)
        self.hits = self.misses = 0
        self.last_below: tuple[int, ...] = ()  # the rows below of the last proposal taken
        self._finalizer = weakref.finalize(self, _close, pid, asks_w, replies_r)

    @property
    def alive(self) -> bool:
        return self._finalizer.alive

    def ask(self, number: int, row: tuple[float, ...], rng: np.random.RandomState) -> None:
        """Trial ``number`` has been proposed (``row``: its parameters' internal values in the
        history's order) and the random state is ``rng``'s: compute trial ``number + 1``'s
        two proposals while it runs. One request at a time: while the last is unanswered
        (the helper is behind: a busy machine), none is sent, and the history's entries wait for
        the next one."""
        self._asked = self._reply = None
        self._drain()
        if self._outstanding is not None:
            return
        state = _state(rng)
        log, self.history.log = self.history.log or [], []
        try:
            _send(self._asks, (log, (number, row, state)))
        except BlockingIOError:  # the pipe is full: the helper is far behind (or stuck)
            self.gave_up = True
            self.close()
            return
        except OSError:  # the process is gone (idle, or killed): the sampler computes alone
            self.close()
            return
        self._asked = (number + 1, self.history.n, row, state)
        self._outstanding = number + 1

    def take(
        self, number: int, below: np.ndarray, rng: np.random.RandomState
    ) -> list[float] | None:
        """The proposal of trial ``number`` computed ahead, for the trials ``below`` (rows of
        the history, by trial number) and the random state ``rng`` has now, which is then set
        to what the proposal's draws left; ``None`` where there is none that is exactly it."""
        asked, self._asked = self._asked, None
        h = self.history
        if asked is None or asked[0] != number or h.n != asked[1] + 1 or not h.in_order:
            return self._missed()
        if h.missing or h.number[h.n - 1] != number - 1 or tuple(h.x[h.n - 1]) != asked[2]:
            return self._missed()
        if _state(rng) != asked[3]:
            return self._missed()  # drawn from since
        reply = self._receive(number)
        if reply is None:
            return self._missed()
        key = tuple(below.tolist())
        for rows, point in reply[2]:
            if rows == key:
                _set_state(rng, reply[1])
                self.hits += 1
                self.last_below = rows
                return list(point)
        return self._missed()

    def close(self) -> None:
        """End the process: it exits on the closed pipe (reaped once it has, not waited for)."""
        self._finalizer()

    def _missed(self) -> list[float] | None:
        self.misses += 1
        return None

    def _receive(self, number: int) -> Any:
        """The reply for trial ``number`` if it has come, waiting up to :data:`WAIT_S`."""
        deadline = time.monotonic() + WAIT_S
        while True:
            if not self._drain():
                return None
            left = deadline - time.monotonic()
            if (self._reply is not None and self._reply[0] == number) or left <= 0:
                return self._reply if self._reply is not None and self._reply[0] == number else None
            select.select([self._replies], [], [], left)

    def _drain(self) -> bool:
        """Read the replies that have come (keeping the last); ``False``: the helper is gone."""
        try:  # replies are small: one read takes what has come
            self._read += os.read(self._replies, 1 << 20)
        except BlockingIOError:
            pass
        except OSError:
            return False
        while len(self._read) >= _HEADER.size:
            (size,) = _HEADER.unpack_from(self._read)
            if len(self._read) < _HEADER.size + size:
                break
            self._reply = pickle.loads(self._read[_HEADER.size : _HEADER.size + size])
            self._read = self._read[_HEADER.size + size :]
            if self._reply[0] == self._outstanding:
                self._outstanding = None
        return True


# MT19937's state struct (numpy/random/src/mt19937/mt19937.h): uint32 key[624], int pos. The
# proposal draws uniform numbers only, which read and advance exactly these (a legacy
# RandomState's cached Gaussian is neither read nor changed by them): equal bytes, equal
# draws. Read and written through the bit generator's ctypes interface, a microsecond, where
# get_state and set_state take about 70 us each; the layout is checked against get_state
# before the first use (available()).
_MT_BYTES = 624 * 4 + 4


def _address(rng: np.random.RandomState) -> int:
    """The address of ``rng``'s MT19937 state (the legacy RandomState's bit generator is a
    private attribute)."""
    return int(rng._bit_generator.ctypes.state_address)


def _state(rng: np.random.RandomState) -> bytes:
    """``rng``'s MT19937 state, as bytes: to send, and to compare."""
    return ctypes.string_at(_address(rng), _MT_BYTES)


def _set_state(rng: np.random.RandomState, state: bytes) -> None:
    ctypes.memmove(_address(rng), state, _MT_BYTES)


@functools.cache
def _layout_is_known() -> bool:
    """Whether :func:`_state` reads what ``get_state`` reports, and :func:`_set_state`
    writes what ``set_state`` would (checked once, on a seeded state)."""
    try:
        rng = np.random.RandomState(1)
        rng.random_sample(7)
        got: Any = rng.get_state()
        key, pos = got[1], got[2]
        state = _state(rng)
        if state != key.tobytes() + int(pos).to_bytes(4, sys.byteorder, signed=True):
            return False
        other = np.random.RandomState(2)
        _set_state(other, state)
        return bool(np.array_equal(other.random_sample(5), rng.random_sample(5)))
    except (AttributeError, TypeError, ValueError, OSError):
        return False


_UNREAPED: list[int] = []  # helpers closed that had not exited yet: reaped later


def _close(pid: int, asks: int, replies: int) -> None:
    """Close the pipe ends (the helper exits on it) and reap the helpers that have exited,
    without waiting for one: on a busy machine a helper may take a while to get the CPU to
    exit, and the search must not wait for it (at its end, or its interpreter's exit)."""
    for fd in (asks, replies):
        with contextlib.suppress(OSError):
            os.close(fd)
    _UNREAPED.append(pid)
    for child in list(_UNREAPED):
        try:
            done, _ = os.waitpid(child, os.WNOHANG)
        except ChildProcessError:  # reaped elsewhere
            done = child
        if done == child:
            _UNREAPED.remove(child)


def _no_wakeup_preemption() -> None:
    """Linux's SCHED_BATCH at the lowest priority (nice 19): woken by the search's request,
    the helper does not preempt the search on its CPU (a woken process of the default policy
    may: measured, a request's write then cost the search about 0.5 ms), and on a busy machine
    it yields to every other process (it answers late there, and the search computes the
    proposal itself). Not SCHED_IDLE: that starved it for seconds, its exit included."""
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
    with contextlib.suppress(OSError):
        os.nice(19 - os.nice(0))


def _close_others(*keep: int) -> None:
    """Close every descriptor but stdin, stdout, stderr and ``keep``."""
    start = 3
    for fd in sorted(keep):
        os.closerange(start, fd)
        start = fd + 1
    os.closerange(start, os.sysconf("SC_OPEN_MAX") if hasattr(os, "sysconf") else 65536)


def _send(fd: int, message: Any) -> None:
    """Write one framed message whole (``fd`` may be non-blocking: a write cut short raises
    ``BlockingIOError``, and the stream is then unusable)."""
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    frame = _HEADER.pack(len(data)) + data
    if os.write(fd, frame) != len(frame):
        raise BlockingIOError("the helper's pipe is full")


def _read_exact(fd: int, size: int) -> bytes | None:
    out = b""
    while len(out) < size:
        got = os.read(fd, size - len(out))
        if not got:
            return None  # the sampler's end closed
        out += got
    return out


def _serve(
    asks: int, replies: int, history: History, gamma: Callable[[int], int], point: Point
) -> None:
    """The helper's loop: read every request there is, add their entries to the history,
    answer the last one."""
    while True:
        request: tuple[int, tuple[float, ...], Any] | None = None
        ready, _, _ = select.select([asks], [], [], IDLE_S)
        if not ready:
            return  # idle
        while ready:
            header = _read_exact(asks, _HEADER.size)
            body = header and _read_exact(asks, _HEADER.unpack(header)[0])
            if body is None:
                return
            log, request = pickle.loads(body)
            for entry in log:
                history.insert(entry)
            ready, _, _ = select.select([asks], [], [], 0)
        if request is not None:
            _send(replies, _both(history, gamma, point, *request))


def _both(
    h: History, gamma: Callable[[int], int], point: Point, number: int, row: Any, state: Any
) -> tuple[int, Any, list[tuple[tuple[int, ...], list[float]]]]:
    """Trial ``number + 1``'s proposals, trial ``number`` (of parameters ``row``) below and
    not, each with its rows below; the random state after the draws (the same for both)."""
    if h.nan or h.missing or not h.in_order or number <= h.last:
        return number + 1, None, []
    n = h.n + 1
    x = np.concatenate([h.x[: h.n], np.array([row], dtype=float)])
    below_too = h.below(gamma(n) - 1)
    below_not = h.below(gamma(n))
    assert below_too is not None and below_not is not None
    out, rng = [], np.random.RandomState()
    for below in (np.append(below_too, h.n).astype(int), below_not):
        keep = np.ones(n, dtype=bool)
        keep[below] = False
        _set_state(rng, state)
        out.append((tuple(below.tolist()), point(x[below], x[keep], rng)))
    return number + 1, _state(rng), out
