"""Search over quantization configs: spaces, strategies, objectives, the study loop.

Public surface:
    search(...) -> SearchResult      run a search from Python (the CLI calls the same code)
    open_run(DIR) -> SearchResult    a run directory read back with its model (result.model(trial))
    STRATEGIES                       the strategy registry (name -> sampler builder)
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["STRATEGIES", "SearchResult", "open_run", "search"]

# Resolved on first use: `search` imports torch and optuna, which `import quantsearch.search.X`
# (the CLI's --help, the config parser) need not pay for.
_LAZY = {
    "search": ("quantsearch.search.api", "search"),
    "SearchResult": ("quantsearch.search.results", "SearchResult"),
    "open_run": ("quantsearch.search.run_dir", "open_run"),
    "STRATEGIES": ("quantsearch.search.strategies", "STRATEGIES"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'quantsearch.search' has no attribute {name!r}")
