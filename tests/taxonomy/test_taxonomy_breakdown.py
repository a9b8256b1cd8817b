"""Per-category breakdown: per-sample means, recomputed set metrics, flags, CIs, JSON form."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from taxonomy import Taxonomy, load_taxonomy, parse_labels
from taxonomy.breakdown import (
    FLAG_CI_ERROR,
    FLAG_ERROR,
    FLAG_RANK_DEFICIENT,
    FLAG_TOO_FEW,
    Cell,
    breakdown,
    by_subcategory,
    cell_to_json,
    crosstab,
    summarize,
    to_json,
)


@pytest.fixture(scope="module")
def tax() -> Taxonomy:
    return load_taxonomy("javisbench")


def _random_rows(tax: Taxonomy, n: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        r = {}
        for a in tax.aspects:
            if a.multi_label:
                k = int(rng.integers(1, 3))
                r[a.column] = ",".join(map(str, rng.permutation(a.n_categories)[:k]))
            else:
                r[a.column] = int(rng.integers(0, a.n_categories))
        rows.append(r)
    return rows


def _members(rows: list[dict], column: str, c: int) -> list[int]:
    """Independent reading of membership: the official split-on-comma rule."""
    return [i for i, r in enumerate(rows) if c in {int(x) for x in str(r[column]).split(",")}]


@pytest.fixture(scope="module")
def data(tax: Taxonomy):
    rows = _random_rows(tax, 240, seed=0)
    return rows, parse_labels(rows, tax)


def test_per_sample_cells_equal_direct_means(tax: Taxonomy, data) -> None:
    rows, labels = data
    rng = np.random.default_rng(1)
    values = rng.normal(0.3, 0.1, size=len(rows))
    values[rng.choice(len(rows), 17, replace=False)] = np.nan        # failed samples
    cells = breakdown(labels, values, n_boot=0)
    assert list(cells) == list(tax.aspect_keys)
    for a in tax.aspects:
        assert list(cells[a.key]) == list(a.category_keys)
        for c in a.categories:
            idx = _members(rows, a.column, c.index)
            ok = [i for i in idx if not math.isnan(values[i])]
            cell = cells[a.key][c.key]
            assert cell.n == len(ok) and cell.n_failed == len(idx) - len(ok)
            assert cell.value == pytest.approx(sum(values[i] for i in ok) / len(ok), rel=1e-12)
            assert isinstance(cell.value, float) and isinstance(cell.n, int)
            assert math.isnan(cell.ci_low) and math.isnan(cell.ci_high)


def test_multi_label_rows_count_in_every_category(tax: Taxonomy) -> None:
    rows = [{"cat0_ind": 0, "cat1_ind": 0, "cat2_ind": s, "cat3_ind": 0, "cat4_ind": "0,1,2"}
            for s in ("0,3", "3", "0,3,4")]
    labels = parse_labels(rows, tax)
    cells = breakdown(labels, np.array([1.0, 2.0, 4.0]), n_boot=0)
    st = cells["sound_type"]
    assert (st["ambient"].n, st["musical"].n, st["speech"].n, st["mechanical"].n) == (2, 3, 1, 0)
    assert st["ambient"].value == 2.5 and st["musical"].value == pytest.approx(7 / 3) and st["speech"].value == 4.0
    assert all(cells["spatial"][k].n == 3 for k in ("single_subject", "multiple_subjects", "off_screen_sound"))
    # the sum of category sizes exceeds the row count exactly by the extra labels
    assert sum(c.n for c in st.values()) == 2 + 1 + 3


def _features(n: int, seed: int, shift: float = 0.5, dim: int = 8):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, dim)), rng.normal(shift, 1.0, size=(n, dim))


def test_set_metric_recomputed_on_each_subset(tax: Taxonomy, data) -> None:
    rows, labels = data
    real, fake = _features(len(rows), seed=2)
    calls: list[np.ndarray] = []

    def mean_gap(idx: np.ndarray) -> float:
        calls.append(np.array(idx))
        return float(np.linalg.norm(real[idx].mean(0) - fake[idx].mean(0)))

    failed = np.zeros(len(rows), dtype=bool)
    failed[[3, 50, 51, 200]] = True
    cells = breakdown(labels, mean_gap, failed=failed, n_boot=0)
    assert len(calls) == tax.n_categories
    for a in tax.aspects:
        for c in a.categories:
            ok = [i for i in _members(rows, a.column, c.index) if not failed[i]]
            cell = cells[a.key][c.key]
            direct = float(np.linalg.norm(real[ok].mean(0) - fake[ok].mean(0)))
            assert cell.value == pytest.approx(direct, rel=1e-12)
            assert cell.n == len(ok) and cell.n_failed == len(_members(rows, a.column, c.index)) - len(ok)
    # recomputed, not averaged: the subset statistic is not the mean of per-sample gaps
    ok = [i for i in _members(rows, "cat2_ind", 3) if not failed[i]]
    per_sample_avg = float(np.mean(np.linalg.norm(real[ok] - fake[ok], axis=1)))
    assert abs(cells["sound_type"]["musical"].value - per_sample_avg) > 0.5


def test_flags_too_few_and_empty(tax: Taxonomy) -> None:
    rows = [{"cat0_ind": 0, "cat1_ind": 0, "cat2_ind": "0", "cat3_ind": t, "cat4_ind": 0} for t in (0, 0, 0, 1)]
    labels = parse_labels(rows, tax)
    cells = breakdown(labels, np.array([1.0, 2.0, 3.0, 5.0]), n_boot=50, min_n=3)
    t = cells["temporal"]
    assert t["single_event"].flags == () and t["single_event"].n == 3
    assert t["sequential_events"].flags == (FLAG_TOO_FEW,) and t["sequential_events"].value == 5.0
    assert math.isnan(t["sequential_events"].ci_low)        # one sample: no CI
    empty = t["simultaneous_events"]
    assert empty.n == 0 and empty.flags == (FLAG_TOO_FEW,) and math.isnan(empty.value)


def test_set_flags_rank_deficient_and_floor(tax: Taxonomy) -> None:
    rows = [{"cat0_ind": 0, "cat1_ind": 0, "cat2_ind": "0", "cat3_ind": t, "cat4_ind": 0}
            for t in [0] * 6 + [1]]
    labels = parse_labels(rows, tax)
    called: list[int] = []

    def fn(idx: np.ndarray) -> float:
        called.append(len(idx))
        return float(len(idx))

    cells = breakdown(labels, fn, dim=5, n_boot=0)
    t = cells["temporal"]
    assert t["single_event"].flags == () and t["single_event"].value == 6.0
    assert t["sequential_events"].flags == (FLAG_TOO_FEW, FLAG_RANK_DEFICIENT)
    assert math.isnan(t["sequential_events"].value)          # n=1 < 2: fn never sees it
    assert 1 not in called and 0 not in called
    assert cells["sound_type"]["ambient"].flags == ()        # n=7 >= dim
    cells = breakdown(labels, fn, dim=7, n_boot=0)
    assert cells["temporal"]["single_event"].flags == (FLAG_RANK_DEFICIENT,)


def test_set_metric_error_is_a_flagged_cell(tax: Taxonomy) -> None:
    rows = [{"cat0_ind": 0, "cat1_ind": 0, "cat2_ind": "0", "cat3_ind": t, "cat4_ind": 0} for t in (0, 0, 0, 1, 1)]
    labels = parse_labels(rows, tax)

    def fn(idx: np.ndarray) -> float:
        if len(idx) < 3:
            raise ValueError("covariance is singular")
        return 1.0

    with pytest.warns(RuntimeWarning, match=r"temporal/sequential_events \(n=2\): ValueError: covariance is singular"):
        cells = breakdown(labels, fn, n_boot=0)
    assert cells["temporal"]["sequential_events"].flags == (FLAG_ERROR,)
    assert math.isnan(cells["temporal"]["sequential_events"].value)
    assert cells["temporal"]["single_event"].value == 1.0

    def flaky(idx: np.ndarray) -> float:
        # fine on the real subset (distinct rows), fails on resamples with repeats
        if len(np.unique(idx)) < len(idx):
            raise ArithmeticError("repeated rows")
        return 1.0

    with pytest.warns(RuntimeWarning, match="bootstrap failed"):
        c = summarize(flaky, n_rows=5, n_boot=20)
    assert c.value == 1.0 and c.flags == (FLAG_CI_ERROR,) and math.isnan(c.ci_low)


def test_failed_mask_applies_to_per_sample(tax: Taxonomy, data) -> None:
    rows, labels = data
    values = np.arange(len(rows), dtype=float)
    failed = values % 2 == 0
    a = breakdown(labels, values, failed=failed, n_boot=0)
    b = breakdown(labels, np.where(failed, np.nan, values), n_boot=0)
    assert a == b


def test_ci_per_sample_and_determinism(tax: Taxonomy, data) -> None:
    rows, labels = data
    values = np.random.default_rng(4).normal(size=len(rows))
    a = breakdown(labels, values, n_boot=300, seed=5)
    b = breakdown(labels, values, n_boot=300, seed=5)
    assert a == b
    for aspect in a.values():
        for cell in aspect.values():
            assert cell.ci_low <= cell.value <= cell.ci_high
            # CI width of a mean ~ 2*1.96*sd/sqrt(n), sd = 1
            assert 0.5 * 3.92 / math.sqrt(cell.n) < cell.ci_high - cell.ci_low < 1.5 * 3.92 / math.sqrt(cell.n)
    # the cell CI is the CI of the category's values
    idx = labels.indices("sound_type", "speech")
    assert summarize(values[idx], n_boot=300, seed=5) == a["sound_type"]["speech"]


def test_ci_coverage_per_sample() -> None:
    # Percentile bootstrap of a mean, n=40 normal samples: coverage ~0.93-0.95 at level 0.95.
    rng = np.random.default_rng(6)
    trials, hits = 300, 0
    for t in range(trials):
        x = rng.normal(2.0, 1.5, size=40)
        c = summarize(x, n_boot=400, seed=t)
        hits += c.ci_low <= 2.0 <= c.ci_high
    cover = hits / trials     # binomial sd at p=0.94: 0.014
    assert 0.88 <= cover <= 0.99, cover
    # a 50% interval covers about half the time
    hits = 0
    for t in range(trials):
        x = rng.normal(2.0, 1.5, size=40)
        c = summarize(x, n_boot=400, seed=t, level=0.5)
        hits += c.ci_low <= 2.0 <= c.ci_high
    assert 0.38 <= hits / trials <= 0.62, hits / trials


def test_ci_coverage_set_metric() -> None:
    # Set statistic: difference of the means of two paired feature columns (true value 0.5).
    rng = np.random.default_rng(7)
    trials, hits = 150, 0
    for t in range(trials):
        real, fake = rng.normal(0, 1, 60), rng.normal(0.5, 1, 60)
        fn = lambda idx: float(fake[idx].mean() - real[idx].mean())  # noqa: E731
        c = summarize(fn, n_rows=60, n_boot=200, seed=t)
        assert c.value == pytest.approx(fake.mean() - real.mean())
        hits += c.ci_low <= 0.5 <= c.ci_high
    assert 0.85 <= hits / trials <= 1.0, hits / trials


def test_crosstab_cells(tax: Taxonomy, data) -> None:
    rows, labels = data
    values = np.random.default_rng(8).normal(size=len(rows))
    ct = crosstab(labels, values, "temporal", "sound_type", n_boot=0)
    assert list(ct) == list(tax.aspect("temporal").category_keys)
    for ca in tax.aspect("temporal").categories:
        assert list(ct[ca.key]) == list(tax.aspect("sound_type").category_keys)
        for cb in tax.aspect("sound_type").categories:
            both = sorted(set(_members(rows, "cat3_ind", ca.index)) & set(_members(rows, "cat2_ind", cb.index)))
            cell = ct[ca.key][cb.key]
            assert cell.n == len(both)
            if both:
                assert cell.value == pytest.approx(values[both].mean(), rel=1e-12)
    with pytest.raises(ValueError, match="two different aspects"):
        crosstab(labels, values, "temporal", "temporal")
    with pytest.raises(KeyError, match="no aspect 'tempo'"):
        crosstab(labels, values, "tempo", "spatial")


def test_by_subcategory(tax: Taxonomy) -> None:
    st = tax.aspect("sound_type")
    band = st.category("musical").subcategory("band").index
    vocal = st.category("musical").subcategory("vocal").index
    rows = [
        {"cat0_ind": 0, "cat1_ind": 0, "cat2_ind": "3", "subcat2_ind": band, "cat3_ind": 0, "cat4_ind": 0},
        {"cat0_ind": 0, "cat1_ind": 0, "cat2_ind": "3", "subcat2_ind": f"{band},{vocal}", "cat3_ind": 0, "cat4_ind": 0},
        {"cat0_ind": 0, "cat1_ind": 0, "cat2_ind": "1", "subcat2_ind": "", "cat3_ind": 0, "cat4_ind": 0},
    ]
    labels = parse_labels(rows, tax)
    sub = by_subcategory(labels, np.array([1.0, 3.0, 10.0]), n_boot=0)
    assert list(sub) == ["sound_type"]
    assert list(sub["sound_type"]) == ["ambient", "musical", "speech"]     # only categories with subcategories
    assert sub["sound_type"]["musical"]["band"].value == 2.0 and sub["sound_type"]["musical"]["band"].n == 2
    assert sub["sound_type"]["musical"]["vocal"].value == 3.0
    assert sub["sound_type"]["musical"]["electronic"].n == 0
    assert by_subcategory(parse_labels([{k: v for k, v in r.items() if k != "subcat2_ind"} for r in rows], tax),
                          np.zeros(3), n_boot=0) == {}


def test_json_serialisable(tax: Taxonomy, data) -> None:
    rows, labels = data
    values = np.random.default_rng(9).normal(size=len(rows)).astype(np.float32)
    tree = to_json(breakdown(labels, values, n_boot=20))
    text = json.dumps(tree, allow_nan=False)
    back = json.loads(text)
    assert set(back["sound_type"]["musical"]) == {"value", "ci_low", "ci_high", "interval", "n", "n_failed", "flags"}
    assert back["sound_type"]["musical"]["interval"] == "ci"          # a per-sample mean: a confidence interval
    empty = Cell(float("nan"), float("nan"), float("nan"), 0, 2, (FLAG_TOO_FEW,))
    assert cell_to_json(empty) == {"value": None, "ci_low": None, "ci_high": None, "interval": "ci", "n": 0,
                                   "n_failed": 2, "flags": ["too-few"]}
    corrected = Cell(1.0, 0.5, 1.5, 40, 0, (), "spread", float("inf"), True)
    assert cell_to_json(corrected)["value_inf"] is None and cell_to_json(corrected)["reliable"] is True
    assert math.isnan(cell_to_json(empty, nan_as_none=False)["value"])
    with pytest.raises(TypeError, match="expected a Cell"):
        to_json([1, 2])


def test_summarize_overall(data) -> None:
    rows, _ = data
    values = np.random.default_rng(10).normal(size=len(rows))
    values[:5] = np.nan
    c = summarize(values, n_boot=0)
    assert c.value == pytest.approx(np.nanmean(values)) and c.n == len(rows) - 5 and c.n_failed == 5
    with pytest.raises(ValueError, match="needs n_rows"):
        summarize(lambda idx: 0.0)


def test_input_errors(tax: Taxonomy, data) -> None:
    rows, labels = data
    n = len(rows)
    with pytest.raises(ValueError, match=rf"shape \({n},\), one per manifest row; got \({n - 1},\)"):
        breakdown(labels, np.zeros(n - 1))
    with pytest.raises(ValueError, match=r"rows \[2\] are infinite"):
        v = np.zeros(n)
        v[2] = np.inf
        breakdown(labels, v)
    with pytest.raises(ValueError, match="must be numbers"):
        breakdown(labels, np.array(["a"] * n))
    with pytest.raises(ValueError, match="boolean mask"):
        breakdown(labels, np.zeros(n), failed=np.zeros(n))
    with pytest.raises(ValueError, match="applies to set metrics only"):
        breakdown(labels, np.zeros(n), dim=4)
    with pytest.raises(ValueError, match="n_boot must be >= 0"):
        breakdown(labels, np.zeros(n), n_boot=-1)
    with pytest.raises(ValueError, match="level must be in"):
        breakdown(labels, np.zeros(n), level=95)
