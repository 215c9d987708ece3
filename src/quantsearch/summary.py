"""Tables that describe a traced graph: computed here, rendered by ``console`` or JSON."""

from __future__ import annotations

from typing import Any

from torch import fx

from quantsearch.graph import node_infos
from quantsearch.passes.analysis import activation_cost, compute_cost, param_cost

__all__ = ["COST_COLUMNS", "cost_table", "graph_table"]


def _shapes(metas: Any) -> str:
    return ", ".join("x".join(str(d) for d in m.shape) for m in metas)


def graph_table(gm: fx.GraphModule) -> dict[str, Any]:
    """One row per node: name, op kind, target, module type, shapes, dtypes, precision."""
    rows = []
    for ni in node_infos(gm):
        rows.append(
            {
                "node": ni.name,
                "op_kind": ni.op_kind,
                "target": ni.target,
                "module_type": (ni.module_type or "").rsplit(".", 1)[-1] or None,
                "in_shape": _shapes(ni.inputs),
                "out_shape": _shapes(ni.outputs),
                "dtype": ni.outputs[0].dtype if ni.outputs else None,
                "precision": ", ".join(f"{k}={v}" for k, v in ni.precision.items()) or "float",
            }
        )
    return {"nodes": rows}


# Row keys of cost_table's layers, in display order (NodeInfo.cost keys of the analysis passes).
COST_COLUMNS = (
    "node",
    "op_kind",
    "params",
    "param_bits",
    "buffers",
    "buffer_bits",
    "macs",
    "flops",
    "flops_backward",
    "bitops",
    "in_elems",
    "in_bits",
    "out_elems",
    "out_bits",
)
_SUMMED = COST_COLUMNS[2:]


def _num(v: Any) -> Any:
    """Integral floats (bit counts of whole-bit formats) as ints, so tables read 16,384."""
    return int(v) if isinstance(v, float) and v.is_integer() else v


def cost_table(gm: fx.GraphModule) -> dict[str, Any]:
    """Per-layer and total costs for the traced batch, from every analysis pass.

    Returns:
        ``{"batch_size", "layers": [row, ...], "totals": row, "uncounted": [...],
        "activations": {...}}``. Rows hold :data:`COST_COLUMNS`; a node the FLOP counter has
        no rule for shows ``None`` for its compute columns and is listed in ``uncounted``. The
        totals row sums each column (its ``params`` also includes any parameter no node uses);
        ``activations`` holds the whole-graph activation memory
        (:mod:`quantsearch.passes.analysis.buffers`).

    Example:
        >>> import torch
        >>> from quantsearch.graph import trace
        >>> t = cost_table(trace(torch.nn.Sequential(torch.nn.Linear(4, 2)), torch.ones(3, 4)))
        >>> [(r["node"], r["macs"], r["params"]) for r in t["layers"]], t["totals"]["flops"]
        ([('input_1', None, None), ('_0', 24, 10)], 54)
    """
    compute = compute_cost(gm)
    params = param_cost(gm)
    acts = activation_cost(gm)
    layers = []
    for ni in node_infos(gm):
        if ni.op == "output":
            continue
        row: dict[str, Any] = {"node": ni.name, "op_kind": ni.op_kind}
        row.update({k: _num(ni.cost.get(k)) for k in _SUMMED})
        layers.append(row)
    totals: dict[str, Any] = {"node": "total", "op_kind": ""}
    for k in _SUMMED:
        present = [r[k] for r in layers if r[k] is not None]
        totals[k] = sum(present) if present else None
    totals.update(
        params=params.params,
        param_bits=_num(params.param_bits),
        buffers=params.buffers,
        buffer_bits=_num(params.buffer_bits),
    )
    return {
        "batch_size": compute.batch_size,
        "layers": layers,
        "totals": {k: _num(v) for k, v in totals.items()},
        "uncounted": [
            {"node": u.node, "op_kind": u.op_kind, "reason": u.reason} for u in compute.uncounted
        ],
        "activations": {
            "activation_elems": acts.activation_elems,
            "activation_bits": _num(acts.activation_bits),
            "peak_activation_elems": acts.peak_activation_elems,
            "peak_activation_bits": _num(acts.peak_activation_bits),
            "peak_node": acts.peak_node,
        },
    }
