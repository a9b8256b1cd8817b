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


def centre_interval(lo: float | None, hi: float | None, value: float, exact_value: float) -> tuple[Any, Any]:
    """Move a bootstrap interval of the exact float64 statistic onto the protocol's own value.

    Set-metric resamples use the metric's fast exact form; the reported value follows the
    protocol (the official float32 SVD FD, say).  Their difference on the full set is a fixed
    numerical offset — tiny for real features, but it can exceed the interval's width when the
    value is float32 noise around 0 — so the interval is shifted by it: it then lies around the
    reported value as the exact interval lies around the exact value.  Under javisbench-fixed the
    two agree and the shift is ~0.
    """
    if lo is None or hi is None or not (np.isfinite(lo) and np.isfinite(hi)):
        return lo, hi
    if not (np.isfinite(value) and np.isfinite(exact_value)):
        return lo, hi
    shift = float(value) - float(exact_value)
    return float(lo) + shift, float(hi) + shift


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
        if key in scores.unpaired:
            continue      # window rows of all clips, shuffled: not attributable to categories
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
                    value = exact(idx)
                    lo, hi = centre_interval(cell.ci_low, cell.ci_high, value, cell.value)
                    cats[cat] = dataclasses.replace(cell, value=value, ci_low=lo, ci_high=hi)
        put(key, tree)
        plan.store.memo_put(mkey, {a: {c: out[a][c][key] for c in cats} for a, cats in tree.items()})
    # keep every aspect/category present even when no metric produced a cell
    for a in plan.taxonomy.aspects:
        for c in a.categories:
            out.setdefault(a.key, {}).setdefault(c.key, {})
    return out


def per_subcategory_cells(plan: "Plan", scores: "Scores") -> dict[str, Any]:
    """``{aspect: {category: {subcategory: {metric: cell}}}}`` for per-sample metrics, when the
    manifest has ``subcat{a}_ind`` columns (empty otherwise)."""
    from taxonomy.breakdown import by_subcategory, cell_to_json

    p = plan.protocol
    out: dict[str, Any] = {}
    for key, vals in scores.per_sample.items():
        tree = by_subcategory(plan.labels, np.asarray(vals, np.float64), n_boot=p.bootstrap, level=p.ci_level, seed=p.seed)
        for aspect, cats in tree.items():
            for cat, subs in cats.items():
                for sub, cell in subs.items():
                    out.setdefault(aspect, {}).setdefault(cat, {}).setdefault(sub, {})[key] = cell_to_json(cell)
    return out


def crosstab_cells(results: dict[str, Any], labels: Any, aspect_a: str, aspect_b: str,
                   metrics: list[str] | None = None) -> dict[str, Any]:
    """Cross-tab of two aspects for the per-sample metrics of a results file:
    ``{metric: {category_a: {category_b: cell}}}`` over the samples carrying both categories."""
    from taxonomy.breakdown import cell_to_json, crosstab

    p = results["protocol"]["values"]
    ids = results["sample_ids"]
    out: dict[str, Any] = {}
    for key, meta in results["metrics"].items():
        if meta["kind"] != "sample" or key not in results["overall"] or (metrics and key not in metrics):
            continue
        vals = np.array([np.nan if results["per_sample"][s].get(key) is None else results["per_sample"][s][key] for s in ids])
        tree = crosstab(labels, vals, aspect_a, aspect_b, n_boot=p["bootstrap"], level=p["ci_level"], seed=p["seed"])
        out[key] = {a: {b: cell_to_json(c) for b, c in row.items()} for a, row in tree.items()}
    return out


def labels_for_results(results: dict[str, Any], manifest: str | None = None) -> Any:
    """The category labels of a results file's samples, re-read from its bench manifest.

    Raises:
        ValueError: the manifest is gone, changed (sha256), or has no category columns.
    """
    from pathlib import Path

    from javisbench.evaluate import load_labels
    from javisbench.manifest import load_manifest

    bench = results["bench"]
    if bench.get("kind") == "folder":
        raise ValueError(f"bench {bench.get('name')} is a folder bench: its clips carry no category labels")
    path = Path(manifest or bench["path"])
    if not path.is_file():
        raise ValueError(f"bench manifest {path} not found; pass --manifest with the CSV that was scored")
    man = load_manifest(path)
    if man.sha256 != bench["manifest_sha256"]:
        raise ValueError(f"{path} is not the manifest that was scored (sha256 {man.sha256[:12]}... vs "
                         f"{bench['manifest_sha256'][:12]}...)")
    tax_ref = (bench.get("taxonomy") or {}).get("name")
    _, labels = load_labels(man, tax_ref)
    if labels is None:
        raise ValueError(f"{path} has no cat{{a}}_ind columns: nothing to cross-tabulate")
    pos = {r.sample_id: i for i, r in enumerate(man.rows)}
    return labels.subset([pos[s] for s in results["sample_ids"]])
