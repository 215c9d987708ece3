"""The journal backend: repair of a cut last record, rollback of failed writes, group commit.

Referees: Optuna's own, unmodified ``JournalFileBackend`` + ``JournalStorage`` must load every
file this backend leaves behind; the faults are real (files cut at every byte offset, a real
tmpfs filled up, a real process killed with SIGKILL).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import optuna
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.storages.journal._storage import JournalOperation
from optuna.trial import TrialState

from quantsearch.errors import StorageError
from quantsearch.search import journal_record, journal_replay
from quantsearch.search.journal import JournalBackend
from quantsearch.search.journal_repair import JournalRepaired
from tests.kill import kill_after

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _objective(trial: optuna.Trial) -> float:
    x = trial.suggest_int("x", 0, 9)
    trial.set_user_attr("note", "n" * 20)
    return float(x)


def _study(path: Path, **kw: object) -> tuple[optuna.Study, JournalBackend]:
    backend = JournalBackend(path, **kw)  # type: ignore[arg-type]
    study = optuna.create_study(
        storage=JournalStorage(backend),
        study_name="s",
        load_if_exists=True,
        sampler=optuna.samplers.RandomSampler(seed=0),
    )
    return study, backend


def _optuna_load(path: Path) -> optuna.Study:
    """The referee: Optuna's own reader."""
    return optuna.load_study(study_name="s", storage=JournalStorage(JournalFileBackend(str(path))))


def test_constants_match_optunas_enums() -> None:
    assert JournalOperation.SET_TRIAL_STATE_VALUES.value == journal_record.FINISH_OP
    assert JournalOperation.CREATE_TRIAL.value == journal_record.CREATE_TRIAL_OP
    study_ops = {"CREATE_STUDY", "DELETE_STUDY", "SET_STUDY_USER_ATTR", "SET_STUDY_SYSTEM_ATTR"}
    assert {JournalOperation[n].value for n in study_ops} == journal_record.STUDY_OPS
    finished = {TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL}
    assert {s.value for s in finished} == journal_record.FINISHED_STATES
    assert sorted(op.value for op in JournalOperation) == list(range(journal_replay.N_OPS))
    assert sorted(s.value for s in TrialState) == list(range(journal_replay.N_STATES))
    trial_ops = {"SET_TRIAL_PARAM", "SET_TRIAL_STATE_VALUES", "SET_TRIAL_INTERMEDIATE_VALUE"}
    trial_ops |= {"SET_TRIAL_USER_ATTR", "SET_TRIAL_SYSTEM_ATTR"}
    assert {JournalOperation[n].value for n in trial_ops} == journal_replay.TRIAL_OPS
    study_id_ops = {"DELETE_STUDY", "SET_STUDY_USER_ATTR", "SET_STUDY_SYSTEM_ATTR", "CREATE_TRIAL"}
    assert {JournalOperation[n].value for n in study_id_ops} == journal_replay.STUDY_ID_OPS


def test_the_fault_a_cut_record_breaks_optunas_own_journal_for_good(tmp_path: Path) -> None:
    """Reproduces the fault the repair exists for, with Optuna alone."""
    path = tmp_path / "study.journal"
    storage = JournalStorage(JournalFileBackend(str(path)))
    study = optuna.create_study(storage=storage, study_name="s")
    study.optimize(_objective, n_trials=3)
    data = path.read_bytes()
    path.write_bytes(data[:-10])  # the last record cut short
    for _ in range(2):  # the resume appends onto the cut line; every later run fails too
        with pytest.raises((ValueError, AttributeError)):
            _optuna_load(path).optimize(_objective, n_trials=1)


def test_every_cut_of_the_last_record_is_repaired_and_the_study_resumes(tmp_path: Path) -> None:
    original = tmp_path / "original.journal"
    study, backend = _study(original, exclusive=True)
    study.optimize(_objective, n_trials=4)
    backend.close()
    data = original.read_bytes()
    last_start = data.rstrip(b"\n").rfind(b"\n") + 1
    complete_before = sum(t.state == TrialState.COMPLETE for t in _optuna_load(original).trials)
    for cut in range(last_start + 1, len(data)):  # every byte offset inside the last record
        path = tmp_path / f"cut{cut}" / "study.journal"
        path.parent.mkdir()
        path.write_bytes(data[:cut])
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            study, backend = _study(path, exclusive=True)
        cut_record = cut < len(data) - 1  # only the newline missing: the record is whole
        assert [w.category for w in caught] == ([JournalRepaired] if cut_record else [])
        if cut_record:
            assert f"({cut - last_start} bytes)" in str(caught[0].message)
            kept = (path.parent / "study.journal.damaged").read_bytes()
            assert path.read_bytes()[:last_start] + kept == data[:cut]  # nothing is lost
        study.optimize(_objective, n_trials=2)
        backend.close()
        loaded = _optuna_load(path)  # Optuna's own reader accepts the result
        done = sum(t.state == TrialState.COMPLETE for t in loaded.trials)
        assert done >= complete_before - 1 + 2


def test_damage_before_the_last_record_is_refused_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "study.journal"
    study, _backend = _study(path, exclusive=False)
    study.optimize(_objective, n_trials=2)
    lines = path.read_bytes().splitlines(keepends=True)
    lines[1] = b"garbage\n"
    path.write_bytes(b"".join(lines))
    before = path.read_bytes()
    with pytest.raises(StorageError, match=r"line 2 is damaged") as err:
        _study(path, exclusive=True)
    assert "\n" not in str(err.value)
    assert path.read_bytes() == before  # nothing the user had is changed


def _view(study: optuna.Study) -> list[tuple[object, ...]]:
    return [(t.number, t.state, t.params, t.values, t.user_attrs) for t in study.trials]


def test_every_byte_changed_in_a_record_is_refused_or_harmless(tmp_path: Path) -> None:
    """One byte of a middle record changed (a flipped bit on disk, an edit): opening the study
    raises the one-line StorageError, or, where the change left the data whole (the checksum's
    own key renamed), reads the very trials written. Never another exception, never a changed
    trial accepted. Referee: the trials Optuna's own reader gave before the damage."""
    path = tmp_path / "study.journal"
    study, backend = _study(path, exclusive=True)
    study.optimize(_objective, n_trials=3)
    backend.close()
    before, data = _view(_optuna_load(path)), path.read_bytes()
    lines = data.splitlines(keepends=True)
    start = sum(len(ln) for ln in lines[:-2])  # the second last record: never repaired away
    refused = 0
    for off in range(start, start + len(lines[-2]) - 1):
        damaged = bytearray(data)
        damaged[off] ^= 0x01
        path.write_bytes(bytes(damaged))
        try:
            loaded, _ = _study(path, exclusive=True)
        except StorageError as exc:
            assert "\n" not in str(exc) and str(path) in str(exc)
            refused += 1
            continue
        assert _view(loaded) == before, (off, bytes(damaged[off - 20 : off + 20]))
    assert refused >= len(lines[-2]) - 1 - len(journal_record.CHAIN_KEY)


def test_a_changed_journal_record_stops_the_cli_in_one_line(
    tmp_path: Path, mlp_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A digit of a finished trial's accuracy changed in the journal of a real run: the same
    `quantsearch search` again ends in one line naming the file and the line, exit status 2,
    and leaves the journal as it was (Optuna alone would resume with the changed value)."""
    from quantsearch.cli import main
    from tests.runs import WEIGHTED, make_run

    rd = make_run(tmp_path, mlp_checkpoint, WEIGHTED)
    path = rd / "study.journal"
    lines = path.read_bytes().splitlines(keepends=True)
    i = next(i for i, ln in enumerate(lines) if b'"accuracy":0.' in ln)
    at = lines[i].index(b'"accuracy":0.') + len(b'"accuracy":0.')
    lines[i] = (
        lines[i][:at] + (b"9" if lines[i][at : at + 1] != b"9" else b"8") + lines[i][at + 1 :]
    )
    path.write_bytes(b"".join(lines))
    before = path.read_bytes()
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main(["search", "-c", str(tmp_path / "s.toml"), "-q", "--run-dir", str(rd.parent)])
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert exc.value.code == 2 and len(err) == 1, err
    assert err[0].startswith("error: ") and f"{path}, whose line {i + 1} is damaged" in err[0], err
    assert path.read_bytes() == before


def test_a_stale_lock_is_cleared_by_the_only_writer(tmp_path: Path) -> None:
    path = tmp_path / "study.journal"
    study, backend = _study(path, exclusive=True)
    study.optimize(_objective, n_trials=1)
    backend.close()
    # What a kill -9 inside Optuna's append leaves: the lock symlink, with a relative target.
    os.symlink("runs/x/study.journal", str(path) + ".lock")
    t0 = time.monotonic()
    study, backend = _study(path, exclusive=True)
    study.optimize(_objective, n_trials=1)
    assert time.monotonic() - t0 < 5
    assert len(study.trials) == 2


def test_group_commit_writes_once_per_group_and_reads_back_its_buffer(tmp_path: Path) -> None:
    path = tmp_path / "study.journal"
    study, backend = _study(path, exclusive=True, group_commit_s=3600.0)
    writes: list[int] = []
    real_write = backend._write_group
    backend._write_group = lambda logs: (writes.append(len(logs)), real_write(logs))[1]  # type: ignore[method-assign]
    study.optimize(_objective, n_trials=5)
    assert writes == []  # nothing reached the disk yet, yet the study sees its trials
    assert len(study.trials) == 5
    backend.flush()
    assert len(writes) == 1
    assert len(_optuna_load(path).trials) == 5


def test_group_commit_flushes_a_finished_trial_within_the_interval(tmp_path: Path) -> None:
    path = tmp_path / "study.journal"
    study, backend = _study(path, exclusive=True, group_commit_s=0.05)
    study.optimize(_objective, n_trials=3)
    time.sleep(0.3)  # the timer fires even when no further record comes
    assert len(_optuna_load(path).trials) == 3
    backend.close()


def test_a_group_being_written_holds_up_no_read_and_is_read_once(tmp_path: Path) -> None:
    """The committer's write and fsync run outside the lock that reads take: while a group is
    on its way to the disk (its bytes written, the write not returned yet) the trial loop
    appends and reads at once, and a reader starting from the first record reads every record
    once (the file up to what was written before, the rest from the buffer). Referee: Optuna's
    own reader of the file once the group is written."""
    import threading

    path = tmp_path / "study.journal"
    study, backend = _study(path, exclusive=True, group_commit_s=3600.0)
    study.optimize(_objective, n_trials=3)
    backend.flush()  # the first 3 trials on disk
    study.optimize(_objective, n_trials=2)  # 2 more buffered
    in_write, release = threading.Event(), threading.Event()
    real_append = backend._append

    def held_append(data: bytes) -> None:
        real_append(data)  # on disk, fsynced
        in_write.set()
        assert release.wait(10)

    backend._append = held_append  # type: ignore[method-assign]
    writer = threading.Thread(target=backend.flush)
    writer.start()
    try:
        assert in_write.wait(10)
        t0 = time.monotonic()
        study.optimize(_objective, n_trials=1)  # reads and appends while the group is written
        every = list(backend.read_logs(0))
        assert time.monotonic() - t0 < 5
    finally:
        release.set()
        writer.join()
    backend._append = real_append  # type: ignore[method-assign]
    backend.flush()
    on_disk = list(JournalFileBackend(str(path)).read_logs(0))
    for log in on_disk:
        log.pop(journal_record.CHAIN_KEY, None)
    assert every == on_disk  # each record once, in order
    assert [t.number for t in _optuna_load(path).trials] == list(range(6))


_KILLED_WRITER = textwrap.dedent(
    """
    import sys, time, optuna
    from pathlib import Path
    from optuna.storages import JournalStorage
    from quantsearch.search.journal import JournalBackend
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    backend = JournalBackend(Path(sys.argv[1]), exclusive=True, group_commit_s=0.05)
    study = optuna.create_study(storage=JournalStorage(backend), study_name="s",
                                load_if_exists=True)
    def objective(trial):
        time.sleep(0.002)
        return trial.suggest_float("x", 0, 1)
    def done(study, trial):
        print(trial.number, time.monotonic(), flush=True)
    study.optimize(objective, n_trials=100000, callbacks=[done])
    """
)


@pytest.mark.slow
@pytest.mark.parametrize("after_s", [0.3, 0.55, 0.8])
def test_kill_9_loses_no_trial_older_than_the_flush_interval(
    tmp_path: Path, after_s: float
) -> None:
    path = tmp_path / "study.journal"
    old = kill_after([sys.executable, "-c", _KILLED_WRITER, str(path)], after_s)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", JournalRepaired)
        study, backend = _study(path, exclusive=True)
    complete = {t.number for t in study.trials if t.state == TrialState.COMPLETE}
    assert old <= complete
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)  # and it resumes
    backend.close()
    _optuna_load(path)


def _mount_tmpfs(where: Path, size: str) -> bool:
    if shutil.which("mount") is None or os.geteuid() != 0:
        return False
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True
    )
    return r.returncode == 0


@pytest.mark.parametrize("group_commit_s", [0.0, 0.05])
def test_disk_full_stops_with_one_line_and_the_study_stays_loadable(
    tmp_path: Path, group_commit_s: float
) -> None:
    mnt = tmp_path / "small"
    mnt.mkdir()
    if not _mount_tmpfs(mnt, "256k"):
        pytest.skip("needs root and mount(8) for a real tmpfs")
    try:
        path = mnt / "study.journal"
        study, backend = _study(path, exclusive=True, group_commit_s=group_commit_s)

        def big(trial: optuna.Trial) -> float:
            time.sleep(0.002)  # several trials to a group, several groups before the disk fills
            trial.set_user_attr("blob", "b" * 2000)
            return _objective(trial)

        with pytest.raises(StorageError, match=r"free space") as err:
            # The production loop's check after each trial.
            study.optimize(big, n_trials=10_000, callbacks=[lambda s, t: backend.check()])
        assert "\n" not in str(err.value)
        loaded = _optuna_load(path)  # Optuna's own reader: no cut record left behind
        assert sum(t.state == TrialState.COMPLETE for t in loaded.trials) > 0
        with warnings.catch_warnings():
            warnings.simplefilter("error", JournalRepaired)  # nothing to repair
            JournalBackend(path, exclusive=True)
    finally:
        subprocess.run(["umount", str(mnt)], check=False)
