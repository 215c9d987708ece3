"""Other users' models, a fourth sweep: what the FPGA / hls4ml community runs, written in
PyTorch from the reference architectures (random weights; small inputs where the architecture
allows): MLPerf Tiny's four benchmark models and hls4ml's tutorial models.

Read by path by the CLI (``model.name = "<this file>:build_ds_cnn"``) and imported by the
tests. Each ``build_<name>`` returns a seeded, untrained model in eval mode; ``LOADERS`` names
the data function of each (``data.name = "<this file>:load_kws"``), which returns ``(x, y)``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn


def _bn_relu_conv(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1) -> nn.Sequential:
    """Conv2d (no bias: the BatchNorm after it has one), BatchNorm2d, ReLU."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride, padding=k // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(),
    )


class DSCNN(nn.Module):
    """MLPerf Tiny keyword spotting, DS-CNN (small): mlcommons/tiny,
    benchmark/training/keyword_spotting/keras_model.py (``ds_cnn``), after Zhang et al. 2017,
    "Hello Edge". A 49 x 10 MFCC map; Conv2D 64 (10, 4) stride 2 with TF's 'same' padding
    (top 4, bottom 5, left 1, right 1), BatchNorm, ReLU; four depthwise 3x3 + pointwise 1x1
    blocks, each with BatchNorm and ReLU; dropout; average pool (25, 5); 12 logits."""

    def __init__(self, filters: int = 64):
        super().__init__()
        self.pad = nn.ZeroPad2d((1, 1, 4, 5))
        self.stem = nn.Sequential(
            nn.Conv2d(1, filters, (10, 4), stride=2), nn.BatchNorm2d(filters), nn.ReLU(),
            nn.Dropout(0.2),
        )  # fmt: skip
        blocks: list[nn.Module] = []
        for _ in range(4):
            blocks += [
                _bn_relu_conv(filters, filters, 3, groups=filters),
                _bn_relu_conv(filters, filters, 1),
            ]
        self.blocks = nn.Sequential(*blocks, nn.Dropout(0.4))
        self.pool = nn.AvgPool2d((25, 5))
        self.fc = nn.Linear(filters, 12)

    def forward(self, x):
        h = self.blocks(self.stem(self.pad(x)))
        return self.fc(torch.flatten(self.pool(h), 1))


class ResidualStack(nn.Module):
    """One stack of ResNet-8: two 3x3 convs with BatchNorm, the shortcut (a 1x1 conv when the
    stride or width changes), add, ReLU."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, padding=1)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Conv2d(cin, cout, 1, stride) if stride != 1 or cin != cout else None

    def forward(self, x):
        h = F.relu(self.bn1(self.conv1(x)))
        h = self.bn2(self.conv2(h))
        s = x if self.shortcut is None else self.shortcut(x)
        return F.relu(h + s)


class ResNet8(nn.Module):
    """MLPerf Tiny image classification, ResNet-8 for CIFAR-10: mlcommons/tiny,
    benchmark/training/image_classification/keras_model.py (``resnet_v1_eembc``). 32x32x3;
    Conv 16 3x3, BatchNorm, ReLU; stacks of 16 (stride 1), 32 and 64 filters (stride 2, 1x1
    shortcut conv); average pool over the 8x8 map; 10 logits."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU())
        self.stack1 = ResidualStack(16, 16, 1)
        self.stack2 = ResidualStack(16, 32, 2)
        self.stack3 = ResidualStack(32, 64, 2)
        self.pool = nn.AvgPool2d(8)
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        h = self.stack3(self.stack2(self.stack1(self.stem(x))))
        return self.fc(self.pool(h).flatten(1))


class AnomalyAutoencoder(nn.Module):
    """MLPerf Tiny anomaly detection, the fully connected autoencoder: mlcommons/tiny,
    benchmark/training/anomaly_detection/keras_model.py (DCASE 2020 task 2 baseline). 640
    inputs (5 frames x 128 mel bins); Dense 128 + BatchNorm + ReLU four times, an 8-wide
    bottleneck (Dense, BatchNorm, ReLU), four more, Dense 640: it reconstructs its input, trained
    with MSE (a regression output, no classes)."""

    def __init__(self):
        super().__init__()
        widths = [640, 128, 128, 128, 128, 8, 128, 128, 128, 128]
        layers: list[nn.Module] = []
        for a, b in itertools.pairwise(widths):
            layers += [nn.Linear(a, b), nn.BatchNorm1d(b), nn.ReLU()]
        self.net = nn.Sequential(*layers, nn.Linear(128, 640))

    def forward(self, x):
        return self.net(x)


class MobileNetV1(nn.Module):
    """MLPerf Tiny visual wake words, MobileNetV1 with width multiplier 0.25: mlcommons/tiny,
    benchmark/training/visual_wake_words/vww_model.py (Howard et al. 2017). A 3x3 stride-2
    stem, thirteen depthwise 3x3 + pointwise 1x1 blocks (BatchNorm and ReLU after each conv),
    global average pool, 2 logits (person or not). The reference input is 96x96; 32x32 here
    (five stride-2 steps end at 1x1, as 96 ends at 3x3)."""

    # (output channels at width 1.0, stride) of each depthwise-separable block
    BLOCKS = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)] + [(512, 1)] * 5
    BLOCKS += [(1024, 2), (1024, 1)]

    def __init__(self, alpha: float = 0.25):
        super().__init__()
        c = int(32 * alpha)
        layers = [_bn_relu_conv(3, c, 3, stride=2)]
        for width, stride in self.BLOCKS:
            out = int(width * alpha)
            layers += [_bn_relu_conv(c, c, 3, stride, groups=c), _bn_relu_conv(c, out, 1)]
            c = out
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c, 2)

    def forward(self, x):
        return self.fc(self.pool(self.features(x)).flatten(1))


class JetMLP(nn.Module):
    """hls4ml's jet-tagging MLP (hls4ml-tutorial part 1 and 4, Duarte et al. 2018): 16 jet
    features, Dense 64, 32, 32 each with BatchNorm and ReLU, 5 logits (the tutorial's softmax
    left to the loss, as PyTorch users write it; with it: ``softmax_mlp``)."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(16, 64), nn.BatchNorm1d(64), nn.ReLU(),
            nn.Linear(64, 32), nn.BatchNorm1d(32), nn.ReLU(),
            nn.Linear(32, 32), nn.BatchNorm1d(32), nn.ReLU(),
            nn.Linear(32, 5),
        )  # fmt: skip

    def forward(self, x):
        return self.net(x)


class SoftmaxMLP(JetMLP):
    """The jet-tagging MLP as the hls4ml tutorial builds it, nn.Softmax its last layer (hls4ml
    exports it as a lookup-table softmax): the model returns probabilities."""

    def __init__(self):
        super().__init__()
        self.softmax = nn.Softmax(dim=1)

    def forward(self, x):
        return self.softmax(self.net(x))


class HlsConv2d(nn.Module):
    """hls4ml-tutorial part 6's CNN (SVHN), smaller: Conv2D 3x3 'valid', BatchNorm, ReLU,
    MaxPool 2x2, twice (8 and 16 filters); Flatten; Dense 42, BatchNorm, ReLU; 10 logits. A
    16x16 RGB input."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(),
        )  # fmt: skip
        self.head = nn.Sequential(
            nn.Linear(16 * 2 * 2, 42), nn.BatchNorm1d(42), nn.ReLU(), nn.Linear(42, 10)
        )

    def forward(self, x):
        return self.head(self.features(x))


class HlsConv1d(nn.Module):
    """A Conv1D tagger as hls4ml's Conv1D examples build it: 3 channels of 16 steps;
    Conv1D 8 and 8 (kernel 3), each ReLU and MaxPool1D 2; Flatten; Dense 16, ReLU; 5 logits."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv1d(3, 8, 3), nn.ReLU(), nn.MaxPool1d(2),
            nn.Conv1d(8, 8, 3), nn.ReLU(), nn.MaxPool1d(2),
            nn.Flatten(), nn.Linear(8 * 2, 16), nn.ReLU(), nn.Linear(16, 5),
        )  # fmt: skip

    def forward(self, x):
        return self.net(x)


MODELS: dict[str, type[nn.Module]] = {
    "ds_cnn": DSCNN,
    "resnet8": ResNet8,
    "autoencoder": AnomalyAutoencoder,
    "mobilenet_v1": MobileNetV1,
    "jet_mlp": JetMLP,
    "softmax_mlp": SoftmaxMLP,
    "hls_conv2d": HlsConv2d,
    "hls_conv1d": HlsConv1d,
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


def _images(shape: tuple[int, ...], classes: int, samples: int, seed: int):
    """Standard normal inputs of ``shape``; the class is the argmax of the first channel's
    first ``classes`` values (a rule the models can learn; untrained here)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(samples, *shape, generator=g)
    return x, x.flatten(1)[:, :classes].argmax(1)


def load_kws(samples: int = 120, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """MFCC maps (1, 49, 10), 12 classes."""
    return _images((1, 49, 10), 12, samples, seed)


def load_cifar(samples: int = 120, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """CIFAR-10-shaped images (3, 32, 32), 10 classes."""
    return _images((3, 32, 32), 10, samples, seed)


def load_vww(samples: int = 120, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Visual-wake-words images at 32x32, 2 classes."""
    return _images((3, 32, 32), 2, samples, seed)


def load_jets(samples: int = 120, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """16 jet features, 5 classes."""
    return _images((16,), 5, samples, seed)


def load_svhn(samples: int = 120, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """SVHN-shaped images at 16x16, 10 classes."""
    return _images((3, 16, 16), 10, samples, seed)


def load_series(samples: int = 120, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """3 channels of 16 steps, 5 classes."""
    return _images((3, 16), 5, samples, seed)


def load_frames(samples: int = 120, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """640 log-mel values (5 frames x 128 bins); the target is the input itself."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(samples, 640, generator=g)
    return x, x.clone()


LOADERS: dict[str, str] = {
    "ds_cnn": "load_kws",
    "resnet8": "load_cifar",
    "autoencoder": "load_frames",
    "mobilenet_v1": "load_vww",
    "jet_mlp": "load_jets",
    "softmax_mlp": "load_jets",
    "hls_conv2d": "load_svhn",
    "hls_conv1d": "load_series",
}
