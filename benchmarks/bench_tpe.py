"""TPE's proposal cost: Optuna's TPESampler against quantsearch's IncrementalTPESampler.

Run from the repository root::

    python benchmarks/bench_tpe.py                  # all parts, Markdown tables
    python benchmarks/bench_tpe.py --only sampler   # some parts (repeatable)

Parts:

1. ``sampler``: two in-memory studies shaped like a per-layer cnn-digits space (8 knobs of 8
   formats; labels as the ``tpe`` strategy offers them, and the ordinal indices), driven in
   lockstep with the same seed and the same seeded objective values: Optuna's
   ``TPESampler(seed=0)`` and ours. Around trial 10, 100 and 1,000 the next proposals of each
   are timed (``ask`` and the 8 suggestions), interleaved; every proposal of the two is
   compared (the run stops if one differs).
2. ``parts``: where Optuna's proposal at 1,000 finished trials goes, its steps timed one by one
   on that study (read the trials, split them, encode each trial's parameters, build the two
   Parzen estimators, draw the candidates, score them), and ours beside it.
3. ``search``: a whole cnn-digits search of 1,000 trials (the bookkeeping space of
   ``bench_search.py``, journal default) with each sampler (Optuna's is what the ``tpe``
   strategy builds when given an option, here its default ``n_startup_trials = 10``): per
   trial around trial 10, 100 and 1,000, the trial's time and the time inside the sampler.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, IntDistribution
from optuna.samplers import BaseSampler, TPESampler
from optuna.samplers._tpe import sampler as tpe_impl
from optuna.samplers._tpe.parzen_estimator import _ParzenEstimator
from optuna.trial import TrialState

from quantsearch.search import optuna_compat
from quantsearch.search.strategies.tpe import IncrementalTPESampler

sys.path.insert(0, str(Path(__file__).parent))
from bench_search import OBJ, _trained, sampler_clock, table

KNOBS = [f"{layer}.{role}" for layer in ("conv1", "conv2", "conv3", "fc") for role in "wx"]
SPACES: dict[str, dict[str, BaseDistribution]] = {
    "categorical": {k: CategoricalDistribution([f"fmt{i}" for i in range(8)]) for k in KNOBS},
    "ordinal": {k: IntDistribution(0, 7) for k in KNOBS},
}
COUNTS = (10, 100, 1000)
TIMED = 15  # proposals timed at each count (the median is reported)


def _propose(study: optuna.Study, space: dict[str, BaseDistribution]) -> tuple[Any, dict, float]:
    t0 = time.perf_counter()
    trial = study.ask()
    params = {name: trial._suggest(name, d) for name, d in space.items()}
    return trial, params, time.perf_counter() - t0


def _lockstep(encoding: str, until: int, at: Callable[[int, optuna.Study], None] | None = None):
    """Optuna's and our TPE in lockstep up to ``until`` trials; ms per proposal near COUNTS."""
    space = SPACES[encoding]
    samplers: dict[str, BaseSampler] = {
        "optuna": TPESampler(seed=0),
        "ours": IncrementalTPESampler(seed=0),
    }
    studies = {k: optuna.create_study(direction="maximize", sampler=s) for k, s in samplers.items()}
    rng = np.random.default_rng(0)
    spent: dict[tuple[str, int], list[float]] = {}
    for n in range(until):
        order = list(studies) if n % 2 else list(studies)[::-1]  # interleaved
        asked = {k: _propose(studies[k], space) for k in order}
        if asked["optuna"][1] != asked["ours"][1]:
            raise SystemExit(f"{encoding}, trial {n}: the proposals differ")
        value = float(np.round(rng.random(), 2))
        for k, (trial, _, seconds) in asked.items():
            studies[k].tell(trial, value)
            for c in COUNTS:
                if c <= n < c + TIMED:
                    spent.setdefault((k, c), []).append(seconds * 1000)
        if at is not None and n + 1 == until:
            at(n + 1, studies["optuna"])
    return spent


def bench_sampler(counts: tuple[int, ...]) -> list[dict[str, Any]]:
    rows = []
    for encoding in SPACES:
        spent = _lockstep(encoding, max(counts) + TIMED)
        for c in counts:
            o, u = (statistics.median(spent[k, c]) for k in ("optuna", "ours"))
            rows.append(
                {
                    "knobs": f"8 x 8, {encoding}",
                    "at_trial": c,
                    "optuna_ms": o,
                    "ours_ms": u,
                    "optuna / ours": o / u,
                    "same proposals": "yes",
                }
            )
    return rows


def _timeit(fn: Callable[[], Any], n: int = 20) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n * 1000


def bench_parts(n_trials: int) -> list[dict[str, Any]]:
    """Optuna's ``TPESampler._sample`` step by step, at ``n_trials`` finished trials."""
    rows: list[dict[str, Any]] = []

    def measure(_: int, study: optuna.Study) -> None:
        space = SPACES["categorical"]
        sampler = TPESampler(seed=0)
        states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
        trials = optuna_compat.fresh_trials(study, states)
        below, above = tpe_impl._split_trials(study, trials, tpe_impl.default_gamma(len(trials)))
        params = sampler._parzen_estimator_parameters
        obs = [sampler._get_internal_repr(t, space, study) for t in (below, above)]
        mpe = [_ParzenEstimator(o, space, params) for o in obs]
        samples = mpe[0].sample(np.random.RandomState(0), 24)
        ours = IncrementalTPESampler(seed=0)
        running = study.ask()
        ours._sample(study, running._cached_frozen_trial, space)  # encodes the history once
        steps = {
            "read the trials (storage)": lambda: optuna_compat.fresh_trials(study, states),
            "split below/above (constraints, sort)": lambda: tpe_impl._split_trials(
                study, trials, 25
            ),
            "encode every trial's parameters": lambda: [
                sampler._get_internal_repr(t, space, study) for t in (below, above)
            ],
            "build the two Parzen estimators": lambda: [
                _ParzenEstimator(o, space, params) for o in obs
            ],
            "draw 24 candidates": lambda: mpe[0].sample(np.random.RandomState(0), 24),
            "score them (two log-pdfs)": lambda: [m.log_pdf(samples) for m in mpe],
            "whole proposal, Optuna": lambda: TPESampler._sample(
                sampler, study, running._cached_frozen_trial, space
            ),
            "whole proposal, ours": lambda: ours._sample(
                study, running._cached_frozen_trial, space
            ),
        }
        for name, fn in steps.items():
            rows.append({"step (1,000 trials, 8 x 8 categorical)": name, "ms": _timeit(fn)})

    _lockstep("categorical", n_trials, at=measure)
    return rows


def bench_search(counts: tuple[int, ...]) -> list[dict[str, Any]]:
    from quantsearch.search.api import search

    model, data = _trained("cnn-digits")
    pairs = [[w, f] for w in (16, 8, 6, 4) for f in (w // 2, w // 4)]
    space = {
        "by": "name",
        "choices": {
            n: {"data_in": pairs, "weight": pairs} for n in ("conv1", "conv2", "conv3", "fc")
        },
    }
    runs = {
        "Optuna TPESampler": {"name": "tpe", "options": {"n_startup_trials": 10}},
        "IncrementalTPESampler": "tpe",
    }
    rows = []
    for label, strategy in runs.items():
        spent: dict[int, float] = {}
        with tempfile.TemporaryDirectory() as d, sampler_clock(spent):
            res = search(
                model, data.val, space=space, objectives=OBJ, strategy=strategy,
                n_trials=max(counts), run_dir=Path(d), metrics=["accuracy", "loss"], seed=0,
            )  # fmt: skip
            assert res.study is not None
            trials = sorted(res.study.get_trials(deepcopy=False), key=lambda t: t.number)
        for n in counts:
            window = trials[max(1, n - max(2, n // 10)) : n]
            total, smp = [], []
            for t in window:
                prev, done = trials[t.number - 1].datetime_complete, t.datetime_complete
                assert prev is not None and done is not None
                total.append((done - prev).total_seconds() * 1000)
                smp.append(spent.get(t.number, 0.0) * 1000)
            tot, s = statistics.median(total), statistics.median(smp)
            rows.append(
                {
                    "sampler": label,
                    "at_trial": n,
                    "trial_ms": tot,
                    "sampler_ms": s,
                    "sampler share": s / tot,
                }
            )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parts = ("sampler", "parts", "search")
    ap.add_argument("--only", choices=parts, action="append", help="these parts (repeatable)")
    args = ap.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    import torch

    torch.set_num_threads(1)
    run = {
        "sampler": lambda: bench_sampler(COUNTS),
        "parts": lambda: bench_parts(1000),
        "search": lambda: bench_search(COUNTS),
    }
    print(
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, optuna {optuna.__version__},"
        f" 1-min load {os.getloadavg()[0]:.2f}"
    )
    for part in parts:
        if not args.only or part in args.only:
            print(f"\n### {part}\n")
            print(table(run[part]()))
    print(f"\n1-min load at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
