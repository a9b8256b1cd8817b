"""AVHScore and JavisScore: frame-audio agreement in a joint (ImageBind) embedding space.

* AVHScore (``avh_score``): ``mean_t cos(E_v[t], e_a)`` over every frame embedding ``E_v`` and the
  whole-clip audio embedding ``e_a``.
* JavisScore (``javis_score``): the clip is cut into 2 s windows (0.5 s hop); in each window m the
  per-frame cosines ``c_{m,j} = cos(E_v[frame j of window m], e_a^(m))`` against that window's audio
  embedding are computed, the ``k`` smallest are averaged (``sigma_m``), and the score is
  ``mean_m sigma_m``.  ``k = int(N * 0.4)`` for N frames per window.

``javis_windows`` enumerates the windows: the original rule (with its video/audio drift when
``fps * (w - o)`` is not an integer) or an aligned rule for the fixed protocol.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from metrics.similarity import cosine, mean_cosine_to


def avh_score(frame_emb: np.ndarray, audio_emb: np.ndarray, eps: float = 1e-6) -> float:
    """AVHScore of one clip: ``mean_t cos(frame_emb[t], audio_emb)`` (torch cosine eps semantics).

    Args:
        frame_emb: (T, D) per-frame embeddings.
        audio_emb: (D,) or (1, D) whole-clip audio embedding.
        eps: cosine norm clamp (the original uses 1e-6).

    Returns:
        The score as a Python float.

    Raises:
        ValueError: shape mismatch or no frames.

    Example:
        >>> avh_score(np.array([[1.0, 0.0], [1.0, 1.0]]), np.array([[1.0, 0.0]]))  # doctest: +ELLIPSIS
        0.853553390593...
    """
    return mean_cosine_to(frame_emb, audio_emb, eps=eps)


@dataclass(frozen=True)
class JavisWindows:
    """The JavisScore windows of one clip: M video windows and M audio windows, paired by index.

    Attributes:
        video_starts: first frame index of each window (length M).
        video_len: frames per window, N (the same for every window).
        audio_starts: first sample index of each window at the analysis rate (length M).
        audio_len: samples per window (the same for every window).
    """

    video_starts: list[int]
    video_len: int
    audio_starts: list[int]
    audio_len: int

    @property
    def n_windows(self) -> int:
        """M, the number of windows."""
        return len(self.video_starts)

    def frame_index(self) -> np.ndarray:
        """(M, N) int64 frame indices: row m is ``video_starts[m] + arange(N)``."""
        return np.asarray(self.video_starts, np.int64)[:, None] + np.arange(self.video_len, dtype=np.int64)[None, :]

    def audio_bounds(self) -> list[tuple[int, int]]:
        """``[(start, end), ...]`` sample ranges of the audio windows (end exclusive)."""
        return [(s, s + self.audio_len) for s in self.audio_starts]


def _official_starts(n: int, size: int, step: int) -> list[int]:
    """Starts 0, step, 2 step, ... each clamped to ``n - size``; stop after the first window reaching ``n``."""
    starts = []
    for s in range(0, n, step):
        s = min(s, n - size)
        starts.append(s)
        if s + size >= n:
            break
    return starts


def _round_half_up(x: float) -> int:
    return int(math.floor(x + 0.5))


def javis_windows(
    n_frames: int,
    n_samples: int,
    fps: float,
    sr: int = 16000,
    window_s: float = 2.0,
    overlap_s: float = 1.5,
    aligned: bool = False,
) -> JavisWindows:
    """Enumerate the JavisScore windows of a clip.

    Official rule (``aligned=False``, the original ``segment_clip_transform``), per stream:
    ``W = int(w * rate)``, ``O = int(o * rate)``, starts ``0, W-O, 2(W-O), ...``, each clamped to
    ``n - W``, stopping after the first window whose end reaches ``n``; then the first
    ``M = min(M_video, M_audio)`` windows of each are kept.  At 25 fps the video step is
    ``int(50) - int(37.5) = 13`` frames (0.52 s) against an exact 0.5 s audio step: the windows
    drift apart (quirk 8a-10).

    Aligned rule (``aligned=True``, the fixed protocol): windows are placed in *time* on the
    common duration ``D = min(n_frames / fps, n_samples / sr)`` at ``t_m = m (w - o)``, each
    clamped to ``D - w``, stopping after the first window reaching ``D``.  Audio windows are
    ``round(w sr)`` samples from ``round(t_m sr)``; video windows are ``round(w fps)`` frames from
    ``round(t_m fps)`` (rounding half up, both clamped to the stream's last full window), so both
    streams of window m cover the same seconds to within half a frame, at any frame rate.  When
    ``fps (w - o)`` is an integer (24, 30 fps) the result equals the official rule.

    Both rules: when ``n_frames <= W_video`` or ``n_samples <= W_audio`` (a clip no longer than one
    window) there is a single window covering the whole video and the whole audio.

    Args:
        n_frames: decoded video frames (>= 1).
        n_samples: audio samples at ``sr`` (>= 1), i.e. after resampling to the analysis rate.
        fps: video frame rate (> 0).
        sr: audio analysis rate (16 kHz for ImageBind).
        window_s: window length w in seconds.
        overlap_s: overlap o in seconds (hop = w - o).
        aligned: use the aligned rule instead of the official one.

    Returns:
        A :class:`JavisWindows`.

    Raises:
        ValueError: non-positive sizes, or a window hop that is not positive.

    Example:
        >>> w = javis_windows(96, 64000, 24.0)
        >>> w.video_starts, w.video_len, w.audio_starts
        ([0, 12, 24, 36, 48], 48, [0, 8000, 16000, 24000, 32000])
        >>> javis_windows(100, 64000, 25.0).video_starts  # the official drift: 13-frame steps
        [0, 13, 26, 39, 50]
        >>> javis_windows(100, 64000, 25.0, aligned=True).video_starts
        [0, 13, 25, 38, 50]
    """
    n_frames, n_samples, sr = int(n_frames), int(n_samples), int(sr)
    if n_frames < 1 or n_samples < 1:
        raise ValueError(f"JavisScore windows need at least one frame and one sample, got n_frames={n_frames}, "
                         f"n_samples={n_samples}")
    if not (fps > 0 and sr > 0):
        raise ValueError(f"fps and sr must be positive, got fps={fps}, sr={sr}")
    if not (window_s > 0 and 0 <= overlap_s < window_s):
        raise ValueError(f"expected 0 <= overlap_s < window_s, got window_s={window_s}, overlap_s={overlap_s}")

    if not aligned:
        wv, ov = int(window_s * fps), int(overlap_s * fps)
        wa, oa = int(window_s * sr), int(overlap_s * sr)
    else:
        wv, wa = _round_half_up(window_s * fps), _round_half_up(window_s * sr)
    if n_frames <= wv or n_samples <= wa:
        return JavisWindows([0], n_frames, [0], n_samples)

    if not aligned:
        if wv - ov < 1 or wa - oa < 1:
            raise ValueError(f"window hop must be at least one frame and one sample: video {wv}-{ov}, audio {wa}-{oa} "
                             f"(fps={fps}, window_s={window_s}, overlap_s={overlap_s})")
        v = _official_starts(n_frames, wv, wv - ov)
        a = _official_starts(n_samples, wa, wa - oa)
        m = min(len(v), len(a))
        return JavisWindows(v[:m], wv, a[:m], wa)

    hop = window_s - overlap_s
    dur = min(n_frames / fps, n_samples / sr)
    times: list[float] = []
    m = 0
    while True:
        t = min(m * hop, dur - window_s)
        times.append(t)
        # A small tolerance so that a window ending exactly at D (up to float error) is the last.
        if t + window_s >= dur - 1e-9:
            break
        m += 1
    v = [min(_round_half_up(t * fps), n_frames - wv) for t in times]
    a = [min(_round_half_up(t * sr), n_samples - wa) for t in times]
    return JavisWindows([max(0, s) for s in v], wv, [max(0, s) for s in a], wa)


def javis_k(n: int, topk: float | int = 0.4, clamp_k: bool = False) -> int:
    """The number of lowest cosines averaged per window.

    ``k = topk`` when ``topk`` is an ``int``, else ``int(n * topk)`` (truncation), as in the
    original.  With ``clamp_k`` (fixed protocol) ``k = max(k, 1)``.

    Raises:
        ValueError: ``k == 0`` without ``clamp_k`` (the original averages an empty top-k and returns
            NaN, e.g. for windows of 1-2 frames at topk 0.4), or ``k > n``.

    Example:
        >>> javis_k(48), javis_k(50), javis_k(38), javis_k(2, clamp_k=True)
        (19, 20, 15, 1)
    """
    if isinstance(topk, (bool, np.bool_)):
        raise ValueError(f"topk must be a fraction (float) or a count (int), got {topk!r}")
    k = int(topk) if isinstance(topk, (int, np.integer)) else int(n * float(topk))
    if clamp_k:
        k = max(k, 1)
    if k < 1:
        raise ValueError(
            f"JavisScore bottom-k is empty: k = int({n} frames x {topk}) = {k}. The original returns NaN here "
            "(mean of an empty top-k); pass clamp_k=True (the fixed protocol) to use k = max(k, 1)."
        )
    if k > n:
        raise ValueError(f"JavisScore k={k} exceeds the {n} frames of a window")
    return k


def javis_score(
    frame_emb: np.ndarray,
    window_audio_emb: np.ndarray,
    window_frame_idx: np.ndarray,
    topk: float | int = 0.4,
    clamp_k: bool = False,
    eps: float = 1e-6,
) -> float:
    """JavisScore of one clip: mean over windows of the mean of the k lowest frame-audio cosines.

    ``c[m, j] = cos(frame_emb[window_frame_idx[m, j]], window_audio_emb[m])``,
    ``sigma_m = mean(k smallest of c[m, :])``, ``score = mean_m sigma_m``, ``k`` from
    :func:`javis_k` with N = ``window_frame_idx.shape[1]``.

    Args:
        frame_emb: (T, D) per-frame embeddings (all frames of the clip).
        window_audio_emb: (M, D) one audio embedding per window.
        window_frame_idx: (M, N) integer frame indices of each window (e.g.
            :meth:`JavisWindows.frame_index`).
        topk: fraction of the window's frames (float), or a count (int).
        clamp_k: use ``max(k, 1)`` (fixed protocol) instead of raising on ``k == 0``.
        eps: cosine norm clamp.

    Returns:
        The score as a Python float.

    Raises:
        ValueError: shape mismatch, out-of-range indices, or an empty bottom-k (see :func:`javis_k`).

    Example:
        >>> f = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
        >>> javis_score(f, np.array([[1.0, 0.0]]), np.array([[0, 1, 2]]), topk=1)
        0.0
    """
    f = np.asarray(frame_emb)
    a = np.asarray(window_audio_emb)
    idx = np.asarray(window_frame_idx)
    if f.ndim != 2:
        raise ValueError(f"frame_emb must be (T, D), got shape {f.shape}")
    if a.ndim == 1:
        a = a[None, :]
    if a.ndim != 2 or a.shape[1] != f.shape[1]:
        raise ValueError(f"window_audio_emb must be (M, D) with D={f.shape[1]}, got shape {np.shape(window_audio_emb)}")
    if idx.ndim != 2 or idx.shape[0] != a.shape[0] or idx.shape[1] < 1:
        raise ValueError(f"window_frame_idx must be (M, N) with M={a.shape[0]} windows, got shape {idx.shape}")
    if not np.issubdtype(idx.dtype, np.integer):
        raise ValueError(f"window_frame_idx must hold integers, got dtype {idx.dtype}")
    if idx.size and (idx.min() < 0 or idx.max() >= f.shape[0]):
        raise ValueError(f"window_frame_idx holds frames {idx.min()}..{idx.max()} but the clip has {f.shape[0]} frames")
    n = idx.shape[1]
    k = javis_k(n, topk, clamp_k)
    cos = cosine(f[idx], a[:, None, :], eps=eps)                 # (M, N)
    bottom = np.partition(cos, k - 1, axis=1)[:, :k]             # (M, k), the k smallest, unordered
    return float(np.mean(np.mean(bottom, axis=1, dtype=np.float64)))
