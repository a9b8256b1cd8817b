"""Bootstrap intervals: coverage on a seeded simulation, reproducibility, NaN handling, paired test."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from metrics.bootstrap import bootstrap_ci, bootstrap_set_ci, drop_nan, paired_bootstrap_diff


def test_coverage_simulation() -> None:
    """True mean inside ~95% of the intervals: 200 seeded replications of n=40 normal values."""
    rng = np.random.default_rng(123)
    reps, hits = 200, 0
    for r in range(reps):
        x = rng.normal(loc=1.0, scale=2.0, size=40)
        lo, hi = bootstrap_ci(x, n_boot=1000, level=0.95, seed=r)
        hits += lo <= 1.0 <= hi
    # measured 0.95 with these seeds; the band allows for the percentile bootstrap's small-n bias
    assert 0.90 <= hits / reps <= 0.99


def test_reproducible_with_seed() -> None:
    x = np.random.default_rng(0).exponential(size=50)
    assert bootstrap_ci(x, seed=3) == bootstrap_ci(x, seed=3)
    assert bootstrap_ci(x, seed=3) != bootstrap_ci(x, seed=4)
    lo, hi = bootstrap_ci(x, seed=3)
    assert lo < x.mean() < hi


def test_vectorised_equals_per_resample_loop() -> None:
    """bootstrap_ci (one (B, n) index matrix) draws the same resamples as B calls of bootstrap_set_ci."""
    v = np.random.default_rng(1).normal(size=37)
    assert bootstrap_ci(v, n_boot=300, seed=5) == bootstrap_set_ci(lambda i: float(v[i].mean()), len(v), n_boot=300, seed=5)


def test_other_statistics() -> None:
    x = np.random.default_rng(2).normal(size=60)
    lo, hi = bootstrap_ci(x, n_boot=500, stat=np.median)
    assert lo < np.median(x) < hi
    lo2, hi2 = bootstrap_ci(x, n_boot=500, stat=lambda s: float(np.mean(s)))   # no axis: per-resample loop
    assert (lo2, hi2) == bootstrap_ci(x, n_boot=500)


def test_nan_dropped_and_small_n() -> None:
    x = np.array([1.0, np.nan, 2.0, 3.0, np.nan])
    v, k = drop_nan(x)
    assert v.tolist() == [1.0, 2.0, 3.0] and k == 2
    with pytest.warns(RuntimeWarning, match="dropped 2 NaN"):
        lo, hi = bootstrap_ci(x, seed=0)
    assert 1.0 <= lo <= hi <= 3.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert all(np.isnan(bootstrap_ci(np.array([1.0, np.nan]))))
    assert all(np.isnan(bootstrap_ci(np.array([]))))
    assert all(np.isnan(bootstrap_set_ci(lambda i: 0.0, 1)))
    with pytest.raises(ValueError, match="level"):
        bootstrap_ci(np.ones(3), level=1.5)


def test_set_ci_reproducible() -> None:
    rng = np.random.default_rng(3)
    fake, real = rng.normal(size=(40, 3)), rng.normal(loc=0.5, size=(40, 3))

    def fn(idx: np.ndarray) -> float:
        return float(np.sum((fake[idx].mean(0) - real[idx].mean(0)) ** 2))

    a = bootstrap_set_ci(fn, 40, n_boot=100, seed=9)
    assert a == bootstrap_set_ci(fn, 40, n_boot=100, seed=9)
    assert a[0] < fn(np.arange(40)) < a[1]


def test_paired_identical_is_zero_and_not_significant() -> None:
    x = np.random.default_rng(4).normal(size=100)
    r = paired_bootstrap_diff(x, x.copy())
    assert r["diff"] == 0.0 and r["ci_low"] == 0.0 and r["ci_high"] == 0.0
    assert r["p_value"] == 1.0 and r["significant"] is False and r["n"] == 100


def test_paired_detects_shift() -> None:
    rng = np.random.default_rng(5)
    base = rng.normal(size=80)
    better = base + 0.3 + 0.1 * rng.normal(size=80)
    r = paired_bootstrap_diff(better, base, seed=0)
    assert r["significant"] is True and r["p_value"] < 0.01 and r["ci_low"] > 0
    s = paired_bootstrap_diff(base, better, seed=0)
    assert s["diff"] == pytest.approx(-r["diff"]) and s["ci_high"] < 0


def test_paired_false_positive_rate() -> None:
    """Under the null (zero-mean paired differences) about 5% of tests are significant at level 0.95."""
    rng = np.random.default_rng(7)
    hits = sum(paired_bootstrap_diff(a, a + rng.normal(size=50), seed=r)["significant"]
               for r, a in enumerate(rng.normal(size=(200, 50))))
    assert 0.01 <= hits / 200 <= 0.10     # measured 0.065


def test_paired_nan_and_length() -> None:
    r = paired_bootstrap_diff(np.array([1.0, np.nan, 3.0, 4.0]), np.array([0.0, 1.0, np.nan, 2.0]))
    assert r["n"] == 2 and r["n_dropped"] == 2 and r["diff"] == pytest.approx(1.5)
    with pytest.raises(ValueError, match="aligned"):
        paired_bootstrap_diff(np.ones(3), np.ones(4))


# ---- unpaired bootstrap (folder benches) ---------------------------------------------------------------
def test_unpaired_bootstrap_matches_naive_loop() -> None:
    from metrics.bootstrap import unpaired_bootstrap_diff

    rng = np.random.default_rng(5)
    a = rng.normal(0.3, 1.0, 17)
    b = np.concatenate([rng.normal(0.0, 1.0, 11), [np.nan]])
    r = unpaired_bootstrap_diff(a, b, n_boot=400, level=0.9, seed=3)
    # the same draws, one resample at a time: a's 400 resamples first, then b's
    g = np.random.default_rng(3)
    ia = [g.integers(0, a.size, a.size) for _ in range(400)]
    bb = b[~np.isnan(b)]
    ib = [g.integers(0, bb.size, bb.size) for _ in range(400)]
    naive = np.array([a[i].mean() - bb[j].mean() for i, j in zip(ia, ib)])
    assert r["diff"] == pytest.approx(a.mean() - bb.mean(), abs=1e-15)
    assert (r["n_a"], r["n_b"]) == (17, 11)
    assert r["ci_low"] == pytest.approx(np.percentile(naive, 5), abs=1e-12)
    assert r["ci_high"] == pytest.approx(np.percentile(naive, 95), abs=1e-12)


def test_unpaired_bootstrap_properties() -> None:
    from metrics.bootstrap import unpaired_bootstrap_diff

    x = np.random.default_rng(0).normal(size=40)
    same = unpaired_bootstrap_diff(x, x, n_boot=500)
    assert same["diff"] == 0 and not same["significant"] and same["p_value"] > 0.5
    shifted = unpaired_bootstrap_diff(x + 10, x[:25], n_boot=500)
    assert shifted["significant"] and shifted["ci_low"] > 9 and shifted["p_value"] < 0.01
    few = unpaired_bootstrap_diff(np.array([1.0]), x)
    assert np.isnan(few["diff"]) and not few["significant"]
