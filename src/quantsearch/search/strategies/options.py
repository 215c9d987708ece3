"""What ``[search.strategy] options`` may hold, per strategy: checked when the config loads.

Each :class:`~quantsearch.search.strategies.base.Strategy` lists the options a config may set
(an :class:`Option` per name: its kind and range). :func:`check_options` runs at config load, so
a misspelt name, a wrong type or a value the sampler would take and fail on mid-search (a TPE
``n_startup_trials = -1``, a sensitivity ``keep = 0``) is one error line naming the dotted key
before the model is loaded. Options Optuna takes as functions or objects (``gamma``,
``constraints_func``, ``independent_sampler``) cannot be written in TOML and are not listed.

Upper bounds are where a larger value is a slip, not a request: a count up to
:data:`~quantsearch.validate.COUNT_MAX` (Optuna's storages keep counts in 32 bits); per-trial
work (``n_ei_candidates``, NSGA-III's reference points) at most :data:`PER_TRIAL_MAX`.

Example:
    >>> check_options({"n_startup_trials": 5}, {"n_startup_trials": Option("int", 0)}, "k")
    >>> check_options({"n_startup_trials": -1}, {"n_startup_trials": Option("int", 0)}, "k")
    Traceback (most recent call last):
    ...
    quantsearch.errors.ConfigError: k.n_startup_trials: got -1, allowed: an integer >= 0
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from quantsearch.errors import ConfigError
from quantsearch.validate import number_rule

__all__ = ["PER_TRIAL_MAX", "Option", "check_options"]

# Candidates or reference points a sampler builds for every trial: past this, one trial's
# proposal takes minutes (TPE's n_ei_candidates = 10**9 is 10**9 draws per parameter).
PER_TRIAL_MAX = 100_000


@dataclass(frozen=True)
class Option:
    """One settable option: its kind and, for numbers, its closed range.

    ``kind``: ``bool``; ``int`` (not a bool, not a float); ``float`` (a finite int or float);
    ``choice`` (one of ``choices``); ``points`` (a non-empty list of equal-length lists of
    finite numbers >= 0: NSGA-III's reference points).
    """

    kind: Literal["bool", "int", "float", "choice", "points"]
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()

    def allowed(self) -> str:
        """What a value of this option may be, in words."""
        if self.kind == "bool":
            return "true or false"
        if self.kind == "choice":
            return f"one of {list(self.choices)}"
        if self.kind == "points":
            return "a list of points, each a list of numbers >= 0, one per objective"
        what = "an integer" if self.kind == "int" else "a finite number"
        lo, hi = self.minimum, self.maximum
        if lo is not None and hi is not None:
            return f"{what} in [{_num(lo)}, {_num(hi)}]"
        if lo is not None:
            return f"{what} >= {_num(lo)}"
        return f"{what} <= {_num(hi)}" if hi is not None else what

    def accepts(self, value: Any) -> bool:
        """Whether ``value`` is one this option takes (numbers: :func:`number_rule`)."""
        if self.kind == "bool":
            return isinstance(value, bool)
        if self.kind == "choice":
            return isinstance(value, str) and value in self.choices
        if self.kind == "points":
            return _points(value) is not None
        rule = number_rule(
            value, integer=self.kind == "int", minimum=self.minimum, maximum=self.maximum
        )
        return rule is None


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _points(value: Any) -> list[list[float]] | None:
    """``value`` as reference points, or ``None`` if it is not a list of such lists."""
    if not isinstance(value, list) or not value:
        return None
    out: list[list[float]] = []
    for p in value:
        if not isinstance(p, list) or not p:
            return None
        if any(number_rule(x, minimum=0, maximum=sys.float_info.max) is not None for x in p):
            return None
        out.append([float(x) for x in p])
    return out if len({len(p) for p in out}) == 1 else None


def check_options(options: Mapping[str, Any], schema: Mapping[str, Option], key: str) -> None:
    """Refuse an option ``schema`` does not list, or a value its :class:`Option` does not
    accept, naming ``key.<option>``."""
    for name, value in options.items():
        if name not in schema:
            allowed = f"options {sorted(schema)}" if schema else "no options (it takes none)"
            raise ConfigError(f"{key}.{name}: got {value!r}, allowed: {allowed}")
        option = schema[name]
        if not option.accepts(value):
            raise ConfigError(f"{key}.{name}: got {value!r}, allowed: {option.allowed()}")


def n_points(value: Any) -> tuple[int, int]:
    """``(count, dimension)`` of reference points that :class:`Option` ``points`` accepted."""
    points = _points(value)
    assert points is not None
    return len(points), len(points[0])
