"""Time ``quantize()`` on every zoo model and a ResNet-18-sized net, and the forward-time
overhead of the quantized model over the float one.

Run from the repository root::

    python benchmarks/bench_quantize.py            # prints Markdown tables
    python benchmarks/bench_quantize.py --json     # machine-readable

The config quantizes every quantizable node: ``data_in``, ``weight`` and ``bias`` in 8-bit fixed
point (``fixed(8,4)``). Each figure is the median over ``--repeats`` timed calls after one
warm-up call (a tenth as many for ResNet-18), on an already traced, eval-mode graph:

- ``quantize_ms``: ``quantize(gm, resolved)`` in eval mode (weights rounded once, here);
  ``quantize_train_ms`` the same for a training-mode graph (float master weights copied).
- ``apply_us``: the search's path, :class:`~quantsearch.passes.transform.slots.PreparedModel`
  ``.apply_`` alternating between ``fixed(8,4)`` and ``fixed(6,3)`` (so every call refills the
  slots, the weights from the per-format memo), against ``quantize_ms``: ``speed-up``.
- ``from_dict_us``: ``ResolvedConfig.from_dict(d, gm=gm)`` from a plain per-node dict, as the
  search builds one per trial.
- ``float_ms`` / ``quant_ms``: one forward pass (no grad) of the float and the quantized model on
  the batch given in the table; ``overhead`` is their ratio.

The search's per-trial cost on jsc-tiny is timed as a whole: ``from_dict`` + ``quantize`` + a
forward over 512 samples, and the same with ``compute_metrics`` (accuracy, balanced accuracy,
loss, model size, average weight bits, BitOPs) in place of the bare forward.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

import torch
from torch import fx, nn

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the analysis benchmark: same net, timer
from bench_analysis import ResNet18, _median_ms
from quantsearch.data import Split
from quantsearch.graph import trace
from quantsearch.metrics import TRIAL_METRICS, compute_metrics
from quantsearch.models import MODELS, build_model
from quantsearch.passes.transform import (
    ResolvedConfig,
    parse_quantize_config,
    quantize,
    resolve,
)
from quantsearch.passes.transform.slots import PreparedModel

EIGHT = {"format": "fixed", "width": 8, "frac_width": 4}
CONFIG = parse_quantize_config({"default": {"data_in": EIGHT, "weight": EIGHT, "bias": EIGHT}})


def _bench(label: str, model: nn.Module, x: torch.Tensor, repeats: int) -> dict[str, Any]:
    gm = trace(model.eval(), x[:1])
    resolved = resolve(gm, CONFIG)
    d = resolved.to_dict()
    qgm = quantize(gm, resolved)
    train_gm = trace(model.train(), x[:2])
    train_resolved = resolve(train_gm, CONFIG)
    model.eval()
    with torch.no_grad():
        float_ms = _median_ms(lambda: gm(x), repeats)
        quant_ms = _median_ms(lambda: qgm(x), repeats)
    return {
        "model": label,
        "params": sum(p.numel() for p in model.parameters()),
        "nodes": len(gm.graph.nodes),
        "quantized_nodes": len(resolved),
        "batch": "x".join(str(s) for s in x.shape),
        "quantize_ms": _median_ms(lambda: quantize(gm, resolved), repeats),
        "quantize_train_ms": _median_ms(lambda: quantize(train_gm, train_resolved), repeats),
        **_apply(gm, resolved, repeats),
        "from_dict_us": 1e3 * _median_ms(lambda: ResolvedConfig.from_dict(d, gm=gm), repeats),
        "float_ms": float_ms,
        "quant_ms": quant_ms,
        "overhead": quant_ms / float_ms,
    }


def _apply(gm: fx.GraphModule, resolved: ResolvedConfig, repeats: int) -> dict[str, float]:
    six = {"format": "fixed", "width": 6, "frac_width": 3}
    other = resolve(gm, parse_quantize_config({"default": {r: six for r in ROLES3}}))
    pm = PreparedModel(gm)
    configs = [resolved, other]
    calls = iter(range(10**9))
    us = 1e3 * _median_ms(lambda: pm.apply_(configs[next(calls) % 2]), repeats)
    q_ms = _median_ms(lambda: quantize(gm, resolved), repeats)
    return {"apply_us": us, "speed-up": q_ms * 1e3 / us}


ROLES3 = ("data_in", "weight", "bias")


def _trial(repeats: int) -> dict[str, float]:
    torch.manual_seed(0)
    gm = trace(build_model("jsc-tiny").eval(), torch.randn(8, 16))
    data = Split(torch.randn(512, 16), torch.randint(0, 5, (512,)))
    d = resolve(gm, CONFIG).to_dict()

    def bare() -> None:
        qgm = quantize(gm, ResolvedConfig.from_dict(d, gm=gm))
        with torch.no_grad():
            qgm(data.x)

    def with_metrics() -> None:
        qgm = quantize(gm, ResolvedConfig.from_dict(d, gm=gm))
        compute_metrics(qgm, TRIAL_METRICS, data=data)

    pm = PreparedModel(gm)
    six = {"format": "fixed", "width": 6, "frac_width": 3}
    ds = [d, resolve(gm, parse_quantize_config({"default": {r: six for r in ROLES3}})).to_dict()]
    calls = iter(range(10**9))

    def slots() -> None:  # the search's path: slots refilled, two configs alternating
        qgm = pm.apply_(ResolvedConfig.from_dict(ds[next(calls) % 2], gm=gm))
        compute_metrics(qgm, TRIAL_METRICS, data=data)

    bare_ms = _median_ms(bare, repeats)
    full_ms = _median_ms(with_metrics, repeats)
    slots_ms = _median_ms(slots, repeats)
    return {
        "from_dict_quantize_forward_ms": bare_ms,
        "from_dict_quantize_metrics_ms": full_ms,
        "trials_per_s": 1e3 / full_ms,
        "from_dict_apply_metrics_ms": slots_ms,
        "slot_trials_per_s": 1e3 / slots_ms,
    }


def _table(rows: list[dict[str, Any]]) -> str:
    cols = list(rows[0])
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        cells = [
            f"{v:.3f}" if isinstance(v, float) else f"{v:,}" if isinstance(v, int) else str(v)
            for v in r.values()
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=200, help="timed calls (ResNet-18: a tenth)")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (the search's default)"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rows = []
    for name in MODELS.names():
        spec = MODELS.get(name)
        rows.append(
            _bench(name, build_model(name), torch.randn(512, *spec.input_shape), args.repeats)
        )
    rows.append(
        _bench("ResNet-18", ResNet18(), torch.randn(1, 3, 224, 224), max(args.repeats // 10, 5))
    )
    trial = _trial(args.repeats)
    machine = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "load_average_1min": os.getloadavg()[0],
    }
    if args.json:
        print(json.dumps({"machine": machine, "models": rows, "jsc_tiny_trial": trial}, indent=2))
        return
    print(_table(rows))
    print()
    print(
        f"jsc-tiny trial, 512 samples: from_dict + quantize + forward "
        f"{trial['from_dict_quantize_forward_ms']:.3f} ms; with compute_metrics "
        f"{trial['from_dict_quantize_metrics_ms']:.3f} ms ({trial['trials_per_s']:.0f} trials/s); "
        f"the slot path (from_dict + apply_ + compute_metrics) "
        f"{trial['from_dict_apply_metrics_ms']:.3f} ms ({trial['slot_trials_per_s']:.0f} trials/s)"
    )
    print(f"machine: {machine}")


if __name__ == "__main__":
    main()
