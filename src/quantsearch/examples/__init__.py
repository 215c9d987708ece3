"""Configs shipped inside the package, so `make demo` works from any folder.

They are package data, read through :mod:`importlib.resources`, so ``--config cnn_digits``
names one from wherever quantsearch is installed (a wheel, not only a source checkout).
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

__all__ = ["default_config_path", "example_path", "find_example", "list_examples"]


def example_path(name: str) -> Path:
    return Path(str(files("quantsearch.examples").joinpath(name)))


def default_config_path() -> Path:
    """The embedded default: the lab's 16-point space on mlp-digits."""
    return example_path("mlp_digits_lab.toml")


def list_examples() -> list[tuple[str, str]]:
    """``(name, description)`` of every packaged example, by name; the description is the
    file's first comment line.

    Example:
        >>> dict(list_examples())["cnn_digits"][:29]
        'The residual conv net on scik'
    """
    out = []
    for entry in files("quantsearch.examples").iterdir():
        if entry.name.endswith(".toml"):
            lines = entry.read_text(encoding="utf-8").splitlines()
            first = next((ln for ln in lines if ln.startswith("#")), "#")
            out.append((entry.name.removesuffix(".toml"), first.lstrip("#").strip()))
    return sorted(out)


def find_example(name: str) -> Path | None:
    """The packaged example ``name`` (with or without ``.toml``), or ``None``.

    Example:
        >>> find_example("cnn_digits").name, find_example("no_such") is None
        ('cnn_digits.toml', True)
    """
    stem = name.removesuffix(".toml")
    if stem in dict(list_examples()):
        return example_path(f"{stem}.toml")
    return None
