"""A layer as its forward computes it, for the quantize pass to round what it multiplies by.

Weight norm and spectral norm (``torch.nn.utils.parametrizations``) compute ``weight`` from
other tensors on every access, and pruning (``torch.nn.utils.prune``) sets ``weight = weight_orig
* weight_mask`` in a forward pre-hook. A quantized layer built from such a module lost the
computed ``weight`` (a re-classed parametrized module has none: an AttributeError) or rounded a
weight the pre-hook then overwrote with the float product (the pruned layer ran unquantized).
:func:`plain_layer` gives a copy with those made permanent, as
``parametrize.remove_parametrizations(leave_parametrized=True)`` and ``prune.remove`` do; the
model's own module is left as it is.
"""

from __future__ import annotations

import copy

from torch import nn
from torch.nn.utils import parametrize, prune

__all__ = ["plain_layer"]


def plain_layer(module: nn.Module) -> nn.Module:
    """``module`` itself, or, for a parametrized or pruned one, a copy whose ``weight`` (and
    any other such tensor) is a plain parameter holding the value its forward uses.

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
    pruned = [
        h._tensor_name
        for h in module._forward_pre_hooks.values()
        if isinstance(h, prune.BasePruningMethod)
    ]
    if not pruned and not parametrize.is_parametrized(module):
        return module
    plain = copy.deepcopy(module)
    for name in pruned:
        prune.remove(plain, name)  # type: ignore[no-untyped-call]  # the copy's own hook
    if parametrize.is_parametrized(module):
        # Not remove_parametrizations: it deletes the property from the class, which the copy
        # shares with the model's module (torch makes one ParametrizedLinear class per module).
        names = list(module._modules["parametrizations"]._modules)  # type: ignore[union-attr]
        values = {k: getattr(module, k).detach().clone() for k in names}
        del plain._modules["parametrizations"]
        plain.__class__ = type(module).__bases__[0]
        for k, value in values.items():
            plain._parameters[k] = nn.Parameter(value)
    return plain
