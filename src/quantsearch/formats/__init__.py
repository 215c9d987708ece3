"""Number formats: frozen values with a pure ``quantize(x)``, one file each, in a registry.

=============  ===========================================  ======================================
name           class                                        fields
=============  ===========================================  ======================================
``fixed``      :class:`~quantsearch.formats.fixed.FixedPoint`  width, frac_width, signed, rounding
``minifloat``  :class:`~quantsearch.formats.minifloat.Minifloat`  exponent_width, mantissa_width,
                                                             exponent_bias, subnormals
``log``        :class:`~quantsearch.formats.log.LogFormat`   exponent_width, exponent_bias
``block_fp``   :class:`~quantsearch.formats.block_fp.BlockFP`  mantissa_width, exponent_width,
                                                             exponent_bias, block_size, block_dim
``fp32``       :class:`~quantsearch.formats.float.Float32`   (none): leave as is
=============  ===========================================  ======================================

``integer`` is an alias of ``fixed`` and ``none`` of ``fp32``. A new format costs one file that
registers its class with ``@FORMATS.register("name")`` (from :mod:`.registry`), one test file
(``tests/formats/test_contract.py`` already runs every registered format through the contract)
and one import line below. Each registry entry is the class, which describes its own fields
(:meth:`NumberFormat.fields`).

Example:
    >>> [(f.name, f.required) for f in FORMATS.get("log").fields()]
    [('exponent_width', True), ('exponent_bias', False)]
"""

from __future__ import annotations

from quantsearch.formats.base import FormatField, InvalidFormat, NumberFormat
from quantsearch.formats.block_fp import BlockFP
from quantsearch.formats.fixed import FixedPoint
from quantsearch.formats.float import Float32
from quantsearch.formats.log import LogFormat
from quantsearch.formats.minifloat import Minifloat
from quantsearch.formats.registry import FORMATS, format_from_dict, format_from_str, make_format

__all__ = [
    "FORMATS",
    "BlockFP",
    "FixedPoint",
    "Float32",
    "FormatField",
    "InvalidFormat",
    "LogFormat",
    "Minifloat",
    "NumberFormat",
    "format_from_dict",
    "format_from_str",
    "make_format",
]
