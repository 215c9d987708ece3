"""``quantsearch quantize``: apply the config's ``[quantize]`` table to a trained model, or the
config of one trial of a search (``--from-run DIR --trial N | --best | --pareto K``)."""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from quantsearch.atomic import write_atomic
from quantsearch.cli.common import (
    PERCENTILE,
    check_out_folder,
    config_option,
    folder_value,
    json_option,
    load_config_or_default,
    load_option,
    trial_options,
)
from quantsearch.cli.console import print_table
from quantsearch.cli.printing import dumps
from quantsearch.errors import ConfigError
from quantsearch.metrics import TRIAL_METRICS, UncountedOpsWarning

__all__ = ["METRIC_NAMES", "quantize"]

# what "before/after" compares: quality on the validation split, and what quantization buys
METRIC_NAMES = (*TRIAL_METRICS, "macs")


@click.command()
@config_option
@load_option
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    default=None,
    callback=folder_value,
    help="Folder to write into (default: <run_dir>/quantize-<model>).",
)
@click.option(
    "--calibration",
    "method",
    type=click.Choice(["minmax", "percentile"]),
    default="minmax",
    show_default=True,
    help='Activation ranges for frac_width = "auto".',
)
@click.option(
    "--percentile",
    type=PERCENTILE,
    default=99.9,
    show_default=True,
    help="Percentile for --calibration percentile.",
)
@trial_options
@click.option(
    "--int-weights",
    is_flag=True,
    help="Also write DIR/weights.npz + DIR/weights.json: every quantized tensor as integers "
    "plus its format (fixed point only).",
)
@json_option
def quantize(
    config_path: str | None,
    load: str | None,
    out_dir: str | None,
    method: str,
    percentile: float,
    from_run: str | None,
    trial: int | None,
    best: bool,
    pareto: int | None,
    int_weights: bool,
    as_json: bool,
) -> None:
    """Quantize a trained model with the config's [quantize] table, or with the config of a
    search trial (--from-run DIR with --trial N, --best or --pareto K; default: the best trial
    or the front's first).

    Writes DIR/quantized.pt (a quantized checkpoint: it records every node's format and
    reloads as the quantized model, quantsearch.load_quantized), DIR/resolved_config.json (the
    format of every node, with each "auto" frac_width chosen) and DIR/metrics.json (the
    validation metrics before and after; with --from-run the test split's too). Calibration
    uses data.calibration_samples samples of the training split.
    """
    # Each imports torch: deferred for `--help` start-up.
    from quantsearch.int_weights import check_int_weights, save_int_weights
    from quantsearch.metrics.compute import compute_metrics
    from quantsearch.passes.transform import calibrate, resolve
    from quantsearch.passes.transform import quantize as quantize_pass
    from quantsearch.quantized import save_quantized
    from quantsearch.session import open_session

    source = click.get_current_context().get_parameter_source
    if source("percentile") is ParameterSource.COMMANDLINE and (
        from_run is not None or method != "percentile"
    ):  # else it is ignored without a word
        raise ConfigError(
            "--percentile: got it without --calibration percentile, allowed: with it "
            "(and without --from-run, whose trial is quantized as the search calibrated it)"
        )
    if from_run is not None:
        if source("method") is ParameterSource.COMMANDLINE:
            raise ConfigError(
                "--calibration: got it with --from-run, allowed: without it (the trial is "
                "quantized as the search calibrated it)"
            )
        if config_path is not None or load is not None:
            given = "--config" if config_path is not None else "--load"
            raise ConfigError(f"{given}: got it with --from-run, allowed: one of them")
        _quantize_from_run(from_run, trial, best, pareto, out_dir, int_weights, as_json)
        return
    for opt, value in (("--trial", trial), ("--best", best or None), ("--pareto", pareto)):
        if value is not None:
            raise ConfigError(f"{opt}: got it without --from-run, allowed: with --from-run DIR")

    cfg = load_config_or_default(config_path)
    if cfg.quantize is None:
        raise ConfigError(  # keyed by the dotted key, as every config error is
            f"quantize: got no [quantize] table in {cfg.source}, allowed: a config with one, "
            "e.g. [quantize.default] weight = { width = 8, frac_width = 4 }, or --from-run DIR"
        )
    if cfg.quantize.sets_nothing:
        raise ConfigError(
            "quantize: got a table that sets no role, allowed: at least one, e.g. "
            "[quantize.default] weight = { width = 8, frac_width = 4 }"
        )
    if source("method") is ParameterSource.COMMANDLINE and not cfg.quantize.needs_calibration:
        raise ConfigError(  # it calibrates activations' "auto" fields only: ignored without one
            f"--calibration: got it without an activation's frac_width = 'auto' in "
            f"{cfg.source}'s [quantize], allowed: with one (it sets their ranges)"
        )
    session = open_session(cfg, load, need_weights=True)
    out = Path(out_dir) if out_dir is not None else _default_out(cfg, session.model_name)
    check_out_folder(out, "quantized.pt", "quantize")
    gm = session.trace()
    stats = None
    if cfg.quantize.needs_calibration:
        x = session.data.train.x[: cfg.data.calibration_samples]
        stats = calibrate(gm, x, method=method, percentile=percentile)
    resolved = resolve(gm, cfg.quantize, calibration=stats)
    qgm = quantize_pass(gm, resolved)
    if int_weights:  # refused before any output: no checkpoint without the weights asked for
        check_int_weights(qgm)

    val = session.data.val.head(cfg.data.eval_samples)
    names = _measured(cfg, val.y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UncountedOpsWarning)  # the same nodes before and after
        before = compute_metrics(gm, names, data=val, batch_size=cfg.data.batch_size)
        after = compute_metrics(qgm, names, data=val, batch_size=cfg.data.batch_size)

    out.mkdir(parents=True, exist_ok=True)
    ckpt = save_quantized(
        out / "quantized.pt",
        qgm,
        model_name=session.model_name,
        dataset=session.data.name,
        sample_shape=session.data.sample_shape,
        metrics=after,
        extra={"source": cfg.source},
        base_dir=cfg.base_dir,
    )
    record: dict[str, Any] = {
        "model": session.model_name,
        "dataset": session.data.name,
        "split": "val",
        "samples": len(val),
        "before": before,
        "after": after,
        "calibration": None if stats is None else stats.to_dict(),
    }
    _write_outputs(
        out,
        ckpt,
        resolved,
        record,
        as_json,
        title=session.model_name,
        int_weights=(lambda: save_int_weights(qgm, out, model_name=session.model_name))
        if int_weights
        else None,
    )


def _quantize_from_run(
    from_run: str,
    trial: int | None,
    best: bool,
    pareto: int | None,
    out_dir: str | None,
    int_weights: bool,
    as_json: bool,
) -> None:
    """``quantize --from-run``: one trial's config on the run's own model."""
    # Each imports torch: deferred for `--help` start-up.
    from quantsearch.int_weights import check_int_weights, save_int_weights
    from quantsearch.metrics.compute import compute_metrics
    from quantsearch.metrics.specs import REGRESSION_METRICS, builtin_metric, metric_spec
    from quantsearch.passes.transform import ResolvedConfig
    from quantsearch.quantized import save_quantized
    from quantsearch.search.run_dir import open_run

    result = open_run(from_run, key="--from-run")
    chosen = result.select(
        trial=trial, best=best, pareto=pareto, keys=("--trial", "--best", "--pareto")
    )
    out = Path(out_dir) if out_dir else Path(from_run) / f"quantized-trial-{chosen.number}"
    check_out_folder(out, "quantized.pt", "quantize")
    sm = result.searched
    assert sm is not None and sm.data is not None  # open_run sets both
    gm, qgm = sm.graph, result.model(chosen, key="--trial")
    if int_weights:  # refused before any output: no checkpoint without the weights asked for
        check_int_weights(qgm)
    resolved = ResolvedConfig.from_graph(qgm)
    val = sm.data.val.head(sm.eval_samples)
    # Classification: METRIC_NAMES. Else what the trial recorded (mse and mae for float
    # targets ...), but a user evaluate function's metrics: this process has not imported it.
    other = any(not builtin_metric(m) or m in REGRESSION_METRICS for m in chosen.metrics)
    names: tuple[str, ...] = METRIC_NAMES
    if other:
        names = (*(m for m in chosen.metrics if builtin_metric(m) and m != "macs"), "macs")
    quality = [m for m in names if metric_spec(m).kind == "data"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UncountedOpsWarning)  # the same nodes before and after
        before = compute_metrics(gm, names, data=val, batch_size=sm.batch_size)
        after = compute_metrics(qgm, names, data=val, batch_size=sm.batch_size)
    out.mkdir(parents=True, exist_ok=True)
    test = {
        "before": compute_metrics(gm, quality, data=sm.data.test, batch_size=sm.batch_size),
        "after": compute_metrics(qgm, quality, data=sm.data.test, batch_size=sm.batch_size),
    }
    ckpt = save_quantized(
        out / "quantized.pt",
        qgm,
        model_name=sm.name,
        dataset=sm.data.name,
        sample_shape=sm.data.sample_shape,
        metrics=after,
        extra={"run": str(from_run), "trial": chosen.number},
        base_dir=sm.base_dir,
    )
    _write_outputs(
        out,
        ckpt,
        resolved,
        {
            "model": sm.name,
            "dataset": sm.data.name,
            "run": str(from_run),
            "trial": chosen.number,
            "split": "val",
            "samples": len(val),
            "before": before,
            "after": after,
            "test": {"samples": len(sm.data.test), **test},
        },
        as_json,
        title=f"{sm.name}, trial {chosen.number}",
        int_weights=(lambda: save_int_weights(qgm, out, model_name=sm.name))
        if int_weights
        else None,
    )


def _write_outputs(
    out: Path,
    ckpt: Path,
    resolved: Any,
    record: dict[str, Any],
    as_json: bool,
    *,
    title: str,
    int_weights: Callable[[], tuple[Path, Path]] | None,
) -> None:
    """resolved_config.json, metrics.json, the integer weights if asked; then print."""
    written = [ckpt, out / "resolved_config.json", out / "metrics.json"]
    if int_weights is not None:
        written.extend(int_weights())
    # Atomically: a full disk or a kill leaves the previous file whole, never half of one.
    write_atomic(written[1], json.dumps(resolved.to_dict(), indent=2) + "\n")
    write_atomic(written[2], json.dumps(record, indent=2) + "\n")
    if as_json:
        click.echo(
            dumps(
                {
                    "out": str(out),
                    "checkpoint": str(ckpt),
                    "files": [str(p) for p in written],
                    **record,
                }
            )
        )
        return
    rows = [
        {"node": name, **{role: str(fmt) for role, fmt in lq.items()}}
        for name, lq in resolved.items()
    ]
    print_table(
        rows,
        title=f"{title}: {len(rows)} quantized node(s)",
        columns=["node", "data_in", "weight", "bias", "data_out"],
    )
    before, after = record["before"], record["after"]
    print_table(
        [{"metric": k, "before": before[k], "after": after[k]} for k in before],
        title=f"validation metrics ({record['samples']} samples)",
    )
    test = record.get("test")
    if test and test["before"]:
        print_table(
            [
                {"metric": k, "before": test["before"][k], "after": test["after"][k]}
                for k in test["before"]
            ],
            title=f"test metrics ({test['samples']} samples, held out from the search)",
        )
    click.echo("wrote " + ", ".join(str(p) for p in written))


def _measured(cfg: Any, labels: Any) -> tuple[str, ...]:
    """What before/after compares for a config: the classification metrics; a ``[metrics]
    evaluate`` function's metrics (imported and declared here) or, for float targets, ``mse``
    and ``mae``, each with the static ones, as a search of the config records them."""
    from quantsearch.metrics.specs import REGRESSION_METRICS, declare_user_metrics
    from quantsearch.search.goals import default_recorded
    from quantsearch.spec import load_callable

    user = None
    if cfg.metrics.evaluate:
        fn = load_callable(cfg.metrics.evaluate, key="metrics.evaluate", base_dir=cfg.base_dir)
        user = dict(cfg.search.user_metrics if cfg.search else cfg.metrics.directions)
        declare_user_metrics(fn, user)
    named = REGRESSION_METRICS if labels.is_floating_point() else ()
    return (*default_recorded(user, named), "macs")


def _default_out(cfg: Any, model_name: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", model_name)
    return Path(cfg.run_dir) / f"quantize-{safe}"
