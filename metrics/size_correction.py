"""Size-corrected set metrics: extrapolation of a biased set estimator to an infinite set.

The Fréchet distance of two finite feature sets is biased upward, by an amount that shrinks
roughly like ``c / n`` (Chong & Forsyth, "Effectively Unbiased FID and Inception Score and where
to find them", CVPR 2020).  Categories of a bench range from a few dozen to thousands of samples,
so the plain value ranks a small category worse because it is small.  Following Chong & Forsyth
(their FID_inf), the metric is evaluated on seeded random subsets at several sizes ``k``, a line
``value(k) = a + b / k`` is fitted against ``1 / k``, and the intercept ``a`` (``1 / k = 0``)
is the size-corrected value.  Subsets are drawn without replacement from the rows at hand: with
``E[value_k] ~ v + c / k`` for independent draws, a size-``k`` subset of an ``n``-row sample has
the same expectation, so the line through ``k <= n`` extrapolates to ``v``.

Validity.  The ``1 / k`` law holds once the subsets are large compared with the features'
effective dimension; when subsets have fewer rows than the covariance has significant directions
the curve flattens (rank-deficient covariances) and the straight line over-estimates ``v``.  The
result carries the participation-ratio effective rank ``r = (tr S)^2 / tr(S^2)`` of the pooled
centred features and ``reliable = k_min >= 2 r``; measured on Gaussian features (d = 64, 16
replicates, three covariance spectra, n = 50 to 400): wherever ``k_min / r >= 1.8`` the mean
extrapolated value was within 7 % of the population FD (plain values: 1.0x to 18x it); at
``k_min / r`` = 0.65, 1.0 and 1.5 it was still 35x, 2.0x and 1.3x the population value (plain:
67x, 34x, 1.9x).  The extrapolated value is also
noisier than the plain one (the fit amplifies the subsets' noise): report it beside the
protocol value, not instead of it.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable

import numpy as np

#: ``reliable`` requires the smallest subset to have at least this many rows per effective dimension.
MIN_ROWS_PER_EFFECTIVE_DIM = 2.0


@dataclass(frozen=True)
class SizeCorrected:
    """A set metric extrapolated to an infinite set (see the module docstring).

    Attributes:
        value: the intercept ``a`` of ``value(k) = a + b / k``: the size-corrected value.
        slope: ``b`` (the bias of a size-``k`` estimate is ``b / k``).
        plain: the metric on all rows (the ``k = n`` point).
        n_fake, n_real: rows of each set (``n_real`` 0 when the reference is given as statistics).
        sizes: subset sizes of the fake set, largest first (``sizes[0] == n_fake``).
        means: mean metric over the draws at each size.
        draws: subsets per size below ``n_fake``.
        seed: the subsets' seed.
        effective_rank: participation ratio of the pooled centred features.
        reliable: ``min(sizes) >= 2 * effective_rank`` (the ``1 / k`` law is expected to hold).
    """

    value: float
    slope: float
    plain: float
    n_fake: int
    n_real: int
    sizes: tuple[int, ...]
    means: tuple[float, ...]
    draws: int
    seed: int
    effective_rank: float
    reliable: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples as lists)."""
        d = asdict(self)
        d["sizes"], d["means"] = list(self.sizes), list(self.means)
        return d


def effective_rank(x: np.ndarray) -> float:
    """Participation ratio ``(tr S)^2 / tr(S^2)`` of the covariance of ``x`` (1 for rank one, d for isotropic).

    Computed from the smaller of the ``n x n`` Gram and ``d x d`` scatter matrices.

    Args:
        x: (n, d) features, n >= 2.

    Returns:
        The effective rank as a float in [1, min(n - 1, d)] (0 for constant features).

    Example:
        >>> round(effective_rank(np.random.default_rng(0).normal(size=(4000, 8))), 1)
        8.0
    """
    a = np.asarray(x, np.float64)
    if a.ndim != 2 or a.shape[0] < 2:
        raise ValueError(f"effective_rank expects (n, d) features with n >= 2, got shape {a.shape}")
    c = a - a.mean(axis=0)
    g = c @ c.T if c.shape[0] < c.shape[1] else c.T @ c
    tr2 = float(np.sum(g * g))
    return float(np.trace(g)) ** 2 / tr2 if tr2 > 0 else 0.0


def subset_sizes(n: int, n_sizes: int = 5, min_fraction: float = 0.5) -> list[int]:
    """Subset sizes evenly spaced in ``1 / k`` from ``1 / n`` to ``1 / (min_fraction n)``, largest first, distinct.

    Example:
        >>> subset_sizes(100)
        [100, 80, 67, 57, 50]
    """
    n = int(n)
    if not 0.0 < float(min_fraction) < 1.0:
        raise ValueError(f"min_fraction must be in (0, 1), got {min_fraction}")
    if int(n_sizes) < 3:
        raise ValueError(f"at least 3 subset sizes are needed for a checked fit, got n_sizes={n_sizes}")
    inv = np.linspace(1.0 / n, 1.0 / (float(min_fraction) * n), int(n_sizes))
    sizes: list[int] = []
    for k in np.round(1.0 / inv).astype(int):
        if int(k) not in sizes:
            sizes.append(int(k))
    return sizes


def extrapolate_to_inf(
    metric: Callable[..., float],
    fake: np.ndarray,
    real: np.ndarray | None = None,
    n_sizes: int = 5,
    min_fraction: float = 0.5,
    draws: int = 8,
    seed: int = 0,
    paired: bool | None = None,
) -> SizeCorrected:
    """Extrapolate a set metric to infinitely many rows by a fit against ``1 / k`` (Chong & Forsyth).

    ``metric(fake_subset, real_subset)`` (or ``metric(fake_subset)`` when ``real`` is None, e.g. a
    metric against fixed reference statistics) is evaluated on all rows and on ``draws`` seeded
    subsets (without replacement) at each smaller size of :func:`subset_sizes`; the line
    ``a + b / k`` is fitted by least squares to the mean value at each size, one point per size.

    Subsets: with ``paired`` (the default when both sets have the same number of rows: the
    benchmark pairs rows by index), the same row indices are taken from both sets; otherwise the
    real set is subsampled on its own, to ``round(k n_real / n_fake)`` rows, so both sizes scale
    together and the bias stays linear in ``1 / k``.

    Args:
        metric: ``(fake (k, d), real (k', d)) -> float`` or ``(fake (k, d)) -> float``.
        fake: (n, d) features.
        real: (m, d) features, or None.
        n_sizes: number of subset sizes (>= 3), including ``n``.
        min_fraction: the smallest subset is ``min_fraction * n`` rows.
        draws: subsets per size below ``n``.
        seed: subset seed.
        paired: draw the same indices from both sets (None: when ``n == m``).

    Returns:
        A :class:`SizeCorrected`.

    Raises:
        ValueError: too few rows for 3 distinct sizes of at least 2 rows, mismatched pairing,
            a non-finite metric value.

    Example:
        >>> x = np.random.default_rng(0).normal(size=(100, 2))
        >>> r = extrapolate_to_inf(lambda a: 1.0 + 3.0 / len(a), x)       # a metric biased by exactly 3 / k
        >>> round(r.plain, 6), round(r.value, 6), round(r.slope, 6), r.sizes
        (1.03, 1.0, 3.0, (100, 80, 67, 57, 50))
    """
    x = np.asarray(fake)
    y = None if real is None else np.asarray(real)
    if x.ndim != 2:
        raise ValueError(f"fake: expected (n, d) features, got shape {x.shape}")
    n = x.shape[0]
    if y is not None and (y.ndim != 2 or y.shape[1] != x.shape[1]):
        raise ValueError(f"real: expected (m, {x.shape[1]}) features to match fake, got shape {y.shape}")
    m = 0 if y is None else y.shape[0]
    if paired is None:
        paired = y is not None and m == n
    if paired and y is not None and m != n:
        raise ValueError(f"paired subsets need sets of the same size, got n_fake={n}, n_real={m}")
    sizes = subset_sizes(n, n_sizes, min_fraction) if n >= 2 else []
    if len(sizes) < 3 or min(sizes) < 2 or (y is not None and round(min(sizes) * m / n) < 2):
        raise ValueError(f"size correction needs enough rows for 3 distinct subset sizes of >= 2 rows: "
                         f"n_fake={n}, n_real={m}, sizes={sizes}")
    if int(draws) < 1:
        raise ValueError(f"draws must be >= 1, got {draws}")
    rng = np.random.default_rng(seed)

    def call(ix: np.ndarray, iy: np.ndarray | None) -> float:
        v = float(metric(x[ix]) if y is None else metric(x[ix], y[iy]))
        if not np.isfinite(v):
            raise ValueError(f"the metric returned {v} on a subset of {len(ix)} rows")
        return v

    plain = call(np.arange(n), None if y is None else np.arange(m))
    means = [plain]
    for k in sizes[1:]:
        vals = []
        for _ in range(int(draws)):
            ix = np.sort(rng.choice(n, size=k, replace=False))
            if y is None:
                iy = None
            elif paired:
                iy = ix
            else:
                iy = np.sort(rng.choice(m, size=int(round(k * m / n)), replace=False))
            vals.append(call(ix, iy))
        means.append(float(np.mean(vals)))
    inv = 1.0 / np.asarray(sizes, np.float64)
    design = np.stack([np.ones_like(inv), inv], axis=1)
    (a, b), *_ = np.linalg.lstsq(design, np.asarray(means), rcond=None)
    pooled = x if y is None else np.concatenate([x - x.mean(axis=0), y - y.mean(axis=0)])
    r = effective_rank(pooled)
    return SizeCorrected(value=float(a), slope=float(b), plain=plain, n_fake=int(n), n_real=int(m),
                         sizes=tuple(sizes), means=tuple(means), draws=int(draws), seed=int(seed),
                         effective_rank=r, reliable=bool(min(sizes) >= MIN_ROWS_PER_EFFECTIVE_DIM * r))
