"""``[metrics]``: a user's evaluate function and the directions of the metrics it returns.

```toml
[metrics]
evaluate = "my_task.py:evaluate"        # relative to the config file's folder, like data.name
directions = { r2 = "maximize", max_abs_error = "minimize" }
```

Validated at load without importing the function: the spec's form, each direction, and that no
declared name is a built-in metric or a name the trial record uses (``qs``, ``metrics``,
``format.*``, ``quantsearch.*``). The function itself is imported when a search starts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from quantsearch.errors import ConfigError
from quantsearch.metrics.specs import user_metric_name_problem
from quantsearch.validate import check_keys, get_str, get_table, toml_key

__all__ = ["DIRECTIONS", "MetricsConfig", "check_directions", "parse_metrics_config"]

DIRECTIONS = ("maximize", "minimize")


@dataclass(frozen=True)
class MetricsConfig:
    """``[metrics]``. ``evaluate``: ``"file.py:function"`` or ``"module:function"``, or
    ``None`` for the built-in metrics only; ``directions``: metric name -> direction."""

    evaluate: str | None = None
    directions: dict[str, str] = field(default_factory=dict)


def check_directions(raw: Any, key: str) -> dict[str, str]:
    """``{name: "maximize" | "minimize"}`` for names that are neither built-in metrics nor
    names the trial record uses (:func:`~quantsearch.metrics.specs.user_metric_name_problem`).

    Example:
        >>> check_directions({"r2": "maximize"}, "metrics.directions")
        {'r2': 'maximize'}
    """
    if not isinstance(raw, Mapping):
        raise ConfigError(
            f"{key}: got {raw!r}, allowed: a table of metric name = 'maximize' or 'minimize'"
        )
    out: dict[str, str] = {}
    for name, direction in raw.items():
        k = toml_key(key, str(name))
        problem = user_metric_name_problem(str(name))
        if problem is not None:
            raise ConfigError(f"{k}: {problem}")
        if direction not in DIRECTIONS:
            raise ConfigError(f"{k}: got {direction!r}, allowed: {list(DIRECTIONS)}")
        out[str(name)] = direction
    return out


def parse_metrics_config(raw: Mapping[str, Any], key: str = "metrics") -> MetricsConfig:
    """Validate a ``[metrics]`` table.

    Example:
        >>> parse_metrics_config({"evaluate": "task.py:evaluate", "directions": {"r2": "maximize"}})
        MetricsConfig(evaluate='task.py:evaluate', directions={'r2': 'maximize'})
    """
    check_keys(raw, {"evaluate", "directions"}, key)
    evaluate = get_str(raw, "evaluate", key)
    if evaluate is not None:
        target, sep, attr = evaluate.rpartition(":")
        if not (sep and target.strip() and attr.strip()):
            raise ConfigError(
                f"{key}.evaluate: got {evaluate!r}, allowed: 'file.py:function' or "
                f"'module:function'"
            )
    directions = check_directions(get_table(raw, "directions", key), f"{key}.directions")
    if directions and evaluate is None:
        raise ConfigError(
            f"{key}.directions: got {sorted(directions)} without {key}.evaluate, allowed: "
            f"directions of the metrics an evaluate function returns"
        )
    return MetricsConfig(evaluate, directions)
