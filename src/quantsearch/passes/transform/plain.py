"""A layer as its forward computes it, for the quantize pass to round what it multiplies by.

Weight norm and spectral norm (``torch.nn.utils.parametrizations``) compute ``weight`` from
other tensors on every access, and pruning (``torch.nn.utils.prune``) sets ``weight = weight_orig
* weight_mask`` in a forward pre-hook. A quantized layer built from such a module lost the
computed ``weight`` (a re-classed parametrized module has none: an AttributeError) or rounded a
weight the pre-hook then overwrote with the float product (the pruned layer ran unquantized).
:func:`plain_layer` gives a new module with those made permanent, as
``parametrize.remove_parametrizations(leave_parametrized=True)`` and ``prune.remove`` do; the
model's own module is left as it is.
"""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn.utils import parametrize, prune

from quantsearch.graph import PARAM_ORIGINS

__all__ = ["plain_layer"]


def plain_layer(module: nn.Module, *, pruned: bool = True) -> nn.Module:
    """``module`` itself, or, for a parametrized or pruned one, a new module of the layer's
    class whose ``weight`` (and any other such tensor) is a plain parameter holding the value
    its forward uses; its other tensors are ``module``'s own. ``pruned=False`` leaves pruning
    as it is (a layer trained quantized keeps its mask: the pre-hook's product is rounded in
    every training pass).

    Example:
        >>> import torch
        >>> from torch.nn.utils import parametrizations
        >>> lin = parametrizations.weight_norm(torch.nn.Linear(3, 2))
        >>> plain = plain_layer(lin)
        >>> type(plain).__name__, sorted(n for n, _ in plain.named_parameters())
        ('Linear', ['bias', 'weight'])
        >>> torch.equal(plain.weight, lin.weight), type(lin).__name__
        (True, 'ParametrizedLinear')
    """
    hooks = {
        k: h
        for k, h in module._forward_pre_hooks.items()
        if pruned and isinstance(h, prune.BasePruningMethod)
    }
    if not hooks and not parametrize.is_parametrized(module):
        return module
    # Not copy.deepcopy: a pruned layer's weight is a non-leaf tensor after a forward with
    # autograd (deepcopy refuses it); not remove_parametrizations: it deletes the property
    # from the class torch made for the model's module. The tensors are shared, not copied:
    # the quantize pass copies what it keeps.
    values: dict[str, Tensor] = {}
    # each made tensor's key for counting it once (PARAM_ORIGINS): the model's tensor it comes
    # from, the parametrization's first original or the pruned weight_orig; the new
    # parameter's own id dies with the quantize call, and a later temporary reuses it
    sources: dict[str, int] = {}
    parametrized = parametrize.is_parametrized(module)
    if parametrized:
        lists = module._modules["parametrizations"]._modules  # type: ignore[union-attr]
        for k, plist in lists.items():
            values[k] = getattr(module, k).detach()
            sources[k] = id(next(iter(plist._parameters.values())))  # type: ignore[union-attr]
    for h in hooks.values():
        values[h._tensor_name] = h.apply_mask(module).detach()  # type: ignore[no-untyped-call]
        sources[h._tensor_name] = id(module._parameters[f"{h._tensor_name}_orig"])
    plain: nn.Module = object.__new__(type(module).__bases__[0] if parametrized else type(module))
    plain.__dict__.update(module.__dict__)
    plain.__dict__["_forward_pre_hooks"] = type(module._forward_pre_hooks)(
        (k, h) for k, h in module._forward_pre_hooks.items() if k not in hooks
    )
    plain.__dict__["_modules"] = {
        k: m for k, m in module._modules.items() if k != "parametrizations"
    }
    drop = {f"{h._tensor_name}_orig" for h in hooks.values()}
    params = {k: p for k, p in module._parameters.items() if k not in drop}
    plain.__dict__["_parameters"] = {**params, **{k: nn.Parameter(v) for k, v in values.items()}}
    drop = {f"{h._tensor_name}_mask" for h in hooks.values()}
    plain.__dict__["_buffers"] = {k: b for k, b in module._buffers.items() if k not in drop}
    for k in values:
        plain.__dict__.pop(k, None)  # the pre-hook's last product, an attribute
    plain.__dict__[PARAM_ORIGINS] = {**module.__dict__.get(PARAM_ORIGINS, {}), **sources}
    return plain
