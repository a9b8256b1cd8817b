"""Seeded mini split and the --where filter."""
from __future__ import annotations

import numpy as np
import pytest

from taxonomy import Taxonomy, Where, WhereError, apply_where, load_taxonomy, mini_split, parse_labels, parse_where
from taxonomy.splits import Clause


@pytest.fixture(scope="module")
def tax() -> Taxonomy:
    return load_taxonomy("javisbench")


# ---- mini split -------------------------------------------------------------------------------


def test_mini_split_reproducible_sorted_distinct() -> None:
    a = mini_split(10140, size=1000, seed=0)
    b = mini_split(10140, size=1000, seed=0)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (1000,) and a.dtype == np.int64
    assert (np.diff(a) > 0).all() and a.min() >= 0 and a.max() < 10140


def test_mini_split_seed_changes_rows() -> None:
    a, c = mini_split(10140, seed=0), mini_split(10140, seed=1)
    assert not np.array_equal(a, c)
    # two independent 1000-of-10140 draws share about 1000*1000/10140 ~ 99 rows, not most of them
    assert len(np.intersect1d(a, c)) < 200


def test_mini_split_full_and_errors() -> None:
    np.testing.assert_array_equal(mini_split(5, size=5), np.arange(5))
    with pytest.raises(ValueError, match="size 1000 from 999 rows"):
        mini_split(999)
    with pytest.raises(ValueError, match="size 0"):
        mini_split(10, size=0)
    with pytest.raises(ValueError, match="n_rows must be >= 0"):
        mini_split(-1, size=1)


# ---- where ------------------------------------------------------------------------------------


def test_parse_where_keys_titles_prefixes(tax: Taxonomy) -> None:
    w = parse_where("sound_type=Musical,temporal=Simultaneous", tax)
    assert w == Where("javisbench", (Clause("sound_type", ("musical",)), Clause("temporal", ("simultaneous_events",))))
    # titles, case, separators, column names and prefixes all resolve to the same keys
    assert parse_where(" Sound Type = musical , cat3_ind=simultaneous-events ", tax) == w
    assert parse_where("sound=MUS,temp=sim", tax) == w
    assert parse_where("visual_style=2d-animate", tax).clauses[0].categories == ("animate_2d",)
    assert parse_where("visual_style=2D", tax).clauses[0].categories == ("animate_2d",)
    assert parse_where("spatial=off-screen sound", tax).clauses[0].categories == ("off_screen_sound",)


def test_parse_where_or_values_canonical(tax: Taxonomy) -> None:
    w = parse_where("sound_type=speech|Ambient|speech", tax)
    assert w.clauses == (Clause("sound_type", ("ambient", "speech")),)
    assert str(w) == "sound_type=ambient|speech"
    assert parse_where(str(w), tax) == w


def test_parse_where_empty_keeps_all(tax: Taxonomy) -> None:
    assert parse_where("", tax).clauses == ()
    assert parse_where("  ", tax).clauses == ()


@pytest.mark.parametrize(
    "expr, match",
    [
        ("sound_type=Musicl", r"unknown category of aspect 'sound_type' 'Musicl'.*choices: ambient \(Ambient\), biological"),
        ("sound=drums", r"unknown category of aspect .sound_type. .drums."),
        ("colour=red", r"unknown aspect 'colour'.*choices: event_scenario \(Event Scenario\)"),
        ("s=musical", r"aspect 's' .* is ambiguous: it matches sound_type, spatial"),
        ("temporal=s", r"ambiguous: it matches sequential_events, simultaneous_events, single_event"),
        ("sound_type", r"expected 'aspect=category\[\|category\.\.\.\]'"),
        ("sound_type=a=b", r"expected 'aspect=category"),
        ("sound_type=musical,,temporal=single", r"empty clause"),
        ("sound_type=", r"empty category of aspect 'sound_type' name"),
        ("sound_type=musical|", r"empty category"),
    ],
)
def test_parse_where_errors(tax: Taxonomy, expr: str, match: str) -> None:
    with pytest.raises(WhereError, match=match):
        parse_where(expr, tax)


def _rows() -> list[dict]:
    # (sound_type, temporal) per row; other aspects fixed
    spec = [("3", 2), ("0,3", 2), ("3,4", 0), ("4", 2), ("0", 1), ("1,2", 2)]
    return [
        {"cat0_ind": 0, "cat1_ind": 0, "cat2_ind": s, "cat3_ind": t, "cat4_ind": 0} for s, t in spec
    ]


def test_apply_where_semantics(tax: Taxonomy) -> None:
    labels = parse_labels(_rows(), tax)

    def rows(expr: str) -> list[int]:
        return apply_where(labels, parse_where(expr, tax)).tolist()

    assert rows("") == [0, 1, 2, 3, 4, 5]
    assert rows("sound_type=musical") == [0, 1, 2]                  # multi-label rows included
    assert rows("sound_type=musical,temporal=simultaneous") == [0, 1]  # clauses: AND
    assert rows("sound_type=musical|speech") == [0, 1, 2, 3]         # values: OR
    assert rows("sound_type=musical,sound_type=speech") == [2]      # same aspect twice: both
    assert rows("sound_type=mechanical|biological") == [5]
    assert rows("temporal=sequential,sound_type=musical") == []
    out = apply_where(labels, parse_where("temporal=simultaneous", tax))
    assert out.dtype == np.int64


def test_apply_where_independent_reference(tax: Taxonomy) -> None:
    rng = np.random.default_rng(3)
    rows = []
    for _ in range(200):
        k = int(rng.integers(1, 4))
        rows.append({"cat0_ind": int(rng.integers(5)), "cat1_ind": int(rng.integers(3)),
                     "cat2_ind": ",".join(map(str, rng.permutation(5)[:k])), "cat3_ind": int(rng.integers(3)),
                     "cat4_ind": str(int(rng.integers(3)))})
    labels = parse_labels(rows, tax)
    got = apply_where(labels, parse_where("event_scenario=natural|virtual,sound_type=speech|musical", tax))
    want = [i for i, r in enumerate(rows)
            if r["cat0_ind"] in (0, 4) and ({"3", "4"} & set(r["cat2_ind"].split(",")))]
    assert got.tolist() == want


def test_apply_where_other_taxonomy(tax: Taxonomy) -> None:
    labels = parse_labels(_rows(), tax)
    with pytest.raises(WhereError, match="parsed for taxonomy 'other'"):
        apply_where(labels, Where("other", ()))
    with pytest.raises(WhereError, match="no category 'nope'"):
        apply_where(labels, Where("javisbench", (Clause("sound_type", ("nope",)),)))
