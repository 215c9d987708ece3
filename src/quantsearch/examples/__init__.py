"""Configs shipped inside the package, so `make demo` works from any folder.

They are package data, read through :mod:`importlib.resources`, so ``--config cnn_digits``
names one from wherever quantsearch is installed (a wheel, not only a source checkout).
"""

from __future__ import annotations

import re
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
    first sentence of the file's opening comment, which may run over several lines.

    Example:
        >>> dict(list_examples())["mlp_digits_4bit"][-20:]
        ' (9^3 = 729 points).'
    """
    out = []
    for entry in files("quantsearch.examples").iterdir():
        if entry.name.endswith(".toml"):
            text = entry.read_text(encoding="utf-8")
            out.append((entry.name.removesuffix(".toml"), _first_sentence(text)))
    return sorted(out)


def _first_sentence(toml_text: str) -> str:
    """The opening comment's first sentence: its lines up to a blank comment line or an
    indented one (a command to run), cut after the first full stop that ends a word."""
    words: list[str] = []
    for line in toml_text.splitlines():
        if not line.startswith("#"):
            if words:
                break
            continue
        body = line[1:]
        if not body.strip() or body.startswith("  "):
            if words:
                break
            continue
        words.append(body.strip())
    paragraph = " ".join(words)
    end = re.search(r"\.(?=\s|$)", paragraph)
    return paragraph[: end.end()] if end else paragraph


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
