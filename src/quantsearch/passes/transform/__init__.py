"""Transform passes: ``quantize(gm, config)`` returns a new, quantized ``GraphModule``.

Typical use::

    stats = calibrate(gm, train_x[:256])                  # once per run, if "auto" is used
    resolved = resolve(gm, parse_quantize_config(table), calibration=stats)
    qgm = quantize(gm, resolved)                          # gm is left unchanged

Modules: :mod:`.config` (the ``[quantize]`` table, precedence, :class:`ResolvedConfig`),
:mod:`.modules` (quantized layers, one builder per op kind), :mod:`.calibrate` (activation
ranges), :mod:`.quantize` (the pass).
"""

from __future__ import annotations

from quantsearch.passes.transform.calibrate import CalibrationStats, calibrate
from quantsearch.passes.transform.config import (
    AutoFormat,
    LayerQuant,
    QuantizeConfig,
    ResolvedConfig,
    parse_quantize_config,
    resolve,
)
from quantsearch.passes.transform.modules import QUANTIZERS, ROLES, QuantSpec, quantizable_kinds
from quantsearch.passes.transform.quantize import quantize

__all__ = [
    "QUANTIZERS",
    "ROLES",
    "AutoFormat",
    "CalibrationStats",
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
