"""A database URL as users write it: ``postgresql://`` with no driver connects through the
PostgreSQL driver that quantsearch installs (psycopg2; SQLAlchemy 2.1 reads the bare scheme as
psycopg 3's, which said "No module named 'psycopg'"), and a database that cannot be reached at
the start is one line naming the key it was given with and what is allowed.

Referees: the PostgreSQL server itself (a study made through the bare URL is read back through
the suite's ``postgresql+psycopg2`` one), and libpq's own "Connection refused" for a local port
that nothing listens on.
"""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import optuna
import pytest
from sqlalchemy.engine import make_url

from quantsearch.cli import main
from quantsearch.errors import ConfigError
from quantsearch.search.storage import engine_url, open_storage
from tests.search.test_workers import setup


def _closed_port() -> int:
    """A local port that nothing listens on: bound by the OS's choice, then let go."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.postgres
def test_a_url_without_a_driver_uses_the_installed_one(pg_url: str, tmp_path: Path) -> None:
    bare = make_url(pg_url).set(drivername="postgresql").render_as_string(hide_password=False)
    assert bare.startswith("postgresql://")
    storage = open_storage(bare, tmp_path)
    optuna.create_study(study_name="bare-url", storage=storage)
    assert optuna.load_study(study_name="bare-url", storage=pg_url).study_name == "bare-url"
    assert engine_url("postgres://bob@db/runs") == "postgresql+psycopg2://bob@db/runs"  # Heroku's


def test_no_postgresql_driver_is_one_line_naming_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    for module in ("psycopg2", "psycopg"):
        monkeypatch.setitem(sys.modules, module, None)  # neither can be imported now
    with pytest.raises(ConfigError) as err:
        engine_url("postgresql://bob:secret@db/runs", "search.storage")
    assert str(err.value).startswith(
        "search.storage: got 'postgresql://bob:***@db/runs', whose driver psycopg2 is not "
        "installed here, allowed: a URL of an installed driver"
    )
    assert "pip install 'quantsearch[postgres]'" in str(err.value)


@pytest.mark.parametrize("given", ["--storage", "search.storage"])
def test_a_closed_port_is_one_line_naming_the_key(
    given: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"postgresql://bob:secret@127.0.0.1:{_closed_port()}/runs"
    cfg, ckpt = setup(tmp_path, "random", 4)
    argv = ["worker", "--config", str(cfg), "--load", str(ckpt), "--run-dir", str(tmp_path)]
    if given == "--storage":
        argv += ["--storage", url]
    else:
        cfg.write_text(cfg.read_text().replace("[search]\n", f'[search]\nstorage = "{url}"\n'))
    with pytest.raises(SystemExit) as exc:
        main(argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2 and len(err.splitlines()) == 1, err
    shown = url.replace(":secret@", ":***@")
    assert err.startswith(f"error: {given}: got '{shown}' (connection to server at "), err
    assert "Connection refused" in err and "allowed: an Optuna RDB URL of a database" in err
