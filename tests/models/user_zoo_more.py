"""More user models, a second sweep: the shapes tests/models/user_zoo.py and
tests/test_user_models.py do not hold, as users of MASE, hls4ml, FINN and plain PyTorch write
them.

Read by path by the CLI (``model.name = "<this file>:build_prelu_acts"``) and imported by the
tests. Each ``build_<name>`` returns a seeded, untrained model in eval mode that takes 16
features per sample (``load`` of user_zoo) and returns 5 values per sample.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrizations, prune


class NestedDict(nn.Module):
    """An encoder and a head, each an nn.Sequential inside an nn.ModuleDict, a Sequential
    nested in a Sequential; a bias-free Linear before its BatchNorm1d (hls4ml's habit)."""

    def __init__(self):
        super().__init__()
        block = nn.Sequential(nn.Linear(16, 12, bias=False), nn.BatchNorm1d(12), nn.ReLU())
        self.parts = nn.ModuleDict(
            {
                "enc": nn.Sequential(block, nn.Linear(12, 8)),
                "head": nn.Sequential(nn.ReLU(), nn.Linear(8, 5)),
            }
        )

    def forward(self, x):
        return self.parts["head"](self.parts["enc"](x))


class KeywordInput(nn.Module):
    """A forward with a keyword argument that has a default (a temperature)."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(16, 5)

    def forward(self, x, temperature: float = 2.0):
        return self.fc(x) / temperature


class SizeReshape(nn.Module):
    """Reshapes by x.size(0) and x.shape[0], torch.flatten(x, 1) and x.view(x.size(0), -1)."""

    def __init__(self):
        super().__init__()
        self.c = nn.Conv2d(1, 3, 2)
        self.fc = nn.Linear(27 + 16, 5)

    def forward(self, x):
        n = x.size(0)
        img = x.reshape(n, 1, 4, 4)
        a = torch.flatten(self.c(img), 1)
        b = img.view(img.size(0), -1)
        return self.fc(torch.cat([a, b.reshape(x.shape[0], 16)], dim=1))


class DepthwiseConv1d(nn.Module):
    """A depthwise-separable Conv1d block (groups = channels, then 1x1), AvgPool1d and
    AdaptiveMaxPool1d, as keyword-spotting models are written."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv1d(1, 4, 3, padding=1)
        self.dw = nn.Conv1d(4, 4, 3, padding=1, groups=4)
        self.pw = nn.Conv1d(4, 8, 1)
        self.bn = nn.BatchNorm1d(8)
        self.pool = nn.AvgPool1d(2)
        self.gmp = nn.AdaptiveMaxPool1d(3)
        self.fc = nn.Linear(8 * 3, 5)

    def forward(self, x):
        x = F.relu(self.stem(x.unsqueeze(1)))
        x = self.pool(F.relu(self.bn(self.pw(self.dw(x)))))
        return self.fc(self.gmp(x).flatten(1))


class ConvTranspose(nn.Module):
    """An autoencoder-style up-sampling: Conv2d down, ConvTranspose2d and ConvTranspose1d up,
    AdaptiveMaxPool2d."""

    def __init__(self):
        super().__init__()
        self.down = nn.Conv2d(1, 4, 2, stride=2)
        self.up = nn.ConvTranspose2d(4, 2, 2, stride=2)
        self.up1 = nn.ConvTranspose1d(1, 2, 3, stride=2, padding=1, output_padding=1)
        self.gmp = nn.AdaptiveMaxPool2d((2, 2))
        self.fc = nn.Linear(8 + 64, 5)

    def forward(self, x):
        a = self.gmp(torch.relu(self.up(torch.relu(self.down(x.view(-1, 1, 4, 4))))))
        b = self.up1(x.unsqueeze(1))
        return self.fc(torch.cat([a.flatten(1), b.flatten(1)], 1))


class JetTagger(nn.Module):
    """hls4ml's jet tagger: Linear without bias, BatchNorm1d, ReLU, three times; a Softmax as
    the last layer (the loss then sees probabilities)."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(16, 16, bias=False), nn.BatchNorm1d(16), nn.ReLU(),
            nn.Linear(16, 8, bias=False), nn.BatchNorm1d(8), nn.ReLU(),
            nn.Linear(8, 5, bias=False), nn.Softmax(dim=1),
        )  # fmt: skip

    def forward(self, x):
        return self.net(x)


class LayerNormChannels(nn.Module):
    """LayerNorm over the two last dims (4, 4) and F.layer_norm over the channel dim, reached
    by moving it last and back."""

    def __init__(self):
        super().__init__()
        self.ln2 = nn.LayerNorm((4, 4))
        self.c = nn.Conv1d(4, 6, 1)
        self.fc = nn.Linear(24, 5)

    def forward(self, x):
        h = self.ln2(x.view(-1, 4, 4))
        h = self.c(h)
        h = F.layer_norm(h.transpose(1, 2), (6,)).transpose(1, 2)
        return self.fc(h.flatten(1))


class PReLUActs(nn.Module):
    """Hardswish, Mish, ELU, PReLU (a parameter), ReLU6, Softplus and Hardsigmoid modules, and
    their functions."""

    def __init__(self):
        super().__init__()
        self.a = nn.Linear(16, 16)
        self.acts = nn.Sequential(nn.Hardswish(), nn.Mish(), nn.ELU(), nn.PReLU(16), nn.ReLU6())
        self.b = nn.Linear(16, 16)
        self.prelu = nn.PReLU()
        self.out = nn.Linear(16, 5)

    def forward(self, x):
        h = self.acts(self.a(x))
        h = self.prelu(nn.functional.softplus(self.b(h)) - 1.0)
        h = F.hardswish(h) + F.mish(h) + F.elu(h) + F.hardsigmoid(h)
        return self.out(h)


class LogSoftmaxNoBias(nn.Module):
    """A classifier with bias=False everywhere that returns log_softmax (trained with NLLLoss)."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(16, 12, bias=False)
        self.fc2 = nn.Linear(12, 5, bias=False)

    def forward(self, x):
        return F.log_softmax(self.fc2(torch.relu(self.fc1(x))), dim=1)


class NonPersistent(nn.Module):
    """A non-persistent buffer (not in the state dict): a fixed mixing matrix."""

    def __init__(self):
        super().__init__()
        self.register_buffer("mix", torch.eye(16).flip(0), persistent=False)
        self.fc = nn.Linear(16, 5)

    def forward(self, x):
        return self.fc(x @ self.mix)


class RawParams(nn.Module):
    """Parameters used directly: x @ self.W + self.b, F.conv2d with its own kernel and bias."""

    def __init__(self):
        super().__init__()
        self.W = nn.Parameter(torch.randn(16, 16) * 0.3)
        self.b = nn.Parameter(torch.zeros(16))
        self.k = nn.Parameter(torch.randn(2, 1, 3, 3) * 0.3)
        self.kb = nn.Parameter(torch.zeros(2))
        self.fc = nn.Linear(16 + 8, 5)

    def forward(self, x):
        h = torch.relu(x @ self.W + self.b)
        c = F.conv2d(x.view(-1, 1, 4, 4), self.k, self.kb, padding=0)
        return self.fc(torch.cat([h, c.flatten(1)], 1))


class EinsumBmm(nn.Module):
    """torch.einsum (a linear layer and a token mix), torch.bmm, split and masked_fill."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(8, 4) * 0.3)
        self.fc = nn.Linear(32, 5)

    def forward(self, x):
        t = x.view(x.size(0), 4, 4)
        h = torch.einsum("btd,ed->bte", t, self.w)  # (N, 4, 8)
        q, k = h.split(4, dim=-1)
        s = torch.bmm(q, k.transpose(1, 2))  # (N, 4, 4)
        s = s.masked_fill(s < 0, 0.0)
        return self.fc(torch.einsum("bts,bse->bte", s, h).flatten(1))


class MHA(nn.Module):
    """nn.MultiheadAttention over 4 tokens of 4 features (query, key and value the same), then
    nn.Upsample (nearest) of the attended sequence and a bilinear F.interpolate."""

    def __init__(self):
        super().__init__()
        self.attn = nn.MultiheadAttention(4, 2, batch_first=True)
        self.up = nn.Upsample(scale_factor=2)
        self.fc = nn.Linear(32 + 64, 5)

    def forward(self, x):
        t = x.view(x.shape[0], 4, 4)
        h, _ = self.attn(t, t, t)  # the averaged weights computed, unused
        a = self.up(h.transpose(1, 2))  # (N, 4, 8)
        b = F.interpolate(t.unsqueeze(1), scale_factor=2, mode="bilinear")  # (N, 1, 8, 8)
        return self.fc(torch.cat([a.flatten(1), b.flatten(1)], 1))


class Encoder(nn.Module):
    """A tiny transformer: a token embedding, nn.TransformerEncoder of two layers (GELU, a
    final LayerNorm), mean over the tokens."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(4, 8)
        layer = nn.TransformerEncoderLayer(8, 2, 16, activation="gelu", batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, nn.LayerNorm(8), enable_nested_tensor=False)
        self.head = nn.Linear(8, 5)

    def forward(self, x):
        return self.head(self.encoder(self.embed(x.view(-1, 4, 4))).mean(dim=1))


class Half(nn.Module):
    """A model meant for float16 (built and searched with .half())."""

    def __init__(self):
        super().__init__()
        self.a = nn.Linear(16, 8)
        self.b = nn.Linear(8, 5)

    def forward(self, x):
        return self.b(torch.relu(self.a(x)))


class ItemCall(nn.Module):
    """Reads a tensor's value with .item(): torch.fx cannot trace it."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(16, 5)

    def forward(self, x):
        scale = x.abs().max().item()
        return self.fc(x / scale)


class Pruned(nn.Module):
    """A pruned MLP (torch.nn.utils.prune: weight = weight_orig * weight_mask, set by a forward
    pre-hook), as hls4ml and FINN users prune before they quantize."""

    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(16, 12), nn.Linear(12, 5)
        prune.l1_unstructured(self.fc1, "weight", amount=0.5)
        prune.random_unstructured(self.fc2, "bias", amount=0.4)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))


class WeightNorm(nn.Module):
    """Weight norm and spectral norm (torch.nn.utils.parametrizations: weight computed from
    other parameters on every access)."""

    def __init__(self):
        super().__init__()
        self.fc1 = parametrizations.weight_norm(nn.Linear(16, 12))
        self.fc2 = parametrizations.spectral_norm(nn.Linear(12, 5))

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))


class PerSample(nn.Module):
    """Loops over the samples of the batch (for row in x): torch.fx cannot iterate a traced
    tensor."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(16, 5)

    def forward(self, x):
        return torch.stack([self.fc(row) for row in x])


class ModuleInForward(nn.Module):
    """Builds a module inside forward (nn.Hardsigmoid()(x)): torch.fx refuses a module that is
    not a submodule."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(16, 5)

    def forward(self, x):
        return self.fc(nn.Hardsigmoid()(x))


MODELS: dict[str, type[nn.Module]] = {
    "nested_dict": NestedDict,
    "keyword_input": KeywordInput,
    "size_reshape": SizeReshape,
    "depthwise_conv1d": DepthwiseConv1d,
    "conv_transpose": ConvTranspose,
    "jet_tagger": JetTagger,
    "layer_norm_channels": LayerNormChannels,
    "prelu_acts": PReLUActs,
    "log_softmax_no_bias": LogSoftmaxNoBias,
    "non_persistent": NonPersistent,
    "raw_params": RawParams,
    "einsum_bmm": EinsumBmm,
    "mha": MHA,
    "encoder": Encoder,
    "half": Half,
    "item_call": ItemCall,
    "pruned": Pruned,
    "weight_norm": WeightNorm,
    "per_sample": PerSample,
    "module_in_forward": ModuleInForward,
}


def _builder(cls: type[nn.Module]) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        torch.manual_seed(0)
        model = cls().eval()
        return model.half() if cls is Half else model

    return build


for _name, _cls in MODELS.items():
    globals()[f"build_{_name}"] = _builder(_cls)


def load_half(samples: int = 96, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """user_zoo's ``load`` in float16, for ``half``."""
    from tests.models.user_zoo import load

    x, y = load(samples, seed)
    return x.half(), y
