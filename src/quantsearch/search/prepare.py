"""What a search needs before its first trial: the space and the evaluator of one model and
its validation data (:func:`prepare_search`), built from a config for the CLI
(:func:`prepare_from_config`).

A user's evaluate function (``evaluate=`` in Python, ``[metrics] evaluate`` in a config) is
declared here, with its metrics' directions, so that every later step looks them up by name.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import fx, nn

from quantsearch.checkpoint import tensors_digest
from quantsearch.data import Split
from quantsearch.errors import ConfigError
from quantsearch.graph import check_inputs, trace
from quantsearch.metrics.specs import declare_user_metrics, top_k_of
from quantsearch.metrics.user import UserEvaluate
from quantsearch.passes.transform import calibrate, quantizable_kinds
from quantsearch.search.config import SearchConfig
from quantsearch.search.evaluate import Evaluator
from quantsearch.search.fidelity import rungs
from quantsearch.search.identity import LEGACY
from quantsearch.search.space import SearchSpace
from quantsearch.search.strategies.sensitivity import check_goals
from quantsearch.session import Session, open_session
from quantsearch.spec import load_callable
from quantsearch.validate import resolve_device

__all__ = ["prepare_from_config", "prepare_search", "trace_model"]


def prepare_search(
    gm: fx.GraphModule,
    cfg: SearchConfig,
    data: Split,
    *,
    quantize_config: Any = None,
    calibration_data: torch.Tensor | None = None,
    batch_size: int = 1024,
    evaluate: UserEvaluate | None = None,
) -> tuple[SearchSpace, Evaluator]:
    """The space (checked against the graph) and the evaluator for one model and dataset.

    ``evaluate``: the user's evaluate function, whose metrics ``cfg.user_metrics`` names.
    """
    if cfg.user_metrics and evaluate is None:
        raise ConfigError(
            f"evaluate: got no evaluate function, allowed: one that returns "
            f"{sorted(cfg.user_metrics)} (the metrics the search config names)"
        )
    if evaluate is not None:
        declare_user_metrics(evaluate, cfg.user_metrics)
    calibrated = cfg.space.calibrated_keys()
    if getattr(quantize_config, "needs_calibration", False):
        calibrated.append(getattr(quantize_config, "key", "quantize"))
    if calibrated and calibration_data is None:  # else every trial would fail alike
        raise ConfigError(
            f"{calibrated[0]}: frac_width = 'auto' for an activation without calibration "
            "samples, allowed: calibration_data=<training samples> (the CLI takes "
            "data.calibration_samples of the training split) or an explicit frac_width"
        )
    check_inputs(gm, (data.x[:1],))  # one tensor per sample: else every trial fails alike
    _check_outputs(gm, cfg, data)
    _check_first_rung(cfg, len(data))
    if cfg.strategy.name == "sensitivity":  # its goals, before the run directory is made
        check_goals(cfg)
    space = SearchSpace(cfg.space, gm, set(quantizable_kinds()))
    calibration = calibrate(gm, calibration_data) if calibration_data is not None else None
    evaluator = Evaluator(
        gm,
        data,
        cfg.all_metrics,
        quantize_config=quantize_config,
        calibration=calibration,
        batch_size=batch_size,
        device=resolve_device(cfg.device, "search.device"),
    )
    return space, evaluator


def _check_first_rung(cfg: SearchConfig, n_total: int) -> None:
    """Refuse a fidelity with no rung before the whole split (a first rung past it / eta, or
    an eta past the split's size): its trials were all measured in full, silently, as with
    fidelity = "full"."""
    f = cfg.fidelity
    if f.method == "full" or len(rungs(n_total, f)) > 1:
        return
    if f.eta > n_total:
        raise ConfigError(
            f"search.fidelity.eta: got {f.eta}, allowed: at most {n_total} (the validation "
            "samples a trial is measured on; a larger eta leaves no rung before the whole split, "
            "and no trial is pruned)"
        )
    raise ConfigError(
        f"search.fidelity.min_samples: got {f.min_samples}, allowed: at most {n_total // f.eta} "
        f"(the {n_total} validation samples a trial is measured on / eta {f.eta}; a larger first "
        "rung leaves none before the whole split, and no trial is pruned)"
    )


def _metric_key(cfg: SearchConfig, named: Sequence[str]) -> str:
    """The config key that asks for one of the metrics ``named``."""
    keys = [f"search.objectives.{o.metric}" for o in cfg.objectives if o.metric in named]
    keys += [f"search.constraints.{c.name}" for c in cfg.constraints if c.metric in named]
    return (keys or ["search.metrics"])[0]


def _check_outputs(gm: fx.GraphModule, cfg: SearchConfig, data: Split) -> None:
    """Refuse, on two validation samples and before the run directory is made, metrics the
    model's outputs cannot give: mse/mae on targets of another shape (class labels), and
    top<k>_accuracy past its classes. The float baseline raised MetricError after it was."""
    regression = [m for m in ("mse", "mae") if m in cfg.all_metrics]
    top = [m for m in cfg.all_metrics if top_k_of(m)]
    if not regression and not top:
        return
    with torch.no_grad():
        out = gm(data.x[:2].clone())
    y = data.y[:2]
    shape = tuple(out.shape[1:]) if isinstance(out, torch.Tensor) else type(out).__name__
    if regression and not (isinstance(out, torch.Tensor) and out.numel() == y.numel()):
        raise ConfigError(
            f"{_metric_key(cfg, regression)}: got {regression[0]} for targets of shape "
            f"{tuple(y.shape[1:])} per sample and outputs of {shape}, allowed: mse/mae for float "
            "targets of the output's shape; class labels are measured by accuracy, loss and the "
            "other classification metrics, other targets by a [metrics] evaluate function"
        )
    c = int(out.shape[1]) if isinstance(out, torch.Tensor) and out.dim() == 2 else None
    past = [m for m in top if c is not None and (top_k_of(m) or 0) > c]
    if past:
        raise ConfigError(
            f"{_metric_key(cfg, past)}: got {past[0]}, allowed: top<k>_accuracy with k at most "
            f"{c} (the model's classes)"
        )


def trace_model(model: nn.Module, split: Split) -> fx.GraphModule:
    """``model`` in eval mode, traced on up to 8 samples of ``split``."""
    model.eval()
    return trace(model, split.x[: min(len(split), 8)])


def prepare_from_config(
    config: Any, cfg: SearchConfig, load: str | None, *, session: Session | None = None
) -> tuple[SearchSpace, Evaluator, dict[str, Any]]:
    """Model, weights, data and graph of a config: its space, evaluator and what identifies it.

    Validation samples: ``data.eval_samples`` of the validation split; calibration (for
    ``frac_width = "auto"``): ``data.calibration_samples`` of the training split. A
    ``[metrics] evaluate`` function is imported (relative to the config file's folder).
    ``session``: the config's model and data already loaded (``open_session(config, load,
    need_weights=True)``), so that the end of the run reuses them; opened here when ``None``.
    """
    if session is None:
        session = open_session(config, load, need_weights=True)
    val = session.data.val.head(config.data.eval_samples)
    gm = session.trace(batch=min(len(val), 8))
    calib = session.data.train.x[: config.data.calibration_samples]
    spec = config.metrics.evaluate
    evaluate = (
        load_callable(spec, key="metrics.evaluate", base_dir=config.base_dir) if spec else None
    )
    space, evaluator = prepare_search(
        gm,
        cfg,
        val,
        quantize_config=config.quantize,
        calibration_data=calib,
        batch_size=config.data.batch_size,
        evaluate=evaluate,
    )
    extra: dict[str, Any] = {
        "model": session.model_name,
        "data": [session.data.name, tensors_digest({"x": val.x, "y": val.y})],
        "weights": tensors_digest(session.model.state_dict()),
        LEGACY: {  # what studies of an earlier quantsearch were identified by
            "model": session.model_name,
            "dataset": session.data.name,
            "checkpoint": _file_digest(session.checkpoint),
            "samples": len(val),
        },
    }
    if spec:  # another function measures other metrics: not the same study
        extra["evaluate"] = [spec, sorted(cfg.user_metrics.items())]
    if cfg.space.calibrated_keys():  # its points resolve through these samples' ranges
        extra["calibration"] = tensors_digest({"x": calib})
    return space, evaluator, extra


def _file_digest(path: Path | None) -> str | None:
    if path is None:
        return None
    return hashlib.sha1(path.read_bytes()).hexdigest()[:16]
