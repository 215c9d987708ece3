"""Whole commands from the shell: wall time and peak memory, paired with ``import torch``.

Run from the repository root (the embedded default config reads ``runs/mlp-digits.pt``)::

    python benchmarks/bench_startup.py            # 5 rounds
    python benchmarks/bench_startup.py --rounds 3 --json
    python benchmarks/bench_startup.py --searches --before /tmp/old/src   # A/B of two checkouts

Each round runs, one after the other, in fresh processes: ``python -c "import torch"``;
``quantsearch search -q`` on the embedded default (mlp-digits, MASE lab 3's 16-point space,
report written) into a new run directory; ``quantsearch search -q --config jsc_tiny.toml``
(MASE lab 3 itself: jsc-tiny, the 16 ``data_in``/``weight`` widths of its linear layer, brute
force, 512 validation samples a trial, report written: the shipped example, run beside a
generated 20,000-row JSC-like file in MASE's HDF5 layout, or OpenML's CSV without h5py, and a
seeded jsc-tiny checkpoint, made once before the rounds), with the split cache warm (filled by
one untimed run before the rounds) and with it off (``QUANTSEARCH_CACHE_DIR=""``: the file read
and split every time); with ``--before SRC``, each search again with ``PYTHONPATH=SRC``;
then, unless ``--searches``, ``quantsearch report`` of the search's directory (nothing to
draw: its figures are drawn), ``quantsearch report`` of a copy without images (every figure
drawn), ``quantsearch report`` of a comparison made once before the rounds (``quantsearch
compare --seeds 2``, then reported once) and ``quantsearch --help``.
Wall time is measured around the process; peak memory is the child's maximum resident set
(``wait4``'s ``ru_maxrss``). Rounds interleave the commands, so a loaded machine slows all of
them alike; reported: medians, per round each search's wall time minus and over the ``import
torch`` of the same round, and the 1-minute load at the start of each round.
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
from typing import Any

BIN = Path(sys.executable).parent
QS = str(BIN / "quantsearch")
TORCH = "python -c 'import torch'"
LAB = "quantsearch search -q --config jsc_tiny.toml (lab 3, 16 trials, report)"
LAB_COLD = f"{LAB}, split cache off"
MLP = "quantsearch search -q (16 trials, report)"
COLD = {"QUANTSEARCH_CACHE_DIR": ""}  # the JSC file read and split every time
JSC_ROWS = 20_000  # the size of examples/jsc_tiny.toml's own convergence check


def make_lab(work: Path) -> Path:
    """The shipped lab-3 config beside a JSC-like file and a jsc-tiny checkpoint; its path.

    The file: 16 Gaussian features with class-dependent means through a fixed mixing matrix,
    5 classes (as tests/examples/test_jsc_tiny.py makes it), in MASE's HDF5 layout under the
    name the config gives, or as OpenML's CSV when h5py (the ``jsc`` extra) is missing.
    """
    import numpy as np
    import torch

    from quantsearch.checkpoint import save_checkpoint
    from quantsearch.data.jsc import CLASS_NAMES, FEATURES, HDF5_KEY, LABELS
    from quantsearch.examples import example_path
    from quantsearch.models import build_model

    rng = np.random.default_rng(0)
    y = rng.integers(0, 5, JSC_ROWS)
    means = np.random.default_rng(123).normal(size=(5, 16)) * 0.5
    mix = np.random.default_rng(7).normal(size=(16, 16)) / 4 + np.eye(16)
    x = (rng.normal(size=(JSC_ROWS, 16)) + means[y]) @ mix
    text = example_path("jsc_tiny.toml").read_text(encoding="utf-8")
    name = text.split('path = "', 1)[1].split('"', 1)[0]
    try:
        import h5py
    except ImportError:
        header = ",".join([*(c.removeprefix("j_") for c in FEATURES), "class"])
        rows = [
            ",".join([*map(repr, map(float, r)), CLASS_NAMES[k]]) for r, k in zip(x, y, strict=True)
        ]
        (work / "jets.csv").write_text("\n".join([header, *rows]) + "\n")
        text = text.replace(f'path = "{name}"', 'path = "jets.csv"')
    else:
        table = np.zeros(
            JSC_ROWS, dtype=[(c, "<f8") for c in FEATURES] + [(c, "<i4") for c in LABELS]
        )
        for i, c in enumerate(FEATURES):
            table[c] = x[:, i]
        for i, c in enumerate(LABELS):
            table[c] = y == i
        with h5py.File(work / name, "w") as f:
            f.create_dataset(HDF5_KEY, data=table)
    torch.manual_seed(0)
    model = build_model("jsc-tiny").eval()
    save_checkpoint(work / "runs" / "jsc-tiny.pt", model, model_name="jsc-tiny", dataset="jsc")
    config = work / "jsc_tiny.toml"
    config.write_text(text, encoding="utf-8")
    return config


def timed(
    cmd: list[str], cwd: Path | None = None, env: dict[str, str] | None = None
) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of ``cmd`` run to completion (in ``cwd``, with ``env``
    added to this process's environment)."""
    environ = {**os.environ, **(env or {})}
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=cwd, env=environ
    )
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    err = proc.stderr.read().decode() if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{err}")
    return wall, usage.ru_maxrss / 1024


# One process: import torch, then the modules `quantsearch search` imports, then the command.
PHASES = """
import json, sys, time
t0 = time.perf_counter()
import torch
t1 = time.perf_counter()
import quantsearch.cli, quantsearch.report, quantsearch.search.api
t2 = time.perf_counter()
quantsearch.cli.main(sys.argv[1:])
t3 = time.perf_counter()
print(json.dumps({"import torch": t1 - t0, "other imports": t2 - t1, "command": t3 - t2}))
"""


def phases(args: argparse.Namespace, work: Path, lab: list[str], warm: dict[str, str]) -> int:
    """``--phases``: the lab search's seconds in ``import torch``, the other imports and the
    command itself, in one process each, split cache warm and off, interleaved with
    ``--before``'s; medians."""
    runs: dict[str, list[dict[str, float]]] = {}
    for r in range(args.rounds):
        variants: dict[str, dict[str, str]] = {"now": warm, "now, split cache off": COLD}
        if args.before:
            old = {"PYTHONPATH": str(Path(args.before).resolve())}
            variants["before"] = {**warm, **old}
            variants["before, split cache off"] = {**COLD, **old}
        for i, (name, env) in enumerate(variants.items()):
            argv = [*lab[1:], str(work / f"p{r}-{i}")]
            out = subprocess.run(
                [sys.executable, "-c", PHASES, *argv],
                cwd=work,
                env={**os.environ, **env},
                capture_output=True,
                text=True,
                check=True,
            )
            runs.setdefault(name, []).append(json.loads(out.stdout.splitlines()[-1]))
    print("| lab search, one process | import torch s | other imports s | command s |")
    print("|---|---|---|---|")
    for name, got in runs.items():
        med = {k: statistics.median(g[k] for g in got) for k in got[0]}
        cells = " | ".join(f"{med[k]:.2f}" for k in ("import torch", "other imports", "command"))
        print(f"| {name} (median of {len(got)}) | {cells} |")
    print(f"\n1-minute load at the end: {os.getloadavg()[0]:.1f}")
    return 0


# One process: import torch (untimed), then load the lab's JSC file with the split cache off.
PREPARE = """
import json, resource, sys, time
import torch
t0 = time.perf_counter()
from quantsearch.data import load_dataset
t1 = time.perf_counter()
load_dataset("jsc", options={"path": sys.argv[1]})
t2 = time.perf_counter()
heavy = sorted({"pandas", "sklearn", "scipy"} & {m.split(".")[0] for m in sys.modules})
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"import data": t1 - t0, "load jsc": t2 - t1, "peak": peak, "heavy": heavy}))
"""


def prepare(args: argparse.Namespace, work: Path) -> int:
    """``--prepare``: a new JSC file's preparation (the lab's file, split cache off) after
    ``import torch``, in one process each, interleaved with ``--before``'s; medians."""
    text = (work / "jsc_tiny.toml").read_text(encoding="utf-8")
    path = str(work / text.split('path = "', 1)[1].split('"', 1)[0])
    runs: dict[str, list[dict[str, Any]]] = {}
    variants: dict[str, dict[str, str]] = {"now": {}}
    if args.before:
        variants["before"] = {"PYTHONPATH": str(Path(args.before).resolve())}
    for _ in range(args.rounds):
        for name, env in variants.items():
            out = subprocess.run(
                [sys.executable, "-c", PREPARE, path],
                env={**os.environ, "QUANTSEARCH_CACHE_DIR": "", **env},
                capture_output=True,
                text=True,
                check=True,
            )
            runs.setdefault(name, []).append(json.loads(out.stdout.splitlines()[-1]))
    print("| new JSC file, after import torch | import data s | load jsc s | peak MiB | imported |")
    print("|---|---|---|---|---|")
    for name, got in runs.items():
        med = [statistics.median(float(g[k]) for g in got) for k in ("import data", "load jsc")]
        peak = statistics.median(float(g["peak"]) for g in got)
        each = ", ".join(f"{float(g['load jsc']):.2f}" for g in got)
        heavy = ", ".join(got[0]["heavy"]) or "none"
        print(
            f"| {name} (median of {len(got)}; load: {each}) | {med[0]:.2f} | {med[1]:.2f} | "
            f"{peak:.0f} | {heavy} |"
        )
    print(f"\n1-minute load at the end: {os.getloadavg()[0]:.1f}")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--searches", action="store_true", help="only `import torch` and the searches")
    ap.add_argument(
        "--before",
        metavar="SRC",
        help="also run each search with PYTHONPATH=SRC (another checkout's src folder, e.g. "
        "from `git archive`), interleaved in the same rounds: a before/after ratio",
    )
    ap.add_argument(
        "--prepare",
        action="store_true",
        help="only the preparation of a new JSC file (split cache off) after import torch",
    )
    ap.add_argument("--make-lab", metavar="DIR", help=argparse.SUPPRESS)
    ap.add_argument(
        "--phases",
        action="store_true",
        help="only the lab search, split into import torch, other imports and the command",
    )
    args = ap.parse_args()
    if args.make_lab:
        make_lab(Path(args.make_lab))
        return 0
    work = Path(tempfile.mkdtemp(prefix="bench_startup_"))
    warm = {"QUANTSEARCH_CACHE_DIR": str(work / "cache")}
    cold = COLD
    try:
        if not (args.searches or args.phases or args.prepare):
            subprocess.run(
                [QS, "compare", "--seeds", "2", "--run-dir", str(work), "--name", "cmp"],
                check=True,
                capture_output=True,
            )
        compare_dir = work / "cmp"
        # In a child: this process stays small (no torch), since ru_maxrss of a forked child
        # counts the parent's pages it shared before exec, which would floor every peak.
        subprocess.run([sys.executable, __file__, "--make-lab", str(work)], check=True)
        if args.prepare:
            return prepare(args, work)
        lab_config = work / "jsc_tiny.toml"
        lab = [QS, "search", "-q", "--config", str(lab_config), "--run-dir"]
        timed([*lab, str(work / "warm-up")], cwd=work, env=warm)  # fills the split cache
        if args.phases:
            return phases(args, work, lab, warm)
        rows: dict[str, list[tuple[float, float]]] = {}
        loads = []
        for r in range(args.rounds):
            loads.append(os.getloadavg()[0])
            run_dir = work / f"s{r}"
            mlp = [QS, "search", "-q", "--study", "lab16", "--run-dir"]
            cmds: dict[str, tuple[list[str], Path | None, dict[str, str]]] = {
                TORCH: ([sys.executable, "-c", "import torch"], None, {}),
                MLP: ([*mlp, str(run_dir)], None, {}),
                LAB: ([*lab, str(run_dir)], work, warm),
                LAB_COLD: ([*lab, str(work / f"k{r}")], work, cold),
            }
            if args.before:
                old = {"PYTHONPATH": str(Path(args.before).resolve())}
                cmds[f"{MLP}, before"] = ([*mlp, str(work / f"bm{r}")], None, old)
                cmds[f"{LAB}, before"] = ([*lab, str(work / f"bl{r}")], work, {**warm, **old})
                cmds[f"{LAB_COLD}, before"] = ([*lab, str(work / f"bk{r}")], work, {**cold, **old})
            if not args.searches:
                cmds |= {
                    "quantsearch report (search, drawn)": (
                        [QS, "report", str(run_dir / "lab16")], None, {}
                    ),
                    "quantsearch report (search, first)": (
                        [QS, "report", str(work / f"c{r}")], None, {}
                    ),
                    "quantsearch report (comparison, drawn)": (
                        [QS, "report", str(compare_dir)], None, {}
                    ),
                    "quantsearch --help": ([QS, "--help"], None, {}),
                }  # fmt: skip
            for name, (cmd, cwd, env) in cmds.items():
                if name.endswith("(search, first)"):  # a copy of the search, nothing drawn
                    shutil.copytree(run_dir / "lab16", work / f"c{r}")
                    shutil.rmtree(work / f"c{r}" / "images")
                    for f in ("report.html", "report.md"):
                        (work / f"c{r}" / f).unlink()
                rows.setdefault(name, []).append(timed(cmd, cwd=cwd, env=env))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    torch_walls = [w for w, _ in rows[TORCH]]
    out = {
        name: {
            "wall_s_median": statistics.median(w for w, _ in v),
            "wall_s": [round(w, 3) for w, _ in v],
            "peak_mib_median": statistics.median(m for _, m in v),
        }
        for name, v in rows.items()
    }
    pairs = {
        name: {
            "minus_import_torch_s": [
                round(w - t, 3) for (w, _), t in zip(v, torch_walls, strict=True)
            ],
            "over_import_torch": [
                round(w / t, 3) for (w, _), t in zip(v, torch_walls, strict=True)
            ],
        }
        for name, v in rows.items()
        if name.startswith("quantsearch search")
    }
    if args.json:
        print(json.dumps({"commands": out, "pairs": pairs, "load_1min": loads}, indent=2))
        return 0
    print("| command | wall s (median) | peak MiB (median) | wall s, each round |")
    print("|---|---|---|---|")
    for name, o in out.items():
        each = ", ".join(f"{w:.2f}" for w in o["wall_s"])  # type: ignore[attr-defined]
        print(f"| `{name}` | {o['wall_s_median']:.2f} | {o['peak_mib_median']:.0f} | {each} |")
    print("\n| search | minus `import torch`, s, each round | over `import torch`, each round |")
    print("|---|---|---|")
    for name, q in pairs.items():
        diffs = ", ".join(f"{d:+.2f}" for d in q["minus_import_torch_s"])
        ratios = ", ".join(f"{x:.2f}" for x in q["over_import_torch"])
        print(f"| `{name}` | {diffs} | {ratios} |")
    print("\n1-minute load at the start of each round: " + ", ".join(f"{x:.1f}" for x in loads))
    return 0


if __name__ == "__main__":
    sys.exit(main())
