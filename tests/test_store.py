"""The feature store: keys, atomic float32 writes, damaged entries."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from javisbench.features import FeatureStore, feature_key


def test_key_depends_on_every_part() -> None:
    base = feature_key("h", "enc@1[w=abc]", "proto", ("t",))
    assert base != feature_key("h2", "enc@1[w=abc]", "proto", ("t",))
    assert base != feature_key("h", "enc@2[w=abc]", "proto", ("t",))
    assert base != feature_key("h", "enc@1[w=abd]", "proto", ("t",))
    assert base != feature_key("h", "enc@1[w=abc]", "proto2", ("t",))
    assert base != feature_key("h", "enc@1[w=abc]", "proto", ("t2",))
    assert base == feature_key("h", "enc@1[w=abc]", "proto", ("t",))


def test_put_get_float32_and_counters(tmp_path: Path) -> None:
    st = FeatureStore(tmp_path)
    k = feature_key("h", "e", "p")
    assert st.get("enc", k) is None
    st.put("enc", k, {"a": np.arange(3, dtype=np.float64), "b": np.ones((2, 2), np.int64)})
    got = st.get("enc", k)
    assert got["a"].dtype == np.float32 and got["b"].dtype == np.float32
    np.testing.assert_array_equal(got["a"], [0, 1, 2])
    assert st.stats() == {"hits": 1, "misses": 1, "writes": 1, "rejected": 0}
    assert not list(st.path("enc", k).parent.glob(".tmp-*"))      # no temporary leftovers


def test_refuses_non_finite_and_empty(tmp_path: Path) -> None:
    st = FeatureStore(tmp_path)
    with pytest.raises(ValueError, match="non-finite"):
        st.put("enc", "k" * 64, {"a": np.array([np.nan])})
    with pytest.raises(ValueError, match="empty"):
        st.put("enc", "k" * 64, {})
    assert st.get("enc", "k" * 64) is None


def test_damaged_entry_is_recomputed_not_fatal(tmp_path: Path) -> None:
    st = FeatureStore(tmp_path)
    k = "ab" * 32
    p = st.put("enc", k, {"a": np.ones(4)})
    p.write_bytes(p.read_bytes()[:10])
    assert st.get("enc", k) is None
