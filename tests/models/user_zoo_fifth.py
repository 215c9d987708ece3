"""Other users' models, a fifth sweep: families the first four sweeps did not hold. Recurrent
cells stepped in a Python loop (nn.GRUCell, nn.LSTMCell, nn.RNNCell); convolutions padded by
reflection, wrap-around and replication, dilated, strided and grouped; pools with ceil_mode and
adaptive pools to sizes that do not divide the input; ShuffleNet's channel shuffle; masking
with torch.where, masked_fill, clamp and F.normalize; torch.matmul of two activations and of
an activation and a parameter; nn.Flatten(start_dim=2) into a Linear over tokens; index
gathers; a pre-norm nn.TransformerEncoderLayer; a positional-encoding table sliced to the
sequence; bias-free Linears before BatchNorm1d (one without affine), which export maps; and
a model that returns one scalar.

Read by path by the CLI (``model.name = "<this file>:build_gru_cell"``) and imported by the
tests. Each ``build_<name>`` returns a seeded, untrained model in eval mode; ``LOADERS`` names
the data function of each (``data.name = "<this file>:load"``), which returns ``(x, y)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn


class GRUCellLoop(nn.Module):
    """nn.GRUCell stepped over 4 steps of 4 features in a Python loop (torch.fx unrolls it;
    the cell is a leaf), its state started at zeros of the batch's size; the last state
    classified."""

    def __init__(self):
        super().__init__()
        self.cell = nn.GRUCell(4, 8)
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        t = x.view(x.size(0), 4, 4)
        h = x.new_zeros(x.size(0), 8)
        for i in range(4):
            h = self.cell(t[:, i], h)
        return self.fc(h)


class RecurrentCells(nn.Module):
    """nn.LSTMCell and a tanh nn.RNNCell side by side over 4 steps, their states started by
    the cells themselves (no state given on the first step); both last states classified."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTMCell(4, 6)
        self.rnn = nn.RNNCell(4, 6, nonlinearity="tanh")
        self.fc = nn.Linear(12, 5)

    def forward(self, x):
        t = x.view(-1, 4, 4)
        h, c = self.lstm(t[:, 0])
        r = self.rnn(t[:, 0])
        for i in range(1, 4):
            h, c = self.lstm(t[:, i], (h, c))
            r = self.rnn(t[:, i], r)
        return self.fc(torch.cat([h, r], 1))


class PaddedConvs(nn.Module):
    """Conv2d padded by reflection, a dilated grouped Conv2d padded circularly, a strided
    Conv2d padded by replication, and a bias-free 1x1 Conv2d before a BatchNorm2d: an 8x8
    map of one channel down to 4x4 of 8."""

    def __init__(self):
        super().__init__()
        self.reflect = nn.Conv2d(1, 4, 3, padding=1, padding_mode="reflect")
        self.circular = nn.Conv2d(4, 4, 3, padding=2, dilation=2, groups=2, padding_mode="circular")
        self.replicate = nn.Conv2d(4, 8, 3, stride=2, padding=1, padding_mode="replicate")
        self.point = nn.Conv2d(8, 8, 1, bias=False)
        self.bn = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8 * 4 * 4, 5)

    def forward(self, x):
        h = F.relu(self.reflect(x))
        h = F.elu(self.circular(h))
        h = F.silu(self.replicate(h))
        return self.fc(F.relu(self.bn(self.point(h))).flatten(1))


class CeilPools(nn.Module):
    """A 7x7 map: MaxPool2d(2, ceil_mode=True) to 4x4, AvgPool2d(3, 2, padding=1,
    ceil_mode=True, count_include_pad=False), AdaptiveMaxPool2d((3, 2)); and its rows as a
    sequence of 7: MaxPool1d(2, ceil_mode=True) and AdaptiveAvgPool1d(3)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.max2 = nn.MaxPool2d(2, ceil_mode=True)
        self.avg2 = nn.AvgPool2d(3, 2, padding=1, ceil_mode=True, count_include_pad=False)
        self.amax = nn.AdaptiveMaxPool2d((3, 2))
        self.conv1 = nn.Conv1d(7, 4, 3, padding=1)
        self.max1 = nn.MaxPool1d(2, ceil_mode=True)
        self.aavg = nn.AdaptiveAvgPool1d(3)
        self.fc = nn.Linear(4 * 3 * 2 + 4 * 4 + 4 * 3, 5)

    def forward(self, x):
        h = F.relu(self.conv(x))
        a = self.amax(self.avg2(self.max2(h)))  # 7 -> 4 -> 2 -> (3, 2)
        s = F.relu(self.conv1(x.squeeze(1)))  # (N, 4, 7)
        b, c = self.max1(s), self.aavg(s)  # (N, 4, 4), (N, 4, 3)
        return self.fc(torch.cat([a.flatten(1), b.flatten(1), c.flatten(1)], 1))


class ShuffleBlock(nn.Module):
    """ShuffleNet's unit: a grouped 1x1 Conv2d, the channel shuffle written by hand (view,
    transpose, reshape), a depthwise 3x3, a second grouped 1x1, nn.ChannelShuffle, a residual
    add; Hardswish and GELU (tanh) between."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 8, 3, padding=1)
        self.g1 = nn.Conv2d(8, 8, 1, groups=2)
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.g2 = nn.Conv2d(8, 8, 1, groups=4)
        self.shuffle = nn.ChannelShuffle(4)
        self.fc = nn.Linear(8 * 4 * 4, 5)

    def forward(self, x):
        h = F.hardswish(self.stem(x))
        t = self.g1(h)
        n, c, hh, ww = t.shape
        t = t.view(n, 2, c // 2, hh, ww).transpose(1, 2).reshape(n, c, hh, ww)
        t = self.shuffle(self.g2(F.gelu(self.dw(t), approximate="tanh")))
        return self.fc(F.avg_pool2d(h + t, 2).flatten(1))


class Masked(nn.Module):
    """torch.where with a comparison and with a constant mask buffer, masked_fill, clamp,
    softplus (beta 2) and F.normalize between two Linears."""

    def __init__(self):
        super().__init__()
        self.a = nn.Linear(16, 12)
        self.b = nn.Linear(12, 5)
        self.register_buffer("keep", torch.arange(12) % 3 != 0)

    def forward(self, x):
        h = self.a(x)
        h = torch.where(h > 0, h, 0.1 * h)
        h = torch.where(self.keep, h, torch.zeros_like(h))
        h = h.masked_fill(h < -0.5, -0.5).clamp(-1.0, 2.0)
        h = F.softplus(h, beta=2.0)
        return self.b(F.normalize(h, dim=1))


class MatmulParam(nn.Module):
    """torch.matmul of an activation and a parameter (4 tokens of 4 features times a 4 x 6
    matrix), then ``@`` of two activations (the tokens' Gram matrix), then a Linear."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(4, 6) * 0.5)
        self.fc = nn.Linear(4 * 4, 5)

    def forward(self, x):
        t = x.view(-1, 4, 4)
        h = torch.matmul(t, self.w)  # (N, 4, 6)
        g = h @ h.transpose(1, 2)  # (N, 4, 4)
        return self.fc(torch.tanh(g).flatten(1))


class FlattenTokens(nn.Module):
    """A Conv2d's 4x4 map flattened from dim 2 (nn.Flatten(start_dim=2)): 16 tokens of 4
    channels, a Linear over the channels of each token (a 3-d input), Mish, mean over tokens."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, stride=2, padding=1)
        self.flat = nn.Flatten(start_dim=2)
        self.mix = nn.Linear(4, 6)
        self.fc = nn.Linear(6, 5)

    def forward(self, x):
        t = self.flat(self.conv(x)).transpose(1, 2)  # (N, 16, 4)
        return self.fc(F.mish(self.mix(t)).mean(dim=1))


class Gathers(nn.Module):
    """Integer-index gathers from a long buffer: Tensor.gather along the features,
    torch.index_select and advanced indexing ``h[:, idx]``; then a Linear."""

    def __init__(self):
        super().__init__()
        self.a = nn.Linear(16, 10)
        self.register_buffer("idx", torch.tensor([9, 0, 3, 3, 7, 1]))
        self.fc = nn.Linear(18, 5)

    def forward(self, x):
        h = torch.relu(self.a(x))
        g = h.gather(1, self.idx.expand(h.size(0), -1))
        s = torch.index_select(h, 1, self.idx)
        return self.fc(torch.cat([g, s * 0.5, h[:, self.idx]], 1))


class PreNormEncoder(nn.Module):
    """One nn.TransformerEncoderLayer, pre-norm (norm_first=True), batch_first, ReLU: 4 tokens
    of 8 features from a Linear embedding, the first token classified."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(4, 8)
        self.layer = nn.TransformerEncoderLayer(
            8, 2, 16, dropout=0.0, batch_first=True, norm_first=True
        )
        self.head = nn.Linear(8, 5)

    def forward(self, x):
        return self.head(self.layer(self.embed(x.view(-1, 4, 4)))[:, 0])


class PositionalEncoding(nn.Module):
    """PyTorch's transformer tutorial's sinusoidal table, a buffer of 10 positions sliced to
    the sequence's length (``self.pe[:, : t.size(1)]``: torch.fx refused it), added to 4
    tokens of 4 features; a Linear over each token, GELU, the mean over tokens, a Linear."""

    def __init__(self, d: int = 4, positions: int = 10):
        super().__init__()
        pos = torch.arange(positions).unsqueeze(1)
        div = torch.exp(torch.arange(0, d, 2) * (-math.log(10000.0) / d))
        pe = torch.zeros(1, positions, d)
        pe[0, :, 0::2], pe[0, :, 1::2] = torch.sin(pos * div), torch.cos(pos * div)
        self.register_buffer("pe", pe)
        self.mix = nn.Linear(d, 8)
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        t = x.view(x.size(0), -1, 4)
        t = t + self.pe[:, : t.size(1)]
        return self.fc(F.gelu(self.mix(t)).mean(dim=1))


class BiasFreeBN(nn.Module):
    """Bias-free Linears each followed by a BatchNorm1d in eval, the first without an affine
    (affine=False: its running statistics alone), F.relu and nn.ReLU between: a chain export
    maps."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(16, 12, bias=False)
        self.bn1 = nn.BatchNorm1d(12, affine=False)
        self.fc2 = nn.Linear(12, 8, bias=False)
        self.bn2 = nn.BatchNorm1d(8)
        self.act = nn.ReLU()
        self.out = nn.Linear(8, 5)

    def forward(self, x):
        return self.out(self.act(self.bn2(self.fc2(F.relu(self.bn1(self.fc1(x)))))))


class ScalarOut(nn.Module):
    """Returns one scalar a batch, the way a model that computes its own loss does: an
    autoencoder's reconstruction error, F.mse_loss of a 16 -> 4 -> 16 bottleneck against its
    input (a loss in the forward: it had no cost rule)."""

    def __init__(self):
        super().__init__()
        self.enc = nn.Linear(16, 4)
        self.dec = nn.Linear(4, 16)

    def forward(self, x):
        return F.mse_loss(self.dec(torch.relu(self.enc(x))), x)


MODELS: dict[str, type[nn.Module]] = {
    "gru_cell": GRUCellLoop,
    "recurrent_cells": RecurrentCells,
    "padded_convs": PaddedConvs,
    "ceil_pools": CeilPools,
    "shuffle_block": ShuffleBlock,
    "masked": Masked,
    "matmul_param": MatmulParam,
    "flatten_tokens": FlattenTokens,
    "gathers": Gathers,
    "pre_norm_encoder": PreNormEncoder,
    "positional_encoding": PositionalEncoding,
    "bias_free_bn": BiasFreeBN,
    "scalar_out": ScalarOut,
}


def _builder(cls: type[nn.Module]) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        torch.manual_seed(0)
        model = cls()
        with torch.no_grad():  # BatchNorm statistics of a trained model, not 0 and 1
            for m in model.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.running_mean.uniform_(-0.5, 0.5)
                    m.running_var.uniform_(0.5, 2.0)
        return model.eval()

    return build


for _name, _cls in MODELS.items():
    globals()[f"build_{_name}"] = _builder(_cls)


def _samples(shape: tuple[int, ...], samples: int, seed: int):
    """Standard normal inputs of ``shape``; the class is the argmax of the first 5 values."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(samples, *shape, generator=g)
    return x, x.flatten(1)[:, :5].argmax(1)


def load(samples: int = 96, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """16 features, 5 classes."""
    return _samples((16,), samples, seed)


def load_map8(samples: int = 96, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """8x8 maps of one channel, 5 classes."""
    return _samples((1, 8, 8), samples, seed)


def load_map7(samples: int = 96, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """7x7 maps of one channel (odd: the ceil_mode pools keep a partial window), 5 classes."""
    return _samples((1, 7, 7), samples, seed)


LOADERS: dict[str, str] = {
    "gru_cell": "load",
    "recurrent_cells": "load",
    "padded_convs": "load_map8",
    "ceil_pools": "load_map7",
    "shuffle_block": "load_map8",
    "masked": "load",
    "matmul_param": "load",
    "flatten_tokens": "load_map8",
    "gathers": "load",
    "pre_norm_encoder": "load",
    "positional_encoding": "load",
    "bias_free_bn": "load",
    "scalar_out": "load",
}
