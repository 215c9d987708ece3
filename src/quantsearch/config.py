"""The TOML config: frozen dataclasses, validated at load, unknown keys rejected.

Each section is parsed by the module that owns the concept (``[quantize]`` by
:mod:`quantsearch.passes.transform.config`, ``[search]`` and ``[compare]`` by
:mod:`quantsearch.search.config`), with the typed getters of :mod:`quantsearch.validate`; this
module reads the file, checks the top level and the small ``[model]``, ``[data]`` and
``[train]`` tables, and composes the result. No section parser imports this module.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from quantsearch.errors import ConfigError
from quantsearch.examples import find_example, list_examples
from quantsearch.metrics.config import MetricsConfig, parse_metrics_config
from quantsearch.passes.transform.config import QuantizeConfig, parse_quantize_config
from quantsearch.paths import not_a_file
from quantsearch.search.config import (
    CompareConfig,
    SearchConfig,
    parse_compare_config,
    parse_search_config,
)
from quantsearch.validate import (
    COUNT_MAX,
    EPOCHS_MAX,
    LR_MAX,
    LR_MIN,
    SEED_MAX,
    check_device,
    check_keys,
    get_float,
    get_int,
    get_str,
    get_table,
)

__all__ = [
    "Config",
    "DataConfig",
    "ModelConfig",
    "TrainConfig",
    "load_config",
    "parse_config",
]


@dataclass(frozen=True)
class ModelConfig:
    """``[model]``: a zoo name or ``"file.py:build"``, and an optional checkpoint to load."""

    name: str = "mlp-digits"
    checkpoint: str | None = None


@dataclass(frozen=True)
class DataConfig:
    """``[data]``: the dataset and how much of the validation split a trial evaluates."""

    name: str | None = None  # None: the model's own dataset
    options: dict[str, Any] = field(default_factory=dict)
    eval_samples: int | None = None  # None: the whole validation split
    batch_size: int = 1024  # evaluation batch size
    calibration_samples: int = 256


@dataclass(frozen=True)
class TrainConfig:
    """``[train]``: seeded, early-stopped training."""

    epochs: int = 60
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 1e-3
    patience: int = 15
    seed: int = 0
    device: str = "auto"
    checkpoint: str | None = None  # where `train` writes; default runs/<model>.pt


@dataclass(frozen=True)
class Config:
    """A whole, validated config. ``base_dir`` is the config file's folder."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    quantize: QuantizeConfig | None = None
    search: SearchConfig | None = None
    compare: CompareConfig | None = None
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    run_dir: str = "runs"
    seed: int = 0
    base_dir: Path = field(default_factory=Path.cwd)
    source: str = "<defaults>"

    def resolve(self, path: str) -> Path:
        """A path from the config, relative to the config file's folder."""
        p = Path(path).expanduser()
        return p if p.is_absolute() else self.base_dir / p


_TOP = {"model", "data", "train", "quantize", "search", "compare", "metrics", "run_dir", "seed"}


def _parse_model(raw: dict[str, Any]) -> ModelConfig:
    check_keys(raw, {"name", "checkpoint"}, "model")
    return ModelConfig(
        name=get_str(raw, "name", "model", ModelConfig.name) or ModelConfig.name,  # never ""
        checkpoint=get_str(raw, "checkpoint", "model"),
    )


def _parse_data(raw: dict[str, Any]) -> DataConfig:
    known = {"name", "eval_samples", "batch_size", "calibration_samples"}
    options = {k: v for k, v in raw.items() if k not in known}
    return DataConfig(
        name=get_str(raw, "name", "data"),
        options=options,  # validated by the dataset's loader, which knows its own options
        eval_samples=get_int(raw, "eval_samples", "data", None, minimum=1, maximum=COUNT_MAX),
        batch_size=get_int(
            raw, "batch_size", "data", DataConfig.batch_size, minimum=1, maximum=COUNT_MAX
        )
        or DataConfig.batch_size,
        calibration_samples=get_int(
            raw,
            "calibration_samples",
            "data",
            DataConfig.calibration_samples,
            minimum=1,
            maximum=COUNT_MAX,
        )
        or DataConfig.calibration_samples,
    )


def _parse_train(raw: dict[str, Any], seed: int) -> TrainConfig:
    d = TrainConfig()
    check_keys(raw, set(TrainConfig.__dataclass_fields__), "train")
    device = check_device(get_str(raw, "device", "train", d.device) or d.device, "train.device")
    counts = {"minimum": 1, "maximum": COUNT_MAX}
    lr = get_float(raw, "lr", "train", d.lr, minimum=LR_MIN, maximum=LR_MAX) or d.lr
    return TrainConfig(
        epochs=get_int(raw, "epochs", "train", d.epochs, minimum=1, maximum=EPOCHS_MAX) or d.epochs,
        batch_size=get_int(raw, "batch_size", "train", d.batch_size, **counts) or d.batch_size,
        lr=lr,
        weight_decay=_weight_decay(raw, lr),
        patience=get_int(raw, "patience", "train", d.patience, **counts) or d.patience,
        seed=get_int(raw, "seed", "train", seed, minimum=0, maximum=SEED_MAX) or 0,
        device=device,
        checkpoint=get_str(raw, "checkpoint", "train"),
    )


def _weight_decay(raw: dict[str, Any], lr: float) -> float:
    """``train.weight_decay``: AdamW multiplies every weight by ``1 - lr x weight_decay`` each
    step, so past ``1 / lr`` the weights flip sign and grow (1e308 trained on NaN, silently)."""
    wd = get_float(raw, "weight_decay", "train", TrainConfig.weight_decay, minimum=0.0) or 0.0
    if lr * wd > 1:
        raise ConfigError(
            f"train.weight_decay: got {wd} with lr = {lr}, allowed: at most 1 / lr = {1 / lr:g} "
            "(AdamW multiplies each weight by 1 - lr x weight_decay every step)"
        )
    return wd


def parse_config(
    raw: Mapping[str, Any], *, base_dir: Path | None = None, source: str = "<dict>"
) -> Config:
    """Validate a config mapping (as read from TOML) into a :class:`Config`.

    Example:
        >>> parse_config({"model": {"name": "jsc-tiny"}}).model.name
        'jsc-tiny'
    """
    check_keys(raw, _TOP, "")
    seed = get_int(raw, "seed", "", 0, minimum=0, maximum=SEED_MAX) or 0
    quantize = search = compare = None
    if "quantize" in raw:
        quantize = parse_quantize_config(get_table(raw, "quantize", ""), key="quantize")
    metrics = parse_metrics_config(get_table(raw, "metrics", ""), key="metrics")
    if "search" in raw:
        user = metrics.directions if metrics.evaluate is not None else None
        search = parse_search_config(
            get_table(raw, "search", ""), key="search", seed=seed, user_metrics=user
        )
    if "compare" in raw:
        compare = parse_compare_config(get_table(raw, "compare", ""), key="compare")
        # pareto: a run reaches the front when its hypervolume ratio is >= 1 - tolerance, so
        # a tolerance of 1 or more is reached by every run at its first trial: a mistake.
        # (weighted_sum: the tolerance is in the objective's own units, which have no bound.)
        if search is not None and search.combine == "pareto" and compare.tolerance >= 1:
            raise ConfigError(
                f"compare.tolerance: got {compare.tolerance:g} with search.objectives.combine = "
                "'pareto', allowed: 0 <= tolerance < 1 (a share of the front's hypervolume: "
                "1 or more is reached by every run at its first trial)"
            )
    return Config(
        model=_parse_model(get_table(raw, "model", "")),
        data=_parse_data(get_table(raw, "data", "")),
        train=_parse_train(get_table(raw, "train", ""), seed),
        quantize=quantize,
        search=search,
        compare=compare,
        metrics=metrics,
        run_dir=get_str(raw, "run_dir", "", "runs") or "runs",
        seed=seed,
        base_dir=base_dir or Path.cwd(),
        source=source,
    )


def load_config(path: str | Path) -> Config:
    """Read and validate a TOML config file."""
    if "\0" in str(path):  # every stat() of it would raise ValueError
        raise ConfigError(f"--config: got {str(path)!r}, allowed: a path without NUL characters")
    if not str(path).strip():  # Path("") is the working directory
        raise ConfigError(
            f"--config: got {str(path)!r}, allowed: a TOML file or a packaged example"
        )
    p = Path(path)
    if not p.is_file():
        example = find_example(str(path)) if Path(path).name == str(path) else None
        if example is None:
            odd = not_a_file(p)  # a FIFO would block the read, a folder fail it
            what = f"is {odd}" if odd else "does not exist"
            raise ConfigError(
                f"--config: got {str(path)!r}, which {what}, allowed: a TOML file or a "
                f"packaged example ({', '.join(n for n, _ in list_examples())})"
            )
        p = example
    try:
        raw = tomllib.loads(p.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"--config: got {path}, not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset "
            f"{exc.start}), allowed: a TOML config in UTF-8"
        ) from None
    except OSError as exc:
        raise ConfigError(
            f"--config: got {path}, which cannot be read ({exc.strerror}), allowed: a readable file"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"--config: got {path}, not valid TOML: {_why(p, exc)}") from None
    except RecursionError:  # tomllib recurses once per level of nested arrays or tables
        raise ConfigError(
            f"--config: got {path}, which nests arrays or tables too deeply, allowed: a config of a few levels"
        ) from None
    return parse_config(raw, base_dir=p.resolve().parent, source=str(path))


def _why(p: Path, exc: Exception) -> str:
    """What tomllib's complaint means when the text is UTF-8 but not a TOML file's: a
    byte-order mark (Windows editors' "UTF-8 with BOM"; tomllib said "Invalid statement") or
    NUL bytes (UTF-16 without its mark, or binary; "Expected '=' after a key")."""
    data = p.read_bytes()
    if data.startswith(b"\xef\xbb\xbf"):
        return "it starts with a byte-order mark (U+FEFF), allowed: UTF-8 without one"
    nul = data.find(b"\0")
    if nul >= 0:
        return f"it holds a NUL byte at offset {nul} (UTF-16 or binary?), allowed: UTF-8 text"
    other = {".json": "JSON", ".yaml": "YAML", ".yml": "YAML"}.get(p.suffix.lower())
    if other:  # tomllib's complaint about line 1 hides that the whole file is another format
        return f"{exc} (a {other} file?), allowed: a TOML config (`quantsearch init` writes one)"
    return f"{exc}, allowed: TOML (https://toml.io)"
