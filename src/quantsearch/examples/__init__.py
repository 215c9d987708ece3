"""Configs shipped inside the package, so `make demo` works from any folder."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

__all__ = ["default_config_path", "example_path"]


def example_path(name: str) -> Path:
    return Path(str(files("quantsearch.examples").joinpath(name)))


def default_config_path() -> Path:
    """The embedded default: the lab's 16-point space on mlp-digits."""
    return example_path("mlp_digits_lab.toml")
