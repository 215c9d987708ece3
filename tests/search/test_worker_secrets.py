"""A database password never shows on a process's command line (``ps`` shows those to everyone).

``search --workers K`` hands the storage URL to its workers in their environment
(``QUANTSEARCH_STORAGE``), and the parent reads it from there too, so a user can keep it off
their own command line.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from quantsearch.search.workers import STORAGE_ENV

PASSWORD = "s3cret-Pw-7"  # a role of its own with this password is made on the test server
CONFIG = """seed = 0
[model]
name = "mlp-digits"
checkpoint = "{ckpt}"
[search]
n_trials = 40
[search.strategy]
name = "random"
[search.space]
by = "name"
[search.space.choices.linear]
weight = [[8, 4], [6, 3], [4, 2], [3, 1], [2, 1]]
data_in = [[8, 4], [6, 3], [4, 2], [3, 1], [2, 1]]
[search.objectives]
accuracy = {{ direction = "maximize" }}
"""


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended meanwhile
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


@pytest.mark.slow
def test_workers_get_the_storage_url_in_their_environment_not_their_command_line(
    pg_url: str, tmp_path: Path, mlp_checkpoint: Path
) -> None:
    role = "qs_secret_holder"  # the server checks passwords (scram): a role that has this one
    admin = sa.create_engine(pg_url)
    with admin.begin() as conn:
        exists = conn.execute(sa.text(f"SELECT 1 FROM pg_roles WHERE rolname = '{role}'"))
        verb = "ALTER" if exists.first() else "CREATE"  # kept between runs: it may own tables
        conn.execute(sa.text(f"{verb} ROLE {role} LOGIN SUPERUSER PASSWORD '{PASSWORD}'"))
    admin.dispose()
    url = (
        make_url(pg_url).set(username=role, password=PASSWORD).render_as_string(hide_password=False)
    )
    assert PASSWORD in url
    cfg = tmp_path / "secret.toml"
    cfg.write_text(CONFIG.format(ckpt=mlp_checkpoint.as_posix()))
    cmd = [sys.executable, "-m", "quantsearch", "search", "-c", str(cfg), "-q", "--workers", "2"]
    env = {**os.environ, STORAGE_ENV: url}
    parent = subprocess.Popen(cmd, cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
    seen: dict[int, str] = {}
    deadline = time.monotonic() + 120
    while len(seen) < 2 and parent.poll() is None and time.monotonic() < deadline:
        for pid in _children(parent.pid):
            line = _cmdline(pid)
            if " worker " in f"{line} ":
                seen[pid] = line
        time.sleep(0.02)
    _, err = parent.communicate(timeout=600)
    assert parent.returncode == 0, err
    assert len(seen) == 2, seen  # both workers were looked at while they ran
    for line in seen.values():
        assert PASSWORD not in line and "--storage" not in line, line
    trials = (tmp_path / "runs" / "secret" / "trials.jsonl").read_text().splitlines()
    assert len(trials) == 40  # the workers did reach the database
