"""Protocols: frozen, named, versioned values that fix every number-changing choice.

``javisbench-official`` reproduces the original JavisBench evaluation code, quirks included
(each quirk field names the behaviour it reproduces).  ``javisbench-fixed`` runs the same
metrics with the quirks corrected.  A protocol is written into every result; results under
different protocols are never ranked together.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Any, Literal


@dataclass(frozen=True)
class Protocol:
    name: str
    version: str
    description: str

    # ---- decoding ------------------------------------------------------------------------------
    decode_color_matrix: Literal["bt601", "tagged"] = "bt601"   # OpenCV 4.11: BT.601 whatever the tags say
    decode_apply_rotation: bool = False                          # OpenCV 4.11 ignores display rotation
    # a clip that decodes shorter than its container declares (a truncated file): "warn" scores
    # what decodes, as the original does; "fail" records the sample as failed.  Decides failure
    # vs warning only, never a feature value: not a decode field of the feature keys.
    incomplete_decode: Literal["warn", "fail"] = "warn"
    # ---- FVD / KVD (I3D) -------------------------------------------------------------------
    fvd_frames: int = 16                 # linspace frames over the whole clip (official README today: 24)
    image_size: int = 224                # letterbox size
    fvd_uint8_remap: bool = True         # quirk: uint8(clamp((x+1)*127.5)) on [0,1] frames -> [127,255]
    # ---- FVD / KVD / FAD loader: "vanilla" (linspace frames over the whole clip, first 4 s of audio)
    # or "mmdiffusion" (the MM-Diffusion loader: the clip's first window of mmdiff_clip_s seconds) ----
    fvd_mode: Literal["vanilla", "mmdiffusion"] = "vanilla"
    mmdiff_clip_s: float = 1.6           # window length; int(mmdiff_fps * mmdiff_clip_s) frames
    mmdiff_fps: float = 24.0             # frame rate the video is resampled to (torchvision VideoClips rule)
    mmdiff_size: int = 224               # loader letterbox (bicubic resize + zero pad); I3D then resizes to 224
    mmdiff_audio_sr: int = 16000         # moviepy reader rate: ffmpeg libswresample, 16-bit samples, channel 0
    mmdiff_windows: Literal["first", "all"] = "first"   # "all": every window at a one-frame stride (VideoClips)
    mmdiff_eval_num: int = 0             # "all": keep this many shuffled windows per side (0: every window)
    # ---- Fréchet / kernel statistics ----------------------------------------------------------
    fd_variant: Literal["official-f32-svd", "f64-sqrtm"] = "official-f32-svd"
    kvd_variant: Literal["official-centred-single", "subsets"] = "official-centred-single"
    kvd_subsets: int = 100
    kvd_subset_size: int = 1000
    fad_scale: float = 1e4               # quirk: FAD x 1e4
    # ---- audio shared --------------------------------------------------------------------------
    audio_sr: int = 16000
    max_audio_len_s: float = 4.0         # FAD, audio quality, DeSync
    resample: Literal["kaiser_best", "soxr_hq"] = "kaiser_best"   # librosa 0.9.2 default
    audiobox_official_reader: bool = True   # quirk: wrong-axis resampler, reader zero-padding counted as audio
    # ---- CLIP ----------------------------------------------------------------------------------
    clip_frames: int = 48
    clip_bgr: bool = True                # quirk: double channel swap, CLIP sees BGR
    clip_fp16_cuda: bool = True          # original keeps fp16 weights on CUDA
    # ---- CLAP ----------------------------------------------------------------------------------
    clap_sr: int = 48000
    clap_pad: Literal["zero", "repeat"] = "zero"   # quirk: padding=True overrides repeatpad
    clap_crop_seeded: bool = False       # quirk: unseeded random 10 s crop for longer clips
    clap_crop_seed: int = 0              # our crop of clips over 10 s is seeded (with the content hash) by this
    # ---- ImageBind / AVH / JavisScore ------------------------------------------------------------
    imagebind_audio_channel0: bool = True          # quirk: kaldi fbank on the left channel only
    javis_window_s: float = 2.0
    javis_overlap_s: float = 1.5
    javis_topk: float = 0.4
    javis_aligned_windows: bool = False  # quirk off: int(fps*w)-int(fps*o) video step drifts
    javis_clamp_k: bool = False          # quirk: k = int(0.4 N) may be 0 (the original returns NaN)
    # ---- AV-Align ------------------------------------------------------------------------------
    av_align_tolerance_frames: int = 1   # official: +-1 frame, strict
    av_align_flow_threshold: float = 0.0  # official: every flow peak counts; fixed: peaks below it are ignored
    # ---- DeSync --------------------------------------------------------------------------------
    desync_fps: int = 25
    desync_fix_group_assignment: bool = False      # quirk: group-major/sample-major reshape bug
    # ---- CAVP ----------------------------------------------------------------------------------
    cavp_fps: int = 4
    cavp_reencode: bool = True           # quirk: lossy libx264 re-encode of the 4 fps frames
    cavp_chunk_borders: bool = True      # quirk: 40-frame chunks without temporal context
    cavp_failure_as_zero: bool = False   # the original's 0.0 is only written to the official export
    # ---- VideoReward -----------------------------------------------------------------------------
    videoreward_bf16_cuda: bool = True   # the original runs bf16 (+ flash-attention 2) on CUDA; fp32 on CPU
    # ---- compute precision of the model encoders (part of their feature keys) --------------------
    # fp32: as written.  bf16/fp16: their forward passes run under torch.autocast (javisbench-fixed
    # on CUDA; bf16 also on CPU).  javisbench-official keeps what the original did instead
    # (clip_fp16_cuda, videoreward_bf16_cuda) and refuses another value.
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    # ---- statistics (never part of a feature key: changing them re-runs no model) --------------
    bootstrap: int = 1000                # resamples for per-sample metric CIs (mean of values)
    set_bootstrap: int = 100             # resamples for set-metric intervals (each one a full FD/MMD)
    ci_level: float = 0.95
    seed: int = 0                        # resampling and subset seeds

    def values(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def fingerprint(self) -> str:
        """Short hash of every value: part of every feature-store key."""
        blob = json.dumps(self.values(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    @property
    def windowed(self) -> bool:
        """FVD/KVD/FAD features are one row per window (several per clip), not one per clip."""
        return self.fvd_mode == "mmdiffusion" and self.mmdiff_windows == "all"

    def replace(self, **changes: Any) -> "Protocol":
        return dataclasses.replace(self, **changes)


OFFICIAL = Protocol(
    name="javisbench-official",
    version="1.0",
    description="Reproduces the original JavisBench evaluation code (JavisDiT b505b37), quirks included.",
)

FIXED = Protocol(
    name="javisbench-fixed",
    version="1.0",
    description="The same metrics with the original's quirks corrected (float64 statistics, RGB CLIP, "
    "aligned JavisScore windows, KVD subsets with std, seeded crops, channel mean audio).",
    decode_color_matrix="tagged",
    decode_apply_rotation=True,
    incomplete_decode="fail",
    fvd_uint8_remap=False,
    fd_variant="f64-sqrtm",
    kvd_variant="subsets",
    resample="soxr_hq",
    audiobox_official_reader=False,
    clip_bgr=False,
    clip_fp16_cuda=False,
    clap_pad="repeat",
    clap_crop_seeded=True,
    imagebind_audio_channel0=False,
    javis_aligned_windows=True,
    javis_clamp_k=True,
    desync_fix_group_assignment=True,
    av_align_flow_threshold=0.1,
    cavp_reencode=False,
    cavp_chunk_borders=False,
)

MMDIFFUSION_JAVISBENCH = OFFICIAL.replace(
    name="javisbench-mmdiffusion",
    description="The original tool's --fvd_mode mmdiffusion for FVD/KVD/FAD (MM-Diffusion's loader with the "
    "tool's defaults: 1.6 s windows, 38 frames at 24 fps letterboxed to 224, 16 kHz audio); every other "
    "metric as javisbench-official. For the legacy closed-set benches (Landscape, AIST++).",
    fvd_mode="mmdiffusion",
    fvd_uint8_remap=False,
)

MMDIFFUSION = MMDIFFUSION_JAVISBENCH.replace(
    name="mmdiffusion",
    description="MM-Diffusion's own evaluator for FVD/KVD/FAD: every 1.6 s window of every clip (16 frames at "
    "10 fps, one-frame stride) letterboxed to 64 then resized to 224 for I3D, 44.1 kHz audio, 2048 shuffled "
    "windows per side (seeded); every other metric as javisbench-official.",
    mmdiff_fps=10.0,
    mmdiff_size=64,
    mmdiff_audio_sr=44100,
    mmdiff_windows="all",
    mmdiff_eval_num=2048,
)

PROTOCOLS: dict[str, Protocol] = {p.name: p for p in (OFFICIAL, FIXED, MMDIFFUSION_JAVISBENCH, MMDIFFUSION)}

#: the protocol values the I3D / AudioCLIP reference features depend on (checked when a
#: reference file records them, so a reference built under one loader is never used under another)
REFERENCE_FIELDS = ("decode_color_matrix", "decode_apply_rotation", "fvd_frames", "image_size", "fvd_uint8_remap",
                    "fvd_mode", "mmdiff_clip_s", "mmdiff_fps", "mmdiff_size", "mmdiff_audio_sr", "mmdiff_windows", "audio_sr",
                    "max_audio_len_s", "resample")


def reference_values(p: Protocol) -> dict[str, Any]:
    """The values of :data:`REFERENCE_FIELDS` (what a reference file records about its protocol)."""
    v = p.values()
    return {k: v[k] for k in REFERENCE_FIELDS}


def get_protocol(name: str) -> Protocol:
    from javisbench.names import unknown_name

    try:
        return PROTOCOLS[name]
    except KeyError:
        raise unknown_name("protocol", name, PROTOCOLS) from None
