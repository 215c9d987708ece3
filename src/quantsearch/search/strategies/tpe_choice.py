"""TPE's choice among its candidates, from a closed form of the mixture above where it is clear.

``TPESampler`` proposes the candidate of the largest ``log l(x) - log g(x)``: ``l`` the Parzen
mixture of the trials below (a few dozen kernels), ``g`` that of the trials above (every other
finished trial). Optuna computes ``log g`` of each candidate under each kernel above, a
log-sum-exp over ``(candidates, kernels)``: at 1,000 trials most of a proposal's arithmetic
(:mod:`~quantsearch.search.strategies.tpe_parzen` repeats it bit for bit).

For categorical parameters ``g`` has a closed form. With ``n`` observations and prior weight
``p``, every entry of a kernel's table is ``a = p / (n + 1)`` but ``a + 1`` at its observed
choice, each row divided by its sum: a kernel's probability of a candidate is
``exp(M) * q ** misses``, where ``M`` is the sum over the parameters of ``log(a / (c a + 1))``
(``c`` choices), ``q = a / (a + 1)`` (the same for every parameter) and ``misses`` the
parameters where the candidate's choice is not the kernel's; the prior's kernel is uniform.
So ``g(x) = (sum_k w_k exp(M + (t - hits_k) log q) + w_prior prod 1/c) / sum w``, one count of
equal choices per candidate and kernel (eight parameters a 64-bit word), a table look-up and a
matrix-vector product, instead of Optuna's per-kernel sums, exponentials and log-sum-exp.

The two are the same function in exact arithmetic, not in floating point (the closed form's
rounding differs from Optuna's within about ``(kernels + parameters) * 2**-52`` relative).
:func:`clear_choice` therefore answers only when the best distinct candidate leads every other
by more than :data:`MARGIN` (relative), far above both roundings: then Optuna's argmax, over
its own values, is that candidate too. Within the margin (exact ties between distinct points,
which equal kernel weights make common in the first trials, or near ties) it answers ``None``
and the caller computes Optuna's log-densities exactly. Both mixtures, below and above, go
through the closed form here; the mixture below that Optuna builds is used only to draw the
candidates. ``tests/search/strategies/test_tpe_choice.py`` checks the closed form
against Optuna's ``_ParzenEstimator`` and whole proposals against ``TPESampler(seed)``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence

import numpy as np

from quantsearch.search import optuna_compat_tpe

__all__ = ["MARGIN", "clear_choice", "log_pdfs"]

# The lead (relative to the values' size) past which the closed form's choice is Optuna's:
# both roundings are about 1e-13 at 1,000 kernels, under 1e-10 below 10**6 kernels.
MARGIN = 1e-8

_BYTES_LOW7 = np.uint64(0x7F7F7F7F7F7F7F7F)
_BYTES_HIGH = np.uint64(0x8080808080808080)
_GATHER_HIGH = np.uint64(0x0002040810204081)  # byte i's top bit to bit 56 + i
_SHIFT = np.uint64(56)


def _words(rows: np.ndarray, pad: int) -> np.ndarray:
    """``(rows, words)`` uint64: each row's choices a byte each, eight to a word, padded with
    ``pad`` (1 for kernels, 0 for candidates: padding never counts as equal)."""
    n, p = rows.shape
    if p % 8 == 0:
        return rows.astype(np.uint8).view("<u8")
    out = np.full((n, p + 8 - p % 8), pad, dtype=np.uint8)
    out[:, :p] = rows
    return out.view("<u8")


def _patterns(kernels: np.ndarray, candidates: np.ndarray) -> list[np.ndarray]:
    """Per word of eight parameters, ``(candidates, kernels)`` intp patterns: bit ``i`` set
    where the word's parameter ``i`` differs. A byte of the XOR of two words is zero where the
    choices are equal; adding 0x7F to each byte sets its top bit unless it is zero (no byte
    carries over: choices are under 128); one multiplication gathers the eight top bits."""
    k, c = _words(kernels, 1), _words(candidates, 0)
    out = []
    for w in range(k.shape[1]):
        x = np.bitwise_xor(k[np.newaxis, :, w], c[:, w, np.newaxis])
        x += _BYTES_LOW7
        x &= _BYTES_HIGH  # set: the top bits of the bytes that differ
        x *= _GATHER_HIGH
        x >>= _SHIFT
        out.append(x.view(np.intp) if np.dtype(np.intp).itemsize == 8 else x.astype(np.intp))
    return out


_POPCOUNT = np.array([bin(m).count("1") for m in range(256)], dtype=float)


def _kernel_weights(n: int, weights: Callable[[int], np.ndarray]) -> np.ndarray:
    """The first ``n`` of ``weights(n)``; Optuna's ``default_weights`` (a ramp from ``1/n`` to
    1 over all but the last 25, which are 1) by its formula in three operations instead of
    ``np.linspace``'s twenty: equal within rounding, which is all the closed form needs."""
    if weights is not optuna_compat_tpe.tpe_default_weights():
        return np.asarray(weights(n), dtype=float)[:n]
    w = np.ones(n)
    if n > 25:  # (the trials below are at most 25: all 1)
        ramp = w[: n - 25]
        ramp[:] = np.arange(n - 25)
        ramp *= (1.0 - 1.0 / n) / max(1, n - 26)
        ramp += 1.0 / n
    return w


@functools.lru_cache(maxsize=16)
def _miss_table(pad: int, log_q: float) -> np.ndarray:
    """``q ** misses`` by pattern of a word with ``pad`` padding bytes (they always differ);
    kept for the mixture below, whose count of kernels rarely changes."""
    table: np.ndarray = np.exp((_POPCOUNT - pad) * log_q)
    table.flags.writeable = False
    return table


def _closed_form(
    patterns: list[np.ndarray],
    columns: slice,
    choices: Sequence[int],
    prior_weight: float,
    weights: np.ndarray,
) -> np.ndarray | None:
    """The mixture's log-density at each candidate (module doc), its kernels' patterns in
    ``columns``; ``weights``: its observed kernels' (unnormalised). Scalars in Python floats:
    a proposal runs right after a trial's evaluation, when each numpy call costs most."""
    n, t = len(weights), len(choices)
    a = prior_weight / (n + 1)
    log_q = math.log(a) - math.log1p(a)  # a miss's factor, relative to a hit
    base = math.fsum(math.log1p(a) - math.log1p(c * a) for c in choices)  # every choice hit
    if not (math.isfinite(base) and t * log_q > -700):
        return None
    factors: np.ndarray | None = None
    for w, pattern in enumerate(patterns):
        pad = max(0, 8 * (w + 1) - t)  # padding bytes always differ
        part = _miss_table(pad, log_q).take(pattern[:, columns])
        factors = part if factors is None else np.multiply(factors, part, out=factors)
    assert factors is not None
    total = factors @ weights
    uniform = -math.fsum(math.log(c) for c in choices)
    total += prior_weight * math.exp(uniform - base)  # the prior's kernel: positive, no log(0)
    out: np.ndarray = np.log(total)
    out += base - math.log(float(weights.sum()) + prior_weight)
    return out


def log_pdfs(
    observed: Sequence[np.ndarray],
    choices: Sequence[int],
    prior_weight: float,
    weights: Callable[[int], np.ndarray],
    candidates: np.ndarray,
) -> list[np.ndarray] | None:
    """The log-density of Optuna's categorical Parzen mixture of each of ``observed`` at
    ``candidates``, by the closed form of the module doc (Optuna's values within rounding);
    ``None`` where it does not serve: a mixture without observations, a prior weight of 0, a
    choice index of 128 or more, or exponents out of float range.

    Args:
        observed: per mixture, ``(observations, parameters)`` choice indices (floats), as
            Optuna gets them.
        choices: each parameter's number of choices.
        prior_weight: ``_ParzenEstimatorParameters.prior_weight``.
        weights: the kernel weights function (``_ParzenEstimatorParameters.weights``).
        candidates: ``(candidates, parameters)`` choice indices.

    Example:
        >>> from optuna.samplers._tpe.sampler import default_weights
        >>> obs = np.array([[0.0, 1.0], [0.0, 0.0]])
        >>> [v.round(6) for v in log_pdfs([obs], [2, 2], 1.0, default_weights, np.array([[0, 1]]))]
        [array([-1.049822])]

        (Optuna's ``_ParzenEstimator`` gives ``-1.04982212`` for the same.)
    """
    sizes = [len(o) for o in observed]
    if min(sizes) == 0 or not prior_weight > 0 or max(choices) > 127:
        return None
    patterns = _patterns(np.concatenate(observed), candidates)
    out, start = [], 0
    for n in sizes:
        w = _kernel_weights(n, weights)
        got = _closed_form(patterns, slice(start, start + n), choices, prior_weight, w)
        if got is None:
            return None
        out.append(got)
        start += n
    return out


def clear_choice(
    samples: np.ndarray,
    choices: Sequence[int],
    observed_below: np.ndarray,
    observed_above: np.ndarray,
    prior_weight: float,
    weights: Callable[[int], np.ndarray],
) -> list[float] | None:
    """The candidate (a row of ``samples``, as floats) ``TPESampler`` chooses, where it leads
    every other distinct candidate by more than :data:`MARGIN`; ``None`` where it does not
    (the caller then computes Optuna's acquisition exactly). One distinct candidate is the
    choice whatever the values. ``observed_below``, ``observed_above``: the two mixtures'
    observations."""
    unique = list(dict.fromkeys(map(tuple, samples.tolist())))  # first occurrences, in order
    if len(unique) == 1:
        return list(unique[0])
    got = log_pdfs(
        [observed_below, observed_above], choices, prior_weight, weights, np.array(unique)
    )
    if got is None:
        return None
    lb, la = got[0].tolist(), got[1].tolist()
    acquisition = [b - a for b, a in zip(lb, la, strict=True)]
    if not all(map(math.isfinite, acquisition)):
        return None
    order = sorted(range(len(unique)), key=acquisition.__getitem__, reverse=True)
    scale = max(1.0, *map(abs, lb), *map(abs, la))
    if acquisition[order[0]] - acquisition[order[1]] <= MARGIN * scale:
        return None
    return list(unique[order[0]])
