"""Every bad-config line has the one form ``error: <key>: got <given>, allowed: <allowed>``.

The config corpora of the bad-input sweeps (``CONFIG_CASES`` of test_bad_input_corpus,
_corpus4, _corpus5, _wider, _held_out, _names, _escapes) each check that a case is refused in
one line naming its key; this walks all of them again through the real entry point and checks
the line's form, so that a new message written the old way (``K must be ... (got V)``) fails
here, whichever corpus it falls in. The referee is the form the project's brief states.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from types import ModuleType

import pytest

from tests.cli.bad_input import GOOD, case_folder, finished_study, run_cli

# A key is a dotted path (TOML-quoted parts may hold spaces: quantize.by_name."a b") or an
# option or argument (--out, RUN_DIR); then what was given, then what is allowed. A rule on
# two keys at once names both (data.val_fraction, data.test_fraction: got 0.6 and 0.5, ...).
_KEY = r'(?:[^\s",]|"[^"]*")+'
FORM = re.compile(rf"^error: {_KEY}(?:, {_KEY})*: got .+, allowed: .+$")

CORPORA = tuple(
    importlib.import_module(f"tests.cli.test_bad_input_{name}")
    for name in ("corpus", "corpus4", "corpus5", "escapes", "held_out", "names", "wider")
)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory, mlp_checkpoint: Path) -> Path:
    """A finished study in runs/good that a case, were it accepted, would resume."""
    d = tmp_path_factory.mktemp("form")
    (d / "good.toml").write_text(GOOD.format(ckpt=mlp_checkpoint.as_posix()))
    finished_study(d)
    return d


@pytest.mark.parametrize("corpus", CORPORA, ids=lambda m: m.__name__.rpartition(".")[2])
def test_every_bad_config_line_has_the_form(
    corpus: ModuleType,
    workdir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(workdir)
    cases = corpus.CONFIG_CASES
    assert cases, corpus.__name__
    good = (workdir / "good.toml").read_text()
    off: list[str] = []
    for name, (edit, _) in sorted(cases.items()):
        cfg = case_folder(workdir, f"{corpus.__name__}-{name}") / "good.toml"
        cfg.write_text(edit(good))
        code, err = run_cli(["search", "-c", str(cfg), "-q"], capsys)  # run_dir: runs
        lines = err.strip().splitlines()
        if code != 2 or len(lines) != 1 or not FORM.match(lines[0]):
            off.append(f"{name}: {code} {err.strip()[:300]}")
    assert not off, "\n".join(off)


@pytest.mark.parametrize(
    ("line", "ok"),
    [
        ("error: search.strategy.name: got 'tpee', allowed: one of ['random', 'tpe']", True),
        ("error: seed: got -1, allowed: an integer in [0, 4294967295]", True),
        ("error: --out: got '', allowed: a file name", True),
        ('error: quantize.by_name."a b".weight: got 3, allowed: a table', True),
        (
            "error: data.val_fraction, data.test_fraction: got 0.6 and 0.5, allowed: a sum below 1",
            True,
        ),
        ("error: search.strategy.name must be one of ['random', 'tpe'] (got 'tpee')", False),
        ("error: seed must be >= 0 (got -1)", False),
        ("error: unknown key train.epoch (allowed in train: ['epochs'])", False),
        ("error: model.checkpoint: checkpoint 'x.pt' does not exist", False),
    ],
)
def test_the_form_tells_the_old_messages_from_the_new(line: str, ok: bool) -> None:
    assert bool(FORM.match(line)) is ok
