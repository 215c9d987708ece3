"""The whole config: sections composed from their own parsers, typed, unknown keys rejected."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path

import pytest

from quantsearch.config import Config, load_config, parse_config
from quantsearch.errors import ConfigError
from quantsearch.passes.transform import QuantizeConfig
from quantsearch.search.config import CompareConfig, SearchConfig

SEARCH = {
    "space": {"choices": {"linear": {"weight": [[8, 4]]}}},
    "objectives": {"accuracy": {"direction": "maximize"}},
}


def test_sections_are_parsed_by_their_own_parsers_into_typed_fields() -> None:
    cfg = parse_config(
        {
            "seed": 3,
            "quantize": {"default": {"weight": {"width": 8, "frac_width": 4}}},
            "search": SEARCH,
            "compare": {"seeds": 2},
        }
    )
    assert isinstance(cfg.quantize, QuantizeConfig)
    assert isinstance(cfg.search, SearchConfig) and cfg.search.seed == 3  # the top-level seed
    assert isinstance(cfg.compare, CompareConfig) and cfg.compare.seeds == 2
    assert parse_config({}).quantize is None and parse_config({}).search is None


def test_no_field_is_typed_any() -> None:
    hints = typing.get_type_hints(Config)
    assert all(hints[f.name] is not typing.Any for f in dataclasses.fields(Config))
    assert hints["quantize"] == QuantizeConfig | None
    assert hints["search"] == SearchConfig | None and hints["compare"] == CompareConfig | None


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        ({"serach": {}}, r"^serach: got an unknown key, allowed: the top-level keys: \['compare', 'data', 'metrics', 'model', 'quantize', 'run_dir', 'search', 'seed', 'train'\]$"),
        ({"quantize": 3}, r"^quantize: got 3, allowed: a table$"),
        ({"train": {"device": "tpu"}}, r"^train\.device: got 'tpu', allowed: 'auto', 'cpu', 'cuda' or 'cuda:N'$"),
        ({"search": {**SEARCH, "strategy": "tpee"}}, r"^search\.strategy: got 'tpee', allowed: one of \['brute_force', .*\]$"),
    ],
)  # fmt: skip
def test_errors_name_the_dotted_key(raw: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        parse_config(raw)


def test_load_config_reads_toml_and_resolves_paths(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('run_dir = "out"\n[model]\nname = "jsc-tiny"\n')
    cfg = load_config(path)
    assert cfg.model.name == "jsc-tiny" and cfg.resolve(cfg.run_dir) == tmp_path / "out"
    with pytest.raises(
        ConfigError,
        match=r"^--config: got '.*nope\.toml', which does not exist, allowed: a TOML file",
    ):
        load_config(tmp_path / "nope.toml")
    path.write_text("[model\n")
    with pytest.raises(ConfigError, match=r"^--config: got .*, not valid TOML: "):
        load_config(path)
