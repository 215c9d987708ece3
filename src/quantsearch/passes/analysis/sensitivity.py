"""Per-node quantization sensitivity: a Fisher-weighted output perturbation, without evaluations.

HAWQ-V2/V3 (Dong et al., 2020; Yao et al., 2021) predict the loss a layer's quantization costs
as ``0.5 * trace(H) * ||Q(w) - w||^2 / n``: a second-order Taylor term with the Hessian's mean
eigenvalue. This pass uses the same second-order term with two changes that make it cheap and
closer to the network's actual behaviour:

* the curvature is the empirical Fisher at the node's *output* (the squared per-sample gradient
  of the loss, ``g = dL_s/dy``), a diagonal Gauss-Newton approximation of the Hessian that one
  backward pass gives for every node (Fisher pruning, Theis et al. 2018; the "Fisher-weighted
  output perturbation" of Liu et al. 2021 for mixed precision);
* the perturbation is that of the node's output, ``dy = f(Q(x); Q(w), Q(b)) - f(x; w, b)``, with
  the roles a config quantizes quantized at once, on recorded inputs, so weight and input
  perturbations are seen through the layer that consumes them (not as ``||dw||^2`` alone).

The predicted damage of a node's formats is ``0.5 * mean_s sum_j g_sj^2 dy_sj^2`` (nats of
cross-entropy per sample). It is additive over nodes by assumption (HAWQ's too): cross-terms
between layers are dropped. The search strategy that reads it
(:mod:`quantsearch.search.strategies.sensitivity`) rescales it per node from real evaluations.

Example:
    >>> import torch
    >>> from quantsearch.formats import FixedPoint
    >>> from quantsearch.graph import trace
    >>> from quantsearch.passes.transform import LayerQuant
    >>> torch.manual_seed(0) and None
    >>> gm = trace(torch.nn.Sequential(torch.nn.Linear(4, 3)), torch.randn(8, 4))
    >>> probes = probe(gm, torch.randn(32, 4), torch.randint(0, 3, (32,)))
    >>> coarse = output_damage(gm, probes["_0"], LayerQuant(weight=FixedPoint(4, 1)))
    >>> fine = output_damage(gm, probes["_0"], LayerQuant(weight=FixedPoint(16, 8)))
    >>> coarse.loss > fine.loss > 0
    True
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, fx

from quantsearch.errors import ConfigError
from quantsearch.graph import info
from quantsearch.graph_tracer import ADDED_DETACH
from quantsearch.passes.analysis.tensors import PARAM_ARGS, WEIGHT_OPERAND_KINDS
from quantsearch.passes.transform.layer import LayerQuant
from quantsearch.passes.transform.modules import QUANTIZERS

__all__ = ["Damage", "NodeProbe", "output_damage", "probe"]


@dataclass(frozen=True)
class NodeProbe:
    """What one node saw on the probe data: its arguments, output and output gradient.

    Attributes:
        node: the node's name.
        args: the node's positional arguments as they were evaluated (tensors detached).
        kwargs: its keyword arguments.
        output: its float output.
        fisher: the squared per-sample loss gradient at the output (same shape as ``output``).
    """

    node: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    output: Tensor
    fisher: Tensor
    jacobian: Tensor  # d logits / d output per sample: (classes, samples, *output.shape[1:])
    margins: Tensor  # logit of the label minus every other logit: (samples, classes)
    labels: Tensor  # (samples,)


class _Recorder(fx.Interpreter):
    def __init__(self, gm: fx.GraphModule, wanted: set[str]) -> None:
        super().__init__(gm)
        self.wanted = wanted
        self.seen: dict[str, tuple[tuple[Any, ...], dict[str, Any], Tensor]] = {}

    def run_node(self, n: fx.Node) -> Any:
        if n.meta.get(ADDED_DETACH):
            # trace's detach after what forward computes without gradients (a frozen
            # backbone): the probe sees how the loss changes with its values all the same
            return self.env[n.all_input_nodes[0]]
        out = super().run_node(n)
        if n.name in self.wanted and isinstance(out, Tensor) and out.requires_grad:
            out.retain_grad()
            args, kwargs = self.fetch_args_kwargs_from_env(n)
            self.seen[n.name] = (args, kwargs, out)
        return out


def _detach(value: Any) -> Any:
    if isinstance(value, Tensor):
        return value.detach()
    if isinstance(value, (tuple, list)):
        return type(value)(_detach(v) for v in value)
    return value


def _check_logits(logits: Any, y: Tensor) -> None:
    """One tensor of class scores for every label: cross_entropy raised torch's IndexError on
    a scalar (a model returning a loss) or on fewer scores than the largest label."""
    scores = isinstance(logits, Tensor) and logits.ndim == 2 and logits.shape[0] == len(y)
    if scores and (not len(y) or logits.shape[1] > int(y.max())):
        return
    got = (
        f"output of shape {tuple(logits.shape)}"
        if isinstance(logits, Tensor)
        else f"a {type(logits).__name__} output"
    )
    raise ConfigError(
        f"sensitivity: got {got}, allowed: one tensor of logits of shape ({len(y)}, classes), "
        f"a column for each label (it predicts accuracy drops from the cross-entropy's gradients)"
    )


def probe(
    gm: fx.GraphModule, x: Tensor, y: Tensor, nodes: Iterable[str] = ()
) -> dict[str, NodeProbe]:
    """Run ``(x, y)`` through the float graph once, forward and backward, recording ``nodes``.

    The loss is the summed cross-entropy, so each sample's output gradient is that of its own
    loss (in eval mode samples do not interact). ``nodes`` empty: every call node.
    """
    if y.is_floating_point() or y.dim() != 1:  # cross_entropy raised a RuntimeError on them
        raise ConfigError(
            f"sensitivity: got {y.dtype} targets of shape {tuple(y.shape)}, allowed: class "
            f"labels (it predicts accuracy drops from the cross-entropy's gradients)"
        )
    wanted = set(nodes) or {n.name for n in gm.graph.nodes if n.op.startswith("call_")}
    was_training = gm.training
    gm.eval()
    try:
        with torch.enable_grad():
            rec = _Recorder(gm, wanted)
            # so every node's output has a grad; integer input (an embedding's indices) has
            # none, and its nodes get theirs from the parameters
            xg = x.detach().clone().requires_grad_(x.is_floating_point())
            logits = rec.run(xg)
            _check_logits(logits, y)
            outs = {name: o for name, (_, _, o) in rec.seen.items()}
            loss = F.cross_entropy(logits, y.long(), reduction="sum")
            names = list(outs)
            # a node the loss reaches through no gradient (a branch the user detached: a
            # straight-through rounding) has none: its Fisher is 0
            grads = torch.autograd.grad(
                loss, [outs[n] for n in names], retain_graph=True, allow_unused=True
            )
            fisher = {
                n: torch.zeros_like(outs[n]) if g is None else g.detach() ** 2
                for n, g in zip(names, grads, strict=True)
            }
            # One backward pass per class: each sample's logits depend on its own input only.
            jac: dict[str, list[Tensor]] = {n: [] for n in names}
            for k in range(logits.shape[1]):
                gk = torch.autograd.grad(
                    logits[:, k].sum(),
                    [outs[n] for n in names],
                    retain_graph=True,
                    allow_unused=True,
                )
                for n, g in zip(names, gk, strict=True):
                    jac[n].append(torch.zeros_like(outs[n]) if g is None else g.detach())
    finally:
        gm.train(was_training)
    z = logits.detach()
    margins = z.gather(1, y.long().view(-1, 1)) - z
    out: dict[str, NodeProbe] = {}
    for name, (args, kwargs, o) in rec.seen.items():
        out[name] = NodeProbe(
            name,
            _detach(args),
            _detach(kwargs),
            o.detach(),
            fisher[name],
            torch.stack(jac[name]),
            margins,
            y.long(),
        )
    return out


_PARAM_OPERANDS = frozenset(PARAM_ARGS) | WEIGHT_OPERAND_KINDS


def _q(fmt: Any, value: Any) -> Any:
    if fmt is None:
        return value
    if isinstance(value, Tensor) and value.is_floating_point():
        return fmt.quantize(value)
    return value


def _node_call(
    gm: fx.GraphModule, node: fx.Node, args: tuple[Any, ...], kwargs: dict[str, Any], lq: LayerQuant
) -> Tensor:
    """The node's output with ``lq``'s formats applied to its inputs and parameters (a
    function-form layer's parameter operands, ``F.linear(x, self.w)``, as quantize applies
    them: by the module it builds)."""
    kind = info(node).op_kind
    if node.op != "call_module" and kind in _PARAM_OPERANDS and kind in QUANTIZERS:
        layer = QUANTIZERS.get(kind).build(node, None, lq, False)
        result_: Tensor = layer.eval()(*args, **kwargs)
        return result_
    qargs = tuple(_q(lq.format("data_in"), a) for a in args)
    if node.op == "call_module":
        module = gm.get_submodule(str(node.target))
        params = {
            role: _q(lq.format(role), getattr(module, role))
            for role in ("weight", "bias")
            if isinstance(getattr(module, role, None), Tensor)
        }
        out = torch.func.functional_call(module, params, qargs, kwargs)
    elif node.op == "call_function":
        out = node.target(*qargs, **kwargs)  # type: ignore[operator]
    else:  # call_method
        out = getattr(qargs[0], str(node.target))(*qargs[1:], **kwargs)
    result: Tensor = _q(lq.format("data_out"), out)
    return result


@dataclass(frozen=True)
class Damage:
    """What quantizing one node with some formats is predicted to cost, before any evaluation.

    Attributes:
        loss: the second-order loss increase, nats per sample (HAWQ's term, Fisher-weighted).
        accuracy_drop: the share of probe samples whose prediction the linearised logit change
            turns from right to wrong, minus those it turns from wrong to right.
    """

    loss: float
    accuracy_drop: float


def output_damage(gm: fx.GraphModule, p: NodeProbe, lq: LayerQuant) -> Damage:
    """Predicted damage of quantizing node ``p.node`` alone with ``lq`` (:class:`Damage`).

    ``loss = 0.5 * mean_s sum_j F_sj dy_sj^2`` with ``F`` the node's output Fisher and
    ``dy = y_q - y``; ``accuracy_drop`` moves each sample's logits by ``J_s dy_s`` (``J`` the
    Jacobian of the logits at the node's output) and counts the samples that change side.
    """
    node = next(n for n in gm.graph.nodes if n.name == p.node)
    with torch.no_grad():
        dy = _node_call(gm, node, p.args, p.kwargs, lq) - p.output
        n = max(1, p.output.shape[0]) if p.output.dim() else 1
        loss = float(0.5 * (p.fisher * dy.double() ** 2).sum() / n)
        dz = (p.jacobian * dy.unsqueeze(0)).flatten(2).sum(2).T  # (samples, classes)
        dm = dz.gather(1, p.labels.view(-1, 1)) - dz
        before = (p.margins >= 0).all(1)
        after = (p.margins + dm >= 0).all(1)
        drop = float((before & ~after).sum() - (~before & after).sum()) / n
    return Damage(loss, drop)
