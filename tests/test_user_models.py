"""User models, not the zoo's, through the user path: trace, costs, quantize, evaluate, search.

Each model is written as a user would (an ``nn.Module`` subclass) and covers constructs the zoo
does not: residual adds, cat/stack and views, functional layers (``F.linear(x, self.w)``),
grouped and depthwise convs, embeddings, attention, several outputs, ``get_attr`` parameters
and buffers, in-place ops, float64, bias-free layers, unused and tied parameters, a GRU. The referees are torch's own:
``FlopCounterMode`` for the MAC layers' FLOPs, ``sum(p.numel())`` over the model's distinct
parameters, and ``quantize(gm, config)`` run directly for every faster path's outputs.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.utils.flop_counter import FlopCounterMode

from quantsearch.data import Split
from quantsearch.errors import MetricError, TraceError
from quantsearch.formats import FixedPoint
from quantsearch.graph import trace
from quantsearch.metrics import compute_metrics
from quantsearch.passes.analysis import compute_cost, param_cost
from quantsearch.passes.analysis.sensitivity import probe
from quantsearch.passes.transform import ResolvedConfig, quantize
from quantsearch.passes.transform.graph_view import GraphView
from quantsearch.search import search
from quantsearch.search.api import prepare_search
from quantsearch.search.config import parse_search_config


class Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(16, 16)
        self.ln = nn.LayerNorm(16)
        self.fc2 = nn.Linear(16, 16)
        self.drop = nn.Dropout(0.2)
        self.out = nn.Linear(16, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + F.gelu(self.fc1(x))
        x = x + self.drop(torch.tanh(self.fc2(self.ln(x))))
        return self.out(x)


class CatViews(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(16, 8)
        self.b = nn.Linear(16, 8, bias=False)
        self.out = nn.Linear(32, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.a(x), self.b(x)
        s = torch.stack([a, b], dim=1).permute(0, 2, 1).reshape(x.shape[0], -1)
        return self.out(torch.cat([s, a.view(-1, 8), b.transpose(0, 1).t()], dim=1))


class Convs(nn.Module):
    """Conv1d and Conv2d: stride, padding, dilation, groups, depthwise; BatchNorm, pools."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv1d(2, 8, 5, stride=2, padding=2)
        self.bn1 = nn.BatchNorm1d(8)
        self.c2 = nn.Conv2d(2, 8, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(8)
        self.dw = nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=8, bias=False)
        self.gc = nn.Conv2d(8, 16, 3, padding=2, dilation=2, groups=4)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8 * 2 + 16, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = F.max_pool1d(torch.relu(self.bn1(self.c1(x.view(-1, 2, 8)))), 2)  # N, 8, 2
        b = torch.relu(self.bn2(self.c2(x.view(-1, 2, 2, 4))))
        b = self.pool(self.gc(self.dw(F.avg_pool2d(b, 1))))  # N, 16, 1, 1
        return self.fc(torch.cat([a.flatten(1), b.flatten(1)], 1))


class Attention(nn.Module):
    def __init__(self, d: int = 8, t: int = 2) -> None:
        super().__init__()
        self.t, self.d = t, d
        self.q, self.k, self.v = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d)
        self.o = nn.Linear(d * t, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.view(-1, self.t, self.d)
        q, k, v = self.q(x), self.k(x), self.v(x)
        a = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(self.d), dim=-1)
        return self.o(torch.bmm(a, v).flatten(1))


class Embed(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(32, 8)
        self.fc = nn.Linear(8 * 4, 5)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.fc(self.emb(idx).flatten(1))


class ParamsAndBuffers(nn.Module):
    """Parameters and buffers used directly (get_attr), constants, in-place ops."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.full((16,), 0.5))
        self.register_buffer("shift", torch.linspace(-1, 1, 16))
        self.a = nn.Linear(16, 16)
        self.act = nn.ReLU(inplace=True)
        self.fc = nn.Linear(16, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self.a(x * self.scale + self.shift))
        y += x
        return self.fc(F.relu(y * 2.0 - 1.0, inplace=True)) / 3.0


class TiedUnused(nn.Module):
    """A Linear called twice, a weight tied to an embedding's, parameters never used."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(16, 16)
        self.emb = nn.Embedding(5, 16)
        self.head = nn.Linear(16, 5, bias=False)
        self.head.weight = self.emb.weight
        self.spare = nn.Linear(16, 100)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.head(torch.relu(self.a(torch.relu(self.a(x)))))
        return h + self.emb.weight.sum(1)  # the tied tensor fetched by get_attr too


class Recurrent(nn.Module):
    """A GRU over 4 steps of 4 features (a leaf module to torch.fx), its last state classified."""

    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.GRU(4, 8, batch_first=True)
        self.fc = nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, h = self.rnn(x.view(-1, 4, 4))
        return self.fc(h[0] + out[:, -1])


class Functional(nn.Module):
    """Layers written with their own parameters: F.conv1d, F.linear (one read through .t(),
    one tied weight read twice) and a matmul with a parameter."""

    def __init__(self) -> None:
        super().__init__()
        self.k = nn.Parameter(torch.randn(4, 1, 3) * 0.5)
        self.w = nn.Parameter(torch.randn(64, 16) * 0.2)  # stored (in, out), read as .t()
        self.b = nn.Parameter(torch.zeros(16))
        self.sq = nn.Parameter(torch.randn(16, 16) * 0.3)
        self.m = nn.Parameter(torch.randn(16, 5) * 0.3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(F.conv1d(x.view(-1, 1, 16), self.k, None, 1, 1)).flatten(1)
        h = torch.relu(F.linear(h, self.w.t(), self.b))
        h = torch.relu(F.linear(torch.relu(F.linear(h, self.sq)), self.sq))
        return h @ self.m


class Float64(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(16, 8)
        self.b = nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(torch.sigmoid(self.a(x)))


MODELS: dict[str, type[nn.Module]] = {
    m.__name__: m
    for m in (
        Residual,
        CatViews,
        Convs,
        Attention,
        Embed,
        ParamsAndBuffers,
        TiedUnused,
        Recurrent,
        Functional,
        Float64,
    )
}


def _model_and_data(name: str, n: int = 64) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    model = MODELS[name]().eval()
    if name == "Embed":
        x = torch.randint(0, 32, (n, 4), generator=g)
    else:
        x = torch.randn(n, 16, generator=g)
    if name == "Float64":
        model, x = model.double(), x.double()
    return model, x, torch.randint(0, 5, (n,), generator=g)


def _random_configs(gm: fx.GraphModule, n: int, seed: int) -> list[ResolvedConfig]:
    """``n`` per-node configs: every quantizable role unset or a random fixed(w, f)."""
    rng = random.Random(seed)
    view = GraphView(gm)
    out = []
    for _ in range(n):
        table: dict[str, dict[str, Any]] = {}
        for name, cand in view.candidates.items():
            roles = {}
            for role in cand.spec.roles:
                if not cand.lacks(role) and rng.random() < 0.8:
                    w = rng.randint(2, 12)
                    roles[role] = FixedPoint(w, rng.randint(0, w - 1)).to_dict()
            if roles:
                table[name] = roles
        out.append(ResolvedConfig.from_dict(table, gm=gm))
    return out


@pytest.mark.parametrize("name", MODELS)
def test_costs_match_torch(name: str) -> None:
    """MAC-layer FLOPs against FlopCounterMode (which counts only those); parameters against
    sum(p.numel()) over the distinct parameters the forward uses (the tied weight once; a
    parameter no node uses is not in the traced graph, so not in its size)."""
    model, x, _ = _model_and_data(name, 6)
    gm = trace(model, x)
    cost = compute_cost(gm)
    assert cost.uncounted == ()
    with FlopCounterMode(display=False) as fcm:
        model(x)
    assert 2 * cost.macs == fcm.get_total_flops()
    used = {id(p): p.numel() for n, p in model.named_parameters() if not n.startswith("spare.")}
    assert param_cost(gm).params == sum(used.values())


@pytest.mark.parametrize("name", MODELS)
def test_every_evaluation_path_equals_quantize(name: str) -> None:
    """For random per-node configs: the prepared model's slots give quantize()'s outputs bit
    for bit, and Evaluator.evaluate, evaluate_many and compute_metrics on quantize()'s
    module give the same metrics."""
    model, x, y = _model_and_data(name)
    gm = trace(model, x[:8])
    data = Split(x, y)
    names = ["accuracy", "loss", "model_size_bits", "bitops", "flops"]
    cfg = parse_search_config(
        {
            "space": {"by": "type", "choices": {"linear": {"weight": [[8, 4], [4, 2]]}}},
            "objectives": {"accuracy": {"direction": "maximize"}},
            "metrics": names,
            "device": "cpu",  # where quantize()'s module, the referee, runs
        }
    )
    _, evaluator = prepare_search(gm, cfg, data)
    configs = _random_configs(gm, 3, seed=1)
    many = evaluator.evaluate_many(configs)
    for rc, pop in zip(configs, many, strict=True):
        qgm = quantize(gm, rc)
        with torch.no_grad():
            assert torch.equal(evaluator.prepared().apply_(rc)(x), qgm(x))
        one = evaluator.evaluate(rc)
        assert one.error is None and pop.error is None
        assert one.metrics == pop.metrics
        assert one.metrics is not None
        assert {k: one.metrics[k] for k in names} == compute_metrics(qgm, names, data=data)
        assert param_cost(qgm).params == param_cost(gm).params  # copies of a tensor: once


class TwoOutputs(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(16, 5)
        self.b = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"logits": self.a(x), "aux": self.b(x)}


SPACE = {"by": "type", "choices": {"linear": {"weight": [[8, 4], [4, 2]]}}}


def test_several_outputs_need_an_evaluate_function() -> None:
    """The built-in classification metrics refuse a dict output in one line (it was an
    AttributeError traceback from the float model's baseline); a user's evaluate function
    reads the outputs it wants."""
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 16, generator=g), torch.randint(0, 5, (64,), generator=g)
    model = TwoOutputs().eval()
    kw: dict[str, Any] = {"strategy": "brute_force", "n_trials": 2, "progress": False}
    with pytest.raises(MetricError, match=r"^the classification metrics need a model that "):
        search(model, (x, y), space=SPACE, objectives={"accuracy": {}}, **kw)

    def evaluate(m: nn.Module, batches: Any) -> dict[str, float]:
        hits = [(m(xb)["logits"].argmax(1) == yb).float() for xb, yb in batches]
        return {"hits": float(torch.cat(hits).mean())}

    result = search(
        model, (x, y), space=SPACE, objectives={"hits": {"direction": "maximize"}},
        evaluate=evaluate, **kw,
    )  # fmt: skip
    for trial in result.trials:
        qgm = result.model(trial)
        assert trial.metrics["hits"] == float((qgm(x)["logits"].argmax(1) == y).float().mean())


def test_sensitivity_probes_a_model_of_integer_input() -> None:
    """An embedding's indices cannot require grad (the probe asked them to: a RuntimeError
    traceback from the sensitivity strategy); the Fisher at the last layer is the closed form
    of summed cross-entropy's output gradient, (softmax(z) - onehot(y))^2."""
    model, x, y = _model_and_data("Embed")
    gm = trace(model, x[:8])
    fisher = probe(gm, x, y, ["fc"])["fc"].fisher
    with torch.no_grad():
        z = model(x)
    want = (torch.softmax(z, 1) - F.one_hot(y, 5)) ** 2
    torch.testing.assert_close(fisher, want)
    result = search(
        model, (x, y), strategy="sensitivity", n_trials=3, progress=False,
        space={"by": "name", "choices": {"linear": {"weight": [[8, 4], [4, 2], [2, 1]]}}},
        objectives={"accuracy": {"direction": "maximize"},
                    "model_size_bits": {"direction": "minimize", "weight": 0.2}},
    )  # fmt: skip
    assert len(result.trials) == 3


class TwoInputs(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(16, 8)
        self.b = nn.Linear(16, 8)
        self.out = nn.Linear(8, 5)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.a(x) + self.b(y)))


def test_a_graph_of_two_inputs_is_refused_before_any_trial() -> None:
    """Traced with two example inputs, then searched on data of one tensor per sample: a
    TypeError traceback from the float baseline, and evaluate_many fed x to both inputs
    (metrics of model(x, x), where evaluate failed every config)."""
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 16, generator=g), torch.randint(0, 5, (64,), generator=g)
    gm = trace(TwoInputs().eval(), x[:8], x[:8])
    kw: dict[str, Any] = {"space": SPACE, "objectives": {"accuracy": {}}}
    with pytest.raises(TraceError, match=r"^model: TwoInputs\.forward takes 2 input\(s\) \(x, y\)"):
        search(gm, (x, y), strategy="brute_force", n_trials=2, progress=False, **kw)
    with pytest.raises(TraceError, match=r"got 1 example tensor"):
        prepare_search(gm, parse_search_config(kw), Split(x, y))


FUNCTIONAL_FILE = """
import torch
import torch.nn.functional as F
from torch import nn


class FnMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.w1 = nn.Parameter(torch.randn(32, 64) * 0.1)
        self.b1 = nn.Parameter(torch.zeros(32))
        self.w2 = nn.Parameter(torch.randn(32, 10) * 0.1)

    def forward(self, x):
        h = F.dropout(F.relu(F.linear(x, self.w1, self.b1)), 0.5, self.training)
        return h @ self.w2


def build():
    torch.manual_seed(0)
    return FnMLP()  # in training mode, as built
"""

FUNCTIONAL_SEARCH = """
seed = 0
[model]
name = "fn.py:build"
checkpoint = "fn.pt"
[data]
name = "digits"
eval_samples = 64
[search]
n_trials = 4
[search.strategy]
name = "brute_force"
[search.space.choices.linear]
weight = [[8, 4], [2, 1]]
[search.space.choices.matmul]
weight = [[8, 4], [2, 1]]
[search.objectives]
accuracy = { direction = "maximize" }
model_size_bits = { direction = "minimize" }
"""


def test_cli_search_quantizes_a_function_form_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """quantsearch search on a user model of F.linear and x @ self.w with its own parameters:
    by_type linear and matmul weight knobs reach them, each choice priced at its width (the
    weights were left in float before), and the functional dropout is traced as in eval."""
    from quantsearch.checkpoint import save_checkpoint
    from quantsearch.cli import main
    from quantsearch.models import build_model

    monkeypatch.chdir(tmp_path)
    (tmp_path / "fn.py").write_text(FUNCTIONAL_FILE)
    (tmp_path / "s.toml").write_text(FUNCTIONAL_SEARCH)
    model = build_model(str(tmp_path / "fn.py") + ":build")
    save_checkpoint(tmp_path / "fn.pt", model, model_name="fn.py:build", dataset="digits")
    main(["search", "-c", "s.toml", "-q"])
    rows = [
        json.loads(line) for line in (tmp_path / "runs/s/trials.jsonl").read_text().splitlines()
    ]
    sizes = {
        (r["params"]["linear.weight"], r["params"]["matmul.weight"]): r["metrics"][
            "model_size_bits"
        ]
        for r in rows
    }
    w1, b1, w2 = 32 * 64, 32 * 32, 32 * 10  # b1 in float
    assert sizes == {
        (a, b): w1 * wa + b1 + w2 * wb
        for a, wa in (("fixed(8,4)", 8), ("fixed(2,1)", 2))
        for b, wb in (("fixed(8,4)", 8), ("fixed(2,1)", 2))
    }
    accuracies = {
        r["metrics"]["accuracy"] for r in rows if r["params"]["linear.weight"] == "fixed(8,4)"
    }
    assert len(rows) == 4 and accuracies  # evaluated, not failed
