"""What the batched linear kernel needs to know of each quantized linear layer: its grids.

:mod:`.batched` runs many configs' linear layers as one kernel where every summation order
gives the exact dot product. That needs, per layer, the grid ``2^-f`` its weight and bias lie
on (:func:`frac_bits`, read from the tensors themselves) and bounds of their magnitudes
(:class:`LinearFacts`). A population meets a layer's new variants together (the lab space's
linear layer: four weight formats in its first call), so :func:`linear_facts_many` reads all
of them with one pass of numpy over their weights and biases laid end to end, where one
pass a tensor cost some 30 us each in fixed overhead (a few hundred values a layer).
:func:`frac_bits` and :func:`linear_facts` are the same computation for one tensor or layer.

Example:
    >>> import torch
    >>> frac_bits(torch.tensor([0.75, -2.0, 0.0])), frac_bits(torch.tensor([4.0, 12.0]))
    (2, -2)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from quantsearch.passes.transform.modules import QuantLinear

__all__ = ["LinearFacts", "frac_bits", "frac_bits_many", "linear_facts", "linear_facts_many"]

_NONE = np.iinfo(np.int64).min  # a zero's exponent: below every value's


def frac_bits(t: Tensor) -> int | None:
    """The smallest ``f`` such that every value of ``t`` times ``2^f`` is an integer (``f`` may
    be negative; ``0`` for an empty or all-zero tensor), or ``None`` if a value is not finite.

    Example:
        >>> frac_bits(torch.tensor([0.75, -2.0, 0.0])), frac_bits(torch.tensor([4.0, 12.0]))
        (2, -2)
    """
    return frac_bits_many([_float64(t)])[0]


def frac_bits_many(arrays: Sequence[np.ndarray]) -> list[int | None]:
    """:func:`frac_bits` of each float64 array of ``arrays`` (1-D), with one pass over them
    all laid end to end (exact: a float32 value is a float64 value).

    Example:
        >>> frac_bits_many([np.array([0.75, 0.0]), np.array([]), np.array([8.0, np.nan])])
        [2, 0, None]
    """
    if len(arrays) == 1:
        return _segments(arrays[0], [int(arrays[0].size)])
    return _segments(np.concatenate(arrays), [int(a.size) for a in arrays])


def _segments(v: np.ndarray, sizes: list[int]) -> list[int | None]:
    """:func:`frac_bits` of each consecutive segment of ``v`` of these sizes."""
    if not v.size:
        return [0] * len(sizes)
    finite = np.isfinite(v)
    nonzero = finite & (v != 0)
    mant, exp = np.frexp(np.where(nonzero, v, 1.0))  # v = mant * 2^exp, 0.5 <= |mant| < 1
    m = (mant * 2.0**53).astype(np.int64)  # an integer, exactly: v = m * 2^(exp - 53)
    low = np.abs(m & -m)  # m's lowest set bit: m = odd * low, a power of two 2^(e - 1)
    f = 53 - exp.astype(np.int64) - (np.frexp(low.astype(np.float64))[1] - 1)
    f = np.where(nonzero, f, _NONE)
    starts = np.cumsum([0, *sizes[:-1]])
    filled = [i for i, s in enumerate(sizes) if s]  # reduceat reads an empty segment wrongly
    at = starts[filled]
    most = np.maximum.reduceat(f, at).tolist()
    whole = np.logical_and.reduceat(finite, at).tolist()
    out: list[int | None] = [0] * len(sizes)
    for i, mx, ok in zip(filled, most, whole, strict=True):
        out[i] = None if not ok else 0 if mx == _NONE else int(mx)
    return out


def _float64(t: Tensor) -> np.ndarray:
    # numpy: a tenth of torch's per-op cost on a few weights
    return t.detach().cpu().double().numpy().ravel()


@dataclass(frozen=True)
class LinearFacts:
    """What :func:`.batched.linear_many` needs of one quantized linear layer, computed once.

    Attributes:
        weight_t: the weight the layer's forward uses, transposed (``[in, out]``).
        bias: the bias it uses as ``[1, out]``, or ``None``.
        weight_sum: ``sum_i max_j |w[j, i]|`` (float64, summed in any order: a bound used
            with a margin for its rounding), so that ``B <= max|x| * weight_sum + bias_max``
            for any input ``x``.
        bias_max: ``max_j |b[j]|`` (``0.0`` without a bias).
        bits: the grid exponent of the weight and bias together: every product with an input
            on ``2^-fx`` lies on ``2^-(fx + w_bits)`` and the bias on ``2^-b_bits``;
            ``(w_bits, b_bits)``, ``None`` when either is not on a finite grid.
    """

    weight_t: Tensor
    bias: Tensor | None
    weight_sum: float
    bias_max: float
    bits: tuple[int, int] | None


def linear_facts(layer: QuantLinear) -> LinearFacts | None:
    """The :class:`LinearFacts` of ``layer``, or ``None`` where no batching applies (a layer in
    training mode, or whose weights are quantized anew on every call)."""
    return linear_facts_many([layer])[0]


def linear_facts_many(layers: Sequence[nn.Module]) -> list[LinearFacts | None]:
    """``[linear_facts(m) for m in layers]`` (``None`` for a module that is no
    :class:`QuantLinear`), the grids of all their weights and biases read in one pass
    (:func:`frac_bits_many`)."""
    out: list[LinearFacts | None] = [None] * len(layers)
    todo: list[tuple[int, Tensor, Tensor | None]] = []
    with torch.inference_mode():  # as the layers' own forward reads them
        for i, layer in enumerate(layers):
            if type(layer) is not QuantLinear or layer.training:
                continue
            if not layer.weights_on_grid and (
                layer.q_weight is not None or layer.q_bias is not None
            ):
                continue
            w, b = layer.used_param("weight"), layer.used_param("bias")
            assert w is not None
            todo.append((i, w.detach(), None if b is None else b.detach()))
        if not todo:
            return out
        # every weight and bias end to end, as float64 (exact), in one conversion
        parts = [t.reshape(-1) for _, w, b in todo for t in (w, b) if t is not None]
        flat = _float64(torch.cat(parts) if len(parts) > 1 else parts[0])
        sizes = [0 if t is None else t.numel() for _, w, b in todo for t in (w, b)]
        bits = _segments(flat, sizes)
        size = np.abs(flat)
        at = 0
        for k, (i, w, b) in enumerate(todo):
            wv = size[at : at + sizes[2 * k]]
            bv = size[at + sizes[2 * k] : at + sizes[2 * k] + sizes[2 * k + 1]]
            at += sizes[2 * k] + sizes[2 * k + 1]
            wb, bb = bits[2 * k], bits[2 * k + 1]
            out[i] = LinearFacts(
                weight_t=w.t(),
                bias=None if b is None else b.view(1, -1),
                weight_sum=float(wv.reshape(w.shape).max(0).sum()) if wv.size else 0.0,
                bias_max=float(bv.max()) if bv.size else 0.0,
                bits=None if wb is None or bb is None else (wb, bb),
            )
    return out
