"""Shared test fixtures."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.pg_fixtures import pg_url  # noqa: F401  (session fixture: a fresh PostgreSQL database)

if TYPE_CHECKING:
    from torch import nn

    from quantsearch.data import DataSplits


@pytest.fixture(scope="session")
def digits() -> DataSplits:
    """scikit-learn's digits, flat (64 features), seed 0: loaded once per session."""
    from quantsearch.data import load_dataset

    return load_dataset("digits")


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[..., Path]:
    """``write_config(toml_text, name="config.toml")`` writes a config into ``tmp_path``."""

    def write(text: str, name: str = "config.toml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return write


def quick_train(model: nn.Module, data: DataSplits, epochs: int = 40, seed: int = 0) -> nn.Module:
    """Full-batch Adam: enough for mlp-digits to reach ~90% validation accuracy in a second."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(epochs):
        opt.zero_grad()
        nn.functional.cross_entropy(model(data.train.x), data.train.y).backward()
        opt.step()
    return model.eval()


@pytest.fixture(scope="session")
def mlp(digits: DataSplits) -> nn.Module:
    """mlp-digits, briefly trained (seeded): a model whose accuracy quantization can move."""
    import torch

    from quantsearch.models import build_model

    torch.manual_seed(0)
    return quick_train(build_model("mlp-digits"), digits)


@pytest.fixture(scope="session")
def mlp_checkpoint(mlp: nn.Module, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``mlp`` saved as a quantsearch checkpoint."""
    from quantsearch.checkpoint import save_checkpoint

    path = tmp_path_factory.mktemp("ckpt") / "mlp-digits.pt"
    return save_checkpoint(path, mlp, model_name="mlp-digits", dataset="digits")
