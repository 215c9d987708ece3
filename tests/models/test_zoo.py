"""The model zoo: exact layer stacks, parameter counts, and users' own models from a spec."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from quantsearch.data import DATASETS
from quantsearch.errors import ConfigError
from quantsearch.graph import trace
from quantsearch.models import MODELS, build_model, model_names


def _stack(model: nn.Module) -> list[tuple]:
    """Each layer of ``seq_blocks`` as (type, sizes...)."""
    out: list[tuple] = []
    for layer in model.seq_blocks:  # type: ignore[union-attr]
        if isinstance(layer, nn.Linear):
            out.append(("Linear", layer.in_features, layer.out_features))
        elif isinstance(layer, nn.BatchNorm1d):
            out.append(("BN", layer.num_features))
        elif isinstance(layer, nn.ReLU):
            out.append(("ReLU",))
        else:
            out.append((type(layer).__name__,))
    return out


BN, RELU = "BN", ("ReLU",)

# The stacks, verbatim from MASE's JSC networks.
EXPECTED = {
    "jsc-tiny": [(BN, 16), RELU, ("Linear", 16, 5), RELU],
    "jsc-toy": [
        *[(BN, 16), RELU, ("Linear", 16, 8), (BN, 8), RELU, ("Linear", 8, 8), (BN, 8), RELU],
        *[("Linear", 8, 5), (BN, 5), RELU],
    ],
    "jsc-s": [
        *[(BN, 16), RELU, ("Linear", 16, 64), (BN, 64), RELU, ("Linear", 64, 32), (BN, 32), RELU],
        *[("Linear", 32, 32), (BN, 32), RELU, ("Linear", 32, 5), (BN, 5), RELU],
    ],
    "mlp-digits": [
        *[("Linear", 64, 64), (BN, 64), RELU, ("Linear", 64, 32), (BN, 32), RELU],
        ("Linear", 32, 10),
    ],
}
EXPECTED["jsc-s-logits"] = EXPECTED["jsc-s"][:-1]  # the same net without MASE's final ReLU


def test_registry_lists_the_zoo() -> None:
    assert model_names() == sorted(
        ["cnn-digits", "jsc-s", "jsc-s-logits", "jsc-tiny", "jsc-toy", "mlp-digits"]
    )


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_exact_layer_stack(name: str) -> None:
    assert _stack(build_model(name)) == EXPECTED[name]


def _params(stack: list[tuple]) -> int:
    """Parameter count by hand: Linear(i, o) has i*o + o, BatchNorm(n) has 2n (affine)."""
    total = 0
    for layer in stack:
        if layer[0] == "Linear":
            total += layer[1] * layer[2] + layer[2]
        elif layer[0] == BN:
            total += 2 * layer[1]
    return total


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_parameter_count_matches_hand_count(name: str) -> None:
    model = build_model(name)
    assert sum(p.numel() for p in model.parameters()) == _params(EXPECTED[name])


def test_jsc_tiny_parameter_count_known_answer() -> None:
    # BN(16): 32, Linear(16, 5): 80 + 5
    assert sum(p.numel() for p in build_model("jsc-tiny").parameters()) == 117


def test_cnn_digits_layers_and_output() -> None:
    model = build_model("cnn-digits").eval()
    types = {type(m) for m in model.modules()}
    assert {nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.MaxPool2d, nn.Linear} <= types
    assert model(torch.randn(3, 1, 8, 8)).shape == (3, 10)


@pytest.mark.parametrize("name", MODELS.names())
def test_spec_describes_the_model(name: str) -> None:
    spec = MODELS.get(name)
    out = build_model(name).eval()(torch.randn(2, *spec.input_shape))
    assert out.shape == (2, spec.num_classes)
    assert spec.dataset in {"jsc", "digits"}


def test_unknown_name_lists_the_zoo() -> None:
    with pytest.raises(
        ConfigError, match=r"model\.name: got 'jsc-huge', allowed: one of \[.*'jsc-tiny'.*\]"
    ):
        build_model("jsc-huge")


USER_MODEL = """
import torch.nn as nn

def build():
    return nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))

def not_a_module():
    return 42

def broken():
    raise RuntimeError("no weights here")

VALUE = 3
"""


@pytest.fixture
def user_file(tmp_path: Path) -> Path:
    path = tmp_path / "my_model.py"
    path.write_text(USER_MODEL)
    return path


def test_user_model_from_a_relative_file(user_file: Path) -> None:
    model = build_model("my_model.py:build", base_dir=user_file.parent)
    assert model(torch.randn(5, 3)).shape == (5, 2)


def test_user_model_from_an_absolute_file(user_file: Path) -> None:
    assert isinstance(build_model(f"{user_file}:build"), nn.Sequential)


def test_user_model_from_a_module() -> None:
    # any importable module works; a zoo class is one
    model = build_model("quantsearch.models.jsc:JSCTiny")
    assert _stack(model) == EXPECTED["jsc-tiny"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("missing.py:build", r"model\.name: got .*, whose file 'missing\.py' does not exist"),
        (
            "my_model.py:nope",
            r"model\.name: got .*, but 'my_model\.py' has no attribute 'nope', allowed: one of the callables there: \[.*'build'.*\]",
        ),
        (
            "my_model.py:VALUE",
            r"model\.name: got 'my_model\.py:VALUE', an int, allowed: a callable",
        ),
        (
            "my_model.py:not_a_module",
            r"model\.name: got .*, which returned int, allowed",
        ),
        (
            "my_model.py:broken",
            r"model\.name: got .*, whose call failed \(RuntimeError: no weights here",
        ),
        (
            "no_such_pkg.mod:build",
            r"model\.name: got .*, whose module 'no_such_pkg\.mod' cannot be imported",
        ),
        (
            "my_model.py:",
            r"^model\.name: got 'my_model\.py:', allowed: 'file\.py:function' or 'module:function'$",
        ),
    ],
)
def test_bad_user_model_specs_name_the_key(user_file: Path, spec: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as exc:
        build_model(spec, base_dir=user_file.parent)
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize("name", model_names())
def test_contract(name: str) -> None:
    """Every registered model: traceable logits for its declared input, on a registered dataset."""
    spec = MODELS.get(name)
    assert spec.name == name and spec.description and spec.dataset in DATASETS
    model = build_model(name).eval()
    x = torch.randn(3, *spec.input_shape)
    assert model(x).shape == (3, spec.num_classes)
    assert torch.equal(trace(model, x)(x), model(x))
