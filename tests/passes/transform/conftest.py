"""Fixtures for the quantize pass: small traced models and a briefly trained mlp-digits."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import fx, nn

from quantsearch.data import DataSplits
from quantsearch.graph import trace
from quantsearch.models import build_model
from quantsearch.passes.transform import ResolvedConfig


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


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.seq_blocks = nn.Sequential(
            nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 3, bias=False)
        )
        self.flat = nn.Flatten()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.flat(self.seq_blocks(x))


@pytest.fixture
def gm() -> fx.GraphModule:
    torch.manual_seed(0)
    return trace(Net().eval(), torch.randn(5, 4))


def formats(rc: ResolvedConfig) -> dict[str, dict[str, str]]:
    return {n: {r: str(f) for r, f in lq.items()} for n, lq in rc.items()}
