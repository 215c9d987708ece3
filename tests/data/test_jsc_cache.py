"""The ``jsc`` loader's split cache: a hit gives the tensors a fresh preparation gives (the
referee: the same loader with the cache off), skips pandas (``sys.modules`` of a fresh
interpreter), and a changed file, seed or ``val_fraction`` is prepared again."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from quantsearch.data import DataSplits, load_dataset
from tests.data.test_jsc import _jets, write_csv

SPLITS = ("train", "val", "test")


def _equal(a: DataSplits, b: DataSplits) -> bool:
    return all(
        torch.equal(getattr(a, s).x, getattr(b, s).x)
        and torch.equal(getattr(a, s).y, getattr(b, s).y)
        for s in SPLITS
    )


def _load(path: Path, seed: int = 0, **options: object) -> DataSplits:
    return load_dataset("jsc", options={"path": str(path), **options}, seed=seed)


def test_a_hit_gives_the_fresh_tensors_and_a_change_prepares_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_csv(tmp_path / "jets.csv", *_jets())
    monkeypatch.setenv("QUANTSEARCH_CACHE_DIR", "")
    fresh = _load(path)
    cache = tmp_path / "cache"
    monkeypatch.setenv("QUANTSEARCH_CACHE_DIR", str(cache))
    first = _load(path)  # prepares and writes the cache
    assert len(list(cache.glob("jsc-*.npz"))) == 1
    second = _load(path)  # reads it
    assert _equal(first, fresh) and _equal(second, fresh)
    assert second.name == "jsc" and second.class_names == fresh.class_names

    other_seed, other_val = _load(path, seed=1), _load(path, val_fraction=0.2)
    assert len(list(cache.glob("jsc-*.npz"))) == 3
    assert not torch.equal(other_seed.val.y, fresh.val.y)
    assert len(other_val.val) > len(fresh.val)

    x, y = _jets(seed=5)
    write_csv(path, x, y)  # another file at the same path
    os.utime(path, ns=(1, 1))  # whatever the clock's resolution: the key sees a change
    changed = _load(path)
    monkeypatch.setenv("QUANTSEARCH_CACHE_DIR", "")
    assert _equal(changed, _load(path)) and not _equal(changed, fresh)

    monkeypatch.setenv("QUANTSEARCH_CACHE_DIR", str(cache))
    for f in cache.glob("jsc-*.npz"):
        f.write_bytes(b"damaged")
    assert _equal(_load(path), changed)  # a damaged file is prepared again


@pytest.mark.parametrize("damage", ["half", "tail", "flip"])
def test_a_truncated_or_corrupted_cache_file_is_prepared_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, damage: str
) -> None:
    """A cache file cut short (a full disk, a copy interrupted) or with a flipped byte: numpy
    raises zipfile.BadZipFile or EOFError there, not OSError; the loader prepares again."""
    path = write_csv(tmp_path / "jets.csv", *_jets())
    monkeypatch.setenv("QUANTSEARCH_CACHE_DIR", "")
    fresh = _load(path)
    monkeypatch.setenv("QUANTSEARCH_CACHE_DIR", str(tmp_path / "cache"))
    _load(path)
    (f,) = (tmp_path / "cache").glob("jsc-*.npz")
    data = bytearray(f.read_bytes())
    if damage == "half":
        data = data[: len(data) // 2]
    elif damage == "tail":
        data = data[:-10]
    else:
        data[len(data) // 3] ^= 0xFF
    f.write_bytes(bytes(data))
    assert _equal(_load(path), fresh)


def test_another_file_with_the_same_size_and_mtime_is_prepared_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What `cp -p` or `rsync -t` leave: another file of the same size, given the old mtime."""
    path = write_csv(tmp_path / "jets.csv", *_jets())
    monkeypatch.setenv("QUANTSEARCH_CACHE_DIR", str(tmp_path / "cache"))
    first = _load(path)
    st = path.stat()
    text = path.read_text()
    body = text.index("\n") + 1  # the header's column names stay
    digits = [i for i, c in enumerate(text) if i >= body and c in "123456789"][:200]
    swapped = list(text)
    for i in digits:  # same length, other values
        swapped[i] = "1" if text[i] != "1" else "2"
    path.write_text("".join(swapped))
    assert path.stat().st_size == st.st_size
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    got = _load(path)
    monkeypatch.setenv("QUANTSEARCH_CACHE_DIR", "")
    assert _equal(got, _load(path)) and not _equal(got, first)


@pytest.mark.slow
def test_a_hit_imports_neither_sklearn_nor_pandas(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "jets.csv", *_jets())
    code = (
        "import json, sys\n"
        "from quantsearch.data import load_dataset\n"
        f"d = load_dataset('jsc', options={{'path': {str(path)!r}}})\n"
        "print(json.dumps([len(d.train), sorted({m.split('.')[0] for m in sys.modules})]))"
    )
    env = {**os.environ, "QUANTSEARCH_CACHE_DIR": str(tmp_path / "cache")}
    runs = []
    for _ in range(2):  # the first prepares, the second hits
        out = subprocess.run(
            [sys.executable, "-c", code], check=True, capture_output=True, text=True, env=env
        )
        runs.append(json.loads(out.stdout.splitlines()[-1]))
    (n1, first), (n2, second) = runs
    assert n1 == n2 > 0
    assert "pandas" in first and "sklearn" not in first  # the CSV is read with pandas' reader
    assert not {"sklearn", "pandas", "scipy"} & set(second)


class _Interrupted:
    """An array whose conversion is interrupted, as Ctrl-C during np.savez would be."""

    def __array__(self, dtype: object = None, copy: object = None) -> object:
        raise KeyboardInterrupt


def test_an_interrupted_cache_write_leaves_no_file_behind(tmp_path: Path) -> None:
    import numpy as np

    from quantsearch.data.cache import read_arrays, write_arrays

    path = tmp_path / "cache" / "splits.npz"
    with pytest.raises(KeyboardInterrupt):
        write_arrays(path, {"x": np.arange(3), "y": _Interrupted()})  # type: ignore[dict-item]
    assert list(path.parent.iterdir()) == []
    write_arrays(path, {"x": np.arange(3)})
    got = read_arrays(path, {"x"})
    assert got is not None and got["x"].tolist() == [0, 1, 2]
    assert [p.name for p in path.parent.iterdir()] == ["splits.npz"]
