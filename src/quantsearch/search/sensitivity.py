"""What the sensitivity strategy knows before its first trial: predicted damage and exact costs.

Per knob and choice, the predicted accuracy drop and loss increase of quantizing that knob's
roles alone (:mod:`quantsearch.passes.analysis.sensitivity`, one probe of the evaluator's data);
per group of knobs that share nodes and per joint choice, the exact change of every analytic
cost metric from the reference point (every knob at its dearest choice). Analytic metrics are
additive over nodes and read a node's formats only through their bits, so one
``compute_metrics`` call per group and distinct bits gives every point's exact cost
(``tests/search/test_sensitivity.py`` checks it against ``compute_metrics`` on quantized graphs).
Used by :mod:`quantsearch.search.strategies.sensitivity` and ``quantsearch summary --sensitivity``.
"""

from __future__ import annotations

import itertools
import json
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from quantsearch.metrics import compute_metrics
from quantsearch.metrics.specs import metric_spec
from quantsearch.passes.analysis.sensitivity import output_damage, probe
from quantsearch.passes.transform import quantize
from quantsearch.search.space.spec import option_bits

__all__ = ["Tables", "is_analytic", "sensitivity_rows", "sensitivity_tables"]


@dataclass(frozen=True)
class Tables:
    """What the sampler knows before any evaluation.

    Attributes:
        drop: per knob, per choice: predicted accuracy drop (fraction of samples).
        loss: per knob, per choice: predicted loss increase (nats per sample).
        groups: knob indices that share nodes (their costs interact: BitOPs = w_bits x a_bits).
        ref: analytic metrics at the reference point (every knob at its dearest choice).
        delta: per group, per joint choice (in ``itertools.product`` order), metric -> delta.
    """

    drop: list[np.ndarray]
    loss: list[np.ndarray]
    groups: list[tuple[int, ...]]
    ref: dict[str, float]
    delta: list[dict[str, np.ndarray]]


# Tables per evaluator (a comparison's runs share one): computing them takes about a second.
TABLES_ATTR = "sensitivity_tables"  # the study's user attribute that keeps them
_TABLES: weakref.WeakKeyDictionary[Any, dict[Any, Tables]] = weakref.WeakKeyDictionary()


def is_analytic(metric: str) -> bool:
    return metric_spec(metric).kind == "static"


def _layer_formats(space: Any, choice: Mapping[str, int]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = space.layer_formats(choice)
    return out


def sensitivity_tables(
    space: Any, evaluator: Any, metrics: Sequence[str], study: Any = None
) -> Tables:
    """Predicted damage of every knob choice and exact analytic costs (memoised per evaluator,
    and kept in ``study``'s user attributes when one is given: a resumed search or a worker
    that joins later reads them instead of probing the model again)."""
    knobs = space.knobs
    key = (tuple((k.name, k.labels) for k in knobs), tuple(sorted(metrics)))
    memo = _TABLES.setdefault(evaluator, {})
    if key in memo:
        return memo[key]
    stored_key = json.loads(json.dumps(key))  # as the storage gives it back: lists
    kept = study.user_attrs.get(TABLES_ATTR) if study is not None else None
    if kept is not None and kept.get("key") == stored_key:
        memo[key] = Tables(
            [np.array(d) for d in kept["drop"]],
            [np.array(d) for d in kept["loss"]],
            [tuple(g) for g in kept["groups"]],
            dict(kept["ref"]),
            [{m: np.array(v) for m, v in d.items()} for d in kept["delta"]],
        )
        return memo[key]
    memo[key] = tables = _tables(space, evaluator, metrics)
    if study is not None:
        study.set_user_attr(TABLES_ATTR, _tables_json(stored_key, tables))
    return tables


def _tables_json(key: Any, t: Tables) -> dict[str, Any]:
    return {
        "key": key,
        "drop": [d.tolist() for d in t.drop],
        "loss": [d.tolist() for d in t.loss],
        "groups": [list(g) for g in t.groups],
        "ref": t.ref,
        "delta": [{m: v.tolist() for m, v in d.items()} for d in t.delta],
    }


def _tables(space: Any, evaluator: Any, metrics: Sequence[str]) -> Tables:
    knobs = space.knobs
    gm = evaluator.gm
    ref = {k.name: k.by_cost[-1] for k in knobs}
    nodes = sorted({n for k in knobs for n in k.nodes})
    probes = probe(gm, evaluator.data.x, evaluator.data.y, nodes)
    derived = set(space.derived)  # (node, role, the role it follows)
    drop, loss = [], []
    for k in knobs:
        d = np.zeros(k.size)
        lo = np.zeros(k.size)
        for i in range(k.size):
            # this knob's roles (and the roles derived from it) at choice i, everything else float
            lf = _layer_formats(space, {**ref, k.name: i})
            for node in k.nodes:
                roles = {
                    r: f for r, f in lf[node].items() if r == k.role or (node, r, k.role) in derived
                }
                lq = evaluator.resolve({node: roles})[node]
                dmg = output_damage(gm, probes[node], lq)
                d[i] += dmg.accuracy_drop
                lo[i] += dmg.loss
        drop.append(d)
        loss.append(lo)
    groups: dict[frozenset[str], list[int]] = {}
    for i, k in enumerate(knobs):
        groups.setdefault(frozenset(k.nodes), []).append(i)
    gl = [tuple(g) for g in groups.values()]
    # once each: a cost both objective and constraint got two rows per choice in its table
    names = list(dict.fromkeys(m for m in metrics if is_analytic(m)))

    def cost(choice: dict[str, int]) -> dict[str, float]:
        if not names:
            return {}
        qgm = quantize(
            gm, evaluator.resolve(space.layer_formats(choice)), calibration=evaluator.calibration
        )
        return compute_metrics(qgm, names)

    base = cost(ref)
    delta = []
    for g in gl:
        memo_bits: dict[tuple[float, ...], dict[str, float]] = {}
        rows: dict[str, list[float]] = {m: [] for m in names}
        for combo in itertools.product(*(range(knobs[i].size) for i in g)):
            bits = tuple(option_bits(knobs[i].options[c]) for i, c in zip(g, combo, strict=True))
            if bits not in memo_bits:  # analytic costs read a format's bits only
                choice = dict(ref)
                choice.update({knobs[i].name: c for i, c in zip(g, combo, strict=True)})
                memo_bits[bits] = cost(choice)
            for m in names:
                rows[m].append(memo_bits[bits][m] - base[m])
        delta.append({m: np.array(v) for m, v in rows.items()})
    return Tables(drop, loss, gl, base, delta)


def sensitivity_rows(space: Any, tables: Tables) -> list[dict[str, Any]]:
    """One row per knob: per bit width, the least predicted accuracy drop (%) among its choices.

    What ``quantsearch summary --sensitivity`` prints and the report draws.
    """
    rows = []
    for i, k in enumerate(space.knobs):
        row: dict[str, Any] = {"parameter": k.name}
        by_bits: dict[float, tuple[float, str]] = {}
        for c, option in enumerate(k.options):
            b = option_bits(option)
            cand = (float(tables.drop[i][c]), k.labels[c])
            if b not in by_bits or cand[0] < by_bits[b][0]:
                by_bits[b] = cand
        for b in sorted(by_bits):
            row[f"{b:g} bits"] = round(100 * by_bits[b][0], 2)
        row["loss at cheapest"] = float(tables.loss[i][k.by_cost[0]])
        rows.append(row)
    return rows
