"""One trial's evaluation: configure the prepared model with a config, then measure it.

The pristine traced model is never modified. Each thread prepares it once
(:class:`~quantsearch.passes.transform.slots.PreparedModel`): a trial fills the quantizer slots
of that module (weights memoised per node, role and format) instead of building and compiling a
new graph, and gives outputs bit-identical to ``quantize(gm, config)``. The validation tensors
are materialised once, so a trial costs a slot fill and one forward pass. Its analytic metrics
are priced from per-node entries memoised across configs
(:class:`~quantsearch.metrics.static.StaticMetrics`), equal to the analysis passes' totals.
"""

from __future__ import annotations

import copy
import hashlib
import math
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
from torch import fx

from quantsearch.data import Split
from quantsearch.errors import ConfigError
from quantsearch.graph import info
from quantsearch.metrics import compute_metrics
from quantsearch.metrics.groups import quality_metrics, quality_values
from quantsearch.metrics.population import BatchLabels, PopulationQuality
from quantsearch.metrics.quality import class_labels
from quantsearch.metrics.specs import is_user_metric, metric_spec, top_k_of
from quantsearch.metrics.static import StaticMetrics
from quantsearch.passes.analysis import traced_batch_size
from quantsearch.passes.transform import ResolvedConfig, resolve
from quantsearch.passes.transform.population import Population
from quantsearch.passes.transform.resolved import NodeConfigs
from quantsearch.passes.transform.slots import PreparedModel
from quantsearch.validate import resolve_device

__all__ = ["Evaluation", "Evaluator", "config_hash", "evaluate_population"]


def config_hash(canonical: str) -> str:
    """A short, stable digest of a canonical config string (the cache key)."""
    return hashlib.sha1(canonical.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Evaluation:
    metrics: dict[str, float] | None
    error: str | None
    seconds: float


def _device(device: str | torch.device) -> torch.device:
    return resolve_device(device, "device") if isinstance(device, str) else device


class Evaluator:
    """Evaluates per-layer format choices on a fixed validation split.

    Args:
        gm: the traced float model (pristine; shared by every trial, never mutated).
        data: the validation samples every trial is measured on.
        metrics: metric names to compute for every trial.
        quantize_config: an optional ``[quantize]`` config; the search's choices override it.
        calibration: activation statistics for ``frac_width = "auto"``, gathered once.
        batch_size: evaluation batch size.
        device: where trials run: ``"auto"`` (CUDA when there is one, else the CPU), ``"cpu"``,
            ``"cuda"``... Off the CPU the evaluator holds copies of ``gm`` and ``data`` moved
            there once (``gm`` itself is untouched), so a trial makes no host transfer.
        population_bytes: the memory :meth:`evaluate_many` may give one population's layer
            outputs for one batch (it evaluates the configs in chunks that fit).
    """

    def __init__(
        self,
        gm: fx.GraphModule,
        data: Split,
        metrics: Sequence[str],
        *,
        quantize_config: Any = None,
        calibration: Any = None,
        batch_size: int = 1024,
        device: str | torch.device = "auto",
        population_bytes: int = 256 * 2**20,
    ) -> None:
        self.device = _device(device)
        on_cpu = self.device.type == "cpu"
        self.gm = gm if on_cpu else copy.deepcopy(gm).to(self.device)
        self.data = data if on_cpu else Split(data.x.to(self.device), data.y.to(self.device))
        self.metrics = tuple(metrics)
        # A user evaluate function measures some metric: trials run one at a time through it.
        self.user_evaluate = any(is_user_metric(m) for m in self.metrics)
        self.calibration = calibration
        self.batch_size = batch_size
        self.population_bytes = population_bytes
        self._base: dict[str, dict[str, Any]] = (
            resolve(gm, quantize_config, calibration=calibration).to_dict()
            if quantize_config is not None
            else {}
        )
        self._baseline: dict[str, float] | None = None
        self._nodes: NodeConfigs | None = None  # resolve's node parts, met before
        # the float model's measuring time here (None: not here), by which a first batch is sized
        self.baseline_seconds: float | None = None
        self._baseline_lock = threading.Lock()
        self._local = threading.local()  # one PreparedModel per thread: apply_ mutates it
        self._answers: dict[str, Evaluation] = {}  # config key -> result, see answering()
        # population_chunk's and _kinds' answers, each with the setting it was computed for
        self._chunk: tuple[tuple[int, int, int], int] | None = None
        self._metrics_why: tuple[tuple[str, ...], str | None] | None = None
        self._kinds_of: (
            tuple[tuple[str, ...], tuple[list[str], tuple[int, ...], list[str]]] | None
        ) = None
        # each data batch's BatchLabels, for (data, batch size, classes); see _batch_labels
        self._labels_of: tuple[tuple[Split, int, int], dict[int, BatchLabels]] | None = None

    def prepared(self) -> PreparedModel:
        """This thread's prepared model (built on first use)."""
        pm: PreparedModel | None = getattr(self._local, "pm", None)
        if pm is None:
            exact = _metrics_refusal(self.metrics) is None  # no latency: either layout of a pool
            pm = self._local.pm = PreparedModel(self.gm, self.calibration, pools=exact)
        return pm

    def resolve(
        self, layer_formats: Mapping[str, Mapping[str, Mapping[str, Any]]]
    ) -> ResolvedConfig:
        """The full per-node config: the ``[quantize]`` base with the search's choices on top."""
        merged: dict[str, dict[str, Any]] = {n: dict(r) for n, r in self._base.items()}
        for node, roles in layer_formats.items():
            merged.setdefault(node, {}).update(roles)
        if self._nodes is None:  # the graph's quantizable nodes, found once (gm never changes)
            self._nodes = NodeConfigs(self.gm, self.calibration, "search")
        return self._nodes(merged)

    def baseline(self) -> dict[str, float]:
        """Metrics of the float model, measured once per evaluator: every study and every run
        of a comparison that shares this evaluator shares the one measurement."""
        with self._baseline_lock:
            if self._baseline is None:
                t0 = time.perf_counter()
                self._baseline = compute_metrics(
                    self.gm, self.metrics, data=self.data, batch_size=self.batch_size
                )
                self.baseline_seconds = time.perf_counter() - t0
                _check_user_baseline(self._baseline)
            return dict(self._baseline)

    def evaluate(self, resolved: ResolvedConfig) -> Evaluation:
        """Quantize and measure; an exception or a NaN becomes an :class:`Evaluation` error."""
        if self._answers:
            hit = self._answers.pop(resolved.key(), None)
            if hit is not None:
                return hit
        t0 = time.perf_counter()
        try:
            bound = resolved.bind(self.gm, self.calibration)
            qgm = self.prepared().apply_(bound)
            metrics = self._measure(bound, qgm)
        except Exception as exc:  # recorded on the trial with its config; the search goes on
            return Evaluation(None, f"{type(exc).__name__}: {exc}", time.perf_counter() - t0)
        return _finish(metrics, time.perf_counter() - t0)

    def static_metrics(self) -> StaticMetrics:
        """This thread's pricer of the static metrics (per-node entries memoised across
        configs: :mod:`quantsearch.metrics.static`), built on first use."""
        sm: StaticMetrics | None = getattr(self._local, "static", None)
        if sm is None:
            sm = self._local.static = StaticMetrics(self.gm, self.metrics)
        return sm

    def _same_totals(self) -> dict[Any, dict[str, float]]:
        """This thread's values of the static metrics by their totals
        (:meth:`.static_totals.Totals.values`' ``same``): a function of the totals alone,
        which a search's configs repeat (the lab's 16 have 9 distinct totals); at most 4,096
        kept, all dropped when full."""
        same: dict[Any, dict[str, float]] | None = getattr(self._local, "same", None)
        if same is None or len(same) >= 4096:
            same = self._local.same = {}
        return same

    def _measure(self, bound: ResolvedConfig, qgm: fx.GraphModule) -> dict[str, float]:
        """``compute_metrics(qgm, self.metrics, data=...)``, the static metrics priced from
        the memo (and left in ``qgm``'s records, as the passes leave them)."""
        sm = self.static_metrics()
        static = sm.values(bound, lambda: qgm, records=True, same=self._same_totals())
        rest = [n for n in self.metrics if n not in static]
        other = (
            compute_metrics(qgm, rest, data=self.data, batch_size=self.batch_size) if rest else {}
        )
        out = {n: static[n] if n in static else other[n] for n in dict.fromkeys(self.metrics)}
        out.update((k, v) for k, v in other.items() if k not in out)  # spreads (<name>_iqr)
        return out

    def evaluate_many(self, resolved: Sequence[ResolvedConfig]) -> list[Evaluation]:
        """Evaluate several configs known in advance; ``result[i]`` is ``evaluate(resolved[i])``.

        The configs run as a population (:mod:`quantsearch.passes.transform.population`: one
        walk of the graph per batch of data for up to ``population_bytes`` worth of configs,
        each distinct layer input computed once, every value by the single path's own call;
        quality metrics from :class:`~quantsearch.metrics.population.PopulationQuality`; the
        analytic metrics of each config from per-node entries memoised across configs,
        :meth:`static_metrics`, which fills no slots for a config whose structure it has met,
        pricing only the nodes whose formats are new), so
        the metrics equal one-at-a-time :meth:`evaluate` calls exactly. A chunk
        falls back to one at a time, with the same results, when :meth:`population_refusal`
        names a reason or anything in the population path raises (each config's own error
        is then reported as :meth:`evaluate` reports it). Each evaluation's ``seconds`` is its
        share of its chunk's wall time.
        """
        configs = list(resolved)
        answered = {
            i: self._answers.pop(rc.key(), None) if self._answers else None
            for i, rc in enumerate(configs)
        }
        todo = [rc for i, rc in enumerate(configs) if answered[i] is None]
        if self.population_refusal() is not None:
            fresh = [self.evaluate(rc) for rc in todo]
        else:
            size = self.population_chunk()
            fresh = []
            for i in range(0, len(todo), size):
                chunk = todo[i : i + size]
                got = self._population(chunk)
                fresh.extend(got if got is not None else [self.evaluate(rc) for rc in chunk])
        it = iter(fresh)
        return [a if a is not None else next(it) for a in answered.values()]

    @contextmanager
    def answering(self, resolved: Sequence[ResolvedConfig]) -> Iterator[None]:
        """Evaluate ``resolved`` now, as one :meth:`evaluate_many`; within the block,
        :meth:`evaluate` (or :meth:`evaluate_many`) of any of them returns that result once.

        For a run whose configs are known before it starts (a comparison's ground truth),
        so the run itself, and the records it writes, stay those of one evaluation a trial.
        """
        got = self.evaluate_many(resolved)
        self._answers = {rc.key(): ev for rc, ev in zip(resolved, got, strict=True)}
        try:
            yield
        finally:
            self._answers = {}

    def population_refusal(self) -> str | None:
        """Why :meth:`evaluate_many` evaluates one config at a time, or ``None``: a metric the
        population path does not compute (a noisy one, a user's), or a graph in training mode.
        Per config, a stochastic format also refuses (:func:`.population.population_refusal`)."""
        if self.gm.training:
            return "the graph is in training mode"
        if self.user_evaluate:
            return "a user evaluate function measures some metric"
        kept = self._metrics_why
        if kept is None or kept[0] != self.metrics:  # found once per metric list
            kept = self._metrics_why = (self.metrics, _metrics_refusal(self.metrics))
        return kept[1]

    def population_chunk(self) -> int:
        """Configs per population: all of a chunk's layer outputs for one batch fit in
        ``population_bytes`` (an upper bound: every node's output held at once); computed
        once per setting (the graph never changes)."""
        key = (self.population_bytes, self.batch_size, len(self.data))
        kept = self._chunk
        if kept is None or kept[0] != key:
            kept = self._chunk = (key, self._population_chunk())
        return kept[1]

    def _population_chunk(self) -> int:
        rows = min(self.batch_size, len(self.data))
        per_sample = 0
        for node in self.gm.graph.nodes:
            ni = info(node)
            for t in ni.outputs:
                per_sample += t.numel * 8  # float64 at most
        traced = max(1, traced_batch_size(self.gm))
        per_config = max(1, rows * per_sample // traced)
        return max(1, self.population_bytes // per_config)

    def _kinds(self) -> tuple[list[str], tuple[int, ...], list[str]]:
        """The data metrics, their top-k ``k``s and the static metrics (found once per
        metric list)."""
        kept = self._kinds_of
        if kept is None or kept[0] != self.metrics:
            names = [n for n in self.metrics if metric_spec(n).kind == "data"]
            ks = tuple(k for k in (top_k_of(n) for n in names) if k is not None)
            static = [n for n in self.metrics if metric_spec(n).kind == "static"]
            kept = self._kinds_of = (self.metrics, (names, ks, static))
        return kept[1]

    def _batch_labels(self, b: int, y: torch.Tensor, num_classes: int) -> BatchLabels:
        """The :class:`BatchLabels` of batch ``b`` of the data (labels ``y``), built once
        per batch for this evaluator's data (which never changes) while all of them take at
        most 64 MiB, else every call."""
        kept = self._labels_of
        setting = (self.batch_size, num_classes)
        if kept is None or kept[0][0] is not self.data or kept[0][1:] != setting:
            kept = self._labels_of = ((self.data, *setting), {})
        lab = kept[1].get(b)
        if lab is None:  # (threads may both build one: the same values)
            lab = BatchLabels.of(class_labels(y.to(self.device, non_blocking=True)), num_classes)
            if sum(k.nbytes() for k in kept[1].values()) + lab.nbytes() <= 2**26:
                kept[1][b] = lab
        return lab

    def _population(self, chunk: list[ResolvedConfig]) -> list[Evaluation] | None:
        """``chunk`` evaluated as one population; ``None`` where the path cannot answer."""
        t0 = time.perf_counter()
        pop: Population | None = getattr(self._local, "population", None)
        if pop is None:
            pop = self._local.population = Population(self.gm, self.calibration)
        try:
            bound = pop.bind(chunk)
            by_node = pop.columns(bound)
            if pop.refusal(bound, by_node) is not None:
                return None
            quality: PopulationQuality | None = None
            names, ks, static = self._kinds()
            data = self.data
            # one batch (most validation splits a search measures): no slicing per call
            batches = (
                [(data.x, data.y)]
                if 0 < len(data) <= self.batch_size
                else data.batches(self.batch_size)
            )
            for b, (x, y) in enumerate(batches):
                outs = pop.run(bound, x.to(self.device, non_blocking=True), by_node)
                if quality is None:
                    quality = PopulationQuality(len(chunk), int(outs[0].shape[1]), ks)
                quality.add(outs, self._batch_labels(b, y, quality.num_classes))
            qualities = quality.results() if quality is not None else []
            sm = self.static_metrics()
            unpriced = [n for n in static if n not in sm.names]  # none is registered
            pm = self.prepared()
            same = self._same_totals()
            results = []
            metrics = self.metrics
            for i, rc in enumerate(bound):
                # the slots are filled only for the first config of a structure
                values = sm.values(rc, partial(pm.apply_, rc), same=same)
                if unpriced:
                    values.update(compute_metrics(pm.apply_(rc), unpriced))
                if names:
                    q = quality_values(qualities[i])
                    results.append({n: values[n] if n in values else q[n] for n in metrics})
                else:
                    results.append({n: values[n] for n in metrics})
        except Exception:  # the single path reports each config's own error
            return None
        share = (time.perf_counter() - t0) / max(1, len(chunk))
        return [_finish(metrics, share) for metrics in results]


def _metrics_refusal(metrics: Sequence[str]) -> str | None:
    """Which of ``metrics`` a population does not compute (a noisy one, one of another
    group than the static and quality ones), or ``None``."""
    for name in metrics:
        spec = metric_spec(name)
        if not spec.deterministic:
            return f"metric {name!r} is noisy"
        if spec.kind != "static" and spec.compute is not quality_metrics:
            return f"metric {name!r} is not computed for a population"
    return None


def _finish(metrics: dict[str, float], seconds: float) -> Evaluation:
    """The evaluation of measured ``metrics``: an error when any is not finite."""
    if all(map(math.isfinite, metrics.values())):  # the common case, without a generator
        return Evaluation(metrics, None, seconds)
    bad = sorted(k for k, v in metrics.items() if not math.isfinite(v))
    return Evaluation(metrics, f"non-finite metric(s) {bad}", seconds)


def evaluate_population(
    gm: fx.GraphModule,
    configs: Sequence[Any],
    data: Split,
    metrics: Sequence[str],
    *,
    calibration: Any = None,
    batch_size: int = 1024,
    device: str | torch.device = "auto",
    population_bytes: int = 256 * 2**20,
) -> list[Evaluation]:
    """Measure many quantization configs of one traced model, as a population.

    Equal, metric for metric, to quantizing and measuring each config alone
    (``compute_metrics(quantize(gm, config), metrics, data=data)``), in a fraction of the time:
    see :meth:`Evaluator.evaluate_many`.

    Args:
        gm: a graph from :func:`quantsearch.trace`, in eval mode; never modified.
        configs: ``QuantizeConfig`` or :class:`ResolvedConfig` values (or per-node tables, as
            ``ResolvedConfig.from_dict`` reads them).
        data: the samples the data metrics are measured on.
        metrics: metric names (``quantsearch metrics`` lists them).
        calibration, batch_size, device, population_bytes: as for :class:`Evaluator`.

    Returns:
        One :class:`Evaluation` per config, in order (``metrics``, or ``error`` for a config
        that could not be evaluated).

    Example:
        >>> import torch
        >>> from quantsearch import trace
        >>> from quantsearch.data import Split
        >>> from quantsearch.passes.transform import quantize
        >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
        <...>
        >>> gm = trace(torch.nn.Sequential(torch.nn.Linear(4, 3)).eval(), torch.ones(2, 4))
        >>> data = Split(torch.randn(50, 4), torch.randint(0, 3, (50,)))
        >>> configs = [{"_0": {"weight": {"format": "fixed", "width": w, "frac_width": 2}}}
        ...            for w in (3, 4, 6)]
        >>> got = evaluate_population(gm, configs, data, ["accuracy", "model_size_bits"])
        >>> [e.metrics == compute_metrics(quantize(gm, ResolvedConfig.from_dict(c)),
        ...      ["accuracy", "model_size_bits"], data=data) for e, c in zip(got, configs)]
        [True, True, True]
    """
    evaluator = Evaluator(
        gm,
        data,
        metrics,
        calibration=calibration,
        batch_size=batch_size,
        device=device,
        population_bytes=population_bytes,
    )
    resolved = [
        c
        if isinstance(c, ResolvedConfig)
        else ResolvedConfig.from_dict(c, gm=gm, calibration=calibration, key="configs")
        if isinstance(c, Mapping)
        else resolve(gm, c, calibration=calibration)
        for c in configs
    ]
    return evaluator.evaluate_many(resolved)


def _check_user_baseline(baseline: Mapping[str, float]) -> None:
    """Refuse an evaluate function's NaN or inf on the float model (failed configs' values)."""
    bad = [k for k, v in baseline.items() if is_user_metric(k) and not math.isfinite(v)]
    if bad:
        raise ConfigError(
            f"metrics.evaluate: returned {bad[0]} = {baseline[bad[0]]} for the unquantized "
            "model, allowed: finite numbers (every trial is measured against it)"
        )
