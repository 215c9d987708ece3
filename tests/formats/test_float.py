"""``fp32`` (alias ``none``): the identity."""

from __future__ import annotations

import torch

from quantsearch.formats import Float32, make_format

# Run through the contract of every format (tests/formats/test_contract.py).
EXAMPLES = [Float32()]


def test_fp32_is_the_identity() -> None:
    x = torch.randn(5)
    fmt = make_format("none", {})
    assert (
        fmt == Float32() and fmt.is_identity and fmt.quantize(x) is x and fmt.bits_per_element == 32
    )
