"""The board as one static, self-contained HTML page (``index.html``).

No file, font, stylesheet or script is loaded from anywhere: styles and the small script (column
sorting, category tabs) are inline, and the radar charts are inline SVG.  Every string from a
submission or a reported table is HTML-escaped; links are the validated ``http(s)`` URLs only.

Per measured group (bench + protocol): tabs ``Overall`` and one per category of the taxonomy,
each a sortable table (a click on a header sorts best-first, a second click reverses; rows
without a value stay last), then one radar chart per model.  Reported (paper) tables follow in
their own section, each sortable and ranked only within itself.
"""
from __future__ import annotations

import math
from html import escape

from javisbench.leaderboard.board import Board, Cell, Reported, Row, Table
from javisbench.leaderboard.render import LEGEND, fmt_cell, rank_text

_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d2330;background:#fff}
header,main{max-width:1400px;margin:0 auto;padding:0 20px}
header{padding-top:16px}
h1{font-size:1.6em;margin:8px 0}
h2{border-bottom:2px solid #d5dae3;padding-bottom:4px;margin-top:36px}
h3{margin:24px 0 6px}
p.meta{color:#5a6372;font-size:.9em;margin:4px 0 10px}
nav a{margin-right:14px}
table.board{border-collapse:collapse;font-size:.86em;margin:6px 0 12px}
table.board th,table.board td{border:1px solid #d5dae3;padding:4px 8px;text-align:right;white-space:nowrap}
table.board td.name,table.board td.text,table.board th.text{text-align:left}
table.board th{background:#eef1f6;cursor:pointer;user-select:none}
table.board th[aria-sort=ascending]::after{content:" \\25B2";font-size:.75em}
table.board th[aria-sort=descending]::after{content:" \\25BC";font-size:.75em}
table.board tbody tr:nth-child(even){background:#f8f9fb}
td.best{font-weight:700;background:#e3f4e1}
td.second{text-decoration:underline;background:#f3f8e6}
td.none{color:#98a0ad}
sup.rank{color:#6b7380;font-size:.7em;margin-left:3px;font-weight:400}
div.tabs{display:flex;flex-wrap:wrap;gap:4px;margin:8px 0}
div.tabs button{border:1px solid #c3cad6;background:#f4f6fa;border-radius:4px;padding:3px 9px;cursor:pointer;font-size:.85em}
div.tabs button[aria-selected=true]{background:#2b5fb3;color:#fff;border-color:#2b5fb3}
div.radars{display:flex;flex-wrap:wrap;gap:10px}
figure.radar{margin:0;border:1px solid #e1e5ec;border-radius:6px;padding:4px}
figure.radar figcaption{font-size:.85em;text-align:center;max-width:220px;overflow-wrap:anywhere}
svg text{font-size:9px;fill:#3a4250}
"""

_SCRIPT = """
(function () {
  function sortBy(th) {
    var table = th.closest('table'), body = table.tBodies[0];
    var col = Array.prototype.indexOf.call(th.parentNode.children, th);
    var num = th.getAttribute('data-sort') === 'num';
    var first = num && th.getAttribute('data-hib') === '1' ? 'descending' : 'ascending';
    var dir = th.getAttribute('aria-sort') === first ? (first === 'ascending' ? 'descending' : 'ascending') : first;
    Array.prototype.forEach.call(th.parentNode.children, function (h) { h.removeAttribute('aria-sort'); });
    th.setAttribute('aria-sort', dir);
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = a.cells[col].getAttribute('data-v'), y = b.cells[col].getAttribute('data-v');
      var ia = +a.getAttribute('data-i'), ib = +b.getAttribute('data-i');
      if (x === '' || y === '') { return x === y ? ia - ib : (x === '' ? 1 : -1); }
      var c = num ? parseFloat(x) - parseFloat(y) : (x < y ? -1 : x > y ? 1 : 0);
      if (dir === 'descending') { c = -c; }
      return c || ia - ib;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  }
  Array.prototype.forEach.call(document.querySelectorAll('table.sortable th[data-sort]'), function (th) {
    th.tabIndex = 0;
    th.addEventListener('click', function () { sortBy(th); });
    th.addEventListener('keydown', function (e) { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); sortBy(th); } });
  });
  Array.prototype.forEach.call(document.querySelectorAll('div.tabs [role=tab]'), function (tab) {
    tab.addEventListener('click', function () {
      Array.prototype.forEach.call(tab.parentNode.querySelectorAll('[role=tab]'), function (t) {
        var on = t === tab;
        t.setAttribute('aria-selected', on ? 'true' : 'false');
        document.getElementById(t.getAttribute('aria-controls')).hidden = !on;
      });
    });
  });
})();
"""


def _family_rank(family: str) -> int:
    from javisbench.leaderboard.submission import FAMILIES

    return FAMILIES.index(family) if family in FAMILIES else len(FAMILIES)


def _e(s: object) -> str:
    return escape(str(s), quote=True)


def _num_attr(x: float | None) -> str:
    return "" if x is None else repr(float(x))


def _table_html(t: Table, rep: Reported | None, table_id: str) -> list[str]:
    fam = any(r.family for r in t.rows) or rep is None
    head = ['<th class="text" data-sort="text" scope="col">family</th>'] if fam else []
    head.append(f'<th class="text" data-sort="text" scope="col">{"model" if rep is None else "method"}</th>')
    meta_sort = ["num" if (rep is None and m == "n") else "text" for m in t.meta_columns]
    metas = [f'<th class="text" data-sort="{s}" scope="col">{_e(m)}</th>' for m, s in zip(t.meta_columns, meta_sort)]
    if rep is not None:
        head += metas
    for c in t.columns:
        tip = f"{c.title}: {c.description}" if c.description else c.title
        head.append(f'<th data-sort="num" data-hib="{int(c.higher_is_better)}" data-metric="{_e(c.key)}" scope="col" '
                    f'title="{_e(tip)} ({"higher" if c.higher_is_better else "lower"} is better)">{_e(c.key)} {c.arrow}</th>')
    if rep is None:
        head += metas
    out = [f'<table class="board sortable" id="{table_id}">', "<thead><tr>" + "".join(head) + "</tr></thead>", "<tbody>"]
    for ri, row in enumerate(t.rows):
        # the family column sorts in the papers' order (T2A+A2V, T2V+V2A, T2AV, then others)
        fam_key = "" if not row.family else f"{_family_rank(row.family)}:{row.family}"
        cells = [f'<td class="text" data-v="{_e(fam_key)}">{_e(row.family or "–")}</td>'] if fam else []
        name = _e(row.name)
        if row.link:
            name = f'<a href="{_e(row.link)}" rel="nofollow noopener noreferrer">{name}</a>'
        cells.append(f'<td class="name" data-v="{_e(row.name)}">{name}</td>')
        metav = [f'<td class="text" data-v="{_e(m)}">{_e(m)}</td>' for m in row.meta]
        if rep is not None:
            cells += metav
        for ci, c in enumerate(row.cells):
            cells.append(_cell_html(c, None if rep is None else rep.printed[ri][ci]))
        if rep is None:
            cells += metav
        out.append(f'<tr data-i="{ri}">' + "".join(cells) + "</tr>")
    out += ["</tbody>", "</table>"]
    return out


def _cell_html(c: Cell, shown: str | None) -> str:
    cls = c.mark or ("none" if c.value is None else "")
    attr = f' class="{cls}"' if cls else ""
    rank = f'<sup class="rank" title="rank{" (tied)" if c.tied else ""}">{_e(rank_text(c))}</sup>' if c.rank is not None else ""
    tip = ""
    if c.ci_low is not None and c.ci_high is not None:
        tip = f' title="95% interval [{_e(repr(c.ci_low))}, {_e(repr(c.ci_high))}]' + (f", n={c.n}" if c.n is not None else "") + '"'
    return f'<td data-v="{_num_attr(c.value)}"{attr}{tip}>{_e(fmt_cell(c, shown))}{rank}</td>'


def radar_svg(t: Table, row: Row, size: int = 220) -> str:
    """One model's scores on every metric of its table, each axis scaled within the table.

    An axis runs from the table's worst value (inner ring) to its best (outer ring), whatever the
    metric's direction; a missing value sits at the centre.
    """
    n = len(t.columns)
    cx = cy = size / 2
    radius = size / 2 - 44
    pts, axes, labels = [], [], []
    for i, col in enumerate(t.columns):
        vals = [r.cells[i].value for r in t.rows if r.cells[i].value is not None]
        v = row.cells[i].value
        if v is None:
            s = 0.0
        elif not vals or max(vals) == min(vals):
            s = 1.0
        else:
            lo, hi = min(vals), max(vals)
            s = (v - lo) / (hi - lo) if col.higher_is_better else (hi - v) / (hi - lo)
        rr = radius * (0.0 if v is None else 0.12 + 0.88 * s)
        ang = -math.pi / 2 + 2 * math.pi * i / n
        ca, sa = math.cos(ang), math.sin(ang)
        pts.append(f"{cx + rr * ca:.1f},{cy + rr * sa:.1f}")
        axes.append(f'<line x1="{cx:.1f}" y1="{cy:.1f}" x2="{cx + radius * ca:.1f}" y2="{cy + radius * sa:.1f}" stroke="#c9ced8"/>')
        anchor = "middle" if abs(ca) < 0.3 else ("start" if ca > 0 else "end")
        lx, ly = cx + (radius + 8) * ca, cy + (radius + 8) * sa + 3
        labels.append(f'<text x="{lx:.1f}" y="{ly:.1f}" text-anchor="{anchor}">{_e(col.key)} {col.arrow}</text>')
    rings = []
    for f in (0.25, 0.5, 0.75, 1.0):
        ring = " ".join(f"{cx + radius * f * math.cos(-math.pi / 2 + 2 * math.pi * i / n):.1f},"
                        f"{cy + radius * f * math.sin(-math.pi / 2 + 2 * math.pi * i / n):.1f}" for i in range(n))
        rings.append(f'<polygon points="{ring}" fill="none" stroke="#e1e5ec"/>')
    shape = (f'<polygon points="{" ".join(pts)}" fill="rgba(43,95,179,0.30)" stroke="#2b5fb3" stroke-width="1.5"/>'
             if n >= 3 else f'<polyline points="{" ".join(pts)}" fill="none" stroke="#2b5fb3" stroke-width="3"/>')
    dots = "".join(f'<circle cx="{p.split(",")[0]}" cy="{p.split(",")[1]}" r="2.5" fill="#2b5fb3"/>' for p in pts)
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{size}" height="{size}" viewBox="0 0 {size} {size}" '
            f'role="img" aria-label="{_e("radar chart of " + row.name)}">' + "".join(rings) + "".join(axes) + shape + dots
            + "".join(labels) + "</svg>")


def _radars(t: Table) -> list[str]:
    if not t.columns or not t.rows:
        return []
    out = ['<p class="meta">Per model: each axis runs from the worst value in this table (centre) to the best '
           "(outer ring), whatever the metric's direction; a missing value sits at the centre.</p>",
           '<div class="radars">']
    for row in t.rows:
        out.append(f'<figure class="radar">{radar_svg(t, row)}<figcaption>{_e(row.name)}</figcaption></figure>')
    out.append("</div>")
    return out


def render_html(board: Board) -> str:
    """The whole page as text (UTF-8, ``<!DOCTYPE html>``)."""
    out = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">', "<title>javisbench leaderboard</title>",
           f"<style>{_STYLE}</style>", "</head>", "<body>", "<header>", "<h1>javisbench leaderboard</h1>",
           f'<p class="meta">{_e(LEGEND)} Click a column header to sort by it.</p>',
           '<nav><a href="#measured">Measured</a><a href="#reported">Reported in papers</a>'
           '<a href="leaderboard.csv">CSV</a><a href="leaderboard.tex">LaTeX</a><a href="README.md">Markdown</a></nav>',
           "</header>", "<main>", '<section id="measured">', "<h2>Measured by javisbench</h2>"]
    if not board.groups:
        out.append('<p class="meta">No measured results yet: add one with <code>javisbench leaderboard add '
                   "results.json</code>.</p>")
    for g in board.groups:
        out += [f'<section class="group" id="{g.slug}">', f"<h3>{_e(g.title)}</h3>",
                f'<p class="meta">bench manifest sha256 <code>{_e(g.bench_sha256[:12])}</code>, protocol fingerprint '
                f"<code>{_e(g.fingerprint)}</code>; values ± half the 95% interval (a CI for per-sample metrics, the sampling spread for set metrics); rows grouped by method family.</p>"]
        panels = [("Overall", g.overall)] + [(f"{a}: {c}", t) for a, c, t in g.tabs]
        out.append(f'<div class="tabs" role="tablist" aria-label="{_e("categories of " + g.title)}">')
        for pi, (label, _t) in enumerate(panels):
            out.append(f'<button type="button" role="tab" id="{g.slug}-tab{pi}" aria-controls="{g.slug}-p{pi}" '
                       f'aria-selected="{"true" if pi == 0 else "false"}">{_e(label)}</button>')
        out.append("</div>")
        for pi, (label, t) in enumerate(panels):
            out.append(f'<div class="panel" role="tabpanel" id="{g.slug}-p{pi}" aria-labelledby="{g.slug}-tab{pi}"'
                       f'{"" if pi == 0 else " hidden"}>')
            out += _table_html(t, None, f"{g.slug}-t{pi}")
            out.append("</div>")
        out += _radars(g.overall)
        out.append("</section>")
    out += ["</section>", '<section id="reported">', "<h2>Reported in papers (not measured by javisbench)</h2>",
            '<p class="meta">Numbers as printed in each paper. They are never ranked with measured entries, and tables '
            "from different papers are not comparable with each other (each paper ran its own evaluation code).</p>"]
    for r in board.reported:
        info = "; ".join(x for x in (r.table.setting, r.table.note) if x)
        out += [f'<section class="reported" id="{r.slug}">', f"<h3>{_e(r.title)}</h3>"]
        if info:
            out.append(f'<p class="meta">{_e(info)}</p>')
        out += _table_html(r.ranked, r, f"{r.slug}-t")
        out += _radars(r.ranked)
        out.append("</section>")
    out += ["</section>", "</main>", f"<script>{_SCRIPT}</script>", "</body>", "</html>"]
    return "\n".join(out) + "\n"
