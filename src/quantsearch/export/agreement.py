"""How far a hardware model's outputs are from quantsearch's: same class, and LSBs."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["Agreement", "agreement"]


@dataclass(frozen=True)
class Agreement:
    """The agreement of a referee (hls4ml's C simulation, the qonnx executor) with quantsearch.

    Attributes:
        referee: who computed the hardware outputs.
        samples: validation samples compared.
        same_class: share of samples with the same predicted class (argmax).
        max_lsb: max |difference| of the outputs, in LSBs of the output format.
        lsb: the value of one LSB of the output format.
    """

    referee: str
    samples: int
    same_class: float
    max_lsb: float
    lsb: float

    @property
    def bit_exact(self) -> bool:
        return self.max_lsb == 0.0 and self.same_class == 1.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "bit_exact": self.bit_exact}

    def __str__(self) -> str:
        return (
            f"{self.referee}: {self.same_class:.2%} same class, max |diff| {self.max_lsb:g} LSB "
            f"({self.samples} samples)"
        )


def agreement(
    referee: str,
    ours: npt.NDArray[np.floating[Any]],
    theirs: npt.NDArray[np.floating[Any]],
    lsb: float,
) -> Agreement:
    """Compare two ``(samples, classes)`` output arrays.

    Example:
        >>> a = agreement("x", np.array([[0.5, 0.25]]), np.array([[0.5, 0.5]]), 0.25)
        >>> a.same_class, a.max_lsb
        (1.0, 1.0)
    """
    ours64 = np.asarray(ours, dtype=np.float64).reshape(len(ours), -1)
    theirs64 = np.asarray(theirs, dtype=np.float64).reshape(len(theirs), -1)
    same = float(np.mean(ours64.argmax(1) == theirs64.argmax(1))) if len(ours64) else 1.0
    diff = float(np.max(np.abs(ours64 - theirs64))) if ours64.size else 0.0
    return Agreement(referee, len(ours64), same, diff / lsb, lsb)
