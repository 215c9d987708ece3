"""The evaluation cache: config hash -> result, one evaluation per config across threads.

A repeat of a config (TPE re-proposes configs it has seen) is answered from here at no cost.
The results also live in each trial's user attributes, so :meth:`EvaluationCache.restore`
rebuilds the cache when a search resumes.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from optuna.trial import FrozenTrial

from quantsearch.search.evaluate import Evaluation
from quantsearch.search.trial import TrialInfo

__all__ = ["CachedResult", "EvaluationCache"]


@dataclass
class CachedResult:
    metrics: dict[str, float] | None
    error: str | None
    trial: int  # the trial that evaluated it
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> CachedResult:
        return cls(
            d.get("metrics"), d.get("error"), int(d.get("trial", -1)), float(d.get("seconds", 0.0))
        )


@dataclass
class EvaluationCache:
    """In-process cache: config hash -> result, with one evaluation per hash across threads."""

    results: dict[str, CachedResult] = field(default_factory=dict)
    _inflight: dict[str, threading.Event] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def get_or_evaluate(
        self, key: str, trial_number: int, evaluate: Callable[[], Evaluation]
    ) -> tuple[CachedResult, bool]:
        """The result for ``key`` and whether it came from the cache."""
        while True:
            with self._lock:
                if key in self.results:
                    return self.results[key], True
                event = self._inflight.get(key)
                if event is None:
                    event = self._inflight[key] = threading.Event()
                    break
            event.wait()  # another thread is evaluating this very config
        try:
            ev = evaluate()
            result = CachedResult(
                ev.metrics if ev.error is None else None, ev.error, trial_number, ev.seconds
            )
            with self._lock:
                self.results[key] = result
            return result, False
        finally:
            with self._lock:
                self._inflight.pop(key).set()

    def peek(self, key: str) -> CachedResult | None:
        with self._lock:
            return self.results.get(key)

    def put(self, key: str, result: CachedResult) -> None:
        with self._lock:
            self.results.setdefault(key, result)

    def __len__(self) -> int:
        return len(self.results)

    def known(self) -> int:
        """Configs evaluated or being evaluated now (by another thread): what a search that stops
        on exhaustion has in hand. A thread that counted only the results went on taking
        tickets while the last configs were in flight, and spent them on repeats."""
        with self._lock:  # len(self): a view of a shared cache counts what it asked for
            return len(self) + len(self._inflight.keys() - self.results.keys())

    def restore(self, trials: Sequence[FrozenTrial]) -> None:
        """Rebuild from finished trials (on resume, or from another study sharing configs)."""
        for ft in trials:
            t = TrialInfo.from_trial(ft)
            key = t.config_hash
            if key is None or not t.evaluated or key in self.results:
                continue
            seconds = float(t.eval_seconds or 0.0)
            if t.state == "COMPLETE" and t.metrics:
                self.results[key] = CachedResult(dict(t.metrics), None, t.number, seconds)
            elif t.config_failed:
                self.results[key] = CachedResult(None, t.error, t.number, seconds)
