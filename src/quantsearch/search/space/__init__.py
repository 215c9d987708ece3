"""The search space: the ``[search.space]`` mini-language (:mod:`.spec`) and the finite space
it gives a traced graph (:mod:`.knobs`)."""

from __future__ import annotations

from quantsearch.search.space.knobs import Encoding, Knob, SearchSpace
from quantsearch.search.space.spec import (
    SAME_AS,
    SpaceSpec,
    choice_labels,
    legacy_label,
    option_label,
    parse_space,
)

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
