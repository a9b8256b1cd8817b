"""DeSync grouping and per-sample assignment vs the golden Synchformer expectations (no model needed)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from metrics.desync import (
    OFFSET_GRID,
    assign_group_offsets,
    n_segments,
    official_groups,
    offsets_from_logits,
    to_official_order,
)

SYNC = Path(__file__).resolve().parents[1] / "golden" / "synchformer"


@pytest.fixture(scope="module")
def multigroup() -> dict:
    return json.loads((SYNC / "expected_multigroup_8s.json").read_text())


def test_grid_matches_golden() -> None:
    z = np.load(SYNC / "expected.npz")
    assert OFFSET_GRID.dtype == np.float32
    np.testing.assert_array_equal(OFFSET_GRID, z["grid"])


def test_single_group_offsets_match_golden() -> None:
    z = np.load(SYNC / "expected.npz")
    names = [str(n) for n in z["names"]]
    got = [float(offsets_from_logits(z[f"logits__{n}"]).mean()) for n in names]
    np.testing.assert_array_equal(np.asarray(got, np.float32), z["desync"].astype(np.float32))


def test_segment_counts_and_groups() -> None:
    assert n_segments(100, 16, 8) == 11 and n_segments(64000, 10240, 5120) == 11     # 4 s
    assert n_segments(200, 16, 8) == 24 and n_segments(128000, 10240, 5120) == 24    # 8 s
    assert official_groups(11) == [list(range(11)) + [0, 1, 2]]
    assert official_groups(14) == [list(range(14))]
    assert official_groups(24) == [list(range(14)), list(range(10, 24))]
    assert official_groups(28) == [list(range(14)), list(range(14, 28))]
    assert official_groups(30)[2] == list(range(16, 30))
    assert official_groups(5) == [[i % 5 for i in range(14)]]
    with pytest.raises(ValueError, match="shorter than one segment"):
        n_segments(10, 16, 8)


def test_multigroup_official_assignment(multigroup: dict) -> None:
    logits = np.asarray(multigroup["group_logits"], np.float32)         # (G, B, 21), group-major
    g, b, _ = logits.shape
    offs = offsets_from_logits(logits)                                 # (G, B)
    np.testing.assert_array_equal(offs, np.asarray(multigroup["group_abs_offset_group_major"], np.float32))
    flat_official = offs.reshape(-1)                                   # appended group-major
    per = assign_group_offsets(flat_official, [g] * b, official_bug=True, order="official")
    np.testing.assert_allclose(per, multigroup["official_desync_per_sample"], rtol=0, atol=1e-7)
    assert abs(per.mean() - multigroup["official_desync_mean"]) < 1e-7
    fixed = assign_group_offsets(flat_official, [g] * b, official_bug=False, order="official")
    np.testing.assert_allclose(fixed, multigroup["per_sample_if_unscrambled"], rtol=0, atol=1e-12)
    # the same values given sample-major, the layout the pipeline stores
    sample_major = offs.T.reshape(-1)
    np.testing.assert_array_equal(assign_group_offsets(sample_major, [g] * b, official_bug=True), per)
    np.testing.assert_array_equal(assign_group_offsets(sample_major, [g] * b, official_bug=False), fixed)


def test_official_scramble_is_per_batch() -> None:
    """A=[1,2], B=[3,4] in batch 1 -> group-major [1,3,2,4] -> rows [1,3], [2,4]; C=[5,6] alone in batch 2."""
    flat = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])        # sample-major
    got = assign_group_offsets(flat, [2, 2, 2], official_bug=True, batch_size=2)
    assert got.tolist() == [2.0, 3.0, 5.5]
    assert assign_group_offsets(flat, [2, 2, 2], official_bug=False, batch_size=2).tolist() == [1.5, 3.5, 5.5]
    # one group per sample: both rules agree
    one = np.array([0.2, 0.4, 0.6])
    assert assign_group_offsets(one, [1, 1, 1], True).tolist() == assign_group_offsets(one, [1, 1, 1], False).tolist()


def test_official_order_round_trip() -> None:
    rng = np.random.default_rng(0)
    groups = [2] * 8 + [3] * 3
    per = [rng.random(g) for g in groups]
    flat_official = to_official_order(per, batch_size=8)
    flat_sample = np.concatenate(per)
    for bug in (False, True):
        np.testing.assert_allclose(
            assign_group_offsets(flat_official, groups, bug, order="official", batch_size=8),
            assign_group_offsets(flat_sample, groups, bug, order="sample", batch_size=8), rtol=0, atol=0)


def test_assignment_errors() -> None:
    with pytest.raises(ValueError, match="adds up"):
        assign_group_offsets(np.zeros(3), [2, 2], official_bug=False)
    with pytest.raises(ValueError, match="same number of groups"):
        assign_group_offsets(np.zeros(3), [1, 2], official_bug=True)
    with pytest.raises(ValueError, match="at least one group"):
        assign_group_offsets(np.zeros(2), [2, 0], official_bug=False)
    with pytest.raises(ValueError, match="classes"):
        offsets_from_logits(np.zeros((2, 20)))
