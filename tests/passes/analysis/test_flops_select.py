"""The rules of cost_rules_select (nn.Bilinear, nn.EmbeddingBag, topk, sort, cdist,
cosine_similarity, LPPool, addcmul) and cost_rules_ops' nn.TransformerDecoder(Layer): each op
was listed uncounted before (UncountedOpsWarning, its FLOPs missing from the totals).

Referees: ``torch.utils.flop_counter.FlopCounterMode`` for the decoder and for nn.Bilinear
written as an outer product and a matmul (its value checked equal to the layer's); it counts
none of the other ops (0, checked), so they are counted here by hand, in each docstring; the
merge sort's worst-case comparisons are OEIS A001855.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from quantsearch.graph import info, trace
from quantsearch.passes.analysis import compute_cost


class Fn(nn.Module):
    def __init__(self, fn: Callable[..., torch.Tensor], **mods: nn.Module) -> None:
        super().__init__()
        self.fn = fn
        self.mods = nn.ModuleDict(mods)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x, *self.mods.values())


def _cost(model: nn.Module, x: torch.Tensor, kind: str) -> tuple[int, int, int]:
    """MACs, forward and backward FLOPs of the one node of op kind ``kind``; none uncounted."""
    gm = trace(model.eval(), x)
    assert compute_cost(gm).uncounted == ()
    (c,) = [info(n).cost for n in gm.graph.nodes if info(n).op_kind == kind]
    return c["macs"], c["flops"], c["flops_backward"]


def _fcm_flops(fn: Callable[[], object]) -> int:
    # autograd on: nn.MultiheadAttention's no-grad fast path is a fused kernel it counts as 0
    with FlopCounterMode(display=False) as fcm:
        fn()
    return int(fcm.get_total_flops())


@pytest.mark.parametrize("bias", [True, False])
def test_bilinear_matches_flop_counter_mode_of_its_matmul(bias: bool) -> None:
    """nn.Bilinear(5, 3, 4) on 6 rows: MACs = N in1 in2 = 24 * 15 = 360, the matmul of the
    outer product x1 (x) x2 (6 x 15) with W (4 x 15) that FlopCounterMode counts (2 * 360; the
    layer itself it counts as 0); fwd + R in1 in2 = 90 outer products (+ N bias), bwd
    4 * 360 + 4 * 90 (+ N)."""
    torch.manual_seed(0)
    layer = nn.Bilinear(5, 3, 4, bias=bias)
    model = Fn(lambda t, m: m(t[:, :5], t[:, 5:]), m=layer)
    x = torch.randn(6, 8)
    x1, x2 = x[:, :5], x[:, 5:]
    outer = torch.einsum("bi,bj->bij", x1, x2).flatten(1)
    want = F.linear(outer, layer.weight.flatten(1), layer.bias)
    torch.testing.assert_close(want, layer(x1, x2))
    assert _fcm_flops(lambda: layer(x1, x2)) == 0
    macs = _fcm_flops(lambda: F.linear(outer, layer.weight.flatten(1), layer.bias)) // 2
    assert macs == 360
    assert _cost(model, x, "bilinear") == (360, 720 + 90 + 24 * bias, 1440 + 360 + 24 * bias)
    fn = Fn(lambda t, m: F.bilinear(t[:, :5], t[:, 5:], m.weight, m.bias), m=layer)
    assert _cost(fn, x, "bilinear")[0] == 360


def _decoders() -> list[tuple[nn.Module, tuple[int, ...], tuple[int, ...]]]:
    torch.manual_seed(0)
    return [
        (nn.TransformerDecoderLayer(4, 2, 8, dropout=0.0, batch_first=True), (6, 4, 4), (6, 3, 4)),
        (  # (T, N, E), GELU, norm first; two layers and a final LayerNorm
            nn.TransformerDecoder(
                nn.TransformerDecoderLayer(8, 4, 16, 0.0, "gelu", norm_first=True),
                2,
                nn.LayerNorm(8),
            ),
            (5, 3, 8),
            (2, 3, 8),
        ),
    ]


class Decode(nn.Module):
    def __init__(self, dec: nn.Module, memory: tuple[int, ...], **kw: object) -> None:
        super().__init__()
        self.dec, self.kw = dec, kw
        self.register_buffer("memory", torch.randn(*memory))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dec(x, self.memory, **self.kw)


@pytest.mark.parametrize(("dec", "tgt", "memory"), _decoders())
def test_transformer_decoder_matches_flop_counter_mode(
    dec: nn.Module, tgt: tuple[int, ...], memory: tuple[int, ...]
) -> None:
    """With torch's math attention (FlopCounterMode counts its batched matmuls): the two
    attentions' and the feed-forward's MACs."""
    model, x = Decode(dec, memory).eval(), torch.randn(*tgt)
    kind = type(dec).__name__.lower()
    macs, _, _ = _cost(model, x, kind)
    with sdpa_kernel(SDPBackend.MATH):
        assert 2 * macs == _fcm_flops(lambda: model(x))


def test_transformer_decoder_layer_by_hand() -> None:
    """tgt (6, 4, 4): R = 24 rows, N = 96, E = 4, F = 8, 2 heads; memory (6, 3, 4): 18 rows.
    Self-attention (P = 6 * 2 * 4 * 4 = 192): 2304 MACs, fwd 4608 + 384 + 6 P = 6144, bwd 9216
    + 384 + 5 P = 10560. Cross-attention (P = 144, MACs 2 * 24 * 16 + 18 * 8 * 4 + 2 * 24 * 3
    * 4 = 1920, biases 2 * 24 * 4 + 2 * 18 * 4 = 336): fwd 3840 + 336 + 864 = 5040, bwd 7680
    + 336 + 720 = 8736. Feed-forward 2 R E F = 1536 MACs, biases R F + N = 288, ReLU R F =
    192 each way; three LayerNorms 3 (7 N + 4 R) = 2304 and 3 (13 N + 2 R) = 3888; residual
    adds 3 N = 288 forward. A tgt_mask adds P = 192 to the forward."""
    dec = nn.TransformerDecoderLayer(4, 2, 8, dropout=0.0, batch_first=True)
    fwd = 6144 + 5040 + 2 * 1536 + 288 + 192 + 2304 + 288
    bwd = 10560 + 8736 + 4 * 1536 + 288 + 192 + 3888
    x = torch.randn(6, 4, 4)
    want = (2304 + 1920 + 1536, fwd, bwd)
    assert _cost(Decode(dec, (6, 3, 4)), x, "transformerdecoderlayer") == want
    mask = nn.Transformer.generate_square_subsequent_mask(4)
    masked = Decode(dec, (6, 3, 4), tgt_mask=mask, tgt_is_causal=True)
    assert _cost(masked, x, "transformerdecoderlayer") == (want[0], fwd + 192, bwd)


def test_embedding_bag_by_hand() -> None:
    """6 bags of 3 lookups of D = 4 features (I D = 72 looked-up values, N = 24 outputs):
    sum (72 - 24) adds, bwd 72; mean 72, bwd 24 + 72; max (72 - 24) comparisons, bwd 24;
    sum with per-sample weights fwd + 72, bwd 72 + 72 + 18 * 7. 1-D indices with offsets: the
    same bags. FlopCounterMode counts 0; padding_idx (work that depends on the data) is left
    uncounted, named."""
    idx = torch.randint(0, 10, (6, 3))
    for mode, want in (("sum", (48, 72)), ("mean", (72, 96)), ("max", (48, 24))):
        bag = nn.EmbeddingBag(10, 4, mode=mode)
        assert _fcm_flops(lambda b=bag: b(idx)) == 0
        assert _cost(Fn(lambda t, m: m(t), m=bag), idx, "embeddingbag") == (0, *want)
    bag = nn.EmbeddingBag(10, 4, mode="sum")
    weighted = Fn(
        lambda t, m: m(t, per_sample_weights=torch.ones_like(t, dtype=torch.float)), m=bag
    )
    assert _cost(weighted, idx, "embeddingbag") == (0, 48 + 72, 144 + 126)
    offsets = Fn(lambda t, m: m(t.flatten(), torch.arange(0, 18, 3)), m=bag)
    assert _cost(offsets, idx, "embeddingbag") == (0, 48, 72)
    fn = Fn(lambda t, m: F.embedding_bag(t, m.weight, mode="max"), m=bag)
    assert _cost(fn, idx, "embedding_bag") == (0, 48, 24)
    gm = trace(Fn(lambda t, m: m(t), m=nn.EmbeddingBag(10, 4, padding_idx=0)).eval(), idx)
    (miss,) = compute_cost(gm).uncounted
    assert miss.op_kind == "embeddingbag" and "padding_idx" in miss.reason


# OEIS A001855: a merge sort's worst-case comparisons for n = 1, 2, ..., 10
A001855 = (0, 1, 3, 5, 8, 11, 14, 17, 21, 25)


@pytest.mark.parametrize("d", [1, 2, 5, 8, 10])
def test_sort_costs_a_merge_sorts_comparisons(d: int) -> None:
    """R = 3 rows of D: fwd 3 * A001855(D), bwd N = 3 D (dy scattered back); argsort 0 bwd."""
    x = torch.randn(3, d)
    assert _fcm_flops(lambda: torch.sort(x)) == 0
    assert _cost(Fn(lambda t: torch.sort(t, dim=1)[0]), x, "sort") == (0, 3 * A001855[d - 1], 3 * d)
    assert _cost(Fn(lambda t: t.argsort(1)), x, "argsort") == (0, 3 * A001855[d - 1], 0)


def test_topk_by_hand() -> None:
    """R = 4 rows of D = 10: k = 1 is max's D - 1 = 9 comparisons per row (the max rule's
    count of the same reduction, I - N = 36); k = 4: sort(4) = 5, then 6 more elements each
    compared (1) and sifted (lg 4 = 2): 5 + 18 = 23 per row; bwd R k."""
    x = torch.randn(4, 10)
    assert _fcm_flops(lambda: torch.topk(x, 4)) == 0
    assert _cost(Fn(lambda t: torch.topk(t, 1)[0]), x, "topk") == (0, 36, 4)
    assert _cost(Fn(lambda t: t.amax(1)), x, "amax")[1] == 36
    assert _cost(Fn(lambda t: t.topk(4, dim=1).values), x, "topk") == (0, 4 * 23, 16)
    assert _cost(Fn(lambda t: torch.topk(t.t(), 4, 0)[1]), x, "topk") == (0, 4 * 23, 16)


def test_cdist_by_hand() -> None:
    """x1 (2, 3, 4) against x2 (2, 5, 4): N = 30 distances of M = 4. p = 2: 3 M = 12 each,
    bwd 4 M + 1 = 17; p = 1: 3 M - 1 = 11, bwd 5 M = 20; p = 3 is left uncounted, named."""
    x = torch.randn(2, 3, 4)
    other = torch.randn(2, 5, 4)
    assert _fcm_flops(lambda: torch.cdist(x, other)) == 0
    model = Fn(lambda t: torch.cdist(t, torch.cat([t, t[:, :2]], 1)))
    assert _cost(model, x, "cdist") == (0, 30 * 12, 30 * 17)
    model = Fn(lambda t: torch.cdist(t, torch.cat([t, t[:, :2]], 1), p=1.0))
    assert _cost(model, x, "cdist") == (0, 30 * 11, 30 * 20)
    gm = trace(Fn(lambda t: torch.cdist(t, t, p=3.0)), x)
    assert [u.op_kind for u in compute_cost(gm).uncounted] == ["cdist"]


def test_cosine_similarity_by_hand() -> None:
    """(4, 6) rows against (4, 6), D = 6: N = 4, fwd 6 D + 1 = 37 each, bwd 6 D + 4 = 40; one
    operand broadcast, (4, 6) against (1, 6): the same D; nn.CosineSimilarity along dim 0
    (D = 4, N = 6): 25 and 28 each."""
    x = torch.randn(4, 6)
    assert _fcm_flops(lambda: F.cosine_similarity(x, x.flip(1))) == 0
    model = Fn(lambda t: F.cosine_similarity(t, t.flip(1)))
    assert _cost(model, x, "cosine_similarity") == (0, 4 * 37, 4 * 40)
    model = Fn(lambda t: F.cosine_similarity(t, t[:1], dim=-1))
    assert _cost(model, x, "cosine_similarity") == (0, 4 * 37, 4 * 40)
    module = Fn(lambda t, m: m(t, t.flip(1)), m=nn.CosineSimilarity(dim=0))
    assert _cost(module, x, "cosinesimilarity") == (0, 6 * 25, 6 * 28)


def test_lp_pool_by_hand() -> None:
    """LPPool2d(2, 2) on (2, 3, 4, 4): N = 24 outputs of W = 4: fwd 2 W = 8, bwd 3 W + 2 = 14
    each; LPPool1d(3, 3) on (2, 3, 9): N = 18, W = 3: 6 and 11; F.lp_pool2d with a (1, 2)
    window: W = 2, N = 48: 4 and 8."""
    x = torch.randn(2, 3, 4, 4)
    assert _fcm_flops(lambda: nn.LPPool2d(2, 2)(x)) == 0
    assert _cost(nn.Sequential(nn.LPPool2d(2, 2)), x, "lppool2d") == (0, 24 * 8, 24 * 14)
    one = nn.Sequential(nn.LPPool1d(3, 3))
    assert _cost(one, torch.randn(2, 3, 9), "lppool1d") == (0, 18 * 6, 18 * 11)
    fn = Fn(lambda t: F.lp_pool2d(t, 2.0, (1, 2)))
    assert _cost(fn, x, "lp_pool2d") == (0, 48 * 4, 48 * 8)


def test_addcmul_by_hand() -> None:
    """x (3, 4) + 0.5 * x * b, b (1, 4) broadcast, N = 12: t1 t2, times 0.5, add = 3 N;
    bwd: dx summed to x's shape 0, dt1 = 0.5 dy t2 2 N, dt2 2 N + its sum 12 - 4 = 8. With
    value 1: 2 N and 1 N each. addcdiv (value 1): 2 N; bwd dt1 N, dt2 2 N + 8."""
    x = torch.randn(3, 4)
    assert _fcm_flops(lambda: torch.addcmul(x, x, x[:1])) == 0
    model = Fn(lambda t: torch.addcmul(t, t, t[:1], value=0.5))
    assert _cost(model, x, "addcmul") == (0, 36, 24 + 24 + 8)
    model = Fn(lambda t: t.addcmul(t, t[:1]))
    assert _cost(model, x, "addcmul") == (0, 24, 12 + 12 + 8)
    model = Fn(lambda t: torch.addcdiv(t, t, t[:1].abs() + 1))
    assert _cost(model, x, "addcdiv") == (0, 24, 12 + 24 + 8)


def test_rms_norm_prod_outer_maximum_by_hand() -> None:
    """(2, 3, 4): N = 24, RMSNorm over D = 4, R = 6 rows: 3 N + 3 R + N (affine) = 114, bwd
    6 N + R + 3 N = 222; F.rms_norm without weight 90 / 150. prod over 4 to N = 6: 18 and 48.
    outer of 4 and 3 elements: 12 and 4 * 12 - 7 = 41. maximum: N and 2 N. channel_shuffle and
    unfold move data: 0. FlopCounterMode counts none of them (0)."""
    x = torch.randn(2, 3, 4)
    assert (
        _fcm_flops(lambda: nn.RMSNorm(4)(x) + x.prod(2).sum() + torch.outer(x[0, 0], x[0, 0])[0, 0])
        == 0
    )
    assert _cost(nn.Sequential(nn.RMSNorm(4)), x, "rmsnorm") == (0, 114, 222)
    assert _cost(Fn(lambda t: F.rms_norm(t, (4,))), x, "rms_norm") == (0, 90, 150)
    assert _cost(Fn(lambda t: t.prod(2)), x, "prod") == (0, 18, 48)
    assert _cost(Fn(lambda t: torch.outer(t[0, 0], t[0, 1, :3])), x, "outer") == (0, 12, 41)
    assert _cost(Fn(lambda t: torch.maximum(t, t.flip(2))), x, "maximum") == (0, 24, 48)
    img = torch.randn(2, 4, 3, 3)
    shuffled = Fn(lambda t: F.unfold(F.channel_shuffle(t, 2), 2))
    gm = trace(shuffled, img)
    cost = compute_cost(gm)
    assert (cost.uncounted, cost.flops, cost.flops_backward) == ((), 0, 0)


def test_pairwise_distance_local_response_norm_by_hand() -> None:
    """pairwise_distance of (3, 4) rows, D = 4, N = 3: 4 D = 16 each, bwd 5 D + 1 = 21; p = 1
    is left uncounted, named. LocalResponseNorm(3) on N = 72 elements: n + 5 = 8 and n + 7 =
    10 each (F.local_response_norm(size=2): 7 and 9). atan 1 / 3, nan_to_num 3 / 1 per
    element."""
    x = torch.randn(3, 4)
    assert _fcm_flops(lambda: F.pairwise_distance(x, x.flip(1))) == 0
    model = Fn(lambda t: F.pairwise_distance(t, t.flip(1)))
    assert _cost(model, x, "pairwise_distance") == (0, 3 * 16, 3 * 21)
    module = Fn(lambda t, m: m(t, t[:1]), m=nn.PairwiseDistance())
    assert _cost(module, x, "pairwisedistance") == (0, 3 * 16, 3 * 21)
    gm = trace(Fn(lambda t: F.pairwise_distance(t, t, p=1.0)), x)
    assert [u.op_kind for u in compute_cost(gm).uncounted] == ["pairwise_distance"]
    img = torch.randn(2, 4, 3, 3)
    assert _cost(nn.Sequential(nn.LocalResponseNorm(3)), img, "localresponsenorm") == (
        0,
        8 * 72,
        10 * 72,
    )
    fn = Fn(lambda t: F.local_response_norm(t, 2))
    assert _cost(fn, img, "local_response_norm") == (0, 7 * 72, 9 * 72)
    assert _cost(Fn(torch.atan), x, "atan") == (0, 12, 36)
    assert _cost(Fn(torch.nan_to_num), x, "nan_to_num") == (0, 36, 12)


def test_pdist_and_kron_by_hand() -> None:
    """torch.pdist of (5, 4): N = 10 distances of M = 4, cdist's 3 M = 12 each and 4 M + 1 = 17
    back (p = 1: 11 and 20). torch.kron of (2, 3) and (4, 2): N = 48 products, bwd as outer's
    4 N - 6 - 8 = 178. Both were listed uncounted; FlopCounterMode counts them as 0."""
    x = torch.randn(5, 4)
    assert _fcm_flops(lambda: F.pdist(x)) == 0
    assert _cost(Fn(lambda t: F.pdist(t)), x, "pdist") == (0, 10 * 12, 10 * 17)
    assert _cost(Fn(lambda t: torch.pdist(t, p=1)), x, "pdist") == (0, 10 * 11, 10 * 20)
    y = torch.randn(2, 3)
    assert _fcm_flops(lambda: torch.kron(y, x[:4, :2])) == 0
    assert _cost(Fn(lambda t: torch.kron(t[:2, :3], t[1:, :2])), x, "kron") == (0, 48, 178)


def test_searchsorted_bucketize_and_fractional_max_pool_by_hand() -> None:
    """searchsorted / bucketize of 15 values among B = 6 sorted entries: a binary search,
    ceil(lg 7) = 3 comparisons each, no gradient. Fractional max pooling 2x2 windows to a
    (1, 2, 2, 2) output: 3 comparisons per output, dy routed back (8). Each was listed
    uncounted; FlopCounterMode counts them as 0."""
    x, table = torch.randn(3, 5), torch.arange(6.0)
    assert _fcm_flops(lambda: torch.searchsorted(table, x)) == 0
    model = Fn(lambda t: torch.searchsorted(torch.sort(t[0])[0][:6], t).float())
    gm = trace(model.eval(), torch.randn(3, 7))
    assert compute_cost(gm).uncounted == ()
    (c,) = [info(n).cost for n in gm.graph.nodes if info(n).op_kind == "searchsorted"]
    assert (c["flops"], c["flops_backward"]) == (21 * 3, 0)
    model = Fn(lambda t: torch.bucketize(t, torch.linspace(-1, 1, 6)).float())
    assert _cost(model, x, "bucketize") == (0, 15 * 3, 0)
    pool = nn.FractionalMaxPool2d(2, output_size=2)
    img = torch.randn(1, 2, 5, 5)
    assert _cost(Fn(lambda t, m: m(t), m=pool), img, "fractionalmaxpool2d") == (0, 24, 8)
    fn = Fn(lambda t: F.fractional_max_pool2d(t, 2, output_size=2))
    assert _cost(fn, img, "fractional_max_pool2d") == (0, 24, 8)
    # 4 x 4 windows of 2 x 2 on a 5 x 5 map overlap; every one lies inside: 3 each, 32 outputs
    fn = Fn(lambda t: F.fractional_max_pool2d(t, 2, output_size=4))
    assert _cost(fn, img, "fractional_max_pool2d") == (0, 96, 32)


@pytest.mark.parametrize(
    "fn",
    [
        lambda t: torch.median(t, 1)[0],
        lambda t: t.median(),
        lambda t: torch.kthvalue(t, 2, 1)[0],
        lambda t: torch.mode(t, 1)[0],
        lambda t: t.nanmedian(),
    ],
)
def test_data_dependent_selections_stay_uncounted_with_the_reason(
    fn: Callable[..., torch.Tensor],
) -> None:
    """median, kthvalue, mode: torch's quickselect compares as many times as the values make
    it; no count holds for every input. Listed uncounted, the reason named."""
    gm = trace(Fn(fn).eval(), torch.randn(3, 5))
    (u,) = compute_cost(gm).uncounted
    assert "depend on the data" in u.reason


@pytest.mark.parametrize(
    ("p_rows", "r_rows", "mode", "mm"),
    [
        (30, 4, "use_mm_for_euclid_dist_if_necessary", True),  # more than 25 rows: torch's mm
        (4, 26, "use_mm_for_euclid_dist_if_necessary", True),
        (25, 25, "use_mm_for_euclid_dist_if_necessary", False),  # direct
        (3, 4, "use_mm_for_euclid_dist", True),
        (30, 40, "donot_use_mm_for_euclid_dist", False),
    ],
)
def test_cdist_is_priced_as_the_path_torch_takes(
    p_rows: int, r_rows: int, mode: str, mm: bool
) -> None:
    """p = 2 cdist of (2, P, 5) against (2, R, 5): torch computes the distances directly, or,
    with more than 25 rows or compute_mode='use_mm_for_euclid_dist', as one matmul of the
    inputs augmented with their squared norms (M + 2 = 7 terms per distance: N 7 MACs), the
    norms (2 M - 1 per row), -2 x1 (x1's elements), then clamp and sqrt per distance. Its
    backward: two matmuls of N M MACs (FlopCounterMode's count, the referee), dy / d, the
    zero mask (2), the two sums of the ratio, and x1, x2 scaled and subtracted. It was priced
    as the direct path whatever torch took (no MACs)."""
    b, m = 2, 5
    x1, x2 = torch.randn(b, p_rows, m), torch.randn(b, r_rows, m)
    n = b * p_rows * r_rows
    model = Fn(lambda t, o=x2: torch.cdist(t, o, compute_mode=mode))
    macs, fwd, bwd = _cost(model, x1, "cdist")
    if not mm:
        assert (macs, fwd, bwd) == (0, 3 * m * n, (4 * m + 1) * n)
        return
    rows = b * (p_rows + r_rows)
    assert macs == n * (m + 2)
    assert fwd == 2 * macs + rows * (2 * m - 1) + b * p_rows * m + 2 * n
    a, o = x1.clone().requires_grad_(True), x2.clone().requires_grad_(True)
    y = torch.cdist(a, o, compute_mode=mode)
    with FlopCounterMode(display=False) as fcm:
        y.sum().backward()
    assert fcm.get_total_flops() == 4 * n * m
    assert bwd == 4 * n * m + 3 * n + (2 * n - rows) + 2 * m * rows
