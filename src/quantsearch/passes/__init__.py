"""Graph passes: ``analysis`` reads a traced graph and annotates its nodes, ``transform``
returns a new graph.

Both work on the ``torch.fx.GraphModule`` built by :func:`quantsearch.graph.trace`, whose nodes
carry one :class:`quantsearch.graph.NodeInfo` each.
"""

from __future__ import annotations
