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
        ("nope", r"^k: no node or module named 'nope' in the graph \(quantizable nodes: \['add', 'blk_0', 'blk_2'\]\)$"),
        ("blk.1", r"^k: node 'blk_1' is a flatten \(Flatten\), which cannot be quantized \(quantizable kinds: \["),
    ],
)  # fmt: skip
def test_errors_list_what_is_valid(name: str, match: str) -> None:
    view = GraphView(trace(Twice(), torch.zeros(2, 4)))
    with pytest.raises(ConfigError, match=match):
        view.quantizable(name, "k")
