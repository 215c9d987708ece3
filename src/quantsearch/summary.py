"""Tables that describe a traced graph: computed here, rendered by ``console`` or JSON."""

from __future__ import annotations

from typing import Any

from torch import fx

from quantsearch.graph import node_infos

__all__ = ["graph_table"]


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
