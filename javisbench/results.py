"""Results: one JSON file per run (schema below), also the leaderboard submission format.

Schema (``schema_version`` 1.x; readers refuse another major version):

* ``schema_version``, ``javisbench_version``, ``git_commit``, ``created`` — provenance
* ``protocol``: ``{name, version, fingerprint, values}`` — every number-changing choice
* ``bench``: ``{name, path, manifest_sha256, n_rows, taxonomy}``
* ``model``: ``{name, ...free-form metadata}``
* ``encoders``: encoder id -> ``{fingerprint, weights_sha256}``; ``libraries``: versions
* ``seed``, ``device``
* ``metrics``: key -> ``{title, kind, higher_is_better, official, encoders}``
* ``overall``: key -> ``{value, ci_low, ci_high, n, n_failed}``
* ``per_category``: aspect -> category -> key -> ``{value, ci_low, ci_high, n, flags}``
* ``per_subcategory``: aspect -> category -> subcategory -> key -> cell (when labelled)
* ``per_sample``: sample id -> key -> value (null where the sample failed)
* ``failures``: sample id -> stage -> message;  ``warnings``: sample id -> [message]
* ``skipped``: key -> reason (the file and command needed; never a number)
* ``timing``: seconds per stage, samples/s, feature-store hits
"""
from __future__ import annotations

import datetime as _dt
import json
import math
import os
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

import javisbench

if TYPE_CHECKING:  # pragma: no cover
    from javisbench.evaluate import Plan, Scores

SCHEMA_VERSION = "1.1"   # 1.1: bench.kind, reference provenance, window counts on set cells
SET_BOOTSTRAP = 100  # resamples for overall set-metric CIs (each one is a full FD/MMD)


class ResultsError(ValueError):
    pass


def _f(x: Any) -> float | None:
    """JSON-safe float: NaN/inf become null (the original wrote bare NaN, which is not JSON)."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def git_commit() -> str | None:
    here = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def library_versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {}
    for name in ("numpy", "scipy", "torch", "torchvision", "av", "opencv-python-headless", "librosa", "transformers",
                 "open_clip_torch", "imagebind-unofficial", "timm"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            continue
    return out


def _sample_cell(values: np.ndarray, protocol: Any) -> dict[str, Any]:
    from metrics.bootstrap import bootstrap_ci

    v = np.asarray(values, np.float64)
    ok = v[np.isfinite(v)]
    n_failed = int(v.size - ok.size)
    if ok.size == 0:
        return {"value": None, "ci_low": None, "ci_high": None, "n": 0, "n_failed": n_failed}
    lo, hi = bootstrap_ci(ok, n_boot=protocol.bootstrap, level=protocol.ci_level, seed=protocol.seed)
    return {"value": _f(ok.mean()), "ci_low": _f(lo), "ci_high": _f(hi), "n": int(ok.size), "n_failed": n_failed}


def _set_cell(metric: Any, fake: np.ndarray, real: np.ndarray, protocol: Any, n_rows: int, with_ci: bool = True) -> dict[str, Any]:
    from metrics.bootstrap import bootstrap_set_ci

    from javisbench.breakdown import centre_interval

    n = fake.shape[0]
    flags = []
    if n < fake.shape[1]:
        flags.append("rank-deficient")
    value = metric.set_fn(fake, real, protocol)
    lo = hi = None
    if with_ci and n >= 2:
        from javisbench.breakdown import set_metric_fn

        # resamples use the metric's fast exact form: only the CI needs them
        fn, _ = set_metric_fn(metric, np.arange(n), fake, real, protocol, n, fast=True)
        lo, hi = bootstrap_set_ci(fn, n, n_boot=SET_BOOTSTRAP, level=protocol.ci_level, seed=protocol.seed)
        lo, hi = centre_interval(lo, hi, value, fn(np.arange(n)))
    return {"value": _f(value), "ci_low": _f(lo), "ci_high": _f(hi), "n": int(n), "n_failed": int(n_rows - n), "flags": flags}


def _windowed_set_cell(metric: Any, idx: np.ndarray, fake: np.ndarray, real: np.ndarray, protocol: Any,
                       n_rows: int) -> dict[str, Any]:
    """A set metric over unpaired window rows: CI from resampling fake and real rows independently."""
    from metrics.bootstrap import bootstrap_two_set_ci

    from javisbench.breakdown import centre_interval

    value = metric.set_fn(fake, real, protocol)
    fast = metric.resample_fn or metric.set_fn
    lo, hi = bootstrap_two_set_ci(lambda i, j: float(fast(fake[i], real[j], protocol)), fake.shape[0], real.shape[0],
                                  n_boot=SET_BOOTSTRAP, level=protocol.ci_level, seed=protocol.seed)
    lo, hi = centre_interval(lo, hi, value, float(fast(fake, real, protocol)))
    n_clips = int(np.unique(idx).size)
    flags = ["windows"] + (["rank-deficient"] if min(fake.shape[0], real.shape[0]) < fake.shape[1] else [])
    return {"value": _f(value), "ci_low": _f(lo), "ci_high": _f(hi), "n": int(fake.shape[0]), "n_real": int(real.shape[0]),
            "n_clips": n_clips, "n_failed": int(n_rows - n_clips), "flags": flags}


def assemble(plan: "Plan", scores: "Scores") -> dict[str, Any]:
    p = plan.protocol
    rows = plan.manifest.rows
    overall: dict[str, Any] = {}
    for key, vals in scores.per_sample.items():
        overall[key] = _sample_cell(vals, p)
    metric_by_key = {m.key: m for m in plan.metrics}
    from javisbench.features import memo_key

    for key, (idx, fake, real) in scores.set_inputs.items():
        mkey = memo_key("set-overall", key, p.fingerprint, SET_BOOTSTRAP, len(rows), fake, real, idx,
                        key in scores.unpaired)
        cached = plan.store.memo_get(mkey)
        if cached is not None:
            overall[key] = cached
            continue
        try:
            if key in scores.unpaired:
                overall[key] = _windowed_set_cell(metric_by_key[key], idx, fake, real, p, len(rows))
            else:
                overall[key] = _set_cell(metric_by_key[key], fake, real, p, len(rows))
            plan.store.memo_put(mkey, overall[key])
        except (ValueError, ArithmeticError, np.linalg.LinAlgError) as e:
            plan.skipped[key] = f"failed: {e}"

    per_category: dict[str, Any] = {}
    if plan.labels is not None:
        from javisbench.breakdown import per_category_cells

        per_category = per_category_cells(plan, scores)
    per_subcategory: dict[str, Any] = {}
    if plan.labels is not None and any(plan.labels.has_subcategories(a.key) for a in plan.taxonomy.aspects):
        from javisbench.breakdown import per_subcategory_cells

        per_subcategory = per_subcategory_cells(plan, scores)

    per_sample: dict[str, Any] = {}
    if plan.config.per_sample:
        for i, r in enumerate(rows):
            per_sample[r.sample_id] = {k: _f(v[i]) for k, v in scores.per_sample.items()}

    results: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "javisbench_version": javisbench.__version__,
        "git_commit": git_commit(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "protocol": {"name": p.name, "version": p.version, "fingerprint": p.fingerprint, "values": p.values()},
        "bench": {
            "name": plan.manifest.name,
            "kind": "folder" if plan.bench_def is not None else "csv",
            "path": str(plan.manifest.path.resolve()),
            "manifest_sha256": plan.manifest.sha256,
            "n_rows": len(rows),
            "taxonomy": None if plan.taxonomy is None else {"name": plan.taxonomy.name, "version": plan.taxonomy.version},
        },
        "reference": plan.reference_info,
        "model": {"name": plan.config.model_name, **plan.config.model_meta},
        "encoders": {e: {"fingerprint": enc.fingerprint(), "weights_sha256": dict(enc.weights_sha256)} for e, enc in plan.encoders.items()},
        "unofficial_weights": dict(plan.unofficial_weights),
        "libraries": library_versions(),
        "seed": p.seed,
        "device": plan.config.device,
        "metrics": {
            m.key: {"title": m.title, "kind": m.kind, "higher_is_better": m.higher_is_better, "official": m.official,
                    "encoders": list(m.encoders)}
            for m in plan.metrics
        },
        "sample_ids": [r.sample_id for r in rows],
        "overall": overall,
        "per_category": per_category,
        "per_subcategory": per_subcategory,
        "per_sample": per_sample,
        "failures": plan.failures,
        "warnings": plan.warnings,
        "skipped": {k: v for k, v in plan.skipped.items()},
        "timing": dict(plan.timing),
    }
    return results


# ---------------------------------------------------------------------------------------------
# files
# ---------------------------------------------------------------------------------------------
def write_json(obj: Any, path: str | os.PathLike) -> Path:
    """Atomic JSON write (temporary file + rename): a crash never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=2, ensure_ascii=False, allow_nan=False)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_results(results: dict[str, Any], path: str | os.PathLike) -> Path:
    return write_json(results, path)


def read_results(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ResultsError(f"cannot read results {path}: {e}") from None
    if not isinstance(data, dict) or "schema_version" not in data:
        raise ResultsError(f"{path} is not a javisbench results file (no schema_version)")
    major = str(data["schema_version"]).split(".")[0]
    if major != SCHEMA_VERSION.split(".")[0]:
        raise ResultsError(f"{path}: schema_version {data['schema_version']} is not supported (this is {SCHEMA_VERSION})")
    return data


def export_official(results: dict[str, Any], plan: "Plan | None" = None) -> dict[str, Any]:
    """The original tool's JSON layout (``--verbose`` form when category labels exist).

    Per-sample metrics: ``{"overall", "all": [per-sample, CSV order], "0".."4": [category means]}``;
    set metrics: ``{"overall", "0".."4"}``; without labels, one float per key.  Where the original
    wrote a bare ``NaN`` (an empty category), this writes ``null`` so the file is valid JSON.
    """
    out: dict[str, Any] = {}
    per_cat = results.get("per_category") or {}
    ids = results.get("sample_ids", [])
    for key, cell in results["overall"].items():
        if not per_cat:
            out[key] = cell["value"]
            continue
        entry: dict[str, Any] = {"overall": cell["value"]}
        if results["metrics"][key]["kind"] == "sample":
            entry["all"] = [results["per_sample"].get(s, {}).get(key) for s in ids]
        for a_idx, (aspect, cats) in enumerate(per_cat.items()):
            entry[str(a_idx)] = [(cats[c].get(key) or {}).get("value") for c in cats]
        out[key] = entry
    return out
