"""Cells for a run: the overall entry, per category, per subcategory and cross-tabs.

Every cell (value, CI, n, flags) comes from one function, ``taxonomy.breakdown``'s runner:
the overall entry is the cell over all rows (``summarize``), per category and per subcategory
call the same function on the category's rows.  Per-sample metrics are averaged; set metrics
are recomputed on the rows (value by the protocol's own rule, bootstrap resamples by the
metric's fast exact form, the interval moved onto the value).  Resample counts come from the
protocol (``bootstrap`` for per-sample means, ``set_bootstrap`` for set metrics).

Every cell says what its interval is (``interval``: ``"ci"`` for per-sample means, ``"spread"``
for set metrics; see ``metrics.bootstrap``).  Set-metric cells also carry ``value_inf``, the
metric extrapolated to an infinite set from the same rows (the suite's ``inf_fn``, e.g.
FID_inf-style for FVD/FAD), and its ``reliable`` flag; ``value`` stays the protocol's number.
Set-metric cells are memoised in the feature store, the size correction included.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from javisbench.features import FeatureStore
    from javisbench.run import Run, Scores


def _f(x: Any) -> float | None:
    import math

    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def set_metric_fns(metric: Any, rows: np.ndarray, fake: np.ndarray, real: np.ndarray, protocol: Any,
                   n_rows: int) -> tuple[Callable[[np.ndarray], float], Callable[[np.ndarray], float], np.ndarray]:
    """``(value fn, resample fn, failed mask)``: ``fn(row positions) -> value`` on the paired rows
    by the protocol's rule and by the metric's fast exact form, and the rows without features."""
    pos = np.full(n_rows, -1, np.int64)
    pos[rows] = np.arange(rows.size)

    def make(f: Callable[..., float]) -> Callable[[np.ndarray], float]:
        def fn(idx: np.ndarray) -> float:
            p = pos[np.asarray(idx, np.int64)]
            return float(f(fake[p], real[p], protocol))
        return fn

    return make(metric.set_fn), make(metric.resample_fn or metric.set_fn), pos < 0


def set_metric_inf(metric: Any, rows: np.ndarray, fake: np.ndarray, real: np.ndarray, protocol: Any,
                   n_rows: int) -> Callable[[np.ndarray], tuple[float, bool]] | None:
    """``inf(row positions) -> (value_inf, reliable)`` on the paired rows by the metric's size
    correction (``Metric.inf_fn``), or None for a metric without one."""
    if getattr(metric, "inf_fn", None) is None:
        return None
    pos = np.full(n_rows, -1, np.int64)
    pos[rows] = np.arange(rows.size)

    def inf(idx: np.ndarray) -> tuple[float, bool]:
        p = pos[np.asarray(idx, np.int64)]
        v, ok = metric.inf_fn(fake[p], real[p], protocol)
        return float(v), bool(ok)
    return inf


def _kwargs(run: "Run", kind: str) -> dict[str, Any]:
    p = run.protocol
    return {"n_boot": p.bootstrap if kind == "sample" else p.set_bootstrap, "level": p.ci_level, "seed": p.seed}


def _metric_args(run: "Run", scores: "Scores", key: str) -> tuple[Any, dict[str, Any]]:
    """What the cell function takes for metric ``key``: the values (or value fn) and options."""
    if key in scores.per_sample:
        return np.asarray(scores.per_sample[key], np.float64), _kwargs(run, "sample")
    rows, fake, real = scores.set_inputs[key]
    m = run.metric(key)
    fn, resample, failed = set_metric_fns(m, rows, fake, real, run.protocol, run.n_rows)
    inf = set_metric_inf(m, rows, fake, real, run.protocol, run.n_rows)
    return fn, {**_kwargs(run, "set"), "failed": failed, "dim": fake.shape[1], "resample": resample, "inf": inf}


def _valid_cell(cell: Any) -> bool:
    """A memoised set-metric cell has the structure cells are written with (value, n, flags,
    interval; finite numbers; ``value_inf`` and ``reliable`` together or not at all)."""
    import math

    from metrics.bootstrap import INTERVAL_KINDS

    if not isinstance(cell, dict) or not {"value", "n", "flags", "interval"} <= set(cell) \
            or not isinstance(cell["flags"], list) or cell["interval"] not in set(INTERVAL_KINDS.values()):
        return False
    for k in ("value", "ci_low", "ci_high", "value_inf"):
        v = cell.get(k)
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)):
            return False
    if ("value_inf" in cell) != ("reliable" in cell) or ("reliable" in cell and not isinstance(cell["reliable"], bool)):
        return False
    return isinstance(cell["n"], int) and not isinstance(cell["n"], bool) and cell["n"] >= 0


def _valid_tree(tree: Any) -> bool:
    """A memoised ``{aspect: {category: cell}}`` tree whose every cell is valid."""
    return isinstance(tree, dict) and all(
        isinstance(cats, dict) and all(_valid_cell(c) for c in cats.values()) for cats in tree.values())


def _memo(store: "FeatureStore | None", key: str, compute: Callable[[], Any],
          valid: Callable[[Any], bool] = _valid_cell) -> Any:
    if store is None:
        return compute()
    got = store.memo_get(key)
    if not valid(got):     # absent, or a damaged / edited memo entry: recompute it
        got = compute()
        store.memo_put(key, got)
    return got


#: bumped when memoised set cells change shape (2: interval label, value_inf, reliable)
_MEMO_VERSION = 2


def _set_memo_key(run: "Run", scores: "Scores", what: str, key: str) -> str:
    from javisbench.features import memo_key

    what = f"{what}/{_MEMO_VERSION}"
    rows, fake, real = scores.set_inputs[key]
    extra = [] if run.labels is None else [np.concatenate([run.labels.membership(a.key) for a in run.taxonomy.aspects],
                                                          axis=1), run.taxonomy.fingerprint]
    return memo_key(what, key, run.protocol.fingerprint, run.n_rows, rows, fake, real, *extra)


def overall_cells(run: "Run", scores: "Scores", store: "FeatureStore | None" = None) -> tuple[dict[str, Any], dict[str, str]]:
    """``{metric: cell}`` over all rows, and ``{metric: reason}`` for set metrics that failed."""
    from taxonomy.breakdown import cell_to_json, summarize

    out: dict[str, Any] = {}
    failed: dict[str, str] = {}
    for key in list(scores.per_sample) + list(scores.set_inputs):
        if key in scores.unpaired:
            out[key] = _memo(store, _set_memo_key(run, scores, "set-overall-windows", key),
                             lambda k=key: windowed_set_cell(run, scores, k))
            continue
        metric, kw = _metric_args(run, scores, key)
        if key in scores.set_inputs:
            cell = _memo(store, _set_memo_key(run, scores, "set-overall", key),
                         lambda m=metric, kw=kw: cell_to_json(summarize(m, n_rows=run.n_rows, **kw)))
            if "error" in cell["flags"]:
                failed[key] = f"failed: {run.metric(key).title} could not be computed on the {cell['n']} samples"
                continue
        else:
            cell = cell_to_json(summarize(metric, **kw))
        out[key] = cell
    return out, failed


def windowed_set_cell(run: "Run", scores: "Scores", key: str) -> dict[str, Any]:
    """A set metric over unpaired window rows: spread from resampling fake and real rows independently,
    and the size-corrected value (``value_inf``, ``reliable``) when the metric has one."""
    import warnings

    from metrics.bootstrap import KIND_SPREAD, bootstrap_two_set_spread
    from taxonomy.breakdown import centre_interval

    p = run.protocol
    metric = run.metric(key)
    idx, fake, real = scores.set_inputs[key]
    value = metric.set_fn(fake, real, p)
    fast = metric.resample_fn or metric.set_fn
    lo, hi = bootstrap_two_set_spread(lambda i, j: float(fast(fake[i], real[j], p)), fake.shape[0], real.shape[0],
                                  n_boot=p.set_bootstrap, level=p.ci_level, seed=p.seed)
    lo, hi = centre_interval(lo, hi, value, float(fast(fake, real, p)))
    n_clips = int(np.unique(idx).size)
    flags = ["windows"] + (["rank-deficient"] if min(fake.shape[0], real.shape[0]) < fake.shape[1] else [])
    cell = {"value": _f(value), "ci_low": _f(lo), "ci_high": _f(hi), "interval": KIND_SPREAD, "n": int(fake.shape[0]),
            "n_real": int(real.shape[0]), "n_clips": n_clips, "n_failed": int(run.n_rows - n_clips), "flags": flags}
    if metric.inf_fn is not None:
        v_inf, reliable = None, False
        try:
            v, ok = metric.inf_fn(fake, real, p)
            v_inf, reliable = _f(v), bool(ok) and _f(v) is not None
        except (ValueError, ArithmeticError) as e:
            warnings.warn(f"size-corrected {metric.title} failed on the window rows: {type(e).__name__}: {e}",
                          RuntimeWarning, stacklevel=2)
        cell.update(value_inf=v_inf, reliable=reliable)
    return cell


def per_category_cells(run: "Run", scores: "Scores", store: "FeatureStore | None" = None) -> dict[str, dict[str, dict[str, Any]]]:
    """``{aspect: {category: {metric: {value, ci_low, ci_high, n, n_failed, flags}}}}``."""
    from taxonomy.breakdown import breakdown, to_json

    out: dict[str, dict[str, dict[str, Any]]] = {a.key: {c.key: {} for c in a.categories} for a in run.taxonomy.aspects}
    for key in list(scores.per_sample) + list(scores.set_inputs):
        if key in scores.unpaired:
            continue      # window rows of all clips, shuffled: not attributable to categories
        metric, kw = _metric_args(run, scores, key)
        if key in scores.set_inputs:
            tree = _memo(store, _set_memo_key(run, scores, "set-cells", key),
                         lambda m=metric, kw=kw: to_json(breakdown(run.labels, m, **kw)), valid=_valid_tree)
        else:
            tree = to_json(breakdown(run.labels, metric, **kw))
        for aspect, cats in tree.items():
            for cat, cell in cats.items():
                out[aspect][cat][key] = cell
    return out


def per_subcategory_cells(run: "Run", scores: "Scores") -> dict[str, Any]:
    """``{aspect: {category: {subcategory: {metric: cell}}}}`` for per-sample metrics, when the
    manifest has ``subcat{a}_ind`` columns (empty otherwise)."""
    from taxonomy.breakdown import by_subcategory, to_json

    out: dict[str, Any] = {}
    for key, vals in scores.per_sample.items():
        tree = to_json(by_subcategory(run.labels, np.asarray(vals, np.float64), **_kwargs(run, "sample")))
        for aspect, cats in tree.items():
            for cat, subs in cats.items():
                for sub, cell in subs.items():
                    out.setdefault(aspect, {}).setdefault(cat, {}).setdefault(sub, {})[key] = cell
    return out


def crosstab_cells(results: dict[str, Any], labels: Any, aspect_a: str, aspect_b: str,
                   metrics: list[str] | None = None) -> dict[str, Any]:
    """Cross-tab of two aspects for the per-sample metrics of a results file:
    ``{metric: {category_a: {category_b: cell}}}`` over the samples carrying both categories."""
    from taxonomy.breakdown import crosstab, to_json

    p = results["protocol"]["values"]
    ids = results["sample_ids"]
    out: dict[str, Any] = {}
    for key, meta in results["metrics"].items():
        if meta["kind"] != "sample" or key not in results["overall"] or (metrics and key not in metrics):
            continue
        vals = np.array([np.nan if results["per_sample"][s].get(key) is None else results["per_sample"][s][key] for s in ids])
        out[key] = to_json(crosstab(labels, vals, aspect_a, aspect_b, n_boot=p["bootstrap"], level=p["ci_level"],
                                    seed=p["seed"]))
    return out
