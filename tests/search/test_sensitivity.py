"""The sensitivity strategy and its damage probe, checked against referees we did not write:
a linear model whose linearisation is exact, compute_metrics on the quantized graph, and
brute-force enumeration of the predicted program on a small space.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from quantsearch.cli import main
from quantsearch.config import load_config
from quantsearch.data import DataSplits
from quantsearch.errors import ConfigError
from quantsearch.formats import FixedPoint
from quantsearch.graph import trace
from quantsearch.metrics import compute_metrics
from quantsearch.models import MODELS, build_model
from quantsearch.passes.analysis.sensitivity import output_damage, probe
from quantsearch.passes.transform import LayerQuant, ResolvedConfig, quantize
from quantsearch.report.build import build_report
from quantsearch.search import search
from quantsearch.search.api import prepare_search
from quantsearch.search.config import parse_search_config
from quantsearch.search.sensitivity import sensitivity_tables
from quantsearch.search.space import SearchSpace

CHOICES = [[16, 8], [8, 4], [6, 4], [4, 2], [4, 3]]
SPACE = {
    "by": "name",
    "choices": {"linear": {"data_in": CHOICES, "weight": CHOICES, "bias": "same_as_weight"}},
}  # 3 linear layers x 2 roles: 5^6 = 15,625 points
OBJ = {
    "accuracy": {"direction": "maximize"},
    "bitops": {"direction": "minimize", "weight": 0.5, "relative_to_baseline": True},
}
CONS = {"accuracy_drop": {"max": 0.02}}


def run(mlp: nn.Module, digits: DataSplits, seed: int = 0, n: int = 15, **kw: object):  # type: ignore[no-untyped-def]
    return search(
        mlp, digits.val, space=SPACE, objectives=OBJ, constraints=CONS,
        strategy={"name": "sensitivity", "options": kw}, n_trials=n, seed=seed,
    )  # fmt: skip


def test_linearised_drop_is_exact_on_a_linear_model() -> None:
    # logits = W x + b: the Jacobian is exact, so the predicted drop is the measured one
    torch.manual_seed(0)
    x = torch.randn(400, 16)
    model = nn.Linear(16, 5)
    y = model(x).argmax(1)
    y[:40] = (y[:40] + 1) % 5  # some wrong predictions, so both directions of change count
    gm = trace(nn.Sequential(model), x[:8])
    (p,) = probe(gm, x, y).values()
    changed = 0
    for fmt in (FixedPoint(3, 2), FixedPoint(4, 3), FixedPoint(5, 4), FixedPoint(8, 6)):  # no ties
        lq = LayerQuant(weight=fmt, bias=fmt)
        q = quantize(gm, ResolvedConfig({p.node: lq}))
        with torch.no_grad():
            measured = int((gm(x).argmax(1) == y).sum() - (q(x).argmax(1) == y).sum())
        changed += measured != 0
        assert output_damage(gm, p, lq).accuracy_drop * len(x) == pytest.approx(measured, abs=1e-9)
    assert changed >= 2


def _space_and_tables(mlp: nn.Module, digits: DataSplits):  # type: ignore[no-untyped-def]
    cfg = parse_search_config({"space": SPACE, "objectives": OBJ, "constraints": CONS})
    gm = trace(mlp.eval(), digits.val.x[:8])
    space, ev = prepare_search(gm, cfg, digits.val)
    return space, ev, sensitivity_tables(space, ev, ["bitops", "model_size_bits", "macs"])


def test_analytic_costs_are_exact(mlp: nn.Module, digits: DataSplits) -> None:
    space, ev, t = _space_and_tables(mlp, digits)
    rng = np.random.default_rng(0)
    for _ in range(12):
        choice = {k.name: int(rng.integers(k.size)) for k in space.knobs}
        qgm = quantize(ev.gm, ev.resolve(space.layer_formats(choice)))
        truth = compute_metrics(qgm, ["bitops", "model_size_bits", "macs"])
        for m, v in truth.items():
            pred = t.ref[m]
            for gi, g in enumerate(t.groups):
                j = np.ravel_multi_index(
                    tuple(choice[space.knobs[i].name] for i in g),
                    tuple(space.knobs[i].size for i in g),
                )
                pred += t.delta[gi][m][j]
            assert pred == pytest.approx(v, rel=1e-12)


def test_first_proposal_is_the_brute_force_optimum_of_the_prediction(
    mlp: nn.Module, digits: DataSplits
) -> None:
    space, ev, t = _space_and_tables(mlp, digits)
    base = ev.baseline()
    knobs = space.knobs
    n = len(digits.val)

    def predicted(combo: tuple[int, ...]) -> float | None:
        drop = sum(t.drop[i][c] for i, c in enumerate(combo))
        if drop > 0.02 - 1.0 / n:
            return None
        bitops = t.ref["bitops"]
        for gi, g in enumerate(t.groups):
            bitops += t.delta[gi]["bitops"][
                np.ravel_multi_index(tuple(combo[i] for i in g), tuple(knobs[i].size for i in g))
            ]
        return float(base["accuracy"] - drop - 0.5 * bitops / base["bitops"])

    values = [predicted(c) for c in itertools.product(*(range(k.size) for k in knobs))]
    best = max(v for v in values if v is not None)
    first = space.decode(run(mlp, digits, n=1, jitter=0.0).trials[0].params)
    assert predicted(tuple(first[k.name] for k in knobs)) == pytest.approx(best, abs=1e-9)


def test_never_repeats_is_seeded_and_seeds_differ(mlp: nn.Module, digits: DataSplits) -> None:
    # The seed draws the damage scales' jitter; at the default spread (0.15) two seeds may
    # propose the same points on a model whose predicted optima are far apart (the fixture's
    # weights depend on the torch threads it was trained with), so the spread here is wide.
    a, b, c = (run(mlp, digits, seed=s, jitter=1.0) for s in (0, 0, 1))
    points = [tuple(t.params.values()) for t in a.trials]
    assert len(set(points)) == len(points) == 15  # never a point already proposed
    assert a.n_evaluations == 15 and not any(t.cached for t in a.trials)
    assert [t.params for t in a.trials] == [t.params for t in b.trials]
    assert [t.params for t in a.trials] != [t.params for t in c.trials]


def test_rejects_what_it_cannot_predict(mlp: nn.Module, digits: DataSplits) -> None:
    with pytest.raises(
        ConfigError, match=r"options\.nope: got 1, allowed: options \['jitter', 'keep', 'ridge'\]"
    ):
        run(mlp, digits, n=1, nope=1)
    with pytest.raises(ConfigError, match="pareto"):
        search(
            mlp, digits.val, space=SPACE, strategy="sensitivity", n_trials=1,
            objectives={"combine": "pareto", "accuracy": {"direction": "maximize"},
                        "bitops": {"direction": "minimize"}},
        )  # fmt: skip


def test_summary_table_and_report_picture(
    mlp: nn.Module, digits: DataSplits, mlp_checkpoint: Path, write_config: Callable[..., Path],
    capsys: pytest.CaptureFixture[str], tmp_path: Path,
) -> None:  # fmt: skip
    config = write_config(
        f'[model]\nname = "mlp-digits"\ncheckpoint = "{mlp_checkpoint}"\n[search.space]\nby = "name"\n'
        "[search.space.choices.linear]\ndata_in = [[16, 8], [4, 2]]\nweight = [[8, 4], [4, 3]]\n"
        '[search.objectives]\naccuracy = { direction = "maximize" }\n'
    )
    main(["summary", "--config", str(config), "--sensitivity", "--json"])
    rows = json.loads(capsys.readouterr().out)["sensitivity"]
    assert [r["parameter"] for r in rows] == [
        f"seq_blocks_{i}.{role}" for i in (0, 3, 6) for role in ("data_in", "weight")
    ]
    assert all(set(r) == {"parameter", "4 bits", "8 bits" if "weight" in r["parameter"] else "16 bits",
                          "loss at cheapest"} for r in rows)  # fmt: skip
    search(
        mlp, digits.val, space=SPACE, objectives=OBJ, constraints=CONS, strategy="sensitivity",
        n_trials=2, run_dir=tmp_path / "run",
    )  # fmt: skip
    report = build_report(tmp_path / "run")
    (fig,) = [f for f in report.figures if f.name == "sensitivity"]
    assert fig.data.col_labels == tuple(  # type: ignore[union-attr]
        f"seq_blocks_{i}.{role}" for i in (0, 3, 6) for role in ("data_in", "weight")
    )


@pytest.mark.parametrize(
    ("example", "model", "size", "cost"),
    [
        ("cnn_digits_layers", "cnn-digits", 22**8, "bitops"),
        ("mlp_digits_layers", "mlp-digits", 22**6, "model_size_bits"),
    ],
)
def test_per_layer_examples_are_the_issue_spaces(
    example: str, model: str, size: int, cost: str
) -> None:
    config = load_config(Path(__file__).parents[2] / "src/quantsearch/examples" / f"{example}.toml")
    spec = MODELS.get(model)
    gm = trace(build_model(model).eval(), torch.zeros(2, *spec.input_shape))
    space = SearchSpace(config.search.space, gm)
    assert space.size == size and all(k.size == 22 for k in space.knobs)
    s = config.search
    assert s.strategy.name == "sensitivity" and s.combine == "weighted_sum"
    assert [(o.metric, o.direction, o.weight, o.relative_to_baseline) for o in s.objectives] == [
        ("accuracy", "maximize", 1.0, False),
        (cost, "minimize", 0.5, True),
    ]
    assert [(c.metric, c.kind, c.bound) for c in s.constraints] == [("accuracy", "drop", 0.02)]


class _Outputs(nn.Module):
    """8 features to what ``kind`` names: a scalar loss, a tuple, or 3 scores for 5 labels."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self.fc = nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> object:
        y = self.fc(x)
        return {"scalar": y.mean(), "tuple": (y, y), "three": y[:, :3]}[self.kind]


@pytest.mark.parametrize(
    ("kind", "got"),
    [
        ("scalar", r"output of shape \(\)"),
        ("tuple", "a tuple output"),
        ("three", r"output of shape \(6, 3\)"),
    ],
)
def test_probe_refuses_outputs_that_are_no_logits_of_the_labels(kind: str, got: str) -> None:
    """A model returning a scalar loss, or fewer columns than the labels need: cross_entropy
    raised torch's IndexError (summary --sensitivity: an internal error with a traceback);
    one ConfigError in the form '<key>: got <given>, allowed: <allowed>'."""
    x, y = torch.randn(6, 8), torch.tensor([0, 1, 2, 3, 4, 0])
    gm = trace(_Outputs(kind), x)
    with pytest.raises(
        ConfigError,
        match=rf"^sensitivity: got {got}, allowed: one tensor of logits of shape \(6, classes\)",
    ):
        probe(gm, x, y)


class _Detached(nn.Module):
    """A straight-through rounding written in forward (``h + (round(4 h) / 4 - h).detach()``)
    and, with ``frozen``, its first layer under torch.no_grad()."""

    def __init__(self, frozen: bool) -> None:
        super().__init__()
        self.frozen = frozen
        self.fc1, self.fc2 = nn.Linear(8, 6), nn.Linear(6, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.set_grad_enabled(not self.frozen):
            h = torch.relu(self.fc1(x))
        h = h + (torch.round(h * 4) / 4 - h).detach()
        return self.fc2(h)


def test_probe_of_detached_and_frozen_nodes() -> None:
    """Nodes whose outputs reach the loss through no gradient (the rounding branch a user
    detached): autograd.grad raised 'appears to not have been used in the graph' (summary
    --sensitivity: an internal error); their Fisher is 0 now. A layer forward runs under
    torch.no_grad() (detached by trace where the rest reads it) is probed through: its
    Fisher and Jacobian are those of the same model and weights without the no_grad
    (referee), so quantizing a frozen backbone is not predicted free."""
    torch.manual_seed(0)
    x, y = torch.randn(12, 8), torch.randint(0, 5, (12,))
    frozen, free = _Detached(True).eval(), _Detached(False).eval()
    free.load_state_dict(frozen.state_dict())
    got, want = probe(trace(frozen, x), x, y), probe(trace(free, x), x, y)
    assert torch.equal(got["mul"].fisher, torch.zeros_like(got["mul"].fisher))
    for node in ("fc1", "relu", "fc2"):
        assert torch.equal(got[node].fisher, want[node].fisher), node
        assert torch.equal(got[node].jacobian, want[node].jacobian), node
    assert got["fc1"].fisher.abs().sum() > 0


def test_a_cost_that_is_objective_and_constraint_is_priced_once(
    mlp: nn.Module, digits: DataSplits
) -> None:
    """model_size_bits as an objective and a pre-checked constraint: each group's table of
    deltas was built once per mention (32 rows for 16 joint choices) and the first proposal
    failed with a numpy broadcast error. Referee: the trials' own config hashes."""
    space = {"by": "type", "choices": {"linear": {"data_in": CHOICES[:4], "weight": CHOICES[:4]}}}
    obj = {**OBJ, "model_size_bits": {"direction": "minimize", "weight": 0.2}}
    result = search(
        mlp, digits.val, space=space, objectives=obj, strategy="sensitivity", n_trials=16,
        constraints={"model_size_bits": {"max_ratio": 0.2}},
    )  # fmt: skip
    assert len(result.trials) == 16 and result.n_evaluations == 16 - result.summary()["prechecked"]
    assert len({t.config_hash for t in result.trials}) == 16
