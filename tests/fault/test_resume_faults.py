"""Faults between a search and its resume, in real `quantsearch` processes: a run directory whose
journal is gone while its results remain, Ctrl-C pressed twice, and `compare` killed at any
moment.

Referees: the harness's SHA-256 digest of the folder (nothing changed), Optuna's own
``optuna.load_study`` on the journal (what a resume kept), and an unfaulted `compare`'s files.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from quantsearch.cli import INTERRUPTED
from tests.fault.harness import digest, quantsearch

pytestmark = pytest.mark.slow
LONG = """
seed = 0
[model]
name = "mlp-digits"
checkpoint = "m.pt"
[search]
n_trials = {n}
[search.strategy]
name = "random"
[search.space]
by = "name"
[search.space.choices.linear]
data_in = {{ width = [4, 6, 8, 12, 16], frac_width = [2, 3, 4, 6] }}
weight = {{ width = [4, 6, 8, 12, 16], frac_width = [2, 3, 4, 6] }}
[search.objectives]
accuracy = {{ direction = "maximize" }}
"""


@pytest.mark.parametrize(
    "args",
    [["--seed", "5"], ["--workers", "2"]],
    ids=["another-seed", "workers"],
)
def test_a_journal_gone_beside_its_results_is_refused_and_nothing_changes(
    work: Path, args: list[str]
) -> None:
    """Was: exit 0, a new study in the journal's place, and ``trials.jsonl``, ``best.json``
    and the report of the 26 finished trials overwritten (by a study of another seed, too: the
    study's identity lives in the journal that was gone). An emptied journal was refused."""
    rd = work / "runs" / "s"
    (rd / "study.journal").unlink()
    before = digest(work)
    r = quantsearch(["search", "-c", "s.toml", "-q", "--run-dir", "runs", *args], cwd=work)
    line = r.one_error_line()
    assert "got no " in line and "study.journal, but trials.jsonl beside it lists" in line, line
    assert digest(work) == before  # no journal, lock, log or coordination file made


@pytest.mark.postgres
def test_a_database_study_is_refused_a_run_directory_whose_journal_holds_one(
    work: Path, pg_url: str
) -> None:
    """Was: exit 0, and the database study's (seed 5) result files and report over those of
    the journal's study (seed 0), which the journal still held: the next plain resume then
    called the journal "truncated or replaced". The other way round (a database study's
    results, no journal) is the refusal above, whose message names --storage."""
    before = digest(work)
    for args in ([], ["--workers", "2"]):
        cmd = ["search", "-c", "s.toml", "-q", "--run-dir", "runs", "--seed", "5"]
        r = quantsearch([*cmd, "--storage", pg_url, *args], cwd=work)  # study "s": runs/s
        assert "holds a study in its journal file" in r.one_error_line()
        assert digest(work) == before


@pytest.mark.postgres
def test_a_database_refusing_the_password_is_one_line_that_hides_it(
    work: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`worker` (`search` opens the database the same way) on the suite's server, a role it
    does not know with a password (given by the environment, as the README says to): one
    line naming --storage and the server's reason (scram: the password failed; a trust
    server: no such role), the password not in it."""
    from sqlalchemy.engine import make_url

    url = make_url(pg_url).set(username="qs_no_such_role", password="wrong-secret-7")
    url = url.render_as_string(hide_password=False)
    monkeypatch.setenv("QUANTSEARCH_STORAGE", url)
    before = digest(work)
    r = quantsearch(["worker", "-c", "s.toml", "--run-dir", "elsewhere"], cwd=work)
    line = r.one_error_line()
    assert line.startswith("error: --storage: "), line
    assert "password authentication failed" in line or "does not exist" in line, line
    assert "wrong-secret-7" not in r.err
    assert digest(work) == before


def test_the_refused_folder_starts_over_once_its_results_are_moved_away(work: Path) -> None:
    """What the refusal says to do: the results moved away, the same command starts the
    study again (the same seed: the same trials as the first run, by Optuna's reader)."""
    rd = work / "runs" / "s"
    (rd / "study.journal").rename(work / "kept.journal")
    (rd / "trials.jsonl").rename(work / "kept.jsonl")
    r = quantsearch(["search", "-c", "s.toml", "-q", "--run-dir", "runs"], cwd=work)
    assert r.code == 0, r.err
    shutil.copy(work / "kept.journal", work / "old.journal")
    assert _optuna_trials(rd / "study.journal") == _optuna_trials(work / "old.journal")


def _optuna_trials(journal: Path) -> list[tuple[int, str, list[float] | None]]:
    """Every trial of the journal's one study, as Optuna's own reader replays it."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = JournalStorage(JournalFileBackend(str(journal)))
    (summary,) = optuna.get_all_study_summaries(storage)
    study = optuna.load_study(study_name=summary.study_name, storage=storage)
    return [(t.number, t.state.name, t.values) for t in study.get_trials()]


def _ctrl_c_reaches_it() -> None:
    # a child of a non-interactive shell may inherit SIGINT ignored
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _completed(journal: Path) -> dict[int, list[float] | None]:
    return {n: v for n, s, v in _optuna_trials(journal) if s == "COMPLETE"}


def test_a_second_ctrl_c_while_the_search_stops_is_one_line_and_loses_nothing(
    work: Path,
) -> None:
    """Ctrl-C, then Ctrl-C again as the search stops (a seeded 0-20 ms after its
    ``interrupted`` line). Was: the second landed in the interpreter's exit, where the
    journal's last flush and torch's finalizers run, and printed ``Exception ignored in atexit
    callback`` with a ``KeyboardInterrupt`` traceback after the one line (3 of 8 seeded tries),
    or the process died of the signal (exit -2, not 130: what this test saw before the fix).
    The two seeded tries run side by side, each in its own run directory (each is about 2 s of
    one process's start-up and 4 s of its resume's, one core each: 16 s one after the other)."""
    n = 1000  # batched random trials: hundreds a second; a budget no interrupt can miss
    (work / "long.toml").write_text(LONG.format(n=n))
    rng = random.Random(9)
    delays = [rng.uniform(0, 0.02) for _ in range(2)]  # the seeded tries' delays, in order
    with ThreadPoolExecutor(max_workers=2) as pool:
        for done in [
            pool.submit(_ctrl_c_twice, work, f"runs-{i}", n, d) for i, d in enumerate(delays)
        ]:
            done.result()


def _interruptible(cmd: list[str], work: Path) -> subprocess.Popen[bytes]:
    """``quantsearch <cmd>`` started in ``work`` as a real process that Ctrl-C reaches, its
    stderr piped (no split cache: each start prepares its data, as a new machine would)."""
    return subprocess.Popen(
        [sys.executable, "-m", "quantsearch", *cmd],
        cwd=work,
        env={**os.environ, "QUANTSEARCH_CACHE_DIR": ""},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        preexec_fn=_ctrl_c_reaches_it,
    )


def _ctrl_c_twice(work: Path, runs: str, n: int, delay: float) -> None:
    """One try: Ctrl-C, Ctrl-C ``delay`` s after the one line, then the resume to the budget."""
    cmd = ["search", "-c", "long.toml", "-q", "--run-dir", runs]
    journal = work / runs / "long" / "study.journal"
    proc = _interruptible(cmd, work)
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
        if journal.is_file() and journal.stat().st_size > 20_000:  # some trials on disk
            break
    assert proc.poll() is None, "the search ended before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    assert proc.stderr is not None
    err = proc.stderr.readline().decode()  # -q: the one line is all it prints
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    rest = proc.communicate(timeout=120)[1].decode()
    assert (proc.returncode, err + rest) == (130, INTERRUPTED + "\n"), err + rest
    before = _completed(journal)
    done = quantsearch(cmd, cwd=work)
    assert done.code == 0, done.err
    after = _completed(journal)
    assert len(after) == n  # the budget met exactly
    assert {k: after[k] for k in before} == before  # what finished is kept, not re-run


def test_a_ctrl_c_once_the_report_is_written_ends_the_command_as_it_was_ending(
    work: Path,
) -> None:
    """Ctrl-C as soon as ``report.html`` appears: the command's work is done and it exits 0
    (or, landing before the command returned, prints the one line and exits 130). Was: a
    ``KeyboardInterrupt`` traceback from torch's atexit finalizer after a command that
    succeeded (what this test saw), or the process died of the signal, silently, exit -2 (4 of
    8 seeded tries by hand): Python puts SIGINT back to its default for module teardown."""
    report = work / "fresh" / "s" / "report.html"
    proc = _interruptible(["search", "-c", "s.toml", "-q", "--run-dir", "fresh"], work)
    deadline = time.monotonic() + 120
    while not report.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    proc.send_signal(signal.SIGINT)
    err = proc.communicate(timeout=120)[1].decode()
    assert (proc.returncode, err) in ((0, ""), (130, INTERRUPTED + "\n")), (proc.returncode, err)
    assert report.read_text().rstrip().endswith("</html>")


def _compare(args: list[str], cwd: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "quantsearch", "compare", "-c", "s.toml", "-q", *args],
        cwd=cwd,
        env={**os.environ, "QUANTSEARCH_CACHE_DIR": ""},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def test_compare_killed_at_any_moment_then_run_again_writes_what_an_unkilled_one_does(
    work: Path,
) -> None:
    """``kill -9`` at a seeded moment of the whole command (start-up, studies, the report),
    into a folder holding the comparison already: the same command again writes the files an
    unkilled run wrote, byte for byte, and leaves no temporary."""
    args = ["--strategies", "random,tpe", "--seeds", "1", "--trials", "8"]
    t0 = time.monotonic()
    ref = _compare([*args, "--run-dir", "ref"], work)
    assert ref.wait(timeout=300) == 0, ref.communicate()[1]
    took = time.monotonic() - t0
    out = work / "k"
    shutil.copytree(work / "ref", out)  # test_kill_outputs' kills start from no comparison
    proc = _compare([*args, "--run-dir", str(out)], work)
    time.sleep(random.Random(4).uniform(0.3, 1.0) * took)
    proc.kill()
    proc.wait()
    again = _compare([*args, "--run-dir", str(out)], work)
    assert again.wait(timeout=300) == 0, again.communicate()[1]
    folder = out / "s-compare"
    for name in ("comparison.json", "comparison.csv", "runs.jsonl", "configs.jsonl"):
        assert (folder / name).read_bytes() == (work / "ref/s-compare" / name).read_bytes()
    assert [p.name for p in folder.iterdir() if p.name.startswith(".")] == [".lock"]
