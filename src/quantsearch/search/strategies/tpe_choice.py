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
and the caller computes Optuna's log-densities exactly. The log-density of the mixture below is
Optuna's own, bit for bit. ``tests/search/strategies/test_tpe_choice.py`` checks the closed form
against Optuna's ``_ParzenEstimator`` and whole proposals against ``TPESampler(seed)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

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
    width = 8 * ((p + 7) // 8)
    out = np.full((n, width), pad, dtype=np.uint8)
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


def _closed_form(
    patterns: list[np.ndarray],
    columns: slice,
    choices: np.ndarray,
    prior_weight: float,
    weights: np.ndarray,
) -> np.ndarray | None:
    """The mixture's log-density at each candidate (module doc), its kernels' patterns in
    ``columns``; ``weights``: its observed kernels' (unnormalised)."""
    n, t = len(weights), len(choices)
    a = prior_weight / (n + 1)
    log_q = float(np.log(a) - np.log1p(a))  # a miss's factor, relative to a hit
    base = float(np.sum(np.log1p(a) - np.log1p(choices * a)))  # every choice hit
    if not (np.isfinite(base) and t * log_q > -700):
        return None
    factors: np.ndarray | None = None
    for w, pattern in enumerate(patterns):
        pad = max(0, 8 * (w + 1) - t)  # padding bytes always differ
        part = np.exp((_POPCOUNT - pad) * log_q).take(pattern[:, columns])
        factors = part if factors is None else np.multiply(factors, part, out=factors)
    assert factors is not None
    total = factors @ weights
    total += prior_weight * float(np.exp(-np.sum(np.log(choices)) - base))  # the uniform kernel
    with np.errstate(divide="ignore"):
        out: np.ndarray = np.log(total) + (base - np.log(weights.sum() + prior_weight))
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
        candidates: ``(candidates, parameters)`` choice indices (integers).

    Example:
        >>> from optuna.samplers._tpe.sampler import default_weights
        >>> obs = np.array([[0.0, 1.0], [0.0, 0.0]])
        >>> [v.round(6) for v in log_pdfs([obs], [2, 2], 1.0, default_weights, np.array([[0, 1]]))]
        [array([-1.049822])]

        (Optuna's ``_ParzenEstimator`` gives ``-1.04982212`` for the same.)
    """
    if min(len(o) for o in observed) == 0 or not prior_weight > 0 or max(choices) > 127:
        return None
    patterns = _patterns(np.concatenate(observed).astype(np.uint8), candidates.astype(np.uint8))
    c = np.asarray(choices, dtype=float)
    out, start = [], 0
    for o in observed:
        w = np.asarray(weights(len(o)), dtype=float)[: len(o)]
        got = _closed_form(patterns, slice(start, start + len(o)), c, prior_weight, w)
        if got is None:
            return None
        out.append(got)
        start += len(o)
    return out


def clear_choice(
    samples: np.ndarray,
    choices: Sequence[int],
    observed_below: np.ndarray,
    observed_above: np.ndarray,
    prior_weight: float,
    weights: Callable[[int], np.ndarray],
) -> np.ndarray | None:
    """The candidate (a row of ``samples``) ``TPESampler`` chooses, where it leads every other
    distinct candidate by more than :data:`MARGIN`; ``None`` where it does not (the caller then
    computes Optuna's acquisition exactly). One distinct candidate is the choice whatever the
    values. ``observed_below``, ``observed_above``: the two mixtures' observations."""
    first: dict[tuple[int, ...], int] = {}
    for row in samples.astype(np.int64).tolist():
        first.setdefault(tuple(row), len(first))
    unique = np.array(list(first), dtype=np.int64).reshape(len(first), samples.shape[1])
    if len(unique) == 1:
        one: np.ndarray = unique[0].astype(float)
        return one
    got = log_pdfs([observed_below, observed_above], choices, prior_weight, weights, unique)
    if got is None:
        return None
    lb, la = got
    acquisition = lb - la
    if not np.all(np.isfinite(acquisition)):
        return None
    top, second = np.partition(acquisition, -2)[-2:][::-1]
    scale = max(1.0, float(np.max(np.abs(lb))), float(np.max(np.abs(la))))
    if top - second <= MARGIN * scale:
        return None
    best: np.ndarray = unique[int(np.argmax(acquisition))].astype(float)
    return best
