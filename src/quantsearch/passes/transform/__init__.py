"""Transform passes: ``quantize(gm, config)`` returns a new, quantized ``GraphModule``.

Typical use::

    stats = calibrate(gm, train_x[:256])                  # once per run, if "auto" is used
    resolved = resolve(gm, parse_quantize_config(table), calibration=stats)
    qgm = quantize(gm, resolved)                          # gm is left unchanged

Modules, one concept each:

- :mod:`.layer`: the roles (:data:`ROLES`) and what one node is quantized to (:class:`LayerQuant`);
- :mod:`.config`: the ``[quantize]`` table, parsed and checked at load;
- :mod:`.graph_view`: the names a config may use for the nodes of a graph;
- :mod:`.resolved`: the per-node config (:class:`ResolvedConfig`);
- :mod:`.resolve`: precedence, from a ``[quantize]`` table to a :class:`ResolvedConfig`;
- :mod:`.modules`: quantized layers, one builder per op kind (:data:`QUANTIZERS`);
- :mod:`.calibrate`: activation ranges; :mod:`.quantize`: the pass.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

from quantsearch.passes.transform.layer import PARAM_ROLES, ROLES, AutoFormat, LayerQuant

if TYPE_CHECKING:
    from quantsearch.passes.transform.calibrate import CalibrationStats, calibrate
    from quantsearch.passes.transform.config import QuantizeConfig, parse_quantize_config
    from quantsearch.passes.transform.graph_view import GraphView
    from quantsearch.passes.transform.modules import QUANTIZERS, QuantSpec, quantizable_kinds
    from quantsearch.passes.transform.quantize import quantize
    from quantsearch.passes.transform.resolve import resolve
    from quantsearch.passes.transform.resolved import ResolvedConfig

__all__ = [
    "PARAM_ROLES",
    "QUANTIZERS",
    "ROLES",
    "AutoFormat",
    "CalibrationStats",
    "GraphView",
    "LayerQuant",
    "QuantSpec",
    "QuantizeConfig",
    "ResolvedConfig",
    "calibrate",
    "parse_quantize_config",
    "quantizable_kinds",
    "quantize",
    "resolve",
]

# Each imports torch: loaded on first use, so that reading a role or a format (a report, a
# config check: ``passes.transform.layer``) does not pay for torch (issue 15).
_LAZY = {
    "CalibrationStats": "calibrate",
    "calibrate": "calibrate",
    "QuantizeConfig": "config",
    "parse_quantize_config": "config",
    "GraphView": "graph_view",
    "QUANTIZERS": "modules",
    "QuantSpec": "modules",
    "quantizable_kinds": "modules",
    "quantize": "quantize",
    "resolve": "resolve",
    "ResolvedConfig": "resolved",
}


_SAME_NAME = frozenset({"calibrate", "quantize", "resolve"})


class _Package(types.ModuleType):
    """This package. Its submodules ``calibrate``, ``quantize`` and ``resolve`` share their
    names with the function each defines; Python binds a submodule as an attribute of its
    package on the submodule's first import (from anywhere), and here the function is bound
    instead, as an eager ``from .quantize import quantize`` above would have left it."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _SAME_NAME and isinstance(value, types.ModuleType):
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = importlib.import_module(f"quantsearch.passes.transform.{_LAZY[name]}")
        return getattr(module, name)
    raise AttributeError(f"module 'quantsearch.passes.transform' has no attribute {name!r}")
