"""The search's float32 evaluation against the arithmetic hls4ml's C simulation is held to.

Referee: numpy in float64 on the quantized tensors (inputs, weights and bias on their fixed
grids), where a Linear's sums of 64 products of inputs of about 20 significant bits and weights
of about 9 (under 40 bits) are exact; no g++ build is needed (``search_agreement`` does not run
the C simulation).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from quantsearch.export import export_hls4ml
from quantsearch.formats import FixedPoint
from quantsearch.graph import trace
from quantsearch.passes.transform import ResolvedConfig, quantize
from tests.export.conftest import fixed


def _linear(width: int, frac: int) -> tuple[nn.Module, torch.Tensor, ResolvedConfig]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 10)).eval()
    x = torch.randn(200, 64) * 100  # about 20 significant bits on a grid of 2**-12
    f = fixed(width, frac)
    rc = ResolvedConfig.from_dict({"_0": {"data_in": f, "weight": f, "bias": f}})
    return model, x, rc


@pytest.mark.parametrize(("width", "frac", "exact"), [(8, 4, True), (24, 12, False)])
def test_float32_sums_are_measured_against_exact_ones(
    width: int, frac: int, exact: bool, tmp_path: Path
) -> None:
    model, x, rc = _linear(width, frac)
    gm = trace(model, x[:2])
    qgm = quantize(gm, rc)
    a = export_hls4ml(qgm, tmp_path / "prj").search_agreement(qgm, x, classes=True)
    # the referee: the same quantized tensors, summed in float64 by numpy
    fmt = FixedPoint(width, frac)
    lin = model[0]
    xq, wq, bq = (fmt.quantize(t.detach()).double().numpy() for t in (x, lin.weight, lin.bias))
    exact_out = xq @ wq.T + bq
    with torch.no_grad():
        searched = qgm(x).double().numpy()
    want = float(np.abs(searched - exact_out).max()) / a.lsb
    assert a.samples == 200 and a.max_lsb == want
    assert a.bit_exact is exact and (want == 0.0) is exact
    assert a.same_class == float(np.mean(searched.argmax(1) == exact_out.argmax(1)))


def test_export_prints_both_agreements(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """export's lines: the C simulation's verdict, then the search's against the same."""
    from quantsearch.cli.export import print_export

    model, x, rc = _linear(24, 12)
    qgm = quantize(trace(model, x[:2]), rc)
    searched = export_hls4ml(qgm, tmp_path / "prj").search_agreement(qgm, x)
    exact = searched.to_dict() | {"referee": "hls4ml C simulation", "max_lsb": 0.0}
    exact |= {"same_class": 1.0, "bit_exact": True}
    record = {"model": "m", "to": "hls4ml", "out": "prj", "seconds": 1.0, "inexact": []}
    print_export(record | {"agreement": exact, "search_agreement": searched.to_dict()})
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].startswith("  verified by hls4ml C simulation on 200 validation samples")
    assert lines[2].startswith("  the search's float32 evaluation, the same: ")
    assert lines[2].endswith("(NOT bit-exact: float32 rounding)")
