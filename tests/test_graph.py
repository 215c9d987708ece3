"""quantsearch.trace: every zoo model traces, and its metadata matches a real forward pass."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

import quantsearch
from quantsearch.errors import TraceError
from quantsearch.graph import META_KEY, NodeInfo, TensorMeta, info, node_infos
from quantsearch.models import MODELS, build_model


def _example(name: str, batch: int = 5) -> torch.Tensor:
    return torch.randn(
        batch, *MODELS.get(name).input_shape, generator=torch.Generator().manual_seed(0)
    )


def _hooked_shapes(model: nn.Module, x: torch.Tensor) -> dict[str, tuple[list, list]]:
    """Input and output TensorMeta of every leaf module, recorded by forward hooks."""
    seen: dict[str, tuple[list, list]] = {}
    handles = []
    for path, mod in model.named_modules():
        if path and not list(mod.children()):

            def hook(m: nn.Module, args: tuple, out: torch.Tensor, path: str = path) -> None:
                seen[path] = ([TensorMeta.of(a) for a in args], [TensorMeta.of(out)])

            handles.append(mod.register_forward_hook(hook))
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return seen


@pytest.mark.parametrize("name", MODELS.names())
def test_zoo_model_traces_and_metadata_matches_forward_hooks(name: str) -> None:
    torch.manual_seed(0)
    model = build_model(name).eval()
    x = _example(name)
    gm = quantsearch.trace(model, x)
    hooked = _hooked_shapes(model, x)
    module_nodes = [n for n in gm.graph.nodes if n.op == "call_module"]
    assert {str(n.target) for n in module_nodes} == set(hooked)
    for node in module_nodes:
        ni = info(node)
        ins, outs = hooked[str(node.target)]
        assert list(ni.inputs) == ins, node.name
        assert list(ni.outputs) == outs, node.name
        assert ni.module_type == f"{type(model.get_submodule(str(node.target))).__module__}." + (
            type(model.get_submodule(str(node.target))).__qualname__
        )
    with torch.no_grad():
        expected = model(x)
        assert torch.equal(gm(x), expected)
    out_node = next(n for n in gm.graph.nodes if n.op == "output")
    assert info(out_node).outputs == (TensorMeta.of(expected),)
    placeholder = next(n for n in gm.graph.nodes if n.op == "placeholder")
    assert info(placeholder).outputs == (TensorMeta(tuple(x.shape), "float32"),)


@pytest.mark.parametrize("name", MODELS.names())
def test_every_node_has_one_record_with_an_empty_precision(name: str) -> None:
    gm = quantsearch.trace(build_model(name), _example(name))
    for node in gm.graph.nodes:
        assert isinstance(node.meta[META_KEY], NodeInfo)
        assert node.meta[META_KEY].precision == {}


def test_cnn_digits_op_kinds_cover_conv_pool_and_function_calls() -> None:
    gm = quantsearch.trace(build_model("cnn-digits"), _example("cnn-digits"))
    kinds = [ni.op_kind for ni in node_infos(gm)]
    for kind in ("conv2d", "batch_norm2d", "relu", "max_pool2d", "add", "flatten", "linear"):
        assert kind in kinds
    by_kind = {ni.op_kind: ni for ni in node_infos(gm)}
    assert by_kind["add"].op == "call_function"
    assert len(by_kind["add"].inputs) == 2
    assert by_kind["flatten"].outputs[0].shape == (5, 128)
    assert by_kind["max_pool2d"].outputs[0].shape in {(5, 16, 4, 4), (5, 32, 2, 2)}


def test_jsc_tiny_op_kinds_in_order() -> None:
    gm = quantsearch.trace(build_model("jsc-tiny"), _example("jsc-tiny"))
    kinds = [ni.op_kind for ni in node_infos(gm)]
    assert kinds == ["placeholder", "batch_norm1d", "relu", "linear", "relu", "output"]


def test_trace_leaves_the_model_untouched() -> None:
    model = build_model("mlp-digits").train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    quantsearch.trace(model, _example("mlp-digits"))
    assert model.training
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k  # BatchNorm running stats not updated by the run


class _DataDependent(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:
            return x
        return -x


def test_data_dependent_control_flow_names_the_line() -> None:
    with pytest.raises(TraceError, match=r"test_graph\.py:\d+: if x\.sum\(\) > 0:"):
        quantsearch.trace(_DataDependent(), torch.ones(2, 3))


class _BufferBySize(nn.Module):
    """The positional-encoding table sliced to the sequence's length (PyTorch's transformer
    tutorial), and an index buffer expanded to the batch."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("pe", torch.randn(1, 10, 4))
        self.register_buffer("idx", torch.tensor([3, 0]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x + self.pe[:, : x.size(1)]
        return h.flatten(1).gather(1, self.idx.expand(x.size(0), -1))


class _BufferAsValue(_BufferBySize):
    """Buffers read as Python values: they trace only as tensors (the first way)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cols = self.idx.tolist()
        return x[:, cols] * 2 if self.pe.abs().sum() > 0 else x


def test_a_buffer_sliced_or_expanded_by_a_traced_size_traces() -> None:
    """fx handed the buffers over as tensors, which take no traced size: 'slice indices must
    be integers' and 'expand() takes 1 positional argument but 2 were given', refused. Traced
    with the buffers as proxies the graph computes what the model does (referee: the model),
    at another sequence length and batch too; buffers read as Python values still trace."""
    for model in (_BufferBySize(), _BufferAsValue()):
        gm = quantsearch.trace(model, torch.randn(3, 5, 4))
        for shape in ((3, 5, 4), (2, 7, 4)):
            x = torch.randn(shape)
            assert torch.equal(gm(x), model(x))


class _WrongShape(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


def test_a_failing_example_run_names_the_node() -> None:
    with pytest.raises(TraceError, match=r"running node 'fc' \(call_module fc\)") as got:
        quantsearch.trace(_WrongShape(), torch.ones(2, 3))
    assert "\n" not in str(got.value)  # fx's "While executing %fc ..." lines are dropped


class _TwoInputs(nn.Module):
    def forward(self, x: torch.Tensor, y: torch.Tensor, scale: float = 2.0) -> torch.Tensor:
        return (x + y) * scale


def test_example_inputs_are_counted_against_forward_in_one_line() -> None:
    """A user model with two inputs given one example tensor (search data give one x per
    sample): one line naming the inputs, not fx's multi-line placeholder error."""
    for given in (1, 4):
        with pytest.raises(TraceError) as got:
            quantsearch.trace(_TwoInputs(), *[torch.ones(2, 3)] * given)
        assert str(got.value) == (
            f"model: _TwoInputs.forward takes 2 input(s) (x, y, scale), got {given} example "
            "tensor(s), allowed: one per input; data give one tensor x per sample, so a model "
            "with several inputs is searched through a wrapper whose forward takes one tensor"
        )
    gm = quantsearch.trace(_TwoInputs(), torch.ones(2, 3), torch.ones(2, 3))  # the default kept
    assert torch.equal(gm(torch.ones(2, 3), torch.ones(2, 3)), torch.full((2, 3), 4.0))


class _OptionalArgs(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 2)

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None = None,
        return_features: bool = False,
        *,
        scale: float = 2.0,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        if mask is not None:
            x = x * mask
        out = self.fc(x) * scale
        if return_features:
            return out, x
        return out


def test_arguments_the_examples_leave_out_are_traced_at_their_defaults() -> None:
    """forward(x, mask=None, return_features=False, *, scale=2.0) given x: fx traced mask as
    an input, so ``if mask is not None`` took the masked branch and the example run failed
    (None * x), and ``if return_features`` was refused as control flow on a traced value. The
    arguments no example gives are traced at their defaults, as the model runs on x alone
    (torch.fx's concrete_args, its checks of them dropped): the graph takes x and computes
    the model's output (referee: the model itself)."""
    model, x = _OptionalArgs().eval(), torch.randn(4, 3)
    gm = quantsearch.trace(model, x)
    assert [n.target for n in gm.graph.nodes if n.op == "placeholder"] == ["x"]
    assert [info(n).op_kind for n in gm.graph.nodes] == ["placeholder", "linear", "mul", "output"]
    with torch.no_grad():
        assert torch.equal(gm(x), model(x))
    mask = (torch.arange(3) > 0).float().expand(4, 3)  # given: an input of the graph
    gm2 = quantsearch.trace(model, x, mask)
    assert [n.target for n in gm2.graph.nodes if n.op == "placeholder"] == ["x", "mask"]
    with torch.no_grad():
        assert torch.equal(gm2(x, mask), model(x, mask))


class _FrozenBackbone(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Linear(4, 3)
        self.head = nn.Linear(3, 2)
        self.w = nn.Parameter(torch.ones(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.size(0)
        with torch.no_grad():
            f = torch.relu(self.backbone(x)) * self.w
            parts = f.chunk(3, dim=1)
            n = x.size(0)
        return self.head(torch.cat([parts[0], parts[1], parts[2] * self.w[2]], 1)).view(n, -1)


def _grads(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor | None]:
    model.zero_grad(set_to_none=True)
    model(x).square().sum().backward()
    return {k: None if p.grad is None else p.grad.clone() for k, p in model.named_parameters()}


@pytest.mark.parametrize("context", ["no_grad", "inference_mode"])
def test_a_forward_that_runs_a_part_without_gradients_keeps_it_so(context: str) -> None:
    """A frozen backbone under ``with torch.no_grad():`` in forward: torch.fx does not record
    grad modes, so the traced graph let gradients through to the backbone, and fine-tuning
    trained what the model froze. The values computed without gradients are detached where
    the rest of the graph reads them: each parameter's gradient is the model's own (referee:
    autograd on the model), None for the backbone's; a size and a tuple read there too."""
    model = _FrozenBackbone() if context == "no_grad" else _FrozenInInferenceMode()
    x = torch.randn(5, 4)
    gm = quantsearch.trace(model, x)
    want = _grads(model, x)
    assert want["backbone.weight"] is None and want["head.weight"] is not None
    got = _grads(gm, x)  # the graph holds the parameters it reads
    for k, w in want.items():
        g = got.get(k)
        assert (g is None) == (w is None) and (w is None or torch.equal(g, w)), k
    with torch.no_grad():
        assert torch.equal(gm(x), model(x))


class _FrozenInInferenceMode(_FrozenBackbone):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            f = torch.relu(self.backbone(x))
        return self.head(f.clone())


class _StarredArgs(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 2)

    def forward(
        self, x: torch.Tensor, *extra: torch.Tensor, temperature: float = 2.0, **kw: object
    ) -> torch.Tensor:
        return self.fc(x) / temperature


def test_defaults_beside_starred_arguments_leave_no_checks_in_the_graph() -> None:
    """forward(x, *extra, temperature=2.0, **kw): fx puts the inputs for *extra and **kw after
    the specialized one, so matching them by position kept fx's checks of temperature (eq,
    _assert) in the graph, which export then refused as layers. Only the model's own
    computation remains, and it equals the model's (referee)."""
    model, x = _StarredArgs(), torch.randn(4, 3)
    gm = quantsearch.trace(model, x)
    kinds = [info(n).op_kind for n in gm.graph.nodes if n.op != "placeholder"]
    assert kinds == ["linear", "div", "output"]
    with torch.no_grad():
        assert torch.equal(gm(x), model(x))


class _MessageSums(nn.Module):
    """A graph network's aggregation: messages summed into zeros made at the batch's size."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 3)
        self.register_buffer("dst", torch.tensor([1, 0, 3, 2, 2]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.fc(x.view(-1, 5, 4))
        n = x.size(0)
        agg = torch.zeros(n, 4, 3, device=x.device, dtype=m.dtype)
        agg.index_add_(1, self.dst, m)
        ones = torch.ones(n, 1, 3)
        half = torch.full((n, 4, 3), 0.5)
        return (agg + ones * half).flatten(1)


def test_tensors_made_at_a_traced_size_trace() -> None:
    """torch.zeros(x.size(0), 4, 3, device=x.device) (a graph network's aggregation buffer),
    torch.ones and torch.full at traced sizes: fx refused them ('zeros() takes 1 positional
    argument but 2 were given'); they are graph nodes now, so the graph computes what the
    model does at another batch size (referee: the model)."""
    model = _MessageSums()
    gm = quantsearch.trace(model, torch.randn(4, 20))
    x7 = torch.randn(7, 20)
    with torch.no_grad():
        assert torch.equal(gm(x7), model(x7))


class _IteratedParts(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = torch.stack(list(x.chunk(3, dim=1)), dim=1)  # (N, 3, 2)
        b = torch.cat([self.fc(p) for p in torch.split(x, [2, 2, 2], dim=1)], 1)
        c = torch.cat([*x.tensor_split(2, dim=1)][::-1], 1)
        return torch.cat([a.flatten(1), b, c], 1)


def test_the_parts_of_a_chunk_or_split_of_known_count_iterate() -> None:
    """list(x.chunk(3)), a comprehension over torch.split(x, [2, 2, 2]) and [*x.tensor_split(2)]:
    fx refused to iterate them ('Proxy object cannot be iterated'); their count is in the
    call (chunks, the sizes' list, sections), so the parts are taken one by one, and the
    graph computes what the model does (referee), at another batch size too."""
    model, x = _IteratedParts(), torch.randn(4, 6)
    gm = quantsearch.trace(model, x)
    x5 = torch.randn(5, 6)
    with torch.no_grad():
        assert torch.equal(gm(x), model(x)) and torch.equal(gm(x5), model(x5))


class _Autocast(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc, self.out = nn.Linear(16, 8), nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            h = torch.relu(self.fc(x))
        return self.out(h.float())


def test_autocast_inside_forward_is_refused_in_one_line() -> None:
    """torch.fx records no autocast: the graph ran fc in float32 where the model runs it in
    bfloat16 (outputs 1e-3 apart), so the float baseline and every cost were another model's.
    One line naming the line of forward, and a caller's own autocast is no reason to refuse."""
    model, x = _Autocast().eval(), torch.randn(6, 16)
    with pytest.raises(TraceError) as got:
        quantsearch.trace(model, x)
    msg = str(got.value)
    assert (
        msg.startswith("cannot trace _Autocast with torch.fx at test_graph.py:") and "\n" not in msg
    )
    assert (
        "h = torch.relu(self.fc(x))" in msg and "allowed: a forward without torch.autocast" in msg
    )
    with torch.autocast("cpu", dtype=torch.bfloat16):  # the caller's: the example run's
        quantsearch.trace(nn.Sequential(nn.Linear(16, 5)), x)


class _Scripted(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        with warnings.catch_warnings():  # torch 2.13 deprecates torch.jit.script; users have it
            warnings.simplefilter("ignore", DeprecationWarning)
            self.block = torch.jit.script(nn.Sequential(nn.Linear(16, 8), nn.ReLU()))
        self.out = nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.block(x))


def test_a_torchscript_submodule_is_one_layer_with_its_parameters() -> None:
    """A submodule compiled with torch.jit.script: fx traced into it as
    ``self.block._c.forward(x)``, a call on its C++ object, and the graph held none of its
    parameters (45 counted of 181, its 136 missing from params and model size, silently).
    It is a leaf now: its parameters count (referee: sum(p.numel())), its cost is listed
    uncounted by name (never a silent zero), and the graph computes what the model does."""
    from quantsearch.passes.analysis import compute_cost, param_cost

    model, x = _Scripted().eval(), torch.randn(3, 16)
    gm = quantsearch.trace(model, x)
    assert param_cost(gm).params == sum(p.numel() for p in model.parameters()) == 181
    assert [(u.node, u.op_kind) for u in compute_cost(gm).uncounted] == [
        ("block", "recursivescriptmodule")
    ]
    with torch.no_grad():
        assert torch.equal(gm(x), model(x))


def test_a_compiled_model_traces_as_the_model_it_compiles() -> None:
    """torch.compile(model) (an OptimizedModule, as a training script leaves it): trace said
    'cannot trace OptimizedModule with torch.fx: NotImplementedError: Module
    [OptimizedModule] is missing the required "forward" function'. It traces the module it
    compiles: the same graph, the same parameter names, the model's outputs (referee)."""
    model = nn.Sequential(nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 5)).eval()
    x = torch.randn(4, 16)
    with warnings.catch_warnings():  # torch's own deprecations, raised importing dynamo
        warnings.simplefilter("ignore", DeprecationWarning)
        compiled = torch.compile(model)
    gm = quantsearch.trace(compiled, x)
    assert [info(n).op_kind for n in gm.graph.nodes] == [
        "placeholder",
        "linear",
        "relu",
        "linear",
        "output",
    ]
    assert [k for k, _ in gm.named_parameters()] == [k for k, _ in model.named_parameters()]
    with torch.no_grad():
        assert torch.equal(gm(x), model(x))


def test_a_non_module_is_rejected() -> None:
    with pytest.raises(TraceError, match=r"must be a torch\.nn\.Module"):
        quantsearch.trace(lambda x: x, torch.ones(1))  # type: ignore[arg-type]


def test_trace_keeps_each_submodules_mode() -> None:
    import torch
    from torch import nn

    from quantsearch.graph import trace

    model = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4).eval(), nn.ReLU())
    gm = trace(model, torch.randn(3, 4))
    modes = {name: m.training for name, m in gm.named_modules()}
    assert modes[""] is True and modes["0"] is True
    assert modes["1"] is False  # the eval BatchNorm stays in eval


class _TrainingDependent(nn.Module):
    """Reads self.training in forward (functional dropout, a branch) and has leaf modules
    that follow their own flags."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 8)
        self.bn = nn.BatchNorm1d(8)
        self.drop = nn.Dropout(0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.nn.functional.dropout(self.fc(x), 0.9, self.training)
        if self.training:
            x = x * 0.0
        return self.drop(self.bn(x))


def test_trace_records_the_inference_graph_whatever_the_models_mode() -> None:
    """A model in training mode traces to the graph it traces to in eval mode (fx would bake
    training=True into F.dropout and take the branch); the model's flags are left as they
    were, the graph module is in the model's mode, and in eval mode it computes what the
    model computes in eval mode."""
    torch.manual_seed(0)
    model = _TrainingDependent()
    x = torch.randn(6, 8)
    gm = quantsearch.trace(model, x)
    assert all(m.training for m in model.modules()) and gm.training
    assert gm.code == quantsearch.trace(_TrainingDependent().eval(), x).code
    assert "training = True" not in gm.code and "mul" not in gm.code
    with torch.no_grad():
        assert torch.equal(gm.eval()(x), model.eval()(x))
