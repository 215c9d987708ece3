"""Small networks for scikit-learn's bundled 8x8 handwritten digits."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from quantsearch.models.registry import ModelSpec


class MLPDigits(nn.Module):
    """64 -> 64 -> 32 -> 10 with BatchNorm and ReLU."""

    def __init__(self) -> None:
        super().__init__()
        self.seq_blocks = nn.Sequential(
            nn.Linear(64, 64),
            nn.BatchNorm1d(64),
            nn.ReLU(),
            nn.Linear(64, 32),
            nn.BatchNorm1d(32),
            nn.ReLU(),
            nn.Linear(32, 10),
        )

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.seq_blocks(x)
        return out


class CNNDigits(nn.Module):
    """A small residual conv net on 1x8x8 images.

    Exercises conv, batch_norm2d, module and function ReLUs, max pooling, a residual ``add``,
    ``torch.flatten`` and a final linear layer.
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(16, 16, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(16)
        self.pool1 = nn.MaxPool2d(2)
        self.conv3 = nn.Conv2d(16, 32, 3, padding=1)
        self.bn3 = nn.BatchNorm2d(32)
        self.relu3 = nn.ReLU()
        self.pool2 = nn.MaxPool2d(2)
        self.fc = nn.Linear(32 * 2 * 2, 10)

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu1(self.bn1(self.conv1(x)))
        x = F.relu(x + self.bn2(self.conv2(x)))  # residual add, then a function-call ReLU
        x = self.pool1(x)
        x = self.pool2(self.relu3(self.bn3(self.conv3(x))))
        out: Tensor = self.fc(torch.flatten(x, 1))
        return out


SPECS: tuple[ModelSpec, ...] = (
    ModelSpec("mlp-digits", MLPDigits, (64,), 10, "digits", "MLP 64-64-32-10 with BN/ReLU"),
    ModelSpec("cnn-digits", CNNDigits, (1, 8, 8), 10, "digits", "residual conv net on 1x8x8"),
)
