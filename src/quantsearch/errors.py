"""Typed errors. Every message names the key or argument, what was given and what is allowed."""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DataError",
    "MetricError",
    "QuantsearchError",
    "StorageError",
    "TraceError",
    "with_article",
]


def with_article(word: str) -> str:
    """``word`` after "a", or "an" before a vowel letter, for messages that name a kind.

    Example:
        >>> with_article("linear"), with_article("embeddingbag")
        ('a linear', 'an embeddingbag')
    """
    article = "an" if word and word[0].lower() in "aeiou" else "a"
    return f"{article} {word}"


class QuantsearchError(Exception):
    """Base class: the CLI prints these as one line, without a traceback."""


class ConfigError(QuantsearchError, ValueError):
    """A config key, CLI option or argument is invalid."""


class DataError(QuantsearchError):
    """A dataset could not be found or read."""


class TraceError(QuantsearchError):
    """A model could not be traced into a torch.fx graph."""


class MetricError(QuantsearchError):
    """A metric could not be computed (unknown name, missing input, unsupported op)."""


class StorageError(QuantsearchError):
    """The study's storage cannot be written (disk full, read-only) or read (damaged)."""
