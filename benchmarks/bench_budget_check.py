"""The evaluation budget's check (``TrialObjective.evaluations_spent``), run before every trial of
an ``n_evaluations`` search: the count kept as trials come against reading every finished trial
into a ``TrialInfo`` at every check (the code before), on one study.

Run from the repository root::

    python benchmarks/bench_budget_check.py              # up to 10,000 trials
    python benchmarks/bench_budget_check.py --trials 2000

The study (in memory, Optuna's own) receives trials shaped like a search's on mlp-digits (the
user attributes a trial records: config hash, resolved config, metrics), one at a time, a fifth
of them repeats (cache hits); before each, the check runs, as the trial loop runs it. Around
trial 10, 100, 1,000 and 10,000 both checks are timed on the same study, interleaved (median of
the last tenth of trials, 5 to 50; which goes first alternates), and their answers compared
(the run stops if they differ). Both checks read Optuna's list of finished trials (rebuilt after
each stored trial, and filtered: O(trials)), timed alone in the last column (a private cache
reset, as Optuna's tell does); only the old one reads every trial into a TrialInfo.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import optuna
import torch
from optuna.trial import TrialState

from quantsearch.data import load_dataset
from quantsearch.graph import trace
from quantsearch.models import build_model
from quantsearch.search import optuna_compat
from quantsearch.search.cache import EvaluationCache
from quantsearch.search.config import parse_search_config
from quantsearch.search.prepare import prepare_search
from quantsearch.search.trial import TrialInfo, evaluations_charged
from quantsearch.search.trial_objective import TrialObjective

PAIRS = [[16, 8], [8, 6], [8, 4], [4, 2]]
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


def before(study: optuna.Study, distinct: bool) -> int:
    """The check before: every finished trial read into a TrialInfo at every check."""
    trials = [TrialInfo.from_trial(t) for t in optuna_compat.study_trials(study, FINISHED)]
    return evaluations_charged(trials, distinct=distinct)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=10_000)
    args = ap.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    torch.set_num_threads(1)
    data = load_dataset("digits")
    gm = trace(build_model("mlp-digits").eval(), data.val.x[:8])
    layers = ["seq_blocks_0", "seq_blocks_3", "seq_blocks_6"]
    raw = {
        "space": {
            "by": "name",
            "choices": {n: {"data_in": PAIRS, "weight": PAIRS} for n in layers},
        },
        "objectives": {"accuracy": {"direction": "maximize"}},
        "n_evaluations": args.trials,
    }
    cfg = parse_search_config(raw)
    space, evaluator = prepare_search(gm, cfg, data.val)
    objective = TrialObjective(evaluator, space, cfg, {}, EvaluationCache(), None)
    points = [space.point(i) for i in range(space.size)]
    configs = [evaluator.resolve(space.layer_formats(p)) for p in points[:64]]
    study = optuna.create_study(direction="maximize")
    marks = [n for n in (10, 100, 1_000, 10_000) if n <= args.trials]
    timed: dict[int, tuple[list[float], list[float]]] = {}
    lists: dict[int, list[float]] = {}  # Optuna's list of finished trials, rebuilt, alone
    print(f"{os.cpu_count()} CPUs, Python {platform.python_version()}, optuna {optuna.__version__}")
    print(f"1-minute load at start: {os.getloadavg()[0]:.2f}\n")
    for n in range(1, args.trials + 1):
        # the check the loop makes before trial n (after trial n - 1 was stored)
        window = next((m for m in marks if m - min(50, max(5, m // 10)) < n <= m), None)
        if window is not None:
            # alternating which goes first: the first reader rebuilds Optuna's trial list
            olds, news = timed.setdefault(window, ([], []))
            got = {}
            for old in (n % 2 == 0, n % 2 == 1):
                t0 = time.perf_counter()
                got[old] = before(study, cfg.cache) if old else objective.evaluations_spent(study)
                (olds if old else news).append(time.perf_counter() - t0)
            assert got[True] == got[False], (n, got)
            study._thread_local.cached_all_trials = None  # as after a trial is stored
            t0 = time.perf_counter()
            optuna_compat.study_trials(study, FINISHED)
            lists.setdefault(window, []).append(time.perf_counter() - t0)
        else:
            objective.evaluations_spent(study)
        rc = configs[n % len(configs)]
        repeat = n % 5 == 0
        info = TrialInfo(
            n - 1, "COMPLETE", config_hash=f"c{n // 5 if repeat else n}", cached=repeat,
            config=None if repeat else rc.to_dict(), metrics={"accuracy": 0.9, "loss": 0.3},
            eval_seconds=0.0 if repeat else 0.001, samples=0 if repeat else len(data.val),
        )  # fmt: skip
        trial = optuna.trial.create_trial(value=0.9, user_attrs=info.to_user_attrs())
        optuna_compat.add_trial(study, trial)  # as the batched path stores a trial
    print(
        "| finished trials | before: read all, ms a check | now: kept, ms a check | speed-up "
        "| Optuna's list of finished trials, rebuilt, ms |"
    )
    print("|---|---|---|---|---|")
    for m in marks:
        olds, news = timed[m]
        o, w = statistics.median(olds) * 1e3, statistics.median(news) * 1e3
        b = statistics.median(lists[m]) * 1e3
        print(f"| {m:,} | {o:.3f} | {w:.4f} | {o / w:.0f}x | {b:.4f} |")
    print(f"\n1-minute load at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
