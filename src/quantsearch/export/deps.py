"""The export extra: hls4ml, qonnx, onnx and onnxruntime, imported on demand."""

from __future__ import annotations

import importlib
from types import ModuleType

from quantsearch.errors import ConfigError

__all__ = ["require"]


def require(module: str, purpose: str) -> ModuleType:
    """``import module``, or a one-line error naming the extra that installs it.

    Example:
        >>> require("no_such_module_x", "export --to hls4ml")
        Traceback (most recent call last):
        ...
        quantsearch.errors.ConfigError: export --to hls4ml: got no module no_such_module_x, allowed: install the export extra: pip install 'quantsearch[export]'
    """
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ConfigError(
            f"{purpose}: got no module {module}, allowed: install the export extra: "
            "pip install 'quantsearch[export]'"
        ) from None
