"""The export extra: hls4ml, qonnx, onnx and onnxruntime, imported on demand; and the g++ that
hls4ml builds its C simulation with."""

from __future__ import annotations

import importlib
import shutil
from types import ModuleType

from quantsearch.errors import ConfigError

__all__ = ["require", "require_compiler"]


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


def require_compiler(purpose: str) -> None:
    """Check that the ``g++`` hls4ml's ``build_lib.sh`` calls is on ``PATH`` (it names no
    other), before anything is written: without it hls4ml's compile fails with a bare
    ``Exception`` after the project is written.

    Raises:
        ConfigError: one line naming ``purpose`` and what would do.
    """
    if shutil.which("g++") is None:
        raise ConfigError(
            f"{purpose}: got no g++ on PATH, allowed: g++ installed (hls4ml builds its C "
            "simulation with it), or the export without --verify (the project is written, "
            "not built)"
        )
