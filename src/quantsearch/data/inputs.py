"""What ``search(model, data)`` accepts as data, turned into one materialised :class:`Split`.

A :class:`Split`, an ``(x, y)`` pair of tensors (or arrays), a torch ``Dataset`` (an
``IterableDataset`` too) or a ``DataLoader``. A ``Dataset`` or ``DataLoader`` is read once, here, and its samples are stacked
into two tensors held in memory, so every trial measures the same tensors without re-collating
them batch by batch. Values are kept as given: no dtype conversion, no label checks (a
regression target is as welcome as a class index).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import torch

from quantsearch.data.splits import Split
from quantsearch.errors import ConfigError

__all__ = ["as_split", "stack_dataset", "stack_loader"]

_ALLOWED = "a quantsearch Split, an (x, y) pair of tensors, a torch Dataset or a DataLoader"


def as_split(data: Any, *, key: str = "data") -> Split:
    """The validation samples of ``data`` as one :class:`Split`.

    Raises:
        ConfigError: naming ``key``: ``data`` is none of the accepted kinds, or its samples are
            not ``(x, y)`` pairs of one shape.

    Example:
        >>> import torch
        >>> from torch.utils.data import DataLoader, TensorDataset
        >>> x, y = torch.arange(12.0).reshape(6, 2), torch.arange(6) % 2
        >>> s = as_split(DataLoader(TensorDataset(x, y), batch_size=4))
        >>> torch.equal(s.x, x) and torch.equal(s.y, y)
        True
    """
    from torch.utils.data import DataLoader, Dataset, IterableDataset, TensorDataset

    if isinstance(data, Split):
        return data
    if isinstance(data, DataLoader):
        x, y = stack_loader(data, f"{key}: a DataLoader that yields")
    elif isinstance(data, TensorDataset) and len(data.tensors) == 2:
        x, y = data.tensors
    elif isinstance(data, IterableDataset):
        x, y = _stack(iter(data), f"{key}: an IterableDataset with")
    elif isinstance(data, Dataset):
        x, y = stack_dataset(data, f"{key}: a Dataset with")
    elif isinstance(data, (tuple, list)) and len(data) == 2:
        x, y = (v if isinstance(v, torch.Tensor) else _tensor(v, key) for v in data)
    else:
        raise ConfigError(f"{key}: got {_kind(data)}, allowed: {_ALLOWED}")
    try:
        return Split(x, y)
    except ValueError as exc:  # x and y of different lengths
        raise ConfigError(f"{key}: {exc}, allowed: as many targets as samples") from None


def _kind(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"one tensor of shape {tuple(value.shape)} (no targets)"
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of {len(value)} items"
    return f"a {type(value).__name__}"


def _tensor(value: Any, key: str) -> torch.Tensor:
    try:
        return torch.as_tensor(value)
    except Exception as exc:
        raise ConfigError(
            f"{key}: got a {type(value).__name__} in the (x, y) pair ({exc}), allowed: {_ALLOWED}"
        ) from None


def _pair(item: Any, where: str, i: int) -> tuple[Any, Any]:
    if not (isinstance(item, (tuple, list)) and len(item) == 2):
        raise ConfigError(f"{where} items that are not (x, y) pairs (item {i}: {_kind(item)})")
    return item[0], item[1]


def stack_dataset(ds: Any, where: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Index ``ds`` once, sample by sample, and stack the ``x`` and the ``y`` of its items.

    ``where`` starts every error message (``"data: a Dataset with"``).
    """
    try:
        n = len(ds)
    except TypeError:
        raise ConfigError(f"{where} no __len__, allowed: a Dataset of known length") from None
    return _stack((ds[i] for i in range(n)), where)


def _stack(
    items: Iterable[Any], where: str, *, batches: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Join ``(x, y)`` samples (``torch.stack``) or, with ``batches``, ``(x, y)`` batches
    (``torch.cat``) into two tensors."""
    join, what = (torch.cat, "batches") if batches else (torch.stack, "samples")
    xs, ys = [], []
    for i, item in enumerate(_loaded(items, where, "batch" if batches else "item")):
        x, y = _pair(item, where, i)
        try:
            xs.append(torch.as_tensor(x))
            ys.append(torch.as_tensor(y))
        except (TypeError, ValueError, RuntimeError):
            bad = _kind(y) if len(xs) > len(ys) else _kind(x)
            raise ConfigError(
                f"{where} {what} that are not numbers ({'batch' if batches else 'sample'} {i}: "
                f"{bad}), allowed: "
                "tensors, arrays or numbers"
            ) from None
    if not xs:
        raise ConfigError(f"{where} no {what}, allowed: at least one")
    try:
        return join(xs), join(ys)
    except RuntimeError as exc:
        shape = "whose samples differ" if batches else "that differ"
        raise ConfigError(f"{where} {what} {shape} in shape ({exc}), allowed: one shape") from None


def _loaded(items: Iterable[Any], where: str, unit: str) -> Iterator[Any]:
    """``items`` one by one; what the user's ``__getitem__`` or ``__iter__`` raises (an
    IndexError below its own ``__len__``) is one line naming the item, not a traceback."""
    allowed = "an item for every index below its len()" if unit == "item" else "batches that load"
    i = 0
    try:
        it = iter(items)
        while True:
            try:
                item = next(it)
            except StopIteration:
                return
            yield item
            i += 1
    except ConfigError:
        raise
    except (Exception, SystemExit) as exc:
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise ConfigError(
            f"{where} {unit} {i} raising {type(exc).__name__}{': ' + first if first else ''}, "
            f"allowed: {allowed}"
        ) from None


def stack_loader(loader: Any, where: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Iterate ``loader`` once (its sampler, collate function and transforms apply) and
    concatenate its ``(x, y)`` batches."""
    return _stack(loader, where, batches=True)
