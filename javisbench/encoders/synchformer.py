"""Synchformer offset logits: the feature of the DeSync metric (``desync``).

The official DeSync (JavisBench ``calc_desync_score``, after hkchengrex/av-benchmark) runs the
Synchformer audio-visual synchronisation model over a clip's first ``L = max_audio_len_s``
seconds and reports the mean absolute predicted offset.  This module reproduces its inputs and
its model calls; the network itself is in :mod:`javisbench.encoders.synchformer_net`.

Per sample (L = 4 s gives the numbers in brackets):

* video: the stream resampled to 25 fps with ffmpeg ``fps`` semantics, the first ``int(25 L)``
  frames [100], right-padded with black frames; each frame resized (short side 224, bicubic,
  antialiased, uint8 as torchvision does it) and centre-cropped to 224; ``(u8/255 - 0.5)/0.5``.
  Segments of 16 frames with step 8: ``S = (F - 16)//8 + 1`` [11].
* audio: channel mean, resampled to 16 kHz (torchaudio's default windowed-sinc, Hann),
  truncated/zero-padded to ``int(16000 L)`` samples [64000]; segments of 10240 samples with step
  5120 [11]; per segment ``log(mel + 1e-6)`` (power mel spectrogram, see :func:`log_mel`), the
  time axis zero-padded *in the log domain* from 65 to 66 frames, then
  ``(x + 4.2677393) / (2 * 4.5689974)``.
* groups of 14 segments (the model's 4.8 s window, ``metrics.desync.official_groups``): a short
  first group is wrap-padded with its own leading segments (11 -> 0..10, 0, 1, 2), a short
  later group is replaced by the last 14 segments.  Each group gives 21 logits; the offset is
  ``OFFSET_GRID[argmax]`` with ``OFFSET_GRID = linspace(-2, 2, 21)`` seconds.

Batch composition.  Every segment is encoded on its own and every group is classified on its
own, so a sample's ``logits``/``group_offsets`` do not depend on the other samples of the batch
(up to float kernel ordering).  The official per-sample *reduction* does: it appends
``|offset|`` group-major over a batch of (up to) 8 consecutive samples and then reshapes
sample-major (bug #19), so for clips with more than one group (L > 4.8 s) a sample's reported
value mixes groups of its batch neighbours.  That bug is reproduced at metric time
(``metrics.desync.assign_group_offsets(..., official_bug=True)``) from the ordered list of
per-sample ``group_offsets`` and the official batch size 8, never here.
"""
from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from javisbench.encoders.base import Encoder, Features, Prepared, SampleError
from javisbench.weights import WeightFile, sha256_of
from metrics.desync import GROUP_SEGMENTS, OFFSET_GRID, n_segments, official_groups

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from javisbench.decode import DecodedClip
    from javisbench.encoders.synchformer_net import SynchformerNet

SYNCHFORMER_WEIGHTS = WeightFile(
    name="synchformer_state_dict.pth",
    url="https://github.com/hkchengrex/MMAudio/releases/download/v0.1/synchformer_state_dict.pth",
    license="MIT",
    note="Synchformer (v-iashin/Synchformer, MIT) AudioSet sync model as re-released by MMAudio "
    "(hkchengrex/MMAudio, MIT) v0.1; 907 MB; MMAudio lists md5 5b2f5594b0730f70e41e549b7c94390c",
)

IMAGE_SIZE = 224
SEGMENT_FRAMES = 16           # video frames per segment (0.64 s at 25 fps)
SEGMENT_FRAME_STEP = 8
AUDIO_SR = 16000
SEGMENT_SAMPLES = 10240       # audio samples per segment (0.64 s)
SEGMENT_SAMPLE_STEP = 5120
N_FFT = 1024
WIN_LENGTH = 400              # 25 ms
HOP_LENGTH = 160              # 10 ms
N_MELS = 128
F_MAX = 8000.0
LOG_EPS = 1e-6
MEL_FRAMES = 66               # AST max_spec_t
AST_MEAN = -4.2677393         # AudioSet log-mel statistics used by AST
AST_STD = 4.5689974


# ---------------------------------------------------------------------------------------------
# preprocessing (pure functions)
# ---------------------------------------------------------------------------------------------
def desync_video(frames: np.ndarray, fps: float, length_s: float, target_fps: float = 25.0,
                 size: int = IMAGE_SIZE, *, pts: np.ndarray | None = None, time_base: Fraction | None = None,
                 sample_id: str = "?") -> np.ndarray:
    """The official DeSync video view: 25 fps, ``int(25 L)`` frames, short side ``size``, centre crop.

    ``F = int(target_fps * length_s)``; frames picked by the ffmpeg ``fps`` filter rule as torio's
    FFmpeg 5.1 applies it (``views.fps_indices``: the stream ends at the last frame's timestamp,
    so 96 frames at 24 fps give 99; from ``pts``/``time_base`` when known), truncated to F and
    right-padded with black (zero) frames; then torchvision ``resize(size, BICUBIC,
    antialias=True)`` on uint8 (short side to ``size``, long side ``int(size * long / short)``)
    and ``center_crop(size)``.

    Args:
        frames: (T, H, W, 3) uint8 RGB at ``fps``; ``pts`` (T,) in ``time_base`` units.
    Returns:
        (F, 3, size, size) uint8.
    Raises:
        SampleError: on an empty or malformed frame array.
    """
    import torch
    from torchvision.transforms.v2 import InterpolationMode
    from torchvision.transforms.v2 import functional as TF

    from javisbench import views

    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] == 0 or frames.dtype != np.uint8:
        raise SampleError(
            f"sample {sample_id}: expected uint8 video frames (T>=1, H, W, 3), got {frames.dtype} {frames.shape}"
        )
    n_out = int(target_fps * length_s)
    # indices first: only the first F output frames are ever materialised
    idx = views.fps_indices(frames.shape[0], fps, target_fps, pts=pts, time_base=time_base)[:n_out]
    x = torch.from_numpy(np.ascontiguousarray(frames[idx])).permute(0, 3, 1, 2)  # (t, 3, H, W) uint8
    x = TF.resize(x, [size], interpolation=InterpolationMode.BICUBIC, antialias=True)
    x = TF.center_crop(x, [size, size])
    out = np.zeros((n_out, 3, size, size), dtype=np.uint8)                        # black padding
    out[: x.shape[0]] = x.numpy()
    return out


def desync_audio(audio: np.ndarray, sr: int, length_s: float, sample_id: str = "?") -> np.ndarray:
    """The official DeSync audio view: channel mean, 16 kHz, exactly ``int(16000 L)`` samples.

    Resampling (when ``sr != 16000``) is torchaudio's default windowed sinc with a Hann window
    (``views.resample(..., kind="sinc_hann")``); then truncation or zero padding at the end.

    Args:
        audio: (C, N) float32 in [-1, 1] at ``sr``.
    Returns:
        (int(16000 * length_s),) float32.
    """
    from javisbench import views

    if audio.ndim != 2 or audio.shape[0] == 0 or audio.shape[1] == 0:
        raise SampleError(f"sample {sample_id}: expected audio (C>=1, N>=1), got shape {audio.shape}")
    if not np.all(np.isfinite(audio)):
        raise SampleError(f"sample {sample_id}: audio contains NaN or Inf")
    mono = views.mono(audio)
    if int(sr) != AUDIO_SR:
        mono = views.resample(mono, int(sr), AUDIO_SR, kind="sinc_hann")
    return np.ascontiguousarray(views.fixed_length(mono, int(AUDIO_SR * length_s)), dtype=np.float32)


def mel_filterbank(n_freqs: int = N_FFT // 2 + 1, n_mels: int = N_MELS, sample_rate: int = AUDIO_SR,
                   f_min: float = 0.0, f_max: float = F_MAX) -> "torch.Tensor":
    """Triangular HTK mel filterbank without area normalisation, (n_freqs, n_mels) float32.

    ``mel(f) = 2595 log10(1 + f/700)``; ``n_mels + 2`` points equally spaced in mel between
    ``mel(f_min)`` and ``mel(f_max)`` mapped back to Hz (``f_pts``); bin frequencies
    ``linspace(0, sr//2, n_freqs)``; filter m is ``max(0, min((f - f_m)/(f_{m+1} - f_m),
    (f_{m+2} - f)/(f_{m+2} - f_{m+1})))`` (torchaudio ``melscale_fbanks``, ``norm=None``,
    ``mel_scale="htk"``, float32 arithmetic).
    """
    import torch

    all_freqs = torch.linspace(0, sample_rate // 2, n_freqs)
    m_min = 2595.0 * math.log10(1.0 + f_min / 700.0)
    m_max = 2595.0 * math.log10(1.0 + f_max / 700.0)
    m_pts = torch.linspace(m_min, m_max, n_mels + 2)
    f_pts = 700.0 * (10.0 ** (m_pts / 2595.0) - 1.0)
    f_diff = f_pts[1:] - f_pts[:-1]                                   # (n_mels + 1,)
    slopes = f_pts.unsqueeze(0) - all_freqs.unsqueeze(1)              # (n_freqs, n_mels + 2)
    down = (-1.0 * slopes[:, :-2]) / f_diff[:-1]
    up = slopes[:, 2:] / f_diff[1:]
    return torch.clamp(torch.minimum(down, up), min=0.0)


def log_mel(segments: "torch.Tensor", fbank: "torch.Tensor | None" = None) -> "torch.Tensor":
    """Normalised log-mel of audio segments, as fed to the AST: (..., 10240) -> (..., 128, 66).

    ``P = |STFT(x)|^2`` (n_fft 1024, Hann window of 400 (periodic, centred in the frame),
    hop 160, centre with reflect padding: 65 frames); ``M = fbank^T P``; ``log(M + 1e-6)``;
    one zero column appended (the official pads in the log domain); ``(x - mean) / (2 std)``
    with the AST AudioSet statistics.
    """
    import torch
    import torch.nn.functional as F

    if fbank is None:
        fbank = mel_filterbank()
    lead = segments.shape[:-1]
    x = segments.reshape(-1, segments.shape[-1])
    window = torch.hann_window(WIN_LENGTH, periodic=True, dtype=x.dtype, device=x.device)
    spec = torch.stft(x, N_FFT, hop_length=HOP_LENGTH, win_length=WIN_LENGTH, window=window, center=True,
                      pad_mode="reflect", normalized=False, onesided=True, return_complex=True)
    power = spec.abs().pow(2.0)                                                     # (N, 513, 65)
    mel = torch.matmul(power.transpose(-1, -2), fbank.to(x.device, x.dtype)).transpose(-1, -2)
    logmel = torch.log(mel + LOG_EPS)
    frames = logmel.shape[-1]
    if frames < MEL_FRAMES:
        logmel = F.pad(logmel, (0, MEL_FRAMES - frames), mode="constant", value=0.0)
    logmel = logmel[..., :MEL_FRAMES]
    logmel = (logmel - AST_MEAN) / (2 * AST_STD)
    return logmel.reshape(*lead, N_MELS, MEL_FRAMES)


def video_segments(video: "torch.Tensor") -> "torch.Tensor":
    """(B, F, 3, H, W) -> (B, S, 16, 3, H, W) windows with step 8 (a view, no copy)."""
    return video.unfold(1, SEGMENT_FRAMES, SEGMENT_FRAME_STEP).permute(0, 1, 5, 2, 3, 4)


def audio_segments(audio: "torch.Tensor") -> "torch.Tensor":
    """(B, N) -> (B, S, 10240) windows with step 5120 (a view, no copy)."""
    return audio.unfold(1, SEGMENT_SAMPLES, SEGMENT_SAMPLE_STEP)


def pixels_to_unit(video_u8: "torch.Tensor") -> "torch.Tensor":
    """uint8 -> float32 in [-1, 1]: ``(u8 * (1/255) - 0.5) / 0.5`` (torchvision ToDtype + Normalize)."""
    import torch

    return video_u8.to(torch.float32).mul_(1.0 / 255.0).sub_(0.5).div_(0.5)


# ---------------------------------------------------------------------------------------------
# encoder
# ---------------------------------------------------------------------------------------------
class SynchformerEncoder(Encoder):
    """Synchformer offset logits per 14-segment group, for DeSync.

    ``prepare`` -> ``{"video": uint8 (F, 3, 224, 224), "audio": float32 (N,)}`` with
    ``F = int(protocol.desync_fps * L)``, ``N = int(16000 * L)``, ``L = protocol.max_audio_len_s``.
    ``encode`` -> per sample ``{"logits": float32 (G, 21), "group_offsets": float32 (G,)}``,
    ``group_offsets = OFFSET_GRID[argmax(logits)]`` (signed seconds; DeSync takes ``|.|``).
    """

    id = "synchformer"
    protocol_fields = ('desync_fps', 'max_audio_len_s', 'resample')
    outputs = {'logits': '(G, 21)', 'group_offsets': '(G,) seconds'}
    version = "1"
    weight_files = (SYNCHFORMER_WEIGHTS,)
    description = "Synchformer (MMAudio synchformer_state_dict.pth) offset logits over 14-segment groups, DeSync"
    #: segments per MotionFormer forward: bounds activation memory (~90 MB per segment in fp32)
    video_chunk: int = 16

    def __init__(self, protocol: Any, device: str = "cpu", batch_size: int = 8) -> None:
        super().__init__(protocol, device, batch_size)
        self.model: "SynchformerNet | None" = None
        self._fbank: "torch.Tensor | None" = None

    # -- weights ------------------------------------------------------------------------------
    def load(self, weights_dir: Path) -> None:
        """Load ``synchformer_state_dict.pth`` (``weights_only``, strict) onto ``self.device``."""
        import torch

        from javisbench.encoders.checkpoints import read_checkpoint
        from javisbench.encoders.i3d import checkpoint_state_dict, load_strict
        from javisbench.encoders.synchformer_net import SynchformerNet

        path = self.weight_paths(Path(weights_dir))[SYNCHFORMER_WEIGHTS.name]
        obj = read_checkpoint(path, self.id, SYNCHFORMER_WEIGHTS)
        model = SynchformerNet()
        load_strict(model, checkpoint_state_dict(obj, path), path, self.id)
        self.model = model.to(self.device).eval()
        self._fbank = mel_filterbank().to(self.device)
        self.weights_sha256[SYNCHFORMER_WEIGHTS.name] = sha256_of(path)

    # -- data ---------------------------------------------------------------------------------
    @property
    def length_s(self) -> float:
        return float(self.protocol.max_audio_len_s)

    def prepare(self, clip: "DecodedClip", text: str, audio_text: str) -> Prepared:
        """The 25 fps uint8 crop and the 16 kHz mono signal of the clip's first L seconds."""
        L = self.length_s
        n_frames, n_samples = int(self.protocol.desync_fps * L), int(AUDIO_SR * L)
        try:
            s_v = n_segments(n_frames, SEGMENT_FRAMES, SEGMENT_FRAME_STEP)
            s_a = n_segments(n_samples, SEGMENT_SAMPLES, SEGMENT_SAMPLE_STEP)
        except ValueError:
            s_v = s_a = 0
        if s_v < 1 or s_v != s_a:
            raise SampleError(
                f"sample {clip.sample_id}: max_audio_len_s={L} gives {n_frames} frames / {n_samples} samples, "
                f"i.e. {s_v} video and {s_a} audio segments; DeSync needs the same number, at least 1 "
                f"(L >= 0.64 s)"
            )
        video = desync_video(clip.frames, clip.fps, L, float(self.protocol.desync_fps), IMAGE_SIZE,
                             pts=clip.pts, time_base=clip.time_base, sample_id=clip.sample_id)
        audio = desync_audio(clip.audio, clip.sr, L, clip.sample_id)
        return {"video": video, "audio": audio}

    def _model(self) -> "SynchformerNet":
        if self.model is None:
            raise RuntimeError("SynchformerEncoder used before load()")
        return self.model

    def _check(self, batch: list[Prepared]) -> None:
        v0, a0 = batch[0]["video"].shape, batch[0]["audio"].shape
        for i, item in enumerate(batch):
            v, a = item["video"], item["audio"]
            if v.dtype != np.uint8 or v.ndim != 4 or v.shape != v0 or v.shape[1:] != (3, IMAGE_SIZE, IMAGE_SIZE):
                raise ValueError(f"Synchformer batch item {i}: expected uint8 video (F, 3, 224, 224) like item 0 "
                                 f"{v0}, got {v.dtype} {v.shape}")
            if a.dtype != np.float32 or a.shape != a0 or a.ndim != 1:
                raise ValueError(f"Synchformer batch item {i}: expected float32 audio {a0}, got {a.dtype} {a.shape}")

    def video_features(self, videos: list[np.ndarray]) -> "torch.Tensor":
        """MotionFormer features of every 16-frame segment: B x (F, 3, 224, 224) uint8 -> (B, S, 8, 768)."""
        import torch

        model = self._model()
        x = torch.from_numpy(np.stack(videos)).to(self.device)                    # (B, F, 3, H, W) uint8
        seg = video_segments(x)                                                   # (B, S, 16, 3, H, W) view
        b, s = seg.shape[:2]
        out = []
        for i in range(0, b * s, max(self.video_chunk, 1)):
            # materialise (and convert to float) only one chunk of overlapping windows at a time
            chunk = torch.stack([seg[k // s, k % s] for k in range(i, min(i + self.video_chunk, b * s))])
            out.append(model.extract_vfeats(pixels_to_unit(chunk)))             # (n, 8, D)
        return torch.cat(out).view(b, s, *out[0].shape[1:])

    def audio_features(self, audios: list[np.ndarray]) -> "torch.Tensor":
        """AST features of every 10240-sample segment: B x (N,) float32 -> (B, S, 6, 768)."""
        import torch

        model = self._model()
        x = torch.from_numpy(np.stack(audios)).to(self.device)                    # (B, N)
        mel = log_mel(audio_segments(x), self._fbank)                             # (B, S, 128, 66)
        b, s = mel.shape[:2]
        feats = model.extract_afeats(mel.reshape(b * s, *mel.shape[2:]))          # (B*S, 6, D)
        return feats.view(b, s, *feats.shape[1:])

    def group_logits(self, vfeats: "torch.Tensor", afeats: "torch.Tensor") -> "torch.Tensor":
        """Offset logits of every official 14-segment group: (B, S, 8, D), (B, S, 6, D) -> (B, G, 21)."""
        import torch

        model = self._model()
        if vfeats.shape[:2] != afeats.shape[:2]:
            raise ValueError(f"video and audio segment counts differ: {tuple(vfeats.shape[:2])} vs "
                             f"{tuple(afeats.shape[:2])}")
        b, s = vfeats.shape[:2]
        groups = [np.asarray(g, dtype=np.int64) for g in official_groups(s, GROUP_SEGMENTS)]
        idx = torch.from_numpy(np.stack(groups)).to(vfeats.device)               # (G, 14)
        g = idx.shape[0]
        v = vfeats[:, idx].flatten(0, 1)                                          # (B*G, 14, 8, D)
        a = afeats[:, idx].flatten(0, 1)                                          # (B*G, 14, 6, D)
        return model.compare_v_a(v, a).view(b, g, -1)

    def encode(self, batch: list[Prepared]) -> list[Features]:
        import torch

        if not batch:
            return []
        self._check(batch)
        out: list[Features] = []
        with torch.inference_mode():
            for start in range(0, len(batch), max(self.batch_size, 1)):
                chunk = batch[start:start + self.batch_size]
                vf = self.video_features([item["video"] for item in chunk])
                af = self.audio_features([item["audio"] for item in chunk])
                logits = self.group_logits(vf, af).float().cpu().numpy()          # (B, G, 21)
                for row in logits:
                    out.append({
                        "logits": row.astype(np.float32, copy=True),
                        "group_offsets": OFFSET_GRID[np.argmax(row, axis=-1)].astype(np.float32),
                    })
        return out
