"""``quantsearch summary``: the per-node table of a traced model, its costs and its metrics."""

from __future__ import annotations

import warnings
from typing import Any

import click
from click.core import ParameterSource

from quantsearch.cli.common import (
    config_option,
    json_option,
    load_config_or_default,
    load_option,
    within,
)
from quantsearch.cli.console import format_value, print_table
from quantsearch.cli.printing import dumps
from quantsearch.errors import ConfigError
from quantsearch.metrics import UncountedOpsWarning, metric_spec, metric_specs
from quantsearch.validate import COUNT_MAX, REPEATS_MAX


def _display(v: float) -> float | int:
    return int(v) if v.is_integer() and abs(v) < 2**63 else v


@click.command()
@config_option
@load_option
@json_option
@click.option(
    "--batch",
    type=int,
    default=None,
    help="Trace on this many validation samples (default: data.eval_samples or the whole split).",
)
@click.option(
    "--latency", "with_latency", is_flag=True, help="Also measure inference latency (slower)."
)
@click.option(
    "--latency-batch", type=int, default=1, show_default=True, help="Samples per timed call."
)
@click.option("--repeats", type=int, default=50, show_default=True, help="Timed calls.")
@click.option("--warmup", type=int, default=10, show_default=True, help="Untimed calls first.")
@click.option(
    "--sensitivity",
    "with_sensitivity",
    is_flag=True,
    help="Also the predicted accuracy drop of each knob of [search.space] per bit width "
    "(docs/sensitivity.md).",
)
def summary(
    config_path: str | None,
    load: str | None,
    as_json: bool,
    batch: int | None,
    with_latency: bool,
    latency_batch: int,
    repeats: int,
    warmup: int,
    with_sensitivity: bool = False,
) -> None:
    """Trace the model; print one row per graph node, per-layer and total costs (params, bits,
    MACs, FLOPs forward/backward, BitOPs, buffers) and the per-sample static metrics.

    A quantized checkpoint (`quantize`'s quantized.pt, `finetune`'s finetuned.pt) as --load
    or model.checkpoint is summarised as the quantized model: its formats and weights."""
    # timed calls: 10**5 of a small model take minutes already; 10**9 ran for days
    within("--repeats", repeats, 1, REPEATS_MAX)
    within("--warmup", warmup, 0, REPEATS_MAX)
    within("--batch", batch, 1, COUNT_MAX)
    within("--latency-batch", latency_batch, 1, COUNT_MAX)
    source = click.get_current_context().get_parameter_source
    for name, option in (("latency_batch", "--latency-batch"), ("repeats", "--repeats"),
                         ("warmup", "--warmup")):  # fmt: skip
        if source(name) is ParameterSource.COMMANDLINE and not with_latency:
            raise ConfigError(f"{option}: got it without --latency, allowed: with it (else unused)")

    # Each imports torch: deferred for `--help` start-up.
    from quantsearch.metrics.compute import compute_metrics
    from quantsearch.metrics.latency import latency_inputs, measure_latency
    from quantsearch.session import open_session
    from quantsearch.summary import COST_COLUMNS, cost_table, graph_table

    cfg = load_config_or_default(config_path)
    session = open_session(cfg, load, formats_applied=True)
    n_val, split = len(session.data.val), " (the validation split's samples)"
    within("--batch", batch, 1, n_val, split)  # else silently fewer than asked
    if with_latency:
        within("--latency-batch", latency_batch, 1, n_val, split)
    gm = _traced(session, batch, "--load" if load is not None else "model.checkpoint")
    table = graph_table(gm)
    costs = cost_table(gm)
    specs = {s.name: s for s in metric_specs()}
    static = [name for name, s in specs.items() if s.kind == "static"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UncountedOpsWarning)  # listed in the costs instead
        metrics = compute_metrics(gm, static)
    latency: dict[str, Any] | None = None
    if with_latency:
        r = measure_latency(
            gm,
            latency_inputs(gm, latency_batch, session.data.val),
            warmup=warmup,
            repeats=repeats,
        )
        latency = r.as_dict()
        metrics.update(r.metrics())
    sens = _sensitivity(cfg, load) if with_sensitivity else None
    if as_json:
        out = {
            "model": session.model_name,
            "batch_size": costs["batch_size"],
            "nodes": table["nodes"],
            "costs": costs,
            "metrics": metrics,
            "latency": latency,
            **({"sensitivity": sens} if sens is not None else {}),
        }
        click.echo(dumps(out))
        return

    print_table(table["nodes"], title=f"{session.model_name} ({len(table['nodes'])} nodes)")
    print_table(
        [*costs["layers"], costs["totals"]],
        title=f"costs for the traced batch of {costs['batch_size']}",
        columns=COST_COLUMNS,
    )
    for u in costs["uncounted"]:
        click.echo(f"uncounted: {u['node']} ({u['op_kind']}): {u['reason']}")
    rows = [
        {
            "metric": name,
            "value": _display(value),
            "unit": metric_spec(name).unit,  # a noisy metric's <name>_iqr too
            "better": metric_spec(name).direction,
        }
        for name, value in metrics.items()
    ]
    print_table(rows, title="metrics (per sample where the unit says so)")
    if latency is not None:
        click.echo(
            f"latency: median {format_value(latency['median_ms'])} ms, IQR "
            f"{format_value(latency['iqr_ms'])} ms, min {format_value(latency['min_ms'])} ms per call "
            f"of {latency['batch_size']} sample(s); {latency['repeats']} repeats after "
            f"{latency['warmup']} warm-up, {latency['device']}, {latency['threads']} thread(s), "
            f"{latency['timer']}. Fake-quantized models run float kernels: compare bitops and "
            "model_size_bits for integer hardware."
        )
    if sens is not None:
        print_table(
            sens,
            title="predicted accuracy drop (%) per knob alone, best choice of each width "
            "(no evaluation; docs/sensitivity.md)",
        )


def _traced(session: Any, batch: int | None, key: str) -> Any:
    """The graph summarised: a quantized checkpoint's model with its formats applied (and its
    weights), traced on the same samples as a float model's."""
    from quantsearch.quantized import quantized_model  # imports torch: deferred

    ckpt = session.loaded
    if ckpt is None or "quantize" not in ckpt.config:
        return session.trace(batch)
    return quantized_model(ckpt, session.checkpoint, key=key, example=session.examples(batch))


def _sensitivity(cfg: Any, load: str | None) -> list[dict[str, Any]]:
    """Per knob of the config's search space: the least predicted drop per bit width."""
    # Each imports torch: deferred for `--help` start-up.
    from quantsearch.search.api import prepare_from_config
    from quantsearch.search.sensitivity import sensitivity_rows, sensitivity_tables

    if cfg.search is None:
        raise ConfigError(
            f"--sensitivity: got {cfg.source}, which has no [search] table, allowed: a config with a "
            "[search.space] whose knobs it ranks"
        )
    space, evaluator, _ = prepare_from_config(cfg, cfg.search, load)
    return sensitivity_rows(space, sensitivity_tables(space, evaluator, ()))
