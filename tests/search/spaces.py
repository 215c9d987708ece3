"""Search spaces shared by the search, compare and report tests (fixtures: tests/conftest.py)."""

from __future__ import annotations

LAB_SPACE = {
    "by": "type",
    "choices": {
        "linear": {
            "data_in": [[16, 8], [8, 6], [8, 4], [4, 2]],
            "weight": [[16, 8], [8, 6], [8, 4], [4, 2]],
            "bias": "same_as_weight",
        }
    },
}
