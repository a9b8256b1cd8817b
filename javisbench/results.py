"""Results: one JSON file per run (schema below), also the leaderboard submission format.

Schema (``schema_version`` 1.x; readers refuse another major version):

* ``schema_version``, ``javisbench_version``, ``git_commit``, ``created`` — provenance
* ``protocol``: ``{name, version, fingerprint, values}`` — every number-changing choice
* ``bench``: ``{name, path, manifest_sha256, n_rows, taxonomy}``
* ``model``: ``{name, ...free-form metadata}``
* ``encoders``: encoder id -> ``{fingerprint, weights_sha256}``; ``libraries``: versions
* ``seed``, ``device``
* ``metrics``: key -> ``{title, kind, higher_is_better, official, encoders}``
* ``overall``: key -> ``{value, ci_low, ci_high, interval, n, n_failed, flags}``; ``interval`` is
  ``"ci"`` (per-sample means) or ``"spread"`` (set metrics); set metrics add ``value_inf`` (the
  size-corrected value) and ``reliable`` (see ``javisbench.breakdown``)
* ``per_category``: aspect -> category -> key -> the same cell
* ``per_subcategory``: aspect -> category -> subcategory -> key -> cell (when labelled)
* ``per_sample``: sample id -> key -> value (null where the sample failed)
* ``labels``: ``{taxonomy: definition, categories: {aspect: [[index, ...] per sample]},
  subcategories: ...}`` aligned with ``sample_ids`` (null without category columns; 1.2)
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
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from javisbench._version import __version__
from javisbench.files import atomic_open

if TYPE_CHECKING:  # pragma: no cover
    from javisbench.features import FeatureStore
    from javisbench.run import Run, RunLog, Scores

SCHEMA_VERSION = "1.2"   # 1.1: bench.kind, reference provenance, window counts on set cells;
                         # 1.2: per-sample category labels, encoders' protocol fields, flags, interval kinds,
                         # value_inf on set cells (readers accept any 1.x)


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


def labels_block(run: "Run") -> dict[str, Any] | None:
    """The category labels of the scored rows, self-contained (the taxonomy definition included),
    aligned with ``sample_ids``: what ``compare`` and ``report --crosstab`` read."""
    if run.labels is None:
        return None
    lab = run.labels
    return {
        "taxonomy": run.taxonomy.to_dict(),
        "categories": {a: [list(t) for t in v] for a, v in lab.categories.items()},
        "subcategories": {a: [list(t) for t in v] for a, v in lab.subcategories.items()},
    }


def labels_from_results(results: dict[str, Any]) -> Any:
    """``taxonomy.Labels`` of a results file's samples (in ``sample_ids`` order), from the file itself.

    Raises:
        ResultsError: a folder bench, or a file with no labels (written before schema 1.2, or a
            bench without category columns).
    """
    bench = results.get("bench") or {}
    if bench.get("kind") == "folder":
        raise ResultsError(f"bench {bench.get('name')} is a folder bench: its clips carry no category labels")
    block = results.get("labels")
    if not block:
        raise ResultsError("this results file carries no category labels (the bench has no cat{a}_ind columns, or the "
                           f"file was written by schema {results.get('schema_version')} < 1.2: re-run evaluate)")
    from taxonomy import Labels
    from taxonomy.model import Taxonomy

    tax = Taxonomy.from_dict(block["taxonomy"], source="results labels")
    return Labels(tax, {a: tuple(tuple(int(i) for i in t) for t in v) for a, v in block["categories"].items()},
                  {a: tuple(tuple(int(i) for i in t) for t in v) for a, v in (block.get("subcategories") or {}).items()},
                  row_ids=tuple(results.get("sample_ids") or ()) or None)


def assemble(run: "Run", log: "RunLog", scores: "Scores", encoders: Mapping[str, Any],
             store: "FeatureStore | None" = None) -> dict[str, Any]:
    """The results dict of a finished run (schema above)."""
    from javisbench.breakdown import overall_cells, per_category_cells, per_subcategory_cells

    p = run.protocol
    rows = run.manifest.rows
    overall, failed = overall_cells(run, scores, store)
    for key, reason in failed.items():
        log.skip(key, reason)
    per_category: dict[str, Any] = {}
    per_subcategory: dict[str, Any] = {}
    if run.labels is not None:
        per_category = per_category_cells(run, scores, store)
        if any(run.labels.has_subcategories(a.key) for a in run.taxonomy.aspects):
            per_subcategory = per_subcategory_cells(run, scores)

    per_sample: dict[str, Any] = {}
    if run.config.per_sample:
        for i, r in enumerate(rows):
            per_sample[r.sample_id] = {k: _f(v[i]) for k, v in scores.per_sample.items()}

    return {
        "schema_version": SCHEMA_VERSION,
        "javisbench_version": __version__,
        "git_commit": git_commit(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "protocol": {"name": p.name, "version": p.version, "fingerprint": p.fingerprint, "values": p.values()},
        "bench": {
            "name": run.manifest.name,
            "kind": "folder" if run.bench_def is not None else "csv",
            "path": str(run.manifest.path.resolve()),
            "manifest_sha256": run.manifest.sha256,
            "n_rows": len(rows),
            "taxonomy": None if run.taxonomy is None else {"name": run.taxonomy.name, "version": run.taxonomy.version},
        },
        "reference": log.reference_info,
        "model": {"name": run.config.model_name, **run.config.model_meta},
        "encoders": {e: {"fingerprint": enc.fingerprint(), "weights_sha256": dict(enc.weights_sha256),
                         "protocol_fields": enc.feature_protocol()} for e, enc in encoders.items()},
        "unofficial_weights": dict(log.unofficial_weights),
        "libraries": library_versions(),
        "seed": p.seed,
        "device": run.config.device,
        "metrics": {
            m.key: {"title": m.title, "kind": m.kind, "higher_is_better": m.higher_is_better, "official": m.official,
                    "encoders": list(m.encoders)}
            for m in run.metrics
        },
        "sample_ids": [r.sample_id for r in rows],
        "labels": labels_block(run),
        "overall": overall,
        "per_category": per_category,
        "per_subcategory": per_subcategory,
        "per_sample": per_sample,
        "failures": log.failures,
        "warnings": log.warnings,
        "skipped": dict(log.skipped),
        "timing": dict(log.timing),
    }


# ---------------------------------------------------------------------------------------------
# files
# ---------------------------------------------------------------------------------------------
def write_json(obj: Any, path: str | os.PathLike) -> Path:
    """Atomic JSON write (temporary file + rename): a crash never leaves half a file."""
    with atomic_open(path, "w", suffix=".json") as f:
        json.dump(obj, f, indent=2, ensure_ascii=False, allow_nan=False)
        f.write("\n")
    return Path(path)


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
    for key, kind in REQUIRED_BLOCKS.items():
        if not isinstance(data.get(key), kind):
            got = "missing" if key not in data else f"a {type(data[key]).__name__}"
            raise ResultsError(f"{path}: the {key!r} block is {got} (expected {'an object' if kind is dict else kind.__name__}"
                               f" as `javisbench evaluate` writes it); is this file complete?")
    if not isinstance(data["bench"].get("name"), str):
        raise ResultsError(f"{path}: bench.name is missing (expected the bench's name, as `javisbench evaluate` writes it)")
    return data


#: top-level blocks every reader relies on, and their JSON type
REQUIRED_BLOCKS: dict[str, type] = {"bench": dict, "protocol": dict, "model": dict, "metrics": dict, "overall": dict}


def export_official(results: dict[str, Any]) -> dict[str, Any]:
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
