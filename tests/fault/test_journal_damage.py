"""Journal damage refused in one line, never a traceback, a silent skip or a cut as if torn.

In-process, on the storage (the first two tests, once strict xfails):

* A journal written before the checksum (by Optuna's own ``JournalFileBackend``, the referee
  writer here, or an older quantsearch) whose record was changed so that it stays JSON: Optuna's
  replay raises ``AssertionError("Should not reach.")`` or ``ValueError`` out of the storage, a
  traceback, instead of the one-line ``StorageError`` a damaged journal gets.
* A whole last record (it ends with its newline) with a byte changed so that it is no longer
  JSON is cut off on open as if a write had been torn (a warning), and the trial it finished is
  silently RUNNING again. A torn write never ends with a newline (one ``write`` of the records
  and their newlines; a cut one stops before its newline), so this is damage, to refuse.

Through the CLI (``quantsearch search`` and ``quantsearch worker`` on a damaged copy of a
finished run directory): every kind of damage below ends in one ``error:`` line naming the
journal, exit status 2, and leaves the run directory byte for byte as it was; a torn tail (the
one damage an interrupted write leaves) is cut with one ``warning:`` line, and every finished
trial is kept as it was. The 23 kinds run ``search`` in-process, through the CLI's entry point
(:func:`quantsearch.cli.main`, the code a process runs: what they test is the journal's reading
and the files); one kind of each family runs ``search`` and ``worker`` as real processes, and so
do the torn tails (a process each: 27 took about 100 s of the suite's 16 minutes).
Referees: Optuna's own ``JournalFileBackend`` writes the unchecksummed journals and reads the
trials before and after.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import optuna
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from quantsearch.errors import StorageError
from quantsearch.search.journal_read import JournalReader
from quantsearch.search.storage import open_storage
from tests.fault.harness import digest, in_process, quantsearch

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _journal(run_dir: Path, *, checksum: bool) -> list[bytes]:
    """A study "s" of 4 finished trials in ``run_dir/study.journal`` (quantsearch's writer,
    with checksums, or Optuna's, without); its lines."""
    run_dir.mkdir()
    path = run_dir / "study.journal"
    storage = (
        open_storage(None, run_dir) if checksum else JournalStorage(JournalFileBackend(str(path)))
    )
    study = optuna.create_study(
        storage=storage, study_name="s", sampler=optuna.samplers.RandomSampler(seed=0)
    )
    study.optimize(lambda t: t.suggest_int("x", 0, 9), n_trials=4)
    flush = getattr(storage, "flush", None)
    if flush is not None:
        flush()
    return path.read_bytes().splitlines(keepends=True)


def _load(run_dir: Path) -> list[optuna.trial.FrozenTrial]:
    """The study as `quantsearch search` opens it: holding the run directory (``exclusive``),
    which repairs a cut last record first."""
    storage = open_storage(None, run_dir, exclusive=True)
    study = optuna.load_study(study_name="s", storage=storage)
    return study.get_trials()


@pytest.mark.parametrize(
    ("old", "new"),
    [(b'"op_code":6', b'"op_code":99'), (b'"state":1', b'"state":9')],
    ids=["unknown-operation", "unknown-state"],
)
def test_a_changed_record_without_a_checksum_is_one_storage_error(
    tmp_path: Path, old: bytes, new: bytes
) -> None:
    rd = tmp_path / "s"
    lines = _journal(rd, checksum=False)
    assert all(b"qs_crc32" not in ln for ln in lines)  # Optuna's writer: no checksum
    i = next(i for i, ln in enumerate(lines) if old in ln and i < len(lines) - 1)
    lines[i] = lines[i].replace(old, new, 1)  # still JSON, before the last record
    (rd / "study.journal").write_bytes(b"".join(lines))
    with pytest.raises(StorageError, match=r"study\.journal"):
        _load(rd)


def test_a_whole_last_record_changed_is_refused_not_cut_as_torn(tmp_path: Path) -> None:
    rd = tmp_path / "s"
    lines = _journal(rd, checksum=True)
    assert b'"state":1' in lines[-1] or b'"op_code":4' in lines[-1]  # it finishes a trial
    lines[-1] = lines[-1].replace(b'{"', b"{#", 1)  # one byte; the newline is still there
    damaged = b"".join(lines)
    (rd / "study.journal").write_bytes(damaged)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            trials = _load(rd)
        except StorageError as exc:
            assert "study.journal" in str(exc)
            assert (rd / "study.journal").read_bytes() == damaged  # nothing rewritten
            return
    # what happens now: the record is cut away and its finished trial is RUNNING again
    states = [t.state.name for t in trials]
    pytest.fail(f"the damaged last record was dropped as torn; trials now {states}")


def _lines(data: bytes) -> list[bytes]:
    return data.splitlines(keepends=True)


def _optuna_written(data: bytes, tmp: Path) -> bytes:
    """The same records as Optuna's own writer writes them (no checksum): the referee."""
    src, out = tmp / "src.journal", tmp / "optuna.journal"
    src.write_bytes(data)
    JournalFileBackend(str(out)).append_logs(list(JournalReader(src).read(0)))
    return out.read_bytes()


def _swap(ls: list[bytes], i: int) -> bytes:
    return b"".join([*ls[:i], ls[i + 1], ls[i], *ls[i + 2 :]])


def _nocrc(data: bytes, tmp: Path, old: bytes, new: bytes) -> bytes:
    ls = _lines(_optuna_written(data, tmp))
    i = next(i for i, ln in enumerate(ls) if old in ln and i > 2)
    return b"".join([*ls[:i], ls[i].replace(old, new, 1), *ls[i + 1 :]])


def _record(data: bytes, tmp: Path, record: bytes) -> bytes:
    return _optuna_written(data, tmp) + record + b"\n"


# name -> the damaged journal, from the run's journal (checksummed) and a scratch folder
DAMAGE = {
    "NUL block in the middle": lambda d, t: d[: len(d) // 2] + b"\0" * 4096 + d[len(d) // 2 + 4096 :],
    "NUL block over the end": lambda d, t: d[:-4096] + b"\0" * 4096,
    "a record repeated": lambda d, t: b"".join([*_lines(d)[:10], *_lines(d)[9:]]),
    "the last record repeated": lambda d, t: d + _lines(d)[-1],
    "two records swapped": lambda d, t: _swap(_lines(d), 10),
    "the last two records swapped": lambda d, t: _swap(_lines(d), len(_lines(d)) - 2),
    "a record removed": lambda d, t: b"".join(_lines(d)[:10] + _lines(d)[11:]),
    "a line cut in the middle": lambda d, t: b"".join([*_lines(d)[:10], _lines(d)[10][:40], *_lines(d)[11:]]),
    "a line cut, its newline kept": lambda d, t: b"".join([*_lines(d)[:10], _lines(d)[10][:40] + b"\n", *_lines(d)[11:]]),
    "an empty file": lambda d, t: b"",
    "only newlines": lambda d, t: b"\n" * 100,
    "a binary file": lambda d, t: bytes(range(256)) * 20,
    "invalid UTF-8": lambda d, t: d.replace(b'"worker_id":"', b'"worker_id":"\xff', 1),
    "a blank line": lambda d, t: b"".join([*_lines(d)[:10], b"\n", *_lines(d)[10:]]),
    "a huge last line, not JSON": lambda d, t: d + b"x" * (8 << 20) + b"\n",
    "the last record's first byte": lambda d, t: d[: d.rindex(b"\n", 0, -1) + 2] + b"#" + d[d.rindex(b"\n", 0, -1) + 3 :],
    "no checksum: unknown operation": lambda d, t: _nocrc(d, t, b'"op_code":4', b'"op_code":99'),
    "no checksum: unknown state": lambda d, t: _nocrc(d, t, b'"state":1', b'"state":7'),
    "no checksum: a list": lambda d, t: _record(d, t, b"[1, 2]"),
    "no checksum: no operation": lambda d, t: _record(d, t, b'{"worker_id": "w"}'),
    "no checksum: a trial never created": lambda d, t: _record(d, t, b'{"op_code": 8, "worker_id": "w", "trial_id": 999, "user_attr": {"a": 1}}'),
    "no checksum: a study never created": lambda d, t: _record(d, t, b'{"op_code": 4, "worker_id": "w", "study_id": 7, "datetime_start": null}'),
    "no checksum: a field missing": lambda d, t: _record(d, t, b'{"op_code": 4, "worker_id": "w", "study_id": 0}'),
}  # fmt: skip

_COMMANDS = {
    "search": ["search", "-c", "s.toml", "-q", "--run-dir", "runs"],
    "worker": ["worker", "-c", "s.toml", "--run-dir", "runs"],
}


# One kind of damage of each family, in real processes: `worker` opens the journal through the
# same reader and replay check as `search`.
_FAMILIES = [
    "NUL block in the middle",
    "two records swapped",
    "the last record's first byte",
    "no checksum: unknown state",
]


def _damaged(work: Path, damage: str) -> tuple[Path, dict[str, str]]:
    """``work``'s run directory with its journal damaged; the directory's digest."""
    rd = work / "runs" / "s"
    path = rd / "study.journal"
    scratch = work / "scratch"
    scratch.mkdir()
    path.write_bytes(DAMAGE[damage](path.read_bytes(), scratch))
    return rd, digest(rd)


@pytest.mark.slow
@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_damage_to_a_run_journal_is_one_line_and_changes_nothing(
    work: Path, damage: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    rd, before = _damaged(work, damage)
    monkeypatch.chdir(work)
    line = in_process(_COMMANDS["search"], monkeypatch, capsys).one_error_line()
    assert "study.journal" in line, line
    assert digest(rd) == before  # the journal and every result file as they were


@pytest.mark.slow
@pytest.mark.parametrize("command", ["search", "worker"])
@pytest.mark.parametrize("damage", _FAMILIES)
def test_damage_in_real_processes_is_one_line_and_changes_nothing(
    work: Path, damage: str, command: str
) -> None:
    rd, before = _damaged(work, damage)
    line = quantsearch(_COMMANDS[command], cwd=work).one_error_line()
    assert "study.journal" in line, line
    assert digest(rd) == before


def _trials(run_dir: Path) -> list[tuple[int, str, object, object]]:
    study = optuna.load_study(
        study_name=run_dir.name,
        storage=JournalStorage(JournalFileBackend(str(run_dir / "study.journal"))),
    )
    return [
        (t.number, t.state.name, t.params, t.values) for t in study.trials if t.state.is_finished()
    ]


@pytest.mark.slow
@pytest.mark.parametrize(
    "tail", [b"\0" * 4096, b'{"op_code":6,"worker_id":"w","tri'], ids=["NUL block", "a record cut"]
)
def test_a_torn_tail_is_cut_with_one_warning_and_every_finished_trial_kept(
    work: Path, tail: bytes
) -> None:
    """What an interrupted write leaves (a record cut short; a block of NULs where a crash on
    some filesystems lost a write not yet synced): the search warns in one line, keeps the
    bytes it cut beside the journal, keeps every finished trial (Optuna's reader, before and
    after), and rewrites the result files from the same trials."""
    rd = work / "runs" / "s"
    path = rd / "study.journal"
    data = path.read_bytes()
    before = _trials(rd)
    path.write_bytes(data + tail)
    r = quantsearch(_COMMANDS["search"], cwd=work)
    assert r.code == 0, r.err
    assert len(r.lines) == 1 and r.lines[0].startswith("warning: "), r.err
    assert "Traceback" not in r.err and f"({len(tail)} bytes)" in r.lines[0]
    assert path.read_bytes() == data
    assert (rd / "study.journal.damaged").read_bytes() == tail
    assert _trials(rd) == before


@pytest.mark.parametrize("kind", ["folder", "FIFO", "link to nothing"])
def test_a_journal_that_is_not_a_file_is_refused_before_it_is_opened(
    tmp_path: Path, kind: str
) -> None:
    """The storage itself refuses (the CLI names the kind at --run-dir first): opening a FIFO
    would block for ever, a folder fail with a traceback."""
    import os

    path = tmp_path / "study.journal"
    {"folder": path.mkdir, "FIFO": lambda: os.mkfifo(path)}.get(
        kind, lambda: os.symlink("nowhere", path)
    )()
    with pytest.raises(StorageError, match=r"study\.journal, which is not a regular file"):
        open_storage(None, tmp_path, exclusive=True)
    assert path.is_symlink() or path.exists()  # left where it was


@pytest.mark.parametrize("damage", ["emptied", "last record NUL-overwritten"])
def test_a_journal_lacking_a_trial_the_results_list_is_refused_unchanged(
    tmp_path: Path, damage: str
) -> None:
    """``trials.jsonl`` lists the 4 finished trials (as Optuna's reader gives them); a journal
    emptied, or whose last record a crash overwrote with NULs, is not a torn write to cut and
    search on (the rerun would drop trial 3 and overwrite the results listing it)."""
    import json

    rd = tmp_path / "s"
    lines = _journal(rd, checksum=True)
    study = optuna.load_study(
        study_name="s", storage=JournalStorage(JournalFileBackend(str(rd / "study.journal")))
    )
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 4
    (rd / "trials.jsonl").write_text(
        "".join(
            json.dumps({"number": t.number, "state": t.state.name}) + "\n" for t in study.trials
        )
    )
    nuls = b"".join(lines[:-1]) + b"\0" * len(lines[-1])  # the newline too: a torn tail
    damaged = b"" if damage == "emptied" else nuls
    (rd / "study.journal").write_bytes(damaged)
    with pytest.raises(StorageError, match=r"no finished trial 3 \(1 in all\)|no finished trial 0"):
        _load(rd)
    assert (rd / "study.journal").read_bytes() == damaged
    assert not (rd / "study.journal.damaged").exists()
