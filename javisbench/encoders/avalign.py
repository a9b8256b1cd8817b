"""AV-Align "encoder": optical-flow peaks and audio onsets, no weights.

The original (Seeing-and-Hearing's ``av_align``) reads every frame at native resolution and the
audio at its native rate, mixed to mono; so does this view.  All the work happens in ``prepare``
(CPU, in the decode workers); ``encode`` only hands the rows to the store.
"""
from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from javisbench.encoders.base import Encoder, Features, Prepared, SampleError

if TYPE_CHECKING:  # pragma: no cover
    from javisbench.decode import DecodedClip


# librosa warns "n_fft=2048 is too large for input signal of length=N" on clips under 2048 audio
# samples (two video frames at 24 fps); the result is defined (zero-padded), and the pipeline says
# so in its own per-sample warning (decode.clip_warnings), so librosa's is not printed.
_SHORT_SIGNAL = r"n_fft=\d+ is too large for input signal of length=\d+"
warnings.filterwarnings("ignore", message=_SHORT_SIGNAL, category=UserWarning)


class AVAlignEncoder(Encoder):
    id = "avalign"
    protocol_fields = ("av_align_flow_threshold",)
    outputs = {"audio_peaks": "(A,) seconds", "video_peaks": "(V,) seconds", "flow": "(T,)", "onset_env": "(F,)",
               "rates": "(2,) video fps, onset frames per second"}
    # peak times and rates decide a strict comparison in the score: kept exact, not rounded to float32
    float64_outputs = ("audio_peaks", "video_peaks", "rates")
    # what a stored entry must satisfy (peak times, flow magnitudes and onset strengths are >= 0)
    output_ranges = {"audio_peaks": (0.0, math.inf), "video_peaks": (0.0, math.inf), "flow": (0.0, math.inf),
                     "onset_env": (0.0, math.inf), "rates": (1e-9, math.inf)}
    version = "3"
    description = "Farneback flow-magnitude peaks vs librosa-style onsets (no weights)"

    def load(self, weights_dir: Path) -> None:  # nothing to load
        return None

    @property
    def flow_threshold(self) -> float:
        """Minimum mean flow magnitude (px/frame) of a video peak: the protocol's
        ``av_align_flow_threshold`` (0, the JavisBench rule, when the protocol has no such field;
        0.1 is the AV-Align authors' later rule, see :mod:`metrics.av_align`)."""
        return float(getattr(self.protocol, "av_align_flow_threshold", 0.0))

    def prepare(self, clip: "DecodedClip", text: str, audio_text: str) -> Prepared:
        from metrics.av_align import ONSET_N_FFT

        if clip.frames.shape[0] < 2:
            raise SampleError(f"{clip.sample_id}: AV-Align needs at least 2 video frames, got {clip.frames.shape[0]}")
        if clip.audio.shape[-1] == 0:
            raise SampleError(f"{clip.sample_id}: AV-Align needs audio, got 0 samples")
        mono = clip.audio.mean(axis=0) if clip.audio.ndim == 2 else clip.audio
        if mono.shape[-1] < ONSET_N_FFT:
            # under one analysis window librosa warns; the run says so in its own words instead
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=_SHORT_SIGNAL, category=UserWarning)
                return self._prepare(clip, mono)
        return self._prepare(clip, mono)

    def _prepare(self, clip: "DecodedClip", mono: np.ndarray) -> Prepared:
        from metrics.av_align import ONSET_HOP, audio_peaks, flow_trajectory, onset_envelope, video_peaks

        traj = flow_trajectory(clip.frames)
        vp = video_peaks(traj, clip.fps, flow_threshold=self.flow_threshold)
        ap = audio_peaks(np.ascontiguousarray(mono, dtype=np.float32), clip.sr)
        env = onset_envelope(np.ascontiguousarray(mono, dtype=np.float32), clip.sr)
        return {"audio_peaks": ap, "video_peaks": vp, "flow": traj,
                "onset_env": env, "rates": np.array([clip.fps, clip.sr / ONSET_HOP], np.float64)}

    def encode(self, batch: list[Prepared]) -> list[Features]:
        out: list[Features] = []
        for x in batch:
            out.append({k: np.asarray(v, np.float64 if k in self.float64_outputs else np.float32).reshape(-1)
                        for k, v in x.items()})
        return out

    @staticmethod
    def describe(features: dict[str, Any]) -> str:
        return f"{len(features['audio_peaks'])} audio / {len(features['video_peaks'])} video peaks"
