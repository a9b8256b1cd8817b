"""Tables and reports rendered from a results dict (never from anything else)."""
from __future__ import annotations

from typing import Any


def _fmt(v: float | None, digits: int = 4) -> str:
    if v is None:
        return "—"
    a = abs(v)
    if a != 0 and (a >= 1e5 or a < 1e-3):
        return f"{v:.{digits - 1}e}"
    return f"{v:.{digits}f}"


def _ci(cell: dict[str, Any]) -> str:
    if cell.get("ci_low") is None or cell.get("ci_high") is None:
        return ""
    return f"[{_fmt(cell['ci_low'])}, {_fmt(cell['ci_high'])}]"


def _grid(head: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [head] + rows) for i in range(len(head))]
    line = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    return "\n".join([line(head), "  ".join("-" * w for w in widths)] + [line(r) for r in rows])


def overall_table(results: dict[str, Any]) -> str:
    """One line per metric: value, 95% CI, n, failed; skipped metrics listed with the reason."""
    meta = results.get("metrics", {})
    rows = []
    for key, cell in results["overall"].items():
        m = meta.get(key, {})
        arrow = "↑" if m.get("higher_is_better", True) else "↓"
        flags = ",".join(cell.get("flags", []))
        rows.append([f"{key} {arrow}", _fmt(cell["value"]), _ci(cell), str(cell["n"]), str(cell.get("n_failed", 0)), flags])
    p = results["protocol"]
    out = [f"{results['model']['name']} on {results['bench']['name']} ({results['bench']['n_rows']} rows), "
           f"protocol {p['name']} v{p['version']}"]
    if rows:
        out.append(_grid(["metric", "value", f"{int(round(p['values'].get('ci_level', 0.95) * 100))}% CI", "n", "failed", "flags"], rows))
    for key, reason in results.get("skipped", {}).items():
        out.append(f"{key}: {reason}")
    nf = len(results.get("failures", {}))
    if nf:
        out.append(f"{nf} sample(s) with failures (see 'failures' in the results file), e.g.:")
        for sid, stages in list(results["failures"].items())[:5]:
            stage, msg = next(iter(stages.items()))
            out.append(f"  {sid} [{stage}] {msg}")
    return "\n".join(out)


def category_tables(results: dict[str, Any], metrics: list[str] | None = None) -> str:
    """Per aspect: categories as rows, metrics as columns (value and n; flags marked)."""
    per = results.get("per_category") or {}
    if not per:
        return "(no category labels in this bench)"
    keys = metrics or list(results["overall"])
    blocks = []
    for aspect, cats in per.items():
        rows = []
        for cat, cells in cats.items():
            row = [cat]
            for k in keys:
                c = cells.get(k)
                if not c:
                    row.append("—")
                    continue
                mark = "!" if c.get("flags") else ""
                row.append(f"{_fmt(c['value'], 3)}{mark} (n={c['n']})")
            rows.append(row)
        blocks.append(f"[{aspect}]\n" + _grid(["category"] + keys, rows))
    blocks.append("! = flagged (too few samples, or fewer samples than feature dimensions for a set metric)")
    return "\n\n".join(blocks)
