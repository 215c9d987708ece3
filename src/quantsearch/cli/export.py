"""``quantsearch export``: a chosen config to hls4ml or QONNX, verified against quantsearch."""

from __future__ import annotations

import functools
import shlex
import time
from pathlib import Path
from typing import Any

import click

from quantsearch.cli.common import (
    config_option,
    json_option,
    load_config_or_default,
    load_option,
    trial_options,
    within,
)
from quantsearch.cli.console import console
from quantsearch.cli.printing import dumps
from quantsearch.errors import ConfigError
from quantsearch.paths import check_path_text, writable_dir

__all__ = ["export"]


def out_value(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """Callback for OUT (an hls4ml folder or a QONNX file): not empty, in a folder this
    process may write in, checked before the model is built."""
    if not value.strip() or value == "-":  # '-' is no standard output here: a file named '-'
        raise ConfigError(f"OUT: got {value!r}, allowed: a folder (hls4ml) or a file (qonnx)")
    check_path_text(value, "OUT")  # the parent's check below does not see OUT's own name
    writable_dir(Path(value).parent, "OUT")
    return value


@click.command()
@click.argument("out", type=click.Path(), callback=out_value)
@click.option(
    "--to", "target", type=click.Choice(["hls4ml", "qonnx"]), required=True, help="Export format."
)
@trial_options
@config_option
@load_option
@click.option(
    "--verify",
    is_flag=True,
    help="Run hls4ml's C simulation / the qonnx executor on the validation split and "
    "compare with quantsearch's model.",
)
@click.option(
    "--samples",
    type=click.IntRange(min=1),
    default=None,
    help="With --verify: the first N validation samples, at most the split's (default: all).",
)
# The choices are quantsearch.export.BACKENDS, written out: export imports torch, not for --help.
@click.option(
    "--backend",
    type=click.Choice(["Vitis", "Vivado"], case_sensitive=False),
    default="Vitis",
    show_default=True,
    help="hls4ml backend.",
)
@click.option(
    "--io-type",
    type=click.Choice(["io_parallel", "io_stream"]),
    default="io_parallel",
    show_default=True,
    help="hls4ml I/O type.",
)
@click.option(
    "--float-as",
    "float_as",
    default=None,
    help="Format for roles left in float, e.g. 'fixed(32,16)' (inexact; measured).",
)
@json_option
def export(
    out: str,
    target: str,
    from_run: str | None,
    trial: int | None,
    best: bool,
    pareto: int | None,
    config_path: str | None,
    load: str | None,
    verify: bool,
    samples: int | None,
    backend: str,
    io_type: str,
    float_as: str | None,
    as_json: bool,
) -> None:
    """Export a quantized model to an hls4ml project (OUT is a folder) or a QONNX file.

    The config comes from a search (--from-run RUNDIR [--trial N | --best | --pareto K]; by
    default its best trial, or the Pareto front's first), or from the [quantize] table of
    --config, applied to --load; a quantized checkpoint as --load (quantize's quantized.pt,
    finetune's finetuned.pt) is exported as it is, fine-tuned weights included. hls4ml
    projects are built with hls4ml's PyTorch front end; `--verify` compiles hls4ml's
    bit-accurate C simulation with g++. HLS synthesis is then yours: run vitis_hls -f
    build_prj.tcl in OUT (or hls_model.build()).
    """
    if samples is not None and not verify:
        raise ConfigError("--samples: got it without --verify, allowed: with it (else unused)")
    for opt, value in (("--trial", trial), ("--best", best or None), ("--pareto", pareto)):
        if from_run is None and value is not None:  # as quantize: else the config's was exported
            raise ConfigError(f"{opt}: got it without --from-run, allowed: with --from-run DIR")
    ctx = click.get_current_context()
    for name, option in (
        ("backend", "--backend"),
        ("io_type", "--io-type"),
        ("float_as", "--float-as"),
    ):
        given = ctx.get_parameter_source(name) is not click.core.ParameterSource.DEFAULT
        if target == "qonnx" and given:  # hls4ml's settings: a QONNX file ignored them (its
            # float roles stay float tensors, whatever --float-as said)
            raise ConfigError(f"{option}: got it with --to qonnx, allowed: with --to hls4ml")
    # Each imports torch (and the export extra): deferred for `--help` start-up.
    from quantsearch.export import export_hls4ml, export_qonnx, qonnx_notes, verify_qonnx
    from quantsearch.export.qonnx import check_out, require_executor
    from quantsearch.formats import FixedPoint
    from quantsearch.formats.base import InvalidFormat

    if target == "qonnx":
        check_out(out)  # before the model is built: a user's file at OUT is refused at once
        if verify:  # and a verification that cannot run, before the file is written
            require_executor()

    wide = None
    if float_as is not None:
        try:
            wide = FixedPoint.from_str(float_as.replace(" ", ""))
        except InvalidFormat as exc:  # a fixed format with impossible fields: name the option
            raise ConfigError(
                f"--float-as: got {float_as!r}, allowed: a fixed format whose {exc.field} is "
                f"{exc.allowed}"
            ) from None
        except ConfigError as exc:
            raise ConfigError(f"--float-as: got {float_as!r}, allowed: {exc}") from None
        if wide is None:
            raise ConfigError(
                f"--float-as: got {float_as!r}, allowed: a fixed format like 'fixed(32,16)'"
            )
    qgm, data, label = _chosen(from_run, (trial, best, pareto), config_path, load)
    val_x, classes = data.val.x, data.num_classes > 0  # regression targets: no classes
    # as summary --batch: never fewer than asked
    within("--samples", samples, 1, len(val_x), " (the validation split's samples)")
    x = val_x if samples is None else val_x[:samples]
    t0 = time.perf_counter()
    # An existing OUT is replaced whole, atomically, only if a previous export wrote it (an
    # hls4ml project's folder, a QONNX file of quantsearch's), and the output says so.
    replaced = Path(out).exists()
    record: dict[str, Any] = {"model": label, "to": target, "out": out, "replaced": replaced}
    if target == "hls4ml":
        exp = export_hls4ml(qgm, out, backend=backend, io_type=io_type, float_as=wide)
        record["precisions"] = {k: v["Precision"] for k, v in exp.config["LayerName"].items()}
        record["inexact"] = exp.plan.notes()
        if verify:
            t1 = time.perf_counter()
            sim, searched = exp.verify_both(qgm, x, classes=classes)  # builds, runs
            record["agreement"], record["search_agreement"] = sim.to_dict(), searched.to_dict()
            record["verify_seconds"] = round(time.perf_counter() - t1, 2)
        else:
            exp.write()
    else:
        path = export_qonnx(qgm, out)
        record["inexact"] = qonnx_notes(qgm)
        if verify:
            t1 = time.perf_counter()
            record["agreement"] = verify_qonnx(path, qgm, x, classes=classes).to_dict()
            record["verify_seconds"] = round(time.perf_counter() - t1, 2)
    record["seconds"] = round(time.perf_counter() - t0, 2)
    if as_json:
        click.echo(dumps(record))
        return
    print_export(record)


def print_export(record: dict[str, Any]) -> None:
    """The export's outcome in a few lines (also used by `quantsearch demo`)."""
    out = console()
    # user text (file names, a config's source, an error line) is no rich markup: printed as
    # markup, "[quantize] of FILE" and "pip install 'quantsearch[export]'" lost their brackets
    say = functools.partial(out.print, markup=False, highlight=False)
    say(f"{record['model']} -> {record['to']}: {record['out']} ({record['seconds']} s)")
    if record.get("replaced"):
        say(f"  replaced the previous {record['out']}")
    for note in record["inexact"]:
        say(f"  not exact: {note}")
    a = record.get("agreement")
    if a is not None:
        # the package imports torch and the export extra: deferred for `--help` start-up
        from quantsearch.export.agreement import describe

        verdict = "bit-exact" if a["bit_exact"] else "NOT bit-exact"
        say(
            f"  verified by {a['referee']} on {a['samples']} validation samples: "
            f"{describe(a['same_class'], a['max_lsb'])} ({verdict})"
        )
        s = record.get("search_agreement")  # hls4ml's referee holds the exact arithmetic
        if s is not None:
            why = "bit-exact" if s["bit_exact"] else "NOT bit-exact: float32 rounding"
            say(f"  {s['referee']}, the same: {describe(s['same_class'], s['max_lsb'])} ({why})")


def _chosen(
    from_run: str | None,
    which: tuple[int | None, bool, int | None],
    config_path: str | None,
    load: str | None,
) -> tuple[Any, Any, str]:
    """(quantized model in eval mode, its data's splits, a label); ``which`` is the
    (--trial, --best, --pareto) choice of a trial in ``from_run``."""
    trial, best, pareto = which
    if from_run is not None:
        if config_path is not None or load is not None:
            raise ConfigError("--from-run: got it with --config/--load, allowed: one of them")
        from quantsearch import open_run  # imports torch: deferred for `--help` start-up

        result = open_run(from_run, key="--from-run")
        chosen = result.select(
            trial=trial, best=best, pareto=pareto, keys=("--trial", "--best", "--pareto")
        )
        qgm = result.model(chosen, key="--trial")
        assert result.searched is not None
        label = f"trial {trial}" if trial is not None else f"best: trial {chosen.number}"
        if pareto is not None:
            label = f"Pareto member {pareto}: trial {chosen.number}"
        return qgm.eval(), result.searched.data, f"{result.searched.name} ({label})"
    from quantsearch.passes.transform import calibrate, resolve  # torch: deferred
    from quantsearch.passes.transform import quantize as quantize_pass
    from quantsearch.session import open_session

    cfg = load_config_or_default(config_path)
    if load is not None:
        done = _quantized_checkpoint(cfg, load)
        if done is not None:
            return done
    if cfg.quantize is None:
        raise ConfigError(  # keyed by the dotted key, as every config error is
            f"quantize: got no [quantize] table in {cfg.source}, allowed: a config with one, "
            "or --from-run RUNDIR"
        )
    if cfg.quantize.sets_nothing:
        raise ConfigError(
            "quantize: got a table that sets no role, allowed: at least one, e.g. "
            "[quantize.default] weight = { width = 8, frac_width = 4 }"
        )
    session = open_session(cfg, load, need_weights=True)
    gm = session.trace()
    gm.eval()
    stats = None
    if cfg.quantize.needs_calibration:
        stats = calibrate(gm, session.data.train.x[: cfg.data.calibration_samples])
    qgm = quantize_pass(gm, resolve(gm, cfg.quantize, calibration=stats))
    return qgm.eval(), session.data, f"{session.model_name} ([quantize] of {cfg.source})"


def _quantized_checkpoint(cfg: Any, load: str) -> tuple[Any, Any, str] | None:
    """A quantized checkpoint given to --load (``quantize``'s ``quantized.pt``, ``finetune``'s
    ``finetuned.pt``) is exported as it is: its formats and its (fine-tuned) weights, with the
    config's data for --verify. ``None`` for a float checkpoint (the config's [quantize] is
    applied to it)."""
    from quantsearch.checkpoint import load_checkpoint  # imports torch: deferred
    from quantsearch.quantized import quantized_model
    from quantsearch.session import open_session

    ckpt = load_checkpoint(load, key="--load")
    if "quantize" not in ckpt.config:
        return None
    if cfg.quantize is not None:
        raise ConfigError(
            f"--load: got a quantized checkpoint ({load!r}, exported as it is) and a [quantize] "
            f"table in {cfg.source}, allowed: one of them (a float checkpoint for [quantize])"
        )
    if ckpt.model_name != cfg.model.name:
        raise ConfigError(
            f"--load: got a checkpoint of model {ckpt.model_name!r} where model.name of "
            f"{cfg.source} is {cfg.model.name!r}, allowed: the config the model was searched with"
        )
    qgm = quantized_model(ckpt, load, key="--load")  # the checkpoint read once
    data = open_session(cfg).data
    return qgm.eval(), data, f"{ckpt.model_name} (quantized checkpoint {load})"


def export_best(run_dir: Path) -> dict[str, Any]:
    """`quantsearch demo`'s last step: the best trial of the search in ``run_dir`` to hls4ml
    (``run_dir/hls4ml``) and QONNX (``run_dir/model.qonnx.onnx``), each verified on the
    validation split; layers the search left in float are exported as fixed(32,16), reported.

    Returns ``{"exports": [record, ...], "skipped": None | why}`` (each record as ``export
    --json`` prints it) and prints nothing: :func:`print_export_best` prints it. Without the
    export extra it is skipped, saying how to install it; without g++ it writes the hls4ml
    project and skips only its C simulation (the record's ``note``).
    """
    import shutil

    # Each imports torch (and the export extra): deferred for `--help` start-up.
    from quantsearch import open_run
    from quantsearch.export import WIDE, export_hls4ml, export_qonnx, qonnx_notes, verify_qonnx

    result = open_run(run_dir, key="demo run directory")
    assert result.searched is not None  # open_run sets it
    qgm = result.model()
    x, classes = result.searched.data.val.x, result.searched.data.num_classes > 0
    label = f"{result.searched.name} (best: trial {result.select().number})"
    exports: list[dict[str, Any]] = []
    try:
        t0 = time.perf_counter()
        exp = export_hls4ml(qgm, run_dir / "hls4ml", float_as=WIDE)
        record: dict[str, Any] = {
            "model": label,
            "to": "hls4ml",
            "out": str(run_dir / "hls4ml"),
            "inexact": exp.plan.notes(),
        }
        if shutil.which("g++") is None:
            exp.write()
            record["note"] = (
                "g++ not found: the hls4ml project is written, its C simulation not built"
            )
        else:
            sim, searched = exp.verify_both(qgm, x, classes=classes)
            record["agreement"], record["search_agreement"] = sim.to_dict(), searched.to_dict()
        record["seconds"] = round(time.perf_counter() - t0, 2)
        exports.append(record)
        t0 = time.perf_counter()
        path = export_qonnx(qgm, run_dir / "model.qonnx.onnx")
        a = verify_qonnx(path, qgm, x, classes=classes)
    except ConfigError as e:  # the export extra missing, a layer or format refused: one line
        return {"exports": exports, "skipped": str(e)}
    exports.append(
        {
            "model": label,
            "to": "qonnx",
            "out": str(path),
            "inexact": qonnx_notes(qgm),
            "agreement": a.to_dict(),
            "seconds": round(time.perf_counter() - t0, 2),
        }
    )
    return {"exports": exports, "skipped": None}


def print_export_best(outcome: dict[str, Any], run_dir: Path) -> None:
    """What :func:`export_best` did, in a few lines per export."""
    say = functools.partial(console().print, markup=False, highlight=False)
    for record in outcome["exports"]:
        if record.get("note"):
            say(record["note"])
        print_export(record)
    if outcome["skipped"] is not None:
        say(f"export skipped: {outcome['skipped']}")
        return
    # the demo's own export: with --float-as, which the roles the space left in float need
    say(
        "again, or another trial: quantsearch export --to hls4ml DIR --from-run "
        f"{shlex.quote(str(run_dir))} --best --verify --float-as 'fixed(32,16)'"
    )
