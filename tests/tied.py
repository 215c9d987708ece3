"""A user model with tied and repeated weights, shared by the parameter-count and quantize
tests: an output layer tied to the embedding, and a Linear called twice."""

from __future__ import annotations

import torch
from torch import nn


class TiedHead(nn.Module):
    """An output layer tied to the embedding, a Linear called twice."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(10, 6)
        self.fc = nn.Linear(6, 6)
        self.head = nn.Linear(6, 10, bias=False)
        self.head.weight = self.emb.weight

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.head(self.fc(torch.relu(self.fc(self.emb(idx).mean(1)))))
