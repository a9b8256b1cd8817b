"""AV-Align: agreement of audio onsets and optical-flow peaks (the Seeing-and-Hearing metric).

As the JavisBench code computes it (spec §4.8):

* video peaks: the mean Farneback flow magnitude between consecutive grayscale frames gives a
  trajectory ``[m_1, m_1, m_2, ..., m_{T-1}]`` (first pair duplicated, length T); its strict
  interior local maxima ``i`` are peaks at ``i / fps`` seconds;
* audio peaks: librosa 0.9.2 ``onset_detect`` with its defaults at the file's native sample rate
  (mel onset strength, normalised, ``peak_pick`` with sr-dependent windows), at ``frame * 512 / sr``
  seconds;
* score: ``I / (|A| + |V| - I + 1e-6)`` with ``I`` the number of audio peaks that have some video
  peak strictly within ``±tolerance_frames / fps``; an audio peak counts once, but several audio
  peaks may match the same video peak, so the score can exceed 1.

Determinism.  The original is not deterministic: it takes the flow magnitude with
``cv2.magnitude`` and averages it with ``cv2.mean``, whose SIMD and parallel paths round the last
bit differently depending on where the input happens to sit in memory and on OpenCV's thread
count.  On duplicated frames or static shots (common in generated video) consecutive trajectory
entries that should be equal then differ by a few 1e-12 relative, and the strict local-maximum
test fires inside flat stretches: on one clip of 48 frames, each repeated 4 times, twenty
identical calls of the original gave 9 different trajectories and 47 to 75 video peaks (47 are
real).  Here the magnitude is taken in float64 from
the two float32 flow components (the squares are exact, the sum and the square root correctly
rounded) and averaged by numpy's fixed-order pairwise sum (:func:`mean_flow_magnitude`), so the
same frames give the same bytes whatever their memory layout and OpenCV's thread count, and equal
frame pairs give equal values.  Against the original this moves trajectory values by a few 1e-9
relative at most, far inside the golden tolerance (rel 1e-3), and agrees on every golden peak.
The audio side had the same flaw: librosa's mel projection is a float32 BLAS product whose
rounding changes with the BLAS thread count, and the onset peak picking compares those last bits;
:func:`mel_power_spectrogram` sums in a fixed order instead (the golden onsets are unchanged).

Flow threshold.  The AV-Align authors' later version (TempoTokens, ``guyyariv/TempoTokens``
``av_align.py``, commit ``bf0b1e3`` of 2025-02-13) keeps a flow peak only when its mean
magnitude is at least 0.1 px/frame ("to prevent static scenes from being incorrectly calculated as
peaks due to very small optical flow").  The JavisBench fork has no threshold.
``flow_threshold`` (:func:`video_peaks`, :func:`av_align`) selects the rule: 0 is the original's,
:data:`TEMPOTOKENS_FLOW_THRESHOLD` (0.1) the later one.

OpenCV (``cv2``) and librosa are imported inside the functions that need them.  librosa is used
only for the STFT and mel filterbank, with every parameter passed explicitly; the dB conversion,
onset envelope and peak picking are implemented here with librosa 0.9.2's semantics, so the
result does not depend on the installed librosa's defaults (librosa 0.10+ rewrote ``peak_pick``
with a float32 ``delta``).
"""
from __future__ import annotations

import math

import numpy as np

# Farneback parameters of the original: pyr_scale, levels, winsize, iterations, poly_n, poly_sigma, flags.
FARNEBACK_PARAMS = (0.5, 3, 15, 3, 5, 1.2, 0)

# Minimum mean flow magnitude (px/frame) of a video peak in the authors' later AV-Align
# (TempoTokens av_align.py, 2025: ``arr[i] >= 0.1``); the JavisBench fork uses none (0).
TEMPOTOKENS_FLOW_THRESHOLD = 0.1

# librosa 0.9.2 onset defaults.
ONSET_N_FFT = 2048
ONSET_HOP = 512
ONSET_N_MELS = 128
ONSET_LAG = 1
ONSET_DELTA = 0.07
POWER_TO_DB_AMIN = 1e-10
POWER_TO_DB_TOP_DB = 80.0


# ---------------------------------------------------------------------------------------------
# video
# ---------------------------------------------------------------------------------------------
def mean_flow_magnitude(flow: np.ndarray) -> float:
    """Mean over pixels of ``sqrt(u^2 + v^2)``, computed so that the result is bit-reproducible.

    The two float32 components are widened to float64 (their squares are then exact), the square
    root is correctly rounded, and the mean is numpy's pairwise sum of a fresh C-contiguous
    array, whose order depends only on the number of pixels.  The original's
    ``cv2.mean(cv2.magnitude(u, v))`` gives results whose last bits depend on the memory alignment
    of its input; this differs from it by a few 1e-9 relative at most.

    Args:
        flow: (H, W, 2) flow field (u, v), any float dtype and memory layout.

    Returns:
        The mean magnitude as a Python float.

    Example:
        >>> f = np.zeros((2, 2, 2), np.float32); f[..., 0] = 3.0; f[..., 1] = 4.0
        >>> mean_flow_magnitude(f)
        5.0
    """
    arr = np.asarray(flow)
    if arr.ndim != 3 or arr.shape[-1] != 2:
        raise ValueError(f"flow must be (H, W, 2), got shape {arr.shape}")
    u = np.array(arr[..., 0], dtype=np.float64, order="C")
    v = np.array(arr[..., 1], dtype=np.float64, order="C")
    u *= u
    v *= v
    u += v
    np.sqrt(u, out=u)
    return float(np.add.reduce(u.reshape(-1)) / u.size)


def flow_trajectory(frames: np.ndarray) -> np.ndarray:
    """Per-frame mean optical-flow magnitude, with the first pair duplicated.

    ``m_i = mean_pixels |Farneback(gray_{i-1}, gray_i)|`` with parameters
    (0.5, 3, 15, 3, 5, 1.2, 0); the trajectory is ``[m_1, m_1, m_2, ..., m_{T-1}]``.  The magnitude
    is averaged by :func:`mean_flow_magnitude` (deterministic, unlike the original's
    ``cv2.magnitude``/``cv2.mean``; see the module docstring).  The original
    converts cv2's BGR frames with BGR2GRAY; converting RGB frames with RGB2GRAY applies the same
    weights to the same channels, so the grayscale images are identical.

    Args:
        frames: (T, H, W, 3) uint8 RGB frames at native resolution, T >= 2.

    Returns:
        (T,) float64 trajectory.

    Raises:
        ValueError: fewer than 2 frames (the original fails with an IndexError), wrong shape or dtype.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> f = rng.integers(0, 255, size=(3, 32, 32, 3), dtype=np.uint8)
        >>> t = flow_trajectory(f)
        >>> t.shape, bool(t[0] == t[1])
        ((3,), True)
    """
    import cv2

    arr = np.asarray(frames)
    if arr.ndim != 4 or arr.shape[-1] != 3:
        raise ValueError(f"frames must be (T, H, W, 3) RGB, got shape {arr.shape}")
    if arr.dtype != np.uint8:
        raise ValueError(f"frames must be uint8, got {arr.dtype}")
    if arr.shape[0] < 2:
        raise ValueError(f"AV-Align needs at least 2 video frames for optical flow, got {arr.shape[0]}")
    gray = [cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2GRAY) for f in arr]
    mags = np.empty(arr.shape[0] - 1, np.float64)
    for i in range(1, arr.shape[0]):
        flow = cv2.calcOpticalFlowFarneback(gray[i - 1], gray[i], None, *FARNEBACK_PARAMS)
        mags[i - 1] = mean_flow_magnitude(flow)
    return np.concatenate([mags[:1], mags])


def video_peaks(traj: np.ndarray, fps: float, flow_threshold: float = 0.0) -> np.ndarray:
    """Times (s) of the strict interior local maxima of a trajectory: ``i / fps`` where ``t[i-1] < t[i] > t[i+1]``.

    With ``flow_threshold > 0`` a maximum is kept only when ``t[i] >= flow_threshold`` (the
    authors' later rule, :data:`TEMPOTOKENS_FLOW_THRESHOLD` = 0.1 px/frame); 0 keeps every
    maximum, as the JavisBench original does.

    Args:
        traj: (T,) trajectory (mean flow magnitudes, px/frame).
        fps: frame rate (> 0).
        flow_threshold: minimum magnitude of a kept peak (>= 0).

    Returns:
        (P,) float64 seconds, increasing.

    Raises:
        ValueError: non-positive fps, negative or non-finite threshold.

    Example:
        >>> video_peaks(np.array([0.0, 2.0, 1.0, 1.0, 3.0, 0.0]), 2.0).tolist()
        [0.5, 2.0]
        >>> video_peaks(np.array([0.0, 0.05, 0.0, 0.2, 0.0]), 1.0, flow_threshold=0.1).tolist()
        [3.0]
    """
    t = np.asarray(traj, np.float64).ravel()
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    thr = _check_threshold(flow_threshold)
    if t.size < 3:
        return np.zeros(0, np.float64)
    keep = (t[1:-1] > t[:-2]) & (t[1:-1] > t[2:])
    if thr > 0:
        keep &= t[1:-1] >= thr
    idx = np.flatnonzero(keep) + 1
    return idx / float(fps)


def _check_threshold(flow_threshold: float) -> float:
    thr = float(flow_threshold)
    if not (np.isfinite(thr) and thr >= 0):
        raise ValueError(f"flow_threshold must be a finite value >= 0 (px/frame), got {flow_threshold!r}")
    return thr


# ---------------------------------------------------------------------------------------------
# audio (librosa 0.9.2 onset_detect semantics)
# ---------------------------------------------------------------------------------------------
def _power_to_db(s: np.ndarray) -> np.ndarray:
    """``10 log10(max(S, 1e-10))`` (ref 1), floored at ``max - 80`` dB; dtype of S."""
    log_spec = 10.0 * np.log10(np.maximum(POWER_TO_DB_AMIN, s))
    # librosa 0.9.2 ran under numpy 1.x, where ``float32 scalar - 80.0`` is float64 and the
    # floor is then cast back to the array dtype: reproduce that rounding explicitly.
    floor = float(log_spec.max()) - POWER_TO_DB_TOP_DB
    return np.maximum(log_spec, log_spec.dtype.type(floor))


def mel_power_spectrogram(wave: np.ndarray, sr: int) -> np.ndarray:
    """librosa's ``melspectrogram(y, sr)`` with the onset defaults, with a reproducible mel projection.

    ``|STFT|^2`` (n_fft 2048, hop 512, Hann, centred with zero padding, complex64 as librosa) is
    projected on 128 Slaney mel filters (0 to sr/2, float32).  librosa does the projection as a
    float32 BLAS product, whose rounding changes with the BLAS thread count (measured: 1 vs 2
    OpenBLAS threads give different bytes on 4 of the 7 golden clips), and the onset peak picking
    then compares those last bits (``x == moving max``).  Here each mel band is the float64 sum of
    its exact float32 x float32 products over the filter's non-zero bins, in a fixed pairwise order,
    rounded once to float32: the same audio gives the same bytes under any thread count or memory
    layout, and the value is the correctly rounded result up to ~1e-16 relative (librosa's float32
    sum is off by up to a few float32 ulps).

    Args:
        wave: (L,) mono waveform (cast to float32).
        sr: sample rate.

    Returns:
        (128, 1 + L // 512) float32 mel power spectrogram.
    """
    import librosa

    y = np.ascontiguousarray(wave, dtype=np.float32)
    spec = librosa.stft(y, n_fft=ONSET_N_FFT, hop_length=ONSET_HOP, win_length=None, window="hann", center=True,
                        pad_mode="constant")
    power_t = np.ascontiguousarray(np.abs(spec).T ** 2.0, dtype=np.float64)        # (T, F), float32 values
    basis = librosa.filters.mel(sr=sr, n_fft=ONSET_N_FFT, n_mels=ONSET_N_MELS, fmin=0.0, fmax=None, htk=False,
                                norm="slaney", dtype=np.float32)
    out = np.zeros((basis.shape[0], power_t.shape[0]), np.float64)
    for m in range(basis.shape[0]):
        nz = np.flatnonzero(basis[m])
        if nz.size == 0:
            continue
        lo, hi = int(nz[0]), int(nz[-1]) + 1
        prod = power_t[:, lo:hi] * basis[m, lo:hi].astype(np.float64)            # fresh (T, k), C order
        out[m] = np.add.reduce(prod, axis=1)
    return out.astype(np.float32)


def onset_envelope(wave: np.ndarray, sr: int) -> np.ndarray:
    """librosa 0.9.2 ``onset_strength(y, sr)`` with its defaults, every parameter pinned.

    ``S = power_to_db(mel(|STFT|^2))`` (n_fft 2048, hop 512, Hann, centred with zero padding,
    128 Slaney mels from 0 to sr/2, float32), ``env[t] = mean_f max(0, S[f, t] - S[f, t-1])``,
    shifted right by ``lag + n_fft // (2 hop) = 3`` frames (zeros in front) and trimmed to the
    number of STFT frames.

    Args:
        wave: (L,) mono float waveform at its native rate.
        sr: sample rate.

    Returns:
        (n_frames,) float32 onset strength, ``n_frames = 1 + L // 512``.
    """
    s = _power_to_db(np.abs(mel_power_spectrogram(wave, sr)))
    diff = np.maximum(0.0, s[:, ONSET_LAG:] - s[:, :-ONSET_LAG])
    env = np.mean(diff, axis=0)
    shift = ONSET_LAG + ONSET_N_FFT // (2 * ONSET_HOP)
    env = np.concatenate([np.zeros(shift, env.dtype), env])
    return env[: s.shape[1]]


def peak_pick_0_9_2(x: np.ndarray, pre_max: float, post_max: float, pre_avg: float, post_avg: float,
                    delta: float, wait: float) -> np.ndarray:
    """librosa 0.9.2 ``util.peak_pick``: indices n where x[n] is the local max and above the local mean + delta.

    ``x[n] == max(x[n - pre_max : n + post_max])`` and
    ``x[n] >= mean(x[n - pre_avg : n + post_avg]) + delta`` (windows truncated at the edges), then
    greedily drop a peak within ``wait`` frames after the previous kept one.  Window sizes are
    rounded up to integers.  The moving max/mean use scipy's 1-D filters as 0.9.2 did, so the
    float32 rounding of the threshold matches.

    Args:
        x: (n,) envelope.
        pre_max, post_max, pre_avg, post_avg, wait: window sizes in frames (post_* >= 1).
        delta: threshold offset.

    Returns:
        (P,) int64 peak indices.
    """
    from scipy import ndimage

    x = np.asarray(x)
    pre_max, post_max, pre_avg, post_avg, wait = (int(math.ceil(v)) for v in (pre_max, post_max, pre_avg, post_avg, wait))
    if min(pre_max, pre_avg, wait) < 0 or min(post_max, post_avg) < 1 or delta < 0:
        raise ValueError("peak_pick: pre_* and wait must be >= 0, post_* >= 1, delta >= 0")
    n = x.shape[0]
    # Moving max over [n - pre_max, n + post_max): size pre+post with the window's origin moved
    # to the right place; outside the signal the window sees x.min(), i.e. it is truncated.
    mov_max = ndimage.maximum_filter1d(x, pre_max + post_max, mode="constant", cval=x.min(),
                                       origin=int(math.ceil(0.5 * (pre_max - post_max))))
    mov_avg = ndimage.uniform_filter1d(x, pre_avg + post_avg, mode="nearest",
                                       origin=int(math.ceil(0.5 * (pre_avg - post_avg))))
    # Near both ends the mean must be over the truncated window instead of edge-replicated values.
    for i in list(range(min(pre_avg, n))) + list(range(max(n - post_avg, 0), n)):
        mov_avg[i] = np.mean(x[max(i - pre_avg, 0): i + post_avg])
    detections = x * (x == mov_max)
    detections = detections * (detections >= mov_avg + delta)
    peaks: list[int] = []
    last = -np.inf
    for i in np.flatnonzero(detections):
        if i > last + wait:
            peaks.append(int(i))
            last = i
    return np.asarray(peaks, np.int64)


def audio_peaks(wave: np.ndarray, sr: int) -> np.ndarray:
    """Onset times (s) as librosa 0.9.2 ``onset_detect(onset_envelope=onset_strength(y, sr), sr=sr)``.

    The envelope (:func:`onset_envelope`) is normalised to [0, 1] (``(x - min) / (max + tiny)``),
    then peaks are picked (:func:`peak_pick_0_9_2`) with the sr-dependent defaults
    ``pre_max = 0.03 sr // 512``, ``post_max = 1``, ``pre_avg = 0.10 sr // 512``,
    ``post_avg = 0.10 sr // 512 + 1``, ``wait = 0.03 sr // 512``, ``delta = 0.07`` (at 16 kHz:
    0, 1, 3, 4, 0), and frames become seconds as ``int(frame * 512) / sr``.

    Args:
        wave: (L,) or (1, L) mono float waveform at its native rate (the original mixes stereo to
            mono by the channel mean, as ``librosa.load`` does).
        sr: native sample rate (> 0).

    Returns:
        (P,) float64 onset times in seconds; empty for silence.

    Raises:
        ValueError: multi-channel or non-finite input, non-positive sr.

    Example:
        >>> sr = 16000
        >>> y = np.zeros(sr, np.float32); y[8000:8200] = 0.5
        >>> audio_peaks(y, sr).tolist()  # onset frames 16 and 17 of 512 samples
        [0.512, 0.544]
    """
    y = np.asarray(wave)
    if y.ndim == 2 and y.shape[0] == 1:
        y = y[0]
    if y.ndim != 1:
        raise ValueError(f"audio_peaks expects mono audio (L,) or (1, L), got shape {np.shape(wave)}; mix channels first")
    if not int(sr) > 0:
        raise ValueError(f"sample rate must be positive, got {sr}")
    if y.size == 0:
        return np.zeros(0, np.float64)
    if not np.all(np.isfinite(y)):
        raise ValueError("audio contains NaN or inf")
    sr = int(sr)
    env = onset_envelope(y, sr)
    env = env - env.min()
    env /= env.max() + np.finfo(env.dtype).tiny
    if not env.any() or not np.all(np.isfinite(env)):
        return np.zeros(0, np.float64)
    frames = peak_pick_0_9_2(
        env,
        pre_max=0.03 * sr // ONSET_HOP,
        post_max=0.00 * sr // ONSET_HOP + 1,
        pre_avg=0.10 * sr // ONSET_HOP,
        post_avg=0.10 * sr // ONSET_HOP + 1,
        wait=0.03 * sr // ONSET_HOP,
        delta=ONSET_DELTA,
    )
    return (frames * ONSET_HOP).astype(np.int64) / float(sr)


# ---------------------------------------------------------------------------------------------
# score
# ---------------------------------------------------------------------------------------------
def av_align_score(audio_peaks: np.ndarray, video_peaks: np.ndarray, fps: float, tolerance_frames: int = 1) -> float:
    """AV-Align of one clip: ``I / (|A| + |V| - I + 1e-6)``.

    ``I`` counts the audio peaks ``a`` with some video peak ``v`` such that
    ``v - tol/fps < a < v + tol/fps`` (strict), each audio peak at most once; a video peak may
    serve several audio peaks (so the score can exceed 1, as in the original).

    Args:
        audio_peaks: (A,) seconds.
        video_peaks: (V,) seconds.
        fps: video frame rate (> 0).
        tolerance_frames: half-width of the match window in frames (the original: 1).

    Returns:
        The score as a Python float (0 when there are no peaks at all).

    Example:
        >>> round(av_align_score(np.array([0.5, 1.0]), np.array([0.52, 2.0]), 24.0), 6)
        0.333333
    """
    a = np.asarray(audio_peaks, np.float64).ravel()
    v = np.asarray(video_peaks, np.float64).ravel()
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    tol = tolerance_frames / fps
    if a.size and v.size:
        hit = ((v[None, :] - tol < a[:, None]) & (a[:, None] < v[None, :] + tol)).any(axis=1)
        inter = int(hit.sum())
    else:
        inter = 0
    return inter / (a.size + v.size - inter + 1e-6)


def av_align(frames: np.ndarray, fps: float, wave: np.ndarray, sr: int, tolerance_frames: int = 1,
             flow_threshold: float = 0.0) -> float:
    """AV-Align of one clip from decoded media: flow peaks of ``frames`` vs onsets of ``wave``.

    Args:
        frames: (T, H, W, 3) uint8 RGB, every frame at native resolution.
        fps: the stream's frame rate.
        wave: (L,) mono audio at its native rate (untruncated, as the original).
        sr: its sample rate.
        tolerance_frames: see :func:`av_align_score`.
        flow_threshold: minimum mean flow magnitude (px/frame) of a video peak; 0 (the JavisBench
            rule) keeps all, :data:`TEMPOTOKENS_FLOW_THRESHOLD` (0.1) is the authors' later rule.

    Returns:
        The score as a Python float.
    """
    return av_align_score(audio_peaks(wave, sr), video_peaks(flow_trajectory(frames), fps, flow_threshold), fps,
                          tolerance_frames)
