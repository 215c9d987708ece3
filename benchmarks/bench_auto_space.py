"""What ``frac_width = "auto"`` in a search space costs a trial beside explicit binary points.

Run from the repository root::

    python benchmarks/bench_auto_space.py            # Markdown table
    python benchmarks/bench_auto_space.py --rounds 3

Two per-layer spaces on mlp-digits (``by = "name"``, each Linear's ``data_in`` from widths
4/6/8 and ``weight`` from 2/3/4/6/8, bias as weight: 3,375 points): one with
``frac_width = "auto"``, one with the binary point at half the width. Per point, interleaved in
rounds in one process: what a trial does before it evaluates (``evaluator.resolve`` of the
point's layer formats, and for the auto space the record of what each ``"auto"`` role became),
and one evaluation (the slot-filled model on 360 validation samples, the default metrics).
The ratio auto / explicit is the figure to read; absolute times move with the machine's load.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

from quantsearch.data import load_dataset
from quantsearch.graph import trace
from quantsearch.models import build_model
from quantsearch.search.config import parse_search_config
from quantsearch.search.prepare import prepare_search
from quantsearch.search.space import SearchSpace
from quantsearch.search.trial_objective import _auto_formats


def _space(auto: bool) -> dict[str, Any]:
    def pairs(widths: tuple[int, ...]) -> list[list[Any]]:
        return [[w, "auto" if auto else w // 2] for w in widths]

    return {
        "by": "name",
        "choices": {
            "linear": {
                "data_in": pairs((4, 6, 8)),
                "weight": pairs((2, 3, 4, 6, 8)),
                "bias": "same_as_weight",
            }
        },
    }


def _per_point(fn: Callable[[dict[str, int]], Any], points: list[dict[str, int]]) -> float:
    t0 = time.perf_counter()
    for c in points:
        fn(c)
    return (time.perf_counter() - t0) / len(points)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--points", type=int, default=200, help="points resolved per round")
    ap.add_argument("--evals", type=int, default=20, help="points evaluated per round")
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    data = load_dataset("digits")
    model = build_model("mlp-digits").eval()
    gm = trace(model, data.val.x[:8])
    setups = {}
    for name, auto in (("auto", True), ("explicit", False)):
        cfg = parse_search_config(
            {"space": _space(auto), "objectives": {"accuracy": {"direction": "maximize"}}}
        )
        space, ev = prepare_search(gm, cfg, data.val, calibration_data=data.train.x[:256])
        setups[name] = (space, ev)
    size = setups["auto"][0].size
    step = max(1, size // args.points)
    points = [setups["auto"][0].point(i) for i in range(0, size, step)][: args.points]

    def before_eval(space: SearchSpace, ev: Any) -> Callable[[dict[str, int]], Any]:
        def run(c: dict[str, int]) -> Any:
            resolved = ev.resolve(space.layer_formats(c))
            return _auto_formats(space, c, resolved) if space.has_auto else {}

        return run

    def evaluate(space: SearchSpace, ev: Any) -> Callable[[dict[str, int]], Any]:
        return lambda c: ev.evaluate(ev.resolve(space.layer_formats(c)))

    times: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.rounds):
        for name, (space, ev) in setups.items():  # interleaved: both see the same load
            times.setdefault((name, "resolve"), []).append(
                _per_point(before_eval(space, ev), points)
            )
            times.setdefault((name, "evaluate"), []).append(
                _per_point(evaluate(space, ev), points[: args.evals])
            )
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"mlp-digits, {size}-point per-layer space, median of {args.rounds} rounds\n")
    print("| per point | auto | explicit | auto / explicit |")
    print("|---|---|---|---|")
    for part in ("resolve", "evaluate"):
        a, e = med[("auto", part)], med[("explicit", part)]
        print(f"| {part} | {1e6 * a:.0f} µs | {1e6 * e:.0f} µs | {a / e:.2f} |")


if __name__ == "__main__":
    main()
