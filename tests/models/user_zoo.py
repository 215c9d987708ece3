"""User models in the shapes the MASE and hls4ml communities write, as a user's model file.

The CLI reads this file by path (``model.name = "<this file>:build_acts"``); the tests import it
too. Each ``build_<name>`` returns a seeded, untrained model that takes one tensor per sample
(16 features, or 6 token indices for ``embed``) and returns 5 logits (``tuple_out`` and
``dict_out``: 5 logits and 2 more values; ``regression``: 2 float estimates). The data
functions return ``(x, y)`` for ``data.name = "<this file>:load"``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn


class Acts(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(16, 32)
        self.ln = nn.LayerNorm(32)
        self.fc2 = nn.Linear(32, 32)
        self.fc3 = nn.Linear(32, 16)
        self.acts = nn.ModuleList(
            [nn.GELU(), nn.SiLU(), nn.Tanh(), nn.Sigmoid(), nn.Hardtanh(), nn.LeakyReLU(0.1)]
        )
        self.out = nn.Linear(16, 5)

    def forward(self, x):
        h = self.acts[0](self.ln(self.fc1(x)))
        h = self.acts[1](self.fc2(h))
        h = self.fc3(h)
        for a in self.acts[2:]:
            h = a(h)
        return self.out(
            F.silu(h) + F.leaky_relu(h, 0.2) + F.hardtanh(h) + F.gelu(h, approximate="tanh")
        )


class EmbedCls(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(32, 8)
        self.fc = nn.Linear(8, 16)
        self.out = nn.Linear(16, 5)

    def forward(self, idx):
        e = self.emb(idx).mean(dim=1)
        return self.out(torch.relu(self.fc(e)))


class JSCConv1d(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv1d(1, 4, 3, padding=1)
        self.bn1 = nn.BatchNorm1d(4)
        self.c2 = nn.Conv1d(4, 8, 3, stride=2)
        self.bn2 = nn.BatchNorm1d(8)
        self.fc = nn.Linear(8 * 7, 5)

    def forward(self, x):
        x = x.unsqueeze(1)
        x = F.relu(self.bn1(self.c1(x)))
        x = F.relu(self.bn2(self.c2(x)))
        return self.fc(torch.flatten(x, 1))


class CNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 4, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(4)
        self.mp = nn.MaxPool2d(2)
        self.c2 = nn.Conv2d(4, 8, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(8)
        self.ap = nn.AvgPool2d(2)
        self.c3 = nn.Conv2d(8, 8, 1)
        self.gap = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        x = x.view(-1, 1, 4, 4)
        x = self.mp(F.relu(self.bn1(self.c1(x))))
        x = self.ap(F.relu(self.bn2(self.c2(x))))
        x = self.gap(self.c3(x))
        return self.fc(x.view(x.size(0), -1))


class ResCat(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(16, 16)
        self.b = nn.Linear(16, 16)
        self.c = nn.Linear(32, 5)
        self.drop = nn.Dropout(0.3)

    def forward(self, x):
        h = torch.relu(self.a(x)) + x
        g = self.drop(torch.relu(self.b(h)))
        g = g + h
        return self.c(torch.cat((h, g), dim=1))


class Views(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.out = nn.Linear(16, 5)

    def forward(self, x):
        x = x.reshape(-1, 4, 4).permute(0, 2, 1).contiguous()
        x = self.fc(x)
        x = x.transpose(1, 2).flatten(start_dim=1)
        return self.out(x.view(x.shape[0], 16))


class Loops(nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = nn.ModuleList([nn.Linear(16, 16) for _ in range(3)])
        self.heads = nn.ModuleDict({"a": nn.Linear(16, 5), "b": nn.Linear(16, 5)})

    def forward(self, x):
        for blk in self.blocks:
            x = torch.relu(blk(x))
        return sum(h(x) for h in self.heads.values())


class Shared(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(16, 16)
        self.out = nn.Linear(16, 5)

    def forward(self, x):
        x = torch.relu(self.fc(x))
        x = torch.relu(self.fc(x))
        return self.out(x)


class Buffers(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.linspace(-0.5, 0.5, 16))
        self.register_buffer("std", torch.full((16,), 2.0))
        self.fc = nn.Linear(16, 5)

    def forward(self, x):
        return self.fc((x - self.mean) / self.std)


class InPlace(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(16, 16)
        self.b = nn.Linear(16, 16)
        self.out = nn.Linear(16, 5)

    def forward(self, x):
        h = self.a(x)
        h.relu_()
        y = self.b(h)
        y += x
        y.mul_(0.5)
        torch.relu_(y)
        return self.out(y)


class Attn(nn.Module):
    def __init__(self, t=4, d=4):
        super().__init__()
        self.t, self.d = t, d
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.ln = nn.LayerNorm(d)
        self.out = nn.Linear(t * d, 5)

    def forward(self, x):
        x = x.view(-1, self.t, self.d)
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        s = torch.matmul(q, k.transpose(-2, -1)) * (1.0 / math.sqrt(self.d))
        a = F.softmax(s, dim=-1)
        h = self.ln(x + self.proj(torch.matmul(a, v)))
        return self.out(h.flatten(1))


class TupleOut(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(16, 5)
        self.b = nn.Linear(16, 2)

    def forward(self, x):
        return self.a(x), self.b(x)


class DictOut(TupleOut):
    def forward(self, x):
        return {"logits": self.a(x), "aux": self.b(x)}


class Reg(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 2))

    def forward(self, x):
        return self.net(x)


class DataFlow(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(16, 5)

    def forward(self, x):
        if x.sum() > 0:
            return self.fc(x)
        return self.fc(-x)


class HlsMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.seq = nn.Sequential(nn.Linear(16, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 5))

    def forward(self, x):
        return self.seq(x)


class MutatesInput(nn.Module):
    """Changes its input in place before reading it (x.mul_, x +=)."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(16, 5)

    def forward(self, x):
        x.mul_(2.0)
        x += 1.0
        return self.fc(torch.relu(x))


class ReluFirst(nn.Module):
    """hls4ml's and MASE's JSC shape with in-place ReLUs, the first one on the input itself."""

    def __init__(self):
        super().__init__()
        self.seq = nn.Sequential(
            nn.ReLU(inplace=True), nn.Linear(16, 8), nn.BatchNorm1d(8), nn.ReLU(inplace=True),
            nn.Linear(8, 5),
        )  # fmt: skip

    def forward(self, x):
        return self.seq(x)


class DropoutMLP(nn.Module):
    """An hls4ml user's MLP: a flatten of flat input, Dropout between the layers."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(
            nn.Flatten(), nn.Linear(16, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.25),
            nn.Linear(16, 5), nn.Identity(),
        )  # fmt: skip

    def forward(self, x):
        return self.net(x)


class FunctionReLUs(nn.Module):
    """JSC-style layers with the ReLUs written as functions: F.relu, torch.relu, x.relu()."""

    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(16, 16), nn.Linear(16, 8)
        self.bn = nn.BatchNorm1d(8)
        self.fc3 = nn.Linear(8, 5)

    def forward(self, x):
        x = F.relu(self.fc1(x))
        x = torch.relu(self.bn(self.fc2(x)))
        return self.fc3(x).relu()


class CountsCalls(nn.Module):
    """Changes a buffer on every call (self.calls += 1): refused by trace."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(16, 5)
        self.register_buffer("calls", torch.zeros(()))

    def forward(self, x):
        self.calls += 1
        return self.fc(x) + self.calls


MODELS: dict[str, type[nn.Module]] = {
    "acts": Acts,
    "embed": EmbedCls,
    "jsc_conv1d": JSCConv1d,
    "cnn": CNN,
    "res_cat": ResCat,
    "views": Views,
    "loops": Loops,
    "shared": Shared,
    "buffers": Buffers,
    "in_place": InPlace,
    "attention": Attn,
    "tuple_out": TupleOut,
    "dict_out": DictOut,
    "regression": Reg,
    "data_flow": DataFlow,
    "hls_mlp": HlsMLP,
    "mutates_input": MutatesInput,
    "relu_first": ReluFirst,
    "dropout_mlp": DropoutMLP,
    "function_relus": FunctionReLUs,
    "counts_calls": CountsCalls,
}


def _builder(cls: type[nn.Module]) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        torch.manual_seed(0)
        return cls()

    return build


for _name, _cls in MODELS.items():
    globals()[f"build_{_name}"] = _builder(_cls)


def load(samples: int = 96, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """16 standard normal features; the class is the largest of the first 5."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(samples, 16, generator=g)
    return x, x[:, :5].argmax(1)


def load_tokens(samples: int = 96, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """6 token indices in [0, 32) per sample; the class is the first one's remainder by 5."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 32, (samples, 6), generator=g)
    return x, x[:, 0] % 5


def load_regression(samples: int = 96, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """16 features in, 2 float targets out."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(samples, 16, generator=g)
    return x, torch.stack([x[:, 0].sin(), x[:, 1] * x[:, 2]], 1)


Batches = Iterable[tuple[torch.Tensor, torch.Tensor]]


def evaluate_regression(model: nn.Module, batches: Batches) -> dict[str, float]:
    err = torch.cat([(model(x) - y).abs() for x, y in batches])
    return {"max_abs_error": float(err.max())}


def evaluate_first(model: nn.Module, batches: Batches) -> dict[str, float]:
    """Accuracy of the first output of a tuple (``tuple_out``) or ``logits`` of a dict."""
    hits = []
    for x, y in batches:
        out = model(x)
        logits = out["logits"] if isinstance(out, dict) else out[0]
        hits.append((logits.argmax(1) == y).float())
    return {"hits": float(torch.cat(hits).mean())}
