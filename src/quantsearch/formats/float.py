"""``fp32`` (alias ``none``): leave tensors as they are."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from quantsearch.formats.base import NumberFormat
from quantsearch.formats.registry import FORMATS

if TYPE_CHECKING:
    import torch
    from torch import Tensor

__all__ = ["Float32"]


@FORMATS.register("fp32", aliases=("none",))
@dataclass(frozen=True)
class Float32(NumberFormat):
    """The identity: a role in this format is not quantized (and is left out of the resolved
    config, so the node records no precision for it).

    Example:
        >>> import torch
        >>> Float32().quantize(torch.tensor([0.1])).tolist() == torch.tensor([0.1]).tolist()
        True
    """

    name: ClassVar[str] = "fp32"

    @property
    def bits_per_element(self) -> int:
        return 32

    @property
    def is_identity(self) -> bool:
        return True

    def quantize(self, x: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        return x
