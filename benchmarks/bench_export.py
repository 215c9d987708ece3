"""Time the hardware export and its verification on jsc-tiny, jsc-toy and mlp-digits.

Run from the repository root (needs the export extra and g++)::

    python benchmarks/bench_export.py            # prints a Markdown table
    python benchmarks/bench_export.py --json     # machine-readable

Each model is trained briefly (60 Adam steps, as in ``tests/export``) and quantized with the lab
pair ``data_in`` fixed(8,4), ``weight`` and ``bias`` fixed(8,6) on every layer. mlp-digits is
verified on the digits validation split (360 samples); the JSC models on a synthetic
16-feature validation set of ``--jsc-samples`` samples (no download; the real JSC validation
split has ~66,000). One timed run per step (a C-simulation build is seconds, not micro-seconds):

- ``convert_s``: :func:`quantsearch.export.export_hls4ml` (the hardware plan, hls4ml's config
  and its PyTorch front end); ``write_s``: writing the HLS project;
- ``compile_s``: hls4ml's g++ build of the bit-accurate C simulation (``-O3``);
- ``predict_s``: the C simulation over the validation set; ``reference_s``: quantsearch's own
  quantized model over it in float64 (what it is compared with);
- ``qonnx_export_s``: :func:`quantsearch.export.export_qonnx`; ``qonnx_exec_s``: the qonnx
  package's executor over the validation set;
- ``hls4ml`` / ``qonnx``: the measured agreement (same class, max |difference| in LSBs).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import fx, nn

from quantsearch.data import load_dataset
from quantsearch.export import export_hls4ml, export_qonnx, reference_outputs, verify_qonnx
from quantsearch.export.agreement import agreement
from quantsearch.export.qonnx import run_qonnx
from quantsearch.graph import trace
from quantsearch.models import build_model
from quantsearch.passes.transform import ResolvedConfig, quantize

MODELS = ("jsc-tiny", "jsc-toy", "mlp-digits")
T = TypeVar("T")


def _timed(fn: Callable[[], T]) -> tuple[T, float]:
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def _fixed(width: int, frac: int) -> dict[str, Any]:
    return {"format": "fixed", "width": width, "frac_width": frac}


def _lab_pair(gm: fx.GraphModule) -> ResolvedConfig:
    layers: dict[str, Any] = {}
    for n in gm.graph.nodes:
        if n.op == "call_module":
            layers[n.name] = {"data_in": _fixed(8, 4)}
            if getattr(gm.get_submodule(str(n.target)), "weight", None) is not None:
                layers[n.name] |= {"weight": _fixed(8, 6), "bias": _fixed(8, 6)}
    return ResolvedConfig.from_dict(layers, gm=gm)


def _trained(name: str, jsc_samples: int) -> tuple[fx.GraphModule, torch.Tensor]:
    torch.manual_seed(0)
    if name == "mlp-digits":
        d = load_dataset("digits")
        x, y, val = d.train.x, d.train.y, d.val.x
    else:
        g = torch.Generator().manual_seed(0)
        xs = torch.randn(768 + jsc_samples, 16, generator=g) * 2
        ys = (xs[:, :5] + 0.5 * xs[:, 5:10]).argmax(1)
        x, y, val = xs[:768], ys[:768], xs[768:]
    model = build_model(name)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(60):
        opt.zero_grad()
        torch.autograd.backward(nn.functional.cross_entropy(model(x), y))
        opt.step()
    model.eval()
    return trace(model, val[:8]), val


def bench(name: str, jsc_samples: int, folder: Path) -> dict[str, Any]:
    gm, x = _trained(name, jsc_samples)
    qgm = quantize(gm, _lab_pair(gm)).eval()
    row: dict[str, Any] = {"model": name, "samples": len(x)}
    exp, row["convert_s"] = _timed(lambda: export_hls4ml(qgm, folder / f"{name}-hls"))
    _, row["write_s"] = _timed(exp.write)
    _, row["compile_s"] = _timed(exp.hls_model._compile)  # hls4ml's compile() after write()
    hw, row["predict_s"] = _timed(lambda: exp.predict(x))
    ref, row["reference_s"] = _timed(lambda: reference_outputs(qgm, x))
    row["hls4ml"] = str(agreement("hls4ml C simulation", ref, hw, 2.0**-exp.plan.output.frac))
    path, row["qonnx_export_s"] = _timed(lambda: export_qonnx(qgm, folder / f"{name}.onnx"))
    _, row["qonnx_exec_s"] = _timed(lambda: run_qonnx(path, x))
    row["qonnx"] = str(verify_qonnx(path, qgm, x))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print JSON instead of Markdown")
    parser.add_argument("--jsc-samples", type=int, default=4096, help="JSC validation samples")
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated zoo names")
    args = parser.parse_args()
    torch.set_num_threads(1)  # tiny models: a second thread only contends on a shared machine
    with tempfile.TemporaryDirectory() as tmp:
        rows = [bench(m, args.jsc_samples, Path(tmp)) for m in args.models.split(",")]
    machine = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpus": os.cpu_count(),
        "load_average_1min": round(os.getloadavg()[0], 1),
    }
    if args.json:
        print(json.dumps({"machine": machine, "rows": rows}, indent=2))
        return
    print(f"machine: {machine}\n")
    cols = [
        "model",
        "samples",
        "convert_s",
        "write_s",
        "compile_s",
        "predict_s",
        "reference_s",
        "qonnx_export_s",
        "qonnx_exec_s",
    ]
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        cells = [f"{r[c]:.2f}" if isinstance(r[c], float) else str(r[c]) for c in cols]
        print("| " + " | ".join(cells) + " |")
    print()
    for r in rows:
        print(f"- {r['model']}: {r['hls4ml']}; {r['qonnx']}")


if __name__ == "__main__":
    main()
