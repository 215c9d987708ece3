"""The search space: the ``[search.space]`` mini-language (:mod:`.spec`) and the finite space
it gives a traced graph (:mod:`.knobs`)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from quantsearch.search.space.spec import (
    SAME_AS,
    SpaceSpec,
    choice_labels,
    legacy_label,
    option_label,
    parse_space,
)

if TYPE_CHECKING:
    from quantsearch.search.space.knobs import Encoding, Knob, SearchSpace

__all__ = [
    "SAME_AS",
    "Encoding",
    "Knob",
    "SearchSpace",
    "SpaceSpec",
    "choice_labels",
    "legacy_label",
    "option_label",
    "parse_space",
]

# ``knobs`` imports torch (it reads a traced graph): loaded on first use, so that the config
# parser and reports, which need only ``spec``, do not pay for torch (issue 15).
_LAZY = {"Encoding": "knobs", "Knob": "knobs", "SearchSpace": "knobs"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"quantsearch.search.space.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'quantsearch.search.space' has no attribute {name!r}")
