"""Cost rules for elementwise math and activations beyond those of
:mod:`~quantsearch.passes.analysis.cost_rules_more` and
:mod:`~quantsearch.passes.analysis.cost_rules_ops`, in
:mod:`~quantsearch.passes.analysis.cost_rules`' convention (read it first): ``lerp``, ``logit``,
trigonometric and hyperbolic functions, other logarithm bases, special functions, tests
(``isnan`` ...), logical ops, ``bernoulli``, a real tensor's ``angle``, the binary ops
``atan2``, ``hypot``, ``fmod``, ``remainder``, ``logaddexp``, ``xlogy``, ``copysign`` and
``ldexp``, ``cross``, ``F.gumbel_softmax``, and the in-place forms of these and of other
modules' elementwise ops; the FFTs refused (their arithmetic is the algorithm's). Registered into
:data:`~quantsearch.passes.analysis.cost_rules.COST_RULES` on import (the package does).

As everywhere: per output element, a comparison, select, ``exp``, ``log``, ``sin`` or other
transcendental counts as one FLOP; a gradient that is ``dy`` itself costs nothing; an operand
broadcast to the output's N elements adds N - numel to sum its gradient back.

Cross-check: ``torch.utils.flop_counter.FlopCounterMode`` counts none of these (0, checked in
``tests/passes/analysis/test_flops_math.py``), so each is counted by hand there.
"""

from __future__ import annotations

from quantsearch.graph import TensorMeta
from quantsearch.passes.analysis import (
    cost_rules_more,  # noqa: F401  (registers pow, exp ..., named again in place below)
    cost_rules_ops,  # noqa: F401  (registers selu, celu ..., named again in place below)
)
from quantsearch.passes.analysis.cost_rules import COST_RULES, CostRule, OpArgs, OpCost

__all__: list[str] = []


def _elementwise(fwd: int, bwd: int) -> CostRule:
    def rule(a: OpArgs) -> OpCost:
        return OpCost(0, fwd * a.n_out, bwd * a.n_out)

    return rule


def _reduce(n: int, t: TensorMeta | None) -> int:
    """Adds to sum a broadcast gradient back to an operand's shape."""
    return n - t.numel if t is not None else 0


# Per output element (forward, backward):
_ELEMENTWISE = {
    # tan: 1; dx = dy (1 + y^2): square, add, multiply = 3.
    "tan": (1, 3),
    # sinh, cosh: 1; dx = dy cosh(x) (sinh(x)) = 2.
    "sinh": (1, 2),
    "cosh": (1, 2),
    # asin: 1; dx = dy / sqrt(1 - x^2): square, subtract, sqrt, divide = 4; acos: and negate = 5.
    "asin": (1, 4),
    "acos": (1, 5),
    # asinh, acosh: 1; dx = dy / sqrt(x^2 +- 1) = 4.  atanh: 1; dx = dy / (1 - x^2) = 3.
    "asinh": (1, 4),
    "acosh": (1, 4),
    "atanh": (1, 3),
    # log2, log10: 1; dx = dy / (x ln b): multiply, divide = 2.  exp2: 1; dx = dy y ln 2 = 2.
    "log2": (1, 2),
    "log10": (1, 2),
    "exp2": (1, 2),
    # frac: x - trunc(x) = 2; dx = dy, nothing computed.
    "frac": (2, 0),
    # deg2rad, rad2deg: 1 multiply; dx = dy times the constant = 1.
    "deg2rad": (1, 1),
    "rad2deg": (1, 1),
    # sgn: as sign, 1 and a zero gradient.  Tests (no gradient): signbit, isnan (x != x) 1;
    #   isinf (|x| == inf), isfinite (|x| < inf) 2; logical not, and, or, xor 1.
    "sgn": (1, 0),
    "signbit": (1, 0),
    "isnan": (1, 0),
    "isinf": (2, 0),
    "isfinite": (2, 0),
    **{k: (1, 0) for k in ("logical_not", "logical_and", "logical_or", "logical_xor")},
    # positive, and conj of a real tensor: the tensor itself, 0.
    "positive": (0, 0),
    "conj": (0, 0),
    # Special functions, 1 each as any transcendental: lgamma, digamma, i0 (Bessel): dx = dy
    #   times digamma (trigamma, i1) = 2.  erfinv: dx = dy sqrt(pi) / 2 exp(y^2): square,
    #   exp, 2 multiplies = 4.  ndtri: dx = dy sqrt(2 pi) exp(y^2 / 2) = 5.
    "lgamma": (1, 2),
    "digamma": (1, 2),
    "i0": (1, 2),
    "special_i0": (1, 2),
    "erfinv": (1, 4),
    "special_erfinv": (1, 4),
    "special_ndtri": (1, 5),
    # ndtr: (1 + erf(x / sqrt 2)) / 2: divide, erf, add, halve = 4; dx = dy phi(x): square,
    #   halve, negate, exp, times the constant, times dy = 6.  log_ndtr: and a log = 5;
    #   dx = dy phi(x) / Phi(x): phi 5, Phi recomputed 4, divide, times dy = 11.
    "special_ndtr": (4, 6),
    "special_log_ndtr": (5, 11),
    # entr: -x log x (0 at 0, -inf below): log, multiply, negate, 2 selects = 5;
    #   dx = -dy (log x + 1): log, add, negate, multiply = 4.
    "special_entr": (5, 4),
    # erfcx: exp(x^2) erfc(x): square, exp, erfc, multiply = 4; dx = dy (2 x y - 2 / sqrt pi):
    #   2 multiplies, subtract, times dy = 4.
    "special_erfcx": (4, 4),
    # sinc: sin(pi x) / (pi x), 1 at 0: multiply, sin, divide, select = 4; dx = dy (cos(pi x)
    #   - y) / x: multiply, cos, subtract, divide, select, times dy = 6.
    "sinc": (4, 6),
    "special_sinc": (4, 6),
    # heaviside(x, v): x == 0 ? v : x > 0 = 2 comparisons, select = 3; no gradient.
    # isclose: |a - b| <= atol + rtol |b|: subtract, 2 abs, multiply, add, compare = 6; none.
    "heaviside": (3, 0),
    "isclose": (6, 0),
    # bernoulli(p): a uniform draw (not arithmetic on data) compared with p = 1; no gradient.
    "bernoulli": (1, 0),
}
for _k, (_f, _b) in _ELEMENTWISE.items():
    COST_RULES.add(_k, _elementwise(_f, _b))
COST_RULES.add("special_expit", COST_RULES.get("sigmoid"))  # torch.special's sigmoid


def _lerp(a: OpArgs) -> OpCost:
    # start + w (end - start): subtract, multiply, add = 3 N. bwd: a scalar w: d(start) =
    # dy (1 - w), 1 - w once: 1 N; d(end) = dy w: 1 N. A tensor w: 1 - w, times dy (2 N),
    # dy w (1 N), d(w) = dy (end - start): subtract, multiply (2 N). Each operand broadcast
    # to the output sums its gradient back.
    n = a.n_out
    start, end, w = a.tensor_arg(0, "input"), a.tensor_arg(1, "end"), a.tensor_arg(2, "weight")
    bwd = 2 * n if w is None else 5 * n
    return OpCost(0, 3 * n, bwd + sum(_reduce(n, t) for t in (start, end, w)))


COST_RULES.add("lerp", _lerp, aliases=("lerp_",))


def _logit(a: OpArgs) -> OpCost:
    # log(x / (1 - x)): subtract, divide, log = 3 N; eps given: clamp to [eps, 1 - eps] first,
    # 2 comparisons. bwd: dy / (x (1 - x)): subtract, multiply, divide = 3 N; eps given: dy
    # masked outside the clamp, 2 comparisons.
    eps = 2 * (a.arg(1, "eps") is not None)
    return OpCost(0, (3 + eps) * a.n_out, (3 + eps) * a.n_out)


COST_RULES.add("logit", _logit, aliases=("special_logit", "logit_"))


def _graded(t: TensorMeta) -> bool:
    """Whether a tensor of this dtype can have a gradient (an integer or bool one cannot)."""
    return t.dtype.startswith(("float", "bfloat", "complex"))


def _binary(fwd: int, d_first: int, d_second: int) -> CostRule:
    """A binary op of ``fwd`` FLOPs per output; backward ``d_first`` per output for its first
    operand's gradient and ``d_second`` for its second's, each when that operand is a
    floating-point tensor, plus the adds summing it back to a broadcast operand's shape."""

    def rule(a: OpArgs) -> OpCost:
        n = a.n_out
        ops = [a.tensor_arg(0, "input"), a.tensor_arg(1, "other")]
        pairs = zip((d_first, d_second), ops, strict=True)
        bwd = sum(d * n + _reduce(n, t) for d, t in pairs if t is not None and _graded(t))
        return OpCost(0, fwd * n, bwd)

    return rule


_BINARY = {
    # atan2(y, x): 1; r = x^2 + y^2 3, then dy x / r (2) for y and -dy y / r (3) for x: each
    #   operand's gradient recomputes r: 5 and 6.
    "atan2": (1, 5, 6),
    # hypot: sqrt(x^2 + y^2) = 4; d(x) = dy x / h: divide, multiply = 2; d(y) the same.
    "hypot": (4, 2, 2),
    # fmod, remainder (x % y): divide, round, multiply, subtract = 4; d(x) = dy (0);
    #   d(y) = -dy round(x / y): divide, round, multiply, negate = 4.
    "fmod": (4, 0, 4),
    "remainder": (4, 0, 4),
    "mod": (4, 0, 4),
    # logaddexp(a, b) = max + log(1 + exp(-|a - b|)): subtract, abs, negate, exp, add, log,
    #   max, add = 8; d(a) = dy sigmoid(a - b): subtract, sigmoid 4, multiply = 6; d(b) =
    #   dy - d(a) = 1. logaddexp2: the same in base 2, and its ln 2 factors (+1, +1).
    "logaddexp": (8, 6, 1),
    "logaddexp2": (9, 7, 1),
    # xlogy(x, y) = x log(y) (0 where x = 0): compare, log, multiply, select = 4;
    #   d(x) = dy log(y) 2; d(y) = dy x / y 2.
    "xlogy": (4, 2, 2),
    "special_xlogy": (4, 2, 2),
    # copysign(x, y): |x| with y's sign: abs, sign test, select = 3; d(x) = dy times the sign
    #   agreement: compare, multiply = 2; d(y) = 0.
    "copysign": (3, 2, 0),
    # ldexp(x, e) = x 2^e: exp2, multiply = 2; d(x) = dy 2^e 2; d(e) = dy y ln 2 2 (an integer
    #   e, the usual one, has none).  nextafter: 1, no gradient.
    "ldexp": (2, 2, 2),
    "nextafter": (1, 0, 0),
}
for _k, (_f, _d1, _d2) in _BINARY.items():
    COST_RULES.add(_k, _binary(_f, _d1, _d2))
# torch's other names of ops with rules: true_divide is div; float_power is pow in double;
# fix is trunc; floor_divide is x // y.
COST_RULES.add("true_divide", COST_RULES.get("div"))
COST_RULES.add("float_power", COST_RULES.get("pow"))
COST_RULES.add("fix", COST_RULES.get("trunc"))
COST_RULES.add("floor_divide", COST_RULES.get("floordiv"))
# rsub(x, y) = y - x: 1; d(x) = -dy (1, x the subtrahend), d(y) = dy (0).
COST_RULES.add("rsub", _binary(1, 1, 0))


def _angle(a: OpArgs) -> OpCost:
    # angle of a real tensor: x < 0 ? pi : 0, 1 select; its gradient is zero. A complex
    # tensor's (atan2 of its parts) is not in this formula: uncounted.
    if not a.first_input().dtype.startswith(("float", "bfloat", "int", "uint", "bool")):
        raise ValueError("counted for real tensors")
    return OpCost(0, a.n_out, 0)


COST_RULES.add("angle", _angle)


def _cross(a: OpArgs) -> OpCost:
    # u x v along a dim of 3: each output two products and a difference = 3 N; bwd: du =
    # v x dy and dv = dy x u, 3 N each = 6 N, + the broadcast sums.
    n = a.n_out
    ops = (a.tensor_arg(0, "input"), a.tensor_arg(1, "other"))
    return OpCost(0, 3 * n, 6 * n + sum(_reduce(n, t) for t in ops))


COST_RULES.add("cross", _cross, aliases=("linalg_cross",))


def _gumbel_softmax(a: OpArgs) -> OpCost:
    # softmax((logits + g) / tau), g = -log(-log(U)): log, negate, log, negate, add, divide
    # and softmax's 5 = 11 N (drawing U is not arithmetic on data); hard=True adds the argmax
    # (N - R comparisons, R = N / D rows), the one-hot (free) and y_hard - y_soft + y_soft
    # (2 N). bwd: softmax's 4 and the divide by tau = 5 N (hard passes dy straight through).
    n, x = a.n_out, a.first_input()
    hard = bool(a.arg(2, "hard", False))
    rows = n // (x.shape[a.arg(4, "dim", -1)] if x.shape else 1)
    return OpCost(0, 11 * n + hard * (3 * n - rows), 5 * n)


COST_RULES.add("gumbel_softmax", _gumbel_softmax)


def _fft(a: OpArgs) -> OpCost:
    # The discrete Fourier transforms: their arithmetic is the FFT algorithm's (radix, real
    # input, sizes with large prime factors, the library torch calls): no count holds for
    # every size and build, so they stay listed uncounted, saying why.
    raise ValueError("an FFT's arithmetic depends on its algorithm and size: no single count")


for _k in ("fft", "ifft", "rfft", "irfft", "fft2", "ifft2", "rfft2", "irfft2", "fftn", "ifftn",
           "rfftn", "irfftn", "hfft", "ihfft"):  # fmt: skip
    COST_RULES.add(f"fft_{_k}", _fft)
COST_RULES.add("stft", _fft, aliases=("istft",))

# In place: the arithmetic of the op it names, on the same elements.
for _k in (
    "exp", "abs", "neg", "sqrt", "clamp", "elu", "log", "sin", "cos", "pow", "reciprocal",
    "rsqrt", "square", "floor", "ceil", "round", "trunc", "sign", "erf", "rrelu", "hardshrink",
    "tan", "atan2", "fmod", "remainder", "hypot", "xlogy", "copysign", "frac", "exp2",
    "deg2rad", "rad2deg", "log2", "log10", "log1p", "expm1", "silu", "hardswish",
    "hardsigmoid", "gelu", "selu", "celu", "mish", "nan_to_num", "ldexp", "lgamma", "digamma",
    "masked_fill", "clip", "addmm", "baddbmm",
):  # fmt: skip
    if f"{_k}_" not in COST_RULES:
        COST_RULES.add(f"{_k}_", COST_RULES.get(_k))
