"""Other users' models, a seventh sweep: families the first six sweeps did not hold. An
nn.Sequential built from an OrderedDict of odd names (``fc-1``, ``act 1``, ``Out``); heads in
an nn.ModuleDict routed by a key chosen in ``__init__``; a forward returning ``(logits,
aux_loss)``; nn.Flatten / nn.Unflatten round trips; a bidirectional nn.GRU read at its last
step; nn.MultiheadAttention with ``need_weights=False`` and a key padding mask of the
tokens; a feature extractor frozen by ``requires_grad_(False)``; images given as uint8 and
scaled in forward; reshapes by ``x.shape[-1]`` arithmetic; F.pad with negative pads (a crop)
and an in-place add on a view of an activation; int8 token ids; a dataclass output;
bilinear and nearest upsampling into convs; patches folded into the batch; running
statistics of its own updated when training; weight and spectral norm on convs; forward
hooks registered in ``__init__``; and a model left wrapped in nn.DataParallel.

Read by path by the CLI (``model.name = "<this file>:build_odd_names"``) and imported by the
tests. Each ``build_<name>`` returns a seeded, untrained model in eval mode; ``LOADERS`` names
the data function of each (``data.name = "<this file>:load"``), which returns ``(x, y)``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


class OddNames(nn.Module):
    """nn.Sequential(OrderedDict(...)) of Linear and ReLU whose names fx must rewrite:
    ``fc-1``, ``act 1``, ``2nd``, ``relu.2`` is not allowed so ``relu_2``, ``Out``."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(
            OrderedDict(
                [
                    ("fc-1", nn.Linear(16, 12)),
                    ("act 1", nn.ReLU()),
                    ("2nd", nn.Linear(12, 8)),
                    ("relu_2", nn.ReLU()),
                    ("Out", nn.Linear(8, 5)),
                ]
            )
        )

    def forward(self, x):
        return self.net(x)


class Routed(nn.Module):
    """An nn.ModuleDict of heads, the one used picked by a string key set in ``__init__``;
    the unused head's parameters are the model's too."""

    def __init__(self, task: str = "fine"):
        super().__init__()
        self.task = task
        self.body = nn.Linear(16, 12)
        self.heads = nn.ModuleDict({"coarse": nn.Linear(12, 2), "fine": nn.Linear(12, 5)})

    def forward(self, x):
        return self.heads[self.task](F.relu(self.body(x)))


class AuxLoss(nn.Module):
    """A mixture-of-experts-looking forward returning ``(logits, aux_loss)``: the gate's
    load-balancing penalty (a scalar) beside the logits."""

    def __init__(self):
        super().__init__()
        self.gate = nn.Linear(16, 2)
        self.e0, self.e1 = nn.Linear(16, 8), nn.Linear(16, 8)
        self.head = nn.Linear(8, 5)

    def forward(self, x):
        g = torch.softmax(self.gate(x), -1)
        h = g[:, :1] * self.e0(x) + g[:, 1:] * self.e1(x)
        aux = (g.mean(0) ** 2).sum() * 2
        return self.head(F.relu(h)), aux


class Unflattens(nn.Module):
    """nn.Flatten / nn.Unflatten round trips: 16 features to a 1x4x4 map, a conv, flattened,
    a Linear, unflattened to 2x4 and flattened again from dim 1."""

    def __init__(self):
        super().__init__()
        self.to_map = nn.Unflatten(1, (1, 4, 4))
        self.conv = nn.Conv2d(1, 3, 3, padding=1)
        self.flat = nn.Flatten()
        self.fc = nn.Linear(48, 8)
        self.to_pairs = nn.Unflatten(-1, (2, 4))
        self.flat2 = nn.Flatten(1, -1)
        self.head = nn.Linear(8, 5)

    def forward(self, x):
        h = self.flat(F.relu(self.conv(self.to_map(x))))
        return self.head(self.flat2(torch.tanh(self.to_pairs(self.fc(h)))))


class BiGRU(nn.Module):
    """A bidirectional, batch-first nn.GRU over 4 steps of 4 features, its output at the last
    step classified."""

    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(4, 6, batch_first=True, bidirectional=True)
        self.fc = nn.Linear(12, 5)

    def forward(self, x):
        out, _ = self.gru(x.view(-1, 4, 4))
        return self.fc(out[:, -1])


class MaskedMHA(nn.Module):
    """Token ids embedded, nn.MultiheadAttention with need_weights=False and a key padding
    mask of the padding tokens (id 0), the tokens averaged."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(32, 8)
        self.attn = nn.MultiheadAttention(8, 2, batch_first=True)
        self.fc = nn.Linear(8, 5)

    def forward(self, idx):
        t = self.embed(idx)
        h, _ = self.attn(t, t, t, key_padding_mask=idx == 0, need_weights=False)
        return self.fc(h.mean(1))


class FrozenExtractor(nn.Module):
    """A pretrained-looking feature extractor frozen by ``requires_grad_(False)`` (not by
    torch.no_grad()), a trainable head."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Linear(16, 12), nn.ReLU(), nn.Linear(12, 8), nn.ReLU())
        self.features.requires_grad_(False)
        self.head = nn.Linear(8, 5)

    def forward(self, x):
        return self.head(self.features(x))


class Uint8Images(nn.Module):
    """8x8 one-channel images given as uint8, scaled to [0, 1) in forward, a conv and a head."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, stride=2, padding=1)
        self.head = nn.Linear(64, 5)

    def forward(self, x):
        h = x.float() / 255.0
        return self.head(F.relu(self.conv(h)).flatten(1))


class ShapeArith(nn.Module):
    """Reshapes by ``x.shape[-1]`` arithmetic: 16 features to (N, 16 // 4, 4) patches, a
    Linear per patch, back by ``h.shape[-1] * h.shape[-2]``."""

    def __init__(self):
        super().__init__()
        self.patch = nn.Linear(4, 3)
        self.head = nn.Linear(12, 5)

    def forward(self, x):
        d = x.shape[-1]
        h = torch.relu(self.patch(x.reshape(x.shape[0], d // 4, 4)))
        return self.head(h.reshape(-1, h.shape[-1] * h.shape[-2]))


class CropInPlace(nn.Module):
    """F.pad with negative pads (a one-step crop of each end of a Conv1d's output), then an
    in-place add on a view of the activation (``h[:, :2] += 1``)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(1, 4, 3, padding=1)
        self.head = nn.Linear(4 * 14, 5)

    def forward(self, x):
        h = F.pad(self.conv(x.unsqueeze(1)), (-1, -1))
        h[:, :2] += 1
        return self.head(F.relu(h).flatten(1))


class Int8Tokens(nn.Module):
    """Token ids given as int8, cast to long for an nn.Embedding, a Conv1d over the sequence
    (channels first), max over time, a head."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(32, 6)
        self.conv = nn.Conv1d(6, 8, 3, padding=1)
        self.head = nn.Linear(8, 5)

    def forward(self, idx):
        t = self.embed(idx.long()).transpose(1, 2)
        return self.head(F.relu(self.conv(t)).amax(-1))


@dataclass
class Output:
    logits: torch.Tensor
    features: torch.Tensor


class DataclassOut(nn.Module):
    """A forward returning a dataclass of logits and features (transformers' ModelOutput
    style)."""

    def __init__(self):
        super().__init__()
        self.body = nn.Linear(16, 8)
        self.head = nn.Linear(8, 5)

    def forward(self, x):
        h = F.relu(self.body(x))
        return Output(self.head(h), h)


class UpDecoder(nn.Module):
    """A 4x4 map upsampled bilinearly (align_corners=True) by 1.5, convolved, upsampled by
    nn.Upsample (nearest, size 8) and convolved again."""

    def __init__(self):
        super().__init__()
        self.up1 = nn.Upsample(scale_factor=1.5, mode="bilinear", align_corners=True)
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.up2 = nn.Upsample(size=8)
        self.conv2 = nn.Conv2d(4, 2, 3, stride=2)
        self.head = nn.Linear(2 * 3 * 3, 5)

    def forward(self, x):
        h = F.relu(self.conv1(self.up1(x.view(-1, 1, 4, 4))))
        return self.head(torch.tanh(self.conv2(self.up2(h))).flatten(1))


class NegPad(nn.Module):
    """F.pad with a negative pad on one side and a positive on the other (a shift), a
    cropping Conv1d output by negative pads on both, and a 2-D negative/replicate mix."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(1, 4, 3, padding=2)
        self.head = nn.Linear(4 * 16 + 16, 5)

    def forward(self, x):
        h = F.pad(self.conv(x.unsqueeze(1)), (-1, -1))  # (N, 4, 16)
        s = F.pad(x, (-2, 2))  # shift left by 2, zeros in
        return self.head(torch.cat([F.relu(h).flatten(1), s], 1))


class BatchFold(nn.Module):
    """Patches folded into the batch: (N, 16) to (4 N, 4), a Linear, back to (N, 12) by
    x.shape[0]."""

    def __init__(self):
        super().__init__()
        self.patch = nn.Linear(4, 3)
        self.head = nn.Linear(12, 5)

    def forward(self, x):
        n = x.shape[0]
        h = torch.relu(self.patch(x.reshape(n * 4, 4)))
        return self.head(h.reshape(n, -1))


class RunningNorm(nn.Module):
    """Input standardisation by running statistics of its own, updated in forward only when
    training (``if self.training``); eval uses the stored ones."""

    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.zeros(16))
        self.register_buffer("var", torch.ones(16))
        self.fc = nn.Linear(16, 8)
        self.head = nn.Linear(8, 5)

    def forward(self, x):
        if self.training:
            with torch.no_grad():
                self.mean.mul_(0.9).add_(0.1 * x.mean(0))
                self.var.mul_(0.9).add_(0.1 * x.var(0))
        h = (x - self.mean) / torch.sqrt(self.var + 1e-5)
        return self.head(F.relu(self.fc(h)))


class WeightNormConv(nn.Module):
    """weight_norm (parametrizations) on a Conv1d, over dim 0, and spectral_norm on a
    Conv1d."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.utils.parametrizations.weight_norm(nn.Conv1d(1, 4, 3, padding=1))
        self.c2 = nn.utils.parametrizations.spectral_norm(nn.Conv1d(4, 4, 3, stride=2))
        self.head = nn.Linear(4 * 7, 5)

    def forward(self, x):
        h = F.relu(self.c1(x.unsqueeze(1)))
        return self.head(F.relu(self.c2(h)).flatten(1))


def _clamp_half(module: nn.Module, args: tuple, out: torch.Tensor) -> torch.Tensor:
    return out.clamp(-0.5, 0.5)


def _double(module: nn.Module, args: tuple) -> tuple:
    return (args[0] * 2,)


class Hooked(nn.Module):
    """Hooks registered in ``__init__``: a forward hook clamping the first Linear's output to
    [-0.5, 0.5], a forward pre-hook doubling the second's input; an nn.Identity between."""

    def __init__(self):
        super().__init__()
        self.fc1, self.skip, self.fc2 = nn.Linear(16, 12), nn.Identity(), nn.Linear(12, 5)
        self.fc1.register_forward_hook(_clamp_half)
        self.fc2.register_forward_pre_hook(_double)

    def forward(self, x):
        return self.fc2(self.skip(F.relu(self.fc1(x))))


MODELS: dict[str, type[nn.Module]] = {
    "odd_names": OddNames,
    "routed": Routed,
    "aux_loss": AuxLoss,
    "unflattens": Unflattens,
    "bi_gru": BiGRU,
    "masked_mha": MaskedMHA,
    "frozen_extractor": FrozenExtractor,
    "uint8_images": Uint8Images,
    "shape_arith": ShapeArith,
    "crop_in_place": CropInPlace,
    "int8_tokens": Int8Tokens,
    "dataclass_out": DataclassOut,
    "up_decoder": UpDecoder,
    "neg_pad": NegPad,
    "batch_fold": BatchFold,
    "running_norm": RunningNorm,
    "weight_norm_conv": WeightNormConv,
    "hooked": Hooked,
}


def _builder(cls: type[nn.Module]) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        torch.manual_seed(0)
        return cls().eval()

    return build


for _name, _cls in MODELS.items():
    globals()[f"build_{_name}"] = _builder(_cls)


def build_data_parallel() -> nn.Module:
    """frozen_extractor's MLP as a multi-GPU training script leaves it: wrapped in
    nn.DataParallel (on a machine without GPUs it calls the module), its state_dict's keys
    ``module.``-prefixed."""
    torch.manual_seed(0)
    return nn.DataParallel(FrozenExtractor()).eval()


def _normal(shape: tuple[int, ...], samples: int, seed: int) -> torch.Tensor:
    return torch.randn(samples, *shape, generator=torch.Generator().manual_seed(seed))


def load(samples: int = 96, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """16 features, 5 classes (the argmax of the first 5)."""
    x = _normal((16,), samples, seed)
    return x, x[:, :5].argmax(1)


def load_tokens(samples: int = 96, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """6 token ids in [0, 32) a sample, 0 the padding (never the first), 5 classes."""
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, 32, (samples, 6), generator=g)
    idx[:, 0] = idx[:, 0].clamp(min=1)
    return idx, idx[:, 0] % 5


def load_uint8(samples: int = 96, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """8x8 one-channel uint8 images, 5 classes (the brightest of the first 5 pixels)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (samples, 1, 8, 8), generator=g, dtype=torch.uint8)
    return x, x.flatten(1)[:, :5].argmax(1)


def load_int8_tokens(samples: int = 96, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``load_tokens``'s ids as int8."""
    idx, y = load_tokens(samples, seed)
    return idx.to(torch.int8), y


LOADERS: dict[str, str] = {name: "load" for name in MODELS}
LOADERS["masked_mha"] = "load_tokens"
LOADERS["uint8_images"] = "load_uint8"
LOADERS["int8_tokens"] = "load_int8_tokens"
LOADERS["data_parallel"] = "load"
