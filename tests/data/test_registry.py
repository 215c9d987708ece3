"""The contract every registered dataset loader keeps: the keywords ``load_dataset`` passes."""

from __future__ import annotations

import inspect

import pytest

from quantsearch.data import DATASETS


@pytest.mark.parametrize("name", DATASETS.names())
def test_loader_takes_options_seed_and_base_dir_by_keyword(name: str) -> None:
    params = inspect.signature(DATASETS.get(name)).parameters
    for keyword in ("options", "seed", "base_dir"):
        assert params[keyword].kind is inspect.Parameter.KEYWORD_ONLY
