"""An outside referee's sweep of export fidelity: small chains of Linear, BatchNorm1d and ReLU
layers under odd widths (1, 2, 5, 7, 13), ``frac_width`` 0 and equal to the width, signed and
unsigned, ``nearest`` and ``floor``, a different format per role and per layer, on inputs at
the edges (exact ties of the input grid, 0 and -0, the range's ends and one LSB past them,
1e6 and 1e30).

Referees, none of them this project's code: numpy in float64 on the formats' definition
(``clamp(round(x * 2^f)) / 2^f``, ``round`` half to even or ``floor``; the always-run cases'
exact sum types are at most 23 bits wide, so float32 holds them exactly too, and on the slow
test's seeded inputs float32 held every sum as well), hls4ml's C simulation (g++), the qonnx
executor, and Python's exact rationals (:class:`fractions.Fraction`) where sums are wider than
float64's 53-bit significand. Each case is one g++ build: the always-run cases are four builds
in one ``compile_all``, and the wide one; the random chains (31 builds) are marked slow.
"""

from __future__ import annotations

import random
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import fx, nn

from quantsearch.export import (
    HlsExport,
    compile_all,
    export_hls4ml,
    export_qonnx,
    reference_outputs,
    run_qonnx,
    verify_qonnx,
)
from quantsearch.graph import trace
from quantsearch.passes.transform import ResolvedConfig
from tests.export.conftest import fixed, quantized

Table = dict[str, dict[str, dict[str, Any]]]


def ufixed(width: int, frac: int, **extra: Any) -> dict[str, Any]:
    return fixed(width, frac, signed=False, **extra)


def sfixed(width: int, frac: int, **extra: Any) -> dict[str, Any]:
    return fixed(width, frac, signed=True, **extra)


# ---------------------------------------------------------------------------------------------
# The numpy referee


def _q(v: np.ndarray[Any, Any], f: dict[str, Any] | None) -> np.ndarray[Any, Any]:
    """The format's definition in numpy: scale, round (np.round is half to even), clamp."""
    if f is None:
        return v
    width, frac, signed = f["width"], f["frac_width"], f.get("signed", True)
    lo, hi = (-(2 ** (width - 1)), 2 ** (width - 1) - 1) if signed else (0, 2**width - 1)
    rnd = np.floor if f.get("rounding") == "floor" else np.round
    return np.clip(rnd(v * 2.0**frac), lo, hi) / 2.0**frac


def _numpy_forward(model: nn.Sequential, table: Table, x: torch.Tensor) -> np.ndarray[Any, Any]:
    """What the configured Sequential computes on the formats' grids, in float64. A BatchNorm
    is its fold as the project defines it (``gamma / sqrt(var + eps)`` and ``beta - mean *
    scale`` in float32, then each on its format's grid), which hls4ml and FINN compute."""
    v = x.double().numpy()
    for name, m in model.named_children():
        roles = table.get(f"_{name}", {})
        v = _q(v, roles.get("data_in"))
        if isinstance(m, nn.Linear):
            w = _q(m.weight.detach().double().numpy(), roles.get("weight"))
            v = v @ w.T
            if m.bias is not None:
                v = v + _q(m.bias.detach().double().numpy(), roles.get("bias"))
        elif isinstance(m, nn.BatchNorm1d):
            assert m.running_mean is not None and m.running_var is not None
            mean, var = m.running_mean.numpy(), m.running_var.numpy()
            gamma = m.weight.detach().numpy() if m.weight is not None else np.ones_like(mean)
            beta = m.bias.detach().numpy() if m.bias is not None else np.zeros_like(mean)
            scale = gamma / np.sqrt(var + np.float32(m.eps))
            shift = beta - mean * scale
            v = v * _q(scale.astype(np.float64), roles.get("weight")) + _q(
                shift.astype(np.float64), roles.get("bias")
            )
        else:
            assert isinstance(m, nn.ReLU)
            v = np.maximum(v, 0.0)
        v = _q(v, roles.get("data_out"))
    return v


# ---------------------------------------------------------------------------------------------
# Cases


def _edge_inputs(n_in: int, f: dict[str, Any], n: int = 240, seed: int = 0) -> torch.Tensor:
    """Random values across the first data_in's range, half of them replaced by edge values;
    the first third exact ties (odd multiples of half an LSB)."""
    g = torch.Generator().manual_seed(seed)
    lsb = 2.0 ** -f["frac_width"]
    signed = f.get("signed", True)
    lo = -(2 ** (f["width"] - 1)) * lsb if signed else 0.0
    hi = (2 ** (f["width"] - (1 if signed else 0)) - 1) * lsb
    edges = [0.0, -0.0, lsb / 2, -lsb / 2, 1.5 * lsb, -2.5 * lsb, 0.75 * lsb, hi, lo]
    edges += [hi + lsb / 2, lo - lsb / 2, hi + lsb, lo - lsb, 1e6, -1e6, 1e30, -1e30]
    x = (torch.rand(n, n_in, generator=g) * 1.2 - 0.1) * (hi - lo) + lo
    pick = torch.tensor(edges)[torch.randint(0, len(edges), (n, n_in), generator=g)]
    x = torch.where(torch.rand(n, n_in, generator=g) < 0.5, pick, x)
    ties = torch.randint(-(2 ** f["width"]), 2 ** f["width"], (n // 3, n_in), generator=g)
    x[: n // 3] = (ties.float() + 0.5) * lsb
    return x


def _model(layers: list[nn.Module], seed: int) -> nn.Sequential:
    torch.manual_seed(seed)
    model = nn.Sequential(*layers).eval()
    for m in model:
        if isinstance(m, nn.BatchNorm1d):  # statistics away from the identity
            assert m.running_mean is not None and m.running_var is not None
            with torch.no_grad():
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.2, 3)
                if m.affine:
                    m.weight.uniform_(-2, 2)
                    m.bias.uniform_(-1, 1)
    return model


def _case(label: str) -> tuple[nn.Sequential, Table]:
    if label == "odd widths per layer":  # 5, 7, 13; frac = width; bias its own format
        model = _model([nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3)], 0)
        return model, {
            "_0": {"data_in": sfixed(5, 2), "weight": sfixed(7, 5), "bias": sfixed(13, 6)},
            "_1": {"data_in": ufixed(7, 3)},
            "_2": {
                "data_in": sfixed(7, 3),
                "weight": sfixed(5, 5),
                "bias": sfixed(5, 5),  # as the weight ("same_as_weight")
                "data_out": sfixed(13, 4, rounding="floor"),
            },
        }
    if label == "widths 1 and 2":
        model = _model([nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 3)], 1)
        return model, {
            "_0": {"data_in": sfixed(2, 0), "weight": sfixed(7, 4), "bias": sfixed(2, 2)},
            "_1": {"data_in": ufixed(1, 0)},
            "_2": {"weight": sfixed(2, 1), "bias": sfixed(2, 1), "data_out": ufixed(5, 5)},
        }
    if label == "floor and unsigned input":
        model = _model([nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3)], 2)
        return model, {
            "_0": {
                "data_in": ufixed(5, 2, rounding="floor"),
                "weight": sfixed(13, 9, rounding="floor"),
                "bias": sfixed(13, 9, rounding="floor"),
            },
            "_1": {
                "data_in": sfixed(13, 5),
                "weight": sfixed(5, 3, rounding="floor"),
                "bias": sfixed(7, 2),
            },
            "_3": {"data_in": sfixed(7, 3), "weight": sfixed(5, 4), "bias": sfixed(5, 4)},
        }
    if label == "frac 0, saturating":
        model = _model([nn.Linear(6, 4)], 3)
        return model, {
            "_0": {
                "data_in": sfixed(13, 0),
                "weight": sfixed(7, 7),
                "bias": sfixed(7, 7),
                "data_out": sfixed(5, 0),
            }
        }
    raise AssertionError(label)


FAST = ["odd widths per layer", "widths 1 and 2", "floor and unsigned input", "frac 0, saturating"]


def _first_data_in(table: Table) -> dict[str, Any]:
    return next(r["data_in"] for r in table.values() if "data_in" in r)


def _quantize(model: nn.Sequential, table: Table, x: torch.Tensor) -> fx.GraphModule:
    gm = trace(model, x[:8])
    return quantized(gm, ResolvedConfig.from_dict(table, gm=gm))


Built = dict[str, tuple[nn.Sequential, Table, torch.Tensor, fx.GraphModule, HlsExport]]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """Every always-run case's hls4ml project, built in one ``compile_all``."""
    tmp = tmp_path_factory.mktemp("referee")
    out: Built = {}
    for i, label in enumerate(FAST):
        model, table = _case(label)
        x = _edge_inputs(6, _first_data_in(table))
        qgm = _quantize(model, table, x)
        out[label] = (model, table, x, qgm, export_hls4ml(qgm, tmp / f"p{i}"))
    compile_all([e for *_, e in out.values()])
    return out


@pytest.mark.parametrize("label", FAST)
def test_c_simulation_and_qonnx_executor_compute_the_formats_arithmetic(
    built: Built, label: str, tmp_path: Path
) -> None:
    """Referees: numpy (the formats' definition), hls4ml's C simulation and the qonnx
    executor; each output bit for bit, and --verify's verdicts as they find them."""
    model, table, x, qgm, e = built[label]
    want = _numpy_forward(model, table, x)
    with torch.no_grad():
        searched = qgm(x).double().numpy()
    assert np.array_equal(searched, want), label  # quantsearch's own model, float32
    assert e.plan.exact, e.plan.notes()
    assert np.array_equal(e.predict(x), want), label  # hls4ml's C simulation
    sim = e.verify(qgm, x)
    assert sim.bit_exact and sim.max_lsb == 0.0 and sim.samples == len(x), sim
    agreed = e.search_agreement(qgm, x)
    assert agreed.bit_exact and agreed.max_lsb == 0.0, agreed
    path = export_qonnx(qgm, tmp_path / "m.onnx")
    assert np.array_equal(np.asarray(run_qonnx(path, x), dtype=np.float64), want), label
    assert verify_qonnx(path, qgm, x).bit_exact


def test_verify_reports_a_one_lsb_mismatch(built: Built) -> None:
    """--verify must not pass a mismatch: the same C simulation held to a model whose last bias
    is one LSB of its format higher in one output. Referee: numpy's outputs of that model."""
    _, table, x, _, e = built["frac 0, saturating"]
    moved = _model([nn.Linear(6, 4)], 3)
    with torch.no_grad():
        moved[0].bias[2] += 2.0**-7
    other = _quantize(moved, table, x)
    want, theirs = _numpy_forward(moved, table, x), e.predict(x)
    lsb = 2.0**-e.plan.output.frac
    a = e.verify(other, x)
    assert a.max_lsb == float(np.abs(want - theirs).max()) / lsb > 0 and not a.bit_exact, a


def _exact_linear(
    qgm: fx.GraphModule, x: torch.Tensor, f_in: dict[str, Any]
) -> np.ndarray[Any, Any]:
    """The Linear's outputs in exact rationals (``Fraction``), each then read as the nearest
    double, as the C simulation's ``predict`` hands over its output."""
    lin = qgm.get_submodule("0")
    xq = _q(x.double().numpy(), f_in)
    w, b = lin.weight.detach().double().numpy(), lin.bias.detach().double().numpy()
    rows = [
        [
            float(
                sum(Fraction(float(a)) * Fraction(float(c)) for a, c in zip(xi, wj, strict=True))
                + Fraction(float(bj))
            )
            for wj, bj in zip(w, b, strict=True)
        ]
        for xi in xq
    ]
    return np.array(rows)


def test_sums_wider_than_float64_are_not_reported_exact(tmp_path: Path) -> None:
    """fixed(32,0) inputs times fixed(32,31) weights: the exact sum type is ap_fixed<67,36>,
    which hls4ml computes exactly, but quantsearch's model in float64 (the reference --verify
    holds the C simulation to) rounds it. Referees: Python's exact rationals, and hls4ml's C
    simulation, which equals them. The plan called the export exact, and --verify then said
    'NOT bit-exact, 512 LSB' of hardware that computes the formats' arithmetic exactly."""
    f_in, f_w = sfixed(32, 0), sfixed(32, 31)
    model = _model([nn.Linear(6, 4)], 4)
    x = _edge_inputs(6, f_in, n=40)
    qgm = _quantize(model, {"_0": {"data_in": f_in, "weight": f_w, "bias": f_w}}, x)
    e = export_hls4ml(qgm, tmp_path / "wide")
    e.compile()
    exact = _exact_linear(qgm, x, f_in)
    assert np.array_equal(e.predict(x), exact)  # the hardware: the formats' arithmetic
    assert not np.array_equal(reference_outputs(qgm, x), exact)  # float64 rounds it
    assert not e.verify(qgm, x).bit_exact
    (note,) = e.plan.notes()  # so the export says why, and does not call itself exact
    assert note.startswith("_0 (linear): ") and "ap_fixed<67,36>" in note and "53" in note
    assert not e.plan.exact


USER_MODELS = """
import torch
from torch import nn


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(6, 6), nn.Linear(6, 3)

    def forward(self, x):
        return self.b(torch.relu(self.a(x)) + x)


def conv():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv1d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8, 3))


def residual():
    torch.manual_seed(0)
    return Residual()


def softmax():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 3), nn.Softmax(dim=1))


def chain():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))


def data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(90, 6, generator=g) * 3
    return x, (x[:, 0] > 0).long() + (x[:, 1] > 1).long()


def data1d():
    x, y = data()
    return x.reshape(90, 1, 6), y
"""


def _trained(tmp_path: Path, capsys: pytest.CaptureFixture[str], build: str) -> Path:
    """A config of ``build`` (a function of USER_MODELS) in ``tmp_path``, its checkpoint
    trained there (run from ``tmp_path``)."""
    from tests.cli.test_search_cli import run

    (tmp_path / "um.py").write_text(USER_MODELS)
    config = tmp_path / f"{build}.toml"
    config.write_text(
        f'seed = 0\n[model]\nname = "um.py:{build}"\ncheckpoint = "{build}.pt"\n'
        f'[data]\nname = "um.py:{"data1d" if build == "conv" else "data"}"\n'
        "[train]\nepochs = 1\n"
        '[quantize.default]\nformat = "fixed"\ndata_in = { width = 7, frac_width = 3 }\n'
        "weight = { width = 5, frac_width = 3 }\nbias = { width = 5, frac_width = 3 }\n"
    )
    code, _, err = run(["train", "-c", str(config)], capsys)
    assert code == 0, err
    return config


@pytest.mark.parametrize(
    ("build", "named"),
    [("conv", "_0 (conv1d), _2 (flatten)"), ("residual", "add (add)"), ("softmax", "_1 (softmax)")],
)
@pytest.mark.parametrize("to", ["hls4ml", "qonnx"])
def test_layers_outside_the_subset_are_refused_before_any_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], build: str, named: str, to: str
) -> None:
    """A Conv1d (and its flatten), a residual add and a final softmax: `export --verify` exits
    2 with one line naming them, and the folder holds no OUT nor a staging leftover."""
    from tests.cli.test_search_cli import run

    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp_path)
        config = _trained(tmp_path, capsys, build)
        before = sorted(p.name for p in tmp_path.iterdir())
        out = "out.onnx" if to == "qonnx" else "out"
        code, _, err = run(["export", "--to", to, out, "-c", str(config), "--verify"], capsys)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith(f"error: export: got layers {named}, "), err
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def _random_format(rng: random.Random) -> dict[str, Any]:
    width = rng.choice([1, 2, 3, 5, 7, 8, 13])
    signed = width >= 2 and rng.random() < 0.6
    rounding = "floor" if rng.random() < 0.3 else "nearest"
    return fixed(width, rng.randint(0, width), signed=signed, rounding=rounding)


def _random_chain(seed: int) -> tuple[nn.Sequential, Table]:
    """One to five layers of Linear (with or without bias), BatchNorm1d (with or without
    affine) and ReLU in any order, each role a random format or float, some biases in their
    weight's format, some data_outs (two roundings in a row, which the plan may call inexact)."""
    rng = random.Random(seed)
    torch.manual_seed(seed)
    n, layers = 6, []
    for _ in range(rng.randint(1, 5)):
        kind = rng.choice(["linear", "linear", "batch_norm", "relu"])
        if kind == "linear":
            m = rng.choice([3, 5, 8])
            layers.append(nn.Linear(n, m, bias=rng.random() < 0.8))
            n = m
        else:
            layers.append(
                nn.BatchNorm1d(n, affine=rng.random() < 0.8) if kind == "batch_norm" else nn.ReLU()
            )
    model = _model(layers, seed)
    table: Table = {}
    for i, m in enumerate(layers):
        roles = {"data_in": _random_format(rng)} if i == 0 or rng.random() < 0.6 else {}
        if not isinstance(m, nn.ReLU):
            roles["weight"] = _random_format(rng)
            if not isinstance(m, nn.Linear) or m.bias is not None:
                same = rng.random() < 0.3
                roles["bias"] = roles["weight"] if same else _random_format(rng)
        if rng.random() < 0.3:
            roles["data_out"] = _random_format(rng)
        table[f"_{i}"] = roles
    return model, table


@pytest.mark.slow
def test_random_chains_are_exact_where_the_plan_says_so(tmp_path: Path) -> None:
    """24 random chains (and the first four again as io_stream and as Vivado projects).
    Referees: numpy and hls4ml's C simulation; the qonnx executor. Where the plan calls an
    export exact the C simulation equals numpy bit for bit; where they differ the plan says
    why; --verify's verdicts are true to what each referee gave."""
    cases = []
    for seed in range(24):
        model, table = _random_chain(seed)
        x = _edge_inputs(6, table["_0"]["data_in"], n=200, seed=seed)
        qgm = _quantize(model, table, x)
        for io_type, backend in [("io_parallel", "Vitis")] + (
            [("io_stream", "Vitis"), ("io_parallel", "Vivado")] if seed < 4 else []
        ):
            out = tmp_path / f"p{seed}{io_type}{backend}"
            e = export_hls4ml(qgm, out, io_type=io_type, backend=backend)
            cases.append((f"{seed} {io_type} {backend}", model, table, x, qgm, e))
    compile_all([c[-1] for c in cases])
    for label, model, table, x, qgm, e in cases:
        want, sim = _numpy_forward(model, table, x), e.predict(x)
        assert np.array_equal(reference_outputs(qgm, x), want), label
        if e.plan.exact:
            assert np.array_equal(sim, want), label
        assert e.verify(qgm, x).bit_exact == np.array_equal(sim, want), label
        path = export_qonnx(qgm, tmp_path / f"{label.replace(' ', '_')}.onnx")
        theirs = np.asarray(run_qonnx(path, x), dtype=np.float64)
        with torch.no_grad():
            searched = qgm(x).double().numpy()
        assert np.array_equal(theirs, searched) == verify_qonnx(path, qgm, x).bit_exact, label
        assert np.array_equal(theirs, want), label


def test_verify_without_a_compiler_is_refused_before_any_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """hls4ml builds its C simulation with the g++ on PATH (its build_lib.sh names it). Without
    one, `export --to hls4ml --verify` wrote the project, then failed in hls4ml's compile with
    a traceback ('internal error', exit 1); now one line, exit 2, nothing written. Referee: the
    folder's listing."""
    from tests.cli.test_search_cli import run

    monkeypatch.chdir(tmp_path)
    config = _trained(tmp_path, capsys, "chain")
    before = sorted(p.name for p in tmp_path.iterdir())
    (tmp_path / "bin").mkdir()  # a PATH without g++
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    code, _, err = run(["export", "--to", "hls4ml", "out", "-c", str(config), "--verify"], capsys)
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("error: export --verify: got no g++ "), err
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "bin") == before


@pytest.mark.parametrize("missing", ["qonnx", "onnxruntime"])
def test_verify_without_the_qonnx_executor_is_refused_before_any_file(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    missing: str,
) -> None:
    """The qonnx executor needs qonnx and onnxruntime (its onnx_exec imports it). Without
    qonnx, `export --to qonnx --verify` wrote the file and then said the extra was missing;
    without onnxruntime, it wrote the file and failed with a traceback (internal error, exit
    1). Now one line naming the module, exit 2, nothing written. Referee: the folder's
    listing."""
    import sys

    from tests.cli.test_search_cli import run

    monkeypatch.chdir(tmp_path)
    config = _trained(tmp_path, capsys, "chain")
    before = sorted(p.name for p in tmp_path.iterdir())
    monkeypatch.setitem(sys.modules, missing, None)  # import <missing> now raises ImportError
    monkeypatch.setitem(sys.modules, "qonnx.core.onnx_exec", None)  # and so does its importer
    args = ["export", "--to", "qonnx", "out.onnx", "-c", str(config), "--verify"]
    code, _, err = run(args, capsys)
    assert code == 2, err
    assert err.count("\n") == 1, err
    assert err.startswith(f"error: export --to qonnx --verify: got no module {missing}, "), err
    assert sorted(p.name for p in tmp_path.iterdir()) == before


@pytest.mark.parametrize("out", ['out"q', "out\\back"])
def test_a_project_path_the_c_simulation_cannot_name_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], out: str
) -> None:
    """hls4ml's build_lib.sh writes the project's absolute path into a C string literal
    (WEIGHTS_DIR), where '"' ends it and '\\' starts an escape. With '"' in OUT the g++ build
    failed after the project was written (a traceback, internal error, exit 1); with '\\b' the
    C simulation looked for its weights under another path and called exit(1) inside Python,
    with no message of quantsearch's. Now one line naming OUT, exit 2, nothing written.
    Referees: the exit status and output of the command, run as a process (an exit(1) in the C
    simulation ends the process it runs in), and the folder's listing."""
    import subprocess
    import sys

    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp_path)
        config = _trained(tmp_path, capsys, "chain")
    before = sorted(p.name for p in tmp_path.iterdir())
    args = ["export", "--to", "hls4ml", out, "-c", str(config), "--verify"]
    done = subprocess.run(
        [sys.executable, "-m", "quantsearch", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("error: OUT: got "), done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == before
