"""Facts about the tensors on a traced graph's edges: bits per element and the traced batch.

Bits: one element costs its number format's width if quantized, else its dtype's width.

The quantize pass records a format per role (``data_in``, ``weight``, ``bias``, ``data_out``) in
``NodeInfo.precision``; every format has a ``bits_per_element`` property. A role without a format
is stored in the tensor's own dtype, so its width comes from the dtype (``float32`` = 32,
``float16`` = 16, ``int64`` = 64), never from a hard-coded 32 and never from ``element_size()``
(fake-quantized tensors are still float32 in memory).
"""

from __future__ import annotations

from functools import lru_cache

import torch
from torch import fx

from quantsearch.errors import MetricError
from quantsearch.graph import META_KEY, NodeInfo

__all__ = ["dtype_bits", "role_bits", "traced_batch_size"]


@lru_cache(maxsize=64)
def dtype_bits(dtype: str | torch.dtype) -> int:
    """Bits per element of a dtype given as ``torch.float16`` or as its name ``"float16"``.

    Example:
        >>> dtype_bits("float32"), dtype_bits(torch.bfloat16), dtype_bits("bool")
        (32, 16, 8)
    """
    if isinstance(dtype, str):
        resolved = getattr(torch, dtype.removeprefix("torch."), None)
        if not isinstance(resolved, torch.dtype):
            raise MetricError(f"dtype must be a torch dtype name (got {dtype!r})")
        dtype = resolved
    return int(dtype.itemsize) * 8


def role_bits(ni: NodeInfo, role: str, dtype: str | torch.dtype) -> float:
    """Bits per element of the tensor in ``role`` at node ``ni``.

    Args:
        ni: the node's record; ``ni.precision[role]`` is used when present.
        role: ``data_in``, ``weight``, ``bias`` or ``data_out``.
        dtype: the tensor's dtype, used when the role has no format.

    Raises:
        MetricError: when the recorded format has no numeric ``bits_per_element``.
    """
    fmt = ni.precision.get(role)
    if fmt is None:
        return dtype_bits(dtype)
    bits = getattr(fmt, "bits_per_element", None)
    if isinstance(bits, bool) or not isinstance(bits, (int, float)):
        raise MetricError(
            f"node {ni.name!r}: precision[{role!r}] must have a numeric bits_per_element "
            f"(got {type(fmt).__name__} with bits_per_element={bits!r})"
        )
    return bits


def traced_batch_size(gm: fx.GraphModule) -> int:
    """The leading dimension of the first graph input as traced (1 for a 0-d or missing input).

    Per-node counts are for this batch; per-sample metrics divide by it.
    """
    for n in gm.graph.nodes:
        if n.op == "placeholder":
            ni = n.meta.get(META_KEY)
            if isinstance(ni, NodeInfo) and ni.outputs and ni.outputs[0].shape:
                return max(int(ni.outputs[0].shape[0]), 1)
            return 1
    return 1
