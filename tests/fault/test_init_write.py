"""`init`'s config is written whole or not at all and never over a file, in real processes:
a write that fails (``EFBIG`` from a file-size limit, as a full disk fails one) ends in one
``error:`` line and leaves no file, so the same command then succeeds (written in place, it
left half a config that the next `init` refused as existing); a file at ``--output`` is
refused and kept. Referees: the folder's listing and bytes, the config loader."""

from __future__ import annotations

from pathlib import Path

from quantsearch.config import load_config
from tests.cli.test_examples_init import USER_CODE
from tests.fault.harness import quantsearch

INIT = ["init", "--model", "my.py:build", "--data", "my.py:load", "-o", "cfg/search.toml"]


def test_a_failed_init_leaves_nothing_and_a_file_is_never_replaced(tmp_path: Path) -> None:
    (tmp_path / "my.py").write_text(USER_CODE)
    (tmp_path / "cfg").mkdir()
    line = quantsearch(INIT, fsize=200, cwd=tmp_path).one_error_line()
    assert line.startswith("error: cfg/search.toml: cannot be written (File too large)"), line
    assert list((tmp_path / "cfg").iterdir()) == []  # no half config, no temporary
    ok = quantsearch(INIT, cwd=tmp_path)
    assert ok.code == 0, ok.err
    written = (tmp_path / "cfg" / "search.toml").read_bytes()
    assert len(written) > 200
    load_config(tmp_path / "cfg" / "search.toml")
    (tmp_path / "cfg" / "search.toml").write_text("# mine")
    line = quantsearch(INIT, cwd=tmp_path).one_error_line()
    assert line == (
        "error: --output: got 'cfg/search.toml', which exists, allowed: a new file (give another "
        "path or remove it)"
    )
    assert (tmp_path / "cfg" / "search.toml").read_text() == "# mine"
    assert [p.name for p in (tmp_path / "cfg").iterdir()] == ["search.toml"]
