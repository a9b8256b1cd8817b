"""Size-corrected set metrics through the pipeline's cell function, labelled intervals, and their use
by ``compare`` (the metric-level simulations are in tests/metrics)."""
from __future__ import annotations

import copy

import numpy as np
import pytest

from javisbench.breakdown import set_metric_fns, set_metric_inf
from javisbench.compare import INF_SPREAD_FACTOR, compare, render_comparison, set_metric_cell, size_corrected_cell
from javisbench.protocol import FIXED, OFFICIAL
from javisbench.suite import METRICS, get_metric
from metrics.frechet import frechet_distance_fast, frechet_distance_inf
from metrics.kernel import kvd_official_inf, mmd2_unbiased
from taxonomy.breakdown import breakdown, cell_to_json, summarize
from taxonomy.labels import parse_labels
from taxonomy.model import load_taxonomy

D = 4
SHIFT = 0.5                    # real ~ N(0, I), fake ~ N(SHIFT, I): population FD = D * SHIFT**2 = 1.0
POP_FD = D * SHIFT ** 2


def _features(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (rng.normal(SHIFT, 1.0, size=(n, D)).astype(np.float32), rng.normal(size=(n, D)).astype(np.float32))


def test_every_built_in_set_metric_has_a_size_correction() -> None:
    for key in ("fvd", "kvd", "fad", "fd_clap"):
        assert METRICS[key].kind == "set" and METRICS[key].inf_fn is not None, key
    assert all(m.inf_fn is not None for m in METRICS.values() if m.kind == "set")
    assert all(m.inf_fn is None for m in METRICS.values() if m.kind == "sample")


def test_suite_inf_functions_match_the_metrics_layer() -> None:
    """Each inf_fn is the metrics layer's extrapolation, seeded by the protocol (FAD scaled as FAD)."""
    x, y = _features(120, 1)
    v, ok = get_metric("fvd").inf_fn(x, y, OFFICIAL)
    r = frechet_distance_inf(x, y, seed=OFFICIAL.seed)
    assert (v, ok) == (r.value, r.reliable) and ok
    assert get_metric("fad").inf_fn(x, y, OFFICIAL) == (r.value * OFFICIAL.fad_scale, r.reliable)
    k = kvd_official_inf(x, y, seed=OFFICIAL.seed)
    assert get_metric("kvd").inf_fn(x, y, OFFICIAL) == (k.value, k.reliable)
    # the fixed protocol's KVD is the unbiased MMD²: no finite-set bias, the all-rows estimate is the n = inf value
    assert FIXED.kvd_variant == "subsets"
    assert get_metric("kvd").inf_fn(x, y, FIXED) == (pytest.approx(mmd2_unbiased(x, y), rel=1e-12), True)


def test_cells_of_different_sizes_from_one_distribution_agree_after_correction() -> None:
    """Categories of 60, 120 and 400 rows drawn from the same fake/real distributions (d = 8,
    population FD 1.0), over 8 seeded benches: the mean protocol FVD falls with the category size
    (bias ~ c / n: 1.93, 1.47, 1.15); the mean size-corrected values (1.03, 1.15, 1.00) agree with
    each other and with the population FD.  Tolerance 0.25: the corrected value of a 60- or 120-row
    cell has a sampling sd of 0.4-0.5 here (measured on these seeds), so a mean of 8 about 0.17;
    the seeds are fixed, so the test is deterministic."""
    d, sizes, reps = 8, [60, 120, 400], 8
    n = sum(sizes)
    tax = load_taxonomy("javisbench")
    cat = np.repeat(np.arange(3), sizes)
    labels = parse_labels([{"cat0_ind": int(c), "cat1_ind": 0, "cat2_ind": 0, "cat3_ind": 0, "cat4_ind": 0}
                           for c in cat], tax)
    m = get_metric("fvd")
    plain, corrected = np.zeros((reps, 3)), np.zeros((reps, 3))
    for r in range(reps):
        rng = np.random.default_rng(100 + r)
        x = rng.normal(np.sqrt(1.0 / d), 1.0, size=(n, d)).astype(np.float32)
        y = rng.normal(size=(n, d)).astype(np.float32)
        idx = np.arange(n)
        fn, resample, failed = set_metric_fns(m, idx, x, y, OFFICIAL, n)
        inf = set_metric_inf(m, idx, x, y, OFFICIAL, n)
        cells = breakdown(labels, fn, failed=failed, dim=d, n_boot=20 if r == 0 else 0, seed=0, resample=resample,
                          inf=inf)["event_scenario"]
        got = [cells[c] for c in ("natural", "urban", "living")]
        assert [c.n for c in got] == sizes and all(c.reliable for c in got) and {c.interval for c in got} == {"spread"}
        if r == 0:   # the one cell function: the protocol value on the rows, value_inf the metrics layer's
            assert got[0].value == pytest.approx(fn(np.flatnonzero(cat == 0)), rel=1e-12)
            assert got[0].value_inf == frechet_distance_inf(x[:60], y[:60], seed=OFFICIAL.seed).value
            assert all(c.ci_low < c.ci_high for c in got)          # the spread (resamples are biased further up)
        plain[r] = [c.value for c in got]
        corrected[r] = [c.value_inf for c in got]
    mp, mc = plain.mean(axis=0), corrected.mean(axis=0)
    assert mp[0] > mp[1] > mp[2] > 1.0 and mp[0] - 1.0 > 0.5                      # the plain value drifts with n
    assert np.abs(mc - 1.0).max() < 0.25                                            # the corrected one does not
    assert np.ptp(mc) < 0.5 * np.ptp(mp)


def test_small_or_unfittable_cells_have_no_reliable_correction() -> None:
    x, y = _features(300, 5)
    m = get_metric("fvd")
    fn, resample, failed = set_metric_fns(m, np.arange(300), x, y, OFFICIAL, 300)
    inf = set_metric_inf(m, np.arange(300), x, y, OFFICIAL, 300)
    three = cell_to_json(summarize(fn, np.arange(3), n_rows=300, failed=failed, n_boot=0, inf=inf))
    assert three["value"] is not None and three["value_inf"] is None and three["reliable"] is False
    few = cell_to_json(summarize(fn, np.arange(6), n_rows=300, failed=failed, n_boot=0, inf=inf))
    assert few["value_inf"] is not None and few["reliable"] is False           # 3 rows per ~4 effective dims
    full = cell_to_json(summarize(fn, n_rows=300, failed=failed, n_boot=0, inf=inf))
    assert full["reliable"] is True and full["interval"] == "spread"
    no_inf = cell_to_json(summarize(fn, n_rows=300, failed=failed, n_boot=0))
    assert "value_inf" not in no_inf and no_inf["value"] == full["value"]        # the protocol value is unchanged
    with pytest.raises(ValueError, match="set metrics only"):
        summarize(np.zeros(3), inf=inf)


# ---------------------------------------------------------------------------------------------
# compare: set metrics on the size-corrected value
# ---------------------------------------------------------------------------------------------
def _results(name: str, fvd: dict, cat_fvd: dict) -> dict:
    base = {"value": None, "ci_low": None, "ci_high": None, "interval": "spread", "n": 50, "n_failed": 0, "flags": []}
    return {
        "schema_version": "1.2", "model": {"name": name},
        "protocol": {"name": "javisbench-official", "version": "1.0", "fingerprint": "f", "values": {}},
        "bench": {"name": "b", "manifest_sha256": "s", "n_rows": 50},
        "metrics": {"fvd": {"kind": "set", "higher_is_better": False, "title": "FVD"}},
        "overall": {"fvd": {**base, **fvd}},
        "per_category": {"event_scenario": {"natural": {"fvd": {**base, **cat_fvd}}}},
    }


def test_compare_uses_the_size_corrected_set_value_and_falls_back_when_unreliable() -> None:
    # protocol values say B is worse (12 vs 10); the size-corrected ones that B is better (3 vs 6)
    a = _results("A", dict(value=10.0, ci_low=9.5, ci_high=10.5, value_inf=6.0, reliable=True),
                 dict(value=10.0, ci_low=9.5, ci_high=10.5, value_inf=6.0, reliable=False))
    b = _results("B", dict(value=12.0, ci_low=11.5, ci_high=12.5, value_inf=3.0, reliable=True),
                 dict(value=12.0, ci_low=11.5, ci_high=12.5, value_inf=3.0, reliable=True))
    c = compare(a, b, n_boot=10)
    m = c["metrics"]["fvd"]
    assert m["basis"] == "size-corrected" and (m["a"], m["b"], m["diff"]) == (6.0, 3.0, -3.0)
    assert (m["a_protocol"], m["b_protocol"]) == (10.0, 12.0)
    f = INF_SPREAD_FACTOR                                                          # spreads moved onto value_inf, widened
    assert m["a_ci"] == pytest.approx([6 - 0.5 * f, 6 + 0.5 * f]) and m["b_ci"] == pytest.approx([3 - 0.5 * f, 3 + 0.5 * f])
    assert m["ci_low"] == pytest.approx(-3.0 - f) and m["ci_high"] == pytest.approx(-3.0 + f)
    assert m["significant"] and m["better"] == "b"
    cat = c["per_category"]["event_scenario"]["natural"]["fvd"]
    assert cat["basis"] == "protocol" and cat["diff"] == 2.0 and cat["better"] == "a"   # A's correction unreliable
    assert any("1 of 2 set-metric cell(s) use the protocol values" in n for n in c["notes"])
    text = render_comparison(c)
    assert "fvd ↓ n=∞" in text and "~ = on the protocol values" in text and "+2.000▼~" in text


def test_compare_of_results_without_a_size_correction_keeps_the_protocol_values() -> None:
    old = {"value": 4.0, "ci_low": 3.0, "ci_high": 5.0, "n": 9, "flags": []}      # a results file from before
    cell = set_metric_cell(old, copy.deepcopy(old), False)
    assert cell["basis"] == "protocol" and cell["diff"] == 0.0 and not cell["significant"]
    assert size_corrected_cell(old) is None
    moved = size_corrected_cell({**old, "value_inf": 1.0, "reliable": True})
    assert moved["value"] == 1.0 and moved["ci_low"] == pytest.approx(1.0 - INF_SPREAD_FACTOR)
    assert moved["ci_high"] == pytest.approx(1.0 + INF_SPREAD_FACTOR)


def test_the_size_corrected_spread_factor_covers_the_extra_noise() -> None:
    """INF_SPREAD_FACTOR against a fresh measurement (d = 8, n = 100, 30 seeded sets): the sd of the
    extrapolated FD over that of the plain FD (1.17 on these seeds)."""
    d, n = 8, 100
    plain, inf = [], []
    for r in range(30):
        rng = np.random.default_rng(1000 + r)
        s = frechet_distance_inf(rng.normal(np.sqrt(1.0 / d), 1.0, (n, d)), rng.normal(size=(n, d)))
        plain.append(s.plain)
        inf.append(s.value)
    ratio = float(np.std(inf) / np.std(plain))
    assert 1.0 < ratio <= INF_SPREAD_FACTOR


def test_examples_in_report_and_compare_docs_run() -> None:
    import doctest

    import javisbench.compare
    import javisbench.report

    for mod in (javisbench.report, javisbench.compare):
        r = doctest.testmod(mod, report=False)
        assert r.attempted >= 2 and r.failed == 0, mod.__name__


def test_memoised_set_cells_without_the_new_keys_are_recomputed() -> None:
    """A memo entry written before cells carried ``interval``/``value_inf`` (or a damaged one) is not reused."""
    from javisbench.breakdown import _valid_cell, _valid_tree

    new = {"value": 2.0, "ci_low": 1.0, "ci_high": 3.0, "interval": "spread", "n": 9, "n_failed": 0, "flags": [],
           "value_inf": 1.5, "reliable": True}
    assert _valid_cell(new) and _valid_tree({"a": {"c": new}})
    old = {k: v for k, v in new.items() if k not in ("interval", "value_inf", "reliable")}
    assert not _valid_cell(old) and not _valid_tree({"a": {"c": new, "d": old}})
    assert not _valid_cell({**new, "interval": "95% CI"})
    assert not _valid_cell({k: v for k, v in new.items() if k != "reliable"})      # value_inf without its flag
    assert not _valid_cell({**new, "reliable": "yes"}) and not _valid_cell({**new, "value_inf": float("nan")})
    assert _valid_cell({**new, "value_inf": None, "reliable": False})
