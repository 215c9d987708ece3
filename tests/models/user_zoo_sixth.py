"""Other users' models, a sixth sweep: families the first five sweeps did not hold. An
MLP-Mixer block (token mixing through a transpose); a tiny graph network (an adjacency buffer
through torch.bmm, messages gathered along edge-index buffers and summed by index_add and
scatter_add); names that collide with fx's own (a submodule ``linear`` beside a parameter
``linear_weight``, submodules ``add`` and ``output``); logits written by hand (torch.addmm,
F.linear of raw parameters, ``x @ self.W.t() + self.b``); a quantization-aware-trained-looking
forward (torch.round, clamp, floor, a straight-through ``.detach()``,
torch.fake_quantize_per_tensor_affine); a one-logit head; a forward with a ``mask=None``
argument and a ``return_features`` flag; a frozen backbone under torch.no_grad(); a ConvNeXt
block (LayerScale, a learned scalar temperature, LayerNorm over channels-last maps);
``padding="same"`` convolutions, dilated and grouped, on channels-last inputs; the shrink
activations and RReLU; stack, unbind, split, flip, roll, tile; a causal dilated Conv1d stack
(TCN); a padded nn.Embedding averaged over its real tokens; and an autoencoder whose
decoder reads its encoder's weight transposed.

Read by path by the CLI (``model.name = "<this file>:build_mixer"``) and imported by the
tests. Each ``build_<name>`` returns a seeded, untrained model in eval mode; ``LOADERS`` names
the data function of each (``data.name = "<this file>:load"``), which returns ``(x, y)``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn


class Mixer(nn.Module):
    """An MLP-Mixer block: 4 patches of 4 features embedded to 8 channels; pre-norm token
    mixing (a Linear over the patches, reached by a transpose), pre-norm channel mixing, both
    residual, GELU; the patches averaged."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(4, 8)
        self.norm1 = nn.LayerNorm(8)
        self.tok1, self.tok2 = nn.Linear(4, 6), nn.Linear(6, 4)
        self.norm2 = nn.LayerNorm(8)
        self.channels = nn.Sequential(nn.Linear(8, 16), nn.GELU(), nn.Linear(16, 8))
        self.head = nn.Linear(8, 5)

    def forward(self, x):
        t = self.embed(x.view(-1, 4, 4))
        u = self.norm1(t).transpose(1, 2)  # (N, 8 channels, 4 patches)
        t = t + self.tok2(F.gelu(self.tok1(u))).transpose(1, 2)
        t = t + self.channels(self.norm2(t))
        return self.head(t.mean(1))


class GraphNet(nn.Module):
    """4 nodes of 4 features: a GCN layer (the normalised adjacency with self-loops, a buffer,
    batched by expand, times the node features through torch.bmm), then messages along 6
    directed edges (src/dst index buffers) summed into their targets with index_add and with
    scatter_add (into torch.zeros of the batch's size), and the nodes averaged."""

    def __init__(self):
        super().__init__()
        adj = torch.tensor([[0, 1, 1, 0], [1, 0, 0, 1], [1, 0, 0, 1], [0, 1, 1, 0]]) + torch.eye(4)
        self.register_buffer("adj", adj / adj.sum(1, keepdim=True))
        self.register_buffer("src", torch.tensor([0, 1, 2, 3, 0, 2]))
        self.register_buffer("dst", torch.tensor([1, 0, 3, 2, 2, 0]))
        self.lin1 = nn.Linear(4, 8)
        self.lin2 = nn.Linear(8, 8)
        self.head = nn.Linear(8, 5)

    def forward(self, x):
        h = x.view(-1, 4, 4)
        h = F.relu(torch.bmm(self.adj.expand(h.size(0), -1, -1), self.lin1(h)))
        m = self.lin2(h)[:, self.src]  # (N, 6 edges, 8)
        a = torch.zeros_like(h).index_add(1, self.dst, m)
        index = self.dst.view(1, -1, 1).expand(m.size(0), -1, m.size(2))
        b = torch.zeros(h.size(0), 4, 8, device=h.device).scatter_add(1, index, m)
        return self.head(F.relu(a + b + h).mean(1))


class Collide(nn.Module):
    """Names fx also makes: a submodule ``linear`` beside a parameter ``linear_weight`` (fx
    names the node reading ``linear.weight`` so), submodules named ``add``, ``relu`` and
    ``output``, and an F.relu and a ``+`` beside them; an nn.Sequential ``block`` whose first
    layer's node fx names ``block_0``, beside a Linear ``block_0`` (node ``block_2``)."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(16, 8)
        self.linear_weight = nn.Parameter(torch.randn(8, 8) * 0.3)
        self.add = nn.Linear(8, 8)
        self.relu = nn.ReLU()
        self.block = nn.Sequential(nn.Linear(8, 8), nn.Tanh())
        self.block_0 = nn.Linear(8, 8)
        self.output = nn.Linear(8, 5)

    def forward(self, x):
        h = self.relu(self.linear(x))
        h = F.relu(h @ self.linear_weight) + self.add(h)
        return self.output(self.block_0(self.block(h)))


class HandLogits(nn.Module):
    """Layers written with raw parameters: torch.addmm(b, x, W.t()), F.linear(h, W, b), and
    the logits as ``h @ self.W.t() + self.b``."""

    def __init__(self):
        super().__init__()
        self.W1 = nn.Parameter(torch.randn(12, 16) * 0.3)
        self.b1 = nn.Parameter(torch.randn(12) * 0.1)
        self.W2 = nn.Parameter(torch.randn(8, 12) * 0.3)
        self.b2 = nn.Parameter(torch.randn(8) * 0.1)
        self.W = nn.Parameter(torch.randn(5, 8) * 0.3)
        self.b = nn.Parameter(torch.randn(5) * 0.1)

    def forward(self, x):
        h = torch.relu(torch.addmm(self.b1, x, self.W1.t()))
        h = torch.tanh(F.linear(h, self.W2, self.b2))
        return h @ self.W.t() + self.b


class QATForward(nn.Module):
    """A model from a quantization-aware-training script, its rounding written in forward:
    the input rounded to 1/8 and clamped, a straight-through estimator
    (``h + (round(h) - h).detach()``), torch.fake_quantize_per_tensor_affine and a floor."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(16, 12)
        self.fc2 = nn.Linear(12, 5)

    def forward(self, x):
        x = torch.clamp(torch.round(x * 8) / 8, -4, 4)
        h = F.relu(self.fc1(x))
        q = h + (torch.round(h * 4) / 4 - h).detach()
        q = torch.fake_quantize_per_tensor_affine(q, 0.125, 0, -128, 127)
        return self.fc2(torch.floor(q * 16) / 16)


class OneLogit(nn.Module):
    """One output a sample: a binary classifier's logit (BCEWithLogitsLoss) or a regression
    estimate, 16 -> 8 -> 1."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(16, 8)
        self.fc2 = nn.Linear(8, 1)

    def forward(self, x):
        return self.fc2(F.relu(self.fc1(x)))


class OptionalArgs(nn.Module):
    """A forward with an optional mask (``mask=None``, tested with ``is not None``), a
    ``return_features`` flag and a keyword-only scale, none of which the data give."""

    def __init__(self):
        super().__init__()
        self.body = nn.Linear(16, 8)
        self.head = nn.Linear(8, 5)

    def forward(self, x, mask=None, return_features: bool = False, *, scale: float = 1.0):
        if mask is not None:
            x = x * mask
        h = F.relu(self.body(x))
        out = self.head(h) * scale
        if return_features:
            return out, h
        return out


class FrozenBackbone(nn.Module):
    """A linear probe: a backbone run under torch.no_grad() (frozen), a head behind
    F.dropout(training=self.training)."""

    def __init__(self):
        super().__init__()
        self.backbone = nn.Linear(16, 8)
        self.head = nn.Linear(8, 5)

    def forward(self, x):
        with torch.no_grad():
            f = F.relu(self.backbone(x))
        return self.head(F.dropout(f, 0.2, training=self.training))


class ConvNeXtBlock(nn.Module):
    """ConvNeXt's block on an 8x8 map: a 2x2 patchify stem, a depthwise 7x7, permute to
    channels last, LayerNorm, Linear, GELU, Linear, LayerScale (a per-channel gamma), permute
    back, the residual add; global average pool by mean over (-2, -1); the logits divided by
    a learned scalar temperature (a 0-d parameter)."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 8, 2, stride=2)
        self.dw = nn.Conv2d(8, 8, 7, padding=3, groups=8)
        self.norm = nn.LayerNorm(8, eps=1e-6)
        self.pw1 = nn.Linear(8, 16)
        self.pw2 = nn.Linear(16, 8)
        self.gamma = nn.Parameter(0.1 * torch.ones(8))
        self.temperature = nn.Parameter(torch.tensor(2.0))
        self.head = nn.Linear(8, 5)

    def forward(self, x):
        h = self.stem(x)
        r = h
        h = self.dw(h).permute(0, 2, 3, 1)
        h = self.pw2(F.gelu(self.pw1(self.norm(h))))
        h = r + (self.gamma * h).permute(0, 3, 1, 2)
        return self.head(h.mean([-2, -1])) / self.temperature


class SameConvs(nn.Module):
    """``padding="same"`` convolutions: a 3x3, a dilated grouped 3x3, GroupNorm, SiLU; the map
    flattened to 64 positions and a dilated grouped Conv1d "same" over them; the model and
    its inputs in channels_last memory format."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 4, 3, padding="same")
        self.c2 = nn.Conv2d(4, 4, 3, padding="same", dilation=2, groups=2)
        self.gn = nn.GroupNorm(2, 4)
        self.c3 = nn.Conv1d(4, 6, 3, padding="same", dilation=2, groups=2)
        self.fc = nn.Linear(6 * 64, 5)

    def forward(self, x):
        h = F.silu(self.gn(self.c2(F.hardswish(self.c1(x)))))
        return self.fc(F.elu(self.c3(h.flatten(2))).flatten(1))


class ShrinkActs(nn.Module):
    """GLU, LogSigmoid, Softsign, SELU, CELU, Hardtanh and Threshold modules; tanhshrink,
    softshrink, hardshrink, RReLU (eval: a fixed slope), SiLU, softmin and GLU functions."""

    def __init__(self):
        super().__init__()
        self.a = nn.Linear(16, 16)
        self.glu = nn.GLU()
        self.acts = nn.Sequential(
            nn.LogSigmoid(), nn.Softsign(), nn.SELU(), nn.CELU(0.5), nn.Hardtanh(-2, 2)
        )
        self.b = nn.Linear(8, 8)
        self.threshold = nn.Threshold(0.1, 0.0)
        self.rrelu = nn.RReLU()
        self.out = nn.Linear(8, 5)

    def forward(self, x):
        h = self.acts(self.glu(self.a(x)))
        h = self.threshold(self.b(h)) + F.tanhshrink(h) + F.softshrink(h, 0.2)
        h = h + F.hardshrink(h, 0.2) + self.rrelu(h) + F.rrelu(h, training=self.training)
        h = F.silu(h) + F.logsigmoid(h)
        return self.out(F.softmin(h, dim=1) + F.glu(torch.cat([h, h], 1), dim=1))


class StackSplit(nn.Module):
    """torch.split by sizes, one Linear on two slices stacked along a new last dim and
    unbound again, the list of a chunk stacked along dim 1 (fx refused to iterate it), flip,
    roll, repeat_interleave, tile and hstack."""

    def __init__(self):
        super().__init__()
        self.a = nn.Linear(4, 6)
        self.fc = nn.Linear(6 * 4 + 16 + 16, 5)

    def forward(self, x):
        p, q, r = torch.split(x, [4, 4, 8], dim=1)
        cols = torch.stack([self.a(p), self.a(q)], dim=-1)  # (N, 6, 2)
        a, b = cols.unbind(-1)
        t = torch.stack(list(r.chunk(2, dim=1)), dim=1)  # (N, 2, 4)
        u = torch.flip(t, [1]).roll(1, dims=2).repeat_interleave(2, dim=1)  # (N, 4, 4)
        v = torch.tile(x[:, :4], (1, 4))
        return self.fc(torch.cat([a, b, torch.hstack([a, b]), u.flatten(1), v], 1))


class TCN(nn.Module):
    """A temporal convolutional network over 16 steps: causal Conv1d (left padding by F.pad)
    with dilations 1, 2 and 4, grouped, residual; the last step classified."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv1d(1, 4, 3)
        self.c2 = nn.Conv1d(4, 4, 3, dilation=2, groups=2)
        self.c3 = nn.Conv1d(4, 4, 3, dilation=4, groups=4)
        self.fc = nn.Linear(4, 5)

    def forward(self, x):
        h = F.relu(self.c1(F.pad(x.unsqueeze(1), (2, 0))))
        h = h + F.relu(self.c2(F.pad(h, (4, 0))))
        h = h + F.relu(self.c3(F.pad(h, (8, 0))))
        return self.fc(h[:, :, -1])


class EmbedMean(nn.Module):
    """nn.Embedding with padding_idx 0, averaged over the real tokens (a mask from idx != 0,
    the sum divided by the count clamped to 1), one Linear."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(32, 8, padding_idx=0)
        self.fc = nn.Linear(8, 5)

    def forward(self, idx):
        mask = (idx != 0).unsqueeze(-1).float()
        e = self.embed(idx) * mask
        return self.fc(e.sum(1) / mask.sum(1).clamp(min=1.0))


class TiedAutoencoder(nn.Module):
    """An autoencoder whose decoder is its encoder's weight transposed (``F.linear(z,
    self.enc.weight.t(), self.dec_bias)``), the code and the reconstruction classified."""

    def __init__(self):
        super().__init__()
        self.enc = nn.Linear(16, 6)
        self.dec_bias = nn.Parameter(torch.randn(16) * 0.1)
        self.head = nn.Linear(6 + 16, 5)

    def forward(self, x):
        z = torch.relu(self.enc(x))
        r = F.linear(z, self.enc.weight.t(), self.dec_bias)
        return self.head(torch.cat([z, r], 1))


MODELS: dict[str, type[nn.Module]] = {
    "mixer": Mixer,
    "graph_net": GraphNet,
    "collide": Collide,
    "hand_logits": HandLogits,
    "qat_forward": QATForward,
    "one_logit": OneLogit,
    "optional_args": OptionalArgs,
    "frozen_backbone": FrozenBackbone,
    "convnext": ConvNeXtBlock,
    "same_convs": SameConvs,
    "shrink_acts": ShrinkActs,
    "stack_split": StackSplit,
    "tcn": TCN,
    "embed_mean": EmbedMean,
    "tied_autoencoder": TiedAutoencoder,
}


def _builder(cls: type[nn.Module]) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        torch.manual_seed(0)
        model = cls().eval()
        if cls is SameConvs:
            model = model.to(memory_format=torch.channels_last)
        return model

    return build


for _name, _cls in MODELS.items():
    globals()[f"build_{_name}"] = _builder(_cls)


def _normal(shape: tuple[int, ...], samples: int, seed: int) -> torch.Tensor:
    return torch.randn(samples, *shape, generator=torch.Generator().manual_seed(seed))


def load(samples: int = 96, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """16 features, 5 classes (the argmax of the first 5)."""
    x = _normal((16,), samples, seed)
    return x, x[:, :5].argmax(1)


def load_map8(samples: int = 96, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """8x8 maps of one channel, 5 classes."""
    x = _normal((1, 8, 8), samples, seed)
    return x, x.flatten(1)[:, :5].argmax(1)


def load_map8_channels_last(samples: int = 96, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``load_map8``'s maps in channels_last memory format (same values)."""
    x, y = load_map8(samples, seed)
    return x.contiguous(memory_format=torch.channels_last), y


def load_binary(samples: int = 96, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """16 features, labels 0 and 1 (the sign of the first)."""
    x = _normal((16,), samples, seed)
    return x, (x[:, 0] > 0).long()


def load_estimate(samples: int = 96, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """16 features, one float target a sample, of shape (samples,)."""
    x = _normal((16,), samples, seed)
    return x, 0.5 * x[:, 0] - 0.25 * x[:, 1]


def load_tokens(samples: int = 96, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """6 token ids in [0, 32) a sample, 0 the padding, 5 classes."""
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, 32, (samples, 6), generator=g)
    return idx, idx[:, 0] % 5


LOADERS: dict[str, str] = {
    "mixer": "load",
    "graph_net": "load",
    "collide": "load",
    "hand_logits": "load",
    "qat_forward": "load",
    "one_logit": "load_binary",
    "optional_args": "load",
    "frozen_backbone": "load",
    "convnext": "load_map8",
    "same_convs": "load_map8_channels_last",
    "shrink_acts": "load",
    "stack_split": "load",
    "tcn": "load",
    "embed_mean": "load_tokens",
    "tied_autoencoder": "load",
}
