"""Strategy overhead per trial: the seconds each sampler spends choosing a trial's parameters.

Runs every registered strategy on a per-layer example (default: mlp_digits_layers.toml, 22^6
points) through the real study loop, and times the sampler's own calls (Optuna's
``infer_relative_search_space``, ``sample_relative`` and ``sample_independent``) separately from
the evaluations. The sensitivity strategy's one-off start (probe and cost tables) falls in its
first trial and is reported apart.

    python benchmarks/bench_strategies.py [--config FILE] [--trials 10,100,1000] [--skip-1000 gp]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from typing import Any

import torch

from quantsearch.config import load_config
from quantsearch.search import study as study_mod
from quantsearch.search.api import prepare_from_config, run_search
from quantsearch.search.config import StrategySpec
from quantsearch.search.strategies import STRATEGIES


class Timed:
    """Wraps a sampler's three methods and records the seconds of each trial's calls."""

    def __init__(self, sampler: Any) -> None:
        self.sampler, self.per_trial = sampler, {}  # type: ignore[var-annotated]
        for name in ("infer_relative_search_space", "sample_relative", "sample_independent"):
            setattr(self, name, self._wrap(getattr(sampler, name)))

    def _wrap(self, fn: Any) -> Any:
        def timed(study: Any, trial: Any, *args: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(study, trial, *args)
            finally:
                self.per_trial[trial.number] = (
                    self.per_trial.get(trial.number, 0.0) + time.perf_counter() - t0
                )

        return timed

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sampler, name)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="src/quantsearch/examples/mlp_digits_layers.toml")
    ap.add_argument("--trials", default="10,100,1000")
    ap.add_argument(
        "--strategies",
        default=",".join(s for s in STRATEGIES.names() if s not in ("brute_force", "grid")),
    )
    ap.add_argument("--skip-1000", default="gp", help="strategies not run at the largest budget")
    args = ap.parse_args()
    torch.set_num_threads(1)
    config = load_config(args.config)
    budgets = [int(b) for b in args.trials.split(",")]
    skip = set(args.skip_1000.split(",")) if args.skip_1000 else set()
    timers: list[Timed] = []
    real_build = study_mod.build_sampler

    def build(name: str, ctx: Any) -> Any:
        timers.append(Timed(real_build(name, ctx)))
        return timers[-1]

    study_mod.build_sampler = build  # type: ignore[assignment]
    rows = []
    for strategy in args.strategies.split(","):
        for n in budgets:
            if n == max(budgets) and strategy in skip:
                continue
            cfg = dataclasses.replace(
                config.search, strategy=StrategySpec(strategy, {}), n_trials=n, seed=0
            )
            space, ev, _ = prepare_from_config(config, cfg, None)
            t0 = time.perf_counter()
            run_search(space, ev, cfg, run_dir=None, storage=None, study_name="bench", write=False)
            wall = time.perf_counter() - t0
            per = timers[-1].per_trial
            first = per.get(0, 0.0)
            rest = [v for k, v in sorted(per.items()) if k > 0]
            rows.append({
                "strategy": strategy, "trials": len(per), "first_trial_ms": 1000 * first,
                "mean_ms_per_trial": 1000 * sum(rest) / max(1, len(rest)),
                "last_10_ms": 1000 * sum(rest[-10:]) / max(1, len(rest[-10:])),
                "wall_s": wall,
            })  # fmt: skip
            print(json.dumps(rows[-1]), flush=True)
    print(
        "| strategy | trials | first trial ms | mean ms/trial (after the first) | mean ms/trial, last 10 (after the first) |"
    )
    print("|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['strategy']} | {r['trials']} | {r['first_trial_ms']:.1f} | {r['mean_ms_per_trial']:.2f} | {r['last_10_ms']:.2f} |"
        )


if __name__ == "__main__":
    main()
