"""MASE's jet-substructure-classification (JSC) networks, with their exact layer stacks.

MASE ends every JSC network in a ReLU, so its logits are clipped at zero; we keep that for
fidelity (``jsc-tiny``, ``jsc-toy``, ``jsc-s``) and also offer ``jsc-s-logits`` without the
final ReLU, which trains better because negative logits are allowed.
"""

from __future__ import annotations

from torch import Tensor, nn

from quantsearch.models.registry import ModelSpec


class _JSC(nn.Module):
    """A ``seq_blocks`` Sequential, named as in MASE so layer names match its configs."""

    def __init__(self, *layers: nn.Module) -> None:
        super().__init__()
        self.seq_blocks = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.seq_blocks(x)
        return out


def _block(n_in: int, n_out: int) -> list[nn.Module]:
    return [nn.Linear(n_in, n_out), nn.BatchNorm1d(n_out), nn.ReLU()]


class JSCTiny(_JSC):
    def __init__(self) -> None:
        super().__init__(nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 5), nn.ReLU())


class JSCToy(_JSC):
    def __init__(self) -> None:
        super().__init__(
            nn.BatchNorm1d(16), nn.ReLU(), *_block(16, 8), *_block(8, 8), *_block(8, 5)
        )


class JSCS(_JSC):
    def __init__(self, final_relu: bool = True) -> None:
        layers = [nn.BatchNorm1d(16), nn.ReLU(), *_block(16, 64), *_block(64, 32), *_block(32, 32)]
        layers += _block(32, 5) if final_relu else [nn.Linear(32, 5), nn.BatchNorm1d(5)]
        super().__init__(*layers)


SPECS: tuple[ModelSpec, ...] = (
    ModelSpec("jsc-tiny", JSCTiny, (16,), 5, "jsc", "MASE JSC-Tiny: BN, ReLU, Linear(16,5), ReLU"),
    ModelSpec("jsc-toy", JSCToy, (16,), 5, "jsc", "MASE JSC-Toy: 16-8-8-5 with BN/ReLU"),
    ModelSpec("jsc-s", JSCS, (16,), 5, "jsc", "MASE JSC-S: 16-64-32-32-5 with BN/ReLU"),
    ModelSpec(
        "jsc-s-logits",
        lambda: JSCS(final_relu=False),
        (16,),
        5,
        "jsc",
        "JSC-S without MASE's final ReLU (trains better)",
    ),
)
