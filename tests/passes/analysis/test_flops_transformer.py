"""nn.Transformer (listed uncounted: a leaf to torch.fx with no rule) is its encoder stack on
src and its decoder stack on tgt against the encoder's output.

Referee: ``torch.utils.flop_counter.FlopCounterMode`` with torch's math attention (whose
batched matmuls it counts; the fused CPU kernel it counts as 0), autograd on (the no-grad fast
path is fused too): 2 FLOPs per MAC. The non-MAC FLOPs are the encoder's and decoder's rules,
each checked by hand in test_flops_ops.py and test_flops_select.py: their sum, checked here.
"""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from quantsearch.graph import info, trace
from quantsearch.passes.analysis import compute_cost


class Seq2Seq(nn.Module):
    def __init__(self, model: nn.Module, src: tuple[int, ...], masked: bool = False) -> None:
        super().__init__()
        self.model, self.masked = model, masked
        self.register_buffer("src", torch.randn(*src))

    def forward(self, tgt: torch.Tensor) -> torch.Tensor:
        if self.masked:
            mask = nn.Transformer.generate_square_subsequent_mask(tgt.shape[1])
            return self.model(self.src, tgt, tgt_mask=mask)
        return self.model(self.src, tgt)


def _cost(model: nn.Module, x: torch.Tensor, kind: str) -> tuple[int, int, int]:
    gm = trace(model.eval(), x)
    assert compute_cost(gm).uncounted == ()
    (c,) = [info(n).cost for n in gm.graph.nodes if info(n).op_kind == kind]
    return c["macs"], c["flops"], c["flops_backward"]


def _transformers() -> list[tuple[nn.Transformer, tuple[int, ...], tuple[int, ...], bool]]:
    torch.manual_seed(0)
    with warnings.catch_warnings():  # (S, N, E): torch's note that nested tensors need batch_first
        warnings.simplefilter("ignore", UserWarning)
        return [
            (
                nn.Transformer(8, 2, 1, 1, 16, dropout=0.0, batch_first=True),
                (2, 5, 8),
                (2, 3, 8),
                False,
            ),
            (
                nn.Transformer(8, 4, 2, 2, 16, 0.0, "gelu", batch_first=True),
                (3, 4, 8),
                (3, 6, 8),
                True,
            ),
            (nn.Transformer(8, 2, 1, 2, 16, dropout=0.0), (5, 2, 8), (4, 2, 8), False),
        ]


@pytest.mark.parametrize(("model", "src", "tgt", "masked"), _transformers())
def test_transformer_is_its_encoder_and_decoder(
    model: nn.Transformer, src: tuple[int, ...], tgt: tuple[int, ...], masked: bool
) -> None:
    net, x = Seq2Seq(model, src, masked).eval(), torch.randn(*tgt)
    macs, fwd, bwd = _cost(net, x, "transformer")
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as fcm:
        net(x)
    assert 2 * macs == fcm.get_total_flops()

    class Halves(nn.Module):  # the same two stacks, called one after the other
        def __init__(self) -> None:
            super().__init__()
            self.encoder, self.decoder = model.encoder, model.decoder

        def forward(self, t: torch.Tensor) -> torch.Tensor:
            mask = nn.Transformer.generate_square_subsequent_mask(t.shape[1]) if masked else None
            return self.decoder(t, self.encoder(net.src), tgt_mask=mask)

    gm = trace(Halves().eval(), x)
    assert compute_cost(gm).uncounted == ()
    stacks = [info(n).cost for n in gm.graph.nodes if info(n).op_kind.startswith("transformer")]
    assert len(stacks) == 2  # the mask's nodes (torch.full, triu) left out of the sum
    assert (macs, fwd, bwd) == tuple(
        sum(c[k] for c in stacks) for k in ("macs", "flops", "flops_backward")
    )
