"""torch.fx's symbolic tracing as :func:`quantsearch.graph.trace` runs it.

Two things differ from ``fx.symbolic_trace``: a module declaring its ``op_kind`` (quantized
layers do) is a leaf, so a quantized model traces to the same nodes as its float original;
and a model whose forward gives a buffer a traced size (``self.pe[:, : x.size(1)]``,
``self.idx.expand(x.size(0), -1)``) is traced with its buffers as proxies (see
:func:`symbolic_trace`).
"""

from __future__ import annotations

from torch import fx, nn

__all__ = ["symbolic_trace"]


class _Tracer(fx.Tracer):
    """fx's tracer, quantized layers (a class attribute ``op_kind``) leaves."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        if isinstance(getattr(type(m), "op_kind", None), str):
            return True
        return super().is_leaf_module(m, module_qualified_name)


def symbolic_trace(model: nn.Module) -> fx.GraphModule:
    """``model``'s graph, its modules in the mode they are in.

    fx hands a buffer to ``forward`` as the tensor itself, so a buffer sliced or expanded by a
    traced size (the positional-encoding table ``self.pe[:, : x.size(1)]``) raises a
    TypeError. Such a model is traced a second time with its buffers as proxies
    (``get_attr`` nodes, as parameters are): not first, since a buffer read as a Python value
    (``if self.flag:``, ``self.idx.tolist()``) traces only as a tensor. Where both fail, the
    first error is raised.
    """
    tracer = _Tracer()
    try:
        graph = tracer.trace(model)
    except Exception as first:
        tracer = _Tracer()
        tracer.proxy_buffer_attributes = True
        try:
            graph = tracer.trace(model)
        except Exception:
            raise first from None
    return fx.GraphModule(tracer.root, graph, type(model).__name__)
