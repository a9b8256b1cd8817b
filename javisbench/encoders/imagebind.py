"""ImageBind-Huge: ib_tv / ib_ta / ib_av inputs (``imagebind``) and AVHScore / JavisScore
inputs (``imagebind-avh``), sharing one loaded model.

The network is the ``imagebind-unofficial`` package's ``ImageBindModel`` built with the
ImageBind-Huge sizes (vision ViT-H 1280-d x 32, text 1024-d x 24, audio 768-d x 12, output
1024-d) and loaded from the official ``imagebind_huge.pth`` (``strict=True``).  Only the
package's model classes are imported (its ``imagebind.data`` needs torchaudio/pytorchvideo);
all preprocessing is written here from the official evaluator's definition
(``spec/official-javisbench.md`` sections 4.4 and 4.9).  The unused depth/thermal/IMU towers
are dropped after the strict load.

Embeddings are the model's *post-processed* outputs, as the official code scores them:
vision ``v / |v|``; text ``exp(s) * t / |t|`` (learned logit scale ``s``); audio
``20 * a / |a|``; a multi-clip input (5 x 3 video clips, 3 audio clips) is the plain mean of
its post-processed clip embeddings, not re-normalised.

Two encoder ids, so a user who wants only ib_* never pays for a ViT-H pass over every frame:

* ``imagebind``: ``text_video`` (1024,), ``text_audio`` (1024,), ``video`` (1024,), ``audio`` (1024,).
* ``imagebind-avh``: ``audio`` (1024,) (the same whole-clip audio embedding, recomputed: three
  audio clips are cheap), ``frames`` (T,1024), ``window_audio`` (M,1024) and
  ``window_frame_idx`` (M,N) (frame indices stored as exact float32 integers).

Both load through a process-wide cache keyed by the checkpoint file, architecture and device,
so running the two together holds one ImageBind in memory.

The BPE vocabulary (``bpe_simple_vocab_16e6.txt.gz``) is the one shipped inside the
``imagebind`` package (it is code, not weights: the official evaluator reads it from its
source tree; it is byte-identical to OpenAI CLIP's).  Its sha256 is checked against
:data:`BPE_SHA256` and recorded beside the checkpoint hash in the encoder fingerprint.

Protocol fields read here:

* ``imagebind_audio_channel0`` -- official (True): the original ``waveform2melspec`` behaviour,
  i.e. the fbank of channel 0 only **and** the per-clip mean subtracted in place on views of one
  shared waveform (overlapping audio clips and JavisScore windows see each other's shifts; up to
  0.1 in the normalised fbank of later windows on the golden clips).  Fixed (False): the channel
  mean, each clip/window on its own copy.
* ``javis_window_s``, ``javis_overlap_s``, ``javis_aligned_windows`` -- the JavisScore windows
  (``metrics.avh.javis_windows``).

Resampling to 16 kHz is torchaudio's default windowed-sinc (Hann) resampler under both
protocols (``protocol.resample`` is the librosa readers' choice and does not apply).

Licence: ImageBind's code and weights are CC BY-NC-SA 4.0 (non-commercial).
"""
from __future__ import annotations

import hashlib
import importlib.util
import math
import sys
import threading
import types
import weakref
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Mapping, Sequence

import numpy as np

from javisbench.encoders.base import Encoder, Features, Prepared, SampleError
from javisbench.weights import BadWeightsError, WeightFile, sha256_of

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import nn

    from javisbench.decode import DecodedClip
    from javisbench.protocol import Protocol

IMAGEBIND_HUGE_WEIGHTS = WeightFile(
    name="imagebind_huge.pth",
    url="https://dl.fbaipublicfiles.com/imagebind/imagebind_huge.pth",
    license="CC BY-NC-SA 4.0",
    note="ImageBind code and weights are licensed for non-commercial use only.",
)

#: ``ImageBindModel`` keyword arguments of ImageBind-Huge (the official ``imagebind_huge``).
HUGE_ARCH: Mapping[str, Any] = types.MappingProxyType(dict(
    vision_embed_dim=1280, vision_num_blocks=32, vision_num_heads=16,
    text_embed_dim=1024, text_num_blocks=24, text_num_heads=16,
    out_embed_dim=1024, audio_drop_path=0.1, imu_drop_path=0.7,
))
#: The modalities the benchmark uses; the other towers are dropped after loading.
USED_MODALITIES = ("vision", "text", "audio")

BPE_NAME = "bpe_simple_vocab_16e6.txt.gz"
#: sha256 of the CLIP/ImageBind BPE merges file (identical in ImageBind, open_clip and CLIP).
BPE_SHA256 = "924691ac288e54409236115652ad4aa250f48203de50a9e4722a6ecd48d6804a"
CONTEXT_LENGTH = 77

#: CLIP pixel statistics (ImageBind's vision transforms).
from javisbench.views import CLIP_MEAN, CLIP_STD  # noqa: E402  (OpenAI CLIP normalisation, one copy)
IMAGE_SIZE = 224

#: ImageBind audio: 16 kHz, 3 clips of 2 s, 128 mel x 204 frames, normalised (x - mean) / std.
AUDIO_SR = 16000
AUDIO_CLIP_S = 2
AUDIO_CLIPS = 3
NUM_MEL_BINS = 128
TARGET_FRAMES = 204
AUDIO_MEAN = -4.268
AUDIO_STD = 9.138
#: ImageBind video: 5 clips of 2 s, 2 frames each (first and last), 3 spatial crops.
VIDEO_CLIP_S = 2
VIDEO_CLIPS = 5
VIDEO_CLIP_FRAMES = 2
SPATIAL_CROPS = 3


# ---------------------------------------------------------------------------------------------
# the package
# ---------------------------------------------------------------------------------------------
def import_imagebind_models() -> types.ModuleType:
    """``imagebind.models.imagebind_model`` without running ``imagebind/__init__.py``.

    The package's ``__init__`` imports ``imagebind.data`` (torchaudio, pytorchvideo,
    pkg_resources: all unusable here), so a bare package module is registered first and only
    the ``models`` subpackage executes.
    """
    if "imagebind" not in sys.modules:
        spec = importlib.util.find_spec("imagebind")
        if spec is None or not spec.submodule_search_locations:
            raise ModuleNotFoundError(
                "ImageBind needs the `imagebind-unofficial` package (its model classes only): "
                "pip install --no-deps imagebind-unofficial  (plus: timm einops ftfy regex iopath)"
            )
        pkg = types.ModuleType("imagebind")
        pkg.__path__ = list(spec.submodule_search_locations)
        pkg.__file__, pkg.__spec__ = spec.origin, spec
        sys.modules["imagebind"] = pkg
    from imagebind.models import imagebind_model

    return imagebind_model


def bpe_path() -> Path:
    """The BPE vocabulary shipped in the ``imagebind`` package."""
    spec = importlib.util.find_spec("imagebind")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("the `imagebind-unofficial` package is not installed (it ships the BPE vocabulary)")
    return Path(list(spec.submodule_search_locations)[0]) / "bpe" / BPE_NAME


def build_model(arch: Mapping[str, Any] | None = None) -> "nn.Module":
    """An ``ImageBindModel`` of the given sizes (default ImageBind-Huge), random init, eval mode."""
    model = import_imagebind_models().ImageBindModel(**dict(HUGE_ARCH if arch is None else arch))
    return model.eval()


def drop_unused_towers(model: "nn.Module", keep: Sequence[str] = USED_MODALITIES) -> "nn.Module":
    """Delete the towers of modalities the benchmark never feeds (depth, thermal, IMU)."""
    for part in ("modality_preprocessors", "modality_trunks", "modality_heads", "modality_postprocessors"):
        md = getattr(model, part)
        for name in [k for k in md.keys() if k not in keep]:
            del md[name]
    return model


# ---------------------------------------------------------------------------------------------
# text
# ---------------------------------------------------------------------------------------------
class Tokenizer:
    """ImageBind's BPE tokenizer with the official truncation rule.

    ``tokens = [SOT] + bpe(text) + [EOT]``, cut to the first 77 (the EOT is *not* restored when
    a long text is cut: the text head then pools the largest token id), zero padded.
    The ``imagebind-unofficial`` repack's own ``__call__`` restores the EOT, so only its BPE
    ``encode`` is used.
    """

    def __init__(self, vocab: str | Path | None = None, context_length: int = CONTEXT_LENGTH) -> None:
        path = Path(vocab) if vocab is not None else bpe_path()
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != BPE_SHA256:
            raise BadWeightsError(f"{path}: sha256 {digest}, expected the CLIP/ImageBind BPE vocabulary {BPE_SHA256}")
        mp = import_imagebind_multimodal_preprocessors()
        self._bpe = mp.SimpleTokenizer(bpe_path=str(path), context_length=context_length)
        self.sot = self._bpe.encoder["<|startoftext|>"]
        self.eot = self._bpe.encoder["<|endoftext|>"]
        self.context_length = context_length
        self.sha256 = digest

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        """Token ids ``(len(texts), 77)`` int64."""
        out = np.zeros((len(texts), self.context_length), dtype=np.int64)
        for i, text in enumerate(texts):
            ids = ([self.sot] + self._bpe.encode(text) + [self.eot])[: self.context_length]
            out[i, : len(ids)] = ids
        return out


def import_imagebind_multimodal_preprocessors() -> types.ModuleType:
    import_imagebind_models()
    from imagebind.models import multimodal_preprocessors

    return multimodal_preprocessors


_TOKENIZERS: dict[str, Tokenizer] = {}
_TOKENIZER_LOCK = threading.Lock()


def get_tokenizer() -> Tokenizer:
    """The process-wide tokenizer of the package's vocabulary (built once)."""
    with _TOKENIZER_LOCK:
        key = str(bpe_path())
        if key not in _TOKENIZERS:
            _TOKENIZERS[key] = Tokenizer(key)
        return _TOKENIZERS[key]


# ---------------------------------------------------------------------------------------------
# clip timing (pytorchvideo ConstantClipsPerVideoSampler, exact fractions)
# ---------------------------------------------------------------------------------------------
def clip_spans(duration: float, clip_s: int, clips: int) -> list[tuple[Fraction, Fraction]]:
    """``[(start, end)]`` of ``clips`` clips of ``clip_s`` seconds spread over ``duration``.

    ``start_i = i * max(duration - clip_s, 0) / (clips - 1)`` as exact fractions of the float
    duration (pytorchvideo's ``ConstantClipsPerVideoSampler``); ``end_i = start_i + clip_s``.

    Example:
        >>> [(float(s), float(e)) for s, e in clip_spans(4.0, 2, 3)]
        [(0.0, 2.0), (1.0, 3.0), (2.0, 4.0)]
    """
    max_start = Fraction(max(duration - clip_s, 0))    # float subtraction first, as the original
    step = max_start / max(clips - 1, 1)
    return [(step * i, step * i + clip_s) for i in range(clips)]


def video_clip_frame_indices(n_frames: int, fps: float, clips: int = VIDEO_CLIPS,
                             clip_s: int = VIDEO_CLIP_S, frames_per_clip: int = VIDEO_CLIP_FRAMES) -> np.ndarray:
    """Frame indices ``(clips, frames_per_clip)`` of ImageBind's video clips.

    Clip ``i`` spans frames ``[ceil(fps*s_i), min(ceil(fps*e_i), N))`` with the spans of
    :func:`clip_spans` over ``duration = N / fps`` (pytorchvideo's decord reader), and
    ``UniformTemporalSubsample`` keeps ``long(linspace(0, t-1, k))`` of its ``t`` frames (for
    k = 2: the first and the last).

    Raises:
        ValueError: no frames, a non-positive fps, or a clip holding no frame.
    """
    import torch

    if n_frames <= 0 or not fps > 0:
        raise ValueError(f"video needs frames and a positive fps; got {n_frames} frames at {fps} fps")
    duration = float(n_frames) / float(fps)
    out = np.empty((clips, frames_per_clip), dtype=np.int64)
    for i, (s, e) in enumerate(clip_spans(duration, clip_s, clips)):
        # float * Fraction is evaluated in floating point, as in the original.
        first = math.ceil(float(fps) * float(s))
        stop = min(math.ceil(float(fps) * float(e)), n_frames)
        t = stop - first
        if t <= 0:
            raise ValueError(f"ImageBind video clip {i} ({float(s):.3f}-{float(e):.3f} s) holds no frame "
                             f"of a {n_frames}-frame video at {fps} fps")
        sub = torch.linspace(0, t - 1, frames_per_clip).clamp(0, t - 1).long().numpy()
        out[i] = first + sub
    return out


# ---------------------------------------------------------------------------------------------
# vision
# ---------------------------------------------------------------------------------------------
def vision_clips(frames: np.ndarray, fps: float) -> np.ndarray:
    """ImageBind's video input ``(15, 3, 2, 224, 224)`` float32 from all frames of a video.

    Per clip of :func:`video_clip_frame_indices`: ``x / 255``, ``ShortSideScale(224)`` (torch
    bilinear, ``align_corners=False``, no antialias; long side ``floor(L * 224 / S)``), CLIP
    mean/std, then 3 crops of 224 at the start, centre (``ceil((L-224)/2)``) and end of the
    long side.  Rows are clip-major: row ``3*i + c`` is clip ``i``, crop ``c``.

    Args:
        frames: ``(T, H, W, 3)`` uint8 RGB, every frame of the stream.
        fps: the stream's average frame rate.
    """
    import torch

    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be (T, H, W, 3) uint8; got {frames.shape} {frames.dtype}")
    idx = video_clip_frame_indices(frames.shape[0], fps)                         # (5, 2)
    x = torch.from_numpy(frames[idx.reshape(-1)]).permute(0, 3, 1, 2).to(torch.float32)   # (10, 3, H, W)
    x = x / 255.0
    h, w = x.shape[-2:]
    if w < h:
        new_h, new_w = int(math.floor(float(h) / w * IMAGE_SIZE)), IMAGE_SIZE
    else:
        new_h, new_w = IMAGE_SIZE, int(math.floor(float(w) / h * IMAGE_SIZE))
    # bilinear works plane by plane, so resizing (10, 3) planes equals the original's (3, 2) per clip
    x = torch.nn.functional.interpolate(x, size=(new_h, new_w), mode="bilinear", align_corners=False)
    mean = torch.tensor(CLIP_MEAN, dtype=torch.float32)[:, None, None]
    std = torch.tensor(CLIP_STD, dtype=torch.float32)[:, None, None]
    x = x.sub_(mean).div_(std)
    x = x.reshape(VIDEO_CLIPS, VIDEO_CLIP_FRAMES, 3, new_h, new_w).permute(0, 2, 1, 3, 4)  # (5, 3, 2, h, w)
    y_mid = int(math.ceil((new_h - IMAGE_SIZE) / 2))
    x_mid = int(math.ceil((new_w - IMAGE_SIZE) / 2))
    if new_h > new_w:
        offsets = [(0, x_mid), (y_mid, x_mid), (new_h - IMAGE_SIZE, x_mid)]
    else:
        offsets = [(y_mid, 0), (y_mid, x_mid), (y_mid, new_w - IMAGE_SIZE)]
    crops = [x[:, :, :, oy:oy + IMAGE_SIZE, ox:ox + IMAGE_SIZE] for oy, ox in offsets]
    out = torch.stack(crops, dim=1).reshape(VIDEO_CLIPS * SPATIAL_CROPS, 3, VIDEO_CLIP_FRAMES, IMAGE_SIZE, IMAGE_SIZE)
    return np.ascontiguousarray(out.numpy())


def avh_frames(frames: np.ndarray) -> np.ndarray:
    """Every frame, PIL bicubic short side 224 + centre crop: uint8 ``(T, 224, 224, 3)``.

    The AVHScore/JavisScore image transform (``Resize(224, BICUBIC)``, ``CenterCrop(224)`` on
    PIL images); ``ToTensor`` and the CLIP normalisation follow in :func:`normalize_frames`.
    Kept uint8 so a prepared sample is 4x smaller than its model input.
    """
    from javisbench.views import resize_short_crop_pil

    return resize_short_crop_pil(frames, IMAGE_SIZE)


def normalize_frames(frames: "np.ndarray | torch.Tensor", device: "str | torch.device" = "cpu") -> "torch.Tensor":
    """``ToTensor`` + CLIP ``Normalize``: uint8 ``(T, H, W, 3)`` -> float32 ``(T, 3, H, W)``.

    ``x = (u8 / 255 - mean_c) / std_c`` in float32, in that order (torchvision's arithmetic).
    """
    import torch

    x = torch.as_tensor(frames, device=device).permute(0, 3, 1, 2).to(torch.float32).div(255)
    mean = torch.tensor(CLIP_MEAN, dtype=torch.float32, device=x.device)[:, None, None]
    std = torch.tensor(CLIP_STD, dtype=torch.float32, device=x.device)[:, None, None]
    return x.sub_(mean).div_(std)


# ---------------------------------------------------------------------------------------------
# audio
# ---------------------------------------------------------------------------------------------
def audio_16k(audio: np.ndarray, sr: int) -> np.ndarray:
    """All channels at 16 kHz, float32 ``(C, L16)``: torchaudio's default resampler
    (windowed sinc, Hann, 6 zero crossings, rolloff 0.99) as ``views.resample(kind="sinc_hann")``."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 2:
        raise ValueError(f"audio must be (C, L); got shape {audio.shape}")
    if int(sr) == AUDIO_SR:
        return audio
    from javisbench.views import resample

    return np.asarray(resample(audio, int(sr), AUDIO_SR, kind="sinc_hann"), dtype=np.float32)


def _melspec(signal: "torch.Tensor") -> "torch.Tensor":
    """One clip's normalised fbank ``(1, 128, 204)`` from a mono 16 kHz signal ``(L,)``."""
    import torch

    from javisbench.kaldi import fbank_batch

    feats = fbank_batch(signal.unsqueeze(0), sample_frequency=AUDIO_SR, num_mel_bins=NUM_MEL_BINS,
                        frame_length=25.0, frame_shift=10.0, window_type="hanning", dither=0.0,
                        htk_compat=True, use_energy=False)[0].T                 # (128, T)
    t = feats.shape[1]
    if t < TARGET_FRAMES:
        feats = torch.nn.functional.pad(feats, (0, TARGET_FRAMES - t), mode="constant", value=0.0)
    else:
        feats = feats[:, :TARGET_FRAMES]
    # torchvision Normalize: sub the float32 mean, then div the float32 std (pads become 0.467)
    return ((feats - torch.tensor(AUDIO_MEAN)) / torch.tensor(AUDIO_STD)).unsqueeze(0)


def imagebind_audio_clips(wave: "torch.Tensor", channel0: bool, *, dedupe: bool = False) -> "torch.Tensor":
    """ImageBind's audio input ``(K, 1, 128, 204)`` of one 16 kHz waveform ``(C, L)``.

    3 clips of 2 s at :func:`clip_spans` (``[int(s*16000), int(e*16000))``); per clip the mean
    is subtracted, then the kaldi fbank (128 mel, 25/10 ms, Hanning, htk_compat, no dither),
    transposed, zero padded / cut to 204 frames, ``(x + 4.268) / 9.138``.

    * ``channel0=True`` (official, quirk): the mean of the whole (C, L) clip is subtracted
      **in place** from ``wave`` (the original's clips are views of one tensor, so an
      overlapping later clip -- or a later JavisScore window sharing ``wave`` -- sees the
      shifted samples), and the fbank reads channel 0 only.
    * ``channel0=False`` (fixed): the channel mean, each clip on its own copy.

    ``dedupe=True`` computes the fbank once per distinct span, so ``K`` is 1 when every clip is
    the same span (audio of 2 s or less, e.g. a JavisScore window); in the official mode the
    repeated in-place subtractions are still applied (they change only later views).

    Raises:
        ValueError: an empty waveform, or a clip shorter than one 25 ms frame.
    """
    import torch

    if wave.ndim != 2 or wave.shape[1] == 0:
        raise ValueError(f"audio must be (C, L) with L > 0; got {tuple(wave.shape)}")
    duration = wave.shape[1] / AUDIO_SR
    clips: list[torch.Tensor] = []
    seen: list[tuple[int, int]] = []
    for s, e in clip_spans(duration, AUDIO_CLIP_S, AUDIO_CLIPS):
        a, b = int(s * AUDIO_SR), int(e * AUDIO_SR)           # exact Fraction products, truncated
        if channel0:
            view = wave[:, a:b]
            view -= view.mean()                                # the in-place quirk
            mono = view[0]
        else:
            mono = wave[:, a:b].mean(dim=0)
            mono = mono - mono.mean()
        if dedupe and (a, b) in seen:
            continue
        seen.append((a, b))
        if mono.shape[0] < 400:
            raise ValueError(f"an ImageBind audio clip has {mono.shape[0]} samples at 16 kHz; the fbank needs >= 400 (25 ms)")
        clips.append(_melspec(mono))
    return torch.stack(clips)


def audio_input(audio: np.ndarray, sr: int, channel0: bool) -> np.ndarray:
    """The whole-clip ImageBind audio input ``(3, 1, 128, 204)`` float32 (ib_ta, ib_av, AVHScore)."""
    import torch

    wave = torch.from_numpy(np.array(audio_16k(audio, sr), dtype=np.float32, copy=True))
    return imagebind_audio_clips(wave, channel0).numpy()


def window_audio_inputs(audio16k: np.ndarray, starts: Sequence[int], length: int, channel0: bool) -> np.ndarray:
    """JavisScore window audio inputs ``(M, K, 1, 128, 204)`` float32.

    Window ``m`` is ``audio16k[:, starts[m] : starts[m] + length]`` through the ImageBind audio
    transform.  A window of <= 2 s makes 3 identical clips in the original, whose post-processed
    embeddings are averaged; the average of identical embeddings is the embedding itself, so
    the clip is computed once (``K = 1``).  ``K = 3`` only if a window is longer than 2 s.
    Official mode: the windows are views of one waveform, transformed in order, so the in-place
    mean subtraction of a window shifts the overlapping part of the next ones (reproduced).
    """
    import torch

    wave = torch.from_numpy(np.array(audio16k, dtype=np.float32, copy=True))
    out = []
    for s in starts:
        view = wave[:, int(s):int(s) + int(length)]
        if not channel0:
            view = view.clone()
        out.append(imagebind_audio_clips(view, channel0, dedupe=True))
    k = {o.shape[0] for o in out}
    if len(k) != 1:   # windows of equal length always give equal K; guard the stack anyway
        raise ValueError(f"JavisScore windows gave different clip counts {sorted(k)}")
    return torch.stack(out).numpy()


# ---------------------------------------------------------------------------------------------
# the model, shared between the two encoder ids
# ---------------------------------------------------------------------------------------------
_MODELS: "weakref.WeakValueDictionary[tuple, nn.Module]" = weakref.WeakValueDictionary()
_MODELS_LOCK = threading.Lock()


def load_model(path: Path, arch: Mapping[str, Any] | None = None, device: str = "cpu") -> "nn.Module":
    """ImageBind from an official-format checkpoint (``strict=True``), unused towers dropped,
    eval mode, on ``device``; one instance per (file, size, mtime, arch, device) per process."""
    import torch

    st = path.stat()
    arch_d = dict(HUGE_ARCH if arch is None else arch)
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns, tuple(sorted(arch_d.items())), str(device))
    with _MODELS_LOCK:
        model = _MODELS.get(key)
        if model is not None:
            return model
        model = build_model(arch_d)
        from javisbench.encoders.checkpoints import read_checkpoint

        # memory-mapped when the file is a zip archive (a legacy torch.save file cannot be)
        state = read_checkpoint(path, "imagebind", IMAGEBIND_HUGE_WEIGHTS, mmap=True)
        if not isinstance(state, Mapping):
            raise BadWeightsError(f"{path}: expected a state dict, got {type(state).__name__}")
        want = model.state_dict()
        missing = [k for k in want if k not in state]
        unexpected = [k for k in state if k not in want]
        shapes = [f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}" for k, v in want.items()
                  if k in state and tuple(state[k].shape) != tuple(v.shape)]
        if missing or unexpected or shapes:
            raise BadWeightsError(
                f"{path} is not an ImageBind checkpoint of the expected size: "
                f"{len(missing)} missing (e.g. {missing[:3]}), {len(unexpected)} unexpected "
                f"(e.g. {unexpected[:3]}), {len(shapes)} misshaped (e.g. {shapes[:3]})"
            )
        model.load_state_dict(state, strict=True)
        del state
        drop_unused_towers(model)
        model = model.to(device).eval().requires_grad_(False)
        _MODELS[key] = model
        return model


def embed(model: "nn.Module", modality: str, x: "torch.Tensor") -> "torch.Tensor":
    """Post-processed embeddings of a batch of single items ``(N, ...) -> (N, D)``.

    The package's modules in the order of ``ImageBindModel.forward``: preprocessor, trunk,
    head, post-processor; the caller averages multi-clip inputs.  ``x``: text ``(N, 77)`` int64;
    vision ``(N, 3, 224, 224)`` images or ``(N, 3, 2, 224, 224)`` clips; audio ``(N, 1, 128, 204)``.
    """
    pre = model.modality_preprocessors[modality](**{modality: x})
    h = model.modality_trunks[modality](**pre["trunk"])
    h = model.modality_heads[modality](h, **pre["head"])
    return model.modality_postprocessors[modality](h)


# ---------------------------------------------------------------------------------------------
# encoders
# ---------------------------------------------------------------------------------------------
class ImageBindEncoder(Encoder):
    """ImageBind-Huge text, video and audio embeddings (ib_tv, ib_ta, ib_av).

    ``prepare`` -> ``tokens`` (2, 77) int64 (video prompt, audio prompt), ``video``
    (15, 3, 2, 224, 224) float32, ``audio`` (3, 1, 128, 204) float32.
    ``encode`` -> ``text_video``, ``text_audio``, ``video``, ``audio``: (1024,) float32 each.

    Batching: one forward per input kind for the whole batch, split so that no forward holds
    more than ``batch_size`` samples' worth of items (2 texts, 15 video clips or 3 audio
    clips per sample; the original ran 8 samples: 16 texts, 120 video clips, 24 audio clips).

    Args:
        arch: ``ImageBindModel`` keyword arguments (default ImageBind-Huge); tests use tiny sizes.
    """

    id: ClassVar[str] = "imagebind"
    version: ClassVar[str] = "1"
    weight_files: ClassVar[tuple[WeightFile, ...]] = (IMAGEBIND_HUGE_WEIGHTS,)
    uses_text: ClassVar[bool] = True
    description: ClassVar[str] = "ImageBind-Huge text / video (5x2 s, 3 crops) / audio (3x2 s fbank) embeddings"
    protocol_fields: ClassVar[tuple[str, ...]] = ("imagebind_audio_channel0",)
    outputs: ClassVar[dict[str, str]] = {"text_video": "(1024,)", "text_audio": "(1024,)", "video": "(1024,)",
                                         "audio": "(1024,)"}

    def __init__(self, protocol: "Protocol", device: str = "cpu", batch_size: int = 8, *,
                 arch: Mapping[str, Any] | None = None) -> None:
        super().__init__(protocol, device=device, batch_size=batch_size)
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.arch = dict(HUGE_ARCH if arch is None else arch)
        self.model: "nn.Module | None" = None

    # -- weights ------------------------------------------------------------------------------
    def load(self, weights_dir: Path) -> None:
        path = self.weight_paths(Path(weights_dir))[IMAGEBIND_HUGE_WEIGHTS.name]
        tok = get_tokenizer()
        self.model = load_model(path, self.arch, self.device)
        self.weights_sha256[IMAGEBIND_HUGE_WEIGHTS.name] = sha256_of(path)
        self.weights_sha256[BPE_NAME] = tok.sha256

    def attach(self, model: "nn.Module", weights_id: str = "injected") -> None:
        """Use an already built ImageBind (tests, or a caller sharing its own instance)."""
        self.model = model.to(self.device).eval().requires_grad_(False)
        self.weights_sha256[IMAGEBIND_HUGE_WEIGHTS.name] = weights_id
        self.weights_sha256[BPE_NAME] = get_tokenizer().sha256

    # -- data -----------------------------------------------------------------------------------
    def _audio(self, clip: "DecodedClip") -> tuple[np.ndarray, np.ndarray]:
        """``(whole-clip audio input (3, 1, 128, 204), 16 kHz waveform (C, L16))`` of a sample."""
        audio = np.asarray(clip.audio)
        if audio.ndim != 2 or audio.shape[1] == 0:
            raise SampleError(f"{clip.sample_id}: ImageBind needs audio shaped (C, L>0); got {audio.shape}")
        if not np.isfinite(audio).all():
            raise SampleError(f"{clip.sample_id}: audio holds NaN or infinite samples")
        try:
            wave = audio_16k(audio, clip.sr)
            return audio_input(wave, AUDIO_SR, self.protocol.imagebind_audio_channel0), wave
        except ValueError as err:
            raise SampleError(f"{clip.sample_id}: {err}") from None

    def prepare(self, clip: "DecodedClip", text: str, audio_text: str) -> Prepared:
        frames = np.asarray(clip.frames)
        if frames.ndim != 4 or frames.shape[0] == 0 or frames.shape[-1] != 3:
            raise SampleError(f"{clip.sample_id}: ImageBind needs frames shaped (T>0, H, W, 3); got {frames.shape}")
        try:
            video = vision_clips(frames, clip.fps)
        except ValueError as err:
            raise SampleError(f"{clip.sample_id}: {err}") from None
        tokens = get_tokenizer()([text, audio_text or text])
        return {"tokens": tokens, "video": video, "audio": self._audio(clip)[0]}

    # -- model ----------------------------------------------------------------------------------
    def _forward(self, modality: str, items: np.ndarray, per_forward: int, *, frames: bool = False) -> np.ndarray:
        """Post-processed embeddings ``(N, D)`` of ``items`` in forwards of <= ``per_forward`` items."""
        import torch

        if self.model is None:
            raise RuntimeError(f"encoder {self.id!r}: call load(weights_dir) (or attach(model)) before encoding")
        out = []
        with torch.inference_mode():
            for i in range(0, items.shape[0], per_forward):
                chunk = np.ascontiguousarray(items[i:i + per_forward])
                x = normalize_frames(chunk, device=self.device) if frames else torch.from_numpy(chunk).to(self.device)
                out.append(embed(self.model, modality, x).float().cpu())
        if not out:
            raise ValueError(f"nothing to embed for {modality!r}: got {items.shape[0]} items")
        return torch.cat(out).numpy()

    @staticmethod
    def _clip_mean(emb: np.ndarray, clips: int) -> np.ndarray:
        """Mean over each item's ``clips`` consecutive clip embeddings (no re-normalisation)."""
        import torch

        t = torch.from_numpy(emb)
        return t.reshape(-1, clips, t.shape[-1]).mean(dim=1).numpy()

    def embed_text(self, tokens: np.ndarray) -> np.ndarray:
        """Text embeddings ``(N, D)`` of token rows ``(N, 77)``: ``exp(s) t / |t|``."""
        return self._forward("text", np.asarray(tokens, dtype=np.int64), 2 * self.batch_size)

    def embed_video(self, video: np.ndarray) -> np.ndarray:
        """Video embeddings ``(B, D)`` of ``(B, 15, 3, 2, 224, 224)``: mean of the 15 clips' ``v / |v|``."""
        b, k = video.shape[:2]
        emb = self._forward("vision", video.reshape(b * k, *video.shape[2:]), k * self.batch_size)
        return self._clip_mean(emb, k)

    def embed_audio(self, audio: np.ndarray) -> np.ndarray:
        """Audio embeddings ``(B, D)`` of ``(B, K, 1, 128, 204)``: mean of the K clips' ``20 a / |a|``."""
        b, k = audio.shape[:2]
        emb = self._forward("audio", audio.reshape(b * k, *audio.shape[2:]), AUDIO_CLIPS * self.batch_size)
        return self._clip_mean(emb, k)

    def embed_frames(self, frames: np.ndarray) -> np.ndarray:
        """Image embeddings ``(T, D)`` of uint8 ``(T, 224, 224, 3)`` frames (normalised on the device);
        ImageBind repeats a still image to its 2-frame clip size itself."""
        return self._forward("vision", np.asarray(frames), VIDEO_CLIPS * SPATIAL_CROPS * self.batch_size, frames=True)

    def encode(self, batch: list[Prepared]) -> list[Features]:
        if not batch:
            return []
        n = len(batch)
        tokens = np.concatenate([b["tokens"] for b in batch])              # (2B, 77): v0, a0, v1, a1, ...
        text = self.embed_text(tokens).reshape(n, 2, -1)
        video = self.embed_video(np.stack([b["video"] for b in batch]))
        audio = self.embed_audio(np.stack([b["audio"] for b in batch]))
        return [
            {"text_video": text[i, 0].copy(), "text_audio": text[i, 1].copy(),
             "video": video[i].copy(), "audio": audio[i].copy()}
            for i in range(n)
        ]


class ImageBindAVHEncoder(ImageBindEncoder):
    """ImageBind-Huge inputs of AVHScore and JavisScore.

    ``prepare`` -> ``audio`` (3, 1, 128, 204) (whole clip, as ``imagebind``), ``frames``
    (T, 224, 224, 3) uint8 (every frame, PIL bicubic + centre crop), ``window_audio``
    (M, K, 1, 128, 204) (K = 1: a 2 s window's 3 identical clips embedded once),
    ``window_frame_idx`` (M, N) int64 (the frames of each window).
    ``encode`` -> ``audio`` (1024,), ``frames`` (T, 1024), ``window_audio`` (M, 1024),
    ``window_frame_idx`` (M, N) float32 (exact integers).

    Windows come from ``metrics.avh.javis_windows`` under the protocol's window size, overlap
    and alignment; the window audio is the 16 kHz waveform (all channels) sliced per window.
    Frames and window clips are embedded in forwards of at most ``15 * batch_size`` images /
    ``3 * batch_size`` audio clips (the size of one ``imagebind`` forward).
    """

    id: ClassVar[str] = "imagebind-avh"
    uses_text: ClassVar[bool] = False
    description: ClassVar[str] = "ImageBind-Huge every-frame image embeddings, whole-clip and per-window audio embeddings"
    protocol_fields: ClassVar[tuple[str, ...]] = ("imagebind_audio_channel0", "javis_window_s", "javis_overlap_s",
                                                  "javis_aligned_windows")
    outputs: ClassVar[dict[str, str]] = {"audio": "(1024,)", "frames": "(T, 1024)", "window_audio": "(M, 1024)",
                                         "window_frame_idx": "(M, N) exact integers"}

    def prepare(self, clip: "DecodedClip", text: str, audio_text: str) -> Prepared:
        from metrics.avh import javis_windows

        frames = np.asarray(clip.frames)
        if frames.ndim != 4 or frames.shape[0] == 0 or frames.shape[-1] != 3:
            raise SampleError(f"{clip.sample_id}: ImageBind needs frames shaped (T>0, H, W, 3); got {frames.shape}")
        if not clip.fps > 0:
            raise SampleError(f"{clip.sample_id}: fps must be positive, got {clip.fps}")
        audio, wave = self._audio(clip)
        p = self.protocol
        try:
            wins = javis_windows(frames.shape[0], wave.shape[1], clip.fps, sr=AUDIO_SR, window_s=p.javis_window_s,
                                 overlap_s=p.javis_overlap_s, aligned=p.javis_aligned_windows)
        except ValueError as err:
            raise SampleError(f"{clip.sample_id}: {err}") from None
        idx = wins.frame_index()                                             # (M, N) int64
        if idx.size == 0 or idx.max() >= frames.shape[0] or idx.min() < 0:
            raise SampleError(f"{clip.sample_id}: JavisScore windows {wins.video_starts} x {wins.video_len} frames "
                              f"do not fit a {frames.shape[0]}-frame video")
        try:
            win = window_audio_inputs(wave, wins.audio_starts, wins.audio_len, p.imagebind_audio_channel0)
        except ValueError as err:
            raise SampleError(f"{clip.sample_id}: {err}") from None
        return {"audio": audio, "frames": avh_frames(frames), "window_audio": win, "window_frame_idx": idx}

    def encode(self, batch: list[Prepared]) -> list[Features]:
        if not batch:
            return []
        audio = self.embed_audio(np.stack([b["audio"] for b in batch]))
        counts = [b["frames"].shape[0] for b in batch]
        frames = self.embed_frames(np.concatenate([b["frames"] for b in batch]))
        # every window of every sample in shared forwards; K clips per window averaged
        wins = [b["window_audio"] for b in batch]
        if len({w.shape[1:] for w in wins}) == 1:
            win_emb = self.embed_audio(np.concatenate(wins))
        else:   # K differs between samples (a window longer than 2 s somewhere): group per sample
            win_emb = np.concatenate([self.embed_audio(w) for w in wins])
        out: list[Features] = []
        f0 = w0 = 0
        for i, b in enumerate(batch):
            m = b["window_audio"].shape[0]
            out.append({
                "audio": audio[i].copy(),
                "frames": frames[f0:f0 + counts[i]].copy(),
                "window_audio": win_emb[w0:w0 + m].copy(),
                "window_frame_idx": b["window_frame_idx"].astype(np.float32),
            })
            f0 += counts[i]
            w0 += m
        return out
