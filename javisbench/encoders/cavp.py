"""Diff-Foley CAVP: per-frame video and spectrogram embeddings for ``cavp_score``.

The official ``calc_cavp_score`` (JavisBench ``src/metrics.py``, ``src/utils.py``, ``wav2spec.py``)
embeds a clip's first ``T`` whole seconds at 4 steps per second with the two towers of Diff-Foley's
CAVP and averages the per-step cosines.  The network is in :mod:`javisbench.encoders.cavp_net`;
this module reproduces the inputs, without subprocesses or temporary files.

Per sample (``prepare``)::

    T     = int(duration)                       # moviepy's duration: the container's, to 1/100 s
    audio = librosa_load(sr=16000)              # channel mean, resample (protocol.resample)
    y     = pad_or_truncate(audio, 16000 T)[: 16000 T - 1]        # the official drops one sample
    S     = |STFT(y)|   (n_fft 1024, hop 250, periodic Hann, centred, zero padding)
    M     = mel_slaney(128 bands, 125-7600 Hz) @ S                 # librosa.filters.mel
    spec  = clip((20 log10(max(M, 1e-5)) - 20 + 100) / 100, 0, 1)  # (128, 64 T)
    video = ffmpeg "-ss 0 -t T -filter:v fps=fps=4" frame selection  # views.video_at_fps
            -> [official] lossy libx264 round trip (crf 23, preset medium, yuv420p), decoded
               the way OpenCV decodes (BT.601, bicubic swscale)
            -> the first 4 T frames, each PIL-resized to 224x224 (bilinear, aspect ignored)

``encode`` (batched across samples)::

    video_feats = normalize(Linear(SlowOnly50(x / 255)))   # (4 T, 512), in 40-frame chunks
    spec_feats  = normalize(Cnn14(spec^T))                 # (4 T, 512)

and the metric is ``cavp_score = mean_t cos(video_feats[t], spec_feats[t])`` (:func:`cavp_score`).

Protocol choices (``protocol.cavp_reencode`` / ``protocol.cavp_chunk_borders``):

* official (quirk 8a.13): the frames go through the lossy x264 re-encode, and SlowOnly runs on
  non-overlapping 40-frame chunks, each zero-padded in time, so frames near a chunk border
  (clips over 10 s) lose their temporal context.  The original ran FFmpeg 5.1's x264 on the
  source's yuv420p frames with as many threads as the machine had; here PyAV's bundled x264 runs
  on one thread (deterministic) on the decoded RGB frames mapped back to yuv420p
  (:func:`rgb_to_yuv420p`), so the features match the original up to codec noise.  Measured on
  the golden fixture: ``cavp_score`` within 4.5e-5 of the original (README tolerance 5e-3 across
  x264 builds), video features within 2e-4.  The original's own output moves by as much with the
  machine: on a textured clip, x264 with 1 vs 2-8 threads differs by 3.7 grey levels on average,
  our round trip by 3.9 from the 1-thread original.
* fixed: no re-encode, and no chunk borders: each 40-frame chunk is encoded with
  ``TEMPORAL_RADIUS`` = 9 frames of real context on both sides (SlowOnly-50's whole temporal
  receptive field), which equals one forward over the whole clip while bounding memory.

Failures are raised as :class:`SampleError` (clip shorter than 1 s, fewer than ``4 T`` frames at
4 fps, odd frame size under the re-encode, non-finite audio); the original turns failures inside
its extraction into a 0.0 score (``protocol.cavp_failure_as_zero``, applied by the export, not here).
"""
from __future__ import annotations

from collections import defaultdict
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from javisbench.encoders.base import Encoder, Features, Prepared, SampleError
from javisbench.weights import BadWeightsError, WeightFile, sha256_of

if TYPE_CHECKING:  # pragma: no cover
    from javisbench.decode import DecodedClip
    from javisbench.encoders.cavp_net import CAVPNet

CAVP_WEIGHTS = WeightFile(
    name="cavp_epoch66.ckpt",
    url="https://huggingface.co/SimianLuo/Diff-Foley/resolve/main/diff_foley_ckpt/cavp_epoch66.ckpt",
    license="see source (Diff-Foley, luosiallen/Diff-Foley; the JavisBench port cites it as Apache-2.0)",
    note="Diff-Foley Stage-1 CAVP (SlowOnly-50 + Cnn14); a Lightning-style checkpoint whose "
    "'state_dict' keys may carry a 'module.' prefix",
)

FPS = 4                         # CAVP steps per second (video frames and spectrogram features)
CHUNK_FRAMES = 40               # the official encodes the video in chunks of 40 frames
IMAGE_SIZE = 224
AUDIO_SR = 16000
N_FFT = 1024
HOP = 250                       # 64 spectrogram frames per second; Cnn14 keeps 1 in 16 -> 4/s
N_MELS = 128
F_MIN, F_MAX = 125.0, 7600.0
MEL_FLOOR = 1e-5
X264_CRF = 23                   # FFmpeg's libx264 defaults when no quality option is given
X264_PRESET = "medium"


# ---------------------------------------------------------------------------------------------
# protocol switches
# ---------------------------------------------------------------------------------------------
def _protocol_flag(protocol: Any, name: str) -> bool:
    """A CAVP quirk switch of the protocol (``cavp_reencode`` / ``cavp_chunk_borders``)."""
    return bool(getattr(protocol, name))


# ---------------------------------------------------------------------------------------------
# preprocessing (pure functions)
# ---------------------------------------------------------------------------------------------
def clip_seconds(n_frames: int, fps: float) -> int:
    """``T = int(duration)`` as the official reads it from moviepy.

    moviepy parses FFmpeg's ``Duration: HH:MM:SS.cc`` line, which FFmpeg prints as
    ``floor((d_us + 5000) / 10^4)`` centiseconds; with ``d = n_frames / fps``:
    ``T = floor((round(d * 10^6) + 5000) / 10^6)``.

    Example:
        >>> clip_seconds(96, 24.0), clip_seconds(159, 30.0), clip_seconds(38, 24.0)
        (4, 5, 1)
        >>> clip_seconds(3996, 1000.0)  # 3.996 s prints as 00:00:04.00
        4
    """
    if n_frames < 1 or not (fps > 0):
        return 0
    d_us = int(round(n_frames / float(fps) * 1_000_000))
    return (d_us + 5000) // 1_000_000


def _hann_periodic(n: int) -> np.ndarray:
    from scipy.signal import get_window

    return get_window("hann", n, fftbins=True).astype(np.float64)


def stft_magnitude(y: np.ndarray, n_fft: int = N_FFT, hop: int = HOP) -> np.ndarray:
    """``|librosa.stft(y, n_fft, hop, window="hann", center=True, pad_mode="constant")|``.

    ``S[f, m] = |sum_n w[n] y_pad[m*hop + n] e^{-2 pi i f n / n_fft}|`` with ``y_pad`` = ``y``
    zero-padded by ``n_fft//2`` on both sides and ``w`` the periodic Hann window; the FFT runs in
    float64 and, as librosa 0.9 stores it, the complex result is rounded to complex64 for
    float32 input.  (L,) -> (n_fft//2 + 1, 1 + L//hop), float32 or float64 like ``y``.
    """
    pad = n_fft // 2
    y_pad = np.pad(y, (pad, pad))
    n = 1 + (y_pad.shape[0] - n_fft) // hop
    frames = np.lib.stride_tricks.as_strided(
        y_pad, shape=(n, n_fft), strides=(y_pad.strides[0] * hop, y_pad.strides[0]), writeable=False)
    spec = np.fft.rfft(frames.astype(np.float64) * _hann_periodic(n_fft), axis=-1).T    # (F, n)
    if y.dtype == np.float32:
        spec = spec.astype(np.complex64)
    return np.abs(spec)


_MEL_CACHE: dict[tuple, np.ndarray] = {}


def mel_basis() -> np.ndarray:
    """``librosa.filters.mel(sr=16000, n_fft=1024, n_mels=128, fmin=125, fmax=7600)``: (128, 513) float32, Slaney."""
    key = (AUDIO_SR, N_FFT, N_MELS, F_MIN, F_MAX)
    if key not in _MEL_CACHE:
        import librosa

        _MEL_CACHE[key] = librosa.filters.mel(sr=AUDIO_SR, n_fft=N_FFT, n_mels=N_MELS, fmin=F_MIN, fmax=F_MAX)
    return _MEL_CACHE[key]


def cavp_spectrogram(audio: np.ndarray, sr: int, seconds: int, resample_kind: str = "kaiser_best",
                     sample_id: str = "?") -> np.ndarray:
    """The official CAVP log-mel of the first ``seconds`` s: (C, L) float audio -> (128, 64*seconds) float32.

    ``y = fix(librosa_load(audio, 16 kHz), 16000 s)[:16000 s - 1]``; then
    ``clip((20 log10(max(mel @ |STFT(y)|, 1e-5)) - 20 + 100) / 100, 0, 1)``.  As in the original
    (``y = np.zeros(length)`` then copy), a padded signal is float64 and a truncated one float32,
    and the whole chain runs in that dtype.
    """
    from javisbench import views

    if audio.ndim != 2 or audio.shape[0] < 1 or audio.shape[1] < 1:
        raise SampleError(f"sample {sample_id}: expected audio (C>=1, L>=1), got shape {audio.shape}")
    if not np.all(np.isfinite(audio)):
        raise SampleError(f"sample {sample_id}: audio contains NaN or Inf")
    if seconds < 1:
        raise SampleError(f"sample {sample_id}: CAVP needs at least 1 whole second, got T={seconds}")
    wav = views.librosa_load_like(audio, int(sr), AUDIO_SR, resample_kind)[0]    # (L,) float32
    length = AUDIO_SR * int(seconds)
    if wav.shape[0] < length:
        y = np.zeros(length)                                                     # float64, as the original
        y[: wav.shape[0]] = wav
    else:
        y = wav[:length]
    y = y[: length - 1]                                                          # the official drops one sample
    mel = np.dot(mel_basis(), stft_magnitude(y))                                 # float32 @ (float32|float64)
    mel = np.log10(np.maximum(MEL_FLOOR, mel)) * 20
    mel = np.clip((mel - 20 + 100) / 100, 0, 1.0)
    return np.ascontiguousarray(mel, dtype=np.float32)


def _frame_times(n: int, fps: float, pts: np.ndarray | None, time_base: Fraction | None) -> list[Fraction]:
    """Frame timestamps (s) from the first frame: ``(pts_i - pts_0) * time_base``, else ``i / fps``."""
    if pts is not None and time_base is not None and len(pts) == n:
        tb = Fraction(time_base)
        return [(int(p) - int(pts[0])) * tb for p in pts]
    rate = Fraction(float(fps)).limit_denominator(1_000_000)
    return [Fraction(i) / rate for i in range(n)]


def select_frames(frames: np.ndarray, fps: float, seconds: int, *, pts: np.ndarray | None = None,
                  time_base: Fraction | None = None, sample_id: str = "?") -> np.ndarray:
    """The frames FFmpeg 5.1's ``-ss 0 -t T -i x -filter:v fps=fps=4`` emits, truncated to ``4 T``.

    Input frames with ``t_i < T`` pass the ``-t`` trim; the ``fps`` filter then shows in output slot
    ``j`` the last frame with ``round(t_i * 4) <= j`` (``views.video_at_fps``).  The stream ends at
    the timestamp of the first frame the trim drops (``t >= T``: the trim closes its output with
    that frame's pts) or, when the clip has no such frame, at the last frame's timestamp (the CLI
    closes the graph there).  This is emulated by appending the first dropped frame as a sentinel
    that the ``eof="last_pts"`` rule never shows.  (N, H, W, 3) uint8 -> (4 T, H, W, 3) uint8.

    Raises:
        SampleError: fewer than ``4 T`` frames come out (the original then fails on the shape
            mismatch between ``4 T`` spectrogram steps and the frame count), e.g. a 4 fps clip of
            exactly T seconds gives ``4 T - 1``.
    """
    from javisbench import views

    n_frames = frames.shape[0]
    times = _frame_times(n_frames, fps, pts, time_base)
    keep = sum(1 for t in times if t < seconds)
    if keep < 1:
        raise SampleError(f"sample {sample_id}: no video frame before t={seconds} s")
    n_in = min(keep + 1, n_frames)                 # + the sentinel that closes the stream, if any
    sub_pts = None
    sub_tb = None
    if pts is not None and time_base is not None and len(pts) == n_frames:
        sub_pts = np.asarray(pts[:n_in], np.int64) - int(pts[0])
        sub_tb = Fraction(time_base)
    _, idx = views.video_at_fps(frames[:n_in], fps, FPS, pts=sub_pts, time_base=sub_tb, eof="last_pts")
    want = FPS * int(seconds)
    if idx.shape[0] < want:
        raise SampleError(
            f"sample {sample_id}: CAVP needs 4*T = {want} frames at {FPS} fps over the first T = {seconds} s "
            f"(to match {want} spectrogram steps), the fps filter gives {idx.shape[0]}"
        )
    return frames[idx[:want]]


def rgb_to_yuv420p(rgb: np.ndarray) -> np.ndarray:
    """Invert OpenCV's yuv420p -> RGB conversion: (H, W, 3) uint8 (H, W even) -> (3H/2, W) uint8 planes.

    swscale's BT.601 limited-range YUV -> RGB *truncates* (``R = floor(1.164 (Y - 16) + ...)``),
    so the best estimate of the value it came from is ``R + 0.5``:
    ``Y = 16 + 219/255 (0.299 R' + 0.587 G' + 0.114 B')`` with ``X' = X + 0.5``,
    ``Cb = 128 + 224/255 (-0.168736 R' - 0.331264 G' + 0.5 B')``,
    ``Cr = 128 + 224/255 (0.5 R' - 0.418688 G' - 0.081312 B')``, chroma averaged over 2x2 blocks,
    all rounded.  On the golden clips this recovers the source luma to 0.09 mean |error| (swscale's
    own rgb24 -> yuv420p is off by one level almost everywhere).
    """
    x = rgb.astype(np.float64) + 0.5
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    h, w = r.shape
    y = 16.0 + (219.0 / 255.0) * (0.299 * r + 0.587 * g + 0.114 * b)
    cb = 128.0 + (224.0 / 255.0) * (-0.168736 * r - 0.331264 * g + 0.5 * b)
    cr = 128.0 + (224.0 / 255.0) * (0.5 * r - 0.418688 * g - 0.081312 * b)

    def quarter(c: np.ndarray) -> np.ndarray:
        return c.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3)).ravel()

    # PyAV's packed yuv420p layout: the Y plane, then U and V flattened, viewed as (3H/2, W)
    planes = np.concatenate([y.ravel(), quarter(cb), quarter(cr)]).reshape(3 * h // 2, w)
    return np.clip(np.round(planes), 0, 255).astype(np.uint8)


def _yuv420p_frame(rgb: np.ndarray) -> Any:
    """An RGB uint8 frame as a yuv420p ``av.VideoFrame`` (see :func:`rgb_to_yuv420p`)."""
    import av

    return av.VideoFrame.from_ndarray(rgb_to_yuv420p(rgb), format="yuv420p")


def _cv2_rgb(frame: Any) -> np.ndarray:
    """(H, W, 3) uint8 RGB of a decoded frame the way OpenCV 4.x converts it (bgr24, BT.601, bicubic)."""
    from av.video.reformatter import Interpolation

    name = frame.format.name
    kw: dict[str, Any] = {"format": "bgr24", "interpolation": Interpolation.BICUBIC,
                          "src_colorspace": "ITU601", "dst_colorspace": "ITU601"}
    if name.startswith("yuv"):
        kw["src_color_range"] = "JPEG" if name.startswith("yuvj") else "MPEG"
    return np.ascontiguousarray(frame.to_ndarray(**kw)[:, :, ::-1])


def x264_roundtrip(frames: np.ndarray, fps: int = FPS, crf: int = X264_CRF, preset: str = X264_PRESET,
                   threads: int = 1, sample_id: str = "?") -> np.ndarray:
    """Encode RGB frames with libx264 (FFmpeg's defaults) in memory and decode them again.

    Reproduces the lossy ``ffmpeg ... -filter:v fps=fps=4 out.mp4`` re-encode of the original:
    yuv420p (BT.601, limited range), CRF 23, preset medium, frame rate ``fps``, read back as
    OpenCV would.  ``threads`` = 1 keeps the result independent of the machine (x264's output
    depends on its thread count).  (N, H, W, 3) uint8 -> (N, H, W, 3) uint8.

    Raises:
        SampleError: odd frame sizes (x264 rejects 4:2:0 frames of odd width/height, so the
            original's ffmpeg call fails) or an encoder/decoder error.
    """
    import av

    n, h, w, _ = frames.shape
    if h % 2 or w % 2:
        raise SampleError(f"sample {sample_id}: the CAVP re-encode (libx264, yuv420p) needs an even frame "
                          f"size, got {w}x{h}")
    try:
        enc = av.CodecContext.create("libx264", "w")
        enc.width, enc.height, enc.pix_fmt = w, h, "yuv420p"
        enc.time_base = Fraction(1, int(fps))
        enc.framerate = Fraction(int(fps))
        enc.thread_count = int(threads)
        enc.options = {"crf": str(crf), "preset": preset}
        packets = []
        for i, rgb in enumerate(frames):
            vf = _yuv420p_frame(rgb)
            vf.pts = i
            vf.time_base = enc.time_base
            packets.extend(enc.encode(vf))
        packets.extend(enc.encode(None))
        dec = av.CodecContext.create("h264", "r")
        dec.thread_count = 1
        out = []
        for pkt in packets:
            out.extend(_cv2_rgb(f) for f in dec.decode(pkt))
        out.extend(_cv2_rgb(f) for f in dec.decode(None))
    except av.error.FFmpegError as e:  # pragma: no cover - codec failures are environment specific
        raise SampleError(f"sample {sample_id}: the in-memory libx264 round trip failed: {e}") from e
    if len(out) != n:
        raise SampleError(f"sample {sample_id}: the libx264 round trip returned {len(out)} frames, expected {n}")
    return np.stack(out)


def resize_224(frames: np.ndarray, size: int = IMAGE_SIZE) -> np.ndarray:
    """torchvision ``Resize((size, size))`` on PIL images (bilinear, aspect ignored).

    (N, H, W, 3) uint8 -> (N, size, size, 3) uint8; ToTensor's ``/255`` happens in ``encode``.
    """
    from PIL import Image

    out = np.empty((frames.shape[0], size, size, 3), np.uint8)
    for k, f in enumerate(frames):
        img = Image.fromarray(np.ascontiguousarray(f))
        out[k] = np.asarray(img.resize((size, size), Image.Resampling.BILINEAR))
    return out


def cavp_video(frames: np.ndarray, fps: float, seconds: int, *, reencode: bool, pts: np.ndarray | None = None,
               time_base: Fraction | None = None, sample_id: str = "?") -> np.ndarray:
    """The CAVP video view: 4 fps selection, optional x264 round trip, 224x224: (4 T, 224, 224, 3) uint8."""
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] < 1 or frames.dtype != np.uint8:
        raise SampleError(f"sample {sample_id}: expected uint8 video frames (T>=1, H, W, 3), got "
                          f"{frames.dtype} {frames.shape}")
    if seconds < 1:
        raise SampleError(f"sample {sample_id}: CAVP needs at least 1 whole second of video, got T={seconds}")
    picked = select_frames(frames, fps, seconds, pts=pts, time_base=time_base, sample_id=sample_id)
    if reencode:
        picked = x264_roundtrip(picked, FPS, sample_id=sample_id)
    return resize_224(picked)


def chunk_windows(n: int, chunk: int = CHUNK_FRAMES, context: int = 0) -> list[tuple[int, int, int, int]]:
    """Forward windows covering ``n`` frames in chunks: ``(lo, hi, keep_from, keep_to)`` per chunk.

    Chunk ``[s, s+chunk)`` is encoded from frames ``[lo, hi) = [max(0, s-context), min(n, s+chunk+context))``
    and its outputs are ``[keep_from, keep_to)`` of that window.  ``context=0`` is the official
    non-overlapping chunking.

    Example:
        >>> chunk_windows(50, 40, 9)
        [(0, 49, 0, 40), (31, 50, 9, 19)]
    """
    out = []
    for s in range(0, n, chunk):
        e = min(n, s + chunk)
        lo, hi = max(0, s - context), min(n, e + context)
        out.append((lo, hi, s - lo, e - lo))
    return out


def cavp_score(video_feats: np.ndarray, spec_feats: np.ndarray) -> float:
    """``mean_t cos(video_feats[t], spec_feats[t])`` (torch eps 1e-6), the per-sample CAVP score."""
    from metrics.similarity import mean_rowwise_cosine

    return mean_rowwise_cosine(video_feats, spec_feats)


# ---------------------------------------------------------------------------------------------
# encoder
# ---------------------------------------------------------------------------------------------
class CAVPEncoder(Encoder):
    """Diff-Foley CAVP per-step video and spectrogram embeddings (4 per second), for ``cavp_score``.

    ``prepare`` -> ``{"video": uint8 (4T, 224, 224, 3), "spec": float32 (128, 64T)}``.
    ``encode`` -> per sample ``{"video_feats": float32 (4T, 512), "spec_feats": float32 (4T, 512)}``,
    both L2-normalised per row.
    """

    id = "cavp"
    protocol_fields = ('cavp_fps', 'cavp_reencode', 'cavp_chunk_borders', 'resample')
    outputs = {'video_feats': '(S, 512)', 'spec_feats': '(S, 512)'}
    version = "1"
    weight_files = (CAVP_WEIGHTS,)
    description = ("Diff-Foley CAVP (cavp_epoch66.ckpt): SlowOnly-50 video / Cnn14 log-mel embeddings at 4 Hz, "
                   "cavp_score")
    #: at most this many frames per SlowOnly forward (a 40-frame 224² window needs ~0.5 GB of activations)
    max_frames_per_forward: int = 160
    #: frames per SlowOnly chunk (the official ``batch_size=40``, "Don't change it")
    chunk_frames: int = CHUNK_FRAMES

    def __init__(self, protocol: Any, device: str = "cpu", batch_size: int = 8) -> None:
        super().__init__(protocol, device, batch_size)
        fps = getattr(protocol, "cavp_fps", FPS)
        if int(fps) != FPS:
            raise ValueError(f"protocol {getattr(protocol, 'name', '?')!r}: cavp_fps={fps}, but CAVP's spectrogram "
                             f"tower yields exactly {FPS} steps per second; expected cavp_fps={FPS}")
        self.reencode = _protocol_flag(protocol, "cavp_reencode")
        self.chunk_borders = _protocol_flag(protocol, "cavp_chunk_borders")
        self.model: "CAVPNet | None" = None
        self.ignored_keys: list[str] = []

    # -- weights ------------------------------------------------------------------------------
    def load(self, weights_dir: Path) -> None:
        """Load ``cavp_epoch66.ckpt`` (``weights_only``) onto ``self.device``.

        The tensors are read from the file's ``state_dict`` entry (or the top level), with the
        ``module.`` prefix of a DDP-trained model stripped, as the original does.  Every key the
        network needs must be there with its shape -- a missing or misshaped key raises
        ``BadWeightsError`` naming them (the original's ``strict=False`` would silently keep
        random weights); keys the network does not use are ignored and listed in
        ``self.ignored_keys``.
        """
        import torch

        from javisbench.encoders.cavp_net import CAVPNet
        from javisbench.encoders.checkpoints import checkpoint_state_dict, read_checkpoint

        path = self.weight_paths(Path(weights_dir))[CAVP_WEIGHTS.name]
        obj = read_checkpoint(path, self.id, CAVP_WEIGHTS)
        state = {(k[len("module."):] if k.startswith("module.") else k): v
                 for k, v in checkpoint_state_dict(obj, path).items()}
        model = CAVPNet()
        expected = model.state_dict()
        missing = [k for k in expected if k not in state]
        misshaped = [f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(v.shape)}"
                     for k, v in expected.items()
                     if k in state and tuple(state[k].shape) != tuple(v.shape)
                     and not (v.ndim == 0 and tuple(state[k].shape) == (1,))]
        if missing or misshaped:
            parts = []
            for label, keys in (("missing", missing), ("wrong shape", misshaped)):
                if keys:
                    shown = ", ".join(keys[:10]) + (f", ... ({len(keys)} in all)" if len(keys) > 10 else "")
                    parts.append(f"{len(keys)} {label}: {shown}")
            raise BadWeightsError(f"{path} does not match encoder {self.id!r} (Diff-Foley CAVP_Inference): "
                                  + "; ".join(parts))
        self.ignored_keys = sorted(k for k in state if k not in expected)
        model.load_state_dict({k: state[k].reshape(v.shape) for k, v in expected.items()}, strict=True)
        self.model = model.to(self.device).eval()
        self.weights_sha256[CAVP_WEIGHTS.name] = sha256_of(path)

    def _model(self) -> "CAVPNet":
        if self.model is None:
            raise RuntimeError("CAVPEncoder used before load()")
        return self.model

    # -- data ---------------------------------------------------------------------------------
    def prepare(self, clip: "DecodedClip", text: str, audio_text: str) -> Prepared:
        """The 224² frames at 4 fps and the log-mel of the clip's first ``T = int(duration)`` seconds."""
        seconds = clip_seconds(clip.n_frames, clip.fps)
        if seconds < 1:
            raise SampleError(f"sample {clip.sample_id}: CAVP scores whole seconds; the clip lasts "
                              f"{clip.n_frames}/{clip.fps:g} = {clip.n_frames / max(clip.fps, 1e-9):.3f} s, "
                              f"expected at least 1 s")
        video = cavp_video(clip.frames, clip.fps, seconds, reencode=self.reencode, pts=clip.pts,
                           time_base=clip.time_base, sample_id=clip.sample_id)
        spec = cavp_spectrogram(clip.audio, clip.sr, seconds, str(self.protocol.resample), clip.sample_id)
        return {"video": video, "spec": spec}

    def _check(self, batch: list[Prepared]) -> None:
        for i, item in enumerate(batch):
            v, s = item["video"], item["spec"]
            if v.dtype != np.uint8 or v.ndim != 4 or v.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE, 3) or v.shape[0] < 1:
                raise ValueError(f"CAVP batch item {i}: expected uint8 video (4T, 224, 224, 3), "
                                 f"got {v.dtype} {v.shape}")
            if s.dtype != np.float32 or s.ndim != 2 or s.shape[0] != N_MELS or s.shape[1] != 16 * v.shape[0]:
                raise ValueError(f"CAVP batch item {i}: expected float32 spec (128, {16 * v.shape[0]}) for "
                                 f"{v.shape[0]} frames, got {s.dtype} {s.shape}")

    def video_features(self, videos: list[np.ndarray]) -> list[np.ndarray]:
        """Per-frame embeddings of each video: B x (N, 224, 224, 3) uint8 -> B x (N, 512) float32.

        Chunks of 40 frames (with 9 frames of context on each side when chunk borders are off);
        windows of equal length from all samples share a forward.
        """
        import torch

        from javisbench.encoders.cavp_net import TEMPORAL_RADIUS

        model = self._model()
        context = 0 if self.chunk_borders else TEMPORAL_RADIUS
        out = [np.empty((v.shape[0], model.video_project_head.out_features), np.float32) for v in videos]
        groups: dict[int, list[tuple[int, int, int, int, int]]] = defaultdict(list)
        for b, v in enumerate(videos):
            for lo, hi, k0, k1 in chunk_windows(v.shape[0], self.chunk_frames, context):
                groups[hi - lo].append((b, lo, hi, k0, k1))
        for length, items in groups.items():
            per = max(1, self.max_frames_per_forward // length)
            for i in range(0, len(items), per):
                part = items[i:i + per]
                x = torch.from_numpy(np.stack([videos[b][lo:hi] for b, lo, hi, _, _ in part])).to(self.device)
                x = x.permute(0, 4, 1, 2, 3).to(torch.float32).div_(255.0)          # (n, 3, L, 224, 224)
                feats = model.encode_video(x).float().cpu().numpy()               # (n, L, 512)
                for (b, lo, _, k0, k1), f in zip(part, feats):
                    out[b][lo + k0:lo + k1] = f[k0:k1]
        return out

    def spec_features(self, specs: list[np.ndarray]) -> list[np.ndarray]:
        """Per-step embeddings of each log-mel: B x (128, 64T) float32 -> B x (4T, 512) float32 (equal T batched)."""
        import torch

        model = self._model()
        out: list[np.ndarray | None] = [None] * len(specs)
        groups: dict[int, list[int]] = defaultdict(list)
        for b, s in enumerate(specs):
            groups[s.shape[1]].append(b)
        for _, idx in groups.items():
            for i in range(0, len(idx), max(self.batch_size, 1)):
                part = idx[i:i + max(self.batch_size, 1)]
                x = torch.from_numpy(np.stack([specs[b] for b in part])).to(self.device)   # (n, 128, Ts)
                feats = model.encode_spec(x.transpose(1, 2).unsqueeze(1)).float().cpu().numpy()
                for b, f in zip(part, feats):
                    out[b] = f
        if any(o is None for o in out):  # pragma: no cover - every index belongs to one group
            raise RuntimeError("CAVP spectrogram batching lost a sample")
        return [o for o in out if o is not None]

    def encode(self, batch: list[Prepared]) -> list[Features]:
        import torch

        if not batch:
            return []
        self._check(batch)
        with torch.inference_mode():
            vf = self.video_features([item["video"] for item in batch])
            sf = self.spec_features([item["spec"] for item in batch])
        return [{"video_feats": np.ascontiguousarray(v, np.float32), "spec_feats": np.ascontiguousarray(s, np.float32)}
                for v, s in zip(vf, sf)]
