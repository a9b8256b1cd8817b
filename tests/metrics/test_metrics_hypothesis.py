"""Property tests (Hypothesis) for the metric math: identical sets give 0 (Fréchet), order does not
matter, symmetry where it holds, non-negativity; checked on random feature sets of random shapes."""
from __future__ import annotations

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis", reason="the property tests need hypothesis (pip install hypothesis)")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from metrics import kernel  # noqa: E402
from metrics.frechet import fd, frechet_distance_fast  # noqa: E402
from metrics.similarity import cosine  # noqa: E402

SETTINGS = settings(max_examples=25, deadline=None, derandomize=True)


@st.composite
def feature_sets(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    d = draw(st.integers(2, 8))
    # full-rank covariances (n > d): Fréchet distances of rank-deficient sets are not comparable
    n = draw(st.integers(2 * d + 2, 32))
    m = draw(st.integers(2 * d + 2, 32))
    seed = draw(st.integers(0, 2**31 - 1))
    scale = draw(st.sampled_from([1e-2, 1.0, 30.0]))
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(n, d)) * scale
    b = rng.normal(size=(m, d)) * scale + rng.normal(size=d) * scale
    return a, b, rng.permutation(n)


@SETTINGS
@given(feature_sets())
def test_frechet_identical_sets_symmetry_order(sets: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    a, b, perm = sets
    scale = float(np.abs(a).max() ** 2 + np.abs(b).max() ** 2)
    assert abs(fd(a, a.copy(), variant="f64-sqrtm")) <= 1e-7 * scale
    ab = fd(a, b, variant="f64-sqrtm")
    assert ab >= -1e-9 * scale
    assert ab == pytest.approx(fd(b, a, variant="f64-sqrtm"), rel=1e-6, abs=1e-9 * scale)
    assert ab == pytest.approx(fd(a[perm], b, variant="f64-sqrtm"), rel=1e-8, abs=1e-10 * scale)
    assert ab == pytest.approx(frechet_distance_fast(a, b), rel=1e-5, abs=1e-8 * scale)


@SETTINGS
@given(feature_sets())
def test_kernel_mmd_identical_sets_symmetry_order(sets: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    a, b, perm = sets
    ab = kernel.mmd2_unbiased(a, b)
    assert ab == pytest.approx(kernel.mmd2_unbiased(b, a), rel=1e-9, abs=1e-12)
    assert ab == pytest.approx(kernel.mmd2_unbiased(a[perm], b), rel=1e-9, abs=1e-12)
    # the unbiased estimator is not 0 on identical sets (the diagonal is left out of one term only):
    # it is below the value for a shifted copy
    shifted = a + 3.0 * (np.abs(a).max() + 1.0)
    assert kernel.mmd2_unbiased(a, a.copy()) < kernel.mmd2_unbiased(a, shifted)


@SETTINGS
@given(st.integers(1, 64), st.integers(0, 2**31 - 1), st.floats(1e-3, 1e3))
def test_cosine_bounds_symmetry_scale(d: int, seed: int, c: float) -> None:
    rng = np.random.default_rng(seed)
    x, y = rng.normal(size=d), rng.normal(size=d)
    v = float(cosine(x, y))
    assert -1.0 - 1e-12 <= v <= 1.0 + 1e-12
    assert v == pytest.approx(float(cosine(y, x)), abs=1e-12)
    assert v == pytest.approx(float(cosine(c * x, y)), abs=1e-9)
    assert float(cosine(x, x)) == pytest.approx(1.0, abs=1e-12)
