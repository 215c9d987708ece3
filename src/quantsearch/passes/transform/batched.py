"""Many configs' quantized linear layers in one kernel, bit for bit as each config's own call.

A population (:mod:`.population`) meets one linear node under many configs: each runs
``F.linear(q_in(x), w_c, b_c)`` on its own quantized input and weights. :func:`linear_many`
computes all of them with one ``torch.baddbmm`` over the weights stacked along a config
dimension, and hands each config a contiguous ``[..., out]`` tensor equal (``torch.equal``)
to its own ``F.linear``, when, and only when, arithmetic makes every summation order exact.

The argument. Let a config's quantized input hold values on the grid ``2^-fx`` (fixed point
with ``frac_width = fx``: ``clamp(round(x * 2^fx)) / 2^fx`` is an integer over ``2^fx``
whatever the width), its weight values on ``2^-fw`` and its bias on ``2^-fb`` (found from
the tensors themselves, :func:`~.grid_facts.frac_bits`, once per layer). Every product ``x_i * w_ji`` is
then an integer multiple of ``g = 2^-max(fx + fw, fb)``, and so is every partial sum of the
dot product, in any order and grouping, with or without a fused multiply-add. Every partial
sum's magnitude is at most ``B = max |x| * sum_i max_j |w[j, i]| + max_j |b[j]|``.
If ``B / g <= 2^24`` (float32; ``2^53`` for float64) and ``g`` is a normal number of the
dtype (no subnormal, so flushing them to zero cannot matter), every such multiple is a float
of the dtype, so each addition and product is exact and the result is the exact dot product,
whichever kernel computes it, in whatever order: the batched kernel and ``F.linear`` agree
bit for bit. ``B`` is computed in float64 from the actual tensors, per call (per batch of
data), and checked with a margin for its own rounding. (An exact zero is the one value
whose sign an order may change: ``-0.0 == 0.0`` and ``torch.equal`` holds.)

Where the condition fails, or cannot be checked, :func:`linear_many` returns ``None`` and
the caller runs each config's own layer: a ``data_in`` format that is not deterministic fixed
point (other formats' outputs are not on one ``2^-f`` grid), no ``data_in`` format, weights
or bias not on a grid coarse enough, a non-finite value, a dtype other than float32/float64
or dtypes that differ, a layer in training mode or with float master weights re-quantized
per call, a float32 matmul precision other than ``"highest"`` (TF32 or bfloat16 inputs
would be rounded before the products), and stacked weights (two layouts) over 32 MiB
(:func:`stack`). Only the kernel is batched: each config's ``data_out`` format is applied
to its own contiguous slice, the call its module makes.

Example:
    >>> import torch
    >>> from quantsearch.formats import FixedPoint
    >>> from quantsearch.passes.transform.modules import QuantLinear
    >>> from quantsearch.passes.transform.layer import LayerQuant
    >>> from quantsearch.passes.transform.grid_facts import linear_facts
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <...>
    >>> lin = torch.nn.Linear(4, 3)
    >>> def layer(w):  # as quantize() builds it in eval mode: weight and bias rounded once
    ...     fmt = FixedPoint(w, w // 2)
    ...     m = QuantLinear(4, 3)
    ...     m.load_state_dict({k: fmt.quantize(v) for k, v in lin.state_dict().items()})
    ...     m._set_formats(LayerQuant(weight=fmt, bias=fmt), True)
    ...     return m.eval()
    >>> layers = [layer(w) for w in (4, 6, 8)]
    >>> x = FixedPoint(8, 4).quantize(torch.randn(5, 4))
    >>> st = stack([linear_facts(m) for m in layers], [0, 0, 0])
    >>> got = linear_many(layers, [x], [4], st)
    >>> [torch.equal(y, m(x)) for y, m in zip(got, layers)]
    [True, True, True]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from quantsearch.formats import FixedPoint, NumberFormat
from quantsearch.passes.transform.blocks import Blocks, stacked_views
from quantsearch.passes.transform.grid_facts import LinearFacts
from quantsearch.passes.transform.modules import QuantLinear

__all__ = [
    "Blocks",
    "Stacked",
    "exact_limit",
    "input_frac",
    "linear_many",
    "quantize_inputs",
    "stack",
    "stacked_views",
]

# B / g must stay at most 2^p (p = the dtype's significand bits); B itself is a float64 sum of
# up to in_features products of float32/float64 values, off by a relative 2^-40 at the very most
# for any layer this meets, so it is compared against the limit shrunk by 2^-30.
_MARGIN = 1.0 - 2.0**-30


def exact_limit(dtype: torch.dtype) -> float | None:
    """The largest integer ``k`` such that every integer up to ``k`` in magnitude is a float of
    ``dtype`` (``2^24`` for float32, ``2^53`` for float64), else ``None``."""
    if dtype == torch.float32:
        return 2.0**24
    return 2.0**53 if dtype == torch.float64 else None


def input_frac(fmt: NumberFormat | None) -> int | None:
    """The ``f`` of the ``2^-f`` grid every output of ``fmt.quantize`` lies on, or ``None``:
    deterministic fixed point only (``clamp(round(x * 2^f)) / 2^f``; ``floor`` too)."""
    if isinstance(fmt, FixedPoint) and fmt.deterministic:
        return fmt.frac_width
    return None


def quantize_inputs(pairs: Sequence[tuple[NumberFormat, Tensor]]) -> list[Tensor]:
    """Each ``fmt.quantize(x)`` of ``pairs``; where they all quantize one float32/float64
    tensor with nearest-rounding fixed point, as one stacked ``round(x * 2^f)`` with the
    formats' scales along a first dim, each block then clamped in place to its format's
    bounds (:meth:`~quantsearch.formats.FixedPoint.int_bounds`) by the very ``clamp_`` call
    :meth:`~quantsearch.formats.FixedPoint.quantize` makes, and the whole divided by the
    scales. The product and quotient by a power of two and the rounding are one IEEE
    operation per element whose result does not depend on the lane, so every block is bit
    for bit its format's own ``quantize``, handed out as a block of one tensor
    (:class:`Blocks`, which :func:`linear_many` reads without a stack).

    Example:
        >>> x = torch.tensor([[0.3, -1.7], [2.6, 9.0]])
        >>> fmts = [FixedPoint(4, 1), FixedPoint(8, 4)]
        >>> all(torch.equal(q, f.quantize(x)) for q, f in zip(quantize_inputs([(f, x) for f in fmts]), fmts))
        True
    """
    x0 = pairs[0][1] if pairs else None
    if (
        len(pairs) < 2
        or not isinstance(x0, Tensor)
        or x0.dtype not in (torch.float32, torch.float64)
        or (x0.requires_grad and torch.is_grad_enabled())
        or any(
            x is not x0 or type(f) is not FixedPoint or f.rounding != "nearest" for f, x in pairs
        )
    ):
        return [f.quantize(x) for f, x in pairs]
    fmts: list[FixedPoint] = [f for f, _ in pairs]  # type: ignore[misc]
    scale = _scales(fmts, x0)
    y = (x0.unsqueeze(0) * scale).round_()
    dtype = x0.dtype
    for block, f in zip(y.unbind(0), fmts, strict=True):
        block.clamp_(*f.int_bounds(dtype))  # FixedPoint.quantize's call, scalar bounds
    return Blocks(y.div_(scale))


# (ids of the formats, dtype, device, dims) -> (the formats, their scales 2^f along a first
# dim): a population meets the same few data_in formats call after call
_SCALES: dict[tuple[Any, ...], tuple[list[FixedPoint], Tensor]] = {}


def _scales(fmts: list[FixedPoint], x: Tensor) -> Tensor:
    """``2^f`` of each format, shaped ``[len(fmts), 1, ...]`` to broadcast against ``x``
    stacked (exact: a power of two in any float dtype whose range holds it)."""
    key = (*map(id, fmts), x.dtype, x.device, x.dim())
    kept = _SCALES.get(key)
    if kept is not None:  # the formats kept in the entry: their ids are still theirs
        return kept[1]
    shape = (len(fmts),) + (1,) * x.dim()
    scales = [2.0**f.frac_width for f in fmts]
    scale = torch.tensor(scales, dtype=x.dtype, device=x.device).view(shape)
    if len(_SCALES) >= 1024:
        _SCALES.clear()
    _SCALES[key] = (list(fmts), scale)
    return scale


def _precise(device: torch.device) -> bool:
    """Whether float32 matmuls on ``device`` multiply in full float32 (no TF32, no bfloat16)."""
    if device.type not in ("cpu", "cuda"):
        return False
    try:
        if torch.get_float32_matmul_precision() != "highest":
            return False
        return device.type == "cpu" or not torch.backends.cuda.matmul.allow_tf32
    except RuntimeError:
        # the per-backend settings (torch.backends.<backend>.matmul.fp32_precision) are in
        # use, and torch refuses the legacy reading beside them: read the matmul's own,
        # "none" deferring to its backend's and then to the global one
        return _backend_precision(device) == "ieee"


def _backend_precision(device: torch.device) -> str:
    backend = torch.backends.cuda if device.type == "cuda" else torch.backends.mkldnn
    for level in (backend.matmul, backend, torch.backends):
        value = str(getattr(level, "fp32_precision", "none"))
        if value != "none":
            return value
    return "ieee"


@dataclass(frozen=True)
class Stacked:
    """The weights of ``V`` linear layers laid out for one batched kernel, grouped by input.

    Layer ``v`` reads input ``index[v]`` and is the ``slot[v]``-th of that input's layers;
    ``weight[i][:, s * out:(s + 1) * out]`` is the transposed weight of input ``i``'s ``s``-th
    layer (zeros where an input has fewer than ``slots`` layers), ``bias`` likewise.
    """

    index: tuple[int, ...]
    slot: tuple[int, ...]
    slots: int
    weight: Tensor  # [inputs, in, slots * out]
    bias: Tensor | None  # [inputs, 1, slots * out]
    sums: tuple[tuple[float, float], ...]  # each layer's (weight_sum, bias_max)
    order: Tensor | None  # the layers' blocks among [inputs * slots]; None: all, in order
    bits: tuple[tuple[int, int], ...]  # each layer's (w_bits, b_bits)
    # weight and bias transposed, contiguous, for the classes-first kernel (W x^T):
    # [inputs, slots * out, in] and [inputs, slots * out, 1]
    weight_cf: Tensor
    bias_cf: Tensor | None
    caps: dict[
        tuple[tuple[int, ...], torch.dtype], list[tuple[int, float, float, float]] | None
    ] = field(default_factory=dict, compare=False)  # see _caps


def stack(
    facts: Sequence[LinearFacts | None], index: Sequence[int], max_bytes: int = 32 * 2**20
) -> Stacked | None:
    """The :class:`Stacked` layout of layers with these ``facts``, layer ``v`` reading input
    ``index[v]``; ``None`` where a layer has no facts or no grid, the layers disagree on
    shape, dtype or having a bias, or the stacked weights (in two layouts, one for each
    kernel of :func:`linear_many`) would take more than ``max_bytes``
    (a copy of every variant's weights: for large layers each variant's own call is kept)."""
    if not facts or any(f is None or f.bits is None for f in facts):
        return None
    ok = [f for f in facts if f is not None]
    w0 = ok[0].weight_t
    has_bias = ok[0].bias is not None
    if any(
        f.weight_t.shape != w0.shape
        or f.weight_t.dtype != w0.dtype
        or (f.bias is not None) != has_bias
        for f in ok
    ):
        return None
    n_in, out = w0.shape
    inputs = max(index) + 1
    slot: list[int] = []
    used = [0] * inputs
    for i in index:
        slot.append(used[i])
        used[i] += 1
    slots = max(used)
    if 2 * inputs * n_in * slots * out * w0.element_size() > max_bytes:
        return None
    blocks = [i * slots + s for i, s in zip(index, slot, strict=True)]
    at = dict(zip(blocks, ok, strict=True))  # block -> its layer's facts (none: zeros)
    with torch.inference_mode():
        zw, zb, blks = w0.new_zeros(n_in, out), w0.new_zeros(1, out), range(inputs * slots)
        weight = _tiled([at[b].weight_t if b in at else zw for b in blks], inputs)
        bias = _tiled([at[b].bias if b in at else zb for b in blks], inputs) if has_bias else None
        return Stacked(
            index=tuple(index),
            slot=tuple(slot),
            slots=slots,
            weight=weight,
            bias=bias,
            sums=tuple((f.weight_sum, f.bias_max) for f in ok),
            order=None
            if blocks == list(range(inputs * slots))
            else torch.tensor(blocks, device=w0.device),
            bits=tuple(f.bits for f in ok if f.bits is not None),
            weight_cf=weight.transpose(1, 2).contiguous(),
            bias_cf=None if bias is None else bias.transpose(1, 2).contiguous(),
        )


def _tiled(blocks: list[Any], inputs: int) -> Tensor:
    """``inputs * slots`` blocks ``[rows, out]`` as ``[inputs, rows, slots * out]``
    (contiguous): one stack and one copy into place, not a copy a block."""
    t = torch.stack(blocks)
    return t.view(inputs, -1, *t.shape[1:]).transpose(1, 2).reshape(inputs, t.shape[1], -1)


def linear_many(
    layers: Sequence[QuantLinear],
    xs: Sequence[Tensor],
    x_bits: Sequence[int | None],
    stacked: Stacked | None,
    *,
    classes_first: bool = False,
) -> list[Tensor] | None:
    """Each ``layers[v](xs[stacked.index[v]])`` (``xs`` already quantized by ``data_in``, the
    step the caller takes apart), with one batched kernel; ``None`` where the exactness
    condition of the module docstring fails or cannot be checked (the caller then runs each
    layer).

    Args:
        layers: the layer of each config (variant), quantized modules in eval mode.
        xs: the distinct quantized inputs.
        x_bits: each input's grid exponent (:func:`input_frac` of its format), ``None``: unknown.
        stacked: :func:`stack` of the layers' :func:`~.grid_facts.linear_facts` and which input each reads.
        classes_first: for 2-D inputs and layers without a ``data_out`` format, compute
            ``W x^T`` instead (the same exact dot products) and hand each layer the transpose
            of a contiguous ``[out, N]`` block: a caller whose every consumer of the outputs is
            exact per element whatever the layout (a ReLU, the graph's output) saves the
            copies of the ``[N, out]`` layout and of the loss's classes-first one.

    Returns:
        One tensor a layer, each ``torch.equal`` to that layer's own output: contiguous,
        or with ``classes_first`` a transposed view; a :class:`Blocks` of one tensor where
        no ``data_out`` format applies.
    """
    if stacked is None or not xs or len(stacked.index) != len(layers):
        return None
    x0 = xs[0]
    limit = exact_limit(x0.dtype)
    if limit is None or not _precise(x0.device) or None in x_bits:
        return None
    if x0.dim() < 2 or stacked.weight.dtype != x0.dtype or stacked.weight.device != x0.device:
        return None
    blocks = type(xs) is Blocks  # quantize_inputs' blocks: of one tensor, alike
    if not blocks and any(
        x.dtype != x0.dtype or x.shape != x0.shape or x.device != x0.device for x in xs
    ):
        return None
    with torch.inference_mode():
        n_in = x0.shape[-1]
        whole = stacked_views(xs) if x0.dim() == 2 else None
        if whole is None:
            whole = torch.stack([x.reshape(-1, n_in) for x in xs])
        xx = whole  # [inputs, N, in]
        if xx.numel() == 0:  # no samples: nothing to batch (amax has no identity)
            return None
        xmax = xx.abs().amax((1, 2)).tolist()  # max |x| of each input
        caps = _caps(stacked, tuple(x_bits), x0.dtype, limit)  # type: ignore[arg-type]
        # B of each layer (float64) against its cap, limit * g; a NaN fails the comparison
        if caps is None or not all(xmax[i] * ws + bm <= cap for i, ws, bm, cap in caps):
            return None
        out = stacked.weight.shape[-1] // stacked.slots
        n = xx.shape[1]
        plain = all(m.q_data_out is None for m in layers)  # no data_out format to apply
        if classes_first and x0.dim() == 2 and plain:
            wt, xt = stacked.weight_cf, xx.transpose(1, 2)
            if stacked.bias_cf is None:
                yt = torch.bmm(wt, xt)
            else:  # [inputs, slots * out, N]; the bias expanded (a view): ATen's faster
                # kernel here than a broadcast one, and exact like any other (see above)
                yt = torch.baddbmm(stacked.bias_cf.expand(-1, -1, n), wt, xt)
            yt = yt.view(-1, out, n)  # each layer's block: [out, N], contiguous
            return Blocks((yt if stacked.order is None else yt[stacked.order]).transpose(1, 2))
        if stacked.bias is None:
            y = torch.bmm(xx, stacked.weight)
        else:
            y = torch.baddbmm(stacked.bias, xx, stacked.weight)  # [inputs, N, slots * out]
        # each layer's columns as one contiguous [N, out] block, the blocks in layer order
        y = y.view(len(xs), n, stacked.slots, out).transpose(1, 2)  # [inputs, slots, N, out]
        if stacked.order is None:
            y = y.reshape(len(layers), n, out)  # a view when slots == 1, else one copy
        else:
            y = y.reshape(-1, n, out)[stacked.order]
        if x0.dim() == 2 and plain:
            return Blocks(y)
        shape = (*x0.shape[:-1], out)
        views = y.unbind(0) if x0.dim() == 2 else [yv.view(shape) for yv in y.unbind(0)]
        return [
            yv if m.q_data_out is None else m.q_data_out.quantize(yv)
            for yv, m in zip(views, layers, strict=True)
        ]


def _caps(
    stacked: Stacked, x_bits: tuple[int, ...], dtype: torch.dtype, limit: float
) -> list[tuple[int, float, float, float]] | None:
    """Per layer ``(its input, weight_sum, bias_max, limit * g)`` for inputs on the grids
    ``x_bits``, or ``None`` where some ``g = 2^-e`` is not a normal number of ``dtype`` or
    ``limit * g`` is not finite (no subnormal, so no flush-to-zero); kept on ``stacked``."""
    key = (x_bits, dtype)
    if key in stacked.caps:
        return stacked.caps[key]
    info = torch.finfo(dtype)
    lo_e = math.ceil(math.log2(limit / info.max))
    hi_e = math.floor(-math.log2(info.tiny))
    out: list[tuple[int, float, float, float]] | None = []
    for i, (wb, bb), (ws, bm) in zip(stacked.index, stacked.bits, stacked.sums, strict=True):
        e = max(x_bits[i] + wb, bb)
        if not lo_e <= e <= hi_e:
            out = None
            break
        out.append((i, ws, bm, limit * _MARGIN * 2.0**-e))  # type: ignore[union-attr]
    if len(stacked.caps) >= 64:
        stacked.caps.clear()
    stacked.caps[key] = out
    return out
