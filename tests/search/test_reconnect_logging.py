"""What Optuna logs while a database connection is lost stays out of the one-line error: its
warning that a failed query falls back to a slower one (its RDB storage takes that path on any
OperationalError, a lost connection included: a worker's stderr then had nine lines before the
one line, `tests/search/test_pg_restart.py`). Other warnings still show.

Referee: Optuna's own loggers, read through a handler on its library logger (where its default
handler sits).
"""

from __future__ import annotations

import io
import logging
import subprocess
import sys
from pathlib import Path

import optuna

from quantsearch.search.reconnect import quiet_optuna_storage_errors


def test_the_fallback_warning_is_dropped_and_others_are_kept() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    library = logging.getLogger("optuna")
    library.addHandler(handler)
    try:
        quiet_optuna_storage_errors()
        quiet_optuna_storage_errors()  # idempotent
        _log()
    finally:
        library.removeHandler(handler)
    err = stream.getvalue()
    assert "Caught an error" not in err and "server closed" not in err
    assert "another warning" in err


def _log() -> None:
    logger = optuna.logging.get_logger("optuna.storages._rdb.storage")
    logger.warning(
        "Caught an error from sqlalchemy: (psycopg2.OperationalError) server closed the "
        "connection unexpectedly\n[SQL: SELECT trial_params.trial_id FROM trial_params]. "
        "Falling back to a slower alternative."
    )
    logger.warning("another warning")


def test_a_process_that_only_opens_the_storage_drops_the_fallback_warning(tmp_path: Path) -> None:
    """The parent of ``search --workers`` only watches the study (it runs no trial loop): a
    restart cut its read, and Optuna's nine-line fallback warning came before its one line. A
    fresh interpreter opens an RDB storage through ``open_storage`` (SQLite here, the same
    class as PostgreSQL's) and nothing else; Optuna's warning is then dropped, another kept."""
    script = (
        "from pathlib import Path\n"
        "from quantsearch.search.storage import open_storage\n"
        f"open_storage('sqlite:///{tmp_path / 'study.db'}', Path({str(tmp_path)!r}))\n"
        "import tests.search.test_reconnect_logging as t\n"
        "t._log()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=Path(__file__).parents[2],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Caught an error" not in done.stderr and "another warning" in done.stderr
