"""Per-category breakdown of a metric, with sample counts, bootstrap CIs and flags.

A *metric* is either

* per-sample: a float array ``values`` of shape ``(n_rows,)`` aligned with the manifest rows,
  NaN marking a failed sample.  A category's cell is the unweighted mean over its non-failed
  samples, ``value = mean(values[rows])`` (float64), as the official ``--verbose`` output; or
* a set metric: a callable ``fn(idx) -> float`` that recomputes the statistic (FVD, KVD, FAD, ...)
  from the manifest rows ``idx`` (int64, sorted; repeats appear under the bootstrap).  A
  category's cell is ``fn(rows)`` on that category's non-failed rows: set metrics are recomputed
  per subset, never averaged.  Failed rows are given by the ``failed`` mask.

Multi-label rows count in every category they list.  Every cell carries ``n`` (samples used),
``n_failed`` (the category's samples excluded as failed) and ``flags``:

* ``too-few``: ``n < min_n`` (default 2); the value is NaN when ``n == 0`` (per-sample) or
  ``n < 2`` (set metrics: a set statistic needs two samples, ``fn`` is not called).
* ``rank-deficient``: set metric with ``dim`` given and ``n < dim`` (a ``dim``-dimensional
  covariance from ``n`` samples is singular; Fréchet distances on it are not comparable).
* ``error``: the set metric raised ``ValueError``/``ArithmeticError`` on this subset (value NaN,
  the message is issued as a ``RuntimeWarning``); ``ci-error``: the same during the bootstrap.

Intervals: percentile bootstrap from ``metrics.bootstrap``, labelled by ``interval``
(``metrics.bootstrap.INTERVAL_KINDS``).  Per-sample cells: ``bootstrap_ci`` over the category's
values, a confidence interval for the category mean (``"ci"``).  Set cells:
``bootstrap_set_spread`` re-running ``fn`` on resampled rows, the sampling spread of a biased
estimator (``"spread"``): it sits around the finite-set value and does not cover the population
value.  ``n_boot=0`` skips them (NaN bounds); the default is 1000 resamples for per-sample
metrics and 200 for set metrics, whose cost is ``n_boot`` calls of ``fn`` per cell.

Size correction (set metrics, optional ``inf``): ``inf(rows) -> (value, reliable)`` computes the
metric extrapolated to an infinite set from the same rows (e.g.
``metrics.frechet.frechet_distance_inf``); the cell carries it as ``value_inf`` with its
``reliable`` flag, beside the unchanged ``value``.  Cells of fewer than 4 rows (too few for
three subset sizes) get ``value_inf`` NaN and ``reliable`` False.

Example:
    >>> import numpy as np
    >>> from taxonomy.model import load_taxonomy
    >>> from taxonomy.labels import parse_labels
    >>> tax = load_taxonomy("javisbench")
    >>> rows = [dict(cat0_ind=0, cat1_ind=0, cat2_ind="0,3", cat3_ind=0, cat4_ind=0),
    ...         dict(cat0_ind=0, cat1_ind=1, cat2_ind="3", cat3_ind=1, cat4_ind="0,2"),
    ...         dict(cat0_ind=1, cat1_ind=1, cat2_ind="4", cat3_ind=1, cat4_ind=2)]
    >>> labels = parse_labels(rows, tax)
    >>> cells = breakdown(labels, np.array([1.0, 3.0, np.nan]), n_boot=0)
    >>> c = cells["sound_type"]["musical"]
    >>> c.value, c.n, c.n_failed, c.flags
    (2.0, 2, 0, ())
    >>> cells["sound_type"]["speech"].n, cells["sound_type"]["speech"].n_failed, cells["sound_type"]["speech"].flags
    (0, 1, ('too-few',))
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Literal, Mapping, Union

import numpy as np

from metrics.bootstrap import KIND_CI, KIND_SPREAD, bootstrap_ci, bootstrap_set_spread

from .labels import LabelError, Labels

__all__ = [
    "Cell",
    "FLAG_CI_ERROR",
    "FLAG_ERROR",
    "FLAG_RANK_DEFICIENT",
    "FLAG_TOO_FEW",
    "InfFn",
    "Metric",
    "breakdown",
    "by_subcategory",
    "cell_to_json",
    "centre_interval",
    "crosstab",
    "summarize",
    "to_json",
]

FLAG_TOO_FEW = "too-few"
FLAG_RANK_DEFICIENT = "rank-deficient"
FLAG_ERROR = "error"
FLAG_CI_ERROR = "ci-error"

SetFn = Callable[[np.ndarray], float]
#: ``inf(rows) -> (size-corrected value, reliable)`` of a set metric on the given rows.
InfFn = Callable[[np.ndarray], "tuple[float, bool]"]
Metric = Union[np.ndarray, SetFn]

_SET_FLOOR = 2   # a set statistic (mean + covariance, MMD) needs at least two samples
_INF_FLOOR = 4   # the size correction's fit needs three distinct subset sizes of >= 2 rows
_NAN = float("nan")


@dataclass(frozen=True)
class Cell:
    """One breakdown cell; plain Python numbers (NaN where undefined)."""

    value: float
    ci_low: float
    ci_high: float
    n: int              # samples used
    n_failed: int       # samples of this subset excluded because they failed
    flags: tuple[str, ...] = ()
    interval: str = KIND_CI         # what [ci_low, ci_high] is: "ci" or "spread" (metrics.bootstrap.INTERVAL_KINDS)
    value_inf: float = _NAN         # set metrics with a size correction: the value extrapolated to n = inf
    reliable: bool | None = None    # ... and whether that extrapolation is expected to hold (None: no correction)


def cell_to_json(cell: Cell, nan_as_none: bool = True) -> dict[str, Any]:
    """``Cell`` -> plain dict ``{value, ci_low, ci_high, interval, n, n_failed, flags}``, plus
    ``value_inf`` and ``reliable`` for a set metric with a size correction.

    With ``nan_as_none`` (default) NaN/inf become ``None`` so ``json.dumps(..., allow_nan=False)``
    works; otherwise floats are left as they are (``json`` then writes bare ``NaN``).
    """
    def f(x: float) -> float | None:
        return None if nan_as_none and not math.isfinite(x) else float(x)

    out: dict[str, Any] = {
        "value": f(cell.value),
        "ci_low": f(cell.ci_low),
        "ci_high": f(cell.ci_high),
        "interval": cell.interval,
        "n": int(cell.n),
        "n_failed": int(cell.n_failed),
        "flags": list(cell.flags),
    }
    if cell.reliable is not None:
        out["value_inf"] = f(cell.value_inf)
        out["reliable"] = bool(cell.reliable)
    return out


def to_json(tree: Any, nan_as_none: bool = True) -> Any:
    """Convert every ``Cell`` in a nested dict (a ``breakdown``/``crosstab`` result) with ``cell_to_json``."""
    if isinstance(tree, Cell):
        return cell_to_json(tree, nan_as_none)
    if isinstance(tree, Mapping):
        return {str(k): to_json(v, nan_as_none) for k, v in tree.items()}
    raise TypeError(f"expected a Cell or a mapping of cells, got {type(tree).__name__}")


# ---------------------------------------------------------------------------------------------
# one cell


def _check_values(values: np.ndarray, n_rows: int | None) -> np.ndarray:
    v = np.asarray(values)
    if v.ndim != 1 or (n_rows is not None and v.shape[0] != n_rows):
        want = f"({n_rows},)" if n_rows is not None else "(n_rows,)"
        raise ValueError(f"per-sample metric values must have shape {want}, one per manifest row; got {v.shape}")
    if not (np.issubdtype(v.dtype, np.floating) or np.issubdtype(v.dtype, np.integer)):
        raise ValueError(f"per-sample metric values must be numbers (NaN = failed sample); got dtype {v.dtype}")
    v = v.astype(np.float64)
    bad = np.flatnonzero(np.isinf(v))
    if bad.size:
        raise ValueError(
            f"per-sample metric values must be finite, or NaN for a failed sample; rows "
            f"{bad[:10].tolist()}{' ...' if bad.size > 10 else ''} are infinite"
        )
    return v


def _check_failed(failed: np.ndarray | None, n_rows: int) -> np.ndarray:
    if failed is None:
        return np.zeros(n_rows, dtype=bool)
    f = np.asarray(failed)
    if f.shape != (n_rows,) or f.dtype != bool:
        raise ValueError(
            f"failed must be a boolean mask of shape ({n_rows},), one per manifest row; got {f.dtype} {f.shape}"
        )
    return f


def _flags(n: int, min_n: int, dim: int | None) -> list[str]:
    flags = []
    if n < min_n:
        flags.append(FLAG_TOO_FEW)
    if dim is not None and n < dim:
        flags.append(FLAG_RANK_DEFICIENT)
    return flags


def _sample_cell(v: np.ndarray, rows: np.ndarray, n_boot: int, level: float, seed: int, min_n: int) -> Cell:
    sub = v[rows]
    ok = ~np.isnan(sub)
    x = sub[ok]
    n, n_failed = int(x.size), int(sub.size - x.size)
    value = float(np.mean(x)) if n else _NAN
    lo = hi = _NAN
    if n_boot > 0 and n >= 2:
        lo, hi = (float(b) for b in bootstrap_ci(x, n_boot=n_boot, level=level, seed=seed))
    return Cell(value, lo, hi, n, n_failed, tuple(_flags(n, min_n, None)))


def centre_interval(lo: float, hi: float, value: float, resample_value: float) -> tuple[float, float]:
    """Move a bootstrap interval of the resample form of a statistic onto the reported value.

    Set-metric resamples may use a fast exact form of the statistic while the reported value
    follows the protocol's own rule (the official float32 SVD Fréchet distance, say).  Their
    difference on the full subset is a fixed numerical offset -- tiny for real features, but it
    can exceed the interval's width when the value is float32 noise around 0 -- so the interval
    is shifted by it: it then lies around the reported value as the resample interval lies
    around the resample value.  Non-finite inputs leave the interval unchanged.

    Example:
        >>> centre_interval(1.0, 3.0, 2.5, 2.0)
        (1.5, 3.5)
    """
    if not all(math.isfinite(x) for x in (lo, hi, value, resample_value)):
        return lo, hi
    shift = float(value) - float(resample_value)
    return float(lo) + shift, float(hi) + shift


def _size_corrected(inf: InfFn, keep: np.ndarray, label: str) -> tuple[float, bool]:
    """``(value_inf, reliable)`` of a set metric on rows ``keep``; NaN and False when it cannot be fitted."""
    if keep.size < _INF_FLOOR:
        return _NAN, False
    try:
        v, ok = inf(keep)
    except (ValueError, ArithmeticError) as e:
        warnings.warn(f"size-corrected set metric failed on {label} (n={keep.size}): {type(e).__name__}: {e}",
                      RuntimeWarning, stacklevel=4)
        return _NAN, False
    v = float(v)
    return (v, bool(ok)) if math.isfinite(v) else (_NAN, False)


def _set_cell(
    fn: SetFn, rows: np.ndarray, failed: np.ndarray, dim: int | None,
    n_boot: int, level: float, seed: int, min_n: int, label: str, resample: SetFn | None = None,
    inf: InfFn | None = None,
) -> Cell:
    keep = rows[~failed[rows]]
    n, n_failed = int(keep.size), int(rows.size - keep.size)
    flags = _flags(n, min_n, dim)
    value = lo = hi = _NAN
    if n >= _SET_FLOOR:
        try:
            value = float(fn(keep))
        except (ValueError, ArithmeticError) as e:
            # A subset the statistic cannot handle (e.g. singular covariance) is a flagged cell,
            # not a crashed run; the message still reaches the user.
            warnings.warn(f"set metric failed on {label} (n={n}): {type(e).__name__}: {e}", RuntimeWarning,
                          stacklevel=3)
            flags.append(FLAG_ERROR)
        if n_boot > 0 and math.isfinite(value):
            boot = resample or fn
            try:
                lo, hi = (float(b) for b in bootstrap_set_spread(
                    lambda j: boot(keep[np.asarray(j)]), n, n_boot=n_boot, level=level, seed=seed))
                if resample is not None:
                    lo, hi = centre_interval(lo, hi, value, float(resample(keep)))
            except (ValueError, ArithmeticError) as e:
                warnings.warn(f"set metric bootstrap failed on {label} (n={n}): {type(e).__name__}: {e}",
                              RuntimeWarning, stacklevel=3)
                flags.append(FLAG_CI_ERROR)
    if inf is None:
        return Cell(value, lo, hi, n, n_failed, tuple(flags), KIND_SPREAD)
    v_inf, reliable = _size_corrected(inf, keep, label) if math.isfinite(value) else (_NAN, False)
    return Cell(value, lo, hi, n, n_failed, tuple(flags), KIND_SPREAD, v_inf, reliable)


class _Runner:
    """Validated metric + options, applied to any row subset."""

    def __init__(
        self, metric: Metric, n_rows: int, failed: np.ndarray | None, dim: int | None,
        n_boot: int | None, level: float, seed: int, min_n: int, resample: SetFn | None = None,
        inf: InfFn | None = None,
    ) -> None:
        if not 0.0 < level < 1.0:
            raise ValueError(f"level must be in (0, 1), got {level}")
        if n_boot is not None and n_boot < 0:
            raise ValueError(f"n_boot must be >= 0 (0 = no CI), got {n_boot}")
        if min_n < 0:
            raise ValueError(f"min_n must be >= 0, got {min_n}")
        self.kind: Literal["sample", "set"] = "set" if callable(metric) else "sample"
        self.n_rows, self.level, self.seed, self.min_n, self.dim = n_rows, level, seed, min_n, dim
        self.failed = _check_failed(failed, n_rows)
        if self.kind == "sample":
            if dim is not None:
                raise ValueError("dim (the feature dimension) applies to set metrics only")
            if inf is not None:
                raise ValueError("inf (the size correction) applies to set metrics only")
            values = _check_values(np.asarray(metric), n_rows)
            # A sample marked failed counts as failed even if a value was written for it.
            self.values = np.where(self.failed, np.nan, values)
            self.n_boot = 1000 if n_boot is None else n_boot
        else:
            if dim is not None and dim < 1:
                raise ValueError(f"dim must be a positive feature dimension, got {dim}")
            self.fn: SetFn = metric  # type: ignore[assignment]
            self.resample = resample
            self.inf = inf
            self.n_boot = 200 if n_boot is None else n_boot

    def __call__(self, rows: np.ndarray, label: str) -> Cell:
        if self.kind == "sample":
            return _sample_cell(self.values, rows, self.n_boot, self.level, self.seed, self.min_n)
        return _set_cell(self.fn, rows, self.failed, self.dim, self.n_boot, self.level, self.seed, self.min_n, label,
                         self.resample, self.inf)


def summarize(
    metric: Metric,
    rows: np.ndarray | None = None,
    *,
    n_rows: int | None = None,
    failed: np.ndarray | None = None,
    dim: int | None = None,
    n_boot: int | None = None,
    level: float = 0.95,
    seed: int = 0,
    min_n: int = 2,
    resample: SetFn | None = None,
    inf: InfFn | None = None,
) -> Cell:
    """One cell for ``metric`` over ``rows`` (default: every row): the ``overall`` entry of a result.

    ``n_rows`` is needed only for a set metric (the manifest length); for per-sample values it is
    ``len(values)``.  Other arguments as in ``breakdown``.
    """
    if n_rows is None:
        if callable(metric):
            raise ValueError("summarize(set_metric, ...) needs n_rows, the number of manifest rows")
        n_rows = int(np.asarray(metric).shape[0]) if np.ndim(metric) else 0
    run = _Runner(metric, n_rows, failed, dim, n_boot, level, seed, min_n, resample, inf)
    idx = np.arange(n_rows, dtype=np.int64) if rows is None else _rows(rows, n_rows)
    return run(idx, "all rows")


def _rows(rows: np.ndarray, n_rows: int) -> np.ndarray:
    idx = np.asarray(rows, dtype=np.int64).ravel()
    if idx.size and (idx.min() < 0 or idx.max() >= n_rows):
        raise ValueError(f"rows must lie in 0..{n_rows - 1}; got {idx.min()}..{idx.max()}")
    return idx


# ---------------------------------------------------------------------------------------------
# tables of cells


def breakdown(
    labels: Labels,
    metric: Metric,
    *,
    failed: np.ndarray | None = None,
    dim: int | None = None,
    n_boot: int | None = None,
    level: float = 0.95,
    seed: int = 0,
    min_n: int = 2,
    resample: SetFn | None = None,
    inf: InfFn | None = None,
) -> dict[str, dict[str, Cell]]:
    """``{aspect_key: {category_key: Cell}}`` for every category of the taxonomy, in taxonomy order.

    Args:
        labels: parsed labels of the manifest rows.
        metric: per-sample values, float ``(n_rows,)`` with NaN = failed; or a set-metric callable
            ``fn(idx: int64 array of row positions) -> float``.
        failed: bool ``(n_rows,)``, True = the sample failed (set metrics; also honoured for
            per-sample values).
        dim: feature dimension of a set metric, for the ``rank-deficient`` flag.
        n_boot: bootstrap resamples for the CI; 0 = none; None = 1000 (per-sample) / 200 (set).
        level: CI level.  seed: bootstrap seed (the same for every cell).
        min_n: cells with fewer samples are flagged ``too-few``.
        resample: set metrics only: the same statistic in a form used for the bootstrap resamples
            (e.g. an exact fast form); the interval is then moved onto the value
            (:func:`centre_interval`).
        inf: set metrics only: ``inf(rows) -> (value, reliable)``, the size-corrected value of
            the statistic on those rows (cells then carry ``value_inf`` and ``reliable``).

    Raises:
        ValueError: values of the wrong shape/dtype or infinite, a bad ``failed`` mask, bad options.
    """
    run = _Runner(metric, labels.n_rows, failed, dim, n_boot, level, seed, min_n, resample, inf)
    out: dict[str, dict[str, Cell]] = {}
    for a in labels.taxonomy.aspects:
        member = labels.membership(a.key)
        out[a.key] = {
            c.key: run(np.flatnonzero(member[:, c.index]), f"{a.key}/{c.key}") for c in a.categories
        }
    return out


def by_subcategory(
    labels: Labels,
    metric: Metric,
    *,
    failed: np.ndarray | None = None,
    dim: int | None = None,
    n_boot: int | None = None,
    level: float = 0.95,
    seed: int = 0,
    min_n: int = 2,
    resample: SetFn | None = None,
    inf: InfFn | None = None,
) -> dict[str, dict[str, dict[str, Cell]]]:
    """``{aspect_key: {category_key: {subcategory_key: Cell}}}`` for aspects with subcategory labels.

    Only aspects whose subcategory column was in the manifest appear, and within them only
    categories that have subcategories.  Arguments as in ``breakdown``.
    """
    run = _Runner(metric, labels.n_rows, failed, dim, n_boot, level, seed, min_n, resample, inf)
    out: dict[str, dict[str, dict[str, Cell]]] = {}
    for a in labels.taxonomy.aspects:
        if not labels.has_subcategories(a.key):
            continue
        out[a.key] = {
            c.key: {
                s.key: run(labels.subcategory_indices(a.key, c.key, s.key), f"{a.key}/{c.key}/{s.key}")
                for s in c.subcategories
            }
            for c in a.categories
            if c.subcategories
        }
    return out


def crosstab(
    labels: Labels,
    metric: Metric,
    aspect_a: str,
    aspect_b: str,
    *,
    failed: np.ndarray | None = None,
    dim: int | None = None,
    n_boot: int | None = None,
    level: float = 0.95,
    seed: int = 0,
    min_n: int = 2,
    resample: SetFn | None = None,
    inf: InfFn | None = None,
) -> dict[str, dict[str, Cell]]:
    """``{category_of_a: {category_of_b: Cell}}`` over the rows carrying both categories.

    Raises:
        LabelError: ``aspect_a == aspect_b``.  KeyError: unknown aspect (the message lists them).
    """
    if aspect_a == aspect_b:
        raise LabelError(f"crosstab needs two different aspects; got {aspect_a!r} twice")
    tax = labels.taxonomy
    a, b = tax.aspect(aspect_a), tax.aspect(aspect_b)
    run = _Runner(metric, labels.n_rows, failed, dim, n_boot, level, seed, min_n, resample, inf)
    ma, mb = labels.membership(a.key), labels.membership(b.key)
    return {
        ca.key: {
            cb.key: run(np.flatnonzero(ma[:, ca.index] & mb[:, cb.index]), f"{a.key}/{ca.key} x {b.key}/{cb.key}")
            for cb in b.categories
        }
        for ca in a.categories
    }
