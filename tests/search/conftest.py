"""Fixtures for search tests: a briefly trained mlp-digits and its validation split."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from quantsearch.data import DataSplits, load_dataset
from quantsearch.models import build_model


def quick_train(model: nn.Module, data: DataSplits, epochs: int = 40, seed: int = 0) -> nn.Module:
    """Full-batch Adam: enough for mlp-digits to reach ~90% validation accuracy in a second."""
    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(epochs):
        opt.zero_grad()
        nn.functional.cross_entropy(model(data.train.x), data.train.y).backward()
        opt.step()
    return model.eval()


@pytest.fixture(scope="session")
def digits() -> DataSplits:
    return load_dataset("digits", seed=0)


@pytest.fixture(scope="session")
def mlp(digits: DataSplits) -> nn.Module:
    torch.manual_seed(0)
    return quick_train(build_model("mlp-digits"), digits)


LAB_SPACE = {
    "by": "type",
    "choices": {
        "linear": {
            "data_in": [[16, 8], [8, 6], [8, 4], [4, 2]],
            "weight": [[16, 8], [8, 6], [8, 4], [4, 2]],
            "bias": "same_as_weight",
        }
    },
}


@pytest.fixture(scope="session")
def mlp_checkpoint(mlp: nn.Module, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from quantsearch.checkpoint import save_checkpoint

    path = tmp_path_factory.mktemp("ckpt") / "mlp-digits.pt"
    return save_checkpoint(path, mlp, model_name="mlp-digits", dataset="digits")
