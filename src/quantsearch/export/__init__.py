"""Hardware export of a quantized model, verified against quantsearch's own arithmetic.

- :mod:`.types`: quantsearch formats as ``ap_fixed`` types, exact accumulator widths;
- :mod:`.plan`: one hardware type per layer result (:func:`plan`), what is inexact and why;
- :mod:`.hls`: hls4ml projects (:func:`export_hls4ml`) and their C simulation;
- :mod:`.qonnx`: QONNX files with ``Quant`` nodes (:func:`export_qonnx`), run by qonnx;
- :mod:`.agreement`: same class and max |difference| in LSBs (:class:`Agreement`).

The referees are hls4ml's bit-accurate C simulation and the ``qonnx`` executor, not this code.
They need the ``export`` extra: ``pip install 'quantsearch[export]'`` (and g++ for hls4ml).
"""

from __future__ import annotations

from quantsearch.export.agreement import Agreement, agreement
from quantsearch.export.hls import (
    BACKENDS,
    HlsExport,
    compile_all,
    export_hls4ml,
    reference_outputs,
)
from quantsearch.export.plan import SUPPORTED_KINDS, WIDE, HwPlan, plan
from quantsearch.export.qonnx import export_qonnx, qonnx_notes, run_qonnx, verify_qonnx
from quantsearch.export.types import HwType, hw_type

__all__ = [
    "BACKENDS",
    "SUPPORTED_KINDS",
    "WIDE",
    "Agreement",
    "HlsExport",
    "HwPlan",
    "HwType",
    "agreement",
    "compile_all",
    "export_hls4ml",
    "export_qonnx",
    "hw_type",
    "plan",
    "qonnx_notes",
    "reference_outputs",
    "run_qonnx",
    "verify_qonnx",
]
