"""Fixtures for the quantize pass: small traced models and a briefly trained mlp-digits."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import fx, nn

from quantsearch.data import DataSplits
from quantsearch.graph import trace
from quantsearch.models import build_model


def fixed(x: torch.Tensor, width: int, frac: int, signed: bool = True) -> torch.Tensor:
    """The fixed-point reference, written out: clamp(round(x * 2^f), lo, hi) / 2^f."""
    lo, hi = (-(2 ** (width - 1)), 2 ** (width - 1) - 1) if signed else (0, 2**width - 1)
    return torch.clamp(torch.round(x * 2**frac), lo, hi) / 2**frac


def fx_table(width: int, frac: int | str, **extra: object) -> dict[str, object]:
    return {"format": "fixed", "width": width, "frac_width": frac, **extra}


@pytest.fixture(scope="session")
def trained_mlp(digits: DataSplits) -> nn.Module:
    """Full-batch Adam for 60 steps: about 95% validation accuracy in well under a second."""
    torch.manual_seed(0)
    model = build_model("mlp-digits")
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(60):
        opt.zero_grad()
        nn.functional.cross_entropy(model(digits.train.x), digits.train.y).backward()
        opt.step()
    model.zero_grad(set_to_none=True)
    return model.eval()


@pytest.fixture
def mlp_gm(trained_mlp: nn.Module, digits: DataSplits) -> fx.GraphModule:
    """A traced copy: a traced graph shares its modules with the model, and tests switch modes."""
    return trace(copy.deepcopy(trained_mlp), digits.val.x[:8])
