"""A missing optional extra ends in one line naming the extra, through the real CLI."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest

from quantsearch.cli import main


def _fails(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    return capsys.readouterr().err


def test_postgres_without_psycopg2_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "psycopg2", None)  # `import psycopg2` now fails
    url = "postgresql+psycopg2://user:secret@127.0.0.1:9/db"
    err = _fails(["search", "--storage", url, "--n-trials", "1"], capsys)
    assert err.startswith(
        "error: --storage: got 'postgresql+psycopg2://user:***@127.0.0.1:9/db', whose driver "
        "psycopg2 is not installed here, allowed: "
    )
    assert err.endswith("(pip install 'quantsearch[postgres]' installs psycopg2)\n")


def test_jsc_hdf5_without_h5py_names_the_extra(
    tmp_path: Path,
    write_config: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with h5py.File(tmp_path / "jets.h5", "w") as f:  # any HDF5 file: the import fails first
        f["t_allpar_new"] = np.zeros(4)
    cfg = write_config('[model]\nname = "jsc-tiny"\n[data]\nname = "jsc"\npath = "jets.h5"\n')
    monkeypatch.setitem(sys.modules, "h5py", None)
    err = _fails(["train", "--config", str(cfg), "--epochs", "1"], capsys)
    path = str(tmp_path / "jets.h5")
    assert err == (
        f"error: data.path: {path!r} is HDF5, which needs h5py: pip install 'quantsearch[jsc]'\n"
    )
