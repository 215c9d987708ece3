"""Values that are the blocks of one tensor: a population's variants computed together.

A batched layer (:mod:`.batched`) or a stacked quantization computes many variants' values
as one tensor and hands each variant one block of it. Where an op is exact per element
whatever the lane (a ReLU) or only needs the values stacked (the quality metrics), the
caller finds the one tensor again (:func:`stacked_views`) instead of stacking copies.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

__all__ = ["Blocks", "stacked_views"]


class Blocks(list[Tensor]):
    """The blocks ``whole[0], whole[1], ...`` of one tensor ``whole``, in order (as
    ``whole.unbind(0)`` gives them): :func:`stacked_views` answers ``whole`` at once. Read
    only by convention: a list changed after it was built is no longer its ``whole``'s
    blocks (the population's code never changes one)."""

    __slots__ = ("whole",)

    def __init__(self, whole: Tensor) -> None:
        super().__init__(whole.unbind(0))
        self.whole = whole


def stacked_views(values: Sequence[object]) -> Tensor | None:
    """A tensor ``s`` with ``s[v]`` the very view ``values[v]`` is, where the values are
    equal-shaped contiguous blocks that tile one contiguous base tensor in order (as
    :func:`linear_many` and ``unbind`` hand them out), else ``None``. Lets an op that is exact
    per element whatever the lane (``relu``) or a stacking of the values run once on ``s``.

    Example:
        >>> import torch
        >>> s = torch.arange(6.0).view(3, 2)
        >>> stacked_views(list(s.unbind(0))) is not None, stacked_views([s[0], s[2]])
        (True, None)
    """
    if type(values) is Blocks and len(values) == len(values.whole):
        return values.whole
    if len(values) < 2 or not all(isinstance(v, Tensor) for v in values):
        return None
    ts: list[Tensor] = list(values)  # type: ignore[arg-type]
    t0 = ts[0]
    # (inference-mode views keep no _base: addresses say it instead; the blocks' span lies
    # inside t0's storage, so the strided view reads nothing outside it)
    n, item = t0.numel(), t0.element_size()
    if (t0.storage_offset() + len(ts) * n) * item > t0.untyped_storage().nbytes():
        return None
    p0 = t0.data_ptr()
    for v, t in enumerate(ts):
        if (
            t.data_ptr() != p0 + v * n * item
            or t.shape != t0.shape
            or t.dtype != t0.dtype
            or t.device != t0.device
            or not t.is_contiguous()
        ):
            return None
    return t0.as_strided((len(ts), *t0.shape), (n, *t0.stride()), t0.storage_offset())
