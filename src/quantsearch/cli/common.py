"""Options and helpers shared by several subcommands."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from quantsearch.errors import ConfigError
from quantsearch.examples import default_config_path
from quantsearch.paths import check_in_the_way, output_file, writable_dir
from quantsearch.validate import (
    COUNT_MAX,
    SEED_MAX,
    THREADS_MAX,
    TIMEOUT_MAX,
    check_device,
    study_name,
)

# Seeds reach numpy, scikit-learn and Optuna, which take 0 <= seed < 2**32.
SEED = click.IntRange(0, SEED_MAX)
# Counts of trials, evaluations, seeds: validate.COUNT_MAX, as in the config.
COUNT = click.IntRange(1, COUNT_MAX)
# Threads (--n-jobs) or processes (--workers) started at once: validate.THREADS_MAX.
THREADS = click.IntRange(1, THREADS_MAX)


class FiniteFloat(click.ParamType[float]):
    """A finite number that ``allowed`` admits, ``text`` saying which (click's FloatRange
    lets NaN and inf through).

    Example:
        >>> FiniteFloat(lambda v: v > 0, "a finite number > 0").convert("2.5", None, None)
        2.5
    """

    name = "float"

    def __init__(self, allowed: Callable[[float], bool], text: str) -> None:
        self.allowed, self.text = allowed, text

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        try:
            number = float(value)
        except (TypeError, ValueError):
            self.fail(f"got {value!r}, allowed: {self.text}", param, ctx)
        if not (math.isfinite(number) and self.allowed(number)):
            self.fail(f"got {value!r}, allowed: {self.text}", param, ctx)
        return number


# Seconds of a search (--timeout): validate.TIMEOUT_MAX, as search.timeout.
TIMEOUT = FiniteFloat(
    lambda v: 0 < v <= TIMEOUT_MAX, f"seconds > 0, at most {TIMEOUT_MAX} (a year)"
)
PERCENTILE = FiniteFloat(lambda v: 0 < v <= 100, "a number in (0, 100]")


def nonempty(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Callback: an option given as ``""`` is an error, not the default."""
    if value is not None and not value.strip():
        raise click.BadParameter(f"got {value!r}, allowed: a non-empty value", ctx, param)
    return value


def folder_value(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Callback for an output folder (``--out``, ``--run-dir``): not empty, and a folder this
    process may write in (or make), checked before any work."""
    if value is None:
        return None
    nonempty(ctx, param, value)
    return str(writable_dir(Path(value), max(param.opts, key=len)))


def file_value(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Callback for an output file: a file name in a folder this process may write in."""
    if value is None:
        return None
    name = max(param.opts, key=len) if param.opts else (param.human_readable_name or "OUT")
    return str(output_file(value, name))


def device_value(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """Callback for ``--device``: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``."""
    return check_device(value, "--device")


def study_option_value(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Callback for ``--study``: a name, never a path."""
    return None if value is None else study_name(value, "--study")


config_option = click.option(
    "--config",
    "-c",
    "config_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="TOML config file (default: the embedded digits example).",
)
load_option = click.option(
    "--load",
    "load",
    type=click.Path(dir_okay=False),
    default=None,
    help="Checkpoint written by `quantsearch train`.",
)


def trial_options(f: Any) -> Any:
    """``--from-run DIR`` and which of its trials: ``--trial N``, ``--best`` or ``--pareto K``."""
    for option in reversed(
        [
            click.option(
                "--from-run",
                "from_run",
                type=click.Path(),
                default=None,
                callback=nonempty,
                help="A search's run directory: use the config of one of its trials.",
            ),
            click.option(
                "--trial", type=int, default=None, help="With --from-run: this trial number."
            ),
            click.option(
                "--best", is_flag=True, help="With --from-run: the best trial (weighted sum)."
            ),
            click.option(
                "--pareto",
                type=int,
                default=None,
                help="With --from-run: the K-th Pareto member (0 = first in pareto.json).",
            ),
        ]
    ):
        f = option(f)
    return f


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
# The choices are quantsearch.plots.FIGURE_FORMATS, written out: plots is not imported for --help.
figure_format_option = click.option(
    "--figure-format",
    "figure_format",
    type=click.Choice(["png", "svg", "pdf"], case_sensitive=False),
    default="svg",
    show_default=True,
    help="Report pictures: SVG (drawn without matplotlib, inline in the HTML), PNG (200 dpi, "
    "matplotlib), or PDF for papers (matplotlib; written beside PNGs, which the HTML shows).",
)


def load_config_or_default(path: str | None) -> Any:
    """The config at ``path``, or the packaged default example."""
    from quantsearch.config import load_config  # imports torch: deferred for `--help` start-up

    return load_config(default_config_path() if path is None else path)


def within(name: str, value: int | None, minimum: int, maximum: int, what: str = "") -> None:
    """Refuse ``value`` (an option's count) outside ``minimum`` to ``maximum`` in one line."""
    if value is not None and not minimum <= value <= maximum:
        raise ConfigError(f"{name}: got {value}, allowed: {minimum} to {maximum}{what}")


OUT_FILES = ("resolved_config.json", "metrics.json", "weights.npz", "weights.json")


def check_out_folder(out: Path, checkpoint: str, command: str, key: str = "--out") -> None:
    """Refuse an output folder where ``command`` (quantize, finetune) would replace a file it
    did not write, before any work: the folder may be new, hold none of its file names
    (``checkpoint`` and :data:`OUT_FILES`; other files are left alone), or be a previous
    output of it, whose ``checkpoint`` is a quantsearch checkpoint (then replaced), but not
    a run directory of search (``search.run_files.SEARCH_MARKERS``) or compare.

    Raises:
        ConfigError: ``<key>: got <folder>, which holds <name> ..., allowed: ...``, one line.
    """
    from quantsearch.checkpoint import load_checkpoint  # lazy: torch, which --help skips
    from quantsearch.search.run_files import SEARCH_MARKERS

    # a search's or comparison's folder: its files were mixed with the output's (run dirs)
    run = [f for f in (*SEARCH_MARKERS, "comparison.json") if (out / f).exists()]
    if run:
        raise ConfigError(
            f"{key}: got {str(out)!r}, a run directory of search or compare (it holds "
            f"{run[0]}), allowed: a folder of the {command} output's own"
        )
    names = (checkpoint, *OUT_FILES)
    # a folder where one of them goes: refused before the work, not after the first writes
    check_in_the_way(out, key, names, writer=f"`quantsearch {command}`")
    present = [n for n in names if (out / n).exists() or (out / n).is_symlink()]
    if not present:
        return
    try:
        load_checkpoint(out / checkpoint, key=key)
        return  # a previous output: its files are replaced
    except ConfigError:
        pass
    raise ConfigError(
        f"{key}: got {str(out)!r}, which holds {present[0]} no `quantsearch {command}` wrote (no "
        f"quantsearch checkpoint {checkpoint} beside it), allowed: a new folder, one without "
        f"{', '.join(names)}, or a previous {command} output (whose files are replaced)"
    )
