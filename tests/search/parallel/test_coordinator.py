"""open_coordinator: which coordinator for which storage, run-directory locks, refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from quantsearch.errors import ConfigError
from quantsearch.search.parallel import COORDINATION_FILE, open_coordinator


def test_sqlite_url_with_several_workers_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'study.db'}"
    with pytest.raises(ConfigError, match=r"^--storage: got SQLite .* for 3 workers") as err:
        open_coordinator(url, tmp_path, "s", workers=3)
    assert "\n" not in str(err.value) and "postgresql" in str(err.value)
    with open_coordinator(url, tmp_path, "s", workers=1) as one:
        assert one.claims is not None  # other commands may join an RDB study


def test_run_dir_lock(tmp_path: Path) -> None:
    one = open_coordinator(None, tmp_path, "s", workers=1)
    assert one.claims is None and one.alone
    with pytest.raises(ConfigError, match=r"--workers: run directory .* in use"):
        open_coordinator(None, tmp_path, "s", workers=1)
    with pytest.raises(ConfigError, match=r"--workers: run directory .* in use"):
        open_coordinator(None, tmp_path, "s", workers=2)
    one.close()
    a, b = (open_coordinator(None, tmp_path, "s", workers=2) for _ in range(2))  # shared
    assert a.claims is not None and (tmp_path / COORDINATION_FILE).exists()
    with pytest.raises(ConfigError, match="in use"):
        open_coordinator(None, tmp_path, "s", workers=1)
    a.close()
    b.close()
    open_coordinator(None, tmp_path, "s", workers=1).close()
    assert not (tmp_path / COORDINATION_FILE).exists()  # its ticket count would be stale


def test_bad_worker_count(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^--workers: got 0, allowed: an integer >= 1$"):
        open_coordinator(None, tmp_path, "s", workers=0)


def test_unreachable_database_names_storage() -> None:
    url = "postgresql+psycopg2://bob:secret@127.0.0.1:1/nodb"
    with pytest.raises(ConfigError, match=r"^--storage: got .*, allowed: ") as err:
        open_coordinator(url, Path("unused"), "s")
    assert "secret" not in str(err.value) and "\n" not in str(err.value)
