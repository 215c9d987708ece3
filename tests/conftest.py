"""Shared test fixtures."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.pg_fixtures import pg_url  # noqa: F401  (session fixture: a fresh PostgreSQL database)

if TYPE_CHECKING:
    from quantsearch.data import DataSplits


@pytest.fixture(scope="session")
def digits() -> DataSplits:
    """scikit-learn's digits, flat (64 features), seed 0: loaded once per session."""
    from quantsearch.data import load_dataset

    return load_dataset("digits")


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[..., Path]:
    """``write_config(toml_text, name="config.toml")`` writes a config into ``tmp_path``."""

    def write(text: str, name: str = "config.toml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return write
