"""``quantsearch init``: a commented starter config for the user's own model and data."""

from __future__ import annotations

import ast
import importlib.util
import os
import re
from pathlib import Path

import click

from quantsearch.atomic import create_atomic
from quantsearch.errors import ConfigError
from quantsearch.paths import check_path_text, not_a_file

STARTER = """\
# A quantization search of your own model on your own data (written by `quantsearch init`).
# Paths in "file.py:function" are relative to this file's folder. Next:
#   quantsearch train   --config {out}    # float weights, to model.checkpoint
#   quantsearch summary --config {out}    # the graph: op kinds, layer names, costs
#   quantsearch search  --config {out}    # the run directory: runs/{stem}/
seed = 0

[model]
name = "{model}"   # returns an nn.Module (a zoo name works too: `quantsearch summary`)
checkpoint = "runs/{stem}.pt"   # the float weights (relative to the working directory)

[data]
name = "{data}"   # returns a DataSplits, {{"train", "val", "test"}} pairs, or one (x, y)
# eval_samples = 512          # validation samples per trial (default: the whole split)
# calibration_samples = 256   # training samples for frac_width = "auto"

# Another task than classification (regression, anomaly scores, ...): your own metrics, then
# name them in [search.objectives] and [search.constraints] (mse and mae are built in).
# [metrics]
# evaluate = "task.py:evaluate"             # evaluate(model, batches) -> {{"name": value, ...}}
# directions = {{ max_abs_error = "minimize" }}

[search]
n_trials = 50                 # the trial budget (cache hits count as trials, not evaluations)

[search.strategy]
name = "tpe"                  # brute_force, random, tpe, nsga2, gp, ...

[search.space]
by = "type"                   # one choice per op kind; "name": one per layer

[search.space.choices.linear] # an op kind of your model (see `quantsearch summary`)
data_in = [[16, 8], [8, 4], [6, 3], [4, 2]]   # (width, frac_width) pairs in fixed point
weight = [[16, 8], [8, 4], [6, 3], [4, 2]]
bias = "same_as_weight"
# weight = {{ width = [4, 6, 8], frac_width = "auto" }}   # search widths, calibrate binary points

[search.objectives]
combine = "weighted_sum"      # or "pareto"
accuracy = {{ direction = "maximize", weight = 1.0 }}
model_size_bits = {{ direction = "minimize", weight = 0.2, relative_to_baseline = true }}

[search.constraints]
accuracy_drop = {{ max = 0.02 }}   # at most 2 points below the float model
"""


# written between double quotes into the TOML file: a quote, a backslash or a control
# character would end the string early or be read as an escape
_UNQUOTABLE = re.compile(r'["\\\x00-\x1f\x7f]')


def _spec(value: str, option: str, folder: Path) -> str:
    """``file.py:fn`` made relative to the config's folder; ``package.module:fn`` as given."""
    target, sep, fn = value.rpartition(":")
    if not sep or not target or not fn or _UNQUOTABLE.search(value):
        raise ConfigError(
            f"{option}: got {value!r}, allowed: file.py:function or package.module:function"
        )
    if not target.endswith(".py"):
        parts = target.split(".")
        # the top-level module only: finding it runs no code, a package's __init__ would
        if not all(p.isidentifier() for p in parts) or importlib.util.find_spec(parts[0]) is None:
            hint = ", and a file's path ends in .py" if Path(target).exists() else ""
            raise ConfigError(
                f"{option}: got {value!r}, allowed: file.py:function or an importable "
                f"package.module:function (no module {parts[0]!r} here{hint})"
            )
        return value
    if not Path(target).is_file():  # a folder or a FIFO "did not exist"
        odd = not_a_file(Path(target))
        raise ConfigError(
            f"{option}: got {value!r}, whose file {target!r} "
            f"{f'is {odd}' if odd else 'does not exist'}, allowed: file.py:function naming a file"
        )
    found = _top_level_names(Path(target), option)
    if found is not None and fn not in found[0]:  # read, not run: the code runs when it is used
        raise ConfigError(
            f"{option}: got {value!r}, allowed: a function {target!r} defines "
            f"({sorted(found[1]) or 'it defines none'})"
        )
    return f"{Path(os.path.relpath(Path(target).resolve(), folder)).as_posix()}:{fn}"


def _top_level_names(path: Path, option: str) -> tuple[set[str], set[str]] | None:
    """The names a Python file binds at its top level, found by parsing it (not running it),
    and those of them that can build a model or load data: its functions, classes and
    lambdas (an imported name may be a module, ``nn`` of ``from torch import nn``, or a
    function: it is taken as given, but not offered). ``None`` where parsing cannot tell: a
    ``from m import *`` or a top-level ``globals()`` (``globals()[f"build_{name}"] = ...``)
    binds names no parse sees."""
    try:
        tree = ast.parse(path.read_bytes(), filename=str(path))
    except (SyntaxError, ValueError, OSError) as exc:
        raise ConfigError(
            f"{option}: got {str(path)!r}, not readable Python ({exc}), allowed: a Python file"
        ) from None
    names: set[str] = set()
    usable: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
            usable.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            if any(a.name == "*" for a in node.names):
                return None
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        else:
            for sub in ast.walk(node):  # assignments, also under if/try at the top level
                if isinstance(sub, ast.Call) and getattr(sub.func, "id", None) == "globals":
                    return None
                if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Store):
                    names.add(sub.id)
                elif isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    names.add(sub.name)
                    usable.add(sub.name)
                elif isinstance(sub, ast.Assign) and isinstance(sub.value, ast.Lambda):
                    usable.update(t.id for t in sub.targets if isinstance(t, ast.Name))
    return names, usable


@click.command()
@click.option("--model", required=True, help="Your model: file.py:build (returns an nn.Module).")
@click.option("--data", required=True, help="Your data: file.py:load (returns the splits).")
@click.option(
    "-o", "--output", default="search.toml", show_default=True, help="The config to write."
)
def init(model: str, data: str, output: str) -> None:
    """Write a commented starter config for your own model and data (never overwrites)."""
    if not output.strip() or output == "-":  # Path('') is '.': the message said '' exists
        raise ConfigError(f"--output: got {output!r}, allowed: a file name")
    check_path_text(output, "--output")  # a newline in the name was written
    out = Path(output)
    if out.suffix.lower() != ".toml":  # -o x.json wrote TOML that --config x.json then refused
        raise ConfigError(
            f"--output: got {output!r}, allowed: a file name ending in .toml (the config is "
            "TOML, and --config reads only TOML)"
        )
    if out.exists():
        raise ConfigError(
            f"--output: got {output!r}, which exists, allowed: a new file (give another path or remove it)"
        )
    folder = out.resolve().parent
    text = STARTER.format(
        out=output,
        stem=out.stem,
        model=_spec(model, "--model", folder),
        data=_spec(data, "--data", folder),
    )
    # Whole or not at all, never over a file (one made meanwhile): a failed or killed write
    # left half a config, which the next init then refused as existing.
    try:
        create_atomic(out, text)
    except FileExistsError:
        raise ConfigError(
            f"--output: got {output!r}, which exists, allowed: a new file (give another path or remove it)"
        ) from None
    except OSError as exc:
        raise ConfigError(
            f"--output: got {output!r}, which cannot be written ({exc.strerror}), allowed: a path this user may write"
        ) from None
    click.echo(f"wrote {output}; next: quantsearch train --config {output}")
