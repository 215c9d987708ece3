"""GraphView: the one place where the names in a config meet a traced graph."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from quantsearch.errors import ConfigError
from quantsearch.graph import trace
from quantsearch.passes.transform.graph_view import GraphView


class Twice(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.blk = nn.Sequential(nn.Linear(4, 4), nn.Flatten())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blk(self.blk(x) + 1)


def test_names_module_paths_kinds_and_candidates() -> None:
    view = GraphView(trace(Twice(), torch.zeros(2, 4)))
    assert view.nodes_named("blk.0") == ["blk_0", "blk_2"]  # a module called twice: two nodes
    assert view.nodes_named("blk_2") == ["blk_2"] and view.nodes_named("nope") == []
    assert view.kinds()["linear"] == ["blk_0", "blk_2"]
    assert sorted(view.candidates) == ["add", "blk_0", "blk_2"]  # flatten cannot be quantized
    assert view.candidates["blk_0"].params == frozenset({"weight", "bias"})


@pytest.mark.parametrize(
    ("name", "match"),
    [
        ("nope", r"^k: got 'nope', which names no node or module in the graph, allowed: a quantizable node's name or module path \(quantizable nodes: \['add', 'blk_0', 'blk_2'\]\)$"),
        ("blk.1", r"^k: got node 'blk_1', a flatten \(Flatten\), which cannot be quantized, allowed: a node of a quantizable kind \(\["),
    ],
)  # fmt: skip
def test_errors_list_what_is_valid(name: str, match: str) -> None:
    view = GraphView(trace(Twice(), torch.zeros(2, 4)))
    with pytest.raises(ConfigError, match=match):
        view.quantizable(name, "k")


def _rounded(t: torch.Tensor, width: int, frac: int) -> torch.Tensor:
    top = 2 ** (width - 1)
    return torch.clamp(torch.round(t * 2**frac), -top, top - 1) / 2**frac


@pytest.mark.parametrize("affine", [True, False])
def test_batch_norm_formats_round_its_fold_and_auto_reads_the_folds_range(affine: bool) -> None:
    """A BatchNorm's weight and bias formats round its fold, scale = gamma / sqrt(var + eps)
    and shift = beta - mean * scale. frac_width "auto" read gamma's range instead: running
    variances of 0.01 (scale 10) got fixed(8, 6), whose largest value is 1.98, and every
    output was clamped. Without affine the roles were dropped (no gamma, no beta), so the fold
    had no format and export refused it as 'left in float'. Referee: the fold computed here
    in float32, rounded to fixed(8, 3) and fixed(8, 4) by torch.round and clamp."""
    from quantsearch.passes.transform import quantize, resolve
    from quantsearch.passes.transform.config import parse_quantize_config

    torch.manual_seed(0)
    bn = nn.BatchNorm1d(3, affine=affine).eval()
    bn.running_var.fill_(0.01)
    bn.running_mean.copy_(torch.tensor([0.5, -0.25, 0.125]))
    x = torch.randn(5, 3)
    gm = trace(nn.Sequential(bn), x)
    assert GraphView(gm).candidates["_0"].params == frozenset({"weight", "bias"})
    auto = {"format": "fixed", "width": 8, "frac_width": "auto"}
    raw = {"by_type": {"batch_norm1d": {"weight": auto, "bias": auto}}}
    qgm = quantize(gm, resolve(gm, parse_quantize_config(raw)))
    q = qgm.get_submodule("0")
    assert (str(q.q_weight), str(q.q_bias)) == ("fixed(8,3)", "fixed(8,4)")
    gamma = bn.weight.detach() if affine else torch.ones(3)
    beta = bn.bias.detach() if affine else torch.zeros(3)
    scale = gamma / torch.sqrt(bn.running_var + bn.eps)  # 10: needs 4 integer bits
    shift = beta - bn.running_mean * scale  # -5 to 2.5: 3 integer bits
    with torch.no_grad():
        want = x * _rounded(scale, 8, 3) + _rounded(shift, 8, 4)
        assert torch.equal(qgm(x), want)
