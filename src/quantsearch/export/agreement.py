"""How far a hardware model's outputs are from quantsearch's: same class, and LSBs."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["Agreement", "agreement", "describe"]


@dataclass(frozen=True)
class Agreement:
    """The agreement of a referee (hls4ml's C simulation, the qonnx executor) with quantsearch.

    Attributes:
        referee: who computed the hardware outputs.
        samples: validation samples compared.
        same_class: share of samples with the same predicted class (argmax); ``None`` for
            outputs that are no class scores (a regression model's, an autoencoder's, or a
            single column), where the argmax means nothing.
        max_lsb: max |difference| of the outputs, in LSBs of the output format.
        lsb: the value of one LSB of the output format.
    """

    referee: str
    samples: int
    same_class: float | None
    max_lsb: float
    lsb: float

    @property
    def bit_exact(self) -> bool:
        return self.max_lsb == 0.0 and self.same_class in (None, 1.0)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "bit_exact": self.bit_exact}

    def __str__(self) -> str:
        return f"{self.referee}: {describe(self.same_class, self.max_lsb)} ({self.samples} samples)"


def describe(same_class: float | None, max_lsb: float) -> str:
    """The agreement in words: the share of the same class (where outputs are classes) and
    the max difference.

    Example:
        >>> describe(None, 0.0)
        'max |diff| 0 LSB (no class agreement: the outputs are not class scores)'
    """
    if same_class is None:
        return f"max |diff| {max_lsb:g} LSB (no class agreement: the outputs are not class scores)"
    return f"{same_class:.2%} same class, max |diff| {max_lsb:g} LSB"


def agreement(
    referee: str,
    ours: npt.NDArray[np.floating[Any]],
    theirs: npt.NDArray[np.floating[Any]],
    lsb: float,
    *,
    classes: bool = True,
) -> Agreement:
    """Compare two ``(samples, outputs)`` output arrays; ``classes``: the outputs are class
    scores (a classifier's), whose argmax is compared; else (regression targets) and for a
    single output column, ``same_class`` is ``None``.

    Example:
        >>> a = agreement("x", np.array([[0.5, 0.25]]), np.array([[0.5, 0.5]]), 0.25)
        >>> a.same_class, a.max_lsb
        (1.0, 1.0)
        >>> agreement("x", np.array([[0.5, 0.25]]), np.array([[0.5, 0.5]]), 0.25, classes=False)
        Agreement(referee='x', samples=1, same_class=None, max_lsb=1.0, lsb=0.25)
    """
    ours64 = np.asarray(ours, dtype=np.float64).reshape(len(ours), -1)
    theirs64 = np.asarray(theirs, dtype=np.float64).reshape(len(theirs), -1)
    same: float | None = None
    if classes and ours64.shape[1] > 1:
        same = float(np.mean(ours64.argmax(1) == theirs64.argmax(1))) if len(ours64) else 1.0
    diff = float(np.max(np.abs(ours64 - theirs64))) if ours64.size else 0.0
    return Agreement(referee, len(ours64), same, diff / lsb, lsb)
