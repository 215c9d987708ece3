"""Backends shared by the parallel tests: the journal's sidecar SQLite file, and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(params=["sidecar", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str | None, Path]]:
    """(storage URL, run dir): the journal default with several workers, or PostgreSQL."""
    if request.param == "postgres":
        yield request.getfixturevalue("pg_url"), tmp_path
    else:
        yield None, tmp_path
