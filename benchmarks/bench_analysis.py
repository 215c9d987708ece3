"""Time the analysis passes and ``compute_metrics`` on the largest zoo model, jsc-tiny (the
search's per-trial case) and a ResNet-18-sized conv net defined here.

Run from the repository root::

    python benchmarks/bench_analysis.py            # prints a Markdown table
    python benchmarks/bench_analysis.py --json     # machine-readable

Each figure is the median over ``--repeats`` timed calls (after one warm-up call) of the pass
on an already traced graph; tracing (which runs the model once) is timed separately, as the
median of 5 traces.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import fx, nn

from quantsearch.data import Split
from quantsearch.graph import trace
from quantsearch.metrics import TRIAL_METRICS, compute_metrics, metric_specs
from quantsearch.models import MODELS, build_model
from quantsearch.passes.analysis import activation_cost, compute_cost, mase_stats, param_cost


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.down: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.down = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(y)) + self.down(x))


class ResNet18(nn.Module):
    """torchvision's ResNet-18 layer for layer (11,689,512 parameters), without torchvision."""

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, 64, 7, 2, 3, bias=False),
            nn.BatchNorm2d(64),
            nn.ReLU(),
            nn.MaxPool2d(3, 2, 1),
        )
        blocks: list[nn.Module] = []
        c = 64
        for c_out, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            blocks += [BasicBlock(c, c_out, stride), BasicBlock(c_out, c_out, 1)]
            c = c_out
        self.layers = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.layers(self.stem(x))), 1))


def _median_ms(fn: Callable[[], Any], repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter_ns()
        fn()
        times.append((time.perf_counter_ns() - t0) / 1e6)
    return statistics.median(times)


def _bench_graph(label: str, gm: fx.GraphModule, repeats: int, trace_ms: float) -> dict[str, Any]:
    static = [s.name for s in metric_specs() if s.kind == "static"]
    return {
        "graph": label,
        "nodes": len(gm.graph.nodes),
        "trace_ms": trace_ms,
        "compute_cost_ms": _median_ms(lambda: compute_cost(gm), repeats),
        "param_cost_ms": _median_ms(lambda: param_cost(gm), repeats),
        "activation_cost_ms": _median_ms(lambda: activation_cost(gm), repeats),
        "mase_stats_ms": _median_ms(lambda: mase_stats(gm), repeats),
        "all_static_metrics_ms": _median_ms(lambda: compute_metrics(gm, static), repeats),
    }


def _traced(model: nn.Module, x: torch.Tensor, repeats: int = 5) -> tuple[fx.GraphModule, float]:
    """The traced graph, and the median time of ``repeats`` traces."""
    model.eval()
    return trace(model, x), _median_ms(lambda: trace(model, x), repeats)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--repeats", type=int, default=200, help="timed calls per figure (ResNet-18: a tenth)"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.manual_seed(0)
    rows = []

    largest = max(MODELS.names(), key=lambda n: sum(p.numel() for p in build_model(n).parameters()))
    spec = MODELS.get(largest)
    gm, ms = _traced(build_model(largest), torch.randn(1, *spec.input_shape))
    rows.append(_bench_graph(f"{largest} (largest zoo model), batch 1", gm, args.repeats, ms))

    gm, ms = _traced(build_model("jsc-tiny"), torch.randn(512, 16))
    rows.append(_bench_graph("jsc-tiny, batch 512", gm, args.repeats, ms))

    gm, ms = _traced(ResNet18(), torch.randn(1, 3, 224, 224))
    rows.append(
        _bench_graph("ResNet-18 (11.7 M params), 1x3x224x224", gm, max(args.repeats // 10, 5), ms)
    )

    # The search's per-trial metric call on jsc-tiny: static + all data metrics on 512 samples.
    jsc = trace(build_model("jsc-tiny").eval(), torch.randn(8, 16))
    data = Split(torch.randn(512, 16), torch.randint(0, 5, (512,)))
    names = [*TRIAL_METRICS, "flops"]
    trial_ms = _median_ms(lambda: compute_metrics(jsc, names, data=data), args.repeats)
    # The same call with one intra-op thread: a 512 x 16 forward pass gains nothing from more,
    # and on a loaded machine idle OpenMP workers competing for the cores make it erratic.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    trial_1t_ms = _median_ms(lambda: compute_metrics(jsc, names, data=data), args.repeats)
    torch.set_num_threads(threads)

    env = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "machine": platform.machine(),
        "command": " ".join(["python benchmarks/bench_analysis.py", *sys.argv[1:]]),
    }
    if args.json:
        print(
            json.dumps(
                {"env": env, "passes": rows, "jsc_tiny_trial_metrics_ms": trial_ms}, indent=2
            )
        )
        return
    cols = ["graph", "nodes", "trace_ms", "compute_cost_ms", "param_cost_ms", "activation_cost_ms",
            "mase_stats_ms", "all_static_metrics_ms"]  # fmt: skip
    print(
        f"python {env['python']}, torch {env['torch']}, {env['threads']} threads, {env['machine']}"
    )
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        print(
            "| "
            + " | ".join(f"{r[c]:.3f}" if isinstance(r[c], float) else str(r[c]) for c in cols)
            + " |"
        )
    print(f"\njsc-tiny per-trial compute_metrics({names}) on 512 samples:")
    print(f"- {threads} threads: {trial_ms:.3f} ms ({1000 / trial_ms:.0f} calls/s)")
    print(f"- 1 thread: {trial_1t_ms:.3f} ms ({1000 / trial_1t_ms:.0f} calls/s)")


if __name__ == "__main__":
    main()
