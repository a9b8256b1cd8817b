"""Results as pandas tables: per-sample values (tidy) and breakdown cells.

* :func:`samples_frame`: one row per (sample, metric): ``sample_id, metric, value`` plus one column
  per taxonomy aspect holding the sample's category names (several joined with ``|``).
* :func:`cells_frame`: one row per (aspect, category, metric) cell: ``value, ci_low, ci_high, n``
  and the cell's flags; the overall cells come first under aspect ``overall``, category ``all``.

Both read only the results dict (its ``labels`` block carries the categories), never the manifest.
pandas is imported here, when a table is asked for.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

SAMPLE_COLUMNS = ("sample_id", "metric", "value")
CELL_COLUMNS = ("aspect", "category", "metric", "value", "ci_low", "ci_high", "interval", "n", "n_failed", "flags",
                "value_inf", "reliable")


def _pandas() -> Any:
    try:
        import pandas
    except ImportError:
        raise ImportError("tables need pandas, which is not installed: pip install 'javisbench[tables]'") from None
    return pandas


def category_names(results: Mapping[str, Any]) -> dict[str, list[str]]:
    """Aspect -> per-sample category keys (``|``-joined when a sample has several; the keys
    ``per_category`` uses), in ``sample_ids`` order; empty without labels."""
    block = results.get("labels") or {}
    if not block:
        return {}
    names: dict[str, dict[int, str]] = {}
    for aspect in block["taxonomy"].get("aspects", []):
        names[aspect["key"]] = {i: c["key"] for i, c in enumerate(aspect.get("categories", []))}
    out: dict[str, list[str]] = {}
    for aspect, per_sample in block["categories"].items():
        lookup = names.get(aspect, {})
        out[aspect] = ["|".join(lookup.get(int(i), str(i)) for i in idx) for idx in per_sample]
    return out


def samples_frame(results: Mapping[str, Any], labels: bool = True) -> "pd.DataFrame":
    """Tidy per-sample values: ``len(sample_ids) * n_per_sample_metrics`` rows.

    Columns: ``sample_id``, ``metric``, ``value`` (NaN where the sample failed), then one column per
    aspect when ``labels`` and the results carry labels.  Rows are samples in ``sample_ids`` order,
    metrics in the results' metric order within each sample.
    """
    pd = _pandas()
    ids = list(results.get("sample_ids") or [])
    per = results.get("per_sample") or {}
    keys = [k for k, m in (results.get("metrics") or {}).items() if m.get("kind") == "sample"]
    cats = category_names(results) if labels else {}
    rows = []
    for i, sid in enumerate(ids):
        vals = per.get(sid, {})
        for k in keys:
            v = vals.get(k)
            row: dict[str, Any] = {"sample_id": sid, "metric": k, "value": float("nan") if v is None else float(v)}
            for aspect, names in cats.items():
                row[aspect] = names[i]
            rows.append(row)
    cols = list(SAMPLE_COLUMNS) + list(cats)
    df = pd.DataFrame(rows, columns=cols)
    df["value"] = df["value"].astype("float64")
    return df


def _cell_row(aspect: str, category: str, key: str, cell: Mapping[str, Any]) -> dict[str, Any]:
    def num(x: Any) -> float:
        return float("nan") if x is None else float(x)

    return {"aspect": aspect, "category": category, "metric": key, "value": num(cell.get("value")),
            "ci_low": num(cell.get("ci_low")), "ci_high": num(cell.get("ci_high")),
            "interval": cell.get("interval", ""), "n": int(cell.get("n") or 0),
            "n_failed": int(cell.get("n_failed") or 0), "flags": ",".join(cell.get("flags") or []),
            # set metrics: the size-corrected value (n = infinity) and whether its fit is trustworthy
            "value_inf": num(cell.get("value_inf")), "reliable": cell.get("reliable")}


def cells_frame(results: Mapping[str, Any], overall: bool = True) -> "pd.DataFrame":
    """Breakdown cells: one row per (aspect, category, metric); ``overall`` adds the overall cells
    (aspect ``overall``, category ``all``) first.  Columns: :data:`CELL_COLUMNS`."""
    pd = _pandas()
    rows = []
    if overall:
        for key, cell in (results.get("overall") or {}).items():
            rows.append(_cell_row("overall", "all", key, cell))
    for aspect, cats in (results.get("per_category") or {}).items():
        for cat, metrics in cats.items():
            for key, cell in metrics.items():
                rows.append(_cell_row(aspect, cat, key, cell))
    df = pd.DataFrame(rows, columns=list(CELL_COLUMNS))
    for c in ("value", "ci_low", "ci_high", "value_inf"):
        df[c] = df[c].astype("float64")
    for c in ("n", "n_failed"):
        df[c] = df[c].astype("int64")
    return df


EXPORT_FORMATS = ("csv", "parquet", "xlsx")


def export(results: Mapping[str, Any], fmt: str, out_dir: "str | os.PathLike[str]", stem: str = "results") -> list[Any]:
    """Write the per-sample and per-cell tables of a results dict into ``out_dir``.

    ``csv`` / ``parquet``: ``{stem}_samples.{ext}`` and ``{stem}_cells.{ext}``; ``xlsx``: one
    workbook ``{stem}.xlsx`` with sheets ``samples`` and ``cells``.  Each file is written
    atomically.  Returns the paths written.

    Raises:
        ValueError: an unknown format, or a format whose writer package is not installed
            (the message names the package and the install command).
    """
    from pathlib import Path

    from javisbench.files import atomic_open

    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"--format {fmt!r}: expected one of {', '.join(EXPORT_FORMATS)}")
    need = {"parquet": ("pyarrow", "pip install pyarrow"), "xlsx": ("openpyxl", "pip install 'javisbench[tables]'")}
    if fmt in need:
        import importlib.util

        pkg, cmd = need[fmt]
        if importlib.util.find_spec(pkg) is None:
            raise ValueError(f"--format {fmt} needs the Python package {pkg!r}, which is not installed: {cmd} "
                             "(or use --format csv)")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out}: expected a folder, got a file")
    out.mkdir(parents=True, exist_ok=True)
    tables = {"samples": samples_frame(results), "cells": cells_frame(results)}
    written = []
    if fmt == "xlsx":
        pd = _pandas()
        dest = out / f"{stem}.xlsx"
        with atomic_open(dest, "wb", suffix=".xlsx") as f:
            with pd.ExcelWriter(f, engine="openpyxl") as xw:
                for name, df in tables.items():
                    df.to_excel(xw, sheet_name=name, index=False)
        return [dest]
    for name, df in tables.items():
        dest = out / f"{stem}_{name}.{fmt}"
        if fmt == "csv":
            with atomic_open(dest, "w", suffix=".csv") as f:
                df.to_csv(f, index=False, lineterminator="\n")
        else:
            with atomic_open(dest, "wb", suffix=".parquet") as f:
                df.to_parquet(f, index=False)
        written.append(dest)
    return written
