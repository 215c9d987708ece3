"""The model zoo: a registry of small networks, plus users' own ``file.py:build`` models.

A model costs one file (its ``SPECS``), one test and one line here.
"""

from __future__ import annotations

from quantsearch.models import digits, jsc
from quantsearch.models.registry import MODELS, ModelSpec, build_model, model_names

__all__ = ["MODELS", "ModelSpec", "build_model", "model_names"]

for _spec in (*jsc.SPECS, *digits.SPECS):
    MODELS.add(_spec.name, _spec)
