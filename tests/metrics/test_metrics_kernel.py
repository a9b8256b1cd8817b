"""Polynomial MMD² / KVD: official centred estimate vs the golden fixture, general estimator vs a naive loop."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from metrics.frechet import paired_first_n
from metrics.kernel import kvd_official, kvd_subsets, mmd2_unbiased, polynomial_kernel

MATH = Path(__file__).resolve().parents[1] / "golden" / "math"
CASES = ["A_n200_d64", "B_n32_d400", "C_n40_d1024", "D_n48vs60_d64"]


@pytest.fixture(scope="module")
def fd_inputs() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    z = np.load(MATH / "fd_inputs.npz")
    return {c: (z[f"{c}__fake"], z[f"{c}__real"]) for c in CASES}


@pytest.fixture(scope="module")
def expected() -> dict:
    return json.loads((MATH / "fd_kvd_expected.json").read_text())


def _close(got: float, want: float) -> bool:
    # math/README.md: KVD abs 1e-6 + rel 1e-4
    return abs(got - want) <= 1e-6 + 1e-4 * abs(want)


@pytest.mark.parametrize("case", CASES)
def test_kvd_official_matches_golden(case: str, fd_inputs: dict, expected: dict) -> None:
    got = kvd_official(*paired_first_n(*fd_inputs[case]))
    assert _close(got, expected[case]["calc_fvd_kvd_fad_direct"]["kvd"])
    assert _close(got, expected[case]["polynomial_mmd_centred_numpy"])


@pytest.mark.parametrize("case", CASES)
def test_uncentred_mmd_matches_golden(case: str, fd_inputs: dict, expected: dict) -> None:
    fake, real = paired_first_n(*fd_inputs[case])
    want = expected[case]["polynomial_mmd_uncentred"]
    assert _close(mmd2_unbiased(fake, real, dtype=np.float32), want)
    assert _close(mmd2_unbiased(fake, real), want)


def test_kvd_official_ignores_mean_difference() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 8)).astype(np.float32)
    y = rng.normal(size=(60, 8)).astype(np.float32)
    shifted = y + np.float32(3.0)
    assert abs(kvd_official(x, shifted) - kvd_official(x, y)) < 1e-5
    assert mmd2_unbiased(x, shifted) > 100 * abs(mmd2_unbiased(x, y))


def _naive_mmd2(x: np.ndarray, y: np.ndarray, degree: int = 3, coef0: float = 1.0) -> float:
    d = x.shape[1]

    def k(a: np.ndarray, b: np.ndarray) -> float:
        return (float(np.dot(a, b)) / d + coef0) ** degree

    m, n = len(x), len(y)
    sxx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j)
    syy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j)
    sxy = sum(k(x[i], y[j]) for i in range(m) for j in range(n))
    return sxx / (m * (m - 1)) + syy / (n * (n - 1)) - 2 * sxy / (m * n)


@pytest.mark.parametrize("m,n", [(9, 9), (7, 11)])
def test_mmd2_matches_naive_double_loop(m: int, n: int) -> None:
    rng = np.random.default_rng(m * 100 + n)
    x, y = rng.normal(size=(m, 5)), rng.normal(loc=0.4, size=(n, 5))
    assert mmd2_unbiased(x, y) == pytest.approx(_naive_mmd2(x, y), rel=1e-12, abs=1e-14)


def test_polynomial_kernel_matches_sklearn() -> None:
    sk = pytest.importorskip("sklearn.metrics.pairwise")
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(6, 7)), rng.normal(size=(5, 7))
    np.testing.assert_allclose(polynomial_kernel(x, y), sk.polynomial_kernel(x, y), rtol=1e-13)
    np.testing.assert_allclose(polynomial_kernel(x, y, degree=2, gamma=0.3, coef0=0.5),
                               sk.polynomial_kernel(x, y, degree=2, gamma=0.3, coef0=0.5), rtol=1e-13)
    assert polynomial_kernel(x.astype(np.float32)).dtype == np.float32


def test_kvd_subsets_reproducible_and_seeded() -> None:
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(80, 6)), rng.normal(loc=0.2, size=(70, 6))
    a = kvd_subsets(x, y, n_subsets=20, subset_size=30, seed=7)
    assert a == kvd_subsets(x, y, n_subsets=20, subset_size=30, seed=7)
    assert a == kvd_subsets(x, y, n_subsets=20, subset_size=30, seed=np.random.default_rng(7))
    assert a != kvd_subsets(x, y, n_subsets=20, subset_size=30, seed=8)
    assert a[1] > 0


def test_kvd_subsets_whole_sets_when_clipped() -> None:
    """subset_size >= both sizes (equal here): every draw is a permutation of the full sets."""
    rng = np.random.default_rng(6)
    x, y = rng.normal(size=(25, 4)), rng.normal(loc=0.5, size=(25, 4))
    mean, std = kvd_subsets(x, y, n_subsets=5, subset_size=1000, seed=0)
    assert mean == pytest.approx(mmd2_unbiased(x, y), rel=1e-10)
    assert std < 1e-10 * abs(mean)


def test_kernel_input_checks() -> None:
    x = np.zeros((4, 3))
    with pytest.raises(ValueError, match="feature dimensions differ"):
        kvd_official(x, np.zeros((4, 2)))
    with pytest.raises(ValueError, match="at least 2 samples"):
        mmd2_unbiased(x[:1], x)
    with pytest.raises(ValueError, match="n_subsets"):
        kvd_subsets(x, x, n_subsets=0)
    with pytest.raises(ValueError, match="2-D"):
        polynomial_kernel(np.zeros(3))
