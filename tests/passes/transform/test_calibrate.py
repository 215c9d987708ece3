"""Calibration ranges against values computed by hand and by numpy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from quantsearch.errors import ConfigError
from quantsearch.formats import FixedPoint
from quantsearch.graph import trace
from quantsearch.passes.transform import calibrate, parse_quantize_config, resolve
from tests.passes.transform.conftest import fx_table


class TwoInputs(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 3)
        self.drop = nn.Dropout(0.5)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.drop(self.fc(x)) + y)


def test_minmax_ranges_of_inputs_and_outputs() -> None:
    torch.manual_seed(0)
    model = TwoInputs().eval()
    x, y = torch.randn(50, 3), torch.randn(50, 3) * 4
    gm = trace(model, x, y)
    stats = calibrate(gm, (x, y))  # a graph with two inputs takes a tuple
    assert stats.samples == 50
    h = model.fc(x).detach()
    s = h + y
    assert stats.range("fc", "data_in") == (x.min().item(), x.max().item())
    assert stats.range("fc", "data_out") == (h.min().item(), h.max().item())
    assert stats.range("drop", "data_out") == stats.range("fc", "data_out")  # eval: no dropout
    # add: both inputs together
    lo, hi = min(h.min().item(), y.min().item()), max(h.max().item(), y.max().item())
    assert stats.range("add", "data_in") == (lo, hi)
    assert stats.range("relu", "data_out") == (0.0, s.max().item())
    assert stats.range("x", "data_in") is None  # placeholders have no ranges


def test_percentile_is_the_nearest_rank_at_both_ends() -> None:
    torch.manual_seed(0)
    x = torch.randn(1000, 4)
    x[3, 2] = 1000.0  # one outlier
    gm = trace(nn.Sequential(nn.ReLU()).eval(), x[:2])
    mm = calibrate(gm, x)
    pc = calibrate(gm, x, method="percentile", percentile=99.0)
    flat = x.numpy().reshape(-1)
    hi = np.percentile(flat, 99.0, method="inverted_cdf")
    lo = -np.percentile(-flat, 99.0, method="inverted_cdf")
    assert mm.range("_0", "data_in") == (float(flat.min()), 1000.0)
    assert pc.range("_0", "data_in") == (float(lo), float(hi))
    assert pc.range("_0", "data_in")[1] < 3.0  # the outlier is ignored
    assert (pc.method, pc.percentile, pc.samples, mm.percentile) == ("percentile", 99.0, 1000, None)
    assert pc.to_dict()["ranges"]["_0"]["data_in"] == [float(lo), float(hi)]


def test_auto_frac_width_follows_the_chosen_statistic() -> None:
    torch.manual_seed(0)
    x = torch.randn(1000, 4)
    x[0, 0] = 50.0
    gm = trace(nn.Sequential(nn.Linear(4, 4)).eval(), x[:2])
    cfg = parse_quantize_config({"default": {"data_in": fx_table(8, "auto")}})
    for stats, absmax in (
        (calibrate(gm, x), 50.0),
        (calibrate(gm, x, method="percentile", percentile=99.9), None),
    ):
        lo, hi = stats.range("_0", "data_in")
        want = FixedPoint.frac_width_for(8, True, absmax or max(-lo, hi))
        assert resolve(gm, cfg, calibration=stats)["_0"].data_in == FixedPoint(8, want)
    assert FixedPoint.frac_width_for(8, True, 50.0) == 1


def test_the_graph_keeps_its_modes_and_no_gradients_are_recorded() -> None:
    model = TwoInputs().train()
    model.fc.eval()  # mixed modes are restored module by module
    gm = trace(nn.Sequential(model.fc, nn.ReLU()).train(), torch.randn(2, 3))
    gm.get_submodule("0").eval()
    modes = [(n, m.training) for n, m in gm.named_modules()]
    calibrate(gm, torch.randn(8, 3))
    assert [(n, m.training) for n, m in gm.named_modules()] == modes
    assert all(p.grad is None for p in gm.parameters())


@pytest.mark.parametrize(
    ("kwargs", "x", "match"),
    [
        ({"method": "mse"}, torch.ones(2, 3), r"calibration method: got 'mse', allowed: one of \['minmax', 'percentile'\]"),
        ({"method": "percentile", "percentile": 40.0}, torch.ones(2, 3), r"calibration percentile: got 40\.0, allowed: a number in \(50, 100\]"),
        ({}, torch.ones(0, 3), r"at least one sample"),
    ],
)  # fmt: skip
def test_errors(kwargs: dict, x: torch.Tensor, match: str) -> None:
    gm = trace(nn.Sequential(nn.ReLU()).eval(), torch.ones(2, 3))
    with pytest.raises(ConfigError, match=match):
        calibrate(gm, x, **kwargs)
