"""The distinct configs a run or a comparison evaluated: ``configs.jsonl``, written and read here.

One row per distinct config hash (the first trial that had it): its state, objective values,
metrics, feasibility, error, knob values, the resolved per-node formats and where it was first
seen (``{"strategy", "seed", "trial"}``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from quantsearch.compare.measures import counted_trials
from quantsearch.errors import ConfigError
from quantsearch.search.results import SearchResult

__all__ = ["ConfigPoint", "config_points", "distinct_configs", "read_configs"]


@dataclass(frozen=True)
class ConfigPoint:
    """One distinct config that was evaluated: its metrics, objective values and formats."""

    config_hash: str
    state: str
    values: tuple[float, ...] | None
    metrics: dict[str, float]
    feasible: bool | None
    error: str | None
    params: dict[str, Any]
    config: dict[str, Any] | None
    trial: int | None = None  # the trial that first had it (search runs)

    @property
    def ok(self) -> bool:
        return self.state == "COMPLETE" and self.error is None and self.values is not None


def distinct_configs(results: Sequence[SearchResult]) -> list[dict[str, Any]]:
    """One ``configs.jsonl`` row per distinct config evaluated by any of ``results``."""
    rows: dict[str, dict[str, Any]] = {}
    configs: dict[str, Any] = {}
    for r in results:
        configs.update({k: v for k, v in r.configs.items() if v is not None})
        for t in counted_trials(r.trials):
            if t.config_hash is None or t.config_hash in rows:
                continue
            rows[t.config_hash] = {
                "config_hash": t.config_hash,
                "state": t.state,
                "values": t.values,
                "metrics": t.metrics,
                "feasible": t.feasible,
                "error": t.error,
                "params": t.params,
                "first_seen": {"strategy": r.strategy, "seed": r.seed, "trial": t.number},
            }
    for h, row in rows.items():
        row["config"] = configs.get(h)
    return list(rows.values())


def config_points(result: SearchResult) -> list[ConfigPoint]:
    """The distinct configs of one search, in the order it first evaluated them."""
    seen: set[str] = set()
    out = []
    for t in counted_trials(result.trials):
        if t.config_hash is None or t.config_hash in seen:
            continue
        seen.add(t.config_hash)
        out.append(
            ConfigPoint(
                t.config_hash,
                t.state,
                t.values,
                dict(t.metrics),
                t.feasible,
                t.error,
                dict(t.params),
                result.config_of(t),
                t.number,
            )
        )
    return out


def read_configs(path: Path) -> list[ConfigPoint]:
    """The rows of a ``configs.jsonl`` that :func:`distinct_configs` made."""
    out = []
    with path.open(encoding="utf-8", errors="replace") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                out.append(_point(json.loads(line)))
            except (AttributeError, KeyError, TypeError, ValueError) as exc:
                raise ConfigError(
                    f"RUN_DIR: got {str(path)!r}, which is damaged (line {n}: {type(exc).__name__}: {exc}), "
                    "allowed: the lines `quantsearch compare` wrote (run it again, or restore "
                    "the folder from a copy)"
                ) from None
    return out


def _point(d: dict[str, Any]) -> ConfigPoint:
    return ConfigPoint(
        d["config_hash"],
        d["state"],
        tuple(d["values"]) if d.get("values") is not None else None,
        dict(d.get("metrics") or {}),
        d.get("feasible"),
        d.get("error"),
        dict(d.get("params") or {}),
        d.get("config"),
        None,
    )
