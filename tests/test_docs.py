"""README.md and docs/ stay true to the code they document.

The referees are the code itself: the CLI's own click parameters, the keys the config parser
accepts (every ``check_keys`` call made while parsing the README's config reference), and the
README's first library example, run as a user would paste it.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

import quantsearch
import quantsearch.validate
from quantsearch.cli import cli
from quantsearch.config import parse_config

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def _section(title: str) -> str:
    """The text of README's section ``title`` (a ``## `` heading) up to the next one."""
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start : end if end >= 0 else len(README)]


def _cli_rows() -> dict[str, str]:
    """The CLI reference table: command name -> its row."""
    rows = {}
    for line in _section("CLI reference").splitlines():
        m = re.match(r"\| `(\w+)[^`]*` \|", line)
        if m:
            rows[m.group(1)] = line
    return rows


def _options(name: str) -> set[str]:
    return {o for p in cli.commands[name].params for o in (*p.opts, *p.secondary_opts)}


def test_every_command_has_a_row_in_the_cli_reference() -> None:
    assert sorted(_cli_rows()) == sorted(cli.commands)


@pytest.mark.parametrize("name", sorted(cli.commands))
def test_a_commands_row_names_its_options_and_only_them(name: str) -> None:
    """Each option a command takes is in its row (long or short spelling), and each option
    the row names is one the command takes; ``-c/--config`` and ``-h/--help`` are said once
    above the table for every command."""
    row = _cli_rows()[name]
    if name == "worker":  # "as `search`, but no `--figure-format`, `-q` or `--json`"
        gone = set(re.findall(r"`(--?[a-z][\w-]*)", row.split("as `search`, but no")[1]))
        assert gone == {"--figure-format", "-q", "--json"}
        assert _options("worker") == _options("search") - gone - {"--quiet"}
        return
    params = [p for p in cli.commands[name].params if p.param_type_name == "option"]
    for p in params:
        spellings = [*p.opts, *p.secondary_opts]
        if set(spellings) & {"--config", "--help"}:
            continue
        assert any(re.search(rf"`{re.escape(s)}[ `/=|\\]", row) for s in spellings), (
            f"{name}: {spellings} not in its README row"
        )
    # --config NAME: every config-reading command's option, which the examples row mentions
    named = set(re.findall(r"`(--?[a-z][\w-]*)", row)) - {"--config"}
    assert named <= _options(name), f"{name}: README names {sorted(named - _options(name))}"


def _recording_check_keys(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, list[str]]]:
    """Record every ``check_keys(table, allowed, key)`` the config parser makes."""
    calls: list[tuple[str, list[str]]] = []
    real = quantsearch.validate.check_keys

    def record(table: Any, allowed: Any, key: str) -> None:
        calls.append((key, sorted(allowed)))
        real(table, allowed, key)

    for info in pkgutil.walk_packages(quantsearch.__path__, "quantsearch."):
        if info.name.startswith(("quantsearch.cli", "quantsearch.__main__")):
            continue
        mod = importlib.import_module(info.name)
        if getattr(mod, "check_keys", None) is real:
            monkeypatch.setattr(mod, "check_keys", record)
    return calls


def test_the_config_reference_parses_and_names_every_key_its_tables_accept(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The reference's TOML block is a config ``load_config`` accepts (less ``[metrics]``:
    its evaluate function refuses the block's ``fidelity = "successive_halving"``, as the
    block says), and every key each of its tables accepts is named in the section."""
    text = _section("Config reference")
    block = text.split("```toml\n", 1)[1].split("```", 1)[0]
    raw = tomllib.loads(block)
    assert set(raw) >= {"model", "data", "train", "metrics", "quantize", "search", "compare"}
    calls = _recording_check_keys(monkeypatch)
    parse_config({k: v for k, v in raw.items() if k != "metrics"})
    tables = {key for key, _ in calls}
    assert {"", "model", "train", "quantize", "search", "search.fidelity", "compare"} <= tables
    for key, allowed in calls:
        missing = [a for a in allowed if not re.search(rf"(?<![\w.]){re.escape(a)}(?!\w)", text)]
        assert not missing, f"[{key}] accepts {missing}, not in README's config reference"


def test_the_config_references_quantize_tables_apply_to_its_own_model() -> None:
    """The block's ``[quantize]`` tables resolve on the model its ``[model]`` names (by_name
    named mlp-digits' ReLU for a weight, refused when copied)."""
    import torch

    from quantsearch.graph import trace
    from quantsearch.models import build_model
    from quantsearch.passes.transform import resolve

    block = _section("Config reference").split("```toml\n", 1)[1].split("```", 1)[0]
    raw = tomllib.loads(block)
    cfg = parse_config({k: v for k, v in raw.items() if k != "metrics"})
    assert cfg.quantize is not None and cfg.quantize.by_name
    gm = trace(build_model(raw["model"]["name"]).eval(), torch.randn(8, 64))
    resolved = resolve(gm, cfg.quantize)
    table = resolved.to_dict()
    for name, level in cfg.quantize.by_name:
        roles = table[name.replace(".", "_")]
        for role, spec in level.roles:  # each role the example names is the one applied
            assert {k: roles[role][k] for k, _ in spec.fields} == dict(spec.fields), (name, role)


def test_the_tours_library_example_runs_as_written(tmp_path: Path) -> None:
    """The first Python block of "A tour", pasted into a file and run."""
    code = _section("A tour").split("```python\n", 1)[1].split("```", 1)[0]
    script = tmp_path / "tour.py"
    script.write_text(code, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip(), "the example prints its best config"


def _listed(text: str, after: str) -> set[str]:
    """The names listed on the README line containing ``after``, from it to the line's end."""
    line = next(ln for ln in text.splitlines() if after in ln)
    return set(re.findall(r"[a-z][\w-]*", line.split(after, 1)[1]))


def test_the_config_reference_lists_every_registered_strategy_format_and_op_kind() -> None:
    """The names the reference lists are the registries' own, aliases included: a plug-in
    registered without a line here (or a line for one removed) fails."""
    from quantsearch.formats import FORMATS
    from quantsearch.passes.transform.modules import QUANTIZERS
    from quantsearch.search.strategies import STRATEGIES

    text = _section("Config reference")
    strategies = _listed(text, 'name = "tpe"                 #') - {"aliases"}
    assert strategies == set(STRATEGIES.names()) | set(STRATEGIES._aliases)
    formats = _listed(text, 'format = "fixed"             #') - {"alias"}
    assert formats == set(FORMATS.names()) | set(FORMATS._aliases)
    fields = text.split("fields per format:", 1)[1].split("\n[", 1)[0]
    for name in FORMATS.names():
        cls = FORMATS.get(name)
        for f in dataclasses.fields(cls):
            assert re.search(rf"\b{f.name}\b", fields), f"{name}.{f.name} not in the reference"
    kinds = _listed(text.replace("batch_norm1d/2d", "batch_norm1d, batch_norm2d"), "# by op kind:")
    assert kinds == set(QUANTIZERS.names())


def test_the_models_and_metrics_lists_name_every_registered_one() -> None:
    """README's "Models, metrics, formats, strategies" names each zoo model and each metric
    ``quantsearch metrics`` lists (``top<k>_accuracy`` and ``model_size_bits`` / ``_bytes``
    as it writes them)."""
    from quantsearch.metrics.specs import METRICS
    from quantsearch.models import MODELS

    text = _section("Models, metrics, formats, strategies")
    text = text.replace("`model_size_bits` / `_bytes`", "`model_size_bits`, `model_size_bytes`")
    for name in MODELS.names():
        assert f"`{name}`" in text, f"model {name} not in README"
    for name in METRICS.names():
        if re.fullmatch(r"top\d+_accuracy", name):
            name = "top<k>_accuracy"
        assert f"`{name}`" in text, f"metric {name} not in README"


def test_docs_strategies_has_a_row_for_every_registered_strategy() -> None:
    """docs/strategies.md's table: one row per strategy of the registry, none for another."""
    from quantsearch.search.strategies import STRATEGIES

    doc = (Path(__file__).resolve().parents[1] / "docs" / "strategies.md").read_text("utf-8")
    rows = set()
    for line in doc.splitlines():
        if line.startswith("| `"):
            rows |= set(re.findall(r"`(\w+)`", line.split("|")[1].split("(alias")[0]))
    assert rows == set(STRATEGIES.names())
