"""The rules of cost_rules_ops: nn.MultiheadAttention, nn.TransformerEncoderLayer and baddbmm
against ``torch.utils.flop_counter.FlopCounterMode`` (referee, run with autograd on: the
attention's no-grad fast path is a fused kernel it does not count), the rest by hand. Each op
here was listed uncounted before (UncountedOpsWarning, its FLOPs missing from the totals)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from quantsearch.graph import info, trace
from quantsearch.passes.analysis import compute_cost


class Fn(nn.Module):
    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor], **mods: nn.Module) -> None:
        super().__init__()
        self.fn = fn
        self.mods = nn.ModuleDict(mods)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


class SelfAttention(nn.Module):
    def __init__(self, mha: nn.Module, kv: nn.Module | None = None, **kw: object) -> None:
        super().__init__()
        self.mha, self.kv, self.kw = mha, kv, kw

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kv = x if self.kv is None else self.kv(x)
        return self.mha(x, kv, kv, **self.kw)[0]


def _costs(model: nn.Module, x: torch.Tensor) -> tuple[int, int, int]:
    gm = trace(model.eval(), x)
    cost = compute_cost(gm)
    assert cost.uncounted == ()
    return cost.macs, cost.flops, cost.flops_backward


@pytest.mark.parametrize(
    ("model", "shape"),
    [
        (SelfAttention(nn.MultiheadAttention(8, 2, batch_first=True)), (3, 5, 8)),
        (SelfAttention(nn.MultiheadAttention(8, 4)), (5, 3, 8)),  # (L, N, E)
        (SelfAttention(nn.MultiheadAttention(8, 2, bias=False, batch_first=True)), (5, 8)),
        (  # key and value of 6 features from another projection, 4 key tokens per 5 queries
            SelfAttention(
                nn.MultiheadAttention(8, 2, kdim=6, vdim=6, batch_first=True),
                nn.Sequential(nn.Linear(8, 6), nn.AdaptiveAvgPool2d((4, 6))),
            ),
            (3, 5, 8),
        ),
    ],
)
def test_multihead_attention_matches_flop_counter_mode(
    model: nn.Module, shape: tuple[int, ...]
) -> None:
    x = torch.randn(*shape)
    macs, _, _ = _costs(model, x)
    with FlopCounterMode(display=False) as fcm:
        model(x)
    assert 2 * macs == fcm.get_total_flops()


def test_multihead_attention_by_hand() -> None:
    """N = 6, L = S = 4, E = 4, H = 2: MACs = 3 N L E^2 + N L E^2 + 2 N L S E = 2304, P = 192
    scores, biases B = 4 N L E = 384: fwd = 2 * 2304 + 384 + 6 P + P (the heads' weights
    averaged) = 6336, bwd = 4 * 2304 + 384 + 5 P = 10560; without the weights, 6336 - 192."""
    x = torch.randn(6, 4, 4)
    mha = nn.MultiheadAttention(4, 2, batch_first=True)
    assert _costs(SelfAttention(mha), x) == (2304, 6336, 10560)
    assert _costs(SelfAttention(mha, need_weights=False), x) == (2304, 6144, 10560)


@pytest.mark.parametrize(
    ("layer", "shape"),
    [
        (nn.TransformerEncoderLayer(4, 2, 8, batch_first=True), (6, 4, 4)),
        (nn.TransformerEncoderLayer(8, 4, 16, activation="gelu", norm_first=True), (5, 3, 8)),
        (  # two layers and a final LayerNorm
            nn.TransformerEncoder(
                nn.TransformerEncoderLayer(4, 2, 8, batch_first=True), 2, nn.LayerNorm(4)
            ),
            (6, 4, 4),
        ),
    ],
)
def test_transformer_encoder_layer_matches_flop_counter_mode(
    layer: nn.Module, shape: tuple[int, ...]
) -> None:
    """With torch's math attention (FlopCounterMode counts its batched matmuls; the CPU's
    fused kernel it counts as 0): the attention's and the feed-forward's MACs."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    x = torch.randn(*shape)
    macs, _, _ = _costs(nn.Sequential(layer), x)
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as fcm:
        layer(x)
    assert 2 * macs == fcm.get_total_flops()


def test_transformer_encoder_layer_by_hand() -> None:
    """R = 24 rows, E = 4, F = 8, P = 192: attention 2304 MACs, fwd 4608 + 384 + 6 P = 6144,
    bwd 9216 + 384 + 5 P = 10560; feed-forward 2 R E F = 1536 MACs, biases R F + R E = 288,
    ReLU R F = 192 each way; LayerNorms 2 (7 N + 4 R) = 1536 and 2 (13 N + 2 R) = 2592
    (N = 96); residual adds 2 N = 192 forward. nn.TransformerEncoder of two: twice that and
    its final LayerNorm."""
    layer = nn.TransformerEncoderLayer(4, 2, 8, batch_first=True)
    fwd = 6144 + 2 * 1536 + 288 + 192 + 1536 + 192
    bwd = 10560 + 4 * 1536 + 288 + 192 + 2592
    assert _costs(nn.Sequential(layer), torch.randn(6, 4, 4)) == (2304 + 1536, fwd, bwd)
    two = nn.TransformerEncoder(layer, 2, nn.LayerNorm(4), enable_nested_tensor=False)
    norm = (7 * 96 + 4 * 24, 13 * 96 + 2 * 24)
    want = (2 * (2304 + 1536), 2 * fwd + norm[0], 2 * bwd + norm[1])
    assert _costs(nn.Sequential(two), torch.randn(6, 4, 4)) == want


def test_baddbmm_matches_flop_counter_mode() -> None:
    """C + A @ B, A (3, 4, 5): MACs = 3 * 4 * 6 * 5; fwd + N for C, bwd + N - numel(C)."""
    b = torch.randn(3, 5, 6)
    model = Fn(lambda x: torch.baddbmm(torch.ones(6), x, b))
    x = torch.randn(3, 4, 5)
    with FlopCounterMode(display=False) as fcm:
        model(x)
    n = 3 * 4 * 6
    assert _costs(model, x) == (n * 5, 2 * n * 5 + n, 4 * n * 5 + n - 6)
    assert 2 * n * 5 == fcm.get_total_flops()


N = 10  # elements of the (2, 5) input


@pytest.mark.parametrize(
    ("fn", "fwd", "bwd"),
    [
        (nn.SELU(), 5, 4),
        (F.celu, 5, 4),
        (nn.Softsign(), 3, 4),
        (nn.LogSigmoid(), 4, 6),
        (F.logsigmoid, 4, 6),
        (nn.Tanhshrink(), 2, 3),
        (nn.Threshold(0.1, 0.0), 1, 1),
        (nn.Softmin(1), 6, 5),
        (nn.LogSoftmax(1), 5, 4),  # log_softmax's, as F.log_softmax
        (torch.square, 1, 2),
        (lambda x: torch.rsqrt(x.abs()), 1 + 1, 2 + 4),
        (lambda x: torch.log(x.abs()) + torch.log1p(x.abs()), 1 + 1 + 1 + 2 + 1, 2 + 1 + 2 + 2),
        (torch.reciprocal, 1, 3),
        (lambda x: torch.sin(x) * torch.cos(x), 1 + 1 + 1, 2 + 2 + 2),
        (
            lambda x: torch.erf(x) + torch.special.erfc(x) + torch.expm1(x),
            1 + 1 + 1 + 1 + 1,
            5 + 5 + 2,
        ),
        (lambda x: torch.sign(x) + x.round() + x.floor() + x // 2, 1 + 1 + 1 + 2 + 3, 0),
        (lambda x: x.clamp_min(0) + x.tril(), 1 + 1 + 1, 1 + 1),
        (lambda x: x.repeat(1, 1).flip(1).roll(1, 1).float().type_as(x), 0, 0),
        (lambda x: x.index_select(1, torch.tensor([0, 1, 2, 3, 4])).unflatten(1, (5, 1)), 0, 0),
        # softshrink: 2 comparisons, 1 add or subtract; dx = dy * (|x| > l) = 2 (as hardtanh)
        (nn.Softshrink(0.2), 3, 2),
        (lambda x: F.softshrink(x, 0.3), 3, 2),
        # hardshrink: |x| > l ? x : 0 = 2 comparisons; dx = dy masked the same = 2
        (nn.Hardshrink(0.2), 2, 2),
        (lambda x: F.hardshrink(x), 2, 2),
        # RReLU in eval: leaky_relu with the slope (lower + upper) / 2 = 2, 2
        (nn.RReLU(), 2, 2),
        (lambda x: F.rrelu(x, training=False), 2, 2),
        # fake quantization: divide, add zero point, round, clamp 2, subtract, multiply = 7;
        # dx = dy masked to the range (straight-through) = 1
        (lambda x: torch.fake_quantize_per_tensor_affine(x, 0.125, 0, -128, 127), 7, 1),
        (
            lambda x: torch.fake_quantize_per_channel_affine(
                x, torch.full((5,), 0.1), torch.zeros(5, dtype=torch.int32), 1, -8, 7
            ),
            7,
            1,
        ),
        # joins along an axis: data movement
        (lambda x: torch.hstack([x, x])[:, :5] + torch.vstack([x, x])[:2], 1, 0),
        (lambda x: torch.dstack([x]).squeeze(2) * torch.column_stack([x]), 1, 2),
        (lambda x: torch.concat([x]) + torch.concatenate([x]), 1, 0),
    ],
)
def test_elementwise_by_hand(
    fn: Callable[[torch.Tensor], torch.Tensor], fwd: int, bwd: int
) -> None:
    """Per element (N = 10): the sum over the nodes the op traces to (free ops 0, counted)."""
    model = fn if isinstance(fn, nn.Module) else Fn(fn)
    _, flops, flops_bwd = _costs(model, torch.randn(2, 5))
    assert (flops, flops_bwd) == (fwd * N, bwd * N)


def test_scatter_and_index_adds_cost_one_add_per_source_element() -> None:
    """index_add and scatter_add (a graph network's message sums) were uncounted: each adds
    its source's elements into the output, one add each (index_add with alpha != 1 also
    multiplies each); the backward is a copy (dy to the input) and a gather (dy to the
    source), free. x (2, 5) summed into (2, 3): 10 adds."""
    x = torch.randn(2, 5)
    idx = torch.tensor([0, 2, 1, 2, 0])

    def index_add(t: torch.Tensor) -> torch.Tensor:
        return t.new_zeros(2, 3).index_add(1, idx, t) + torch.index_add(
            t.new_zeros(2, 3), 1, idx, t, alpha=0.5
        )

    # 10 + 2 * 10 + the final add of (2, 3) = 36; its backward 0
    assert _costs(Fn(index_add), x)[1:] == (36, 0)

    def scatter_add(t: torch.Tensor) -> torch.Tensor:
        z = t.new_zeros(2, 3)
        return z.scatter_add(1, idx.expand(2, -1), t) + z.index_add_(1, idx, t)

    assert _costs(Fn(scatter_add), x)[1:] == (10 + 10 + 6, 0)


def test_tensors_made_from_a_shape_cost_nothing() -> None:
    """arange and one_hot (a ViT's positions, a class mask) were uncounted; 0 now, so only
    the arithmetic on them counts: x (2, 5) + 0 * arange(5) is a multiply on 5 elements (bwd
    5) and an add on 10 (bwd: 10 - 5 summed back to the broadcast operand); x * one_hot is a
    multiply on 10 (bwd: 10 for each tensor operand)."""
    x = torch.randn(2, 5)
    assert _costs(Fn(lambda t: t + 0 * torch.arange(t.size(1))), x)[1:] == (5 + 10, 5 + 5)
    one_hot = Fn(lambda t: t * F.one_hot(t.new_zeros(2, dtype=torch.long), 5))
    assert _costs(one_hot, x)[1:] == (10, 20)


def test_a_constant_made_on_the_inputs_device_costs_nothing() -> None:
    """torch.tensor(1.5, device=x.device) (an output scale a forward writes; fx makes it a
    node, since the device is traced) was uncounted; 0 now, so x (2, 5) * it is a multiply on
    10 elements (bwd: 10 for each of the two tensor operands, the scalar's summed 10 - 1)."""
    x = torch.randn(2, 5)
    scaled = Fn(lambda t: t * torch.tensor(1.5, device=t.device))
    assert _costs(scaled, x)[1:] == (10, 10 + 10 + 9)
    as_tensor = Fn(lambda t: t + torch.as_tensor(0.5, device=t.device))
    assert _costs(as_tensor, x)[1:] == (10, 9)


def test_glu_halves_its_input() -> None:
    """glu of (2, 6): N = 6 outputs, 5 each way."""
    assert _costs(nn.GLU(), torch.randn(2, 6))[1:] == (30, 30)


def test_statistics_by_hand() -> None:
    """Over rows of D = 6, I = 24 inputs, N = 4 outputs: var 4 I / 3 I, std + N / + 2 N,
    cumsum N - R each way (its N = I = 24, R = 4 rows), normalize 3 N + R / 5 N - R,
    the 2-norm 2 I / 2 I, logsumexp 4 I / 3 I, argmax I - N / 0."""
    x = torch.randn(4, 6)
    assert _costs(Fn(lambda t: t.var(1)), x)[1:] == (96, 72)
    assert _costs(Fn(lambda t: torch.std(t, dim=1)), x)[1:] == (96 + 4, 72 + 8)
    assert _costs(Fn(lambda t: t.cumsum(1)), x)[1:] == (20, 20)
    assert _costs(Fn(lambda t: F.normalize(t, dim=1)), x)[1:] == (3 * 24 + 4, 5 * 24 - 4)
    assert _costs(Fn(lambda t: torch.linalg.vector_norm(t, dim=1)), x)[1:] == (48, 48)
    assert _costs(Fn(lambda t: t.logsumexp(1)), x)[1:] == (4 * 24, 3 * 24)
    # the add's backward sums dy to argmax's (4, 1): 24 - 4
    assert _costs(Fn(lambda t: t + t.argmax(1, keepdim=True)), x)[1:] == (20 + 24, 20)


def test_interpolation_by_hand() -> None:
    """(1, 2, 3, 3) up by 2: N = 72 outputs. nearest copies (0); bilinear 3 lerps of 3 FLOPs
    (bwd 4) per output; bicubic 5 four-tap sums of 7 (bwd 36) per output (it was listed
    uncounted); area down to (2, 2) on (1, 2, 4, 4) is an adaptive average of 4 inputs per
    output, N = 8: 4 N (bwd 5 N), and a 1-D area (2, 6) to 4 windows of 2 inputs: 16 (bwd 24)."""
    x = torch.randn(1, 2, 3, 3)
    assert _costs(nn.Upsample(scale_factor=2), x)[1:] == (0, 0)
    bilinear = Fn(lambda t: F.interpolate(t, scale_factor=2, mode="bilinear"))
    assert _costs(bilinear, x)[1:] == (9 * 72, 12 * 72)
    assert _costs(nn.UpsamplingBilinear2d(scale_factor=2), x)[1:] == (9 * 72, 12 * 72)
    assert _costs(nn.UpsamplingNearest2d(scale_factor=2), x)[1:] == (0, 0)
    bicubic = Fn(lambda t: F.interpolate(t, scale_factor=2, mode="bicubic"))
    assert _costs(bicubic, x)[1:] == (35 * 72, 36 * 72)
    area = Fn(lambda t: F.interpolate(t, size=(2, 2), mode="area"))
    assert _costs(area, torch.randn(1, 2, 4, 4))[1:] == (32, 40)
    area1 = Fn(lambda t: F.interpolate(t, size=4, mode="area"))
    assert _costs(area1, torch.randn(1, 2, 6))[1:] == (16, 24)


@pytest.mark.parametrize("affine", [True, False])
def test_sync_batch_norm_is_a_batch_norm(affine: bool) -> None:
    """nn.SyncBatchNorm (kind 'syncbatchnorm', listed uncounted) in eval is a BatchNorm: 4 N
    forward and 6 N backward with its affine, 2 N and N without (N = 24)."""
    x = torch.randn(2, 3, 2, 2)
    for model in (nn.SyncBatchNorm(3, affine=affine), nn.BatchNorm2d(3, affine=affine)):
        gm = trace(nn.Sequential(model).eval(), x)
        cost = compute_cost(gm)
        assert (cost.uncounted, cost.flops, cost.flops_backward) == (
            (),
            (4 if affine else 2) * 24,
            (6 if affine else 1) * 24,
        )


def test_batch_norm_3d_is_a_batch_norm() -> None:
    """nn.BatchNorm3d's kind was 'batchnorm3d' (no rule: uncounted); it is batch_norm3d, 4 N
    forward and 6 N backward with its affine, as BatchNorm1d/2d."""
    gm = trace(nn.Sequential(nn.BatchNorm3d(2)), torch.randn(1, 2, 2, 2, 2))
    cost = compute_cost(gm)
    assert info(list(gm.graph.nodes)[1]).op_kind == "batch_norm3d"
    assert (cost.uncounted, cost.flops, cost.flops_backward) == ((), 64, 96)


@pytest.mark.parametrize(
    ("module", "function", "shape"),
    [
        (nn.ConvTranspose2d(2, 2, 2), lambda x: F.conv_transpose2d(x, torch.ones(2, 2, 2, 2)), 4),
        (nn.AdaptiveMaxPool2d(1), lambda x: F.adaptive_max_pool2d(x, 1), 4),
        (nn.GroupNorm(1, 2), lambda x: F.group_norm(x, 1), 4),
        (nn.LogSigmoid(), F.logsigmoid, 4),
        (nn.PixelShuffle(1), lambda x: F.pixel_shuffle(x, 1), 4),
        (nn.Threshold(0.1, 0.0), lambda x: F.threshold(x, 0.1, 0.0), 2),
    ],
)
def test_a_module_has_its_function_s_kind(
    module: nn.Module, function: Callable[[torch.Tensor], torch.Tensor], shape: int
) -> None:
    """nn.ConvTranspose2d was 'convtranspose2d' where F.conv_transpose2d is conv_transpose2d
    (a by_type space naming one missed the other), AdaptiveMaxPool2d 'adaptivemaxpool2d',
    GroupNorm 'groupnorm', LogSigmoid 'logsigmoid', PixelShuffle 'pixelshuffle', and
    F.threshold '_threshold'; each is now priced alike in both forms."""
    x = torch.randn(*(1, 2, 3, 3)[:shape])
    kinds = []
    for model in (nn.Sequential(module), Fn(function)):
        gm = trace(model, x)
        kinds.append([info(n).op_kind for n in gm.graph.nodes if n.op.startswith("call")])
        assert compute_cost(gm).uncounted == ()
    assert kinds[0] == kinds[1] and len(kinds[0]) == 1


def test_views_selections_and_tensors_made_from_a_shape_cost_nothing() -> None:
    """Each was listed uncounted (a causal mask's torch.full, a flipped or rotated image, a
    diagonal, random noise drawn like the input, a copy or fill in place ...): data movement,
    counted as 0."""
    x = torch.randn(3, 5)
    fns: list[Callable[[torch.Tensor], torch.Tensor]] = [
        lambda t: t.ravel(),
        lambda t: torch.rot90(t),
        lambda t: t.fliplr().flipud(),
        lambda t: torch.tensor_split(t, 2, 1)[0],
        lambda t: torch.diagonal(t),
        lambda t: torch.diag(t),
        lambda t: torch.diag_embed(t[0]),
        lambda t: torch.broadcast_to(t[0], (2, 3, 5)),
        lambda t: torch.atleast_3d(t),
        lambda t: torch.take_along_dim(t, torch.zeros(3, 1, dtype=torch.long), 1),
        lambda t: t.masked_select(t > 0),
        lambda t: torch.meshgrid(t[0], t[1], indexing="ij")[0],
        lambda t: t * t.numel(),
        lambda t: torch.full((t.shape[1],), 2.0),
        lambda t: torch.zeros(t.shape[1]) + torch.ones(t.shape[1]) + torch.rand(t.shape[1]),
        lambda t: torch.eye(t.shape[1]),
        lambda t: torch.linspace(0, 1, t.shape[1]),
        lambda t: torch.randn_like(t),
        lambda t: t + t.new_tensor([1.0]),
        lambda t: torch.zeros_like(t).copy_(t),
        lambda t: t.clone().fill_(1.0).zero_().uniform_().normal_(),
        lambda t: t.index_fill(1, torch.tensor([0]), 1.0).index_copy(0, torch.tensor([0]), t[:1]),
        lambda t: t.clone().index_fill_(1, torch.tensor([0]), 1.0),
        lambda t: t.clone().masked_scatter_(t > 0, t),
        lambda t: t.clone().unsqueeze_(0).squeeze_(0).t_().transpose_(0, 1),
        lambda t: t.as_strided((2, 2), (1, 1)),
        lambda t: t.split_with_sizes([2, 3], 1)[0],
    ]
    free = 0
    for fn in fns:
        gm = trace(Fn(fn), x)
        cost = compute_cost(gm)
        assert cost.uncounted == ()
        for n in gm.graph.nodes:
            if n.op.startswith("call") and info(n).op_kind not in ("gt", "mul", "add"):
                free += 1
                assert info(n).cost["flops"] == info(n).cost["flops_backward"] == 0
    assert free >= len(fns)
