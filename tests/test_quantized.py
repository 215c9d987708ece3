"""Quantized checkpoints reload as the quantized model, bit for bit."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from torch import nn

from quantsearch.data import DataSplits
from quantsearch.errors import ConfigError
from quantsearch.graph import trace
from quantsearch.models import build_model
from quantsearch.passes.transform import ResolvedConfig, calibrate, quantize
from quantsearch.quantized import load_quantized, save_quantized

F84 = {"format": "fixed", "width": 8, "frac_width": 4}
F42 = {"format": "fixed", "width": 4, "frac_width": 2}


def test_every_role_and_batch_norm_round_trip_bit_exact(
    mlp: nn.Module, digits: DataSplits, tmp_path: Path
) -> None:
    gm = trace(mlp, digits.val.x[:8])
    auto = {"format": "fixed", "width": 6, "frac_width": "auto"}
    config = {
        "seq_blocks_0": {"data_in": F84, "weight": F42, "bias": F84, "data_out": auto},
        "seq_blocks_1": {"weight": F84, "bias": F84},  # BatchNorm's gamma and beta
        "seq_blocks_2": {"data_out": F42},
        "seq_blocks_6": {
            "weight": {"format": "minifloat", "exponent_width": 3, "mantissa_width": 2}
        },
    }
    stats = calibrate(gm, digits.train.x[:64])
    qgm = quantize(gm, ResolvedConfig.from_dict(config, gm=gm, calibration=stats))
    path = save_quantized(
        tmp_path / "q.pt", qgm, model_name="mlp-digits", dataset="digits", sample_shape=(64,)
    )
    reloaded = load_quantized(path)
    x = digits.test.x
    assert torch.equal(reloaded(x), qgm(x))
    assert not reloaded.training
    assert ResolvedConfig.from_graph(reloaded) == ResolvedConfig.from_graph(qgm)


def test_a_float_checkpoint_is_refused(mlp_checkpoint: Path) -> None:
    with pytest.raises(ConfigError, match=r"^--load: '.*' is a float checkpoint"):
        load_quantized(mlp_checkpoint)


def test_a_model_in_training_mode_is_refused(
    mlp: nn.Module, digits: DataSplits, tmp_path: Path
) -> None:
    # a traced graph shares the model's submodules (torch.fx keeps them by reference), so
    # .train() on a trace of the session's `mlp` would leave it in training mode for later tests
    gm = trace(copy.deepcopy(mlp), digits.val.x[:8]).train()
    qgm = quantize(gm, ResolvedConfig.from_dict({"seq_blocks_0": {"weight": F42}}, gm=gm))
    with pytest.raises(ConfigError, match=r"training mode"):
        save_quantized(
            tmp_path / "q.pt", qgm, model_name="mlp-digits", dataset="digits", sample_shape=(64,)
        )


USER_MODELS = """
import torch
from torch import nn


class Embed(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(32, 8)
        self.fc = nn.Linear(8 * 4, 5)

    def forward(self, idx):
        return self.fc(self.emb(idx).flatten(1))


def embed():
    return Embed()


def mlp64():
    return nn.Sequential(nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 5)).double()
"""


@pytest.mark.parametrize(
    ("build", "x"),
    [("embed", torch.randint(0, 32, (6, 4))), ("mlp64", torch.randn(6, 16, dtype=torch.float64))],
)
def test_a_user_model_of_integer_or_float64_input_round_trips(
    build: str, x: torch.Tensor, tmp_path: Path
) -> None:
    """The sample's dtype is recorded: tracing again with float32 zeros failed for an
    embedding's indices and a float64 model's first Linear."""
    (tmp_path / "user.py").write_text(USER_MODELS)
    torch.manual_seed(0)
    model = build_model(f"user.py:{build}", base_dir=tmp_path).eval()
    gm = trace(model, x)
    first = {"embed": "fc", "mlp64": "_0"}[build]  # the first Linear
    qgm = quantize(gm, ResolvedConfig.from_dict({first: {"data_in": F84, "weight": F42}}, gm=gm))
    path = save_quantized(
        tmp_path / "q.pt", qgm, model_name=f"user.py:{build}", dataset="user",
        sample_shape=tuple(x.shape[1:]), base_dir=tmp_path,
    )  # fmt: skip
    reloaded = load_quantized(path)
    assert torch.equal(reloaded(x), qgm(x)) and reloaded(x).dtype == qgm(x).dtype


def test_a_quantized_checkpoint_where_float_weights_go_says_so(
    mlp: nn.Module, digits: DataSplits, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``summary --load quantized.pt``: the float model with the quantized values, and one
    warning line that says so (the checkpoint's formats are not applied)."""
    from tests.cli.bad_input import run_cli

    gm = trace(mlp, digits.val.x[:8])
    qgm = quantize(gm, ResolvedConfig.from_dict({"seq_blocks_0": {"weight": F42}}, gm=gm))
    q = save_quantized(
        tmp_path / "q.pt", qgm, model_name="mlp-digits", dataset="digits", sample_shape=(64,)
    )
    code, err = run_cli(["summary", "--load", str(q), "--json"], capsys)
    assert code == 0, err
    (line,) = err.strip().splitlines()
    assert line.startswith("warning: --load: ") and "is a quantized checkpoint" in line, line
