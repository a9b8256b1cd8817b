"""Sanity-anchor "generators": corruptions of reference clips with a known effect.

Each takes the reference clips (frames, audio) and returns what a model with that failure would
produce.  They anchor the ordering checks of the demo and of the tests: a good metric ranks the
oracle (the reference itself) above every corruption that breaks what the metric measures.

The same corruptions are registered as generators (``oracle``, ``shift-audio``, ``swap-audio``,
``frozen-video``, ``noise-video``, ``silent-audio``) in :mod:`reference_models.baseline_generators`
(this module stays free of torch).
"""
from __future__ import annotations

from typing import Callable

import numpy as np

Clip = tuple[np.ndarray, np.ndarray]   # (frames (T,H,W,3) uint8, audio (L,) float32)


def oracle(clips: list[Clip], i: int, sr: int) -> Clip:
    """The reference clip itself."""
    return clips[i]


def shift_audio(seconds: float) -> Callable[[list[Clip], int, int], Clip]:
    """Audio delayed by ``seconds`` (zero-padded at the start, cut at the end); video unchanged."""
    def corrupt(clips: list[Clip], i: int, sr: int) -> Clip:
        frames, audio = clips[i]
        n = int(round(seconds * sr))
        out = np.zeros_like(audio)
        if n < audio.size:
            out[n:] = audio[: audio.size - n]
        return frames, out

    corrupt.__name__ = f"shift_audio_{seconds:g}s"
    return corrupt


def swap_audio(clips: list[Clip], i: int, sr: int) -> Clip:
    """Video of clip i with the audio of clip i+1 (cyclic): right content, wrong timing."""
    frames, _ = clips[i]
    _, other = clips[(i + 1) % len(clips)]
    return frames, other.copy()


def frozen_video(clips: list[Clip], i: int, sr: int) -> Clip:
    """The first frame held for the whole clip; audio unchanged."""
    frames, audio = clips[i]
    return np.repeat(frames[:1], frames.shape[0], axis=0), audio


def silent_audio(clips: list[Clip], i: int, sr: int) -> Clip:
    """Video unchanged, audio all zeros."""
    frames, audio = clips[i]
    return frames, np.zeros_like(audio)


def video_noise(sigma: float) -> Callable[[list[Clip], int, int], Clip]:
    """Gaussian pixel noise of standard deviation ``sigma`` (in [0,1] units), seeded per clip."""
    def corrupt(clips: list[Clip], i: int, sr: int) -> Clip:
        frames, audio = clips[i]
        rng = np.random.default_rng([i, int(sigma * 1e6)])
        noisy = frames.astype(np.float32) + rng.normal(0, sigma * 255.0, frames.shape)
        return np.clip(np.round(noisy), 0, 255).astype(np.uint8), audio

    corrupt.__name__ = f"video_noise_{sigma:g}"
    return corrupt


#: the demo's variants, in their expected order for synchrony metrics (best first)
DEMO_VARIANTS: dict[str, Callable[[list[Clip], int, int], Clip]] = {
    "clean": oracle,
    "audio shifted 0.5 s": shift_audio(0.5),
    "audio swapped": swap_audio,
    "frozen video": frozen_video,
    "silent audio": silent_audio,
}
