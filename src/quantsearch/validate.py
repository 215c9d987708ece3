"""Typed getters for config tables: every error names the dotted key, the rule and the value.

A leaf module (it imports only :mod:`quantsearch.errors` and the leaf :mod:`quantsearch.paths`),
so every section parser and every plug-in that validates its own fields (the number formats)
can use it without importing the config that composes the sections.

Example:
    >>> get_int({"epochs": 3}, "epochs", "train", 60, minimum=1)
    3
    >>> check_keys({"epoch": 3}, {"epochs", "lr"}, "train")
    Traceback (most recent call last):
    ...
    quantsearch.errors.ConfigError: train.epoch: got an unknown key, allowed: the keys of train: ['epochs', 'lr']
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any

from quantsearch.errors import ConfigError
from quantsearch.paths import CONTROL

if TYPE_CHECKING:
    import torch

__all__ = [
    "COUNT_MAX",
    "EPOCHS_MAX",
    "LR_MAX",
    "LR_MIN",
    "REPEATS_MAX",
    "SEEDS_MAX",
    "SEED_MAX",
    "THREADS_MAX",
    "TIMEOUT_MAX",
    "check_device",
    "check_keys",
    "check_unique",
    "get_bool",
    "get_float",
    "get_int",
    "get_str",
    "get_table",
    "given",
    "join_key",
    "number_rule",
    "study_name",
    "toml_key",
]

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_NAME = re.compile(r"[A-Za-z0-9_.][A-Za-z0-9_.-]*")  # not '-' first: '-', '-rf' read as options
MAX_NAME = 200  # characters of a study name: a folder name (file systems allow 255 bytes)
_DEVICE = re.compile(r"auto|cpu|cuda(:(0|[1-9][0-9]*))?")  # no leading zeros: torch refuses them

# Seeds reach numpy, scikit-learn and Optuna's samplers, which all take 0 <= seed < 2**32.
SEED_MAX = 2**32 - 1
# Counts (trials, evaluations) are stored in 32-bit integer columns by Optuna's RDB storage.
COUNT_MAX = 2**31 - 1
# Threads or processes one command starts (n_jobs, torch_threads, --workers): each is a thread
# or a process that exists at once, so a count far past any machine's cores is a mistake, not
# a request (2**63 - 1 threads hung the thread pool's start).
THREADS_MAX = 1024
# Training epochs (train, finetune): an epoch of the zoo's models takes 0.1-10 s, so 10**4 is
# hours to days; 10**9 (a typo, a stray exponent) would run for years.
EPOCHS_MAX = 10_000
# Timed calls of a latency measurement (summary --repeats/--warmup): 10**5 calls of a small
# model take minutes; more is never needed for a median.
REPEATS_MAX = 100_000
# Learning rates (train.lr, finetune --lr): AdamW moves every weight by about lr each step, so
# past 10 the weights leave any range a format holds (1e308 overflowed float32 mid-training),
# and below 1e-10 the step is lost in float32's rounding of any weight above 1e-3 (none moves).
LR_MIN, LR_MAX = 1e-10, 10.0
# Runs per strategy of a comparison (compare.seeds, --seeds): a Wilcoxon test separates two
# strategies at p < 1e-6 with 30; 2**31 - 1 seeds was a MemoryError before the first run.
SEEDS_MAX = 1000
# Seconds of a search's timeout (search.timeout, --timeout): a year; 1e308 can only be a slip.
TIMEOUT_MAX = 365 * 24 * 3600


def join_key(key: str, name: str) -> str:
    """``key.name``, or ``name`` at the top level (``key == ""``)."""
    return f"{key}.{name}" if key else name


def toml_key(key: str, name: str) -> str:
    """``key.name``, quoting ``name`` as TOML would.

    Example:
        >>> toml_key("quantize.by_name", "seq_blocks.2")
        'quantize.by_name."seq_blocks.2"'
    """
    quoted = name if _BARE_KEY.fullmatch(name) else f'"{name}"'
    return f"{key}.{quoted}" if key else quoted


def check_keys(table: Mapping[str, Any], allowed: Collection[str], key: str) -> None:
    """Reject unknown keys, listing the allowed ones."""
    unknown = sorted(set(table) - set(allowed))
    if unknown:
        raise ConfigError(  # quoted as TOML: ["search.objectives"] is no [search.objectives]
            f"{toml_key(key, str(unknown[0]))}: got an unknown key, allowed: "
            f"{f'the keys of {key}' if key else 'the top-level keys'}: {sorted(allowed)}"
        )


def get_table(table: Mapping[str, Any], name: str, key: str) -> dict[str, Any]:
    """``table[name]`` as a dict (``{}`` when absent); anything but a table is an error."""
    value = table.get(name, {})
    if not isinstance(value, Mapping):
        raise ConfigError(f"{join_key(key, name)}: got {given(value)}, allowed: a table")
    return dict(value)


def get_str(
    table: Mapping[str, Any],
    name: str,
    key: str,
    default: str | None = None,
    *,
    required: bool = False,
) -> str | None:
    """``table[name]``, which must be a non-blank string; ``default`` when absent (unless
    ``required``). No key takes an empty string: ``name = ""`` must not mean the default."""
    if name not in table:
        if required:
            raise ConfigError(f"{join_key(key, name)}: got no value, allowed: a string (required)")
        return default
    value = table[name]
    if not isinstance(value, str):
        raise ConfigError(f"{join_key(key, name)}: got {given(value)}, allowed: a string")
    if not value.strip():
        raise ConfigError(f"{join_key(key, name)}: got {value!r}, allowed: a non-empty string")
    if CONTROL.search(value):
        raise ConfigError(
            f"{join_key(key, name)}: got {value!r}, allowed: a string without control "
            "characters (NUL, newline, tab, bidi overrides, ...)"
        )
    return value


def check_unique(values: list[Any] | tuple[Any, ...], key: str) -> None:
    """Refuse a list that names the same thing twice (a copy-paste slip, never a request).

    Example:
        >>> check_unique(["tpe", "tpe"], "compare.strategies")
        Traceback (most recent call last):
        ...
        quantsearch.errors.ConfigError: compare.strategies: got 'tpe' twice, allowed: each once
    """
    seen: list[Any] = []
    for v in values:
        if v in seen:
            raise ConfigError(f"{key}: got {v!r} twice, allowed: each once")
        seen.append(v)


def check_device(value: str, key: str) -> str:
    """A torch device name: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.

    Example:
        >>> check_device("cuda:1", "train.device")
        'cuda:1'
    """
    if not _DEVICE.fullmatch(value):
        raise ConfigError(f"{key}: got {value!r}, allowed: 'auto', 'cpu', 'cuda' or 'cuda:N'")
    return value


def resolve_device(name: str, key: str) -> torch.device:
    """The torch device ``name`` (checked by :func:`check_device`) means here: ``auto`` is CUDA
    when torch finds a device, else the CPU; a CUDA device torch does not find is refused in
    one line naming ``key``.

    Example:
        >>> str(resolve_device("cpu", "search.device"))
        'cpu'
    """
    import torch  # lazy: the config checks run before torch is needed

    check_device(name, key)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    # The index is compared as Python reads it: torch keeps 8 bits of it ('cuda:256' is cuda:0)
    index = int(name.partition(":")[2] or 0)
    found = torch.cuda.device_count()
    if index >= found:
        allowed = (
            f"'auto', 'cpu' or cuda:0 to cuda:{found - 1}"
            if found
            else "'auto' or 'cpu' (torch finds no CUDA device here)"
        )
        raise ConfigError(f"{key}: got {name!r}, allowed: {allowed}")
    return torch.device(name)


def study_name(value: str, key: str) -> str:
    """A study name: letters, digits, ``-`` (not first), ``_`` and ``.``, not ``.`` or ``..``, at most
    :data:`MAX_NAME` characters; never a path.

    Example:
        >>> study_name("lab-tpe", "--study")
        'lab-tpe'
        >>> study_name("../x", "--study")
        Traceback (most recent call last):
        ...
        quantsearch.errors.ConfigError: --study: got '../x', allowed: a name of letters, digits, '-' (not first), '_' and '.', not a path
    """
    if not _NAME.fullmatch(value) or value in (".", ".."):
        raise ConfigError(
            f"{key}: got {value!r}, allowed: a name of letters, digits, '-' (not first), '_' and "
            "'.', not a path"
        )
    if len(value) > MAX_NAME:  # it names a folder, and a comparison's folder adds '-compare'
        raise ConfigError(
            f"{key}: got a name of {len(value)} characters ({value[:16]!r}...), allowed: at most "
            f"{MAX_NAME} (it names a folder)"
        )
    return value


def number_rule(
    value: Any,
    *,
    integer: bool = False,
    minimum: float | None = None,
    maximum: float | None = None,
    positive: bool = False,
) -> str | None:
    """The numbers allowed, in words (``"an integer in [0, 10]"``), if ``value`` is not one of
    them, else ``None``: a message's ``allowed:`` part.

    An integer is an ``int`` (not a bool, not a float); any other number a finite ``int`` or
    ``float``, ``> 0`` if ``positive``; both within ``[minimum, maximum]`` where given: the
    range check behind :func:`get_int`, :func:`get_float` and the strategies' option schemas.
    NaN and infinities are refused (an infinite weight or bound makes every trial compare
    equal); an integer too large for a float (``10**400``) is compared exactly.

    Example:
        >>> number_rule(-1, integer=True, minimum=0)
        'an integer >= 0'
        >>> number_rule(10**400, maximum=1e6)
        'a finite number <= 1000000.0'
        >>> number_rule(3, integer=True, minimum=0) is None
        True
    """
    rules = ["> 0"] if positive else []
    if minimum is not None and maximum is not None:
        rules.append(f"in [{minimum}, {maximum}]")
    elif minimum is not None:
        rules.append(f">= {minimum}")
    elif maximum is not None:
        rules.append(f"<= {maximum}")
    allowed = " ".join(["an integer" if integer else "a finite number", " and ".join(rules)])
    allowed = allowed.strip()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return allowed
    if integer and not isinstance(value, int):
        return allowed
    if isinstance(value, float) and not math.isfinite(value):
        return allowed
    if positive and not value > 0:
        return allowed
    if minimum is not None and value < minimum:
        return allowed
    if maximum is not None and value > maximum:
        return allowed
    return None


def given(value: Any) -> str:
    """``value`` as a message's ``got`` part: its repr, a huge integer by its length, and a
    long repr cut at 60 characters (a stray paste must not fill the terminal).

    Example:
        >>> given("tpee"), given(10**400), given(-1)
        ("'tpee'", 'an integer of 401 digits', '-1')
    """
    if isinstance(value, int) and not isinstance(value, bool) and len(str(abs(value))) > 30:
        return f"an integer of {len(str(abs(value)))} digits"
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."


def get_int(
    table: Mapping[str, Any],
    name: str,
    key: str,
    default: int | None = None,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
) -> int | None:
    """``table[name]``, which must be an integer (not a bool) in ``[minimum, maximum]``.

    Example:
        >>> get_int({"seed": -1}, "seed", "", minimum=0)
        Traceback (most recent call last):
        ...
        quantsearch.errors.ConfigError: seed: got -1, allowed: an integer >= 0
    """
    if name not in table:
        return default
    value = table[name]
    rule = number_rule(value, integer=True, minimum=minimum, maximum=maximum)
    if rule is not None:
        raise ConfigError(f"{join_key(key, name)}: got {given(value)}, allowed: {rule}")
    return int(value)


def get_float(
    table: Mapping[str, Any],
    name: str,
    key: str,
    default: float | None = None,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    positive: bool = False,
) -> float | None:
    """``table[name]`` as a float: a finite number (not a bool), ``> 0`` if ``positive``,
    within ``[minimum, maximum]`` where those are given (:func:`number_rule`).

    Example:
        >>> get_float({"lr": 10**400}, "lr", "train", maximum=10.0)
        Traceback (most recent call last):
        ...
        quantsearch.errors.ConfigError: train.lr: got an integer of 401 digits, allowed: a finite number <= 10.0
    """
    if name not in table:
        return default
    value = table[name]
    rule = number_rule(value, minimum=minimum, maximum=maximum, positive=positive)
    if rule is None:
        try:
            return float(value)
        except OverflowError:  # an integer past float's range (10**400)
            rule = number_rule(float("inf"), minimum=minimum, maximum=maximum, positive=positive)
    shown = (
        _shown(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    )
    raise ConfigError(f"{join_key(key, name)}: got {shown or given(value)}, allowed: {rule}")


def _shown(value: int | float) -> str:
    """A number as a message shows it: a float (``-1.0``), or a huge integer by its length."""
    try:
        return str(float(value))
    except OverflowError:
        return f"an integer of {len(str(abs(value)))} digits"


def get_bool(table: Mapping[str, Any], name: str, key: str, default: bool) -> bool:
    """``table[name]``, which must be ``true`` or ``false``."""
    if name not in table:
        return default
    value = table[name]
    if not isinstance(value, bool):
        raise ConfigError(f"{join_key(key, name)}: got {given(value)}, allowed: true or false")
    return value
