"""The figures' style, shared by both renderers (the native SVG of :mod:`quantsearch.report.svg`
and matplotlib's PNG and PDF in :mod:`quantsearch.plots`), so that a strategy looks the same in
every picture of every format.

Strategy curves are told apart by colour, in the Okabe–Ito colour-blind-safe palette, *and* by
line style, assigned by the sorted order of the strategies' names.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["BLUE", "GREY", "LINESTYLES", "OKABE_ITO", "VERMILLION", "YELLOW", "series_styles"]

# Okabe & Ito (2008), "Color Universal Design": distinguishable under the common colour-vision
# deficiencies. Black is left for the reference line, yellow last (faint on white).
OKABE_ITO = ("#E69F00", "#56B4E9", "#009E73", "#0072B2", "#D55E00", "#CC79A7", "#F0E442")
# solid, dashed, dotted, dash-dot (matplotlib's names): with 7 colours, 28 strategies get
# distinct pairs
LINESTYLES = ("-", "--", ":", "-.")
BLUE, VERMILLION, YELLOW = "#0072B2", "#D55E00", "#F0E442"
GREY = "#737373"  # matplotlib's "0.45": infeasible configs, hollow


def series_styles(labels: Sequence[str]) -> dict[str, tuple[str, str]]:
    """(colour, line style) of each series, by the sorted order of the labels.

    Example:
        >>> series_styles(["tpe", "random"])["random"] == (OKABE_ITO[0], LINESTYLES[0])
        True
    """
    return {
        label: (OKABE_ITO[i % len(OKABE_ITO)], LINESTYLES[i % len(LINESTYLES)])
        for i, label in enumerate(sorted(set(labels)))
    }
