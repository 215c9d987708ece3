"""Training: short seeded runs (a few epochs of mlp-digits), checkpoints and `quantsearch train`."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from quantsearch.checkpoint import load_checkpoint, save_checkpoint
from quantsearch.cli import main
from quantsearch.cli.train import default_checkpoint_path
from quantsearch.config import TrainConfig, load_config, parse_config
from quantsearch.data import DataSplits
from quantsearch.models import build_model
from quantsearch.session import open_session
from quantsearch.train import TrainResult, evaluate, seed_everything, train

SHORT = TrainConfig(epochs=4, patience=4, device="cpu")


def _run(data: DataSplits, cfg: TrainConfig = SHORT) -> TrainResult:
    seed_everything(cfg.seed)
    return train(build_model("mlp-digits"), data, cfg, progress=False)


def test_loss_decreases_and_metrics_are_complete(digits: DataSplits) -> None:
    result = _run(digits)
    losses = [e.train_loss for e in result.history]
    assert losses[-1] < losses[0] * 0.5
    assert result.history[-1].val_accuracy > 0.85
    assert set(result.metrics) == {
        *(f"{s}_{m}" for s in ("train", "val", "test") for m in ("accuracy", "loss")),
        "epochs",
        "best_epoch",
        "seconds",
    }
    assert result.metrics["epochs"] == 4
    assert result.device == "cpu"
    assert not result.model.training
    # the metrics are the returned model's, measured again here
    loss, acc = evaluate(result.model, digits.test)
    assert acc == result.metrics["test_accuracy"]
    assert loss == pytest.approx(result.metrics["test_loss"])


def test_same_seed_same_weights(digits: DataSplits) -> None:
    a, b = _run(digits), _run(digits)
    sa, sb = a.model.state_dict(), b.model.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k
    assert a.history == b.history


def test_another_seed_other_weights(digits: DataSplits) -> None:
    a = _run(digits)
    b = _run(digits, TrainConfig(epochs=4, patience=4, device="cpu", seed=1))
    w = "seq_blocks.0.weight"
    assert not torch.equal(a.model.state_dict()[w], b.model.state_dict()[w])


def test_the_input_model_is_not_modified(digits: DataSplits) -> None:
    model = build_model("mlp-digits")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    train(model, digits, SHORT, progress=False)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_early_stopping_restores_the_best_epoch(digits: DataSplits) -> None:
    cfg = TrainConfig(epochs=60, patience=2, lr=3e-2, device="cpu")
    result = _run(digits, cfg)
    m = result.metrics
    assert m["epochs"] < 60  # a large learning rate overfits quickly
    assert m["epochs"] == m["best_epoch"] + cfg.patience
    best = min(result.history, key=lambda e: e.val_loss)
    assert best.epoch == m["best_epoch"]
    assert m["val_loss"] == pytest.approx(best.val_loss, rel=1e-5)


class _Outputs(torch.nn.Module):
    """digits' 64 features to what ``kind`` names: a scalar, a tuple, or 5 scores of 10."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self.fc = torch.nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> object:
        y = self.fc(x.flatten(1))
        return {"scalar": y.mean(), "tuple": (y, y), "five": y[:, :5]}[self.kind]


@pytest.mark.parametrize(
    ("kind", "got"),
    [
        ("scalar", r"output of shape \(\)"),
        ("tuple", "a tuple output"),
        ("five", r"output of shape \(2, 5\)"),
    ],
)
def test_a_model_that_returns_no_logits_is_refused(digits: DataSplits, kind: str, got: str) -> None:
    """A loss-like scalar, a tuple, or fewer scores than digits' 10 classes: cross_entropy of
    them raised torch's IndexError mid-epoch (an internal error from `quantsearch train`);
    one ConfigError before the first step, the model untouched."""
    from quantsearch.errors import ConfigError

    model = _Outputs(kind)
    before = model.fc.weight.clone()
    with pytest.raises(
        ConfigError, match=rf"^model: got {got}, allowed for `train`: .* 10 classes"
    ):
        train(model, digits, SHORT, progress=False)
    assert torch.equal(model.fc.weight, before)


def test_checkpoint_round_trip_through_load(digits: DataSplits, tmp_path: Path) -> None:
    result = _run(digits)
    path = save_checkpoint(
        tmp_path / "ckpt" / "mlp.pt",
        result.model,
        model_name="mlp-digits",
        dataset="digits",
        metrics=result.metrics,
    )
    cfg = parse_config({"model": {"name": "mlp-digits"}, "data": {"name": "digits"}})
    session = open_session(cfg, load=path)
    assert session.checkpoint == path
    with torch.no_grad():
        assert torch.equal(session.model(digits.test.x), result.model(digits.test.x))
    ckpt = load_checkpoint(path)
    assert ckpt.metrics["test_accuracy"] == result.metrics["test_accuracy"]
    assert {"python", "torch"} <= set(ckpt.versions)


CONFIG = """
seed = 0
[model]
name = "mlp-digits"
[data]
name = "digits"
[train]
epochs = 30
device = "cpu"
"""


def test_cli_train_writes_a_checkpoint_that_load_accepts(
    write_config: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(CONFIG)
    out = tmp_path / "out" / "mlp.pt"
    main(["train", "--config", str(config), "--epochs", "3", "--out", str(out), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert report["checkpoint"] == str(out) and report["epochs"] == 3
    ckpt = load_checkpoint(out)
    assert ckpt.model_name == "mlp-digits" and ckpt.dataset == "digits"
    assert ckpt.config["train"]["epochs"] == 3  # --epochs overrides the config
    assert ckpt.metrics["test_accuracy"] == report["test_accuracy"]
    main(["summary", "--config", str(config), "--load", str(out), "--json"])
    nodes = json.loads(capsys.readouterr().out)["nodes"]
    assert [n["op_kind"] for n in nodes][1] == "linear"


def test_cli_train_is_deterministic(write_config: Callable[..., Path], tmp_path: Path) -> None:
    config = write_config(CONFIG)
    for name in ("a.pt", "b.pt"):
        main(["train", "-c", str(config), "--epochs", "2", "--out", str(tmp_path / name), "--json"])
    a, b = load_checkpoint(tmp_path / "a.pt"), load_checkpoint(tmp_path / "b.pt")
    for k in a.state_dict:
        assert torch.equal(a.state_dict[k], b.state_dict[k]), k


def test_default_checkpoint_paths(write_config: Callable[..., Path], tmp_path: Path) -> None:
    cfg = load_config(write_config(CONFIG))
    assert default_checkpoint_path(cfg, "mlp-digits") == Path("runs/mlp-digits.pt")
    assert default_checkpoint_path(cfg, "models/net.py:build") == Path("runs/net-build.pt")
    with_path = load_config(write_config(CONFIG + 'checkpoint = "weights/m.pt"\n', "c2.toml"))
    assert default_checkpoint_path(with_path, "mlp-digits") == tmp_path / "weights" / "m.pt"


def test_cli_train_writes_the_model_checkpoint_that_does_not_exist_yet(
    write_config: Callable[..., Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    text = CONFIG.replace('name = "mlp-digits"', 'name = "mlp-digits"\ncheckpoint = "runs/mlp.pt"')
    config = write_config(text)
    monkeypatch.chdir(tmp_path)
    main(["train", "-c", str(config), "--epochs", "1"])
    out = capsys.readouterr().out
    assert "mlp-digits on digits: test accuracy" in out
    # It trains from a fresh init and writes the file the other commands will load.
    assert (tmp_path / "runs" / "mlp.pt").is_file()
    assert not (tmp_path / "runs" / "mlp-digits.pt").exists()
