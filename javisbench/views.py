"""Views: pure functions from decoded arrays to the inputs each encoder expects.

Every protocol quirk that lives in preprocessing lives here, named where it is reproduced
(see spec/official-javisbench.md).  No file I/O.  Frames are ``(T, H, W, 3)`` uint8 RGB as
:func:`javisbench.decode.decode_sample` returns them; audio is ``(C, L)`` float32.

torch is imported inside the functions that must reproduce torchvision/torchaudio arithmetic
(letterbox resize, sinc resampling); everything else is numpy.
"""
from __future__ import annotations

import math
from fractions import Fraction
from typing import Any, Literal

import numpy as np

__all__ = [
    "linspace_indices", "sample_frames", "letterbox", "fvd_video", "resize_short_crop_pil",
    "to_bgr", "normalize_clip", "CLIP_MEAN", "CLIP_STD", "pad_frames", "fps_indices", "video_at_fps",
    "mono", "channel0", "resample", "fixed_length", "librosa_load_like",
]

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

ResampleKind = Literal["kaiser_best", "soxr_hq", "sinc_hann"]
EofMode = Literal["last_pts", "end"]


# ------------------------------------------------------------------------------------------------
# validation
# ------------------------------------------------------------------------------------------------
def _check_frames(frames: Any, name: str = "frames") -> np.ndarray:
    if not isinstance(frames, np.ndarray):
        raise ValueError(f"{name}: expected a numpy array (T, H, W, 3) uint8, got {type(frames).__name__}")
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"{name}: expected shape (T, H, W, 3), got {frames.shape}")
    if frames.dtype != np.uint8:
        raise ValueError(f"{name}: expected dtype uint8, got {frames.dtype}")
    if frames.shape[0] < 1 or frames.shape[1] < 1 or frames.shape[2] < 1:
        raise ValueError(f"{name}: expected at least one non-empty frame, got shape {frames.shape}")
    return frames


def _check_audio(x: Any, name: str = "audio", ndim: tuple[int, ...] = (2,)) -> np.ndarray:
    if not isinstance(x, np.ndarray):
        raise ValueError(f"{name}: expected a numpy float array, got {type(x).__name__}")
    if x.ndim not in ndim:
        shape = " or ".join({1: "(L,)", 2: "(C, L)"}.get(n, f"{n}-D") for n in ndim)
        raise ValueError(f"{name}: expected shape {shape}, got {x.shape}")
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"{name}: expected a floating dtype, got {x.dtype}")
    if x.shape[-1] < 1 or (x.ndim == 2 and x.shape[0] < 1):
        raise ValueError(f"{name}: expected at least one channel and one sample, got shape {x.shape}")
    return x


def _positive_int(v: Any, name: str) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
        raise ValueError(f"{name}: expected a positive integer, got {v!r}")
    return int(v)


# ------------------------------------------------------------------------------------------------
# frame sampling
# ------------------------------------------------------------------------------------------------
def linspace_indices(count: int, num: int) -> np.ndarray:
    """Frame indices ``round(linspace(0, count-1, num))`` as the official cv2 reader computes them.

    The linspace is float32 with torch's evaluation order (``start + i*step`` for the first half,
    ``end - (num-1-i)*step`` for the second, ``step = (end-start)/(num-1)`` in float32) and the
    rounding is half-to-even.  Indices repeat when ``num > count``.  Returns (num,) int64.

    Example:
        >>> linspace_indices(96, 16).tolist()
        [0, 6, 13, 19, 25, 32, 38, 44, 51, 57, 63, 70, 76, 82, 89, 95]
        >>> linspace_indices(4, 3).tolist()  # 1.5 rounds to even
        [0, 2, 3]
    """
    count = _positive_int(count, "count")
    num = _positive_int(num, "num")
    start = np.float32(0.0)
    end = np.float32(count - 1)
    if num == 1:
        vals = np.array([start], np.float32)
    else:
        step = np.float32(end - start) / np.float32(num - 1)
        i = np.arange(num)
        half = num // 2
        head = start + step * i[:half].astype(np.float32)
        tail = end - step * (num - 1 - i[half:]).astype(np.float32)
        vals = np.concatenate([head, tail]).astype(np.float32)
    return np.round(vals).astype(np.int64)


def sample_frames(frames: np.ndarray, num: int) -> np.ndarray:
    """``frames[linspace_indices(T, num)]``: (num, H, W, 3)."""
    frames = _check_frames(frames)
    return frames[linspace_indices(frames.shape[0], num)]


def pad_frames(frames: np.ndarray, n: int) -> np.ndarray:
    """Right-pad with black (zero) frames to ``n`` frames; longer inputs are returned unchanged.

    The official DeSync reader pads clips shorter than ``int(25*L)`` frames this way.
    """
    frames = _check_frames(frames)
    n = _positive_int(n, "n")
    if frames.shape[0] >= n:
        return frames
    pad = np.zeros((n - frames.shape[0],) + frames.shape[1:], frames.dtype)
    return np.concatenate([frames, pad], axis=0)


def _as_fraction(v: Any, name: str) -> Fraction:
    if isinstance(v, Fraction):
        f = v
    elif isinstance(v, (int, np.integer)):
        f = Fraction(int(v))
    elif isinstance(v, (float, np.floating)) and np.isfinite(v):
        # 29.97002997... -> 30000/1001: frame rates are small rationals
        f = Fraction(float(v)).limit_denominator(1_000_000)
    else:
        raise ValueError(f"{name}: expected a positive finite number, got {v!r}")
    if f <= 0:
        raise ValueError(f"{name}: expected a positive number, got {v!r}")
    return f


def _round_near_inf(x: Fraction) -> int:
    """FFmpeg AV_ROUND_NEAR_INF: round half away from zero, exact on rationals."""
    fl = math.floor(x)
    frac = x - fl
    if frac > Fraction(1, 2) or (frac == Fraction(1, 2) and x > 0):
        return fl + 1
    if frac == Fraction(1, 2) and x < 0:
        return fl
    return fl


def fps_indices(
    n_frames: int,
    fps_in: float | Fraction,
    fps_out: float | Fraction,
    *,
    pts: np.ndarray | None = None,
    time_base: Fraction | None = None,
    eof: EofMode = "last_pts",
) -> np.ndarray:
    """Input-frame index of every output frame of FFmpeg's ``fps=fps_out`` filter (round=near).

    Input frame i has timestamp ``t_i`` (``pts[i]*time_base``, or ``i/fps_in`` when ``pts`` is
    None).  In the output time base ``1/fps_out`` it lands at ``p_i = round_near_inf(t_i*fps_out)``.
    Output frames are numbered ``j = p_0 .. eof_pts-1`` and output j shows the last input frame with
    ``p_i <= j`` (frames are dropped or duplicated accordingly).  ``eof`` sets where the stream ends:

    * ``"last_pts"``: at the last frame's timestamp, as torio's StreamingMediaDecoder (FFmpeg 5.1)
      closes its graph; 96 frames at 24 fps give 99 frames at 25 fps (official DeSync reader);
    * ``"end"``: at the last frame's end (``t_last + 1/fps_in``), as FFmpeg >= 6 ``buffersrc``/PyAV
      do; 96 frames at 24 fps give 100.

    Returns (N_out,) int64.

    Example:
        >>> len(fps_indices(96, 24, 25)), len(fps_indices(96, 24, 25, eof="end"))
        (99, 100)
        >>> fps_indices(30, 30, 4, eof="end").tolist()
        [3, 11, 18, 26]
    """
    n_frames = _positive_int(n_frames, "n_frames")
    fin = _as_fraction(fps_in, "fps_in")
    fout = _as_fraction(fps_out, "fps_out")
    if eof not in ("last_pts", "end"):
        raise ValueError(f"eof: expected 'last_pts' or 'end', got {eof!r}")
    if pts is None:
        times = [Fraction(i) / fin for i in range(n_frames)]
    else:
        if time_base is None:
            raise ValueError("time_base: required when pts is given")
        pts = np.asarray(pts)
        if pts.shape != (n_frames,):
            raise ValueError(f"pts: expected shape ({n_frames},), got {pts.shape}")
        tb = _as_fraction(time_base, "time_base")
        times = [int(p) * tb for p in pts]
    p = np.array([_round_near_inf(t * fout) for t in times], np.int64)
    end_t = times[-1] + (Fraction(1) / fin if eof == "end" else Fraction(0))
    eof_pts = _round_near_inf(end_t * fout)
    out = np.arange(p[0], max(eof_pts, p[0] + 1), dtype=np.int64)  # at least one output frame
    # last input frame whose output timestamp is <= j (ties: the later frame wins)
    idx = np.searchsorted(p, out, side="right") - 1
    return np.clip(idx, 0, n_frames - 1).astype(np.int64)


def video_at_fps(
    frames: np.ndarray,
    fps_in: float | Fraction,
    fps_out: float | Fraction,
    *,
    pts: np.ndarray | None = None,
    time_base: Fraction | None = None,
    eof: EofMode = "last_pts",
) -> tuple[np.ndarray, np.ndarray]:
    """Frames as FFmpeg's ``fps`` filter outputs them: ``(frames[idx], idx)``; see :func:`fps_indices`."""
    frames = _check_frames(frames)
    idx = fps_indices(frames.shape[0], fps_in, fps_out, pts=pts, time_base=time_base, eof=eof)
    return frames[idx], idx


# ------------------------------------------------------------------------------------------------
# image transforms
# ------------------------------------------------------------------------------------------------
def to_bgr(frames: np.ndarray) -> np.ndarray:
    """Reverse the channel axis (RGB <-> BGR), contiguous copy.  The official CLIP path sees BGR."""
    frames = _check_frames(frames)
    return np.ascontiguousarray(frames[..., ::-1])


def normalize_clip(frames: np.ndarray) -> np.ndarray:
    """ToTensor + CLIP Normalize: ``(u8/255 - mean)/std`` in float32, (T, H, W, 3) -> (T, 3, H, W)."""
    frames = _check_frames(frames)
    x = frames.astype(np.float32) / np.float32(255.0)
    mean = np.asarray(CLIP_MEAN, np.float32)
    std = np.asarray(CLIP_STD, np.float32)
    x = (x - mean) / std
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def letterbox(frames: np.ndarray, size: int = 224) -> np.ndarray:
    """ToTensor -> torchvision Resize (bilinear, antialias) -> symmetric zero pad: (T, 3, size, size) float32.

    The longer side becomes ``size`` and the shorter ``int(size*short/long)``; the padding is
    ``(size-new)//2`` before and the rest after, on the short axis (the official ResizeAndPad).
    """
    import torch
    import torch.nn.functional as F

    frames = _check_frames(frames)
    size = _positive_int(size, "size")
    t, h, w, _ = frames.shape
    if h >= w:
        new_h, new_w = size, int(size * w / h)
    else:
        new_h, new_w = int(size * h / w), size
    if new_h < 1 or new_w < 1:
        raise ValueError(f"frames: aspect ratio too extreme for a {size} letterbox (got {h}x{w})")
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).to(torch.float32).div(255)
    if (new_h, new_w) != (h, w):
        with torch.inference_mode():
            x = F.interpolate(x, size=(new_h, new_w), mode="bilinear", align_corners=False, antialias=True)
    out = np.zeros((t, 3, size, size), np.float32)
    top = (size - new_h) // 2
    left = (size - new_w) // 2
    out[:, :, top:top + new_h, left:left + new_w] = x.numpy()
    return out


def fvd_video(frames: np.ndarray, num_frames: int = 16, size: int = 224, remap_127: bool = True) -> np.ndarray:
    """The FVD dataset video: linspace frames, letterbox, then uint8: (num_frames, 3, size, size).

    ``remap_127`` (official quirk 8a.1): ``uint8(clamp((x+1)*127.5, 0, 255))`` with a truncating
    cast on frames already in [0,1], so values land in [127, 255] and the pad becomes 127.
    Without it: ``round(x*255)``.
    """
    x = letterbox(sample_frames(frames, num_frames), size)
    if remap_127:
        return np.clip((x + np.float32(1.0)) * np.float32(127.5), 0, 255).astype(np.uint8)
    return np.clip(np.round(x * np.float32(255.0)), 0, 255).astype(np.uint8)


_PIL_RESAMPLE = {"bicubic": 3, "bilinear": 2}  # PIL.Image.Resampling.BICUBIC / BILINEAR


def resize_short_crop_pil(
    frames: np.ndarray, size: int = 224, resample: Literal["bicubic", "bilinear"] = "bicubic",
) -> np.ndarray:
    """torchvision ``Resize(size)`` + ``CenterCrop(size)`` on PIL images: (T, size, size, 3) uint8.

    The short side becomes ``size`` and the long side ``int(size*long/short)`` (no resize when
    the short side already equals ``size``); PIL resampling (antialiased); crop offsets
    ``int(round((H-size)/2))`` with Python's half-to-even ``round``.  This is CLIP's image
    transform and the per-frame transform of AVH/JavisScore; the channel order is kept as given.
    """
    from PIL import Image

    frames = _check_frames(frames)
    size = _positive_int(size, "size")
    if resample not in _PIL_RESAMPLE:
        raise ValueError(f"resample: expected one of {sorted(_PIL_RESAMPLE)}, got {resample!r}")
    _, h, w, _ = frames.shape
    if w <= h:
        new_w, new_h = size, int(size * h / w)
    else:
        new_w, new_h = int(size * w / h), size
    top = int(round((new_h - size) / 2.0))
    left = int(round((new_w - size) / 2.0))
    out = np.empty((frames.shape[0], size, size, 3), np.uint8)
    for k, frame in enumerate(frames):
        img = Image.fromarray(frame)
        if (new_h, new_w) != (h, w):
            img = img.resize((new_w, new_h), _PIL_RESAMPLE[resample])
        out[k] = np.asarray(img)[top:top + size, left:left + size]
    return out


# ------------------------------------------------------------------------------------------------
# audio
# ------------------------------------------------------------------------------------------------
def mono(audio: np.ndarray) -> np.ndarray:
    """Channel mean (librosa ``to_mono`` / torchaudio ``mean(0)``): (C, L) -> (L,) float32.

    Example:
        >>> mono(np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)).tolist()
        [0.5, 0.5]
    """
    audio = _check_audio(audio)
    return np.mean(audio.astype(np.float32, copy=False), axis=0, dtype=np.float32)


def channel0(audio: np.ndarray) -> np.ndarray:
    """First (left) channel, as kaldi ``fbank(channel=-1)`` reads it: (C, L) -> (L,)."""
    audio = _check_audio(audio)
    return np.ascontiguousarray(audio[0], dtype=np.float32)


def fixed_length(x: np.ndarray, n: int) -> np.ndarray:
    """Truncate or right zero-pad the last axis to ``n`` samples.

    Example:
        >>> fixed_length(np.ones(3, np.float32), 5).tolist()
        [1.0, 1.0, 1.0, 0.0, 0.0]
    """
    x = _check_audio(x, "x", ndim=(1, 2))
    n = _positive_int(n, "n")
    if x.shape[-1] >= n:
        return x[..., :n].copy()
    pad = [(0, 0)] * (x.ndim - 1) + [(0, n - x.shape[-1])]
    return np.pad(x, pad)


def _sinc_hann_kernel(orig: int, new: int, lowpass_filter_width: int, rolloff: float, dtype: Any) -> tuple[Any, int]:
    """torchaudio's windowed-sinc polyphase kernel, (new, 1, 2*width+orig), in ``dtype``.

    For output phase j and tap k: ``t = (k - width)/orig - j/new``, scaled by
    ``base = min(orig, new)*rolloff`` and clamped to ``+-w``; kernel
    ``sinc(pi*t) * cos(pi*t/(2w))**2 * base/orig``.
    """
    import torch

    base_freq = min(orig, new) * rolloff
    width = math.ceil(lowpass_filter_width * orig / base_freq)
    idx = torch.arange(-width, width + orig, dtype=dtype)[None, None] / orig
    t = torch.arange(0, -new, -1, dtype=dtype)[:, None, None] / new + idx
    t *= base_freq
    t = t.clamp_(-lowpass_filter_width, lowpass_filter_width)
    window = torch.cos(t * math.pi / lowpass_filter_width / 2) ** 2
    t *= math.pi
    scale = base_freq / orig
    kernels = torch.where(t == 0, torch.tensor(1.0).to(t), t.sin() / t)
    kernels *= window * scale
    return kernels, width


def _resample_sinc_hann(x: np.ndarray, sr_in: int, sr_out: int, lowpass_filter_width: int = 6, rolloff: float = 0.99) -> np.ndarray:
    """``torchaudio.functional.resample`` defaults (sinc_interp_hann, width 6, rolloff 0.99), on (..., L)."""
    import torch
    import torch.nn.functional as F

    g = math.gcd(sr_in, sr_out)
    orig, new = sr_in // g, sr_out // g
    wav = torch.from_numpy(np.ascontiguousarray(x))
    kernel, width = _sinc_hann_kernel(orig, new, lowpass_filter_width, rolloff, wav.dtype)
    shape = wav.shape
    flat = wav.reshape(-1, shape[-1])
    length = flat.shape[-1]
    with torch.inference_mode():
        padded = F.pad(flat, (width, width + orig))
        y = F.conv1d(padded[:, None], kernel, stride=orig)
        y = y.transpose(1, 2).reshape(flat.shape[0], -1)
    # float32 ceil like torchaudio's torch.as_tensor(python float)
    target = int(torch.ceil(torch.as_tensor(new * length / orig)).long())
    y = y[..., :target]
    return y.reshape(shape[:-1] + (y.shape[-1],)).numpy()


def resample(x: np.ndarray, sr_in: int, sr_out: int, kind: ResampleKind) -> np.ndarray:
    """Resample the last axis of (L,) or (C, L) audio from ``sr_in`` to ``sr_out`` Hz, float32 out.

    * ``"kaiser_best"``: librosa 0.9.2's default (resampy ``kaiser_best``), then ``fix_length`` to
      ``ceil(L*sr_out/sr_in)``;
    * ``"soxr_hq"``: librosa >= 0.10's default (``soxr.resample(quality="soxr_hq")``), same length fix;
    * ``"sinc_hann"``: ``torchaudio.functional.resample`` defaults (Hann-windowed sinc, 6 zero
      crossings, rolloff 0.99), length ``ceil(L*new/orig)``; used by the ImageBind, JavisScore,
      DeSync and Audiobox readers.

    Equal rates return a float32 copy.
    """
    x = _check_audio(x, "x", ndim=(1, 2))
    sr_in = _positive_int(sr_in, "sr_in")
    sr_out = _positive_int(sr_out, "sr_out")
    x = x.astype(np.float32, copy=False)
    if sr_in == sr_out:
        return x.copy()
    if kind == "sinc_hann":
        return _resample_sinc_hann(x, sr_in, sr_out).astype(np.float32, copy=False)
    n_out = int(np.ceil(x.shape[-1] * (float(sr_out) / sr_in)))
    if kind == "kaiser_best":
        import resampy

        y = resampy.resample(x, sr_in, sr_out, filter="kaiser_best", axis=-1)
    elif kind == "soxr_hq":
        import soxr

        rows = x.reshape(-1, x.shape[-1])
        outs = [soxr.resample(r, sr_in, sr_out, quality="soxr_hq") for r in rows]
        y = np.stack(outs).reshape(x.shape[:-1] + (outs[0].shape[-1],))
    else:
        raise ValueError(f"kind: expected 'kaiser_best', 'soxr_hq' or 'sinc_hann', got {kind!r}")
    if y.shape[-1] != n_out:  # librosa fix_length: truncate or zero-pad
        if y.shape[-1] > n_out:
            y = y[..., :n_out]
        else:
            y = np.pad(y, [(0, 0)] * (y.ndim - 1) + [(0, n_out - y.shape[-1])])
    return np.ascontiguousarray(y, dtype=np.float32)


def librosa_load_like(
    audio: np.ndarray,
    sr: int,
    target_sr: int,
    resample_kind: ResampleKind = "kaiser_best",
    max_len_s: float | None = None,
    pad: bool = True,
) -> np.ndarray:
    """What the official librosa reader returns: (1, L') float32.

    Channel mean, resample to ``target_sr``, then with ``max_len_s``: truncate to
    ``int(max_len_s*target_sr)`` samples and (``pad``) right zero-pad to that length.
    """
    y = resample(mono(audio), sr, target_sr, resample_kind)
    if max_len_s is not None:
        if not (max_len_s > 0):
            raise ValueError(f"max_len_s: expected a positive number of seconds, got {max_len_s!r}")
        n = int(max_len_s * target_sr)
        y = y[:n]
        if pad and y.shape[0] < n:
            y = np.pad(y, (0, n - y.shape[0]))
    return y[None, :].astype(np.float32, copy=False)


# ---------------------------------------------------------------------------------------------
# the MM-Diffusion loader (FVD/KVD/FAD under fvd_mode="mmdiffusion")
# ---------------------------------------------------------------------------------------------
def videoclips_resample(n_frames: int, fps: float, target_fps: float) -> np.ndarray:
    """Native frame indices kept when torchvision's ``VideoClips`` resamples a video to ``target_fps``.

    ``total = floor(n_frames * target/fps)``; with ``step = fps/target`` an integer the indices are
    ``0, step, 2*step, ...`` (a slice over all ``n_frames``), otherwise
    ``floor(float32(i) * float32(step))`` for ``i < total``.
    """
    n_frames = _positive_int(n_frames, "n_frames")
    if not (fps > 0 and target_fps > 0):
        raise ValueError(f"fps: expected positive frame rates, got fps={fps!r}, target_fps={target_fps!r}")
    step = float(fps) / float(target_fps)
    if step.is_integer():
        return np.arange(0, n_frames, int(step), dtype=np.int64)
    total = int(math.floor(n_frames * (float(target_fps) / float(fps))))
    return np.floor(np.arange(total, dtype=np.float32) * np.float32(step)).astype(np.int64)


def mmdiff_window(n_frames: int, fps: float, target_fps: float, clip_s: float) -> np.ndarray:
    """Native indices of the first ``int(target_fps*clip_s)``-frame clip of a resampled video.

    ``VideoClips`` (one-frame stride) yields no clip at all for a video with fewer resampled frames,
    so such a video never reaches the original's statistics: here it is an error for that sample.

    MM-Diffusion's loader enumerates *every* window of a clip at a one-frame stride and shuffles
    them without a seed (:func:`mmdiff_all_windows`; protocol ``mmdiffusion``, seeded here).  The
    ``javisbench-mmdiffusion`` protocol scores this first window of each clip: one feature row per
    clip, paired with the reference row of the same index like every other JavisBench metric.  For
    a clip exactly one window long (MM-Diffusion's 16 frames at 10 fps) the two are the same set.
    """
    length = int(target_fps * clip_s)
    if length < 1:
        raise ValueError(f"clip_s: {clip_s!r} s at {target_fps!r} fps is less than one frame")
    idx = videoclips_resample(n_frames, fps, target_fps)
    if idx.size < length:
        raise ValueError(
            f"too short for a {clip_s:g} s window: {n_frames} frames at {fps:g} fps give {idx.size} frames at "
            f"{target_fps:g} fps, the loader needs {length} (the original loader drops such a video)"
        )
    return idx[:length]


def mmdiff_all_windows(n_frames: int, fps: float, target_fps: float, clip_s: float) -> np.ndarray:
    """Native indices of every clip ``VideoClips`` cuts at a one-frame stride: (W, L) int64.

    ``L = int(target_fps*clip_s)``; window ``w`` is resampled frames ``w .. w+L-1``.
    """
    first = mmdiff_window(n_frames, fps, target_fps, clip_s)        # checks the length
    idx = videoclips_resample(n_frames, fps, target_fps)
    return np.lib.stride_tricks.sliding_window_view(idx, first.size).copy()


def letterbox_bicubic_u8(frames: np.ndarray, size: int) -> np.ndarray:
    """MM-Diffusion's ``process_video`` on uint8 frames: (T, 3, size, size) uint8.

    ``ratio = min(size/h, size/w)``, new sides ``int(side*ratio)``; torchvision ``Resize`` (bicubic,
    antialias, on the uint8 tensor: float maths, rounded and clamped back to uint8) when the size
    changes; zero padding ``(size-new)//2`` before and the rest after.
    """
    import torch
    import torch.nn.functional as F

    frames = _check_frames(frames)
    if frames.dtype != np.uint8:
        raise ValueError(f"frames: expected uint8, got {frames.dtype}")
    size = _positive_int(size, "size")
    t, h, w, _ = frames.shape
    ratio = min(float(size) / h, float(size) / w)
    new_h, new_w = int(h * ratio), int(w * ratio)
    if new_h < 1 or new_w < 1:
        raise ValueError(f"frames: aspect ratio too extreme for a {size} letterbox (got {h}x{w})")
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)
    if (new_h, new_w) != (h, w):
        with torch.inference_mode():
            y = F.interpolate(x.to(torch.float32), size=(new_h, new_w), mode="bicubic", align_corners=False,
                              antialias=True)
            x = y.round_().clamp_(0, 255).to(torch.uint8)
    out = np.zeros((t, 3, size, size), np.uint8)
    top, left = (size - new_h) // 2, (size - new_w) // 2
    out[:, :, top:top + new_h, left:left + new_w] = x.numpy()
    return out


def unit_roundtrip_u8(x: np.ndarray) -> np.ndarray:
    """The loader's ``u8/127.5 - 1`` followed by the evaluator's ``uint8(clamp((y+1)*127.5))`` in float32.

    The cast truncates, so a value whose round trip lands a hair below the integer loses 1.
    """
    y = np.asarray(x, np.uint8).astype(np.float32) / np.float32(127.5) - np.float32(1.0)
    return np.clip((y + np.float32(1.0)) * np.float32(127.5), 0, 255).astype(np.uint8)


def mmdiff_video(frames: np.ndarray, fps: float, target_fps: float, clip_s: float, size: int) -> tuple[np.ndarray, float]:
    """The I3D input of the MM-Diffusion loader and the end time (s) of its window.

    Returns ``(uint8 (L, 3, size, size), end_s)`` with ``end_s = (last native index + 1) / fps``:
    the loader cuts the audio to the same span.
    """
    frames = _check_frames(frames)
    idx = mmdiff_window(frames.shape[0], fps, target_fps, clip_s)
    video = unit_roundtrip_u8(letterbox_bicubic_u8(frames[idx], size))
    return video, float((int(idx[-1]) + 1) / float(fps))


_LAYOUTS = {1: "mono", 2: "stereo"}


def swr_s16(audio: np.ndarray, sr: int, target_sr: int) -> np.ndarray:
    """What ffmpeg hands moviepy for ``-ar target_sr -ac 2 -f s16le``, as floats: (2, M) float32.

    Resampling, up/down-mixing (mono reaches both channels at -3 dB) and the 16-bit conversion
    are done by libswresample itself (PyAV's ``AudioResampler``, default options); values are
    ``int16 / 32768`` as moviepy's ``to_soundarray`` returns them.
    """
    import av

    audio = _check_audio(audio)
    c = audio.shape[0]
    layout = _LAYOUTS.get(c) or av.AudioLayout(c).name
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(audio, np.float32), format="fltp", layout=layout)
    frame.sample_rate = int(sr)
    resampler = av.AudioResampler(format="s16", layout="stereo", rate=int(target_sr))
    chunks = resampler.resample(frame) + resampler.resample(None)
    if not chunks:
        return np.zeros((2, 0), np.float32)
    inter = np.concatenate([ch.to_ndarray().reshape(-1) for ch in chunks])
    return np.ascontiguousarray(inter.reshape(-1, 2).T.astype(np.float32) / np.float32(32768.0))


#: moviepy 1.0.3's ``to_soundarray`` buffer: longer clips are read in chunks
MOVIEPY_BUFFERSIZE = 50000


def moviepy_sample_count(end_s: float, sr: int) -> int:
    """Samples in moviepy's ``subclip(0, end_s).to_soundarray(fps=sr)`` (moviepy 1.0.3).

    Up to ``50000 / sr`` seconds it evaluates ``arange(0, end_s, 1/sr)`` in one go (so
    ``ceil(end_s*sr)`` samples); a longer clip goes through ``iter_chunks``, which yields
    ``int(sr*end_s)`` samples.  The sample at time ``t`` is ``round(sr*t)``: samples 0, 1, ...
    """
    sr = int(sr)
    if float(end_s) > MOVIEPY_BUFFERSIZE / sr:
        return int(sr * float(end_s))
    return int(np.arange(0, float(end_s), 1.0 / sr).size)


def moviepy_sample_indices(start_s: float, end_s: float, sr: int) -> np.ndarray:
    """Sample indices moviepy reads for ``subclip(start_s, end_s).to_soundarray(fps=sr)``:
    ``round(sr * (start_s + k/sr))`` for ``k < moviepy_sample_count(end_s - start_s, sr)``."""
    n = moviepy_sample_count(float(end_s) - float(start_s), sr)
    tt = np.arange(n) * (1.0 / int(sr)) + float(start_s)
    return np.round(int(sr) * tt).astype(np.int64)


def mmdiff_audio(audio: np.ndarray, sr: int, target_sr: int, end_s: float, clip_s: float,
                 start_s: float = 0.0, reader: np.ndarray | None = None) -> np.ndarray:
    """The loader's audio for the window ``[start_s, end_s)``: (int(target_sr*clip_s),) float32.

    ffmpeg/moviepy read (:func:`swr_s16`, channel 0; pass it as ``reader`` to reuse it across
    windows), the window's samples (indices past the end read as 0, as moviepy's reader returns
    them), then zero padding (or truncation) to ``int(target_sr*clip_s)`` samples.
    """
    n_out = int(target_sr * clip_s)
    x = swr_s16(audio, sr, target_sr)[0] if reader is None else reader
    idx = moviepy_sample_indices(start_s, end_s, target_sr)[:n_out]
    out = np.zeros(n_out, np.float32)
    ok = (idx >= 0) & (idx < x.shape[0])
    out[:idx.size][ok] = x[idx[ok]]
    return out
