"""The numpy standardisation against the referee, scikit-learn's ``StandardScaler``: the same
bits in float64 and float32, with NaNs, constant and near-constant columns, large offsets."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.preprocessing import StandardScaler

from quantsearch.data.scaling import apply_standard, fit_standard


def _columns(rng: np.random.Generator, n: int, dtype: type) -> np.ndarray:
    x = rng.normal(size=(n, 8)) * 10.0 ** rng.integers(-6, 7, 8) + rng.normal(size=8) * 1e4
    x[:, 1] = 3.3  # constant
    x[:, 2] = 1e9 + rng.integers(0, 2, n) * 1e-7  # near constant, large offset
    x[:, 3] = np.round(x[:, 3])  # ties
    x[:, 4] = 0.0
    x[: n // 2, 4] = -0.0
    return x.astype(dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", range(25))
def test_matches_standard_scaler_bit_for_bit(dtype: type, case: int) -> None:
    rng = np.random.default_rng(case)
    n = int(rng.integers(1, 3000))
    x = _columns(rng, n, dtype)
    if case % 3 == 0:
        x[rng.random(x.shape) < 0.05] = np.nan  # NaNs are left out of the statistics
    if case % 4 == 0:
        x[:, 5] = np.nan  # an all-NaN column
    other = _columns(rng, 50, dtype)
    with np.errstate(invalid="ignore", divide="ignore"):
        scaler = StandardScaler().fit(x)
        fitted = fit_standard(x)
        for data in (x, other):
            ref, got = scaler.transform(data), apply_standard(data, fitted)
            assert ref.dtype == got.dtype
            assert ref.tobytes() == got.tobytes()


def test_infinite_values_are_refused_as_sklearn_refuses_them() -> None:
    x = np.array([[1.0], [np.inf]])
    with pytest.raises(ValueError, match="infinity"):
        StandardScaler().fit(x)
    with pytest.raises(ValueError, match="infinite"):
        fit_standard(x)
