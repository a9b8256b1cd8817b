"""Same input, same bytes: AV-Align (flow and onsets), cosine, JavisScore, DeSync's argmax.

The original AV-Align takes ``cv2.mean(cv2.magnitude(u, v))``, whose last bits depend on where
its input sits in memory, and librosa's mel projection is a float32 BLAS product whose rounding
depends on the BLAS thread count; both feed strict comparisons (local maxima, ``x == moving max``).
These tests vary the memory offset of the inputs and the OpenCV/BLAS thread counts and require
bit-identical results, and on a clip whose frames are each shown 4 times (flat stretches in the
flow trajectory) exactly the true peaks.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import numpy as np
import pytest

from metrics.av_align import (
    audio_peaks,
    av_align,
    flow_trajectory,
    mean_flow_magnitude,
    mel_power_spectrogram,
    onset_envelope,
    video_peaks,
)
from metrics.avh import javis_score
from metrics.desync import offsets_from_logits
from metrics.similarity import cosine

FPS = 24.0
SR = 16000
REPEAT = 4
N_DISTINCT = 48


def moving_scene(n: int, height: int = 96, width: int = 128, seed: int = 0) -> np.ndarray:
    """(n, H, W, 3) uint8: a textured background panning slowly and two textured blocks moving
    on their own paths, every frame different (realistic, non-uniform motion)."""
    rng = np.random.default_rng(seed)
    bg = rng.integers(0, 256, size=(height + 64, width + 64, 3), dtype=np.uint8)
    bg = ((bg.astype(np.float32) + np.roll(bg, 1, 0) + np.roll(bg, 1, 1)) / 3).astype(np.uint8)  # soften
    tex = [rng.integers(0, 256, size=(20, 20, 3), dtype=np.uint8) for _ in range(2)]
    frames = np.empty((n, height, width, 3), np.uint8)
    for i in range(n):
        ox, oy = int(1.5 * i) % 64, int(0.7 * i) % 64
        img = bg[oy:oy + height, ox:ox + width].copy()
        for k, t in enumerate(tex):
            x = int(10 + (width - 40) * (0.5 + 0.5 * np.sin(0.21 * i + 2.0 * k)))
            y = int(10 + (height - 40) * (0.5 + 0.5 * np.cos(0.13 * i + 1.3 * k)))
            img[y:y + 20, x:x + 20] = t
        frames[i] = img
    return frames


def at_offset(a: np.ndarray, offset: int) -> np.ndarray:
    """A copy of ``a`` whose data starts ``offset`` bytes into a fresh buffer (misaligned on purpose)."""
    buf = np.empty(a.nbytes + 64, np.uint8)
    out = np.frombuffer(buf.data, a.dtype, count=a.size, offset=offset).reshape(a.shape)
    out[...] = a
    return out


@contextlib.contextmanager
def cv2_threads(n: int) -> Iterator[None]:
    cv2 = pytest.importorskip("cv2")
    old = cv2.getNumThreads()
    cv2.setNumThreads(n)
    try:
        yield
    finally:
        cv2.setNumThreads(old)


@contextlib.contextmanager
def blas_threads(n: int) -> Iterator[None]:
    threadpoolctl = pytest.importorskip("threadpoolctl")
    with threadpoolctl.threadpool_limits(limits=n):
        yield


@pytest.fixture(scope="module")
def repeated_frames() -> np.ndarray:
    return np.repeat(moving_scene(N_DISTINCT), REPEAT, axis=0)          # (192, 96, 128, 3)


@pytest.fixture(scope="module")
def clicks() -> np.ndarray:
    rng = np.random.default_rng(1)
    wav = (0.003 * rng.standard_normal(4 * SR)).astype(np.float32)
    for t in (0.31, 0.9, 1.47, 2.2, 2.95, 3.4):
        s = int(t * SR)
        wav[s:s + 600] += (0.6 * np.exp(-np.arange(600) / 120.0) * rng.standard_normal(600)).astype(np.float32)
    return wav


def test_flow_trajectory_bit_identical_over_offsets_and_threads(repeated_frames: np.ndarray) -> None:
    ref = flow_trajectory(repeated_frames)
    for call in range(20):
        frames = at_offset(repeated_frames, offset=call % 13)
        with cv2_threads(1 + call % 3):
            got = flow_trajectory(frames)
        assert got.tobytes() == ref.tobytes(), f"call {call}: trajectory differs"


def test_duplicated_frames_give_exactly_the_true_peaks(repeated_frames: np.ndarray) -> None:
    """Frame j shows picture j // 4: pair (j-1, j) moves iff j % 4 == 0, so the peaks are at 4, 8, ..., 188."""
    traj = flow_trajectory(repeated_frames)
    # every repeated pair compares a picture with itself: equal pictures give equal bytes
    for j in range(1, len(traj)):
        if j % REPEAT:
            assert traj[j] < 1e-3 * traj[(j // REPEAT) * REPEAT or REPEAT]
    want = np.arange(REPEAT, N_DISTINCT * REPEAT, REPEAT) / FPS
    got = video_peaks(traj, FPS)
    np.testing.assert_array_equal(got, want)
    assert video_peaks(traj, FPS, flow_threshold=0.1).tolist() == want.tolist()   # real motion is above 0.1


def test_flat_stretch_values_are_equal_within_a_run() -> None:
    """Pairs of identical pictures at different positions of the clip give identical magnitudes."""
    frames = np.repeat(moving_scene(6), 5, axis=0)
    traj = flow_trajectory(frames)
    for k in range(6):
        run = traj[5 * k + 1:5 * k + 5] if k else traj[1:5]
        assert len(set(run.tobytes()[i:i + 8] for i in range(0, run.nbytes, 8))) == 1


def test_mean_flow_magnitude_layout_independent() -> None:
    rng = np.random.default_rng(2)
    flow = rng.normal(scale=0.3, size=(37, 53, 2)).astype(np.float32)
    want = float(np.mean(np.sqrt(flow[..., 0].astype(np.float64) ** 2 + flow[..., 1].astype(np.float64) ** 2)))
    ref = mean_flow_magnitude(flow)
    assert ref == pytest.approx(want, rel=1e-14)
    variants = [np.asfortranarray(flow), at_offset(flow, 3), np.ascontiguousarray(np.moveaxis(flow, -1, 0)).transpose(1, 2, 0),
                np.ascontiguousarray(flow[::-1])[::-1]]
    for v in variants:
        np.testing.assert_array_equal(v, flow)
        assert mean_flow_magnitude(v) == ref
    with pytest.raises(ValueError, match=r"\(H, W, 2\)"):
        mean_flow_magnitude(np.zeros((4, 4, 3), np.float32))


def test_onsets_bit_identical_over_offsets_and_blas_threads(clicks: np.ndarray) -> None:
    ref_mel = mel_power_spectrogram(clicks, SR)
    ref_env = onset_envelope(clicks, SR)
    ref_peaks = audio_peaks(clicks, SR)
    assert ref_peaks.size >= 5
    for call in range(8):
        wav = at_offset(clicks, offset=4 * (call % 4) + (call // 4))     # float32 at odd byte offsets too
        with blas_threads(1 + call % 2):
            assert mel_power_spectrogram(wav, SR).tobytes() == ref_mel.tobytes()
            assert onset_envelope(wav, SR).tobytes() == ref_env.tobytes()
            assert audio_peaks(wav, SR).tobytes() == ref_peaks.tobytes()


def test_mel_projection_matches_librosa(clicks: np.ndarray) -> None:
    """The fixed-order float64 projection agrees with librosa's float32 product to float32 rounding."""
    librosa = pytest.importorskip("librosa")
    want = librosa.feature.melspectrogram(y=clicks, sr=SR, n_fft=2048, hop_length=512, window="hann", center=True,
                                          pad_mode="constant", power=2.0, n_mels=128, fmin=0.0, htk=False,
                                          norm="slaney", dtype=np.float32)
    got = mel_power_spectrogram(clicks, SR)
    assert got.dtype == np.float32 and got.shape == want.shape
    # a 1025-term float32 sum carries a few ulps (6e-8 each) of error; measured max 4.5e-7 on the golden clips
    np.testing.assert_allclose(got, want, rtol=2e-6, atol=1e-30)


def test_av_align_score_bit_identical(repeated_frames: np.ndarray, clicks: np.ndarray) -> None:
    frames = repeated_frames[: int(4 * FPS)]
    ref = av_align(frames, FPS, clicks, SR)
    for call in range(5):
        with cv2_threads(1 + call % 2), blas_threads(1 + call % 2):
            assert av_align(at_offset(frames, call), FPS, at_offset(clicks, 4 * call), SR) == ref


def test_cosine_and_javis_score_layout_independent() -> None:
    rng = np.random.default_rng(3)
    f = rng.normal(size=(40, 33)).astype(np.float32)
    a = rng.normal(size=(5, 33)).astype(np.float32)
    idx = (np.arange(5)[:, None] * 6 + np.arange(16)[None, :]).astype(np.int64)
    ref_cos = cosine(f, a[0][None, :])
    ref_js = javis_score(f, a, idx)
    for ff in (np.asfortranarray(f), at_offset(f, 2), np.ascontiguousarray(f.T).T):
        assert cosine(ff, a[0][None, :]).tobytes() == ref_cos.tobytes()
        assert javis_score(ff, np.asfortranarray(a), idx) == ref_js
    # the reduced axis need not be the last one
    assert cosine(f.T, a[0][:, None], axis=0).tobytes() == ref_cos.tobytes()


def test_desync_argmax_ties_take_the_first_class() -> None:
    z = np.zeros((3, 21), np.float32)
    z[0, [4, 16]] = 1.0           # tie between -1.2 s and +1.2 s: the first (-1.2) wins
    z[1, 10] = 1.0
    z[2] = 1.0                    # all equal: class 0, -2.0 s
    got = offsets_from_logits(z)
    np.testing.assert_allclose(got, [1.2, 0.0, 2.0], rtol=1e-6)
    assert offsets_from_logits(np.asfortranarray(z)).tobytes() == got.tobytes()
