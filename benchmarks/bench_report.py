"""Report speed: ``quantsearch report`` on the demo's two run directories, first and again.

Run from the repository root (a trained ``runs/mlp-digits.pt``, as ``quantsearch train --config
examples/mlp_digits_lab.toml`` writes it, is needed once to make the run directories)::

    python benchmarks/bench_report.py              # 5 rounds
    python benchmarks/bench_report.py --repeats 3  # fewer

The run directories are the demo's: the lab search (``quantsearch search --config
examples/mlp_digits_lab.toml``, 16 brute-force trials) and the comparison (``quantsearch compare``
with the same config: 4 strategies x 10 seeds x 48 trials), made once in a temporary folder.
Parts, all as whole commands the way the shell runs them (wall time and peak memory of the
process, from ``os.wait4``), the commands interleaved round by round so that a busy machine
slows them alike; medians over the rounds:

1. ``python -c "import torch"`` and ``python -c "import matplotlib..."`` (the Agg canvas and
   ``Figure``), for scale;
2. ``quantsearch report`` of each directory **first** (``images/`` removed: every picture
   drawn, every statistic computed) in the default format (SVG, drawn natively) and with
   ``--figure-format png`` (matplotlib), **again** (nothing changed: nothing drawn or computed),
   and again **without the statistics memo** (pictures kept, rank correlations and Wilcoxon
   p-values computed again: what a repeated report cost before the p-values were kept);
3. in one process: a first ``write_report`` (the report at the end of ``search`` and
   ``compare``, whose process has imported everything else already), building the report's
   data, and drawing each picture as native SVG
   (``quantsearch.report.svg``) and with matplotlib as PNG at 100 and at 200 dpi, SVG and PDF,
   interleaved.
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
from collections.abc import Callable
from pathlib import Path

CONFIG = "examples/mlp_digits_lab.toml"
CLI = [sys.executable, "-m", "quantsearch"]
MPL = "import matplotlib.figure, matplotlib.backends.backend_agg"


def whole(cmd: list[str]) -> tuple[float, float]:
    """Wall seconds and peak resident memory (MiB) of one command."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode() if proc.stderr else ""
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}): {err}")
    return wall, usage.ru_maxrss / 1024  # Linux: KiB


def make_runs(root: Path, checkpoint: str) -> tuple[Path, Path]:
    """The demo's search and comparison directories under ``root``."""
    common = ["--config", CONFIG, "--load", checkpoint, "--run-dir", str(root), "-q"]
    subprocess.run([*CLI, "search", *common, "--study", "lab"], check=True)
    subprocess.run([*CLI, "compare", *common, "--name", "lab-compare"], check=True)
    return root / "lab", root / "lab-compare"


def forget(images: Path, what: str) -> None:
    """Make the next report draw every picture (``pictures``) or recompute statistics."""
    if what == "pictures":
        shutil.rmtree(images, ignore_errors=True)
    elif what == "statistics":
        cache = images / ".report-cache.json"
        data = json.loads(cache.read_text())
        data["statistics"] = {}
        cache.write_text(json.dumps(data))


def commands(
    search_dir: Path, compare_dir: Path
) -> dict[str, tuple[list[str], Callable[[], None]]]:
    """Name -> (command, what to do before it)."""

    def nothing() -> None:
        return None

    def forgetting(img: Path, what: str) -> Callable[[], None]:
        return lambda: forget(img, what)

    out: dict[str, tuple[list[str], Callable[[], None]]] = {
        "python -c 'import torch'": ([sys.executable, "-c", "import torch"], nothing),
        "python -c 'import matplotlib (Agg, Figure)'": ([sys.executable, "-c", MPL], nothing),
    }
    for label, rd in (("search", search_dir), ("compare", compare_dir)):
        cmd = [*CLI, "report", str(rd)]
        img = rd / "images"
        png = [*cmd, "--figure-format", "png"]
        out[f"report {label}: first, --figure-format png"] = (png, forgetting(img, "pictures"))
        out[f"report {label}: first"] = (cmd, forgetting(img, "pictures"))  # SVG, the default
        out[f"report {label}: again"] = (cmd, nothing)
        out[f"report {label}: again, statistics not kept"] = (cmd, forgetting(img, "statistics"))
    return out


def breakdown(rd: Path, repeats: int) -> list[tuple[str, float]]:
    """Median ms to build the report's data, and to draw each picture per format."""
    from quantsearch import plots
    from quantsearch.report import build_report, svg, write_report

    plots.draw(build_report(rd).figures[0].data)  # matplotlib imported before timing
    build: list[float] = []
    first: list[float] = []
    draw: dict[str, list[float]] = {}
    out = Path(tempfile.mkdtemp())
    for _ in range(repeats):
        forget(rd / "images", "pictures")
        t = time.perf_counter()
        write_report(rd)  # what the end of `search` and `compare` adds to the command
        first.append(time.perf_counter() - t)
        t = time.perf_counter()
        report = build_report(rd)
        build.append(time.perf_counter() - t)
        for f in report.figures:
            t = time.perf_counter()
            (out / f"{f.name}.svg").write_text(svg.render_svg(f.data))
            draw.setdefault("svg, native (no matplotlib)", []).append(time.perf_counter() - t)
            for fmt, dpi in (("png", 100), ("png", 200), ("svg", 200), ("pdf", 200)):
                plots.DPI = dpi
                t = time.perf_counter()
                plots.render(f.data, out / f"{f.name}.{fmt}")
                draw.setdefault(
                    f"{fmt}@{dpi}" if fmt == "png" else f"{fmt}, matplotlib", []
                ).append(time.perf_counter() - t)
    plots.DPI = 200
    shutil.rmtree(out)
    n = len(report.figures)
    rows = [
        (
            "write_report, first (no images/), SVG: the end of search/compare",
            statistics.median(first),
        ),
        ("build the report's data (tables, figure data, findings)", statistics.median(build)),
    ]
    for key, times in draw.items():
        rows.append((f"draw all {n} pictures, {key}", statistics.median(times) * n))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--checkpoint", default="runs/mlp-digits.pt")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench_report-"))
    try:
        search_dir, compare_dir = make_runs(root, args.checkpoint)
        cmds = commands(search_dir, compare_dir)
        for cmd, before in cmds.values():  # warm-up: file caches, .pyc
            before()
            whole(cmd)
        walls: dict[str, list[float]] = {k: [] for k in cmds}
        peaks: dict[str, list[float]] = {k: [] for k in cmds}
        for _ in range(args.repeats):
            for name, (cmd, before) in cmds.items():
                before()
                wall, peak = whole(cmd)
                walls[name].append(wall)
                peaks[name].append(peak)
        torch_s = statistics.median(walls["python -c 'import torch'"])
        print(f"Whole commands, medians of {args.repeats} interleaved rounds (load average "
              f"{os.getloadavg()[0]:.1f}):\n")  # fmt: skip
        print("| command | wall s (min-max) | / import torch | peak MiB |")
        print("|---|---|---|---|")
        for name in cmds:
            w = walls[name]
            print(f"| {name} | {statistics.median(w):.2f} ({min(w):.2f}-{max(w):.2f}) | "
                  f"{statistics.median(w) / torch_s:.2f}x | "
                  f"{statistics.median(peaks[name]):.0f} |")  # fmt: skip
        print(f"\nIn one process, the comparison's report ({compare_dir.name}), medians:\n")
        print("| step | ms |")
        print("|---|---|")
        for step, seconds in breakdown(compare_dir, args.repeats):
            print(f"| {step} | {seconds * 1000:.0f} |")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
