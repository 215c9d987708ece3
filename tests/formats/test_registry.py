"""The format registry, make_format and the runnable examples of every formats module."""

from __future__ import annotations

import doctest
import importlib
import re

import pytest

import quantsearch.formats
from quantsearch.errors import ConfigError
from quantsearch.formats import FORMATS, format_from_dict, format_from_str, make_format


def test_registered_names_and_aliases() -> None:
    assert FORMATS.names() == ["block_fp", "fixed", "fp32", "log", "minifloat"]
    assert FORMATS.canonical("integer") == "fixed" and FORMATS.canonical("none") == "fp32"


def test_entries_carry_their_fields() -> None:
    fixed = FORMATS.get("integer").fields()
    assert [str(f) for f in fixed] == [
        "width: int", "frac_width: int", "signed: bool = True", "rounding: str = 'nearest'"
    ]  # fmt: skip
    assert [f.name for f in fixed if f.auto] == ["frac_width"]
    assert [f.name for f in FORMATS.get("log").fields() if f.required] == ["exponent_width"]
    for name, cls in FORMATS.items():  # the package's table lists every format and its fields
        doc = quantsearch.formats.__doc__ or ""
        assert f"``{name}``" in doc and all(f.name in doc for f in cls.fields()), name


def test_unknown_format_lists_the_registered_ones() -> None:
    with pytest.raises(
        ConfigError,
        match=r"^quantize\.default\.weight\.format: got 'fixd', allowed: one of \['block_fp', 'fixed', 'fp32', 'log', 'minifloat'\]$",
    ):
        make_format("fixd", {}, "quantize.default.weight")


def test_equal_fields_give_one_cached_object_but_bools_are_not_ints() -> None:
    a = make_format("fixed", {"width": 8, "frac_width": 4, "signed": True})
    assert make_format("fixed", {"signed": True, "frac_width": 4, "width": 8}) is a
    with pytest.raises(ConfigError, match=r"\.signed: got 1, allowed: true or false$"):
        make_format("fixed", {"width": 8, "frac_width": 4, "signed": 1})


@pytest.mark.parametrize(
    "fmt",
    [
        {"format": "fixed", "width": 8, "frac_width": 3, "signed": False, "rounding": "floor"},
        {"format": "minifloat", "exponent_width": 4, "mantissa_width": 3, "exponent_bias": 7, "subnormals": False},
        {"format": "log", "exponent_width": 3, "exponent_bias": 2},
        {"format": "block_fp", "mantissa_width": 6, "exponent_width": 8, "exponent_bias": 127, "block_size": 8, "block_dim": 1},
        {"format": "fp32"},
    ],
)  # fmt: skip
def test_to_dict_round_trips_and_formats_are_hashable(fmt: dict) -> None:
    built = format_from_dict(fmt)
    assert built.to_dict() == fmt
    assert hash(built) == hash(format_from_dict(dict(fmt)))


def test_format_from_str_reads_labels_and_rejects_other_text() -> None:
    assert format_from_str("ufixed(8,4)") == make_format(
        "fixed", {"width": 8, "frac_width": 4, "signed": False}
    )
    assert format_from_str("fp32") == make_format("none")
    for text in ("fixed(8,4,False)", "fixed(8, 4)", "minifloat(e4m3)", "fp16", "ufixed(8,4)x"):
        with pytest.raises(
            ConfigError,
            match=rf"^k: got {re.escape(repr(text))}, allowed: a format as str\(\) spells it",
        ):
            format_from_str(text, "k")
    with pytest.raises(
        ConfigError,
        match=r"^k: got 'fixed\(8,9\)', allowed: a format whose frac_width is an integer in \[0, width\] \(width = 8\)$",
    ):
        format_from_str("fixed(8,9)", "k")


def test_format_from_dict_needs_a_format() -> None:
    with pytest.raises(
        ConfigError,
        match=r"^k\.format: got no value, allowed: one of \['block_fp', 'fixed', 'fp32', 'log', 'minifloat'\]$",
    ):
        format_from_dict({"width": 8}, "k")


@pytest.mark.parametrize(
    "module",
    ["quantsearch.formats", "quantsearch.formats.registry", "quantsearch.formats.base", "quantsearch.formats.ste", "quantsearch.formats.fixed", "quantsearch.formats.minifloat",
     "quantsearch.formats.log", "quantsearch.formats.block_fp", "quantsearch.formats.float"],
)  # fmt: skip
def test_docstring_examples_run(module: str) -> None:
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0
