"""The data of each picture a report shows: plain frozen values that :mod:`quantsearch.plots`
draws (Optuna's visualization keeps its ``_ParetoFrontInfo`` apart from its renderers the same
way). Nothing here computes; :mod:`quantsearch.report.pictures` fills them in."""

from __future__ import annotations

from dataclasses import dataclass

from quantsearch.compare.stats import Curve

__all__ = ["CorrelationPlot", "CurvePlot", "Figure", "FigureData", "Heatmap", "ScatterPlot"]


@dataclass(frozen=True)
class CurvePlot:
    """Median lines with IQR bands per strategy against a count (trials, evaluations), and a
    dashed reference line.

    ``linthresh`` > 0 draws y on a symmetric log axis, linear within ``[0, linthresh]`` so that
    zero (a regret of nothing) is drawn and labelled, logarithmic above; ``note`` is written in
    the plot's corner (e.g. the hypervolume reference point), so the picture carries it alone.
    """

    title: str
    xlabel: str
    ylabel: str
    series: tuple[tuple[str, Curve], ...]  # (label, curve)
    reference: float | None
    reference_label: str
    linthresh: float = 0.0
    note: str = ""


@dataclass(frozen=True)
class ScatterPlot:
    """Every evaluated config in two metrics; the front highlighted; the float baseline marked."""

    title: str
    xlabel: str
    ylabel: str
    x: tuple[float, ...]
    y: tuple[float, ...]
    feasible: tuple[bool, ...]
    on_front: tuple[bool, ...]
    best: tuple[bool, ...]
    baseline: tuple[float, float] | None


@dataclass(frozen=True)
class CorrelationPlot:
    """Accuracy against loss over distinct configs, with rank correlations."""

    title: str
    xlabel: str
    ylabel: str
    x: tuple[float, ...]
    y: tuple[float, ...]
    feasible: tuple[bool, ...]
    spearman: float
    spearman_p: float
    kendall: float
    kendall_p: float


@dataclass(frozen=True)
class Heatmap:
    """Per-layer bitwidths: one row per config, one column per node and role."""

    title: str
    row_labels: tuple[str, ...]
    col_labels: tuple[str, ...]
    values: tuple[tuple[float, ...], ...]  # nan: the role is not quantized
    cells: tuple[tuple[str, ...], ...]  # the text in each cell (the format's fields)
    colorbar: str


FigureData = CurvePlot | ScatterPlot | CorrelationPlot | Heatmap


@dataclass(frozen=True)
class Figure:
    """One picture of a report: its file stem, its caption and what to draw."""

    name: str  # file stem
    caption: str
    data: FigureData
