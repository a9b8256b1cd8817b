"""Published (reported) tables: numbers as printed in the papers, one YAML file per paper table and bench.

They are *reported*, not measured: each becomes its own section after the measured tables, ranked
only within itself, never merged with measured results nor with another paper's table (papers
re-score baselines with different evaluation code).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: columns of a reported table that describe the model rather than score it
META_COLUMNS = ("family", "method", "size", "runtime")


@dataclass(frozen=True)
class ReportedTable:
    """One published table: ``rows`` hold the values as printed (text, so trailing zeros survive)."""

    source: str                                   # paper and table
    bench: str
    setting: str
    note: str
    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]
    higher_is_better: dict[str, bool]             # per metric column
    path: Path

    @property
    def metric_columns(self) -> list[str]:
        return [c for c in self.columns if c not in META_COLUMNS]

    @property
    def meta_columns(self) -> list[str]:
        return [c for c in self.columns if c in META_COLUMNS]

    def value(self, row: tuple[Any, ...], column: str) -> Any:
        return row[self.columns.index(column)]


def number(v: Any) -> float | None:
    """A reported value as a float: numbers, or text holding a number as the paper printed it."""
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return float(v)
    try:
        x = float(str(v))
    except ValueError:
        return None
    return x if x == x and abs(x) != float("inf") else None


def printed(v: Any) -> str:
    """A reported value as the paper printed it (``-`` where it reports none)."""
    if v is None:
        return "-"
    return f"{v:g}" if isinstance(v, (int, float)) and not isinstance(v, bool) else str(v)


def load_reported(path: str | Path) -> ReportedTable:
    """Read and check one published table (YAML: source, bench, columns, rows[, setting, note, directions]).

    Metric columns are javisbench metric keys (direction from the metric table) or other keys whose
    direction the file gives under ``directions`` (``higher`` / ``lower``).  Values are numbers or
    null (the paper's "-").

    Raises:
        ValueError: naming the file (and row) and what was expected.
    """
    import yaml

    from javisbench.suite import METRICS

    path = Path(path)
    try:
        d = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise ValueError(f"{path}: not valid YAML ({e})") from None
    if not isinstance(d, dict):
        raise ValueError(f"{path}: expected a mapping with source, bench, columns, rows")
    missing = [k for k in ("source", "bench", "columns", "rows") if not d.get(k)]
    if missing:
        raise ValueError(f"{path}: missing {', '.join(missing)}")
    cols = tuple(str(c) for c in d["columns"])
    if "method" not in cols:
        raise ValueError(f"{path}: columns {list(cols)} have no 'method'")
    directions = d.get("directions") or {}
    hib: dict[str, bool] = {}
    for c in cols:
        if c in META_COLUMNS:
            continue
        if c in directions:
            if directions[c] not in ("higher", "lower"):
                raise ValueError(f"{path}: direction of {c!r} must be 'higher' or 'lower', got {directions[c]!r}")
            hib[c] = directions[c] == "higher"
        elif c in METRICS:
            hib[c] = METRICS[c].higher_is_better
        else:
            raise ValueError(f"{path}: column {c!r} is neither a javisbench metric nor given a direction "
                             "under 'directions'")
    rows = []
    for i, r in enumerate(d["rows"], start=1):
        if not isinstance(r, list) or len(r) != len(cols):
            raise ValueError(f"{path} row {i}: expected {len(cols)} values ({', '.join(cols)}), got {r!r}")
        for c, v in zip(cols, r):
            if c in hib and v is not None and number(v) is None:
                raise ValueError(f"{path} row {i}: {c} must be a number (or a number as printed, e.g. '0.800') "
                                 f"or null, got {v!r}")
        if not r[cols.index("method")]:
            raise ValueError(f"{path} row {i}: empty method name")
        rows.append(tuple(r))
    return ReportedTable(source=str(d["source"]), bench=str(d["bench"]), setting=str(d.get("setting") or ""),
                         note=str(d.get("note") or ""), columns=cols, rows=tuple(rows), higher_is_better=hib, path=path)


def load_reported_dir(folder: str | Path | None) -> list[ReportedTable]:
    """Every ``*.yaml`` table in ``folder``, ordered by bench then source (the order they are rendered in)."""
    if folder is None:
        return []
    tables = [load_reported(f) for f in sorted(Path(folder).glob("*.yaml"))]
    return sorted(tables, key=lambda t: (t.bench.lower(), t.source))
