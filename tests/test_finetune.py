"""Quantization-aware fine-tuning recovers accuracy, leaves its input alone, and ends with
weights on their grids."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from quantsearch.data import DataSplits
from quantsearch.errors import ConfigError
from quantsearch.finetune import finetune
from quantsearch.graph import trace
from quantsearch.metrics import compute_metrics
from quantsearch.passes.transform import ResolvedConfig, quantize

LINEARS = ("seq_blocks_0", "seq_blocks_3", "seq_blocks_6")
W4 = {"format": "fixed", "width": 4, "frac_width": 3}
A2 = {"format": "fixed", "width": 2, "frac_width": 1}  # 53% without fine-tuning
CONFIG = {n: {"weight": W4, "data_in": A2} for n in LINEARS}


def test_a_low_bit_config_recovers_and_the_input_is_untouched(
    mlp: nn.Module, digits: DataSplits
) -> None:
    gm = trace(mlp, digits.val.x[:8])
    state = {k: v.clone() for k, v in gm.state_dict().items()}
    r = finetune(gm, CONFIG, digits, epochs=3, lr=3e-3)
    assert all(torch.equal(v, state[k]) for k, v in gm.state_dict().items())
    assert not gm.training
    assert r.after["val"]["accuracy"] > r.before["val"]["accuracy"] + 0.05, (r.before, r.after)
    assert r.after["test"]["accuracy"] > r.before["test"]["accuracy"]
    assert not r.model.training and r.best_epoch >= 1 and len(r.history) == 3
    for name in ("seq_blocks.0", "seq_blocks.3", "seq_blocks.6"):
        w = r.model.state_dict()[f"{name}.weight"]
        assert torch.equal(w * 8, torch.round(w * 8)) and w.abs().max() <= 1  # fixed(4,3)
    # the returned model is what quantizing its own weights gives: re-quantized, not drifted
    again = quantize(r.model, ResolvedConfig.from_graph(r.model))
    assert torch.equal(again(digits.test.x), r.model(digits.test.x))
    measured = compute_metrics(r.model, ["accuracy"], data=digits.test)["accuracy"]
    assert measured == r.after["test"]["accuracy"]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"epochs": 0}, r"^epochs: got 0, allowed: an integer >= 1"),
        ({"lr": float("nan")}, r"^lr: got nan, allowed: a finite number > 0"),
        ({"batch_size": 0}, r"^batch_size: got 0, allowed"),
        ({"weight_decay": -1.0}, r"^weight_decay: got -1.0, allowed"),
    ],
)
def test_bad_settings_are_config_errors(
    mlp: nn.Module, digits: DataSplits, kwargs: dict[str, Any], match: str
) -> None:
    with pytest.raises(ConfigError, match=match):
        finetune(mlp, CONFIG, digits, **kwargs)


class _InferenceOnly(nn.Module):
    """A forward decorated with torch.no_grad() (a model written for inference alone)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc, self.out = nn.Linear(16, 8), nn.Linear(8, 5)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.fc(x)))


def test_a_forward_without_gradients_is_refused_in_one_line() -> None:
    """A forward under torch.no_grad() has no gradient to train (autograd on the model raises
    'element 0 of tensors does not require grad'); trace keeps that (its outputs detached),
    and finetune and train ended in that RuntimeError with a traceback. Now one ConfigError
    naming what the forward lacks, before any step; the model's weights untouched."""
    from quantsearch.config import TrainConfig
    from quantsearch.data import Split
    from quantsearch.passes.transform.config import parse_quantize_config
    from quantsearch.train import train

    torch.manual_seed(0)
    model, x = _InferenceOnly().eval(), torch.randn(96, 16)
    y = x[:, :5].argmax(1)
    splits = (Split(x[:64], y[:64]), Split(x[64:80], y[64:80]), Split(x[80:], y[80:]))
    data = DataSplits("d", *splits, 5, tuple("abcde"))
    w = model.fc.weight.clone()
    raw = {"by_type": {"linear": {"weight": {"format": "fixed", "width": 8, "frac_width": 4}}}}
    pattern = r"^model: got a forward whose outputs no parameter's gradient reaches"
    with pytest.raises(ConfigError, match=pattern):
        finetune(trace(model, x[:8]), parse_quantize_config(raw), data, epochs=1)
    with pytest.raises(ConfigError, match=pattern):
        train(model, data, TrainConfig(epochs=1), progress=False)
    assert torch.equal(model.fc.weight, w)
