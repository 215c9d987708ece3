"""Export to hls4ml: per-layer ``ap_fixed`` precisions from the hardware plan, converted with
hls4ml's PyTorch front end into an HLS project, and hls4ml's bit-accurate C simulation.

hls4ml reads a plain float PyTorch model: each Linear gets the quantized model's weights (on
their grids, so hls4ml's conversion to ``ap_fixed`` is exact) and each BatchNorm1d the folded,
quantized ``scale`` and ``shift`` as gamma and beta with mean 0, variance 1 and ``eps`` 0, so
hls4ml's own fold (``gamma / sqrt(var + eps)``, ``beta - mean * scale``) gives them back exactly.
HLS synthesis of the written project is the user's step (``vitis_hls``/``vivado_hls`` on the
project's ``build_prj.tcl``, or ``hls_model.build()``).
"""

from __future__ import annotations

import contextlib
import copy
import io
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import fx, nn

from quantsearch.errors import ConfigError
from quantsearch.export.agreement import Agreement, agreement
from quantsearch.export.deps import require, require_compiler
from quantsearch.export.plan import HwPlan, chain_nodes, layer_module, plan
from quantsearch.export.staging import staged_folder
from quantsearch.formats import FixedPoint
from quantsearch.graph import info

__all__ = [
    "BACKENDS",
    "HlsExport",
    "compile_all",
    "export_hls4ml",
    "float_model",
    "folded_batch_norm",
    "reference_outputs",
]

BACKENDS = ("Vitis", "Vivado")


@dataclass
class HlsExport:
    """An hls4ml project: ``hls_model`` (an ``hls4ml.model.ModelGraph``), its folder and plan."""

    hls_model: Any
    out_dir: Path
    plan: HwPlan
    config: dict[str, Any]

    def write(self) -> None:
        """Write the HLS project into :attr:`out_dir` (hls4ml's progress lines silenced).

        hls4ml writes into a folder beside :attr:`out_dir`, which then takes its place whole
        (:func:`quantsearch.export.staging.staged_folder`): a write stopped midway (a full
        disk, a ``kill -9``) never leaves a half project under that name, nor a mix of two.

        Raises:
            StorageError: a file cannot be written; :attr:`out_dir` is left as it was.
        """
        cfg = self.hls_model.config.config
        with staged_folder(self.out_dir, is_project=_is_project) as stage:
            cfg["OutputDir"] = str(stage)
            try:
                with contextlib.redirect_stdout(io.StringIO()):
                    self.hls_model.write()
            finally:
                cfg["OutputDir"] = str(self.out_dir)
            _name_output_dir(stage / "hls4ml_config.yml", self.out_dir)

    def compile(self) -> None:
        """Write the project and build the C simulation with the system g++ (no vendor tools).

        Raises:
            ConfigError: no g++ on ``PATH`` (nothing is written).
        """
        _check_buildable([self])
        self.write()
        self.hls_model._compile()  # hls4ml's compile() after its write()

    def predict(self, x: torch.Tensor) -> np.ndarray[Any, Any]:
        """The C simulation's outputs, computed and returned in double precision."""
        data = np.ascontiguousarray(x.detach().double().reshape(len(x), -1).numpy())
        out: np.ndarray[Any, Any] = self.hls_model.predict(data)
        return out.reshape(len(x), -1)

    def verify(self, qgm: fx.GraphModule, x: torch.Tensor, *, classes: bool = True) -> Agreement:
        """hls4ml's C simulation against quantsearch's model on ``x`` (compiles if needed);
        ``classes=False`` for outputs that are no class scores (:func:`agreement`)."""
        return self._simulated(reference_outputs(qgm, x), x, classes)

    def search_agreement(
        self, qgm: fx.GraphModule, x: torch.Tensor, *, classes: bool = True
    ) -> Agreement:
        """The search's own evaluation (``qgm`` in float32, as every trial ran it) against the
        arithmetic :meth:`verify` holds the C simulation to (:func:`reference_outputs`), in
        LSBs of the same output type. Not bit-exact where a layer's sums need more than
        float32's 24-bit significand (e.g. fixed(16,8) inputs and weights): the trials then
        measured a rounding of what the hardware computes exactly."""
        return self._searched(reference_outputs(qgm, x), qgm, x, classes)

    def verify_both(
        self, qgm: fx.GraphModule, x: torch.Tensor, *, classes: bool = True
    ) -> tuple[Agreement, Agreement]:
        """:meth:`verify` and :meth:`search_agreement`, the float64 reference run once."""
        ref = reference_outputs(qgm, x)
        return self._simulated(ref, x, classes), self._searched(ref, qgm, x, classes)

    def _simulated(self, ref: np.ndarray[Any, Any], x: torch.Tensor, classes: bool) -> Agreement:
        if not Path(self.out_dir, "firmware").is_dir() or self.hls_model._top_function_lib is None:
            self.compile()
        lsb = 2.0**-self.plan.output.frac
        return agreement("hls4ml C simulation", ref, self.predict(x), lsb, classes=classes)

    def _searched(
        self, ref: np.ndarray[Any, Any], qgm: fx.GraphModule, x: torch.Tensor, classes: bool
    ) -> Agreement:
        with torch.no_grad():
            ours = qgm(x.float()).reshape(len(x), -1).double().numpy()
        lsb = 2.0**-self.plan.output.frac
        return agreement("the search's float32 evaluation", ref, ours, lsb, classes=classes)


def _is_project(folder: Path) -> bool:
    """Whether ``folder`` holds an hls4ml project (which an export may replace whole)."""
    return (folder / "hls4ml_config.yml").is_file() and (folder / "firmware").is_dir()


def _name_output_dir(yml: Path, out_dir: Path) -> None:
    """Give the project's ``hls4ml_config.yml`` the folder it ends up in, not the staging one
    it was written in (its ``OutputDir`` line, the only place a written file names it)."""
    import yaml  # hls4ml's own dependency

    lines = yml.read_text(encoding="utf-8").splitlines(keepends=True)
    for i, line in enumerate(lines):
        if line.startswith("OutputDir:"):
            lines[i] = yaml.safe_dump({"OutputDir": str(out_dir)}, width=1 << 30)
    yml.write_text("".join(lines), encoding="utf-8")


def compile_all(exports: list[HlsExport], workers: int | None = None) -> None:
    """Compile several projects, ``workers`` g++ builds at a time (default: one per CPU).

    hls4ml's ``compile()`` is ``write()`` (Python) then the g++ build of the C simulation, a
    subprocess run in the project's folder (``cwd=``, no ``chdir``): the writes run one by one,
    the builds in threads.
    """
    _check_buildable(exports)
    for e in exports:
        e.write()
    n = max(1, min(len(exports), workers or os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=n) as pool:
        # hls4ml's own compile step after write(): build, then load the library
        list(pool.map(lambda e: e.hls_model._compile(), exports))


def _check_buildable(exports: list[HlsExport]) -> None:
    """Refuse, before anything is written, what hls4ml's C simulation build cannot do: no g++,
    or a project folder whose absolute path holds '"' or '\\' (its build_lib.sh puts the path
    into a C string literal, where the first ends it and the second starts an escape: the
    build failed, or the simulation looked for its weights elsewhere and called exit(1))."""
    if not exports:
        return
    require_compiler("export --verify")
    for e in exports:
        where = os.path.abspath(e.out_dir) + os.path.realpath(e.out_dir)  # (the shell's pwd)
        bad = [c for c in ('"', "\\") if c in where]
        if bad:
            raise ConfigError(
                f"OUT: got {str(e.out_dir)!r}, whose absolute path holds {bad[0]!r}, allowed: a "
                "folder whose path has no '\"' or '\\' (hls4ml's C simulation build writes it "
                "into a C string)"
            )


def reference_outputs(qgm: fx.GraphModule, x: torch.Tensor) -> np.ndarray[Any, Any]:
    """quantsearch's quantized model run in float64.

    The formats quantize identically in float32 and float64; float64 only keeps the sums of
    products exact (53-bit significand) where float32 rounds sums wider than 24 bits, so this
    is the arithmetic the formats define, and what fixed-point hardware computes.
    """
    model = copy.deepcopy(qgm).double().eval()
    with torch.no_grad():
        out: np.ndarray[Any, Any] = model(x.double()).reshape(len(x), -1).numpy()
    return out


def _input_name(layers: dict[str, nn.Module]) -> str:
    """The name of the float model's input, which hls4ml gives its input layer: ``x``, unless a
    layer has that name (``self.x = nn.Linear(...)`` with ``forward(self, inp)``), where fx
    would have named the layer's call ``x_1`` in hls4ml's trace, away from its precisions.
    (Not the model's own input name: hls4ml takes an input whose name holds ``const`` for a
    constant, and a jet tagger's ``constituents`` does.)"""
    name = "x"
    while name in layers:
        name = f"_{name}"
    return name


def _chain(layers: dict[str, nn.Module]) -> fx.GraphModule:
    """Layers called one after the other, each under its node's name: hls4ml's trace names the
    call of a top-level module by that name, so hls4ml's layers are named as the plan's. (A
    module's path would not do: a module called twice is one path and two nodes, and a
    quantized function node's module lives under ``quantized_nodes.<node>``.)"""
    graph = fx.Graph()
    x = graph.placeholder(_input_name(layers))
    for name in layers:
        x = graph.call_module(name, (x,))
    graph.output(x)
    return fx.GraphModule(dict(layers), graph).eval()


def float_model(qgm: fx.GraphModule) -> fx.GraphModule:
    """The plain float model hls4ml converts: quantized weights, BatchNorm folded."""
    root: dict[str, nn.Module] = {}
    for node in chain_nodes(qgm):
        m = layer_module(qgm, node)
        new: nn.Module
        if isinstance(m, nn.Linear):
            new = nn.Linear(m.in_features, m.out_features, bias=m.bias is not None)
            used_of = getattr(m, "used_param", None)  # a tied weight: rounded in every pass
            used = {k: used_of(k) if callable(used_of) else v for k, v in m.named_parameters()}
            new.load_state_dict({k: v.detach().clone() for k, v in used.items()})
        elif isinstance(m, nn.BatchNorm1d):
            scale, shift = folded_batch_norm(m)
            new = nn.BatchNorm1d(m.num_features, eps=0.0)
            with torch.no_grad():
                new.weight.copy_(scale)
                new.bias.copy_(shift)
        else:
            new = nn.ReLU()
        root[node.name] = new.eval()
    return _chain(root)


def folded_batch_norm(bn: nn.BatchNorm1d) -> tuple[torch.Tensor, torch.Tensor]:
    folded = getattr(bn, "folded", None)
    if callable(folded):  # a quantized BatchNorm: the constants it computes with
        scale, shift = folded()
        return scale, shift
    assert bn.running_mean is not None and bn.running_var is not None
    gamma = torch.ones(bn.num_features) if bn.weight is None else bn.weight.detach()
    beta = torch.zeros(bn.num_features) if bn.bias is None else bn.bias.detach()
    scale = gamma / torch.sqrt(bn.running_var + bn.eps)
    return scale, beta - bn.running_mean * scale


def _precisions(p: HwPlan) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for layer in p.layers:
        assert layer.result is not None
        prec = {"result": layer.result.ap()}
        if layer.kind == "linear":
            prec |= {role: t.ap() for role, t in layer.params.items()}
            assert layer.accum is not None
            prec["accum"] = layer.accum.ap()
        elif layer.kind == "batch_norm1d":
            prec["scale"] = layer.params["weight"].ap()
            if "bias" in layer.params:
                prec["bias"] = layer.params["bias"].ap()
        out[layer.name] = prec
    return out


def export_hls4ml(
    qgm: fx.GraphModule,
    out_dir: str | Path,
    *,
    backend: str = "Vitis",
    io_type: str = "io_parallel",
    float_as: FixedPoint | None = None,
    part: str | None = None,
    project_name: str = "myproject",
) -> HlsExport:
    """Convert a quantized model into an hls4ml project whose arithmetic is quantsearch's.

    Args:
        qgm: a quantized chain of Linear, BatchNorm1d and ReLU layers, in eval mode.
        out_dir: the HLS project folder hls4ml writes.
        backend: an hls4ml backend (:data:`BACKENDS`); ``io_type``: ``io_parallel`` or
            ``io_stream``.
        float_as: the format for roles left in float (see :func:`~quantsearch.export.plan.plan`).

    Returns:
        The export, not yet compiled: :meth:`HlsExport.compile` builds the C simulation.

    Raises:
        ConfigError: hls4ml missing (names the extra), layers or formats without an exact
            hardware counterpart (named), float roles without ``float_as``.
    """
    p = plan(qgm, float_as=float_as)
    hls4ml = require("hls4ml", "export --to hls4ml")
    model = float_model(qgm)
    placeholder = next(n for n in qgm.graph.nodes if n.op == "placeholder")
    shape = info(placeholder).outputs[0].shape[1:]
    kwargs: dict[str, Any] = {"part": part} if part is not None else {}
    with contextlib.redirect_stdout(io.StringIO()):  # hls4ml prints every layer it reads
        config: dict[str, Any] = hls4ml.utils.config_from_pytorch_model(
            model, shape, granularity="name", backend=backend, default_precision="ap_fixed<32,16>"
        )
        precisions = _precisions(p)
        # hls4ml names its input layer after the float model's input, not after the model's
        # placeholder (`input_1` for an nn.Sequential): the input's format goes to that name
        precisions[next(iter(model.graph.nodes)).name] = precisions.pop(placeholder.name)
        for name, prec in precisions.items():
            config["LayerName"].setdefault(name, {})["Precision"] = prec
        hls_model = hls4ml.converters.convert_from_pytorch_model(
            model,
            output_dir=str(out_dir),
            project_name=project_name,
            hls_config=config,
            backend=backend,
            io_type=io_type,
            **kwargs,
        )
    return HlsExport(hls_model, Path(out_dir), p, config)
