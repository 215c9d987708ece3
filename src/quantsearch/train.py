"""Seeded, early-stopped training of a classifier on materialised splits.

AdamW on cross-entropy with a cosine learning-rate decay over ``epochs``; after every epoch the
validation loss is measured, and training stops when it has not improved for ``patience``
epochs. The weights of the best epoch are restored. On CPU the run is deterministic:
``torch.use_deterministic_algorithms`` is switched on for its duration, shuffling uses its own
seeded generator, and the caller seeds ``torch`` before building the model (the CLI does, with
:func:`seed_everything`). On CUDA (``device = "auto"`` picks it when present) runs are seeded
but not guaranteed bit-exact.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import fx, nn

from quantsearch.config import TrainConfig
from quantsearch.data import DataSplits, Split
from quantsearch.errors import ConfigError, TraceError
from quantsearch.graph import trace
from quantsearch.metrics import ProbabilityOutputWarning
from quantsearch.metrics.groups import softmax_output
from quantsearch.validate import resolve_device

__all__ = [
    "EpochStats",
    "TrainResult",
    "evaluate",
    "seed_everything",
    "train",
    "train_epoch",
    "warn_probability_output",
]


@dataclass(frozen=True)
class EpochStats:
    """One epoch: mean training loss, validation loss and accuracy."""

    epoch: int
    train_loss: float
    val_loss: float
    val_accuracy: float


@dataclass
class TrainResult:
    """The trained model (best epoch's weights, on CPU, in eval mode) and how it got there.

    Attributes:
        model: a trained copy; the model passed to :func:`train` is untouched.
        metrics: ``{train,val,test}_{accuracy,loss}``, ``epochs`` (run), ``best_epoch``,
            ``seconds`` (wall time of the loop) — what the checkpoint records.
        history: one :class:`EpochStats` per epoch run.
        device: where it trained.
    """

    model: nn.Module
    metrics: dict[str, float]
    history: list[EpochStats] = field(default_factory=list)
    device: str = "cpu"


def train_epoch(
    net: nn.Module,
    opt: torch.optim.Optimizer,
    sched: torch.optim.lr_scheduler.LRScheduler,
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int,
    gen: torch.Generator,
) -> float:
    """One epoch of cross-entropy steps over ``(x, y)`` in a seeded order (``gen``), the
    scheduler stepped per batch; returns the mean training loss. Leaves ``net`` in train mode.
    """
    net.train()
    n = len(x)
    order = torch.randperm(n, generator=gen).to(x.device)
    total, seen = 0.0, 0
    for i in range(0, n, batch_size):
        idx = order[i : i + batch_size]
        if len(idx) < 2 and seen:  # a batch of one breaks BatchNorm's statistics
            continue
        loss = F.cross_entropy(net(x[idx]), y[idx])
        if not loss.requires_grad:  # autograd's RuntimeError, a traceback, before
            raise ConfigError(
                "model: got a forward whose outputs no parameter's gradient reaches (it runs "
                "under torch.no_grad() or torch.inference_mode(), or detaches them), allowed: "
                "a forward that computes its outputs with gradients, as training needs"
            )
        opt.zero_grad(set_to_none=True)
        torch.autograd.backward(loss)  # Tensor.backward, which mypy sees untyped
        opt.step()
        sched.step()
        total += float(loss.detach()) * len(idx)
        seen += len(idx)
    return total / max(seen, 1)


def check_logits(net: nn.Module, x: torch.Tensor, num_classes: int, command: str) -> None:
    """Refuse, before the first step, a model whose output on ``x`` (in eval mode, on a copy)
    is no logits of ``num_classes`` (the largest label + 1) or more classes: ``command`` takes
    cross_entropy of its outputs against the labels, which failed there with torch's
    IndexError (a model that returns a scalar loss, a tuple, or fewer scores than the data
    have classes)."""
    was = net.training
    net.eval()
    with torch.no_grad():
        out = net(x.clone())
    net.train(was)
    if isinstance(out, torch.Tensor) and out.ndim == 2 and out.shape[1] >= num_classes:
        return
    got = (
        f"output of shape {tuple(out.shape)}"
        if isinstance(out, torch.Tensor)
        else f"a {type(out).__name__} output"
    )
    raise ConfigError(
        f"model: got {got}, allowed for `{command}`: one tensor of logits of shape (samples, "
        f"classes), at least {num_classes} classes ({command} minimizes cross_entropy of the "
        f"outputs against the class labels); train another output with your own loop"
    )


def warn_probability_output(gm: fx.GraphModule, command: str) -> None:
    """A :class:`ProbabilityOutputWarning` when ``gm`` returns a softmax's probabilities:
    ``command`` minimizes cross-entropy of the outputs taken as logits, a second softmax."""
    node = softmax_output(gm)
    if node is not None:
        warnings.warn(
            f"{command}: the model returns probabilities (its output is node {node}, a "
            f"softmax), and {command} minimizes cross_entropy of its outputs as logits, a "
            f"second softmax (-log softmax(p)[label], whose gradients vanish as p saturates); "
            f"return the logits to train (argmax, so accuracy, is the same)",
            ProbabilityOutputWarning,
            stacklevel=3,
        )


def seed_everything(seed: int) -> None:
    """Seed torch's global generators (CPU and CUDA); call it before building the model."""
    torch.manual_seed(seed)


@contextmanager
def _deterministic(device: torch.device) -> Iterator[None]:
    """Deterministic kernels for the run on CPU, restoring the caller's (process-wide) setting.

    Not on CUDA: several of its kernels have no deterministic version and cuBLAS needs
    ``CUBLAS_WORKSPACE_CONFIG`` set before CUDA starts, so GPU runs are seeded, not bit-exact.
    """
    if device.type != "cpu":
        yield
        return
    was, was_warn = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(was, warn_only=was_warn)


@torch.no_grad()
def evaluate(model: nn.Module, split: Split, *, batch_size: int = 1024) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``model`` (in its current mode) on ``split``.

    Example:
        >>> import torch
        >>> from quantsearch.data import Split
        >>> m = torch.nn.Linear(2, 2)
        >>> _, acc = evaluate(m, Split(torch.eye(2), torch.tensor([0, 1])))
        >>> 0.0 <= acc <= 1.0
        True
    """
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    total_loss, correct = 0.0, 0
    for x, y in split.batches(batch_size):
        # a copy: a forward that changes its input in place (x += b) must not change the split
        x, y = x.to(device, copy=True), y.to(device)
        logits = model(x)
        total_loss += float(F.cross_entropy(logits, y, reduction="sum"))
        correct += int((logits.argmax(dim=1) == y).sum())
    n = max(len(split), 1)
    return total_loss / n, correct / n


def train(
    model: nn.Module, data: DataSplits, cfg: TrainConfig, *, progress: bool = True
) -> TrainResult:
    """Train a copy of ``model`` on ``data.train``, early-stopped on ``data.val``.

    Args:
        model: the network; not modified (a deep copy is trained).
        data: materialised splits; ``data.test`` is evaluated once, at the end.
        cfg: epochs, batch size, learning rate, weight decay, patience, seed and device.
        progress: show a rich progress bar on stderr.

    Returns:
        The trained copy with the best validation loss's weights, and its metrics.

    Example:
        >>> from quantsearch.config import TrainConfig
        >>> from quantsearch.data import load_dataset
        >>> from quantsearch.models import build_model
        >>> seed_everything(0)
        >>> result = train(build_model("mlp-digits"), load_dataset("digits"),
        ...                TrainConfig(epochs=2), progress=False)
        >>> result.metrics["epochs"]
        2
    """
    if data.num_classes == 0:  # float targets (data/user.py): no classes to cross-entropy on
        raise ConfigError(
            f"data.name: got {data.name!r} with regression targets, allowed for `train`: class "
            f"labels (it fits classifiers by cross-entropy); train a regression model with your "
            f"own loop, as examples/regression/train.py does"
        )
    with contextlib.suppress(TraceError):  # an untraceable model trains all the same
        warn_probability_output(trace(model, data.train.x[:8]), "train")
    device = resolve_device(cfg.device, "train.device")
    net = copy.deepcopy(model).to(device)
    x_train, y_train = data.train.x.to(device), data.train.y.to(device)
    splits = (data.train, data.val, data.test)
    labels = 1 + max((int(s.y.max()) for s in splits if len(s)), default=0)
    check_logits(net, x_train[:2], labels, "train")
    n = len(data.train)
    steps_per_epoch = max(1, math.ceil(n / cfg.batch_size))
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs * steps_per_epoch)
    gen = torch.Generator().manual_seed(cfg.seed)
    history: list[EpochStats] = []
    best_loss, best_epoch, best_state = math.inf, 0, copy.deepcopy(net.state_dict())
    start = time.perf_counter()
    with _deterministic(device), _progress_bar(progress, cfg.epochs) as advance:
        for epoch in range(1, cfg.epochs + 1):
            train_loss = train_epoch(net, opt, sched, x_train, y_train, cfg.batch_size, gen)
            net.eval()
            val_loss, val_acc = evaluate(net, data.val)
            history.append(EpochStats(epoch, train_loss, val_loss, val_acc))
            if val_loss < best_loss:
                best_loss, best_epoch = val_loss, epoch
                best_state = copy.deepcopy(net.state_dict())
            advance(history[-1], best_epoch)
            if epoch - best_epoch >= cfg.patience:
                break
    seconds = time.perf_counter() - start
    net.load_state_dict(best_state)
    net.eval()
    metrics: dict[str, float] = {}
    for name, split in (("train", data.train), ("val", data.val), ("test", data.test)):
        split_loss, split_acc = evaluate(net, split)
        metrics[f"{name}_accuracy"], metrics[f"{name}_loss"] = split_acc, split_loss
    metrics.update(epochs=len(history), best_epoch=best_epoch, seconds=round(seconds, 3))
    return TrainResult(net.cpu(), metrics, history, str(device))


@contextmanager
def _progress_bar(enabled: bool, epochs: int) -> Iterator[Callable[[EpochStats, int], None]]:
    """Yield ``advance(stats, best_epoch)``; a no-op when disabled."""
    if not enabled:
        yield lambda stats, best: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (
        TextColumn("[bold]train"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[status]}"),
    )
    with Progress(*columns, console=Console(stderr=True)) as bar:
        task = bar.add_task("train", total=epochs, status="")

        def advance(stats: EpochStats, best: int) -> None:
            status = (
                f"loss {stats.train_loss:.3f} val {stats.val_loss:.3f} "
                f"acc {stats.val_accuracy:.1%} best {best}"
            )
            bar.update(task, advance=1, status=status)

        yield advance
