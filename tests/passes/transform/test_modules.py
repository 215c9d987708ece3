"""The builder registry and module copies that share nothing."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from quantsearch.errors import ConfigError
from quantsearch.passes.transform.modules import QUANTIZERS, QuantLinear, clone_module


def test_a_registry_miss_lists_the_registered_kinds() -> None:
    with pytest.raises(
        ConfigError,
        match=r"quantizable op kind: got 'layer_norm', allowed: one of \['add', 'batch_norm1d', 'batch_norm2d', 'bmm', 'conv1d', 'conv2d', 'linear', 'matmul', 'mul', 'relu'\]",
    ):
        QUANTIZERS.get("layer_norm")


def test_every_spec_names_its_kind_and_roles() -> None:
    for kind, spec in QUANTIZERS.items():
        assert spec.kind == kind and set(spec.roles) <= {"data_in", "weight", "bias", "data_out"}
        assert spec.module_types or spec.functions


def test_clone_module_shares_no_tensor_and_no_container() -> None:
    bn = nn.BatchNorm1d(3)
    bn.register_forward_hook(lambda m, i, o: None)
    c = clone_module(bn)
    for name, t in [*bn.named_parameters(), *bn.named_buffers()]:
        other = dict([*c.named_parameters(), *c.named_buffers()])[name]
        assert torch.equal(t, other) and t.data_ptr() != other.data_ptr()
    for k, v in vars(bn).items():
        if isinstance(v, (dict, list, set)):
            assert vars(c)[k] is not v and list(vars(c)[k]) == list(v), k
    c.eval()
    assert bn.training  # mode flags are the copy's own


def test_clone_module_can_reclass_and_replace_parameters() -> None:
    lin = nn.Linear(3, 2)
    new_w = torch.zeros(2, 3)
    c = clone_module(lin, QuantLinear, replace={"weight": new_w})
    assert type(c) is QuantLinear and isinstance(c, nn.Linear)
    assert (
        isinstance(c.weight, nn.Parameter)
        and torch.equal(c.weight, new_w)
        and c.weight.requires_grad
    )
    assert torch.equal(c.bias, lin.bias) and c.bias is not lin.bias
    assert (c.in_features, c.out_features) == (3, 2)
