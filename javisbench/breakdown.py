"""Per-category cells for a run: per-sample metrics averaged, set metrics recomputed per subset."""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from javisbench.evaluate import Plan, Scores

#: resamples per set-metric cell (each one a full FD/MMD on the subset)
SET_CELL_BOOTSTRAP = 50


def set_metric_fn(metric: Any, rows: np.ndarray, fake: np.ndarray, real: np.ndarray, protocol: Any,
                  n_rows: int, fast: bool = False) -> tuple[Callable[[np.ndarray], float], np.ndarray]:
    """``fn(row positions) -> value`` on the paired rows, and the failed-row mask.

    ``fast``: the metric's resample form (exact float64, cheap on small sets) for bootstraps.
    """
    pos = np.full(n_rows, -1, np.int64)
    pos[rows] = np.arange(rows.size)
    f = (metric.resample_fn or metric.set_fn) if fast else metric.set_fn

    def fn(idx: np.ndarray) -> float:
        p = pos[np.asarray(idx, np.int64)]
        return float(f(fake[p], real[p], protocol))

    return fn, pos < 0


def per_category_cells(plan: "Plan", scores: "Scores") -> dict[str, dict[str, dict[str, Any]]]:
    """``{aspect: {category: {metric: {value, ci_low, ci_high, n, n_failed, flags}}}}``."""
    from taxonomy.breakdown import breakdown, cell_to_json

    from javisbench.features import memo_key

    p = plan.protocol
    n_rows = len(plan.manifest)
    out: dict[str, dict[str, dict[str, Any]]] = {}

    def put(key: str, tree: dict[str, dict[str, Any]]) -> None:
        for aspect, cats in tree.items():
            for cat, cell in cats.items():
                out.setdefault(aspect, {}).setdefault(cat, {})[key] = cell_to_json(cell)

    for key, vals in scores.per_sample.items():
        put(key, breakdown(plan.labels, np.asarray(vals, np.float64), n_boot=p.bootstrap, level=p.ci_level, seed=p.seed))
    metrics = {m.key: m for m in plan.metrics}
    membership = np.concatenate([plan.labels.membership(a.key) for a in plan.taxonomy.aspects], axis=1)
    for key, (rows, fake, real) in scores.set_inputs.items():
        mkey = memo_key("set-cells", key, p.fingerprint, SET_CELL_BOOTSTRAP, n_rows, rows, fake, real, membership,
                        plan.taxonomy.fingerprint)
        cached = plan.store.memo_get(mkey)
        if cached is not None:
            for aspect, cats in cached.items():
                for cat, cell in cats.items():
                    out.setdefault(aspect, {}).setdefault(cat, {})[key] = cell
            continue
        # CIs from the fast form; each cell's value from the protocol's own rule on the subset
        fast, failed = set_metric_fn(metrics[key], rows, fake, real, p, n_rows, fast=True)
        exact, _ = set_metric_fn(metrics[key], rows, fake, real, p, n_rows)
        tree = breakdown(plan.labels, fast, failed=failed, dim=fake.shape[1], n_boot=SET_CELL_BOOTSTRAP,
                         level=p.ci_level, seed=p.seed)
        for aspect, cats in tree.items():
            for cat, cell in cats.items():
                idx = np.setdiff1d(plan.labels.indices(aspect, cat), np.flatnonzero(failed))
                if idx.size >= 2 and "error" not in cell.flags:
                    cats[cat] = dataclasses.replace(cell, value=exact(idx))
        put(key, tree)
        plan.store.memo_put(mkey, {a: {c: out[a][c][key] for c in cats} for a, cats in tree.items()})
    # keep every aspect/category present even when no metric produced a cell
    for a in plan.taxonomy.aspects:
        for c in a.categories:
            out.setdefault(a.key, {}).setdefault(c.key, {})
    return out
