"""Tables and reports rendered from a results dict (never from anything else).

Intervals are printed with what they are (the cell's ``interval``): ``ci``, a confidence interval
of a per-sample mean; ``spread``, the sampling spread of a set metric's finite-set value (not a
confidence interval: it sits around a value biased by the set size).  Tables and charts that
rank categories use, for set metrics, the size-corrected value ``value_inf`` where it is
``reliable`` (:func:`ranking_value`) and say so; elsewhere the protocol value, marked.
"""
from __future__ import annotations

import os
from pathlib import Path
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


def _interval(cell: dict[str, Any]) -> str:
    """``[lo, hi] ci`` / ``[lo, hi] spread`` (cells written before intervals were labelled: unlabelled)."""
    iv = _ci(cell)
    return f"{iv} {cell['interval']}" if iv and cell.get("interval") else iv


#: how a ranking value was chosen (:func:`ranking_value`)
BASIS_INF, BASIS_PROTOCOL, BASIS_UNRELIABLE = "size-corrected", "protocol", "protocol (correction not reliable)"
#: the mark of a set-metric value that is the protocol value because its size correction is not reliable
UNRELIABLE_MARK = "~"


def ranking_value(cell: dict[str, Any] | None) -> tuple[float | None, str]:
    """The value to compare categories (or models) by, and its basis.

    A set-metric cell with a reliable size correction gives ``value_inf`` (basis
    ``"size-corrected"``): the protocol value of a finite set is biased by an amount that shrinks
    with its size, so categories of different sizes are comparable only after the correction.
    A set cell whose correction is not reliable (or could not be fitted) gives its protocol value
    with basis ``"protocol (correction not reliable)"``; any other cell its ``value`` (``"protocol"``).

    Example:
        >>> ranking_value({"value": 2.0, "value_inf": 1.5, "reliable": True})
        (1.5, 'size-corrected')
        >>> ranking_value({"value": 2.0, "value_inf": 1.5, "reliable": False})
        (2.0, 'protocol (correction not reliable)')
        >>> ranking_value({"value": 0.3})
        (0.3, 'protocol')
    """
    c = cell or {}
    if "value_inf" not in c:
        return c.get("value"), BASIS_PROTOCOL
    if c.get("reliable") and c.get("value_inf") is not None:
        return float(c["value_inf"]), BASIS_INF
    return c.get("value"), BASIS_UNRELIABLE


def _rank_text(cell: dict[str, Any], digits: int = 3) -> str:
    """The ranking value formatted, marked ``!`` (flagged) and ``~`` (protocol value of an unreliable correction)."""
    v, basis = ranking_value(cell)
    return (f"{_fmt(v, digits)}{'!' if cell.get('flags') and v is not None else ''}"
            f"{UNRELIABLE_MARK if basis == BASIS_UNRELIABLE and v is not None else ''}")


_INTERVAL_NOTE = ("ci = confidence interval of a per-sample mean; spread = sampling spread of a set metric's "
                  "finite-set value (not a confidence interval: a set metric is biased by the set size); "
                  "n=∞ = set metric extrapolated to an infinite set (~ = not reliable: too few rows per "
                  "effective feature dimension)")
_CATEGORY_NOTE = ("set metrics: size-corrected values (n=∞), comparable across category sizes; ~ = correction "
                  "not reliable, the protocol value is shown (biased by the category's size, not comparable)")


def _inf_text(cell: dict[str, Any]) -> str:
    if "value_inf" not in cell:
        return ""
    return f"{_fmt(cell.get('value_inf'))}{'' if cell.get('reliable') else UNRELIABLE_MARK}"


def _column(results: dict[str, Any], key: str) -> str:
    """A category-table column title: ``fvd (n=∞)`` for a metric whose cells carry a size correction."""
    for cats in (results.get("per_category") or {}).values():
        for cells in cats.values():
            if "value_inf" in (cells.get(key) or {}):
                return f"{key} (n=∞)"
    return key


def _grid(head: list[str], rows: list[list[str]]) -> str:
    from javisbench.tables import grid

    return grid(head, rows)


def overall_table(results: dict[str, Any]) -> str:
    """One line per metric: value, size-corrected value (set metrics), 95% interval labelled ci or
    spread, n, failed; skipped metrics listed with the reason."""
    meta = results.get("metrics", {})
    rows = []
    for key, cell in results["overall"].items():
        m = meta.get(key, {})
        arrow = "↑" if m.get("higher_is_better", True) else "↓"
        flags = ",".join(cell.get("flags", []))
        rows.append([f"{key} {arrow}", _fmt(cell["value"]), _inf_text(cell), _interval(cell), str(cell["n"]),
                     str(cell.get("n_failed", 0)), flags])
    p = results["protocol"]
    out = [f"{results['model']['name']} on {results['bench']['name']} ({results['bench']['n_rows']} rows), "
           f"protocol {p['name']} v{p['version']}"]
    if rows:
        pct = int(round(p['values'].get('ci_level', 0.95) * 100))
        out.append(_grid(["metric", "value", "n=∞", f"{pct}% interval", "n", "failed", "flags"], rows))
        out.append(_INTERVAL_NOTE)
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
    """Per aspect: categories as rows, metrics as columns (value and n; flags marked).  Set metrics
    show their size-corrected value where it is reliable (:func:`ranking_value`)."""
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
                v, _basis = ranking_value(c)
                mark = "!" if c.get("flags") and v is None else ""
                row.append(f"{_rank_text(c)}{mark} (n={c['n']})")
            rows.append(row)
        blocks.append(f"[{aspect}]\n" + _grid(["category"] + [_column(results, k) for k in keys], rows))
    blocks.append("! = flagged (too few samples, or fewer samples than feature dimensions for a set metric)")
    if any("value_inf" in c for cats in per.values() for cells in cats.values() for c in cells.values()):
        blocks.append(_CATEGORY_NOTE)
    return "\n\n".join(blocks)


# ---------------------------------------------------------------------------------------------
# HTML report: one self-contained file (inline CSS, images as base64 PNG data URIs, no scripts)
# ---------------------------------------------------------------------------------------------
_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;margin:24px auto;max-width:1240px;
color:#1d232a;padding:0 16px;line-height:1.4}
h1{font-size:1.6em;margin-bottom:2px}h2{border-bottom:2px solid #d6dbe1;padding-bottom:3px;margin-top:34px}
h3{margin:22px 0 6px}.sub{color:#56606b;margin-top:0}
table{border-collapse:collapse;margin:8px 0 14px;font-size:.92em}
th,td{border:1px solid #d6dbe1;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#eef1f4}td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.flag{color:#b3261e;font-weight:600}.up{color:#1b7f3b}.down{color:#8a4b00}
dl.prov{display:grid;grid-template-columns:max-content 1fr;gap:3px 14px;font-size:.92em}dl.prov dt{font-weight:600}
dl.prov dd{margin:0;word-break:break-all}code{font-size:.92em;background:#f3f5f7;padding:0 3px}
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(560px,1fr));gap:12px}
figure{margin:6px 0}figure img{max-width:100%;height:auto;border:1px solid #e2e6ea}
figcaption{font-size:.85em;color:#56606b}.note{color:#56606b;font-size:.9em}
.aspect{display:flex;flex-wrap:wrap;gap:18px;align-items:flex-start}details{margin:4px 0}summary{cursor:pointer;color:#2d5e93}
"""


def _e(x: Any) -> str:
    """HTML-escaped text of anything (quotes too: safe in attributes)."""
    import html

    return html.escape("" if x is None else str(x), quote=True)


def _png_uri(fig: Any) -> str:
    """A matplotlib Figure as a ``data:image/png;base64,...`` URI (Agg canvas, no pyplot state)."""
    import base64
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=96, bbox_inches="tight", facecolor="white")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _img(uri: str, alt: str, caption: str) -> str:
    return f'<figure><img src="{uri}" alt="{_e(alt)}"><figcaption>{_e(caption)}</figcaption></figure>'


def _arrow(meta: dict[str, Any], key: str) -> str:
    return "↑" if meta.get(key, {}).get("higher_is_better", True) else "↓"


def _table(head: list[str], rows: list[list[str]], raw: bool = False, num_cols: tuple[int, ...] = ()) -> str:
    """An HTML table; cells are escaped unless ``raw`` (then they are trusted, already-escaped HTML)."""
    th = "".join(f"<th>{_e(h)}</th>" for h in head)
    body = []
    for r in rows:
        tds = "".join(f'<td{" class=num" if i in num_cols else ""}>{c if raw else _e(c)}</td>' for i, c in enumerate(r))
        body.append(f"<tr>{tds}</tr>")
    return f"<table><thead><tr>{th}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _metric_keys(results: dict[str, Any]) -> list[str]:
    """Metrics with a value, in results order (overall first, then any only found per category)."""
    keys = list(results.get("overall") or {})
    for cats in (results.get("per_category") or {}).values():
        for cells in cats.values():
            keys += [k for k in cells if k not in keys]
    return keys


def _score_matrix(vals: Any, higher_is_better: list[bool]) -> Any:
    """Per-column min-max normalisation, direction-aware: 1 = best category, 0 = worst (NaN kept).

    ``s[i, j] = (v[i, j] - min_j) / (max_j - min_j)``, flipped (``1 - s``) where lower is better;
    a column with one distinct value gets 0.5.  Shapes: (n_categories, n_metrics) -> same.
    """
    import numpy as np

    v = np.asarray(vals, np.float64)
    s = np.full_like(v, np.nan)
    for j in range(v.shape[1]):
        col = v[:, j]
        ok = np.isfinite(col)
        if not ok.any():
            continue
        lo, hi = col[ok].min(), col[ok].max()
        s[ok, j] = (col[ok] - lo) / (hi - lo) if hi > lo else 0.5
        if not higher_is_better[j] and hi > lo:
            s[ok, j] = 1.0 - s[ok, j]
    return s


def _heatmap(aspect: str, cats: dict[str, dict[str, Any]], keys: list[str], meta: dict[str, Any]) -> str | None:
    """Categories x metrics heatmap of one aspect: colour = within-metric normalised score, text = value.

    Set metrics are ranked by their size-corrected value where it is reliable (:func:`ranking_value`;
    column label ``n=∞``); a cell whose correction is not reliable shows its protocol value,
    marked ``~`` and hatched (not comparable)."""
    import numpy as np
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    keys = [k for k in keys if any(ranking_value(cells.get(k))[0] is not None for cells in cats.values())]
    if not keys or not cats:
        return None
    names = list(cats)
    ranked = [[ranking_value(cats[c].get(k)) for k in keys] for c in names]
    vals = np.array([[np.nan if v is None else float(v) for v, _b in row] for row in ranked])
    corrected = {k for j, k in enumerate(keys) if any(row[j][1] != BASIS_PROTOCOL for row in ranked)}
    score = _score_matrix(vals, [meta.get(k, {}).get("higher_is_better", True) for k in keys])
    cmap = colormaps["RdYlGn"].with_extremes(bad="#e4e7eb")
    fig = Figure(figsize=(2.2 + 1.25 * len(keys), 1.3 + 0.48 * len(names)))
    ax = fig.add_subplot()
    im = ax.imshow(np.ma.masked_invalid(score), cmap=cmap, vmin=0, vmax=1, aspect="auto")
    for i, c in enumerate(names):
        for j, k in enumerate(keys):
            cell = cats[c].get(k) or {}
            unreliable = ranked[i][j][1] == BASIS_UNRELIABLE
            flagged = bool(cell.get("flags")) or unreliable
            if np.isfinite(vals[i, j]):
                text = f"{_rank_text(cell)}\nn={cell.get('n', 0)}"
                dark = np.isfinite(score[i, j]) and (score[i, j] < 0.15 or score[i, j] > 0.85)
                ax.text(j, i, text, ha="center", va="center", fontsize=7.5, color="white" if dark else "black")
            else:
                ax.text(j, i, f"—\nn={cell.get('n', 0)}", ha="center", va="center", fontsize=7.5, color="#6b737c")
            if flagged and np.isfinite(vals[i, j]):  # hatched: a value that is not comparable (too few samples, ...)
                ax.add_patch(_hatch_patch(j, i))
    ax.set_xticks(range(len(keys)), [f"{k}{' n=∞' if k in corrected else ''} {_arrow(meta, k)}" for k in keys],
                  rotation=30, ha="right", fontsize=8.5)
    ax.set_yticks(range(len(names)), names, fontsize=8.5)
    title = f"{aspect}: per-category values (colour: rank within each metric)"
    if corrected:
        title += "\nset metrics: size-corrected (n=∞); ~ = not reliable, protocol value shown"
    ax.set_title(title, fontsize=10)
    cb = fig.colorbar(im, ax=ax, fraction=0.04, pad=0.02, ticks=[0, 1])
    cb.ax.set_yticklabels(["worst", "best"], fontsize=8)
    return _png_uri(fig)


def _hatch_patch(x: float, y: float) -> Any:
    from matplotlib.patches import Rectangle

    return Rectangle((x - 0.5, y - 0.5), 1, 1, fill=False, hatch="///", edgecolor="#5a5a5a", linewidth=0.8)


def _radar(key: str, per: dict[str, Any], overall: dict[str, Any] | None, meta: dict[str, Any],
           axes: set[tuple[str, str]] | None = None) -> str | None:
    """One radar for one metric: an axis per category (all aspects), radius = the category's value.

    The overall value is the dashed circle, so a dip inside it is a category where the model does
    worse than on average.  For a lower-is-better metric the radial axis is inverted (outward is
    better in every radar).  ``axes`` limits the axes to these (aspect, category) pairs (the ones
    where some metric has a value, so every radar of a report has the same axes); a category
    without a value for this metric has no marker and the polygon joins its neighbours.
    """
    import numpy as np
    from matplotlib.figure import Figure

    labels, aspects, vals, flagged = [], [], [], []
    for aspect, cats in per.items():
        for cat, cells in cats.items():
            if axes is not None and (aspect, cat) not in axes:
                continue
            c = cells.get(key) or {}
            v, basis = ranking_value(c)
            labels.append(cat)
            aspects.append(aspect)
            vals.append(np.nan if v is None else float(v))
            flagged.append(bool(c.get("flags")) or basis == BASIS_UNRELIABLE)
    v = np.asarray(vals, np.float64)
    if len(labels) < 3 or np.count_nonzero(np.isfinite(v)) < 2:
        return None
    hib = meta.get(key, {}).get("higher_is_better", True)
    ov_v = ranking_value(overall)[0] if overall else None
    ov = None if ov_v is None else float(ov_v)
    finite = v[np.isfinite(v)]
    lo, hi = float(finite.min()), float(finite.max())
    if ov is not None:
        lo, hi = min(lo, ov), max(hi, ov)
    span = (hi - lo) or (abs(hi) or 1.0)
    vmin, vmax = lo - 0.12 * span, hi + 0.06 * span

    def radius(x: Any) -> Any:
        # our own radial scale (not matplotlib's limits, which misbehave for negative or inverted
        # ranges): r in [0.08, 1], outward = better, so a lower-is-better metric is flipped
        u = (np.asarray(x, np.float64) - vmin) / (vmax - vmin)
        return 0.08 + 0.92 * (u if hib else 1.0 - u)

    theta = np.linspace(0, 2 * np.pi, len(labels), endpoint=False)
    fig = Figure(figsize=(5.6, 5.6))
    ax = fig.add_subplot(projection="polar")
    ax.set_theta_offset(np.pi / 2)
    ax.set_theta_direction(-1)
    ax.set_ylim(0, 1.0)
    ring_vals = np.linspace(vmin, vmax, 6)[1:]
    ax.set_yticks(radius(ring_vals), [f"{x:.3g}" for x in ring_vals])
    ax.set_rlabel_position(8)
    fin = np.isfinite(v)
    r = radius(np.where(fin, v, vmin))
    ax.plot(np.append(theta[fin], theta[fin][0]), np.append(r[fin], r[fin][0]), color="#2d5e93", linewidth=1.8)
    ax.fill(theta[fin], r[fin], color="#2d5e93", alpha=0.15)
    ok = fin & ~np.asarray(flagged)
    bad = fin & np.asarray(flagged)
    ax.scatter(theta[ok], r[ok], color="#2d5e93", s=22, zorder=3)
    ax.scatter(theta[bad], r[bad], facecolors="white", edgecolors="#b3261e", s=26, zorder=3, label="flagged cell")
    if ov is not None:
        ax.plot(np.linspace(0, 2 * np.pi, 200), np.full(200, radius(ov)), "--", color="#444", linewidth=1,
                label=f"overall {_fmt(ov, 3)}")
    palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf"]
    order = list(dict.fromkeys(aspects))
    ax.set_xticks(theta, labels, fontsize=7)
    for lab, asp in zip(ax.get_xticklabels(), aspects):
        lab.set_color(palette[order.index(asp) % len(palette)])
    ax.tick_params(axis="y", labelsize=7)
    title = meta.get(key, {}).get("title", key)
    direction = "higher is better" if hib else "lower is better: radial axis inverted, outward = better"
    corrected = any("value_inf" in ((cells.get(key) or {})) for cats in per.values() for cells in cats.values())
    title += " size-corrected (n=∞)" if corrected else ""
    ax.set_title(f"{title} ({key} {_arrow(meta, key)}), {direction}", fontsize=9.5, pad=18)
    handles = [ax.plot([], [], color=palette[i % len(palette)], linewidth=4)[0] for i in range(len(order))]
    leg_labels = list(order)
    extra_h, extra_l = ax.get_legend_handles_labels()
    fig.legend(handles + extra_h, leg_labels + extra_l, loc="lower center", ncol=4, fontsize=7, frameon=False)
    fig.subplots_adjust(bottom=0.16)
    return _png_uri(fig)


def _provenance(results: dict[str, Any]) -> str:
    p, bench, model = results.get("protocol") or {}, results.get("bench") or {}, results.get("model") or {}
    tax = bench.get("taxonomy") or {}
    items: list[tuple[str, str]] = [
        ("model", _e(model.get("name", "unnamed"))
         + "".join(f"<br><code>{_e(k)}</code> = {_e(v)}" for k, v in model.items() if k != "name")),
        ("bench", f"{_e(bench.get('name'))}, {_e(bench.get('n_rows'))} rows, manifest sha256 "
                  f"<code>{_e(bench.get('manifest_sha256'))}</code>"),
        ("bench file", f"<code>{_e(bench.get('path'))}</code>"),
        ("taxonomy", _e(f"{tax.get('name')} v{tax.get('version')}") if tax else "none (no category labels)"),
        ("protocol", f"{_e(p.get('name'))} v{_e(p.get('version'))}, fingerprint <code>{_e(p.get('fingerprint'))}</code>"
                     + "<details><summary>all protocol values</summary>"
                     + _table(["field", "value"], [[k, v] for k, v in (p.get("values") or {}).items()]) + "</details>"),
        ("javisbench", f"{_e(results.get('javisbench_version'))}, git <code>{_e(results.get('git_commit') or 'unknown')}</code>, "
                       f"results schema {_e(results.get('schema_version'))}"),
        ("created", _e(results.get("created"))),
        ("device, seed", f"{_e(results.get('device'))}, {_e(results.get('seed'))}"),
    ]
    encs = results.get("encoders") or {}
    if encs:
        rows = [[k, e.get("fingerprint", ""), ", ".join(f"{f}: {str(h)[:16]}" for f, h in (e.get("weights_sha256") or {}).items())
                 or "(no weights)"] for k, e in encs.items()]
        items.append(("encoders", _table(["encoder", "fingerprint", "weights sha256 (prefix)"], [[_e(c) for c in r] for r in rows], raw=True)))
    libs = results.get("libraries") or {}
    if libs:
        items.append(("libraries", "<details><summary>" + _e(f"{len(libs)} versions") + "</summary>"
                      + _table(["library", "version"], [[k, v] for k, v in libs.items()]) + "</details>"))
    t = results.get("timing") or {}
    if t.get("total_s") is not None:
        sps = t.get("samples_per_s")
        items.append(("timing", _e(f"{_fmt(t['total_s'], 2)} s total" + (f", {_fmt(sps, 2)} samples/s" if sps else ""))))
    return '<dl class="prov">' + "".join(f"<dt>{_e(k)}</dt><dd>{v}</dd>" for k, v in items) + "</dl>"


def _overall_html(results: dict[str, Any]) -> str:
    meta = results.get("metrics") or {}
    overall = results.get("overall") or {}
    if not overall:
        return '<p class="note">No metric produced a value in this run.</p>'
    pct = int(round(((results.get("protocol") or {}).get("values") or {}).get("ci_level", 0.95) * 100))
    rows = []
    for key, cell in overall.items():
        m = meta.get(key, {})
        hib = m.get("higher_is_better", True)
        flags = ", ".join(cell.get("flags") or [])
        rows.append([
            f"<code>{_e(key)}</code>", _e(m.get("title", "")),
            f'<span class="{"up" if hib else "down"}">{"↑ higher" if hib else "↓ lower"}</span>',
            _e(_fmt(cell.get("value"))), _e(_inf_text(cell)), _e(_ci(cell)), _e(cell.get("interval", "")),
            _e(cell.get("n", 0)), _e(cell.get("n_failed", 0)),
            f'<span class="flag">{_e(flags)}</span>' if flags else "", _e(m.get("kind", "")),
        ])
    return (_table(["metric", "title", "better", "value", "size-corrected (n=∞)", f"{pct}% interval", "interval is",
                    "n", "failed", "flags", "kind"], rows, raw=True, num_cols=(3, 4, 5, 7, 8))
            + f'<p class="note">{_e(_INTERVAL_NOTE)}.</p>')


def _failures_html(results: dict[str, Any], limit: int = 100) -> str:
    fails = results.get("failures") or {}
    warns = results.get("warnings") or {}
    out = []
    if not fails:
        out.append("<p>No sample failed.</p>")
    else:
        by_stage: dict[str, int] = {}
        for stages in fails.values():
            for stage in stages:
                by_stage[stage] = by_stage.get(stage, 0) + 1
        out.append(f"<p>{_e(len(fails))} sample(s) failed at least one stage; a failed sample is excluded from the "
                   "metrics of that stage and counted in <em>failed</em>.</p>")
        out.append(_table(["stage", "samples"], [[k, v] for k, v in sorted(by_stage.items())], num_cols=(1,)))
        rows = [[sid, stage, msg] for sid, stages in fails.items() for stage, msg in stages.items()]
        out.append(_table(["sample", "stage", "message"], rows[:limit]))
        if len(rows) > limit:
            out.append(f'<p class="note">… and {_e(len(rows) - limit)} more (see <code>failures</code> in the results file).</p>')
    if warns:
        n = sum(len(v) for v in warns.values())
        rows = [[sid, m] for sid, ms in warns.items() for m in ms]
        out.append(f"<details><summary>{_e(n)} warning(s) on {_e(len(warns))} sample(s)</summary>"
                   + _table(["sample", "warning"], rows[:limit]) + "</details>")
    return "".join(out)


def _category_table_html(cats: dict[str, dict[str, Any]], keys: list[str], meta: dict[str, Any]) -> str:
    rows = []
    for cat, cells in cats.items():
        row = [_e(cat)]
        for k in keys:
            c = cells.get(k)
            if not c:
                row.append("—")
                continue
            flags = c.get("flags") or []
            v, basis = ranking_value(c)
            tip = f"{c.get('interval') or 'interval'} {_ci(c) or 'n/a'}"
            if "value_inf" in c:
                tip = (f"protocol value {_fmt(c.get('value'))}, size-corrected {_fmt(c.get('value_inf'))}"
                       f"{'' if c.get('reliable') else ' (not reliable)'}; spread of the protocol value {_ci(c) or 'n/a'}")
            tip = _e(tip + (f"; flags: {', '.join(flags)}" if flags else ""))
            # an empty cell is already visibly empty; the mark is for a value that is not comparable
            mark = '<span class="flag">!</span>' if flags and v is not None else ""
            if basis == BASIS_UNRELIABLE and v is not None:
                mark += f'<span class="flag">{UNRELIABLE_MARK}</span>'
            row.append(f'<span title="{tip}">{_e(_fmt(v, 3))}{mark}</span> <small>n={_e(c.get("n", 0))}</small>')
        rows.append(row)
    corrected = {k for k in keys if any("value_inf" in (cells.get(k) or {}) for cells in cats.values())}
    return _table(["category"] + [f"{k}{' (n=∞)' if k in corrected else ''} {_arrow(meta, k)}" for k in keys], rows,
                  raw=True, num_cols=tuple(range(1, len(keys) + 1)))


def write_html(results: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write a self-contained HTML report of one results dict; returns the path.

    Sections: header and provenance, overall table (value, CI, n, failed, direction), skipped
    metrics with reasons, failures, then per aspect a category table and a heatmap (colour =
    direction-aware min-max score within each metric over the aspect's categories, text = value
    and n, hatched = flagged cell), and one radar per metric over every category.  Images are
    base64 PNG data URIs drawn with matplotlib's Agg canvas; there are no scripts and no external
    references, so the file opens offline.  All text from the results is HTML-escaped.  Without
    matplotlib (the ``report`` extra) the tables are written and the charts replaced by a note.
    """
    path = Path(path)
    meta = results.get("metrics") or {}
    model = (results.get("model") or {}).get("name", "unnamed")
    bench = results.get("bench") or {}
    p = results.get("protocol") or {}
    import importlib.util

    charts = importlib.util.find_spec("matplotlib") is not None

    parts = [
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e('javisbench: ' + str(model) + ' on ' + str(bench.get('name')))}</title>",
        f"<style>{_CSS}</style>", "</head>", "<body>",
        f"<h1>{_e(model)}</h1>",
        f'<p class="sub">{_e(bench.get("name"))} ({_e(bench.get("n_rows"))} rows) · protocol {_e(p.get("name"))} '
        f'v{_e(p.get("version"))} · javisbench {_e(results.get("javisbench_version"))}</p>',
        "<h2>Provenance</h2>", _provenance(results),
        "<h2>Overall</h2>", _overall_html(results),
    ]
    skipped = results.get("skipped") or {}
    parts.append("<h2>Skipped metrics</h2>")
    if skipped:
        parts.append('<p class="note">A skipped metric is never reported as a number; the reason names what is missing.</p>')
        by_reason: dict[str, list[str]] = {}
        for k, v in skipped.items():      # metrics of one encoder share the reason: one row each reason
            by_reason.setdefault(str(v), []).append(k)
        parts.append(_table(["metric(s)", "reason"], [[" ".join(f"<code>{_e(k)}</code>" for k in ks), _e(v)]
                                                     for v, ks in by_reason.items()], raw=True))
    else:
        parts.append("<p>None.</p>")
    parts += ["<h2>Failures</h2>", _failures_html(results)]

    per = results.get("per_category") or {}
    keys = _metric_keys(results)
    parts.append("<h2>Per category</h2>")
    if not per:
        parts.append("<p>No category labels in this bench.</p>")
    elif not keys:
        parts.append("<p>No metric values to break down.</p>")
    else:
        parts.append('<p class="note">Per-sample metrics are averaged over a category\'s samples; set metrics (FVD, KVD, '
                     "FAD) are recomputed on the category's subset. A set metric's finite-set value is biased by the "
                     "set size, so its columns (n=∞) show the size-corrected value, extrapolated to an infinite set "
                     "from the same samples, wherever that correction is reliable; "
                     f"<span class=flag>{UNRELIABLE_MARK}</span> = not reliable (too few samples per effective "
                     "feature dimension): the protocol value is shown, not comparable across category sizes. "
                     "<span class=flag>!</span> / hatched = flagged cell "
                     "(too few samples, rank-deficient set, a failed statistic, or an unreliable correction): not "
                     "comparable. Heatmap colours compare categories within one metric only (green = best category "
                     "for that metric).</p>")
        if not charts:
            parts.append('<p class="note">Charts omitted: matplotlib is not installed (pip install "javisbench[report]").</p>')
        for aspect, cats in per.items():
            parts.append(f'<h3>{_e(aspect)}</h3><div class="aspect">')
            parts.append(_category_table_html(cats, keys, meta))
            if charts:
                uri = _heatmap(aspect, cats, keys, meta)
                if uri:
                    parts.append(_img(uri, f"heatmap of {aspect}", f"{aspect}: categories x metrics"))
            parts.append("</div>")
        if charts:
            used = {(a, c) for a, cats in per.items() for c, cells in cats.items()
                    if any((cells.get(k) or {}).get("value") is not None for k in keys)}
            radars = [(k, _radar(k, per, (results.get("overall") or {}).get(k), meta, used)) for k in keys]
            radars = [(k, u) for k, u in radars if u]
            parts.append("<h2>Category profiles</h2>")
            if radars:
                parts.append('<p class="note">One radar per metric; an axis per category (label colour = aspect); the dashed '
                             "circle is the overall value.</p>")
                parts.append('<div class="charts">' + "".join(_img(u, f"radar of {k}", k) for k, u in radars) + "</div>")
            else:
                parts.append("<p>Too few categories with a value to draw a profile.</p>")
    parts.append(f'<p class="note">Generated by javisbench {_e(results.get("javisbench_version"))} from a results file '
                 "(self-contained: no scripts, no external resources).</p>")
    parts += ["</body>", "</html>"]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(parts) + "\n", encoding="utf-8")
    return path


def crosstab_tables(tabs: dict[str, Any], aspect_a: str, aspect_b: str) -> str:
    """One grid per metric: categories of ``aspect_a`` as rows, of ``aspect_b`` as columns."""
    blocks = []
    for key, rows in tabs.items():
        cols = list(next(iter(rows.values())).keys()) if rows else []
        body = []
        for a, row in rows.items():
            body.append([a] + [f"{_fmt(c['value'], 3)}{'!' if c.get('flags') else ''} (n={c['n']})" for c in row.values()])
        blocks.append(f"[{key}: {aspect_a} x {aspect_b}]\n" + _grid([aspect_a] + cols, body))
    return "\n\n".join(blocks) if blocks else "(no per-sample metric to cross-tabulate)"
