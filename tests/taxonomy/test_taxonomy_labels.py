"""Label cells and label columns: accepted forms, rejected forms with clear messages, lookups."""
from __future__ import annotations

import csv
import io

import numpy as np
import pytest

from taxonomy import LabelError, Labels, Taxonomy, load_taxonomy, parse_label_cell, parse_labels
from taxonomy.labels import parse_subcategory_cell


@pytest.fixture(scope="module")
def tax() -> Taxonomy:
    return load_taxonomy("javisbench")


def _row(**over):
    r = {"text": "a dog barks", "cat0_ind": 0, "cat1_ind": 0, "cat2_ind": "1", "cat3_ind": 0, "cat4_ind": 0}
    r.update(over)
    return r


@pytest.mark.parametrize(
    "cell, want",
    [
        (3, (3,)), (np.int64(3), (3,)), (3.0, (3,)), (np.float32(4.0), (4,)), ("3", (3,)), (" 3 ", (3,)),
        ("3.0", (3,)), ("0,3", (0, 3)), (" 0, 3 ", (0, 3)), ("3,0", (0, 3)), ("0,1,2,3,4", (0, 1, 2, 3, 4)),
        ([4, 1], (1, 4)), ((2,), (2,)),
    ],
)
def test_accepted_multi_label(tax: Taxonomy, cell, want) -> None:
    assert parse_label_cell(cell, tax.aspect("sound_type"), row=0) == want


@pytest.mark.parametrize("cell, want", [(2, (2,)), ("1", (1,)), (1.0, (1,)), (" 0 ", (0,))])
def test_accepted_single_label(tax: Taxonomy, cell, want) -> None:
    assert parse_label_cell(cell, tax.aspect("temporal"), row=0) == want


@pytest.mark.parametrize(
    "aspect, cell, reason",
    [
        ("sound_type", float("nan"), r"missing label \(NaN\)"),
        ("sound_type", np.float64("nan"), r"missing label \(NaN\)"),
        ("sound_type", None, "missing label"),
        ("sound_type", "", "missing label"),
        ("sound_type", "  ", "missing label"),
        ("sound_type", "nan", "missing label"),
        ("sound_type", "a", "not an integer"),
        ("sound_type", "0,a", "not an integer"),
        ("sound_type", "0,,3", "empty entry between commas"),
        ("sound_type", "0,", "empty entry between commas"),
        ("sound_type", 2.5, "not an integer"),
        ("sound_type", "2.5", "not an integer"),
        ("sound_type", -1, "negative index"),
        ("sound_type", "-1", "negative index"),
        ("sound_type", 5, r"index 5 out of range: aspect 'sound_type' has 5 category"),
        ("sound_type", "0,7", "index 7 out of range"),
        ("sound_type", "3,3", "index 3 listed twice"),
        ("sound_type", True, "a boolean is not an index"),
        ("sound_type", [], "empty list"),
        ("temporal", "0,2", "2 labels for a single-label aspect"),
        ("temporal", [1, 2], "2 labels for a single-label aspect"),
        ("temporal", "1,1", "index 1 listed twice"),
        ("temporal", 3, "index 3 out of range"),
        ("temporal", float("inf"), "not an integer"),
    ],
)
def test_rejected(tax: Taxonomy, aspect: str, cell, reason: str) -> None:
    a = tax.aspect(aspect)
    with pytest.raises(LabelError, match=reason) as e:
        parse_label_cell(cell, a, row=17)
    msg = str(e.value)
    # where, what was got, what is expected
    assert msg.startswith(f"row 17, column '{a.column}' ({aspect}): got {cell!r}")
    if a.multi_label:
        assert "several distinct ones separated by commas such as '0,3'" in msg
    else:
        assert "expected exactly one integer category index in 0..2 (aspect 'temporal' is single-label)" in msg


def test_expected_form_in_single_label_message(tax: Taxonomy) -> None:
    with pytest.raises(LabelError) as e:
        parse_label_cell("0,1", tax.aspect("visual_style"), row=3)
    assert "single-label" in str(e.value) and "0..2" in str(e.value)


def _reference_membership(rows, column: str, n: int) -> np.ndarray:
    """Independent reading of the official cell rule: str(cell).split(',') -> int(float(x))."""
    m = np.zeros((len(rows), n), dtype=bool)
    for i, r in enumerate(rows):
        for part in str(r[column]).split(","):
            m[i, int(float(part))] = True
    return m


def _random_rows(tax: Taxonomy, n: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        r = {"text": "x"}
        for a in tax.aspects:
            if a.multi_label:
                k = int(rng.integers(1, a.n_categories + 1))
                picks = rng.permutation(a.n_categories)[:k].tolist()
                form = int(rng.integers(0, 3))
                r[a.column] = picks[0] if k == 1 and form == 0 else (
                    ",".join(map(str, picks)) if form < 2 else ", ".join(map(str, picks)) + " ")
            else:
                c = int(rng.integers(0, a.n_categories))
                r[a.column] = [c, float(c), str(c)][int(rng.integers(0, 3))]
        rows.append(r)
    return rows


def test_parse_labels_matches_independent_reading(tax: Taxonomy) -> None:
    rows = _random_rows(tax, 300, seed=1)
    labels = parse_labels(rows, tax)
    assert labels.n_rows == 300
    for a in tax.aspects:
        ref = _reference_membership(rows, a.column, a.n_categories)
        np.testing.assert_array_equal(labels.membership(a.key), ref)
        for c in a.categories:
            np.testing.assert_array_equal(labels.indices(a.key, c.key), np.flatnonzero(ref[:, c.index]))
        assert labels.counts()[a.key] == dict(zip(a.category_keys, ref.sum(0).tolist()))
    # single-label aspects: exactly one category per row; multi-label: at least one
    for a in tax.aspects:
        per_row = labels.membership(a.key).sum(1)
        assert (per_row == 1).all() if not a.multi_label else (per_row >= 1).all()
    assert any(len(t) > 1 for t in labels.categories["sound_type"])


def test_multi_label_row_in_every_category(tax: Taxonomy) -> None:
    labels = parse_labels([_row(cat2_ind="0,3,4"), _row(cat2_ind=3)], tax)
    assert labels.indices("sound_type", "ambient").tolist() == [0]
    assert labels.indices("sound_type", "musical").tolist() == [0, 1]
    assert labels.indices("sound_type", "speech").tolist() == [0]
    assert labels.indices("sound_type", "mechanical").tolist() == []
    assert labels.row(0)["sound_type"] == ("ambient", "musical", "speech")
    assert labels.indices("sound_type", "speech").dtype == np.int64


def test_from_csv_text(tax: Taxonomy) -> None:
    text = "text,path,cat0_ind,cat1_ind,cat2_ind,cat3_ind,cat4_ind\n" \
           'a,a.mp4,1,2,"0,3",2,"0, 2"\nb,b.mp4,4,0,4,0,1\n'
    labels = parse_labels(list(csv.DictReader(io.StringIO(text))), tax)
    assert labels.row(0) == {
        "event_scenario": ("urban",), "visual_style": ("animate_3d",), "sound_type": ("ambient", "musical"),
        "temporal": ("simultaneous_events",), "spatial": ("single_subject", "off_screen_sound"),
    }


def test_missing_columns_one_error(tax: Taxonomy) -> None:
    rows = [{"text": "x", "cat0_ind": 0, "cat1_ind": 0, "cat3_ind": 1}]
    with pytest.raises(LabelError) as e:
        parse_labels(rows, tax)
    msg = str(e.value)
    assert "['cat2_ind', 'cat4_ind']" in msg and "found: ['cat0_ind', 'cat1_ind', 'cat3_ind', 'text']" in msg


def test_all_bad_cells_listed_with_rows(tax: Taxonomy) -> None:
    rows = [_row(), _row(cat2_ind=float("nan")), _row(), _row(cat3_ind="0,1", cat0_ind=9)]
    with pytest.raises(LabelError) as e:
        parse_labels(rows, tax, row_ids=[f"sample_{i:04d}" for i in range(4)])
    msg = str(e.value)
    assert msg.startswith("3 invalid label cell(s)")
    assert "row 1 (sample_0001), column 'cat2_ind' (sound_type): got nan (missing label (NaN))" in msg
    assert "row 3 (sample_0003), column 'cat0_ind' (event_scenario): got 9" in msg
    assert "row 3 (sample_0003), column 'cat3_ind' (temporal): got '0,1'" in msg
    assert msg.index("row 1 (") < msg.index("row 3 (")       # manifest order


def test_many_bad_cells_are_capped(tax: Taxonomy) -> None:
    rows = [_row(cat0_ind="x") for _ in range(30)]
    with pytest.raises(LabelError, match=r"30 invalid label cell\(s\)(.|\n)*\.\.\. and 10 more"):
        parse_labels(rows, tax)


def test_row_lacking_a_column_is_a_missing_label(tax: Taxonomy) -> None:
    r = _row()
    del r["cat4_ind"]
    with pytest.raises(LabelError, match=r"row 1, column 'cat4_ind' \(spatial\): got None \(missing label\)"):
        parse_labels([_row(), r], tax)


def test_empty_manifest(tax: Taxonomy) -> None:
    labels = parse_labels([], tax)
    assert labels.n_rows == 0 and labels.indices("temporal", "single_event").size == 0


def test_labels_validate_on_construction(tax: Taxonomy) -> None:
    good = {a.key: ((0,),) for a in tax.aspects}
    Labels(tax, good)
    with pytest.raises(LabelError, match="cover exactly the aspects"):
        Labels(tax, {k: v for k, v in good.items() if k != "spatial"})
    with pytest.raises(LabelError, match="different row counts"):
        Labels(tax, {**good, "spatial": ((0,), (1,))})
    with pytest.raises(LabelError, match="aspect 'temporal': bad category indices"):
        Labels(tax, {**good, "temporal": ((0, 1),)})
    with pytest.raises(LabelError, match="aspect 'sound_type': bad category indices"):
        Labels(tax, {**good, "sound_type": ((5,),)})


def test_subset(tax: Taxonomy) -> None:
    rows = _random_rows(tax, 50, seed=2)
    labels = parse_labels(rows, tax, row_ids=[f"s{i}" for i in range(50)])
    pick = [7, 3, 40]
    sub = labels.subset(pick)
    assert sub.n_rows == 3 and sub.row_ids == ("s7", "s3", "s40")
    for a in tax.aspects:
        np.testing.assert_array_equal(sub.membership(a.key), labels.membership(a.key)[pick])
    with pytest.raises(IndexError):
        labels.subset([50])


def test_membership_is_read_only(tax: Taxonomy) -> None:
    labels = parse_labels([_row()], tax)
    with pytest.raises(ValueError):
        labels.membership("sound_type")[0, 0] = True


# ---- subcategories ---------------------------------------------------------------------------


def test_subcategory_cells(tax: Taxonomy) -> None:
    a = tax.aspect("sound_type")
    assert parse_subcategory_cell("", a, 0) == ()
    assert parse_subcategory_cell(float("nan"), a, 0) == ()
    assert parse_subcategory_cell(None, a, 0) == ()
    assert parse_subcategory_cell("7, 11", a, 0) == (7, 11)
    with pytest.raises(LabelError, match=r"column 'subcat2_ind' \(sound_type\).*index 18 out of range.*has 18 subcategory"):
        parse_subcategory_cell(18, a, 0)
    with pytest.raises(LabelError, match="2 labels for a single-label aspect"):
        parse_subcategory_cell("0,1", tax.aspect("event_scenario"), 0)


def test_subcategory_labels(tax: Taxonomy) -> None:
    st = tax.aspect("sound_type")
    band = st.category("musical").subcategory("band").index           # 7
    dialogue = st.category("speech").subcategory("dialogue").index    # 11
    forest = tax.aspect("event_scenario").category("natural").subcategory("forest_woodland").index
    rows = [
        _row(cat2_ind="3,4", subcat2_ind=f"{band},{dialogue}", cat0_ind=0, subcat0_ind=forest),
        _row(cat2_ind="3", subcat2_ind=band, cat0_ind=1, subcat0_ind=""),   # Urban has no subcategories
        _row(cat2_ind="1", subcat2_ind=float("nan"), cat0_ind=0, subcat0_ind=None),
    ]
    labels = parse_labels(rows, tax)
    assert labels.has_subcategories("sound_type") and labels.has_subcategories("event_scenario")
    assert not labels.has_subcategories("temporal")
    assert labels.subcategory_indices("sound_type", "musical", "band").tolist() == [0, 1]
    assert labels.subcategory_indices("sound_type", "speech", "dialogue").tolist() == [0]
    assert labels.subcategory_indices("event_scenario", "natural", "forest_woodland").tolist() == [0]
    with pytest.raises(LabelError, match="no column 'subcat1_ind'"):
        labels.subcategory_indices("visual_style", "camera_shooting", "handheld")


def test_subcategory_must_belong_to_a_listed_category(tax: Taxonomy) -> None:
    band = tax.aspect("sound_type").category("musical").subcategory("band").index
    with pytest.raises(LabelError) as e:
        parse_labels([_row(cat2_ind="0", subcat2_ind=band)], tax)
    msg = str(e.value)
    assert "row 0, column 'subcat2_ind' (sound_type): subcategory 7 (musical/band)" in msg
    assert "column 'cat2_ind' does not list for this row (it lists: ambient)" in msg
