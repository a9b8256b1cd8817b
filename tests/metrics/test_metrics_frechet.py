"""Fréchet distance: official float32 rule vs the golden fixture, float64 rule vs independent references."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from metrics.frechet import (
    fd,
    frechet_distance,
    frechet_distance_fast,
    frechet_distance_official,
    gaussian_stats,
    paired_first_n,
)

MATH = Path(__file__).resolve().parents[1] / "golden" / "math"
CASES = ["A_n200_d64", "B_n32_d400", "C_n40_d1024", "D_n48vs60_d64"]
# math/README.md: FD rel 1e-4 for the well-conditioned cases, 2e-3 for the rank-deficient ones
# (n < d: the result depends on the SVD's treatment of near-zero singular values).
FD_REL = {"A_n200_d64": 1e-4, "B_n32_d400": 2e-3, "C_n40_d1024": 2e-3, "D_n48vs60_d64": 1e-4}


@pytest.fixture(autouse=True, scope="module")
def _one_blas_thread():  # noqa: ANN202
    """Multi-threaded OpenBLAS on a shared 2-core machine made the 1024-d SVD/sqrtm ~10x slower
    (measured 17 s vs 1.8 s per SVD); one thread keeps this module to seconds.  No effect on values
    beyond rounding."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


@pytest.fixture(scope="module")
def fd_inputs() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    z = np.load(MATH / "fd_inputs.npz")
    return {c: (z[f"{c}__fake"], z[f"{c}__real"]) for c in CASES}


@pytest.fixture(scope="module")
def expected() -> dict:
    return json.loads((MATH / "fd_kvd_expected.json").read_text())


def _rel(a: float, b: float) -> float:
    return abs(a - b) / abs(b)


@pytest.mark.parametrize("case", CASES)
def test_official_fd_matches_golden_all_rows(case: str, fd_inputs: dict, expected: dict) -> None:
    fake, real = fd_inputs[case]
    got = frechet_distance_official(fake, real)
    assert _rel(got, expected[case]["frechet_distance_f32"]) < FD_REL[case]


@pytest.mark.parametrize("case", CASES)
def test_direct_path_fvd_fad_match_golden(case: str, fd_inputs: dict, expected: dict) -> None:
    """calc_fvd_kvd_fad_direct: first min(N) rows of each set, FVD = FD, FAD = FD x 1e4."""
    exp = expected[case]["calc_fvd_kvd_fad_direct"]
    fake, real = paired_first_n(*fd_inputs[case])
    assert len(fake) == len(real) == exp["n_used"]
    got = fd(fake, real, "official-f32-svd")
    assert _rel(got, exp["fvd"]) < FD_REL[case]
    assert _rel(got * 1e4, exp["fad"]) < FD_REL[case]


def test_unequal_sizes_differ_between_all_rows_and_paired(fd_inputs: dict, expected: dict) -> None:
    fake, real = fd_inputs["D_n48vs60_d64"]
    all_rows = frechet_distance_official(fake, real)
    paired = frechet_distance_official(*paired_first_n(fake, real))
    assert abs(all_rows - paired) > 1.0          # 57.7 vs 61.4 in the fixture
    assert _rel(paired, expected["D_n48vs60_d64"]["calc_fvd_kvd_fad_direct"]["fvd"]) < 1e-4


@pytest.mark.parametrize("case", CASES)
def test_f64_variant_matches_golden_scipy_reference(case: str, fd_inputs: dict, expected: dict) -> None:
    got = fd(*paired_first_n(*fd_inputs[case]), variant="f64-sqrtm")
    assert _rel(got, expected[case]["fd_float64_scipy_reference"]) < 1e-6


def test_f64_matches_scipy_sqrtm_reference_random() -> None:
    """Reference written here from the textbook formula with np.cov and scipy.linalg.sqrtm."""
    from scipy.linalg import sqrtm

    rng = np.random.default_rng(11)
    a = rng.normal(size=(500, 12)) @ rng.normal(size=(12, 12))
    b = rng.normal(loc=0.3, size=(400, 12)) @ rng.normal(size=(12, 12))
    m1, m2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    ref = float(np.sum((m1 - m2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(sqrtm(s1 @ s2)).real)
    assert _rel(fd(a, b, "f64-sqrtm"), ref) < 1e-6
    # the official float32 rule agrees to float32 accuracy on well-conditioned data
    assert _rel(frechet_distance_official(a.astype(np.float32), b.astype(np.float32)), ref) < 1e-4


def test_f64_closed_form_diagonal_gaussians() -> None:
    """For diagonal covariances FD = |mu1-mu2|^2 + sum_i (sqrt(a_i) - sqrt(b_i))^2."""
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 0.25])
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    expected = 1.0 + 4.0 + (1 - 2) ** 2 + (2 - 1) ** 2 + (3 - 0.5) ** 2
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-12)


def test_gaussian_stats_unbiased() -> None:
    x = np.random.default_rng(0).normal(size=(30, 5))
    mu, sigma = gaussian_stats(x)
    np.testing.assert_allclose(mu, x.mean(0), rtol=0, atol=1e-15)
    np.testing.assert_allclose(sigma, np.cov(x, rowvar=False, ddof=1), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("variant", ["official-f32-svd", "f64-sqrtm"])
def test_identical_sets_give_zero(variant: str) -> None:
    x = np.random.default_rng(1).normal(size=(300, 16)).astype(np.float32)
    scale = 2 * np.trace(np.cov(x, rowvar=False))
    # float32 rounding of tr S_x + tr S_y - 2 tr sqrt(...) leaves ~1e-6 of the traces
    tol = 1e-5 if variant == "official-f32-svd" else 1e-10
    assert abs(fd(x, x, variant)) < tol * scale


@pytest.mark.parametrize("variant", ["official-f32-svd", "f64-sqrtm"])
def test_symmetry_and_order_invariance(variant: str) -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(250, 10)).astype(np.float32)
    y = (rng.normal(size=(220, 10)) * 1.5 + 0.2).astype(np.float32)
    base = fd(x, y, variant)
    rel = 1e-4 if variant == "official-f32-svd" else 1e-9
    assert _rel(fd(y, x, variant), base) < rel
    assert _rel(fd(x[rng.permutation(len(x))], y[rng.permutation(len(y))], variant), base) < rel
    assert base > 0


def test_official_does_not_mutate_inputs() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(loc=2.0, size=(50, 8)).astype(np.float32)
    y = rng.normal(loc=-1.0, size=(40, 8)).astype(np.float32)
    x0, y0 = x.copy(), y.copy()
    frechet_distance_official(x, y)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(y, y0)


def test_input_checks() -> None:
    x = np.zeros((5, 3), np.float32)
    with pytest.raises(ValueError, match="at least 2 samples"):
        frechet_distance_official(x[:1], x)
    with pytest.raises(ValueError, match="feature dimensions differ"):
        fd(x, np.zeros((5, 4)), "f64-sqrtm")
    bad = x.copy()
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match="NaN or inf"):
        frechet_distance_official(bad, x)
    with pytest.raises(ValueError, match="unknown FD variant"):
        fd(x, x, "f16")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"\(d, d\)|to match the means"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(3), np.eye(2))
    with pytest.raises(ValueError, match="shape"):
        gaussian_stats(np.zeros(4))


@pytest.mark.parametrize("n, m, d", [(12, 15, 64), (40, 40, 16), (5, 9, 400)])
def test_fast_fd_equals_scipy_reference(n: int, m: int, d: int) -> None:
    import scipy.linalg

    from metrics.frechet import frechet_distance_fast

    rng = np.random.default_rng([n, m, d])
    x, y = rng.normal(size=(n, d)), rng.normal(0.3, 1.5, size=(m, d))
    mx, my = x.mean(0), y.mean(0)
    sx, sy = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    ref = float(np.sum((mx - my) ** 2) + np.trace(sx) + np.trace(sy) - 2 * np.trace(scipy.linalg.sqrtm(sx @ sy).real))
    assert frechet_distance_fast(x, y) == pytest.approx(ref, rel=1e-6)
    assert abs(frechet_distance_fast(x, x)) < 1e-8 * np.trace(sx)


def _small_scale_sets(scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """AudioCLIP-scale features: d = 128, variance 1e-4 per dimension on average, spectrum ~ 1/i."""
    d, n = 128, 400
    rng = np.random.default_rng(0)
    lam = 1.0 / np.arange(1, d + 1)
    lam *= 1e-4 * d / lam.sum()
    q = np.linalg.qr(rng.normal(size=(d, d)))[0]
    x = (rng.normal(size=(n, d)) * np.sqrt(lam)) @ q.T
    y = (rng.normal(size=(n, d)) * np.sqrt(1.1 * lam)) @ q.T + 0.002
    return (scale * x).astype(np.float32), (scale * y).astype(np.float32)


def test_official_cutoff_biases_small_scale_features_upward() -> None:
    """The 1e-10 cut-off acts on the inner matrix (variance^2 ~ 1e-8 here): FD comes out too high.

    Without the cut-off the same float32 computation is exact to 1e-4; scaled by 100 (I3D-logit
    scale) the cut-off only touches float32 noise and FD scales by 1e4 as it must.
    """
    x, y = _small_scale_sets()
    exact = frechet_distance_fast(x.astype(np.float64), y.astype(np.float64))
    official = frechet_distance_official(x, y)
    no_cut = frechet_distance_official(x, y, svd_eps=0.0)
    assert (official - exact) / exact > 5e-3            # measured +2.2 %
    assert abs(no_cut - exact) / exact < 1e-4           # measured 1.2e-6
    xs, ys = _small_scale_sets(100.0)
    big = frechet_distance_official(xs, ys)
    assert abs(big / 1e4 - exact) / exact < 1e-4
