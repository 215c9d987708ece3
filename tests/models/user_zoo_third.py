"""Other users' models, a third sweep: shapes neither tests/models/user_zoo.py,
tests/models/user_zoo_more.py nor tests/test_user_models.py holds, and the ops that were left
uncounted before (nn.Bilinear, nn.EmbeddingBag, topk, sort, cdist, cosine_similarity, LPPool,
addcmul, nn.TransformerDecoder).

Read by path by the CLI (``model.name = "<this file>:build_lstm"``) and imported by the tests.
Each ``build_<name>`` returns a seeded, untrained model in eval mode that takes 16 features per
sample (``load`` of user_zoo; ``embedding_bag`` takes its ``load_tokens``) and returns 5 values
per sample.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn


class LSTMClassifier(nn.Module):
    """A two-layer bidirectional nn.LSTM (a leaf to torch.fx) over 4 steps of 4 features; the
    last layer's two final states, concatenated, classified."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(4, 6, num_layers=2, bidirectional=True, batch_first=True)
        self.fc = nn.Linear(12, 5)

    def forward(self, x):
        _, (h, _) = self.lstm(x.view(-1, 4, 4))
        return self.fc(torch.cat([h[-2], h[-1]], dim=1))


class BagOfWords(nn.Module):
    """fastText's classifier: nn.EmbeddingBag (mean) over the tokens, one Linear."""

    def __init__(self):
        super().__init__()
        self.bag = nn.EmbeddingBag(32, 8, mode="mean")
        self.fc = nn.Linear(8, 5)

    def forward(self, idx):
        return self.fc(self.bag(idx))


class SqueezeExcite(nn.Module):
    """A conv and a squeeze-and-excitation block: global average pool, Linear, ReLU, Linear,
    sigmoid gate multiplied into the channels."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3, padding=1)
        self.squeeze = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Linear(8, 2)
        self.fc2 = nn.Linear(2, 8)
        self.head = nn.Linear(8 * 16, 5)

    def forward(self, x):
        h = F.relu(self.conv(x.view(-1, 1, 4, 4)))
        s = self.squeeze(h).flatten(1)
        g = torch.sigmoid(self.fc2(F.relu(self.fc1(s))))
        return self.head((h * g.view(-1, 8, 1, 1)).flatten(1))


class MobileNetBlock(nn.Module):
    """MobileNetV2/V3's inverted residual: 1x1 expand, BatchNorm2d, ReLU6; 3x3 depthwise,
    BatchNorm2d, Hardswish; 1x1 project, BatchNorm2d; the residual add."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 4, 3, padding=1)
        self.expand = nn.Sequential(nn.Conv2d(4, 8, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU6())
        self.dw = nn.Sequential(
            nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False), nn.BatchNorm2d(8), nn.Hardswish()
        )
        self.project = nn.Sequential(nn.Conv2d(8, 4, 1, bias=False), nn.BatchNorm2d(4))
        self.head = nn.Linear(4 * 16, 5)

    def forward(self, x):
        h = self.stem(x.view(-1, 1, 4, 4))
        h = h + self.project(self.dw(self.expand(h)))
        return self.head(h.flatten(1))


class Norms(nn.Module):
    """GroupNorm (2 groups of 4 channels), InstanceNorm2d (affine) and a functional
    F.instance_norm over a Conv1d's channels."""

    def __init__(self):
        super().__init__()
        self.c2 = nn.Conv2d(1, 8, 3, padding=1)
        self.gn = nn.GroupNorm(2, 8)
        self.inorm = nn.InstanceNorm2d(8, affine=True)
        self.c1 = nn.Conv1d(1, 4, 3, padding=1)
        self.fc = nn.Linear(8 * 16 + 4 * 16, 5)

    def forward(self, x):
        a = self.inorm(F.relu(self.gn(self.c2(x.view(-1, 1, 4, 4)))))
        b = F.instance_norm(self.c1(x.unsqueeze(1)))
        return self.fc(torch.cat([a.flatten(1), b.flatten(1)], 1))


class CausalSDPA(nn.Module):
    """A GPT-style block: one Linear to q, k and v (chunk), two heads,
    F.scaled_dot_product_attention with is_causal=True, an output projection."""

    def __init__(self):
        super().__init__()
        self.qkv = nn.Linear(4, 12)
        self.proj = nn.Linear(4, 4)
        self.fc = nn.Linear(16, 5)

    def forward(self, x):
        b = x.shape[0]
        q, k, v = self.qkv(x.view(b, 4, 4)).chunk(3, dim=-1)
        q, k, v = (t.view(b, 4, 2, 2).transpose(1, 2) for t in (q, k, v))
        h = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.fc(self.proj(h.transpose(1, 2).reshape(b, 4, 4)).flatten(1))


class SuperRes(nn.Module):
    """ESPCN's sub-pixel up-sampling: Conv2d to 4 r^2 channels, nn.PixelShuffle(2); then
    F.pixel_unshuffle back down and a trilinear F.interpolate of a 3-D view."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3, padding=1)
        self.shuffle = nn.PixelShuffle(2)  # (N, 2, 8, 8)
        self.fc = nn.Linear(2 * 64 + 8 * 16 + 128, 5)

    def forward(self, x):
        up = self.shuffle(self.conv(x.view(-1, 1, 4, 4)))
        down = F.pixel_unshuffle(up, 2)  # (N, 8, 4, 4)
        vol = F.interpolate(x.view(-1, 1, 2, 2, 4), scale_factor=2, mode="trilinear")
        return self.fc(torch.cat([up.flatten(1), down.flatten(1), vol.flatten(1)], 1))


class TiedLinears(nn.Module):
    """Two Linear layers that share one weight Parameter (each with its own bias), in a chain
    of Linear and ReLU modules."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(16, 16)
        self.fc2 = nn.Linear(16, 16)
        self.fc2.weight = self.fc1.weight
        self.out = nn.Linear(16, 5)
        self.act1, self.act2 = nn.ReLU(), nn.ReLU()

    def forward(self, x):
        return self.out(self.act2(self.fc2(self.act1(self.fc1(x)))))


class Inception(nn.Module):
    """GoogLeNet's inception block: 1x1, 3x3 and 5x5 branches and a max-pool branch,
    concatenated along the channels."""

    def __init__(self):
        super().__init__()
        self.b1 = nn.Conv2d(1, 2, 1)
        self.b3 = nn.Sequential(nn.Conv2d(1, 2, 1), nn.ReLU(), nn.Conv2d(2, 3, 3, padding=1))
        self.b5 = nn.Conv2d(1, 2, 5, padding=2)
        self.bp = nn.Sequential(nn.MaxPool2d(3, 1, 1), nn.Conv2d(1, 1, 1))
        self.fc = nn.Linear(8 * 16, 5)

    def forward(self, x):
        img = x.view(-1, 1, 4, 4)
        h = torch.cat([self.b1(img), self.b3(img), self.b5(img), self.bp(img)], dim=1)
        return self.fc(F.relu(h).flatten(1))


class Conv3d(nn.Module):
    """A volume (2 x 2 x 4): Conv3d, BatchNorm3d, ReLU, MaxPool3d."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv3d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm3d(4)
        self.pool = nn.MaxPool3d((1, 1, 2))
        self.fc = nn.Linear(4 * 8, 5)

    def forward(self, x):
        return self.fc(self.pool(F.relu(self.bn(self.conv(x.view(-1, 1, 2, 2, 4))))).flatten(1))


class BilinearFusion(nn.Module):
    """Two halves of the features fused by nn.Bilinear (a bilinear pooling head)."""

    def __init__(self):
        super().__init__()
        self.a = nn.Linear(8, 6)
        self.fuse = nn.Bilinear(6, 8, 5)

    def forward(self, x):
        return self.fuse(torch.tanh(self.a(x[:, :8])), x[:, 8:])


class Prototypes(nn.Module):
    """A prototypical network: negative torch.cdist to 5 learned prototypes are the logits; a
    k-max pooling (torch.topk) and a sorted copy (torch.sort) of the features feed the
    embedding."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(16 + 4, 8)
        self.protos = nn.Parameter(torch.randn(5, 8))

    def forward(self, x):
        top = torch.topk(x, 4, dim=1).values
        ranked, _ = torch.sort(x, dim=1, descending=True)
        z = self.embed(torch.cat([ranked, top], 1))
        return -torch.cdist(z.unsqueeze(0), self.protos.unsqueeze(0)).squeeze(0)


class CosineHead(nn.Module):
    """A cosine classifier (few-shot learning's): F.cosine_similarity of the features to each
    class's weight vector, times a scale."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(16, 8)
        self.classes = nn.Parameter(torch.randn(5, 8))

    def forward(self, x):
        h = F.relu(self.fc(x))
        return 10.0 * F.cosine_similarity(h.unsqueeze(1), self.classes.unsqueeze(0), dim=-1)


class LPPools(nn.Module):
    """Power-average pooling: nn.LPPool2d (p = 2) over a conv's map and nn.LPPool1d (p = 3)
    over the features' positive parts."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.pool2 = nn.LPPool2d(2, 2)
        self.pool1 = nn.LPPool1d(3, 2)
        self.fc = nn.Linear(4 * 4 + 8, 5)

    def forward(self, x):
        a = self.pool2(self.conv(x.view(-1, 1, 4, 4))).flatten(1)
        b = self.pool1(F.relu(x).unsqueeze(1)).flatten(1)  # x^3 of negatives: a NaN root
        return self.fc(torch.cat([a, b], 1))


class GatedResidual(nn.Module):
    """A highway-like gate written with torch.addcmul: x + 0.5 * gate * transform."""

    def __init__(self):
        super().__init__()
        self.gate = nn.Linear(16, 16)
        self.transform = nn.Linear(16, 16)
        self.fc = nn.Linear(16, 5)

    def forward(self, x):
        g = torch.sigmoid(self.gate(x))
        return self.fc(torch.addcmul(x, g, torch.tanh(self.transform(x)), value=0.5))


class Decoder(nn.Module):
    """A tiny seq2seq: 4 target tokens attend to 2 memory tokens through a one-layer
    nn.TransformerDecoder with a causal mask of -inf (a buffer), then the tokens are averaged."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(4, 8)
        self.memory = nn.Linear(8, 8)
        layer = nn.TransformerDecoderLayer(8, 2, 16, dropout=0.0, batch_first=True)
        self.decoder = nn.TransformerDecoder(layer, 1)
        # -inf where a token may not look: the CLI refused the checkpoint (not finite)
        self.register_buffer("mask", nn.Transformer.generate_square_subsequent_mask(4))
        self.head = nn.Linear(8, 5)

    def forward(self, x):
        tgt = self.embed(x.view(-1, 4, 4))
        mem = self.memory(x.view(-1, 2, 8))
        return self.head(self.decoder(tgt, mem, tgt_mask=self.mask).mean(1))


class Heads(NamedTuple):
    logits: torch.Tensor
    embedding: torch.Tensor


class NamedTupleOut(nn.Module):
    """A forward that returns a NamedTuple (logits and an embedding), as detection and
    metric-learning code does."""

    def __init__(self):
        super().__init__()
        self.body = nn.Linear(16, 8)
        self.head = nn.Linear(8, 5)

    def forward(self, x):
        z = F.relu(self.body(x))
        return Heads(self.head(z), z)


class Float64MLP(nn.Module):
    """A model in float64 (built with .double())."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(16, 8)
        self.fc2 = nn.Linear(8, 5)

    def forward(self, x):
        return self.fc2(F.relu(self.fc1(x)))


MODELS: dict[str, type[nn.Module]] = {
    "lstm": LSTMClassifier,
    "embedding_bag": BagOfWords,
    "squeeze_excite": SqueezeExcite,
    "mobilenet_block": MobileNetBlock,
    "norms": Norms,
    "causal_sdpa": CausalSDPA,
    "super_res": SuperRes,
    "tied_linears": TiedLinears,
    "inception": Inception,
    "conv3d": Conv3d,
    "bilinear": BilinearFusion,
    "prototypes": Prototypes,
    "cosine_head": CosineHead,
    "lp_pools": LPPools,
    "gated_residual": GatedResidual,
    "decoder": Decoder,
    "named_tuple_out": NamedTupleOut,
    "float64": Float64MLP,
}


def _builder(cls: type[nn.Module]) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        torch.manual_seed(0)
        model = cls().eval()
        return model.double() if cls is Float64MLP else model

    return build


for _name, _cls in MODELS.items():
    globals()[f"build_{_name}"] = _builder(_cls)


def load_double(samples: int = 96, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """user_zoo's ``load`` in float64, for ``float64``."""
    from tests.models.user_zoo import load

    x, y = load(samples, seed)
    return x.double(), y
