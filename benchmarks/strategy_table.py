"""The README's strategy table from a comparison directory (``quantsearch compare`` output).

Per strategy: the median over seeds (and the IQR) of the simple regret after 25/50/100/200
trials, regret = the reference (comparison.json's optimum: the true optimum, or the best value
any run found) minus the best feasible objective among a run's first b trials; the share of
distinct configs a run tried that were infeasible; and the median number of distinct configs
a run tried in all its trials (a comparison shares one cache, so "cached" says nothing per run).

    python benchmarks/strategy_table.py DIR [--budgets 25,50,100,200]
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from statistics import median


def quartiles(xs: list[float]) -> tuple[float, float, float]:
    s = sorted(xs)

    def q(p: float) -> float:
        k = (len(s) - 1) * p
        lo, hi = math.floor(k), math.ceil(k)
        return s[lo] + (s[hi] - s[lo]) * (k - lo)

    return q(0.25), q(0.5), q(0.75)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--budgets", default="25,50,100,200")
    args = ap.parse_args()
    d = Path(args.dir)
    optimum = float(json.loads((d / "comparison.json").read_text())["optimum"])
    budgets = [int(b) for b in args.budgets.split(",")]
    runs: dict[str, list[dict]] = {}  # type: ignore[type-arg]
    for line in (d / "runs.jsonl").read_text().splitlines():
        r = json.loads(line)
        runs.setdefault(r["strategy"], []).append(r)
    print(f"reference (best value any run found, or the optimum): {optimum:.4f}")
    head = " | ".join(f"regret @{b}" for b in budgets)
    print(
        f"| strategy | seeds | {head} | infeasible configs | distinct configs in {budgets[-1]} trials |"
    )
    print("|---|---|" + "---|" * len(budgets) + "---|---|")
    for strategy, rs in runs.items():
        cells = []
        for b in budgets:
            regrets = []
            for r in rs:
                vals = [
                    t["values"][0] for t in r["trials"][:b] if t.get("feasible") and t.get("values")
                ]
                regrets.append(optimum - max(vals) if vals else math.inf)
            lo, mid, hi = quartiles(regrets)
            cells.append(f"{mid:.4f} ({lo:.4f}–{hi:.4f})")
        inf_share, n_eval = [], []
        for r in rs:
            distinct = {t["config_hash"]: t for t in r["trials"] if t.get("state") == "COMPLETE"}
            evaluated = list(distinct.values())  # each config once (the cache is shared by runs)
            n_eval.append(len(evaluated))
            inf_share.append(
                sum(t.get("feasible") is False for t in evaluated) / max(1, len(evaluated))
            )
        print(f"| {strategy} | {len(rs)} | " + " | ".join(cells)
              + f" | {100 * median(inf_share):.0f}% | {median(n_eval):.0f} |")  # fmt: skip


if __name__ == "__main__":
    main()
