"""The board as data: measured entries grouped by bench and protocol, ranked per metric with ties.

Everything the four outputs (Markdown, CSV, LaTeX, HTML) show is computed here once, so the
outputs cannot disagree: the columns of a group (the metric table's metrics that some entry
scored, in the table's order), the rows (grouped by method family in the papers' order), each
cell's value, interval and rank.

Ranks: an entry's rank for a metric is 1 + the number of entries that are better *and* whose
interval does not overlap its own (entries without an interval overlap only an equal value).
Entries whose intervals overlap the best one's share rank 1: the ranking shows a tie.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from javisbench.leaderboard.reported import ReportedTable, number, printed
from javisbench.leaderboard.submission import FAMILIES


@dataclass(frozen=True)
class Cell:
    value: float | None
    ci_low: float | None = None
    ci_high: float | None = None
    n: int | None = None
    rank: int | None = None
    tied: bool = False
    note: str = ""               # why there is no value ("skipped", "failed", "-")

    @property
    def mark(self) -> str:
        """``best`` (rank 1), ``second`` (rank 2) or ``""``."""
        return {1: "best", 2: "second"}.get(self.rank or 0, "")


@dataclass(frozen=True)
class Column:
    key: str
    title: str
    higher_is_better: bool
    description: str = ""

    @property
    def arrow(self) -> str:
        return "↑" if self.higher_is_better else "↓"


@dataclass(frozen=True)
class Row:
    name: str
    family: str | None
    link: str | None
    cells: tuple[Cell, ...]
    meta: tuple[str, ...] = ()       # per-row descriptive columns (reported: size, runtime; measured: n, version)
    file: str = ""


@dataclass(frozen=True)
class Table:
    """One ranked table: the rows are ranked only against each other."""

    columns: tuple[Column, ...]
    rows: tuple[Row, ...]
    meta_columns: tuple[str, ...] = ()


@dataclass(frozen=True)
class Group:
    """Measured entries of one bench (name + manifest) under one protocol (name + version + fingerprint)."""

    bench: str
    bench_sha256: str
    n_rows: int
    protocol: str
    protocol_version: str
    fingerprint: str
    overall: Table
    tabs: tuple[tuple[str, str, Table], ...]     # (aspect, category, table) per category
    slug: str = ""

    @property
    def title(self) -> str:
        return f"{self.bench} — protocol {self.protocol} v{self.protocol_version}"


@dataclass(frozen=True)
class Reported:
    table: ReportedTable
    ranked: Table
    printed: tuple[tuple[str, ...], ...]       # the metric cells exactly as printed, per row
    slug: str = ""

    @property
    def title(self) -> str:
        return f"{self.table.bench} — {self.table.source}"


@dataclass(frozen=True)
class Board:
    groups: tuple[Group, ...]
    reported: tuple[Reported, ...] = field(default_factory=tuple)


# ---------------------------------------------------------------------------------------------
def rank_cells(values: Sequence[tuple[float | None, float | None, float | None]], higher_is_better: bool) -> list[tuple[int | None, bool]]:
    """``(rank, tied)`` per ``(value, ci_low, ci_high)``; ``None`` values get no rank.

    rank = 1 + #entries strictly better whose interval does not overlap (no interval: a point).
    """
    def better(a: float, b: float) -> bool:
        return a > b if higher_is_better else a < b

    def span(t: tuple[float | None, float | None, float | None]) -> tuple[float, float]:
        v, lo, hi = t
        assert v is not None
        return (lo, hi) if lo is not None and hi is not None else (v, v)

    ranks: list[int | None] = []
    for i, t in enumerate(values):
        if t[0] is None:
            ranks.append(None)
            continue
        lo_i, hi_i = span(t)
        r = 1
        for j, u in enumerate(values):
            if j == i or u[0] is None or not better(u[0], t[0]):
                continue
            lo_j, hi_j = span(u)
            if lo_j > hi_i or lo_i > hi_j:       # disjoint: j clearly better
                r += 1
        ranks.append(r)
    return [(r, r is not None and ranks.count(r) > 1) for r in ranks]


def _ranked(cells: list[list[Cell]], columns: Sequence[Column]) -> list[list[Cell]]:
    """Fill rank/tied per column (only when at least two rows have a value)."""
    out = [list(r) for r in cells]
    for ci, col in enumerate(columns):
        vals = [(r[ci].value, r[ci].ci_low, r[ci].ci_high) for r in cells]
        if sum(v[0] is not None for v in vals) < 2:
            continue
        for ri, (rank, tied) in enumerate(rank_cells(vals, col.higher_is_better)):
            c = out[ri][ci]
            out[ri][ci] = Cell(c.value, c.ci_low, c.ci_high, c.n, rank, tied, c.note)
    return out


def _family_key(family: str | None) -> int:
    return FAMILIES.index(family) if family in FAMILIES else len(FAMILIES)


def _cell_from(c: Any, skipped: str | None) -> Cell:
    if isinstance(c, dict) and c.get("value") is not None:
        return Cell(float(c["value"]), None if c.get("ci_low") is None else float(c["ci_low"]),
                    None if c.get("ci_high") is None else float(c["ci_high"]), c.get("n"))
    if skipped:
        return Cell(None, note="skipped")
    # no value: every sample failed (a failure count), or none to score (an empty category, not computed)
    return Cell(None, note="failed" if isinstance(c, dict) and c.get("n_failed") else "-")


def _slug_id(prefix: str, i: int) -> str:
    return f"{prefix}{i + 1}"


def measured_groups(entries: list[tuple[str, dict[str, Any]]]) -> tuple[Group, ...]:
    """Group ``(file name, results)`` pairs by bench and protocol and rank each group."""
    from javisbench.suite import METRICS

    by_key: dict[tuple[str, str, str, str, str], list[tuple[str, dict[str, Any]]]] = {}
    for fname, r in entries:
        b, p = r["bench"], r["protocol"]
        by_key.setdefault((b["name"], b["manifest_sha256"], p["name"], str(p["version"]), p["fingerprint"]), []).append((fname, r))
    groups = []
    for gi, (key, members) in enumerate(sorted(by_key.items())):
        members.sort(key=lambda fr: (_family_key(fr[1]["model"].get("family")), fr[1]["model"]["name"].casefold(),
                                     fr[1]["model"]["name"], fr[0]))
        scored = {k for _, r in members for k, c in r["overall"].items() if c.get("value") is not None}
        # in-domain keys (``@synthav``, not official, trained on the synthetic bench) are never ranked
        columns = tuple(Column(k, m.title, m.higher_is_better, m.description) for k, m in METRICS.items()
                        if k in scored and m.in_default)

        def table(cells_of: Any) -> Table:
            rows_cells = [[_cell_from(cells_of(r).get(c.key), (r.get("skipped") or {}).get(c.key)) for c in columns]
                          for _, r in members]
            ranked = _ranked(rows_cells, columns)
            rows = tuple(Row(r["model"]["name"], r["model"].get("family"), r["model"].get("link"), tuple(cs),
                             (str(r["bench"]["n_rows"]), str(r["javisbench_version"])), fname)
                         for (fname, r), cs in zip(members, ranked))
            return Table(columns, rows, ("n", "javisbench"))

        overall = table(lambda r: r["overall"])
        cats: list[tuple[str, str]] = []
        for _, r in members:
            for aspect, by_cat in (r.get("per_category") or {}).items():
                for cat in by_cat:
                    if (aspect, cat) not in cats:
                        cats.append((aspect, cat))
        tabs = tuple((a, c, table(lambda r, a=a, c=c: ((r.get("per_category") or {}).get(a) or {}).get(c) or {}))
                     for a, c in cats)
        bench, sha, proto, version, fp = key
        n_rows = max(r["bench"]["n_rows"] for _, r in members)
        groups.append(Group(bench, sha, n_rows, proto, version, fp, overall, tabs, _slug_id("g", gi)))
    return tuple(groups)


def reported_sections(tables: list[ReportedTable]) -> tuple[Reported, ...]:
    """Each published table ranked within itself; rows keep the paper's order."""
    out = []
    for ti, t in enumerate(tables):
        columns = tuple(Column(c, c, t.higher_is_better[c]) for c in t.metric_columns)
        cells = [[Cell(number(t.value(r, c.key))) if t.value(r, c.key) is not None else Cell(None, note="-")
                  for c in columns] for r in t.rows]
        ranked = _ranked(cells, columns)
        meta_cols = tuple(c for c in t.meta_columns if c not in ("family", "method"))
        rows = tuple(Row(str(t.value(r, "method")), None if "family" not in t.columns else str(t.value(r, "family")),
                         None, tuple(cs), tuple("" if t.value(r, c) is None else str(t.value(r, c)) for c in meta_cols))
                     for r, cs in zip(t.rows, ranked))
        shown = tuple(tuple(printed(t.value(r, c.key)) for c in columns) for r in t.rows)
        out.append(Reported(t, Table(columns, rows, meta_cols), shown, _slug_id("r", ti)))
    return tuple(out)


def load_board(results_dir: str | Path | None, reported: list[ReportedTable]) -> tuple[Board, list[Path]]:
    """Read and check every ``*.json`` entry in ``results_dir``; ``(board, files)``.

    Raises:
        ValueError: naming the file and every problem, when an entry on the board is malformed.
    """
    from javisbench.leaderboard.submission import SubmissionError, check_results
    from javisbench.results import read_results

    files = sorted(Path(results_dir).glob("*.json")) if results_dir is not None and Path(results_dir).is_dir() else []
    entries = []
    for f in files:
        data = read_results(f)
        problems = check_results(data)
        if problems:
            raise SubmissionError(str(f), problems)
        entries.append((f.name, data))
    return Board(measured_groups(entries), reported_sections(reported)), files
