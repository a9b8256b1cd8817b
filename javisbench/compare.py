"""Model B vs model A on the same bench and protocol: per metric and per category, with error bars.

``compare(a, b)`` takes two results dicts (``javisbench.results`` schema) and returns a
JSON-serialisable comparison; ``render_comparison`` prints it as tables.

Two rules decide whether a difference is *significant*:

* **paired bootstrap** (per-sample metrics, when both results carry ``per_sample``): samples are
  paired by id, pairs where either side is null (a failed sample) are dropped and counted, and
  ``metrics.bootstrap.paired_bootstrap_diff`` resamples the per-sample differences
  ``d_i = b_i - a_i``.  ``diff = mean(d)``, the CI is the percentile interval of the resampled
  means and ``significant`` is ``p < 1 - level``.  Per category, the same on the category's
  member samples (membership from the labels the results carry).
* **unpaired bootstrap** (per-sample metrics on a *folder* bench such as Landscape, where the two
  models' clips do not correspond): each run's values are resampled on their own and the CI is
  that of ``mean(b) - mean(a)``; p-value and ``significant`` as for the paired test.
* **CI overlap** (set metrics FVD/KVD/FAD, whose per-sample features are not in the results; and
  per-sample metrics when the pairing information is missing): ``diff = b - a`` of the two stored
  values, the interval is ``[b_lo - a_hi, b_hi - a_lo]`` (every difference compatible with both
  stored intervals) and ``significant`` means the two intervals do not overlap — equivalently,
  that interval excludes 0.  Two independent 95% intervals that do not overlap correspond to a
  difference test at a level well below 5%, so this rule is conservative: it misses real
  differences more often than the paired test, and never reports a p-value.

Set metrics are compared on their **size-corrected** values (``value_inf``, the metric
extrapolated to an infinite set; ``basis: "size-corrected"``), so that a category's difference
does not depend on how many samples the category has and on how differently the two models'
features spread.  A set metric's stored interval is the sampling spread of its protocol value
(``interval: "spread"``); it is moved onto ``value_inf`` and widened about it by
:data:`INF_SPREAD_FACTOR`, because the extrapolated value is noisier than the protocol value
(``a_ci``/``b_ci`` are then the moved intervals; ``a_protocol``/``b_protocol`` keep the protocol
values).  Where either side's correction is missing or not ``reliable``, the cell falls back
to the protocol values (``basis: "protocol"``) and a note says how many cells did.

``better`` is direction-aware (``higher_is_better`` from the results' metric table): ``"b"`` when B
is significantly better, ``"a"`` when significantly worse, ``None`` otherwise.  No correction for
multiple comparisons is applied across the metric x category cells: at level 0.95 about one
cell in twenty of two equivalent models is expected to come out significant.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

COMPARISON_SCHEMA = "1.0"

#: How much wider the sampling spread of a size-corrected set metric is than the protocol value's:
#: the standard deviation over 60 seeded Gaussian sets was 1.14x (d = 8, n = 100), 1.08x (d = 8,
#: n = 400) and 1.10x (d = 32, n = 400) that of the plain FD, and 1.17x on another 30 (d = 8,
#: n = 100; the test); rounded up.
INF_SPREAD_FACTOR = 1.2


# ---------------------------------------------------------------------------------------------
# checks
# ---------------------------------------------------------------------------------------------
def _major(results: dict[str, Any]) -> str:
    return str(results.get("schema_version", "?")).split(".")[0]


def _model(results: dict[str, Any]) -> str:
    return str((results.get("model") or {}).get("name", "unnamed"))


def _unpaired(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Both runs are on a folder bench: no sample of A corresponds to a sample of B."""
    return a["bench"].get("kind") == "folder" and b["bench"].get("kind") == "folder"


def check_comparable(a: dict[str, Any], b: dict[str, Any]) -> None:
    """Raise ``ValueError`` unless A and B were produced under the same schema major, protocol and bench.

    Protocol identity is ``(name, version, fingerprint)`` (the fingerprint covers every protocol
    value, the seed included); bench identity is the manifest sha256 and its row count (a run
    with ``--limit`` scores a different sample set).
    """
    from javisbench.results import SCHEMA_VERSION

    ours = SCHEMA_VERSION.split(".")[0]
    for side, r in (("A", a), ("B", b)):
        for field in ("protocol", "bench", "overall"):
            if not isinstance(r.get(field), dict):
                raise ValueError(f"results {side} ({_model(r)}) has no {field!r} section: not a javisbench results file")
        if _major(r) != ours:
            raise ValueError(f"results {side} ({_model(r)}) has schema_version {r.get('schema_version')!r}; "
                             f"this javisbench reads {ours}.x")
    pa, pb = a["protocol"], b["protocol"]
    ida = tuple(pa.get(k) for k in ("name", "version", "fingerprint"))
    idb = tuple(pb.get(k) for k in ("name", "version", "fingerprint"))
    if ida != idb:
        diff = ""
        va, vb = pa.get("values") or {}, pb.get("values") or {}
        changed = sorted(k for k in set(va) | set(vb) if va.get(k) != vb.get(k))
        if changed:
            diff = "; differing values: " + ", ".join(f"{k}: {va.get(k)!r} vs {vb.get(k)!r}" for k in changed[:8])
        raise ValueError(
            f"cannot compare results from different protocols: A ({_model(a)}) used {ida[0]} v{ida[1]} "
            f"(fingerprint {ida[2]}), B ({_model(b)}) used {idb[0]} v{idb[1]} (fingerprint {idb[2]}){diff}. "
            "Re-run both with the same --protocol (and --seed)."
        )
    ba, bb = a["bench"], b["bench"]
    if ba.get("manifest_sha256") != bb.get("manifest_sha256"):
        raise ValueError(
            f"cannot compare results on different benches: A ({_model(a)}) on {ba.get('name')} "
            f"(manifest sha256 {str(ba.get('manifest_sha256'))[:12]}...), B ({_model(b)}) on {bb.get('name')} "
            f"(manifest sha256 {str(bb.get('manifest_sha256'))[:12]}...)"
        )
    if ba.get("n_rows") != bb.get("n_rows") and not _unpaired(a, b):
        raise ValueError(
            f"cannot compare results on different sample sets of bench {ba.get('name')}: A ({_model(a)}) scored "
            f"{ba.get('n_rows')} rows, B ({_model(b)}) {bb.get('n_rows')} rows (was --limit used on one run?)"
        )


# ---------------------------------------------------------------------------------------------
# cells
# ---------------------------------------------------------------------------------------------
def _num(x: Any) -> float | None:
    """JSON-safe float (NaN/inf/None -> None)."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _better(diff: float | None, significant: bool, higher_is_better: bool) -> str | None:
    if not significant or diff is None or diff == 0:
        return None
    return "b" if (diff > 0) == bool(higher_is_better) else "a"


def paired_cell(va: np.ndarray, vb: np.ndarray, higher_is_better: bool, n_boot: int, level: float,
                seed: int) -> dict[str, Any]:
    """Paired-bootstrap comparison of aligned per-sample values (NaN = failed sample).

    ``a``/``b`` are the means over the kept pairs, so ``diff == b - a``.

    Args:
        va, vb: (n,) float64, aligned by sample.
    """
    from metrics.bootstrap import paired_bootstrap_diff

    va = np.asarray(va, np.float64)
    vb = np.asarray(vb, np.float64)
    keep = ~(np.isnan(va) | np.isnan(vb))
    r = paired_bootstrap_diff(vb, va, n_boot=n_boot, level=level, seed=seed)   # mean(b - a)
    diff = _num(r["diff"])
    if r["n"] == 1:
        diff = _num(vb[keep][0] - va[keep][0])    # one pair: a difference, but no interval and no test
    sig = bool(r["significant"]) and diff is not None
    return {
        "method": "paired-bootstrap",
        "a": _num(va[keep].mean()) if keep.any() else None,
        "b": _num(vb[keep].mean()) if keep.any() else None,
        "diff": diff, "ci_low": _num(r["ci_low"]), "ci_high": _num(r["ci_high"]), "p_value": _num(r["p_value"]),
        "significant": sig, "better": _better(diff, sig, higher_is_better),
        "n_pairs": int(r["n"]), "n_dropped": int(r["n_dropped"]),
        "n_a": int(np.count_nonzero(~np.isnan(va))), "n_b": int(np.count_nonzero(~np.isnan(vb))),
        **({"flags": ["too-few"]} if r["n"] < 2 else {}),
    }


def unpaired_cell(va: np.ndarray, vb: np.ndarray, higher_is_better: bool, n_boot: int, level: float,
                  seed: int) -> dict[str, Any]:
    """Unpaired-bootstrap comparison of two models' per-sample values (folder benches)."""
    from metrics.bootstrap import unpaired_bootstrap_diff

    r = unpaired_bootstrap_diff(vb, va, n_boot=n_boot, level=level, seed=seed)   # mean(b) - mean(a)
    diff = _num(r["diff"])
    sig = bool(r["significant"]) and diff is not None
    a_vals, b_vals = np.asarray(va, np.float64), np.asarray(vb, np.float64)
    a_ok, b_ok = a_vals[~np.isnan(a_vals)], b_vals[~np.isnan(b_vals)]
    return {
        "method": "unpaired-bootstrap",
        "a": _num(a_ok.mean()) if a_ok.size else None, "b": _num(b_ok.mean()) if b_ok.size else None,
        "diff": diff, "ci_low": _num(r["ci_low"]), "ci_high": _num(r["ci_high"]), "p_value": _num(r["p_value"]),
        "significant": sig, "better": _better(diff, sig, higher_is_better),
        "n_pairs": None, "n_dropped": None, "n_a": int(a_ok.size), "n_b": int(b_ok.size),
        **({"flags": ["too-few"]} if min(a_ok.size, b_ok.size) < 2 else {}),
    }


def size_corrected_cell(cell: dict[str, Any] | None) -> dict[str, Any] | None:
    """A stored set-metric cell seen through its size correction: ``value`` = ``value_inf`` and the
    interval moved onto it, its distances to the value widened by :data:`INF_SPREAD_FACTOR`; None
    when the cell has no reliable correction.

    Example:
        >>> c = size_corrected_cell({"value": 2.0, "ci_low": 1.5, "ci_high": 3.0, "value_inf": 1.0, "reliable": True})
        >>> c["value"], round(c["ci_low"], 3), round(c["ci_high"], 3)
        (1.0, 0.4, 2.2)
        >>> size_corrected_cell({"value": 2.0, "value_inf": 1.0, "reliable": False}) is None
        True
    """
    c = cell or {}
    v, vi = _num(c.get("value")), _num(c.get("value_inf"))
    if not c.get("reliable") or v is None or vi is None:
        return None
    f = INF_SPREAD_FACTOR
    lo, hi = _num(c.get("ci_low")), _num(c.get("ci_high"))
    return {**c, "value": vi, "ci_low": None if lo is None else vi - f * (v - lo),
            "ci_high": None if hi is None else vi + f * (hi - v)}


def set_metric_cell(ca: dict[str, Any] | None, cb: dict[str, Any] | None, higher_is_better: bool) -> dict[str, Any]:
    """CI-overlap comparison of two stored set-metric cells on their size-corrected values
    (``basis: "size-corrected"``), or on the protocol values when either side has no reliable
    correction (``basis: "protocol"``); ``a_protocol``/``b_protocol`` are the protocol values."""
    ia, ib = size_corrected_cell(ca), size_corrected_cell(cb)
    if ia is not None and ib is not None:
        out = {**overlap_cell(ia, ib, higher_is_better), "basis": "size-corrected"}
    else:
        out = {**overlap_cell(ca, cb, higher_is_better), "basis": "protocol"}
    out["a_protocol"] = _num((ca or {}).get("value"))
    out["b_protocol"] = _num((cb or {}).get("value"))
    return out


def overlap_cell(ca: dict[str, Any] | None, cb: dict[str, Any] | None, higher_is_better: bool) -> dict[str, Any]:
    """CI-overlap comparison of two stored cells ``{value, ci_low, ci_high, n, flags}``.

    ``diff = b - a``; interval ``[b_lo - a_hi, b_hi - a_lo]``; significant iff the two stored
    intervals do not overlap (the interval excludes 0).  No interval on either side -> never
    significant.
    """
    ca, cb = ca or {}, cb or {}
    a, b = _num(ca.get("value")), _num(cb.get("value"))
    alo, ahi, blo, bhi = (_num(c.get(k)) for c in (ca, cb) for k in ("ci_low", "ci_high"))
    diff = lo = hi = None
    if a is not None and b is not None:
        diff = b - a
    if None not in (alo, ahi, blo, bhi) and diff is not None:
        lo, hi = blo - ahi, bhi - alo     # type: ignore[operator]
    sig = lo is not None and hi is not None and (lo > 0 or hi < 0)
    flags = sorted(set(ca.get("flags") or []) | set(cb.get("flags") or []))
    out = {
        "method": "ci-overlap",
        "a": a, "b": b, "diff": diff, "ci_low": lo, "ci_high": hi, "p_value": None,
        "significant": bool(sig), "better": _better(diff, bool(sig), higher_is_better),
        "n_pairs": None, "n_dropped": None,
        "n_a": ca.get("n"), "n_b": cb.get("n"),
        "a_ci": [alo, ahi], "b_ci": [blo, bhi],
    }
    if flags:
        out["flags"] = flags
    return out


# ---------------------------------------------------------------------------------------------
# category membership (from the labels the results carry)
# ---------------------------------------------------------------------------------------------
def _membership(results: tuple[dict[str, Any], ...],
                notes: list[str]) -> tuple[list[str], dict[str, dict[str, np.ndarray]]] | None:
    """``(sample ids, {aspect: {category: bool (n,)}})`` from the first run's labels, or None (with a note)."""
    from javisbench.results import ResultsError, labels_from_results

    taxa = [(r.get("labels") or {}).get("taxonomy") for r in results]
    if any(t is not None and t != taxa[0] for t in taxa[1:]):
        notes.append("the two runs used different taxonomies: per-category cells are compared by their stored "
                     "values and CIs only")
        return None
    try:
        labels = labels_from_results(results[0])
    except (ResultsError, ValueError, KeyError) as e:
        notes.append(f"per-category pairing unavailable: {e}. Per-sample metrics are compared per category by "
                     "their stored CIs (ci-overlap rule)")
        return None
    tax = labels.taxonomy
    member = {a.key: {c.key: labels.membership(a.key)[:, c.index] for c in a.categories} for a in tax.aspects}
    return list(results[0]["sample_ids"]), member


# ---------------------------------------------------------------------------------------------
def compare(a: dict[str, Any], b: dict[str, Any], n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> dict[str, Any]:
    """Compare results B against results A, per metric and per category; ``diff = B - A``.

    Per-sample metrics: paired bootstrap over samples present (non-null) in both runs; set
    metrics: CI-overlap rule on the stored size-corrected values, or the protocol values where
    the correction is not reliable (``basis``; see the module docstring).

    Args:
        a, b: results dicts (``javisbench.results.read_results``).
        n_boot: bootstrap resamples for the paired test.
        seed: bootstrap seed (the same for every cell, so a cell's result does not depend on
            which other metrics are present).
        level: confidence level of the intervals and of the test (``p < 1 - level``).

    Returns:
        ``{"comparison_schema", "a", "b", "protocol", "bench", "n_boot", "seed", "level",
        "metrics": {key: cell}, "per_category": {aspect: {category: {key: cell}}},
        "summary": {"b_better": [...], "b_worse": [...]}, "not_compared": {key: reason}, "notes": [...]}``;
        a cell is ``{method, a, b, diff, ci_low, ci_high, p_value, significant, better, n_pairs, n_dropped,
        n_a, n_b, title, higher_is_better}`` (ci-overlap cells add ``a_ci``, ``b_ci``; set-metric cells
        add ``basis`` and ``a_protocol``, ``b_protocol``); a summary entry
        is ``{metric, aspect, category, diff, p_value, method}`` (aspect and category null for overall).
        Every number is finite or null, so ``json.dumps(..., allow_nan=False)`` works.

    Raises:
        ValueError: different schema major versions, protocols or benches; bad ``n_boot``/``level``.
    """
    check_comparable(a, b)
    if int(n_boot) < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    if not 0.0 < float(level) < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    notes: list[str] = []
    meta = {**(b.get("metrics") or {}), **(a.get("metrics") or {})}
    keys = [k for k in a["overall"] if k in b["overall"]]
    not_compared: dict[str, str] = {}
    for k in list(a["overall"]) + list(b["overall"]):
        if k in keys or k in not_compared:
            continue
        has, lacks = ("A", "B") if k in a["overall"] else ("B", "A")
        why = ((a if lacks == "A" else b).get("skipped") or {}).get(k, "not requested in that run")
        not_compared[k] = f"only in {has}; {lacks} ({_model(a if lacks == 'A' else b)}): {why}"
    sa, sb = a.get("skipped") or {}, b.get("skipped") or {}
    for k in list(sa) + [k for k in sb if k not in sa]:
        if k in keys or k in not_compared:
            continue
        if k in sa and k in sb:
            not_compared[k] = f"skipped in both runs: {sa[k]}" if sa[k] == sb[k] else \
                f"skipped in both runs: A: {sa[k]}; B: {sb[k]}"
        else:
            not_compared[k] = f"skipped in {'A' if k in sa else 'B'}: {sa.get(k) or sb.get(k)}"

    def kind(k: str) -> str:
        return str(meta.get(k, {}).get("kind", "sample"))

    def hib(k: str) -> bool:
        return bool(meta.get(k, {}).get("higher_is_better", True))

    pa, pb = a.get("per_sample") or {}, b.get("per_sample") or {}
    paired_keys = [k for k in keys if kind(k) == "sample" and pa and pb]
    if any(kind(k) == "sample" for k in keys) and not (pa and pb):
        missing = " and ".join(s for s, p in (("A", pa), ("B", pb)) if not p)
        notes.append(f"results {missing} carry no per-sample values (run without --no-per-sample to pair samples): "
                     "per-sample metrics are compared by their stored CIs (ci-overlap rule)")

    # samples by id: B's order does not matter
    ids = sorted(set(pa) | set(pb))
    if paired_keys and not _unpaired(a, b):
        only = sorted(set(pa) ^ set(pb))
        if only:
            notes.append(f"{len(only)} sample id(s) present in only one run's per_sample (e.g. {only[0]}): "
                         "counted as dropped pairs")

    def values(ps: dict[str, Any], k: str, sample_ids: list[str]) -> np.ndarray:
        out = np.full(len(sample_ids), np.nan)
        for i, s in enumerate(sample_ids):
            v = (ps.get(s) or {}).get(k)
            if v is not None:
                out[i] = float(v)
        return out

    def decorate(cell: dict[str, Any], k: str) -> dict[str, Any]:
        return {"title": meta.get(k, {}).get("title", k), "kind": kind(k), "higher_is_better": hib(k), **cell}

    metrics_out: dict[str, Any] = {}
    unpaired = _unpaired(a, b)
    if unpaired and paired_keys:
        notes.append(f"bench {a['bench'].get('name')} is a folder bench (no prompts, no sample of A matches a sample "
                     "of B): per-sample metrics are compared with an unpaired bootstrap")
    for k in keys:
        if unpaired and k in paired_keys:
            cell = unpaired_cell(values(pa, k, sorted(pa)), values(pb, k, sorted(pb)), hib(k), n_boot, level, seed)
        elif k in paired_keys:
            cell = paired_cell(values(pa, k, ids), values(pb, k, ids), hib(k), n_boot, level, seed)
        elif kind(k) == "set":
            cell = set_metric_cell(a["overall"][k], b["overall"][k], hib(k))
        else:
            cell = overlap_cell(a["overall"][k], b["overall"][k], hib(k))
        metrics_out[k] = decorate(cell, k)

    per_category: dict[str, Any] = {}
    cats_a, cats_b = a.get("per_category") or {}, b.get("per_category") or {}
    if cats_a and cats_b:
        member = _membership((a, b), notes) if paired_keys else None
        if member is not None:
            m_ids, groups = member
            arrays = {k: (values(pa, k, m_ids), values(pb, k, m_ids)) for k in paired_keys}
        for aspect, cats in cats_a.items():
            for cat, cells_a in cats.items():
                cells_b = (cats_b.get(aspect) or {}).get(cat)
                if cells_b is None:
                    continue
                row: dict[str, Any] = {}
                for k in keys:
                    if k in paired_keys and member is not None and aspect in groups and cat in groups[aspect]:
                        sel = groups[aspect][cat]
                        va, vb = arrays[k]
                        cell = paired_cell(va[sel], vb[sel], hib(k), n_boot, level, seed)
                    elif (k in cells_a or k in cells_b) and kind(k) == "set":
                        cell = set_metric_cell(cells_a.get(k), cells_b.get(k), hib(k))
                    elif k in cells_a or k in cells_b:
                        cell = overlap_cell(cells_a.get(k), cells_b.get(k), hib(k))
                    else:
                        continue
                    row[k] = decorate(cell, k)
                per_category.setdefault(aspect, {})[cat] = row
    elif cats_a or cats_b:
        notes.append("only one run has per-category cells: per-category comparison skipped")

    better, worse = [], []
    cells = [(k, None, None, c) for k, c in metrics_out.items()]
    cells += [(k, asp, cat, c) for asp, cs in per_category.items() for cat, row in cs.items() for k, c in row.items()]
    set_cells = [c for _k, _a, _c, c in cells if "basis" in c and c["a"] is not None and c["b"] is not None]
    fallback = sum(c["basis"] != "size-corrected" for c in set_cells)
    if fallback:
        set_keys = ", ".join(k for k in keys if kind(k) == "set")
        notes.append(f"set metrics ({set_keys}) are compared on their size-corrected values (n=∞) where reliable; "
                     f"{fallback} of {len(set_cells)} set-metric cell(s) use the protocol values instead (size "
                     "correction missing or not reliable on either side: the values depend on the set sizes)")
    for k, asp, cat, c in cells:
        if c["better"] is None:
            continue
        entry = {"metric": k, "aspect": asp, "category": cat, "diff": c["diff"], "p_value": c["p_value"],
                 "method": c["method"]}
        (better if c["better"] == "b" else worse).append(entry)

    def side(r: dict[str, Any]) -> dict[str, Any]:
        return {"model": r.get("model") or {}, "created": r.get("created"), "git_commit": r.get("git_commit"),
                "javisbench_version": r.get("javisbench_version"), "schema_version": r.get("schema_version"),
                "n_failures": len(r.get("failures") or {})}

    bench = a["bench"]
    return {
        "comparison_schema": COMPARISON_SCHEMA,
        "a": side(a),
        "b": side(b),
        "protocol": {k: a["protocol"].get(k) for k in ("name", "version", "fingerprint")},
        "bench": {k: bench.get(k) for k in ("name", "manifest_sha256", "n_rows", "taxonomy")},
        "n_boot": int(n_boot), "seed": int(seed), "level": float(level),
        "metrics": metrics_out,
        "per_category": per_category,
        "summary": {"b_better": better, "b_worse": worse},
        "not_compared": not_compared,
        "notes": notes,
    }


# ---------------------------------------------------------------------------------------------
# terminal rendering
# ---------------------------------------------------------------------------------------------
def _fmt(v: float | None, digits: int = 4, sign: bool = False) -> str:
    if v is None:
        return "—"
    a = abs(v)
    s = "+" if sign and v > 0 else ""
    if a != 0 and (a >= 1e5 or a < 1e-3):
        return f"{s}{v:.{digits - 1}e}"
    return f"{s}{v:.{digits}f}"


def _grid(head: list[str], rows: list[list[str]]) -> str:
    from javisbench.tables import grid

    return grid(head, rows)


def _mark(c: dict[str, Any]) -> str:
    """``▲`` B significantly better, ``▼`` B significantly worse, blank otherwise."""
    return {"b": "▲", "a": "▼"}.get(c.get("better") or "", "")


def render_comparison(c: dict[str, Any]) -> str:
    """Readable terminal tables: overall (A, B, B−A, CI, p, verdict), then per aspect the B−A per category."""
    na, nb = c["a"]["model"].get("name", "A"), c["b"]["model"].get("name", "B")
    pct = int(round(c["level"] * 100))
    unpaired = any(m.get("method") == "unpaired-bootstrap" for m in c["metrics"].values())
    kind = "unpaired-bootstrap" if unpaired else "paired-bootstrap"
    out = [f"B = {nb}  vs  A = {na}   on {c['bench']['name']} ({c['bench']['n_rows']} rows), protocol "
           f"{c['protocol']['name']} v{c['protocol']['version']}; {c['n_boot']} {kind} resamples, seed {c['seed']}"]
    rows = []
    for k, m in c["metrics"].items():
        arrow = "↑" if m["higher_is_better"] else "↓"
        ci = "" if m["ci_low"] is None else f"[{_fmt(m['ci_low'], sign=True)}, {_fmt(m['ci_high'], sign=True)}]"
        verdict = {"b": "B better", "a": "B worse"}.get(m["better"] or "", "n.s.")
        n = f"{m['n_pairs']}" + (f" (-{m['n_dropped']})" if m["n_dropped"] else "") if m["n_pairs"] is not None \
            else f"{m['n_a']}/{m['n_b']}"
        p = _fmt(m["p_value"], 3) if m["p_value"] is not None else ("CIs apart" if m["significant"] else "CIs overlap")
        basis = {"size-corrected": " n=∞", "protocol": " ~"}.get(m.get("basis", ""), "")
        rows.append([f"{k} {arrow}{basis}", _fmt(m["a"]), _fmt(m["b"]), _fmt(m["diff"], sign=True), ci, p, n, verdict])
    if rows:
        out.append(_grid(["metric", "A", "B", "B−A", f"{pct}% CI of B−A", "p", "n", "verdict"], rows))
    else:
        out.append("(no metric present in both runs)")
    both = [k for k, why in c.get("not_compared", {}).items() if why.startswith("skipped in both runs")]
    if both:
        out.append(f"skipped in both runs (reasons in the results files): {', '.join(both)}")
    for k, why in c.get("not_compared", {}).items():
        if k not in both:
            out.append(f"not compared: {k}: {why}")

    keys = list(c["metrics"])
    for aspect, cats in c.get("per_category", {}).items():
        body = []
        for cat, row in cats.items():
            cells = []
            for k in keys:
                m = row.get(k)
                if m is None or m["diff"] is None:
                    cells.append("—")
                    continue
                n = m["n_pairs"] if m["n_pairs"] is not None else min(m["n_a"] or 0, m["n_b"] or 0)
                tilde = "~" if m.get("basis") == "protocol" else ""
                cells.append(f"{_fmt(m['diff'], 3, sign=True)}{_mark(m)}{tilde} (n={n})")
            body.append([cat] + cells)
        if body and keys:
            out.append("")
            out.append(f"[{aspect}]  B−A per category")
            out.append(_grid(["category"] + keys, body))

    s = c.get("summary", {})
    out.append("")
    for label, items in (("B significantly better", s.get("b_better", [])), ("B significantly worse", s.get("b_worse", []))):
        where = [f"{e['metric']}@{e['aspect']}/{e['category']}" if e["aspect"] else f"{e['metric']} (overall)" for e in items]
        out.append(f"{label} ({len(items)}): " + (", ".join(where) if where else "none"))
    out.append(f"▲/▼ = B significantly better/worse at {pct}% ({kind.replace('-', ' ')}; set metrics and cells without "
               "per-sample values: non-overlapping intervals, a conservative rule); no multiple-comparison correction")
    if any("basis" in m for m in c["metrics"].values()):
        out.append("set metrics: n=∞ = compared on the size-corrected values (comparable across category sizes); "
                   "~ = on the protocol values (size correction not reliable)")
    for note in c.get("notes", []):
        out.append(f"note: {note}")
    return "\n".join(out)
