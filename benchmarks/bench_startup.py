"""Whole commands from the shell: wall time and peak memory, paired with ``import torch``.

Run from the repository root (the embedded default config reads ``runs/mlp-digits.pt``)::

    python benchmarks/bench_startup.py            # 5 rounds
    python benchmarks/bench_startup.py --rounds 3 --json

Each round runs, one after the other, in fresh processes: ``python -c "import torch"``,
``quantsearch search -q`` on the embedded default (mlp-digits, MASE lab 3's 16-point space,
report written) into a new run directory, ``quantsearch report`` of that directory (nothing to
draw: its figures are drawn), ``quantsearch report`` of a copy without images (every figure
drawn), and ``quantsearch report`` of a comparison made once before the rounds
(``quantsearch compare --seeds 2``, then reported once). Wall time is measured around the
process; peak memory is the child's maximum resident set (``wait4``'s ``ru_maxrss``). Rounds
interleave the commands, so a loaded machine slows all of them alike; reported: medians, and
per round the search's wall time minus and over the ``import torch`` just before it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
QS = str(BIN / "quantsearch")


def timed(cmd: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of ``cmd`` run to completion."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    err = proc.stderr.read().decode() if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{err}")
    return wall, usage.ru_maxrss / 1024


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_startup_"))
    try:
        subprocess.run(
            [QS, "compare", "--seeds", "2", "--run-dir", str(work), "--name", "cmp"],
            check=True,
            capture_output=True,
        )
        compare_dir = work / "cmp"
        rows: dict[str, list[tuple[float, float]]] = {}
        for r in range(args.rounds):
            run_dir = work / f"s{r}"
            cmds = {
                "python -c 'import torch'": [sys.executable, "-c", "import torch"],
                "quantsearch search -q (16 trials, report)": [
                    QS,
                    "search",
                    "-q",
                    "--study",
                    "lab16",
                    "--run-dir",
                    str(run_dir),
                ],
                "quantsearch report (search, drawn)": [QS, "report", str(run_dir / "lab16")],
                "quantsearch report (search, first)": [QS, "report", str(work / f"c{r}")],
                "quantsearch report (comparison, drawn)": [QS, "report", str(compare_dir)],
                "quantsearch --help": [QS, "--help"],
            }
            for name, cmd in cmds.items():
                if name.endswith("(search, first)"):  # a copy of the search, nothing drawn
                    shutil.copytree(run_dir / "lab16", work / f"c{r}")
                    shutil.rmtree(work / f"c{r}" / "images")
                    for f in ("report.html", "report.md"):
                        (work / f"c{r}" / f).unlink()
                rows.setdefault(name, []).append(timed(cmd))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    torch_walls = [w for w, _ in rows["python -c 'import torch'"]]
    search_walls = [w for w, _ in rows["quantsearch search -q (16 trials, report)"]]
    out = {
        name: {
            "wall_s_median": statistics.median(w for w, _ in v),
            "wall_s": [round(w, 3) for w, _ in v],
            "peak_mib_median": statistics.median(m for _, m in v),
        }
        for name, v in rows.items()
    }
    pairs = {
        "search_minus_import_torch_s": [
            s - t for s, t in zip(search_walls, torch_walls, strict=True)
        ],
        "search_over_import_torch": [s / t for s, t in zip(search_walls, torch_walls, strict=True)],
    }
    if args.json:
        print(json.dumps({"commands": out, "pairs": pairs}, indent=2))
        return 0
    print("| command | wall s (median) | peak MiB (median) | wall s, each round |")
    print("|---|---|---|---|")
    for name, o in out.items():
        each = ", ".join(f"{w:.2f}" for w in o["wall_s"])  # type: ignore[attr-defined]
        print(f"| `{name}` | {o['wall_s_median']:.2f} | {o['peak_mib_median']:.0f} | {each} |")
    diffs = ", ".join(f"{d:+.2f}" for d in pairs["search_minus_import_torch_s"])
    ratios = ", ".join(f"{q:.2f}" for q in pairs["search_over_import_torch"])
    print(f"\nsearch - import torch, per round (s): {diffs}")
    print(f"search / import torch, per round: {ratios}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
