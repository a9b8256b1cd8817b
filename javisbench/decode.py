"""Decode a sample once (PyAV): every video frame as RGB uint8, the audio as float32.

Every view an encoder needs (linspace frames, 25 fps frames, 16 kHz mono audio, ...) is a pure
function of the :class:`DecodedClip` returned here (see ``javisbench.views``), so each file is
read exactly once per run.

Parity with the original evaluator, which read frames with OpenCV (``cv2.VideoCapture``):

* frames are converted the way OpenCV 4.x's FFmpeg backend converts them: swscale to ``bgr24``
  with ``SWS_BICUBIC`` and swscale's default BT.601 matrix (OpenCV 4.11 ignores the stream's
  colour tags), then the channels are reversed.  On the golden clips this is bit-identical to
  cv2 4.11 and cv2 5.0 (max |diff| = 0); ``color_matrix="tagged"`` follows the stream's
  colour tags instead, as OpenCV 5 does;
* a display-matrix rotation is not applied (OpenCV 4.11 returns the coded orientation;
  ``apply_rotation=True`` rotates as OpenCV 5 does);
* ``fps`` is what ``CAP_PROP_FPS`` reports: FFmpeg's guessed frame rate
  (``av_guess_frame_rate``: ``r_frame_rate`` unless implausible), then ``avg_frame_rate``, then
  ``1/time_base``;
* wav samples are scaled like libsndfile/librosa: PCM16 ``x/32768``, PCM32/24 ``x/2**31``,
  PCM8 ``(x-128)/128``, float as stored;
* AAC in mp4: FFmpeg already drops the encoder priming (edit list); the tail padding of the
  last frame is trimmed here to the audio stream's duration.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import numpy as np

__all__ = ["DecodeError", "DecodedClip", "decode_sample", "probe_sample", "content_hash"]

ColorMatrix = Literal["bt601", "tagged"]
_HASH_CHUNK = 4 * 1024 * 1024


#: frames a decode may fall short of the container's declared count before it is incomplete:
#: max(1, 2% of the declared count) (containers may count a frame the decoder never emits)
FRAME_TOLERANCE_SHARE = 0.02
#: audio samples missing at the end before a decode is incomplete (two AAC frames of padding)
AUDIO_TOLERANCE_SAMPLES = 2048
_TRUNCATED = "(truncated file?)"


def frame_tolerance(declared: int) -> int:
    """Frames a decode may miss of ``declared`` and still be complete."""
    return max(1, int(declared * FRAME_TOLERANCE_SHARE))


class DecodeError(ValueError):
    """A sample file cannot be decoded; the message names the file and expected vs got."""


@dataclass(frozen=True, eq=False)
class DecodedClip:
    """One decoded sample.

    frames: (T, H, W, 3) uint8 RGB, every frame of the video stream in presentation order.
    fps: the stream frame rate as ``cv2.CAP_PROP_FPS`` reports it.
    audio: (C, L) float32 in [-1, 1], native channels and rate (the wav if given, else the
        container's first audio track), trimmed to the audio stream duration.
    sr: audio sample rate (Hz).
    content_hash: sha256 of the video file bytes followed by the audio file bytes (if any).
    """

    sample_id: str
    frames: np.ndarray
    fps: float
    audio: np.ndarray
    sr: int
    content_hash: str
    # ---- extras (defaults so that a clip can be built from arrays alone, e.g. in tests) ------
    video_path: str = ""
    audio_path: str | None = None
    audio_source: Literal["wav", "container", "array"] = "array"
    pts: np.ndarray | None = None          # (T,) int64 presentation timestamps in ``time_base``
    time_base: Fraction | None = None
    avg_fps: float | None = None           # the stream's avg_frame_rate (differs from fps for VFR)
    color_matrix: str = "bt601"
    rotation: int = 0                      # display rotation applied to the frames (degrees, CCW)
    warnings: tuple[str, ...] = field(default=())
    # the warnings that say the decode came out shorter than the container declares, beyond the
    # tolerance (:data:`FRAME_TOLERANCE`, :data:`AUDIO_TOLERANCE_SAMPLES`): a truncated file
    incomplete: tuple[str, ...] = field(default=())

    @property
    def n_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def height(self) -> int:
        return int(self.frames.shape[1])

    @property
    def width(self) -> int:
        return int(self.frames.shape[2])

    @property
    def duration_s(self) -> float:
        """n_frames / fps."""
        return self.n_frames / self.fps

    @property
    def n_channels(self) -> int:
        return int(self.audio.shape[0])

    @property
    def n_samples(self) -> int:
        return int(self.audio.shape[1])

    @property
    def audio_duration_s(self) -> float:
        """L / sr."""
        return self.n_samples / self.sr

    def __repr__(self) -> str:  # arrays are large: summarise them
        return (f"DecodedClip({self.sample_id!r}, frames={tuple(self.frames.shape)}, fps={self.fps:g}, "
                f"audio={tuple(self.audio.shape)}@{self.sr}Hz, hash={self.content_hash[:12]})")


# ------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------
def content_hash(*paths: str | os.PathLike[str] | None) -> str:
    """sha256 over the bytes of each given file in order (4 MiB chunks); ``None`` entries skipped."""
    h = hashlib.sha256()
    for p in paths:
        if p is None:
            continue
        with open(p, "rb") as f:
            while True:
                chunk = f.read(_HASH_CHUNK)
                if not chunk:
                    break
                h.update(chunk)
    return h.hexdigest()


def _label(sample_id: str | None, path: Path) -> str:
    return f"sample {sample_id!r} ({path})" if sample_id else str(path)


def _require_file(path: Path, what: str, label: str) -> None:
    if not path.exists():
        raise DecodeError(f"{label}: {what} file not found: {path} (expected an existing {what} file)")
    if not path.is_file():
        raise DecodeError(f"{label}: {what} path is not a regular file: {path}")
    if path.stat().st_size == 0:
        raise DecodeError(f"{label}: {what} file is empty: {path} (expected > 0 bytes, got 0)")


def _open(path: Path, what: str, label: str) -> Any:
    import av

    try:
        return av.open(str(path), metadata_errors="ignore")
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as e:
        raise DecodeError(f"{label}: cannot open {what} file {path}: {e} "
                          f"(expected a readable {'video container such as mp4' if what == 'video' else 'audio file such as wav'})") from e


def _rate_to_float(r: Any) -> float:
    try:
        return float(r) if r is not None and r.denominator != 0 else 0.0
    except (ZeroDivisionError, AttributeError, TypeError):
        return 0.0


def _cv2_fps(stream: Any) -> float:
    """``CAP_PROP_FPS`` of OpenCV's FFmpeg backend: guessed rate, then average rate, then 1/time_base."""
    fps = _rate_to_float(getattr(stream, "guessed_rate", None))
    if fps <= 1e-6:
        fps = _rate_to_float(stream.average_rate)
    if fps <= 1e-6 and stream.time_base:
        fps = 1.0 / float(stream.time_base)
    return fps


def _frame_to_rgb(frame: Any, color_matrix: ColorMatrix, apply_rotation: bool) -> np.ndarray:
    """(H, W, 3) uint8 RGB, converted and oriented as OpenCV's FFmpeg backend does (bgr24, SWS_BICUBIC)."""
    from av.video.reformatter import Interpolation

    # bgr24 then reversed rather than rgb24 directly: swscale's dithering of >8-bit sources
    # depends on the output layout, and bgr24 is what OpenCV asks for.
    kw: dict[str, Any] = {"format": "bgr24", "interpolation": Interpolation.BICUBIC}
    if color_matrix == "bt601":
        # OpenCV 4.x calls sws_scale without colour details: BT.601 always, full range only for
        # the yuvj* formats, whatever the stream is tagged with.
        kw["src_colorspace"] = "ITU601"
        kw["dst_colorspace"] = "ITU601"
        name = frame.format.name
        if name.startswith("yuv"):
            kw["src_color_range"] = "JPEG" if name.startswith("yuvj") else "MPEG"
    rgb = frame.to_ndarray(**kw)[:, :, ::-1]
    if apply_rotation:
        # as OpenCV 5 (CAP_PROP_ORIENTATION_AUTO); the rotation is counter-clockwise, like np.rot90
        k = _rotation_deg(frame) // 90
        return np.rot90(rgb, k) if k else rgb
    return rgb


def _rotation_deg(frame: Any) -> int:
    """Display-matrix rotation of a frame in degrees counter-clockwise: 0, 90, 180 or 270."""
    return (int(round(float(getattr(frame, "rotation", 0) or 0) / 90.0)) * 90) % 360


_PCM_SCALE = {"s16": 1.0 / 32768.0, "s32": 1.0 / 2147483648.0, "s64": 1.0 / 9223372036854775808.0}


def _audio_frame_to_float(frame: Any) -> np.ndarray:
    """(C, n) float32 from one decoded audio frame, scaled like libsndfile (PCM16: x/32768)."""
    arr = frame.to_ndarray()
    channels = frame.layout.nb_channels
    if not frame.format.is_planar:  # packed: (1, n*C) interleaved
        arr = arr.reshape(-1, channels).T
    base = frame.format.name.rstrip("p")
    if base in _PCM_SCALE:
        # float64 product then float32: exact for 16-bit (x/32768 is a dyadic rational)
        return (arr.astype(np.float64) * _PCM_SCALE[base]).astype(np.float32)
    if base == "u8":
        return ((arr.astype(np.float32) - 128.0) / 128.0).astype(np.float32)
    if base in ("flt", "dbl"):
        return arr.astype(np.float32)
    raise DecodeError(f"unsupported audio sample format {frame.format.name!r}")


class _FrameBuffer:
    """Growable (T, H, W, 3) uint8 buffer: avoids a list + stack (2x peak memory) when T is known."""

    def __init__(self, estimate: int) -> None:
        self.estimate = max(int(estimate), 1)
        self.buf: np.ndarray | None = None
        self.n = 0

    def append(self, img: np.ndarray) -> None:
        if self.buf is None:
            self.buf = np.empty((self.estimate,) + img.shape, np.uint8)
        elif img.shape != self.buf.shape[1:]:
            raise DecodeError(f"frame size changed mid-stream (expected {self.buf.shape[1:3]}, got {img.shape[:2]})")
        if self.n == self.buf.shape[0]:
            grown = np.empty((max(2 * self.n, 8),) + self.buf.shape[1:], np.uint8)
            grown[: self.n] = self.buf
            self.buf = grown
        self.buf[self.n] = img
        self.n += 1

    def result(self) -> np.ndarray:
        assert self.buf is not None
        if self.n == self.buf.shape[0]:
            return self.buf
        return self.buf[: self.n].copy()  # copy: do not keep a larger buffer alive


class _AudioAccumulator:
    def __init__(self) -> None:
        self.chunks: list[np.ndarray] = []
        self.first_pts_s: float | None = None
        self.sr = 0

    def add(self, frame: Any) -> None:
        if self.first_pts_s is None and frame.pts is not None and frame.time_base is not None:
            self.first_pts_s = float(frame.pts * frame.time_base)
        self.sr = frame.sample_rate or self.sr
        self.chunks.append(_audio_frame_to_float(frame))


def _finish_audio(acc: _AudioAccumulator, stream: Any, container: Any, path: Path, label: str) -> tuple[np.ndarray, int, list[str]]:
    warns: list[str] = []
    sr = int(stream.rate or stream.codec_context.sample_rate or acc.sr)
    if not acc.chunks:
        raise DecodeError(f"{label}: the audio stream of {path} has no decodable samples (expected > 0 samples, got 0)")
    chans = {c.shape[0] for c in acc.chunks}
    if len(chans) != 1:
        raise DecodeError(f"{label}: the channel count of {path} changes mid-stream (got {sorted(chans)})")
    audio = np.concatenate(acc.chunks, axis=1)
    # Negative start (priming not removed by an edit list): drop what lies before t = 0.
    if acc.first_pts_s is not None and acc.first_pts_s < 0:
        audio = audio[:, int(round(-acc.first_pts_s * sr)):]
    # Trim the codec's tail padding (AAC decodes whole 1024-sample frames) to the stream duration.
    dur_s: float | None = None
    if stream.duration is not None and stream.time_base is not None and stream.duration > 0:
        dur_s = float(stream.duration * stream.time_base)
    elif container.duration:
        dur_s = container.duration / 1_000_000
    if dur_s is not None:
        n_keep = int(round(dur_s * sr))
        if 0 < n_keep < audio.shape[1]:
            audio = audio[:, :n_keep]
        elif audio.shape[1] < n_keep - AUDIO_TOLERANCE_SAMPLES:  # more than two AAC frames missing: truncated file
            warns.append(f"decoded {audio.shape[1] / sr:.3f} s of audio, the stream declares {dur_s:.3f} s {_TRUNCATED}")
    if audio.shape[1] == 0:
        raise DecodeError(f"{label}: zero-length audio in {path} (expected > 0 samples, got 0)")
    bad = ~np.isfinite(audio)
    if bad.any():
        raise DecodeError(f"{label}: audio of {path} contains {int(bad.sum())} NaN/inf samples "
                          f"(expected finite values in [-1, 1])")
    return np.ascontiguousarray(audio, dtype=np.float32), sr, warns


# ------------------------------------------------------------------------------------------------
# public API
# ------------------------------------------------------------------------------------------------
def decode_sample(
    video_path: str | os.PathLike[str],
    audio_path: str | os.PathLike[str] | None = None,
    sample_id: str | None = None,
    *,
    color_matrix: ColorMatrix = "bt601",
    apply_rotation: bool = False,
    threads: int = 0,
) -> DecodedClip:
    """Decode every video frame (RGB uint8) and the audio (float32, native rate) of one sample.

    ``audio_path`` (a wav) takes precedence over the container's audio track.  A truncated file
    yields the frames it holds (with a warning in ``DecodedClip.warnings``); no decodable frame,
    no video stream, no audio anywhere, zero-length or non-finite audio raise :class:`DecodeError`.
    ``color_matrix``: ``"bt601"`` converts as OpenCV 4.x (the official environment: BT.601
    whatever the stream's tags), ``"tagged"`` follows the tags as OpenCV 5 does.
    ``apply_rotation``: rotate by the container's display matrix (OpenCV 5) or not (OpenCV 4.11).
    ``threads``: decoder threads (0 = FFmpeg's automatic choice).
    """
    import av

    if color_matrix not in ("bt601", "tagged"):
        raise ValueError(f"color_matrix must be 'bt601' or 'tagged', got {color_matrix!r}")
    vpath = Path(video_path)
    sid = sample_id if sample_id is not None else vpath.stem
    label = _label(sid, vpath)
    _require_file(vpath, "video", label)
    apath = Path(audio_path) if audio_path is not None else None
    if apath is not None:
        _require_file(apath, "audio", label)
    warns: list[str] = []
    incomplete: list[str] = []

    container = _open(vpath, "video", label)
    try:
        if not container.streams.video:
            kinds = [s.type for s in container.streams]
            raise DecodeError(f"{label}: no video stream in {vpath} (expected 1 video stream, got streams {kinds or 'none'})")
        vs = container.streams.video[0]
        vs.thread_type = "AUTO"
        vs.codec_context.thread_count = int(threads)
        fps = _cv2_fps(vs)
        if not (fps > 0 and np.isfinite(fps)):
            raise DecodeError(f"{label}: cannot determine the frame rate of {vpath} (expected > 0, got {fps})")
        avg_fps = _rate_to_float(vs.average_rate) or fps
        declared = int(vs.frames or 0)
        estimate = declared or (int(round(float(vs.duration * vs.time_base) * fps)) if vs.duration and vs.time_base else 0)
        use_container_audio = apath is None and bool(container.streams.audio)
        as_ = container.streams.audio[0] if use_container_audio else None
        if apath is None and as_ is None:
            raise DecodeError(f"{label}: no audio: {vpath} has no audio stream and no wav was given "
                              f"(expected a .wav next to the video or an mp4 with an audio track)")

        # the initial buffer trusts the header only up to 2048 frames (a corrupt count must not
        # allocate gigabytes); it grows as needed
        frames = _FrameBuffer(min(estimate + 2, 2048))
        pts_list: list[int] = []
        acc = _AudioAccumulator()
        n_bad_packets = 0
        rotation = 0
        streams = [vs] + ([as_] if as_ is not None else [])
        try:
            for packet in container.demux(*streams):
                try:
                    decoded = packet.decode()
                except av.error.FFmpegError:
                    n_bad_packets += 1      # as OpenCV: a corrupt packet is skipped, not fatal
                    continue
                for fr in decoded:
                    if packet.stream.type == "video":
                        if frames.n == 0:
                            rotation = _rotation_deg(fr)
                        frames.append(_frame_to_rgb(fr, color_matrix, apply_rotation))
                        pts_list.append(fr.pts if fr.pts is not None else len(pts_list))
                    else:
                        acc.add(fr)
        except av.error.FFmpegError as e:
            warns.append(f"demuxing stopped early: {e}")
        if n_bad_packets:
            warns.append(f"{n_bad_packets} packet(s) could not be decoded and were skipped")
        if frames.n == 0:
            raise DecodeError(f"{label}: no decodable video frame in {vpath} "
                              f"(expected >= 1 frame, got 0; the container declares {declared})")
        if rotation and not apply_rotation:
            warns.append(f"the container asks for a {rotation} degree display rotation; frames are kept as coded "
                         f"(OpenCV 4 parity; apply_rotation=True rotates them)")
        if declared and frames.n < declared:
            warns.append(f"decoded {frames.n} of the {declared} frames the container declares (truncated file?)")
            if declared - frames.n > frame_tolerance(declared):
                incomplete.append(warns[-1])
        rgb = frames.result()
        time_base = Fraction(vs.time_base) if vs.time_base is not None else None
        if as_ is not None:
            audio, sr, w = _finish_audio(acc, as_, container, vpath, label)
            warns.extend(w)
            incomplete.extend(x for x in w if x.endswith(_TRUNCATED))
    finally:
        container.close()

    if apath is not None:
        audio, sr, w = _decode_audio_file(apath, label)
        warns.extend(w)
        incomplete.extend(x for x in w if x.endswith(_TRUNCATED))
    vhash = content_hash(vpath, apath)
    return DecodedClip(
        sample_id=sid, frames=rgb, fps=float(fps), audio=audio, sr=int(sr), content_hash=vhash,
        video_path=str(vpath), audio_path=str(apath) if apath is not None else None,
        audio_source="wav" if apath is not None else "container",
        pts=np.asarray(pts_list, np.int64), time_base=time_base, avg_fps=float(avg_fps),
        color_matrix=color_matrix, rotation=rotation if apply_rotation else 0, warnings=tuple(warns),
        incomplete=tuple(incomplete),
    )


def _decode_audio_file(path: Path, label: str) -> tuple[np.ndarray, int, list[str]]:
    import av

    container = _open(path, "audio", label)
    try:
        if not container.streams.audio:
            raise DecodeError(f"{label}: no audio stream in {path} (expected 1 audio stream, got 0)")
        st = container.streams.audio[0]
        acc = _AudioAccumulator()
        try:
            for packet in container.demux(st):
                for fr in packet.decode():
                    acc.add(fr)
        except av.error.FFmpegError as e:
            raise DecodeError(f"{label}: cannot decode audio file {path}: {e}") from e
        audio, sr, warns = _finish_audio(acc, st, container, path, label)
    finally:
        container.close()
    return audio, sr, warns


def probe_sample(
    video_path: str | os.PathLike[str],
    audio_path: str | os.PathLike[str] | None = None,
    sample_id: str | None = None,
    *,
    require_audio: bool = True,
) -> dict[str, Any]:
    """Container-level check of a sample without decoding every frame (``javisbench validate``).

    Opens the file(s), reads stream metadata and decodes the first video frame only.  Raises
    :class:`DecodeError` for what :func:`decode_sample` would refuse (missing/unreadable file, no
    video stream, no decodable first frame, no audio when ``require_audio``).  Returns
    ``{n_frames, fps, avg_fps, duration_s, width, height, codec, pix_fmt, rotation, has_audio,
    audio_source, audio_sr, audio_channels, audio_duration_s}`` (``width``/``height`` as coded) (``n_frames`` is the container's count, or
    ``round(duration*fps)`` when it declares none).
    """
    import av

    vpath = Path(video_path)
    label = _label(sample_id or vpath.stem, vpath)
    _require_file(vpath, "video", label)
    apath = Path(audio_path) if audio_path is not None else None
    if apath is not None:
        _require_file(apath, "audio", label)
    info: dict[str, Any] = {}
    container = _open(vpath, "video", label)
    try:
        if not container.streams.video:
            kinds = [s.type for s in container.streams]
            raise DecodeError(f"{label}: no video stream in {vpath} (expected 1 video stream, got streams {kinds or 'none'})")
        vs = container.streams.video[0]
        fps = _cv2_fps(vs)
        if vs.duration and vs.time_base:
            duration = float(vs.duration * vs.time_base)
        elif container.duration:
            duration = container.duration / 1_000_000
        else:
            duration = float("nan")
        n = int(vs.frames or 0) or (int(round(duration * fps)) if np.isfinite(duration) else 0)
        try:
            first = next(container.decode(vs), None)
        except av.error.FFmpegError as e:
            raise DecodeError(f"{label}: the first video frame of {vpath} cannot be decoded: {e}") from e
        if first is None:
            raise DecodeError(f"{label}: no decodable video frame in {vpath} (expected >= 1 frame, got 0)")
        info.update(n_frames=n, fps=fps, avg_fps=_rate_to_float(vs.average_rate) or fps, duration_s=duration,
                    width=int(vs.codec_context.width), height=int(vs.codec_context.height),
                    codec=vs.codec_context.name, pix_fmt=first.format.name, rotation=_rotation_deg(first))
        cont_audio = container.streams.audio[0] if container.streams.audio else None
        if apath is None and cont_audio is not None:
            info.update(_audio_info(cont_audio, container), audio_source="container")
    finally:
        container.close()
    if apath is not None:
        ac = _open(apath, "audio", label)
        try:
            if not ac.streams.audio:
                raise DecodeError(f"{label}: no audio stream in {apath} (expected 1 audio stream, got 0)")
            info.update(_audio_info(ac.streams.audio[0], ac), audio_source="wav")
        finally:
            ac.close()
    info["has_audio"] = "audio_source" in info
    if not info["has_audio"]:
        if require_audio:
            raise DecodeError(f"{label}: no audio: {vpath} has no audio stream and no wav was given "
                              f"(expected a .wav next to the video or an mp4 with an audio track)")
        info.update(audio_source=None, audio_sr=None, audio_channels=None, audio_duration_s=None)
    elif not info["audio_duration_s"] or info["audio_duration_s"] <= 0:
        raise DecodeError(f"{label}: zero-length audio (expected > 0 s, got {info['audio_duration_s']})")
    return info


def _audio_info(stream: Any, container: Any) -> dict[str, Any]:
    sr = int(stream.rate or stream.codec_context.sample_rate or 0)
    if stream.duration is not None and stream.time_base is not None:
        dur = float(stream.duration * stream.time_base)
    elif container.duration:
        dur = container.duration / 1_000_000
    else:
        dur = float("nan")
    return {"audio_sr": sr, "audio_channels": int(stream.codec_context.channels or stream.layout.nb_channels),
            "audio_duration_s": dur}


#: below this many audio samples a clip is shorter than one 2048-point STFT window (onsets, mel)
MIN_AUDIO_SAMPLES = 2048


def clip_warnings(clip: DecodedClip) -> list[str]:
    """What is unusual about a decoded clip, in words (each becomes a per-sample warning).

    Variable frame rate (average and nominal rates differ by more than 1%), a frame rate under
    4 fps, audio and video durations that differ by more than half of the longer one (and 0.5 s),
    and audio shorter than one 2048-sample analysis window (the onset and spectral views see
    mostly zero padding; librosa would warn ``n_fft is too large``).
    """
    out: list[str] = []
    if clip.avg_fps and clip.fps and abs(clip.avg_fps - clip.fps) > 0.01 * clip.fps:
        out.append(f"variable frame rate: average {clip.avg_fps:.3f} fps, nominal {clip.fps:.3f} fps (frames are "
                   "timed at the nominal rate, as OpenCV reads them)")
    if clip.fps < 4:
        out.append(f"very low frame rate: {clip.fps:g} fps (motion and sync metrics need several frames per second)")
    if clip.n_samples and clip.n_frames and clip.sr and clip.fps:
        a, v = clip.audio_duration_s, clip.duration_s
        if abs(a - v) > max(0.5, 0.5 * max(a, v)):
            out.append(f"audio lasts {a:.3f} s but the video {v:.3f} s: "
                       f"{'audio much shorter' if a < v else 'audio much longer'} than the video")
    if 0 < clip.n_samples < MIN_AUDIO_SAMPLES:
        out.append(f"audio has only {clip.n_samples} samples ({clip.audio_duration_s:.3f} s), less than one "
                   f"{MIN_AUDIO_SAMPLES}-sample analysis window: onset and spectral features see mostly padding")
    return out
