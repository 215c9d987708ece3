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

from quantsearch.passes.transform.calibrate import CalibrationStats, calibrate
from quantsearch.passes.transform.config import QuantizeConfig, parse_quantize_config
from quantsearch.passes.transform.graph_view import GraphView
from quantsearch.passes.transform.layer import PARAM_ROLES, ROLES, AutoFormat, LayerQuant
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
