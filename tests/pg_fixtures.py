"""A real PostgreSQL server for the tests, with a fresh database per test session.

``pg_url`` yields a SQLAlchemy URL (``postgresql+psycopg2://...``) of a database that exists
only for this session. The server is the one named by ``QUANTSEARCH_PG_URL`` (``.ci/postgres.sh``
starts one and exports it); without that variable the fixture finds ``initdb``/``pg_ctl`` (on
``PATH`` or under ``/usr/lib/postgresql/*/bin``) and starts a throwaway server on 127.0.0.1 in a
temporary folder, stopped at the end of the session.

The tests skip, with the reason, only when no PostgreSQL binary can be found and ``CI`` is not
set; under CI a missing server is a failure.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url

__all__ = ["pg_url"]

ENV_URL = "QUANTSEARCH_PG_URL"


def _find_bindir() -> Path | None:
    pg_ctl = shutil.which("pg_ctl")
    if pg_ctl and shutil.which("initdb"):
        return Path(pg_ctl).resolve().parent
    # Debian keeps the server binaries off PATH; take the newest major version.
    for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_major, reverse=True):
        if (Path(d) / "initdb").is_file() and (Path(d) / "pg_ctl").is_file():
            return Path(d)
    return None


def _major(bindir: str) -> int:
    name = Path(bindir).parent.name
    return int(name) if name.isdigit() else 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Server:
    """A PostgreSQL cluster in a temporary folder, run as ``postgres`` when we are root."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="quantsearch-pg-test-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self._as_root = os.geteuid() == 0
        if self._as_root:
            shutil.chown(self.root, "postgres", "postgres")
        self.root.chmod(0o700)

    def _run(self, *args: str) -> None:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        if self._as_root:  # initdb and postgres refuse to run as root
            runuser = shutil.which("runuser") or shutil.which("runuser", path="/usr/sbin:/sbin")
            cmd = [runuser or "runuser", "-u", "postgres", "--", *cmd]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(args[:1])} failed: {proc.stdout}{proc.stderr}".strip())

    def start(self) -> URL:
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8")
        opts = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.data}"
        )
        log = str(self.root / "server.log")
        self._run("pg_ctl", "-D", str(self.data), "-l", log, "-w", "-t", "60", "-o", opts, "start")
        return URL.create(
            "postgresql+psycopg2",
            username="postgres",
            host="127.0.0.1",
            port=self.port,
            database="postgres",
        )

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """URL of a fresh PostgreSQL database, created for this test session and dropped after it."""
    server: _Server | None = None
    env = os.environ.get(ENV_URL)
    if env:
        admin = make_url(env)
    else:
        bindir = _find_bindir()
        if bindir is None:
            reason = (
                f"no PostgreSQL: {ENV_URL} is not set and no initdb/pg_ctl was found on PATH or "
                "under /usr/lib/postgresql/*/bin (apt-get install postgresql, or run .ci/postgres.sh)"
            )
            if os.environ.get("CI"):
                pytest.fail(f"CI is set but {reason}", pytrace=False)
            pytest.skip(reason)
        server = _Server(bindir)
        try:
            admin = server.start()
        except Exception as exc:
            server.stop()
            pytest.fail(f"could not start a throwaway PostgreSQL server: {exc}", pytrace=False)

    name = f"quantsearch_test_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(admin, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        yield admin.set(database=name).render_as_string(hide_password=False)
    finally:
        with contextlib.suppress(Exception), engine.connect() as conn:
            # FORCE closes connections a test left open (PostgreSQL 13+).
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()
        if server is not None:
            server.stop()
