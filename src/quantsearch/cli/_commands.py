"""The list of subcommands: one module each, one line here."""

from __future__ import annotations

import importlib

import click

# module name -> command object name inside it
_COMMANDS = [
    ("train", "train"),
    ("summary", "summary"),
    ("quantize", "quantize"),
    ("finetune", "finetune"),
    ("search", "search"),
    ("search", "worker"),
    ("metrics", "metrics"),
    ("demo", "demo"),
    ("compare", "compare"),
    ("report", "report"),
    ("export", "export"),
    ("examples", "examples"),
    ("init", "init"),
]


def register(group: click.Group) -> None:
    for module, attr in _COMMANDS:
        mod = importlib.import_module(f"quantsearch.cli.{module}")
        group.add_command(getattr(mod, attr))
