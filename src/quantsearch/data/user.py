"""A user's own dataset: ``data.name = "file.py:load"`` (or ``"package.module:load"``).

The callable may return any of:

- a :class:`~quantsearch.data.DataSplits`, used as is;
- a dict ``{"train": ..., "val": ..., "test": ...}`` whose values are ``(x, y)`` pairs or torch
  ``Dataset``\\ s (an optional ``"class_names"`` entry names the classes);
- one ``(x, y)`` pair or one ``Dataset``, split here into train/validation/test, seeded and
  stratified (``val_fraction`` and ``test_fraction``, 0.2 each by default).

Integer labels are class indices (int64; 1-D, >= 0), and so are floating-point labels that are
1-D whole numbers >= 0. Other floating-point labels (fractional values, several columns per
sample) are regression targets, kept as float32: such a dataset is split shuffled but not
stratified, and has no classes (``num_classes`` 0).

Any other ``[data]`` option is passed to the callable as a keyword argument, so an option the
callable does not accept is an error that lists the ones it does. A ``Dataset`` is materialised
into tensors once, here; features are not rescaled (that is the loader's business).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from quantsearch.data.inputs import stack_dataset
from quantsearch.data.splits import DataSplits, Split
from quantsearch.errors import ConfigError
from quantsearch.spec import load_callable

__all__ = ["is_classes", "load_user_dataset", "materialise"]

_SPLIT_OPTIONS = ("val_fraction", "test_fraction")
# Class indices above this are a slip (a regression target stored as integers, an ID column):
# the splits name every class up to the largest label.
MAX_CLASSES = 1_000_000
_SPLITS = ("train", "val", "test")


def load_user_dataset(
    spec: str, *, options: dict[str, Any], seed: int = 0, base_dir: Path | None = None
) -> DataSplits:
    """Call the user's loader named by ``spec`` and turn what it returns into splits.

    Args:
        spec: ``"file.py:load"`` (relative to ``base_dir``) or ``"package.module:load"``.
        options: the ``[data]`` options; ``val_fraction``/``test_fraction`` steer the split of a
            single ``(x, y)`` or ``Dataset``, every other option is a keyword argument.
        seed: seeds that split.
        base_dir: the config file's folder.

    Raises:
        ConfigError: naming ``data.name`` when the spec, the call or its result is invalid.

    Example:
        >>> import sys, types, torch
        >>> mod = types.ModuleType("toy_data"); sys.modules["toy_data"] = mod
        >>> mod.load = lambda: (torch.randn(50, 3), torch.arange(50) % 2)
        >>> splits = load_user_dataset("toy_data:load", options={})
        >>> len(splits.train), len(splits.val), len(splits.test), splits.num_classes
        (30, 10, 10, 2)
    """
    key = "data.name"
    fn = load_callable(spec, key=key, base_dir=base_dir)
    split_opts = {k: options[k] for k in _SPLIT_OPTIONS if k in options}
    kwargs = {k: v for k, v in options.items() if k not in _SPLIT_OPTIONS}
    _check_kwargs(fn, kwargs, spec)
    try:
        result = fn(**kwargs)
    except (Exception, SystemExit) as exc:  # sys.exit() in a loader: not a silent success
        raise ConfigError(
            f"{key}: got {spec!r}, whose call failed ({type(exc).__name__}: {exc}), allowed: a "
            "function that returns the data"
        ) from exc
    where = f"{key}: got {spec!r}, which returned"
    if isinstance(result, DataSplits):
        if split_opts:
            raise ConfigError(
                f"data: got {sorted(split_opts)}, allowed: none ({spec!r} returns splits)"
            )
        return result
    if isinstance(result, Mapping):
        if split_opts:
            raise ConfigError(
                f"data: got {sorted(split_opts)}, allowed: none ({spec!r} returns splits)"
            )
        return _from_dict(result, spec, where)
    x, y = materialise(result, where=where)
    return _split(x, y, spec, split_opts, seed)


def _check_kwargs(fn: Callable[..., Any], kwargs: dict[str, Any], spec: str) -> None:
    if not kwargs:
        return
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):  # builtins without a signature: let the call decide
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    accepted = sorted(
        n
        for n, p in params.items()
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    )
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise ConfigError(
            f"data.{unknown[0]}: got an unknown key, allowed: the keys of {spec!r}: "
            f"{sorted([*accepted, *_SPLIT_OPTIONS])}"
        )


def materialise(value: Any, *, where: str = "data") -> tuple[torch.Tensor, torch.Tensor]:
    """``(x, y)`` tensors from an ``(x, y)`` pair of tensors/arrays or a torch ``Dataset``.

    A ``TensorDataset`` hands over its tensors; any other ``Dataset`` is indexed once, sample
    by sample, and stacked, so evaluation never re-collates it.

    Raises:
        ConfigError: ``value`` is neither, or its labels are not numbers.
    """
    from torch.utils.data import Dataset, TensorDataset  # imports torch's data stack: on use

    if isinstance(value, TensorDataset):
        if len(value.tensors) != 2:
            raise ConfigError(
                f"{where} a TensorDataset of {len(value.tensors)} tensors, allowed: (x, y)"
            )
        x, y = value.tensors
    elif isinstance(value, Dataset):
        x, y = stack_dataset(value, f"{where} a Dataset with")
    elif isinstance(value, (tuple, list)) and len(value) == 2:
        x, y = value
    else:
        raise ConfigError(
            f"{where} a {type(value).__name__}, allowed: a DataSplits, a dict of train/val/test "
            f"splits, an (x, y) pair or a torch Dataset"
        )
    features, labels = _as_features(x, where), _as_labels(y, where)
    if len(features) != len(labels):
        raise ConfigError(
            f"{where} {len(features)} samples but {len(labels)} labels, allowed: one label "
            "per sample"
        )
    return features, labels


def _as_features(x: Any, where: str) -> torch.Tensor:
    try:
        t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
    except Exception as exc:
        raise ConfigError(
            f"{where} features that are not an array ({exc}), allowed: numbers"
        ) from None
    if t.dim() < 1:
        raise ConfigError(f"{where} features of shape {tuple(t.shape)}, allowed: (samples, ...)")
    if t.is_complex():
        raise ConfigError(f"{where} complex features ({t.dtype}), allowed: real numbers")
    if t.is_floating_point():
        bad = int((~torch.isfinite(t)).sum())
        if bad:  # every metric of a sample with NaN features is NaN: refused, not averaged in
            raise ConfigError(
                f"{where} features with {bad} NaN or infinite value(s), allowed: finite"
            )
        return _float32(t, where, "features")
    return t


def _float32(t: torch.Tensor, where: str, what: str) -> torch.Tensor:
    """``t`` (finite) as float32, which models take: a float64 past its range became inf."""
    f = t.float()
    bad = int((~torch.isfinite(f)).sum())
    if bad:
        raise ConfigError(
            f"{where} {what} with {bad} value(s) past float32's range (+-3.4e38), allowed: "
            "values a float32 holds"
        )
    return f


def _as_labels(y: Any, where: str) -> torch.Tensor:
    """Integer labels are class indices (1-D, >= 0), returned as int64, and so are floating-point
    labels that are 1-D whole numbers >= 0; any other floating-point labels (fractional values,
    several columns per sample) are regression targets, returned as float32."""
    try:
        t = torch.as_tensor(np.asarray(y) if not isinstance(y, torch.Tensor) else y)
    except Exception as exc:
        raise ConfigError(
            f"{where} labels that are not numbers ({exc}), allowed: class indices or "
            "floating-point regression targets"
        ) from None
    if t.is_complex():
        raise ConfigError(f"{where} complex labels ({t.dtype}), allowed: real numbers")
    if t.is_floating_point():
        bad = int((~torch.isfinite(t)).sum())
        if bad:
            raise ConfigError(
                f"{where} labels with {bad} NaN or infinite value(s), allowed: finite"
            )
        return t.long() if is_classes(t) else _as_targets(t, where)
    if t.dim() != 1:
        raise ConfigError(
            f"{where} integer labels of shape {tuple(t.shape)}, allowed: 1-D class indices "
            f"(or floating-point regression targets)"
        )
    if t.numel() and int(t.min()) < 0:
        raise ConfigError(f"{where} a negative label ({int(t.min())}), allowed: class indices")
    return t.long()


def _as_targets(t: torch.Tensor, where: str) -> torch.Tensor:
    if t.dim() < 1:
        raise ConfigError(f"{where} targets of shape {tuple(t.shape)}, allowed: one per sample")
    return _float32(t, where, "targets")


def is_classes(y: torch.Tensor) -> bool:
    """``y`` holds class indices: 1-D whole numbers >= 0 (else: regression targets).

    Example:
        >>> import torch
        >>> is_classes(torch.tensor([0, 2, 1])), is_classes(torch.tensor([0.5, 1.0]))
        (True, False)
    """
    if y.dim() != 1 or y.is_complex() or y.dtype == torch.bool:
        return False
    if y.is_floating_point() and not torch.equal(y, y.round()):
        return False
    return not y.numel() or int(y.min()) >= 0


def _from_dict(result: Mapping[str, Any], spec: str, where: str) -> DataSplits:
    allowed = {*_SPLITS, "class_names"}
    unknown = sorted(set(result) - allowed)
    missing = [s for s in _SPLITS if s not in result]
    if unknown or missing:
        raise ConfigError(
            f"{where} a dict with keys {sorted(result)}, allowed: {list(_SPLITS)} "
            f"(and optionally 'class_names')"
        )
    splits = {s: Split(*materialise(result[s], where=f"{where} {s!r} as")) for s in _SPLITS}
    shapes = {s: tuple(v.x.shape[1:]) for s, v in splits.items()}
    if len(set(shapes.values())) > 1:
        raise ConfigError(f"{where} splits whose samples differ in shape ({shapes}), allowed: one")
    return _assemble(
        spec, splits["train"], splits["val"], splits["test"], result.get("class_names"), where
    )


def _split(
    x: torch.Tensor, y: torch.Tensor, spec: str, opts: dict[str, Any], seed: int
) -> DataSplits:
    from sklearn.model_selection import train_test_split

    val_f = opts.get("val_fraction", 0.2)
    test_f = opts.get("test_fraction", 0.2)
    for name, v in (("val_fraction", val_f), ("test_fraction", test_f)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v < 1:
            raise ConfigError(f"data.{name}: got {v!r}, allowed: a number in (0, 1)")
    if val_f + test_f >= 1:
        raise ConfigError(
            f"data.val_fraction, data.test_fraction: got {val_f} + {test_f}, allowed: a sum below 1"
        )
    idx = np.arange(len(y))
    labels = y.numpy() if is_classes(y) else None  # regression targets: not stratified
    try:
        rest, test = train_test_split(
            idx, test_size=float(test_f), stratify=labels, random_state=seed
        )
        train, val = train_test_split(
            rest,
            test_size=float(val_f) / (1 - float(test_f)),
            stratify=None if labels is None else labels[rest],
            random_state=seed,
        )
    except ValueError as exc:
        raise ConfigError(
            f"data.name: got {spec!r}, which cannot be split stratified ({exc}), allowed: data "
            "with at least two samples of each class"
        ) from None

    def take(i: np.ndarray) -> Split:
        t = torch.from_numpy(i)  # keep the shuffled order: a head() of it is still stratified
        return Split(x[t], y[t])

    return _assemble(
        spec, take(train), take(val), take(test), None, f"data.name: got {spec!r}, which returned"
    )


def _assemble(
    spec: str, train: Split, val: Split, test: Split, class_names: Any, where: str
) -> DataSplits:
    if not (len(train) and len(val) and len(test)):
        sizes = {"train": len(train), "val": len(val), "test": len(test)}
        raise ConfigError(f"{where} an empty split ({sizes}), allowed: samples in each split")
    if not all(is_classes(s.y) for s in (train, val, test)):  # regression targets
        if class_names is not None:
            raise ConfigError(
                f"{where} class_names with regression targets, allowed: class indices"
            )
        return DataSplits(spec, train, val, test, 0, ())
    num_classes = 1 + max(int(s.y.max()) for s in (train, val, test))
    present = torch.unique(torch.cat([s.y for s in (train, val, test)]))
    if len(present) < 2:  # a constant answer scores accuracy 1: every trial would tie at 100%
        raise ConfigError(
            f"{where} labels of one class only (all {sum(map(len, (train, val, test)))} are "
            f"{int(present[0])}), allowed: labels of at least two classes"
        )
    if num_classes > MAX_CLASSES:  # each class gets a name and a column in the reports
        raise ConfigError(
            f"{where} a label of {num_classes - 1}, allowed: class indices below {MAX_CLASSES}"
        )
    if class_names is not None:
        if not isinstance(class_names, (list, tuple)) or not all(
            isinstance(c, str) for c in class_names
        ):
            raise ConfigError(f"{where} class_names = {class_names!r}, allowed: a list of strings")
        names = tuple(class_names)
        if len(set(names)) != len(names):
            twice = next(c for c in names if names.count(c) > 1)
            raise ConfigError(f"{where} class_names naming {twice!r} twice, allowed: each once")
        if len(names) < num_classes:
            raise ConfigError(
                f"{where} {len(names)} class_names but labels up to {num_classes - 1}, allowed: "
                "a name for each class"
            )
        num_classes = len(names)
    else:
        names = tuple(str(i) for i in range(num_classes))
    return DataSplits(spec, train, val, test, num_classes, names)
