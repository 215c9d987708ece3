"""Analysis passes: plain functions that read a traced graph and write per-node facts into
``NodeInfo.cost``, each with a companion that totals them.

=================  ==================================================  ===================
pass               per-node ``NodeInfo.cost`` keys                     totals
=================  ==================================================  ===================
count_flops        macs, flops, flops_backward, bitops (uncounted)     compute_cost
count_params       params, trainable_params, buffers, param_bits,      param_cost
                   buffer_bits (weight_elems, weight_bits)
count_buffers      in_elems, in_bits, out_elems, out_bits              activation_cost
mase_view          mase (MASE's five statistics)                       mase_stats
=================  ==================================================  ===================

Each total is computed apart from its pass (``total_compute_cost``, ``total_param_cost``,
``total_activation_cost``), from per-node entries in graph order, so that entries memoised
across configs (:mod:`quantsearch.metrics.static`) total to the same numbers. ``priced_with``
names the nodes whose formats a node's entries read.

The counting convention is stated once, with every op's formula, in
:mod:`quantsearch.passes.analysis.cost_rules`.
"""

from __future__ import annotations

from quantsearch.passes.analysis import (
    cost_rules_linalg,  # noqa: F401  (registers its rules)
    cost_rules_loss,  # noqa: F401  (registers its rules)
    cost_rules_math,  # noqa: F401  (registers its rules)
    cost_rules_more,  # noqa: F401  (registers its rules)
    cost_rules_ops,  # noqa: F401  (registers its rules)
    cost_rules_reduce,  # noqa: F401  (registers its rules)
    cost_rules_sample,  # noqa: F401  (registers its rules)
    cost_rules_select,  # noqa: F401  (registers its rules)
)
from quantsearch.passes.analysis.buffers import (
    ActivationCost,
    activation_cost,
    count_buffers,
    count_node_buffers,
    total_activation_cost,
)
from quantsearch.passes.analysis.cost_rules import COST_RULES, OpArgs, OpCost
from quantsearch.passes.analysis.flops import (
    ComputeCost,
    UncountedOp,
    compute_cost,
    count_flops,
    count_node_flops,
    total_compute_cost,
)
from quantsearch.passes.analysis.mase_view import MaseStats, mase_stats, mase_view
from quantsearch.passes.analysis.params import (
    ParamCost,
    Unattributed,
    count_node_params,
    count_params,
    counted_before,
    owner_costs,
    param_cost,
    priced_with,
    shares_tensors,
    tensor_owners,
    total_param_cost,
    unattributed,
    widest_bits,
)
from quantsearch.passes.analysis.tensors import dtype_bits, role_bits, traced_batch_size

__all__ = [
    "COST_RULES",
    "ActivationCost",
    "ComputeCost",
    "MaseStats",
    "OpArgs",
    "OpCost",
    "ParamCost",
    "Unattributed",
    "UncountedOp",
    "activation_cost",
    "compute_cost",
    "count_buffers",
    "count_flops",
    "count_node_buffers",
    "count_node_flops",
    "count_node_params",
    "count_params",
    "counted_before",
    "dtype_bits",
    "mase_stats",
    "mase_view",
    "owner_costs",
    "param_cost",
    "priced_with",
    "role_bits",
    "shares_tensors",
    "tensor_owners",
    "total_activation_cost",
    "total_compute_cost",
    "total_param_cost",
    "traced_batch_size",
    "unattributed",
    "widest_bits",
]
