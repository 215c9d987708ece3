"""quantsearch: design-space exploration of neural-network quantization in PyTorch.

The top-level names are imported lazily so that ``import quantsearch`` (and the CLI's
``--help``) does not pay for importing torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "evaluate_population",
    "load_quantized",
    "open_run",
    "read_int_weights",
    "save_int_weights",
    "trace",
]

__version__ = "0.1.0"

_LAZY = {
    "trace": ("quantsearch.graph", "trace"),
    "evaluate_population": ("quantsearch.search.evaluate", "evaluate_population"),
    "open_run": ("quantsearch.search.run_dir", "open_run"),
    "load_quantized": ("quantsearch.quantized", "load_quantized"),
    "save_int_weights": ("quantsearch.int_weights", "save_int_weights"),
    "read_int_weights": ("quantsearch.int_weights", "read_int_weights"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'quantsearch' has no attribute {name!r}")
