"""AVHScore / JavisScore aggregation and window enumeration vs the golden stub-encoder fixture."""
from __future__ import annotations

import json
import math
import wave
from pathlib import Path

import numpy as np
import pytest

from metrics.avh import JavisWindows, avh_score, javis_k, javis_score, javis_windows

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
MATH = GOLDEN / "math"
INPUTS = GOLDEN / "inputs"
SCORE_ABS = 2e-4   # math/README.md: avh_score and javis_score abs 2e-4


@pytest.fixture(scope="module")
def expected() -> dict:
    return json.loads((MATH / "avh_javis_stub_expected.json").read_text())


@pytest.fixture(scope="module")
def emb() -> dict[str, np.ndarray]:
    z = np.load(MATH / "avh_javis_stub_embeddings.npz")
    return {k: z[k] for k in z.files}


def _clip_params(name: str) -> tuple[float, int]:
    """(fps from clips_meta, number of 16 kHz samples the original's resampler yields for the wav)."""
    meta = {m["name"]: m for m in json.loads((INPUTS / "clips_meta.json").read_text())}
    with wave.open(str(INPUTS / f"{name}.wav")) as w:
        n, sr = w.getnframes(), w.getframerate()
    # torchaudio.functional.resample returns ceil(n * new / orig) samples
    return float(meta[name]["fps"]), n if sr == 16000 else math.ceil(n * 16000 / sr)


CLIPS = ["clip_00", "clip_01", "clip_02", "clip_03", "edge_short2s", "edge_5p3s_30fps", "edge_44k_stereo"]


@pytest.mark.parametrize("name", CLIPS)
def test_windows_match_golden(name: str, expected: dict, emb: dict) -> None:
    clip = next(c for c in expected["per_clip"] if c["name"] == name)
    fps, n16 = _clip_params(name)
    w = javis_windows(clip["n_frames"], n16, fps, sr=16000, window_s=2.0, overlap_s=1.5)
    assert w.video_starts == clip["window_frame_starts"]
    assert w.video_len == clip["window_len"]
    assert w.n_windows == clip["n_windows"] == emb[f"{name}__window_audio_emb"].shape[0]
    assert len(w.audio_starts) == w.n_windows
    np.testing.assert_array_equal(w.frame_index(), emb[f"{name}__window_frame_idx"])
    assert javis_k(w.video_len, 0.4) == clip["k_bottom"]


@pytest.mark.parametrize("name", CLIPS)
def test_scores_match_golden(name: str, expected: dict, emb: dict) -> None:
    clip = next(c for c in expected["per_clip"] if c["name"] == name)
    frames, audio = emb[f"{name}__frame_emb"], emb[f"{name}__audio_emb"]
    assert abs(avh_score(frames, audio) - clip["avh_score"]) < SCORE_ABS
    got = javis_score(frames, emb[f"{name}__window_audio_emb"], emb[f"{name}__window_frame_idx"], topk=0.4)
    assert abs(got - clip["javis_score"]) < SCORE_ABS


def test_means_match_golden(expected: dict, emb: dict) -> None:
    avh = [avh_score(emb[f"{c}__frame_emb"], emb[f"{c}__audio_emb"]) for c in CLIPS]
    jav = [javis_score(emb[f"{c}__frame_emb"], emb[f"{c}__window_audio_emb"], emb[f"{c}__window_frame_idx"]) for c in CLIPS]
    assert abs(np.mean(avh) - expected["avh_mean"]) < SCORE_ABS
    assert abs(np.mean(jav) - expected["javis_mean"]) < SCORE_ABS


def test_audio_windows_official() -> None:
    w = javis_windows(159, 84800, 30.0)      # 5.3 s at 30 fps: 8 audio windows, last clamped
    assert w.audio_starts == [0, 8000, 16000, 24000, 32000, 40000, 48000, 52800]
    assert w.audio_len == 32000
    single = javis_windows(48, 32000, 24.0)  # exactly one window long: whole clip
    assert (single.video_starts, single.video_len, single.audio_starts, single.audio_len) == ([0], 48, [0], 32000)


def test_official_drift_at_25fps_and_aligned_fix() -> None:
    off = javis_windows(100, 64000, 25.0)
    ali = javis_windows(100, 64000, 25.0, aligned=True)
    assert off.n_windows == ali.n_windows == 5 and ali.video_len == 50
    drift_off = [abs(v / 25.0 - a / 16000) for v, a in zip(off.video_starts, off.audio_starts)]
    drift_ali = [abs(v / 25.0 - a / 16000) for v, a in zip(ali.video_starts, ali.audio_starts)]
    assert max(drift_off) > 0.05                          # 0.52 s video steps vs 0.5 s audio steps
    assert max(drift_ali) <= 0.5 / 25.0 + 0.5 / 16000       # within half a frame (+ half a sample)


@pytest.mark.parametrize("n_frames,n_samples,fps", [(96, 64000, 24.0), (159, 84800, 30.0), (120, 64000, 30.0)])
def test_aligned_equals_official_when_step_is_integral(n_frames: int, n_samples: int, fps: float) -> None:
    off = javis_windows(n_frames, n_samples, fps)
    ali = javis_windows(n_frames, n_samples, fps, aligned=True)
    assert (ali.video_starts, ali.video_len, ali.audio_starts, ali.audio_len) == (
        off.video_starts, off.video_len, off.audio_starts, off.audio_len)


@pytest.mark.parametrize("n_frames,n_samples,fps", [(240, 160000, 23.976), (300, 160000, 29.97), (83, 70000, 12.5),
                                                     (200, 64000, 50.0)])
def test_aligned_windows_stay_inside_both_streams(n_frames: int, n_samples: int, fps: float) -> None:
    w = javis_windows(n_frames, n_samples, fps, aligned=True)
    dur = min(n_frames / fps, n_samples / 16000)
    assert w.n_windows >= 1
    for v, a in zip(w.video_starts, w.audio_starts):
        assert 0 <= v and v + w.video_len <= n_frames
        assert 0 <= a and a + w.audio_len <= n_samples
        assert abs(v / fps - a / 16000) <= 0.5 / fps + 0.5 / 16000 + 1e-9
    assert w.audio_starts[-1] + w.audio_len >= round(dur * 16000) - 1   # the last window reaches the end


def test_k_rules() -> None:
    assert (javis_k(48), javis_k(50), javis_k(60), javis_k(38)) == (19, 20, 24, 15)
    assert javis_k(48, 5) == 5                       # an int is a count
    with pytest.raises(ValueError, match="returns NaN"):
        javis_k(2, 0.4)
    assert javis_k(2, 0.4, clamp_k=True) == 1
    with pytest.raises(ValueError, match="exceeds"):
        javis_k(4, 9)


def test_javis_score_vs_naive_and_k_zero() -> None:
    rng = np.random.default_rng(0)
    frames = rng.normal(size=(30, 8))
    audio = rng.normal(size=(3, 8))
    w = JavisWindows([0, 6, 12], 18, [0, 1, 2], 4)
    idx = w.frame_index()
    naive = []
    for m in range(3):
        c = sorted(float(frames[j] @ audio[m] / np.linalg.norm(frames[j]) / np.linalg.norm(audio[m])) for j in idx[m])
        naive.append(np.mean(c[: int(18 * 0.4)]))
    assert javis_score(frames, audio, idx) == pytest.approx(np.mean(naive), abs=1e-12)
    tiny = np.array([[0, 1]])
    with pytest.raises(ValueError, match="NaN"):
        javis_score(frames, audio[:1], tiny)
    c0 = frames[0] @ audio[0] / np.linalg.norm(frames[0]) / np.linalg.norm(audio[0])
    c1 = frames[1] @ audio[0] / np.linalg.norm(frames[1]) / np.linalg.norm(audio[0])
    assert javis_score(frames, audio[:1], tiny, clamp_k=True) == pytest.approx(min(c0, c1), abs=1e-12)


def test_input_errors() -> None:
    f = np.zeros((10, 4))
    with pytest.raises(ValueError, match="10 frames"):
        javis_score(f, np.ones((1, 4)), np.array([[8, 9, 10]]))
    with pytest.raises(ValueError, match="D=4"):
        javis_score(f, np.ones((1, 5)), np.array([[0, 1, 2]]))
    with pytest.raises(ValueError, match="at least one frame"):
        javis_windows(0, 100, 24.0)
    with pytest.raises(ValueError, match="overlap_s"):
        javis_windows(100, 64000, 24.0, window_s=1.0, overlap_s=1.0)
