"""Optuna's Parzen estimator of categorical parameters, in numpy, without its classes.

``TPESampler`` models the trials below and above with two ``_ParzenEstimator`` mixtures: one
kernel per observation and a prior, each kernel a product of one categorical distribution per
parameter. For a categorical parameter Optuna builds a ``(kernels, choices)`` table: every entry
``prior_weight / kernels``, plus 1 at the kernel's observed choice, each row divided by its sum;
at 1,000 trials and 8 parameters that is sixteen tables of 8,000 entries a proposal, and the
log-density takes the logarithm of a gather of them.

Every observed row of a parameter is one of ``choices`` distinct rows (the +1 at one of the
choices) and the prior's row is the one without it, so :func:`categorical_mixture` builds
those ``choices + 1`` rows with the same floating-point operations (the same fill, the same
``+= 1``, each row summed along its contiguous axis and divided), and keeps, per kernel, which
row it is. The logarithms, the cumulative sums of the draw and the kernel weights are those
rows' and weights' own, computed once per table shape: the same operations on the same values,
so the same bits. :meth:`CategoricalMixture.log_pdf` then adds the logarithms over the
parameters in Optuna's order into a ``(candidates, kernels)`` array laid out as Optuna's, and
takes Optuna's log-sum-exp over the kernels. Where a parameter's observed rows all have one
logarithm at their choice and one elsewhere (2, 8 or 16 choices; most other counts only at
some numbers of observations), a kernel's sum over the leading such parameters depends only
on which of them the candidate's choices hit: those sums are tabulated once per proposal, in
Optuna's order of additions, and looked up by a bit pattern computed 8 parameters to a 64-bit
word, instead of a gather and an addition of float64 arrays per parameter.
:meth:`CategoricalMixture.sample` makes Optuna's draws from the random state in the same
order. ``tests/search/strategies/test_tpe_parzen.py``
compares all of it with Optuna's ``_ParzenEstimator`` bit for bit; the lockstep tests of
``test_tpe.py`` compare whole proposals.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["CategoricalMixture", "categorical_mixture"]

Weights = Callable[[int], np.ndarray]


@functools.lru_cache(maxsize=16)
def _kernel_weights(n: int, prior_weight: float, weights: Weights) -> np.ndarray:
    """``_ParzenEstimator.__init__``'s kernel weights for ``n`` observations: the weights
    function's first ``n``, the prior's appended, divided by their sum (``[1.0]`` for none)."""
    w = np.array([1.0]) if n == 0 else np.append(np.array(weights(n))[:n], [prior_weight])
    w /= w.sum()
    w.flags.writeable = False
    return w


@functools.lru_cache(maxsize=16)
def _log_kernel_weights(n: int, prior_weight: float, weights: Weights) -> np.ndarray:
    out: np.ndarray = np.log(_kernel_weights(n, prior_weight, weights)[np.newaxis])
    out.flags.writeable = False
    return out


@functools.lru_cache(maxsize=16)
def _kernel_cdf(n: int, prior_weight: float, weights: Weights) -> np.ndarray:
    """``RandomState.choice``'s cumulative probabilities of the kernel weights."""
    cdf = _kernel_weights(n, prior_weight, weights).cumsum()
    cdf /= cdf[-1]
    cdf.flags.writeable = False
    return cdf


@functools.lru_cache(maxsize=64)
def _rows(n_choices: int, n: int, prior_weight: float) -> tuple[np.ndarray, np.ndarray]:
    """A parameter's distinct kernel rows for ``n`` observations and their logarithms: row
    ``c`` is an observation of choice ``c``, the last row the prior's (the one row, uniform,
    for no observation); ``_calculate_categorical_distributions``' operations, row by row."""
    if n == 0:
        prob = np.full((1, n_choices), fill_value=1.0 / n_choices)
    else:
        n_kernels = n + 1
        prob = np.full((n_choices + 1, n_choices), fill_value=prior_weight / n_kernels)
        diagonal = np.arange(n_choices)
        prob[diagonal, diagonal] += 1
        row_sums = prob.sum(axis=1, keepdims=True)
        prob /= np.where(row_sums == 0, 1, row_sums)
    log = np.log(prob)
    prob.flags.writeable = log.flags.writeable = False
    return prob, log


@functools.lru_cache(maxsize=16)
def _cumulative(choices: tuple[int, ...], n: int, prior_weight: float) -> np.ndarray:
    """``(parameters, rows, max choices)``: each distinct row's cumulative probabilities as
    ``_MixtureOfProductDistribution.sample`` takes them (the last choice's set to 1), padded
    with 1 (a uniform number in [0, 1) is never above it, so padding counts no choice)."""
    out = np.ones((len(choices), max(choices) + 1, max(choices)))
    for i, c in enumerate(choices):
        prob, _ = _rows(c, n, prior_weight)
        cumulative = np.cumsum(prob, axis=-1)
        cumulative[:, -1] = 1
        out[i, : len(prob), :c] = cumulative
    out.flags.writeable = False
    return out


_MAX_TABULATED = 12  # parameters whose hit patterns are tabulated: 4,096 sums at most


@functools.lru_cache(maxsize=64)
def _two_logs(n_choices: int, n: int, prior_weight: float) -> tuple[float, float, float] | None:
    """``(miss, hit, prior)``: a parameter's logarithm of every observed row away from its
    own choice, at it, and the prior row's, where each is one number (``None`` where not)."""
    _, log = _rows(n_choices, n, prior_weight)
    hit, prior = log[0, 0], log[n_choices, 0]
    miss = log[0, 1] if n_choices > 1 else hit  # one choice: never missed
    expected = np.full((n_choices + 1, n_choices), miss)
    np.fill_diagonal(expected, hit)  # the observed rows' diagonal
    expected[n_choices] = prior
    if not np.array_equal(log, expected):
        return None
    return float(miss), float(hit), float(prior)


@functools.lru_cache(maxsize=16)
def _hit_table(choices: tuple[int, ...], n: int, prior_weight: float) -> np.ndarray | None:
    """For ``n`` observations, the sums over the leading ``t`` parameters (up to
    ``_MAX_TABULATED``) that :func:`_two_logs` finds two-valued, each added as the
    log-density adds them, parameter by parameter from the first: entry ``m < 2**t`` adds the
    hit where bit ``i`` of ``m`` is set and the miss where not; entry ``2**t`` adds the prior
    row's. ``None`` when not even the first parameter is so, or without observations."""
    if n == 0:
        return None
    logs = []
    for c in choices[:_MAX_TABULATED]:
        two = _two_logs(c, n, prior_weight) if c <= 128 else None  # indices fit 7 bits
        if two is None:
            break
        logs.append(two)
    if not logs:
        return None
    table = np.empty(2 ** len(logs) + 1)
    table[0], table[1] = logs[0][0], logs[0][1]
    prior = logs[0][2]
    for i, (miss, hit, p) in enumerate(logs[1:], 1):
        half = 1 << i
        np.add(table[:half], hit, out=table[half : 2 * half])  # bit i set: the hit added
        table[:half] += miss
        prior += p
    table[-1] = prior
    table.flags.writeable = False
    return table


_BYTES_LOW7 = np.uint64(0x7F7F7F7F7F7F7F7F)
_BYTES_HIGH = np.uint64(0x8080808080808080)
_GATHER_HIGH = np.uint64(0x0002040810204081)  # byte i's top bit to bit 56 + i


def _hit_patterns(kernels: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """``(candidates, kernels)``: bit ``i`` set where parameter ``i``'s choice of the
    candidate is the kernel's (``kernels``: ``(parameters, kernels)``, ``candidates``:
    ``(candidates, parameters)``, choice indices under 128, at most 12 parameters). Eight
    parameters a 64-bit word, a byte each: the XOR of a kernel's word and a candidate's is
    zero in the bytes of equal choices; adding 0x7F to each byte sets its top bit unless it
    is zero (no byte carries over), and one multiplication gathers the eight top bits."""
    n_params, n_kernels = kernels.shape
    width = 8 * ((n_params + 7) // 8)
    k = np.ones((n_kernels, width), dtype=np.uint8)  # padding: 1 against 0, never equal
    k[:, :n_params] = kernels.T
    c = np.zeros((len(candidates), width), dtype=np.uint8)
    c[:, :n_params] = candidates
    k_words, c_words = k.view("<u8"), c.view("<u8")
    mask: np.ndarray | None = None
    for w in range(width // 8):
        x = np.bitwise_xor(k_words[np.newaxis, :, w], c_words[:, w, np.newaxis])
        x += _BYTES_LOW7
        x &= _BYTES_HIGH
        x ^= _BYTES_HIGH  # the top bit of each byte of equal choices
        x *= _GATHER_HIGH
        x >>= np.uint64(56)
        if mask is None:
            mask = x
        else:
            x <<= np.uint64(8 * w)
            mask |= x
    assert mask is not None
    if np.dtype(np.intp).itemsize != 8:
        return mask.astype(np.intp)
    return mask.view(np.intp)  # under 2**12: the index type take uses, not a converted copy


@dataclass(frozen=True)
class CategoricalMixture:
    """Optuna's ``_MixtureOfProductDistribution`` of categorical parameters, by distinct rows.

    Attributes:
        choices: each parameter's number of choices, in the search space's order.
        n: the observations (kernels less the prior).
        prior_weight: the prior's weight before normalisation.
        weights_of: the function of the observations' count that weighs them (Optuna's
            ``_ParzenEstimatorParameters.weights``).
        weights: the kernels' weights (the prior's last), summing to 1.
        log_weights: their logarithms, ``(1, kernels)``.
        kernel_rows: ``(parameters, kernels)``: the row of the parameter's distinct rows each
            kernel has (its observed choice; the prior's row for the prior).
    """

    choices: tuple[int, ...]
    n: int
    prior_weight: float
    weights_of: Weights
    weights: np.ndarray
    log_weights: np.ndarray
    kernel_rows: np.ndarray

    def table(self, i: int) -> np.ndarray:
        """Parameter ``i``'s ``(kernels, choices)`` probabilities, as Optuna builds them."""
        table: np.ndarray = self._rows(i)[0][self.kernel_rows[i]]
        return table

    def _rows(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        return _rows(self.choices[i], self.n, self.prior_weight)

    def log_pdf(self, x: np.ndarray) -> np.ndarray:
        """``_MixtureOfProductDistribution.log_pdf`` of ``(candidates, parameters)`` choice
        indices (floats): per candidate and kernel the sum, parameter by parameter in Optuna's
        order, of the logarithms of the kernels' probabilities of the candidate's choices
        (:meth:`_log_sums`), plus the log-weights, then the log-sum-exp over the kernels, on
        Optuna's ``(candidates, kernels)`` layout. Repeated candidates (drawn from the few
        kernels below) are computed once: each row is computed from its own operands only."""
        first: dict[tuple[int, ...], int] = {}
        inverse = [first.setdefault(tuple(r), len(first)) for r in x.astype(np.int64).tolist()]
        unique = np.array(list(first), dtype=np.int64).reshape(len(first), x.shape[1])
        out = self._log_sums(unique)
        out += self.log_weights
        top = out.max(axis=1)
        top[np.isneginf(top)] = 0  # an all-zero probability: -inf, not NaN from (-inf) - (-inf)
        out -= top[:, None]  # in place: Optuna's values, without two more large temporaries
        np.exp(out, out=out)
        with np.errstate(divide="ignore"):
            pdf = np.log(out.sum(axis=1)) + top
        result: np.ndarray = pdf[inverse]
        return result

    def _log_sums(self, unique: np.ndarray) -> np.ndarray:
        """``(candidates, kernels)``: Optuna starts from zeros and adds each parameter's
        gathered logarithms in turn (``0.0 + v`` is ``v``: no logarithm is ``-0.0``).

        Where each observed row of a parameter has one logarithm at its choice (hit) and one
        elsewhere (miss), as for 2, 8 or 16 choices (numpy's pairwise row sum adds the ``+1``
        alike wherever it sits; for most other counts its place changes the sum's last bit),
        an observed kernel's sum over the leading such parameters depends only on which of
        them the candidate hits: those sums are tabulated once per pattern, adding in the
        same order, and each (candidate, kernel) looks its pattern up (:func:`_hit_table`).
        The prior's kernel and the parameters after the first that is not so are added as
        Optuna does, gathered."""
        n = self.n
        table = _hit_table(self.choices, n, self.prior_weight)
        t = 0 if table is None else (table.size - 1).bit_length() - 1
        if t < 2:
            return self._gathered(unique, 0, None)
        assert table is not None
        mask = _hit_patterns(self.kernel_rows[:t], unique[:, :t])
        mask[:, n] = 2**t  # the prior's kernel
        return self._gathered(unique, t, np.take(table, mask))

    def _gathered(self, unique: np.ndarray, start: int, out: np.ndarray | None) -> np.ndarray:
        """Add parameters ``start`` on to ``out`` (``None``: start from the first), each
        kernel's row of logarithms gathered at the candidates' choices."""
        term: np.ndarray | None = None  # one buffer for every parameter's gather
        for i in range(start, len(self.choices)):
            log = self._rows(i)[1]
            if out is None:
                out = np.take(log.T[unique[:, i]], self.kernel_rows[i], axis=1)
                continue
            # every row index is valid: "clip" only spares the copy "raise" buffers out through
            term = np.take(log.T[unique[:, i]], self.kernel_rows[i], axis=1, out=term, mode="clip")
            np.add(out, term, out=out)
        assert out is not None
        return out

    def sample(self, rng: np.random.RandomState, size: int) -> np.ndarray:
        """``_MixtureOfProductDistribution.sample``: a kernel per candidate (as ``rng.choice``
        draws it), then per parameter ``size`` uniform numbers (here one ``rng.rand`` call for
        all the parameters: the same numbers in the same order), each compared with its
        kernel's cumulative probabilities. Optuna's check that they end at 1 is left out (rows are
        normalised where they are built). Returns ``(size, parameters)`` floats."""
        # rng.choice(len(weights), p=weights, size=size) with replacement: numpy's legacy
        # RandomState draws size uniform numbers and finds them in the normalised cumulative
        # weights (its checks of p only raise); the cumulative weights are kept per shape
        cdf = _kernel_cdf(self.n, self.prior_weight, self.weights_of)
        active = cdf.searchsorted(rng.random_sample(size), side="right")
        quantile = rng.rand(len(self.choices), size)
        cumulative = _cumulative(self.choices, self.n, self.prior_weight)
        params = np.arange(len(self.choices))[:, np.newaxis]
        below = cumulative[params, self.kernel_rows[:, active]] < quantile[:, :, np.newaxis]
        drawn: np.ndarray = np.sum(below, axis=-1).T.astype(float)
        return drawn


def categorical_mixture(
    observed: np.ndarray, choices: Sequence[int], prior_weight: float, weights: Weights
) -> CategoricalMixture:
    """The mixture ``_ParzenEstimator(observations, space, parameters)`` builds for a space of
    categorical parameters.

    Args:
        observed: ``(observations, parameters)`` choice indices (floats, Optuna's internal
            representation), in the order Optuna gives them (by trial number).
        choices: each parameter's number of choices.
        prior_weight: ``_ParzenEstimatorParameters.prior_weight``.
        weights: ``_ParzenEstimatorParameters.weights`` (the function of the observations'
            count); its values must be valid (Optuna raises on negative, all-zero or infinite
            ones: this does not check).

    Example:
        >>> from optuna.samplers._tpe.sampler import default_weights
        >>> m = categorical_mixture(np.array([[1.0], [1.0]]), [2], 1.0, default_weights)
        >>> m.weights.round(3).tolist(), m.table(0).round(3).tolist()
        ([0.333, 0.333, 0.333], [[0.2, 0.8], [0.2, 0.8], [0.5, 0.5]])
    """
    n, choices = len(observed), tuple(choices)
    kernel_rows = np.empty((len(choices), n + 1), dtype=np.int64)
    if n == 0:
        kernel_rows[:] = 0
    else:
        kernel_rows[:, :n] = observed.T.astype(int)
        kernel_rows[:, n] = choices
    return CategoricalMixture(
        choices=choices,
        n=n,
        prior_weight=prior_weight,
        weights_of=weights,
        weights=_kernel_weights(n, prior_weight, weights),
        log_weights=_log_kernel_weights(n, prior_weight, weights),
        kernel_rows=kernel_rows,
    )
