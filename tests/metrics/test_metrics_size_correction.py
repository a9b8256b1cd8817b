"""Size-corrected FD (extrapolation to n = inf) on Gaussian features with a known population FD.

The plain FD of n rows is biased upward by ~c/n; the corrected value must stay near the
population FD at n = 50, 100 and 400, and categories of different sizes drawn from the same
distributions must get corrected values that agree within their spread.
"""
from __future__ import annotations

import numpy as np
import pytest

from metrics.frechet import frechet_distance, frechet_distance_fast, frechet_distance_inf, gaussian_stats
from metrics.size_correction import SizeCorrected, effective_rank, extrapolate_to_inf, subset_sizes

D = 6
REPS = 24


@pytest.fixture(scope="module")
def population() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
    """Two Gaussians in d = 6 with different means and covariances, and their exact FD."""
    rng = np.random.default_rng(42)
    a = rng.normal(size=(D, D)) / np.sqrt(D)
    s1 = a @ a.T + 0.3 * np.eye(D)
    b = a + 0.25 * rng.normal(size=(D, D)) / np.sqrt(D)
    s2 = b @ b.T + 0.3 * np.eye(D)
    mu1, mu2 = np.zeros(D), np.full(D, 0.25)
    return mu1, s1, mu2, s2, frechet_distance(mu1, s1, mu2, s2)


def _draw(pop: tuple, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    mu1, s1, mu2, s2, _ = pop
    return (rng.multivariate_normal(mu1, s1, size=n, method="cholesky"),
            rng.multivariate_normal(mu2, s2, size=n, method="cholesky"))


@pytest.fixture(scope="module")
def replicates(population: tuple) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """{n: (plain FDs, corrected FDs)} over REPS independent draws of n rows per set."""
    rng = np.random.default_rng(7)
    out = {}
    for n in (50, 100, 400):
        plain, corr = [], []
        for r in range(REPS):
            x, y = _draw(population, n, rng)
            res = frechet_distance_inf(x, y, seed=r)
            assert res.reliable, (n, res.effective_rank)
            plain.append(res.plain)
            corr.append(res.value)
        out[n] = (np.asarray(plain), np.asarray(corr))
    return out


def test_corrected_value_near_population_while_plain_drifts(population: tuple, replicates: dict) -> None:
    pop = population[4]
    assert 0.4 < pop < 0.8                       # a moderate distance (0.475)
    for n, (plain, corr) in replicates.items():
        se = corr.std(ddof=1) / np.sqrt(REPS)
        # tolerance: 12 % of the population value plus 3 standard errors of the replicate mean
        assert abs(corr.mean() - pop) <= 0.12 * pop + 3 * se, (n, corr.mean(), pop, se)
        # the plain value is biased by ~c/n: far above the population value at small n
        assert plain.mean() - pop > 5 * plain.std(ddof=1) / np.sqrt(REPS), n
    drift_plain = replicates[50][0].mean() - replicates[400][0].mean()
    drift_corr = abs(replicates[50][1].mean() - replicates[400][1].mean())
    assert drift_plain > 0.5 * pop                 # measured: the plain mean falls from 2.2x to 1.16x pop
    assert drift_corr < 0.25 * drift_plain


def test_categories_of_different_sizes_agree_within_spread(population: tuple) -> None:
    """Category-like subsets (60, 150, 400 paired rows) of one bench drawn from the same distributions."""
    rng = np.random.default_rng(11)
    sizes = (60, 150, 400)
    plain = {k: [] for k in sizes}
    corr = {k: [] for k in sizes}
    for r in range(16):
        x, y = _draw(population, sum(sizes), rng)
        start = 0
        for k in sizes:
            res = frechet_distance_inf(x[start:start + k], y[start:start + k], seed=r)
            plain[k].append(res.plain)
            corr[k].append(res.value)
            start += k
    m = {k: np.mean(v) for k, v in corr.items()}
    se = {k: np.std(v, ddof=1) / np.sqrt(len(v)) for k, v in corr.items()}
    for i, a in enumerate(sizes):
        for b in sizes[i + 1:]:
            assert abs(m[a] - m[b]) <= 3 * np.hypot(se[a], se[b]), (a, b, m, se)
    # the plain values do not agree: the small category looks much worse
    pa, pb = np.asarray(plain[60]), np.asarray(plain[400])
    assert pa.mean() - pb.mean() > 3 * np.hypot(pa.std(ddof=1), pb.std(ddof=1)) / 4


def test_exact_line_is_recovered() -> None:
    """A metric with value a + b/k exactly: the fit returns a and b to rounding, whatever the draws."""
    x = np.random.default_rng(0).normal(size=(90, 3))
    y = np.random.default_rng(1).normal(size=(60, 3))
    res = extrapolate_to_inf(lambda p, q: 2.5 + 7.0 / len(p) + 0.0 * len(q), x, y)
    assert res.value == pytest.approx(2.5, abs=1e-12) and res.slope == pytest.approx(7.0, abs=1e-10)
    assert res.n_fake == 90 and res.n_real == 60 and res.sizes[0] == 90
    seen = []
    extrapolate_to_inf(lambda p, q: seen.append((len(p), len(q))) or 0.0, x, y, draws=2)
    assert (90, 60) in seen and (45, 30) in seen      # unpaired: the real set scaled in proportion
    assert all(abs(q - p * 60 / 90) <= 0.5 for p, q in seen)


def test_paired_subsets_take_the_same_rows() -> None:
    x = np.arange(40.0)[:, None] * np.ones((1, 2))
    calls = []
    extrapolate_to_inf(lambda p, q: calls.append(np.array_equal(p, q)) or 1.0, x, x.copy(), draws=3)
    assert len(calls) == 1 + 4 * 3 and all(calls)


def test_seeded_and_reproducible(population: tuple) -> None:
    x, y = _draw(population, 80, np.random.default_rng(3))
    a, b = frechet_distance_inf(x, y, seed=5), frechet_distance_inf(x, y, seed=5)
    assert a == b
    assert frechet_distance_inf(x, y, seed=6).value != a.value
    assert a.plain == frechet_distance_fast(x, y)
    assert isinstance(a, SizeCorrected) and a.to_dict()["sizes"] == list(a.sizes)


def test_reference_statistics(population: tuple) -> None:
    """With (mu, sigma) of the reference only the fake set is subsampled (Chong & Forsyth's setting)."""
    mu1, s1, mu2, s2, pop = population
    rng = np.random.default_rng(9)
    vals = []
    for r in range(12):
        x = rng.multivariate_normal(mu1, s1, size=100, method="cholesky")
        res = frechet_distance_inf(x, (mu2, s2), seed=r)
        assert res.n_real == 0 and res.plain == pytest.approx(frechet_distance(*gaussian_stats(x), mu2, s2))
        vals.append(res.value)
    assert abs(np.mean(vals) - pop) <= 0.12 * pop + 3 * np.std(vals, ddof=1) / np.sqrt(12)


def test_unreliable_when_subsets_are_small_against_the_dimension() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 64)), rng.normal(size=(40, 64))
    res = frechet_distance_inf(x, y)
    assert not res.reliable and res.effective_rank > 10


def test_effective_rank_and_sizes() -> None:
    rng = np.random.default_rng(0)
    assert effective_rank(rng.normal(size=(5000, 5))) == pytest.approx(5.0, rel=0.02)
    assert effective_rank(np.outer(rng.normal(size=300), np.ones(4))) == pytest.approx(1.0)
    z = rng.normal(size=(20, 50))                     # n < d: the Gram route equals the scatter route
    c = z - z.mean(axis=0)
    s = c.T @ c
    assert effective_rank(z) == pytest.approx(np.trace(s) ** 2 / np.sum(s * s))
    assert subset_sizes(50) == [50, 40, 33, 29, 25]
    assert subset_sizes(400, n_sizes=3, min_fraction=0.25) == [400, 160, 100]


def test_bad_input() -> None:
    x = np.zeros((3, 2))
    with pytest.raises(ValueError, match="3 distinct subset sizes"):
        extrapolate_to_inf(lambda a: 0.0, x)
    with pytest.raises(ValueError, match="paired"):
        extrapolate_to_inf(lambda a, b: 0.0, np.zeros((30, 2)), np.zeros((20, 2)), paired=True)
    with pytest.raises(ValueError, match="match fake"):
        extrapolate_to_inf(lambda a, b: 0.0, np.zeros((30, 2)), np.zeros((30, 3)))
    with pytest.raises(ValueError, match="returned nan"):
        extrapolate_to_inf(lambda a: float("nan"), np.zeros((30, 2)))
    with pytest.raises(ValueError, match="mu"):
        frechet_distance_inf(np.zeros((30, 2)), (np.zeros(3), np.eye(3)))
    with pytest.raises(ValueError, match="min_fraction"):
        subset_sizes(100, min_fraction=1.0)


def test_official_kvd_size_correction() -> None:
    """The official (per-set centred) KVD is biased low at small n; the extrapolation removes most of it."""
    from metrics.kernel import kvd_official, kvd_official_inf

    d = 16
    rng = np.random.default_rng(0)
    a = rng.normal(size=(d, d)) / np.sqrt(d) * 1.5

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        return rng.normal(size=(n, d)), rng.normal(size=(n, d)) @ a.T + 0.3

    target = kvd_official(*draw(3000))                  # ~1.33: the large-set value
    reps = 10
    for n in (50, 400):
        plain, corr = [], []
        for r in range(reps):
            res = kvd_official_inf(*draw(n), seed=r)
            plain.append(res.plain)
            corr.append(res.value)
        se = np.std(corr, ddof=1) / np.sqrt(reps)
        assert abs(np.mean(corr) - target) <= 0.06 * target + 3 * se, (n, np.mean(corr), target, se)
        if n == 50:
            assert target - np.mean(plain) > 0.1 * target          # measured 0.94-1.10 vs 1.33-1.38
