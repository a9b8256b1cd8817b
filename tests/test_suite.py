"""The metric table: every metric computes from features named as its encoder stores them."""
from __future__ import annotations

import numpy as np
import pytest

from javisbench.encoders import ENCODERS, encoder_class
from javisbench.protocol import FIXED, OFFICIAL
from javisbench.suite import METRICS, get_metric, select_metrics


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def test_every_metric_names_registered_encoders() -> None:
    for m in METRICS.values():
        for e in m.encoders:
            assert e in ENCODERS, (m.key, e)
        assert (m.kind == "set") == (m.set_fn is not None)
        assert m.kind == "set" or m.sample_fn is not None or m.ordered_fn is not None


def test_weights_in_table_match_encoder_declarations() -> None:
    for m in METRICS.values():
        declared = {wf.name.rstrip("/") for e in m.encoders for wf in encoder_class(e).weight_files}
        assert {w.rstrip("/") for w in m.weights} == declared, m.key


def test_sample_metrics_on_synthetic_features() -> None:
    rng = np.random.default_rng(0)
    t, v, a = rng.normal(size=1024), rng.normal(size=1024), rng.normal(size=1024)
    f = {"imagebind": {"text_video": t, "text_audio": t, "video": v, "audio": a}}
    cos = lambda x, y: float(x @ y / np.linalg.norm(x) / np.linalg.norm(y))  # noqa: E731
    assert get_metric("ib_tv").sample_fn(f, OFFICIAL) == pytest.approx(cos(t, v))
    assert get_metric("ib_av").sample_fn(f, OFFICIAL) == pytest.approx(cos(a, v))
    frames = rng.normal(size=(48, 512))
    text = rng.normal(size=512)
    clip = {"clip": {"image_features": frames, "text_features": text}}
    assert get_metric("clip_score").sample_fn(clip, OFFICIAL) == pytest.approx(np.mean([cos(x, text) for x in frames]))
    vf, sf = _unit(rng.normal(size=(16, 512))), _unit(rng.normal(size=(16, 512)))
    assert get_metric("cavp_score").sample_fn({"cavp": {"video_feats": vf, "spec_feats": sf}}, OFFICIAL) == \
        pytest.approx(float(np.mean(np.sum(vf * sf, axis=1))))
    axes = np.array([5.0, 6.0, 4.0, 7.0], np.float32)
    assert get_metric("audio_quality").sample_fn({"audiobox": {"axes": axes}}, OFFICIAL) == 5.5
    vr = {"videoreward": {"raw": np.array([1.5, -0.5, 2.0]), "normalized": np.array([0.1, 0.2, 0.3])}}
    assert get_metric("visual_quality").sample_fn(vr, OFFICIAL) == 1.5
    assert get_metric("motion_quality_norm").sample_fn(vr, OFFICIAL) == pytest.approx(0.2)


def test_javis_score_k_rule_per_protocol() -> None:
    rng = np.random.default_rng(1)
    frames = _unit(rng.normal(size=(4, 8)))
    f = {"imagebind-avh": {"frames": frames, "audio": rng.normal(size=8), "window_audio": rng.normal(size=(1, 8)),
                           "window_frame_idx": np.array([[0, 1]], np.float32)}}
    with pytest.raises(ValueError):                      # int(0.4 * 2) = 0: the original returns NaN
        get_metric("javis_score").sample_fn(f, OFFICIAL)
    assert np.isfinite(get_metric("javis_score").sample_fn(f, FIXED))


def test_desync_uses_absolute_offsets_and_the_official_assignment() -> None:
    d = get_metric("desync")
    feats = [{"synchformer": {"group_offsets": np.array([-0.6, 0.2])}},
             None,                                       # a failed sample stays NaN
             {"synchformer": {"group_offsets": np.array([0.6, -0.2])}}]
    off = d.ordered_fn(feats, OFFICIAL)
    fix = d.ordered_fn(feats, FIXED)
    assert np.isnan(off[1]) and np.isnan(fix[1])
    np.testing.assert_allclose(fix[[0, 2]], [0.4, 0.4])
    np.testing.assert_allclose(off[[0, 2]], [0.6, 0.2])   # the group-major/sample-major scramble


def test_select_metrics() -> None:
    assert [m.key for m in select_metrics(["fvd,kvd", "clip_score", "fvd"])] == ["fvd", "kvd", "clip_score"]
    # every metric but the in-domain "@synthav" keys, which run only when named
    defaults = [m for m in METRICS.values() if m.in_default]
    assert len(select_metrics(None)) == len(defaults) == len(select_metrics(["all"])) == len(METRICS) - 9
    with pytest.raises(KeyError, match="Did you mean: clip_score"):
        select_metrics(["clipscore"])


def test_set_metric_interval_follows_the_protocol_value() -> None:
    """Official FD is float32; its CI comes from the exact float64 form and is moved onto the official
    value.  Identical sets with large features: float32 leaves noise where the exact FD is 0, and the
    interval must sit on the reported value, not on 0."""
    from taxonomy.breakdown import cell_to_json, centre_interval, summarize

    from javisbench.breakdown import set_metric_fns

    rng = np.random.default_rng(0)
    feats = (rng.normal(size=(6, 1024)) * 1e3 + 5e4).astype(np.float32)
    for key in ("fad", "fvd"):
        m = get_metric(key)
        x = feats[:, :400] if key == "fvd" else feats
        fn, resample, failed = set_metric_fns(m, np.arange(6), x, x.copy(), OFFICIAL, 6)
        cell = cell_to_json(summarize(fn, n_rows=6, failed=failed, resample=resample, n_boot=OFFICIAL.set_bootstrap))
        exact = float(m.resample_fn(x, x, OFFICIAL))
        assert abs(exact) < 1e-6 * abs(cell["value"]) + 1e-6        # exact float64: the sets are identical
        assert cell["value"] != 0.0                                   # float32 noise in the official value
        assert cell["ci_low"] == pytest.approx(cell["value"]) and cell["ci_high"] == pytest.approx(cell["value"])
    assert centre_interval(1.0, 2.0, 10.0, 1.5) == (9.5, 10.5)
    assert np.isnan(centre_interval(float("nan"), float("nan"), 10.0, 1.5)).all()
    assert centre_interval(1.0, 2.0, float("nan"), 1.5) == (1.0, 2.0)
