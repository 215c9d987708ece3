"""The model registry: names mapped to :class:`ModelSpec`, and :func:`build_model`, which also
takes a user's ``"file.py:build"``.

A model costs one file that defines its ``SPECS``, one test, and one line in
``quantsearch/models/__init__.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from quantsearch.errors import ConfigError
from quantsearch.registry import Registry
from quantsearch.spec import is_callable_spec, load_callable

__all__ = ["MODELS", "ModelSpec", "build_model", "model_names"]


@dataclass(frozen=True)
class ModelSpec:
    """A registered model: how to build it and what it consumes."""

    name: str
    build: Callable[[], nn.Module]
    input_shape: tuple[int, ...]  # one sample, no batch dimension
    num_classes: int
    dataset: str  # the dataset it is meant for
    description: str


MODELS: Registry[ModelSpec] = Registry("model.name")


def model_names() -> list[str]:
    return MODELS.names()


def build_model(name: str, *, key: str = "model.name", base_dir: Path | None = None) -> nn.Module:
    """Build a registered model by name, or a user model from ``"file.py:build"``.

    Example:
        >>> type(build_model("jsc-tiny")).__name__
        'JSCTiny'
    """
    if is_callable_spec(name):
        fn = load_callable(name, key=key, base_dir=base_dir)
        try:
            model = fn()
        except (Exception, SystemExit) as exc:  # sys.exit() in build(): not a silent success
            raise ConfigError(
                f"{key}: got {name!r}, whose call failed ({type(exc).__name__}: {exc}), allowed: "
                "a function that builds a torch.nn.Module"
            ) from exc
        if not isinstance(model, nn.Module):
            raise ConfigError(
                f"{key}: got {name!r}, which returned {type(model).__name__}, allowed: a "
                "function that returns a torch.nn.Module"
            )
        return model
    if name not in MODELS:
        raise ConfigError(
            f"{key}: got {name!r}, allowed: one of {MODELS.names()} or 'file.py:function'"
        )
    return MODELS.get(name).build()
