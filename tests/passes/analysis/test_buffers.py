"""Activation buffers per layer and in total, by hand."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from quantsearch.graph import info, trace
from quantsearch.passes.analysis import activation_cost, count_buffers


@dataclass(frozen=True)
class Bits:
    bits_per_element: int


def test_buffers_by_hand() -> None:
    model = nn.Sequential(nn.Linear(16, 5), nn.ReLU(), nn.Flatten(), nn.Linear(5, 3))
    gm = trace(model, torch.ones(8, 16))
    lin = next(n for n in gm.graph.nodes if n.name == "_0")
    info(lin).precision.update(data_in=Bits(8), data_out=Bits(4))
    count_buffers(gm)
    c = {n.name: info(n).cost for n in gm.graph.nodes if n.op != "output"}
    assert (c["input_1"]["out_elems"], c["input_1"]["out_bits"]) == (128, 128 * 32)
    assert (c["_0"]["in_elems"], c["_0"]["in_bits"]) == (128, 128 * 8)  # data_in precision
    assert (c["_0"]["out_elems"], c["_0"]["out_bits"]) == (40, 40 * 4)  # data_out precision
    assert (c["_1"]["in_bits"], c["_1"]["out_bits"]) == (40 * 32, 40 * 32)
    assert (c["_3"]["in_elems"], c["_3"]["out_elems"]) == (40, 24)

    a = activation_cost(gm)
    # input + linear + relu + linear outputs; flatten aliases its input and adds nothing.
    assert a.activation_elems == 128 + 40 + 40 + 24
    assert a.activation_bits == 128 * 32 + 40 * 4 + 40 * 32 + 24 * 32
    # Largest single layer: relu reads 40 and writes 40 float32 values = 2560 bits, more than
    # the first linear's 128 * 8 + 40 * 4 = 1184 bits.
    assert (a.peak_node, a.peak_activation_bits, a.peak_activation_elems) == ("_1", 2560, 80)
    assert a.batch_size == 8


def test_tensor_read_twice_is_one_input_buffer() -> None:
    class Sq(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * x

    gm = trace(Sq(), torch.ones(2, 3))
    count_buffers(gm)
    mul = next(n for n in gm.graph.nodes if n.name == "mul")
    assert info(mul).cost["in_elems"] == 6


def test_weights_fetched_by_get_attr_are_not_activations() -> None:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.ones(3, 4))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.linear(x, self.w)

    gm = trace(Net(), torch.ones(2, 4))
    count_buffers(gm)
    lin = next(n for n in gm.graph.nodes if n.name == "linear")
    assert (info(lin).cost["in_elems"], info(lin).cost["out_elems"]) == (8, 6)
