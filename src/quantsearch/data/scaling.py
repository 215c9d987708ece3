"""scikit-learn's ``StandardScaler`` (fit once, then transform), in numpy alone.

Importing scikit-learn takes about as long as importing torch. :func:`fit_standard` and
:func:`apply_standard` follow scikit-learn 1.9's arithmetic operation for operation
(``StandardScaler.partial_fit`` on a first call: ``sklearn/utils/extmath.py``,
``_incremental_mean_and_var``, with float64 accumulators and NaNs ignored;
``sklearn/preprocessing/_data.py``, ``_is_constant_feature`` and ``_handle_zeros_in_scale``;
``transform``: subtract, then divide, in the data's own dtype), so the scaled arrays are the
same bits: ``tests/data/test_scaling.py`` checks them against ``StandardScaler`` in float32 and
float64, with NaNs and constant columns.

Example:
    >>> x = np.array([[1.0, 5.0], [3.0, 5.0]])
    >>> apply_standard(x, fit_standard(x)).tolist()
    [[-1.0, 0.0], [1.0, 0.0]]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Standardization", "apply_standard", "fit_standard"]


@dataclass(frozen=True)
class Standardization:
    """Per-feature ``mean`` and ``scale`` (float64): ``(x - mean) / scale``."""

    mean: np.ndarray
    scale: np.ndarray


def fit_standard(x: np.ndarray) -> Standardization:
    """The mean and standard deviation of each column of ``x`` (samples x features), NaNs left
    out; a (near) constant column gets scale 1.

    Raises:
        ValueError: ``x`` holds an infinite value (scikit-learn refuses them too).
    """
    if np.isinf(x).any():
        raise ValueError("the features hold an infinite value")
    acc = np.float64 if x.dtype.itemsize < 8 else None  # float64 accumulators
    nan = np.isnan(x)
    skip_nan = bool(nan.any())
    count = x.shape[0] - _sum(nan.astype(x.dtype), skip_nan, acc)
    new_sum = _sum(x, skip_nan, acc)
    zero = np.zeros(x.shape[1])  # the statistics of no samples yet, as a first partial_fit
    mean = (zero + new_sum) / count
    centred = x - new_sum / count
    correction = _sum(centred, skip_nan)
    centred **= 2
    variance = (_sum(centred, skip_nan) - correction**2 / count) / count
    n_seen = count[0] if count.max() == count.min() else count
    eps = np.finfo(np.float64).eps
    constant = variance <= n_seen * eps * variance + (n_seen * mean * eps) ** 2
    scale = np.sqrt(variance)
    scale[constant] = 1.0
    return Standardization(mean, scale)


def _sum(a: np.ndarray, skip_nan: bool, dtype: type[np.float64] | None = None) -> np.ndarray:
    """Column sums (``np.nansum`` when NaNs are to be skipped), as scikit-learn takes them."""
    return np.asarray((np.nansum if skip_nan else np.sum)(a, axis=0, dtype=dtype))


def apply_standard(x: np.ndarray, fitted: Standardization) -> np.ndarray:
    """``(x - mean) / scale`` as a new array of ``x``'s dtype, computed in that dtype."""
    out = np.array(x, copy=True)
    out -= fitted.mean.astype(x.dtype)
    out /= fitted.scale.astype(x.dtype)
    return out
