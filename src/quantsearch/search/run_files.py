"""A search run directory's files, read and written: JSON documents, ``trials.jsonl``, CSV
tables, and the check that the files read together come from one write.

Each file is written atomically (:mod:`quantsearch.atomic`), but the set is not: a command
killed between two of them leaves files of two different writes side by side (a resumed
search's new ``trials.jsonl`` beside the previous ``best.json``), and a file may be damaged or
replaced after it was written. Whatever is read back is checked: a damaged file is a one-line
``RUN_DIR`` error naming it and what to do, never a traceback and never a silently short table.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from quantsearch.atomic import open_atomic, write_atomic
from quantsearch.errors import ConfigError
from quantsearch.search.trial import TrialInfo

__all__ = [
    "OTHER_MARKERS",
    "SEARCH_MARKERS",
    "check_baseline",
    "check_same_write",
    "check_summary",
    "damaged",
    "dump_json",
    "json_default",
    "read_json",
    "read_trials",
    "what_folder",
    "write_csv",
]

# Any of these makes a folder a search's run directory (its journal lost beside its results
# too): another command's output written there would be mixed with the study's.
SEARCH_MARKERS = ("trials.jsonl", "study.journal", "search_config.json")
# What only another command writes: a comparison's folder, then quantize's or finetune's output.
OTHER_MARKERS = ("comparison.json", "resolved_config.json", "quantized.pt")


# What a run directory's damaged file should be, and how to get it back.
_WROTE = (
    "allowed: the file quantsearch wrote there (run the same command again to write it, or "
    "restore the folder from a copy)"
)


def read_json(path: Path) -> Any:
    """A run directory's JSON file; a missing or broken file is a ``RUN_DIR`` config error."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"RUN_DIR: got {str(path.parent)!r}, which has no {path.name}, allowed: a folder "
            "that `quantsearch` wrote"
        ) from None
    except OSError as exc:
        raise ConfigError(
            f"RUN_DIR: got {str(path)!r}, unreadable ({exc.strerror}), {_WROTE}"
        ) from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise ConfigError(
            f"RUN_DIR: got {str(path)!r}, not valid UTF-8 JSON ({exc}), {_WROTE}"
        ) from None


def read_trials(path: Path) -> list[TrialInfo]:
    """``trials.jsonl``: one :class:`TrialInfo` a line; a damaged line is a ``RUN_DIR`` error
    naming its number (a run directory written by :meth:`SearchResult.write` has none)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise ConfigError(
            f"RUN_DIR: got {str(path.parent)!r}, which has no {path.name}, allowed: a folder "
            "that `quantsearch search` wrote"
        ) from None
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"RUN_DIR: got {str(path)!r}, which cannot be read as UTF-8 text ({exc}), {_WROTE}"
        ) from None
    trials = []
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            trials.append(TrialInfo.from_dict(json.loads(line)))
        except (TypeError, ValueError) as exc:
            raise ConfigError(
                f"RUN_DIR: got {str(path)!r}, whose line {i} is not a trial record ({exc}), {_WROTE}"
            ) from None
    return trials


def write_csv(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    """Rows with possibly different keys as one CSV; columns in order of first appearance."""
    columns: list[str] = []
    for r in rows:
        columns.extend(c for c in r if c not in columns)
    with open_atomic(path, newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def json_default(o: Any) -> Any:
    return list(o) if isinstance(o, (set, tuple)) else str(o)  # a Path as its string


def dump_json(path: Path, obj: Any) -> None:
    write_atomic(path, json.dumps(obj, indent=2, default=json_default) + "\n")


def check_same_write(summary_path: Path, summary: dict[str, Any], trials: list[TrialInfo]) -> None:
    """Refuse a summary (``best.json``, ``pareto.json``) and a ``trials.jsonl`` that are not
    from one write: the summary's trial count, and its best trial or front members with their
    objective values, must be in the trials read.

    Raises:
        ConfigError: naming ``RUN_DIR`` and the summary file, what disagrees and what to do.
    """
    by_number = {t.number: t for t in trials}
    count = summary.get("trials")
    problem = None
    if isinstance(count, int) and not isinstance(count, bool) and count != len(trials):
        problem = f"it counts {count} trials, trials.jsonl holds {len(trials)}"
    else:
        chosen = [summary.get("best"), *(summary.get("front") or [])]
        for entry in (e for e in chosen if isinstance(e, dict)):
            t = by_number.get(entry.get("trial"))  # type: ignore[arg-type]
            if t is None:
                problem = f"its trial {entry.get('trial')!r} is not in trials.jsonl"
            elif json.dumps(t.values) != json.dumps(entry.get("values")):
                problem = (
                    f"its trial {t.number} has values {entry.get('values')}, trials.jsonl "
                    f"{t.values}"
                )
            if problem:
                break
    if problem:
        raise ConfigError(
            f"RUN_DIR: got {str(summary_path)!r} and a trials.jsonl not from one write ({problem}; "
            "a command was stopped while writing them, or a file was changed since), allowed: "
            "both from one write (run the same `quantsearch search` again to write them from "
            "its study, or restore the folder from a copy)"
        )


def damaged(path: Path, what: str) -> ConfigError:
    """A search's summary or trials file that does not hold what a search writes."""
    return ConfigError(
        f"RUN_DIR: got {str(path)!r}, which is damaged ({what}), allowed: the file a search wrote (run "
        "the same `quantsearch search` again to write it from its study, or restore the folder "
        "from a copy)"
    )


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def check_summary(path: Path, summary: dict[str, Any]) -> None:
    """Refuse a summary (``best.json``, ``pareto.json``) whose objectives cannot be what a
    search wrote: ``combine`` one of ``weighted_sum``/``pareto``, ``objectives`` a non-empty
    list of names, ``directions`` ``maximize``/``minimize`` (one for a weighted sum, one per
    objective for a Pareto search), ``space_size`` a whole number >= 1.

    Raises:
        ConfigError: naming ``RUN_DIR``, the file and what is wrong.
    """
    combine, objectives = summary.get("combine"), summary.get("objectives")
    directions, size = summary.get("directions"), summary.get("space_size")
    if combine not in ("weighted_sum", "pareto"):
        raise damaged(path, f"combine {combine!r}, allowed: 'weighted_sum' or 'pareto'")
    if not (
        isinstance(objectives, list)
        and objectives
        and all(isinstance(o, str) and o for o in objectives)
    ):
        raise damaged(path, f"objectives {objectives!r}, allowed: a list of metric names")
    wanted = len(objectives) if combine == "pareto" else 1
    if not (
        isinstance(directions, list)
        and len(directions) == wanted
        and all(d in ("maximize", "minimize") for d in directions)
    ):
        raise damaged(
            path,
            f"directions {directions!r}, allowed: {wanted} of 'maximize'/'minimize' for "
            f"{combine} of {len(objectives)} objective(s)",
        )
    if not (isinstance(size, int) and not isinstance(size, bool) and size >= 1):
        raise damaged(path, f"space_size {size!r}, allowed: a whole number >= 1")


def check_baseline(path: Path, baseline: Any) -> dict[str, float]:
    """The float baseline's metrics read from ``path``: a table of metric name -> number
    (NaN and infinities pass, as a measurement may give them).

    Raises:
        ConfigError: naming ``RUN_DIR``, the file and the first entry that is not a number.
    """
    if not isinstance(baseline, dict):
        raise damaged(path, f"baseline {type(baseline).__name__}, allowed: a table")
    for name, value in baseline.items():
        if not _is_number(value):
            raise damaged(path, f"baseline {name} = {value!r:.40}, allowed: a number")
    return dict(baseline)  # the values as written (an int stays an int)


def what_folder(rd: Path) -> str:
    """What a folder without a search's result files is, in words: another command's output,
    a search stopped before its end, or neither.

    Example:
        >>> what_folder(Path("."))
        "holds no search's results"
    """
    if (rd / OTHER_MARKERS[0]).is_file():
        return "is a comparison's folder (comparison.json; its searches kept no run directory)"
    made = next((n for n in OTHER_MARKERS[1:] if (rd / n).is_file()), None)
    if made:
        return f"is the output of `quantsearch quantize` or `finetune` ({made})"
    if any((rd / n).exists() for n in SEARCH_MARKERS):
        return "holds a search that has not finished (no best.json or pareto.json yet)"
    return "holds no search's results"
