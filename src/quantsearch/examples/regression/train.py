"""Fit the regression example's model and write the checkpoint its config loads.

    python examples/regression/train.py [--out runs/regression-mlp.pt] [--steps 1500]

Your own training loop, as you would write it for any model; ``save_checkpoint`` records the
weights under the config's model name so that ``quantsearch search`` loads them. The training
samples are the config's: quantsearch's split of ``task.load()`` with the config's seed.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch.nn import functional as F

from quantsearch.checkpoint import save_checkpoint
from quantsearch.config import load_config
from quantsearch.data import load_dataset
from quantsearch.models import build_model

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="checkpoint path (default: model.checkpoint)")
    parser.add_argument("--steps", type=int, default=1500)
    args = parser.parse_args()
    config = load_config(HERE / "regression.toml")
    # the data as quantsearch splits it for this config, and the untrained model
    data = load_dataset(config.data.name or "", options=config.data.options, seed=config.seed,
                        base_dir=config.base_dir)  # fmt: skip
    torch.manual_seed(config.seed)
    model = build_model(config.model.name, base_dir=config.base_dir).train()
    train, val = data.train, data.val
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(args.steps):
        idx = torch.randint(0, len(train), (128,))
        loss = F.mse_loss(model(train.x[idx]), train.y[idx])
        opt.zero_grad()
        torch.autograd.backward(loss)  # loss.backward(), which mypy --strict sees untyped
        opt.step()
    model.eval()
    with torch.no_grad():
        val_mse = float(F.mse_loss(model(val.x), val.y))
    out = str(args.out or config.model.checkpoint)
    save_checkpoint(out, model, model_name=config.model.name, dataset=data.name,
                    metrics={"val_mse": val_mse})  # fmt: skip
    print(f"validation mse {val_mse:.4f}; wrote {out}")


if __name__ == "__main__":
    main()
