"""Sanity-anchor "generators": corruptions of reference clips with a known effect.

Each takes the reference clips (frames, audio) and returns what a model with that failure would
produce.  They anchor the ordering checks of the demo and of the tests: a good metric ranks the
oracle (the reference itself) above every corruption that breaks what the metric measures.

The same corruptions are registered as generators (``oracle``, ``shift-audio``, ``swap-audio``,
``frozen-video``, ``noise-video``, ``silent-audio``): :class:`BaselineGenerator` reads the real
clip of each requested bench row and applies one.
"""
from __future__ import annotations

from pathlib import Path
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


# ---------------------------------------------------------------------------------------------
# the same corruptions behind the Generator interface
# ---------------------------------------------------------------------------------------------
import torch  # noqa: E402

from reference_models.interface import Capabilities, GenerationOutput, GenerationRequest, Generator  # noqa: E402


class _BenchClips:
    """The real clips of a bench, read on first use: ``clips[i] -> (frames (T,H,W,3) uint8, audio (N,))``."""

    def __init__(self, bench: str | Path) -> None:
        from reference_models.data import read_bench

        self.rows = read_bench(bench)
        self._cache: dict[int, Clip] = {}
        self.fps: float | None = None
        self.sr: int | None = None

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> Clip:
        if i not in self._cache:
            from reference_models.data import read_audio_of, read_video

            frames, fps = read_video(self.rows[i].video)
            audio, sr = read_audio_of(self.rows[i])
            self.fps = self.fps or fps
            self.sr = self.sr or sr
            if len(self._cache) > 64:
                self._cache.clear()
            self._cache[i] = (frames, audio)
        return self._cache[i]


class BaselineGenerator(Generator):
    """A sanity baseline: the bench's real clip of each requested row, corrupted in a known way.

    It has no weights and no text path; it needs ``bench=`` (CSV or folder) and ``req.rows``.
    Outputs keep the real clips' size, frame rate and sample rate (the request's size is ignored).
    """

    presets = {"default": {}}
    default_preset = "default"
    stages: list[str] = []
    capabilities = Capabilities(text=False, disentangled_text=False, audio_domain="wave", x_conditional=frozenset())
    trainable = False

    def __init__(self, preset: str = "default", bench: str | Path | None = None) -> None:
        super().__init__(preset)
        self.bench = None if bench is None else str(bench)
        self._clips: _BenchClips | None = None

    def corruption(self) -> Callable[[list[Clip], int, int], Clip]:
        raise NotImplementedError

    def config(self) -> dict:
        return {"family": self.family, "preset": self.preset, "bench": self.bench, **self.options()}

    def options(self) -> dict:
        return {}

    def generate(self, req: GenerationRequest) -> GenerationOutput:
        if self.bench is None:
            raise ValueError(f"baseline {self.family!r} reads the bench's real clips: give it bench=<manifest or folder>")
        if req.rows is None:
            raise ValueError(f"baseline {self.family!r} needs GenerationRequest.rows (the bench rows to read)")
        if self._clips is None:
            self._clips = _BenchClips(self.bench)
        clips = self._clips
        fn = self.corruption()
        outs = []
        for r in req.rows:
            if not 0 <= r < len(clips):
                raise ValueError(f"row {r} is outside the bench ({len(clips)} rows)")
            clips[r]
            outs.append(fn(clips, r, int(clips.sr or req.sample_rate)))  # type: ignore[arg-type]
        t = min(o[0].shape[0] for o in outs)
        n = max(o[1].shape[0] for o in outs)
        if len({o[0].shape[1:] for o in outs}) > 1:
            raise ValueError("baseline outputs of one batch must share a frame size; generate them one at a time")
        video = torch.from_numpy(np.stack([o[0][:t] for o in outs])).permute(0, 1, 4, 2, 3).float().div(255.0)
        audio = np.zeros((len(outs), n), np.float32)
        for i, (_, a) in enumerate(outs):
            audio[i, : a.shape[0]] = a
        return GenerationOutput(video, torch.from_numpy(audio), float(clips.fps or req.fps), int(clips.sr or req.sample_rate),
                                extras={"nfe": 0, "n_frames": [int(o[0].shape[0]) for o in outs],
                                        "n_samples": [int(o[1].shape[0]) for o in outs]})


class Oracle(BaselineGenerator):
    """The real clip itself (upper bound of every metric)."""

    family = "oracle"

    def corruption(self) -> Callable[[list[Clip], int, int], Clip]:
        return oracle


class ShiftAudio(BaselineGenerator):
    """Audio delayed by ``seconds`` (zero-padded at the start); video unchanged."""

    family = "shift-audio"

    def __init__(self, preset: str = "default", bench: str | Path | None = None, seconds: float = 0.5) -> None:
        super().__init__(preset, bench)
        self.seconds = float(seconds)

    def options(self) -> dict:
        return {"seconds": self.seconds}

    def corruption(self) -> Callable[[list[Clip], int, int], Clip]:
        return shift_audio(self.seconds)


class SwapAudio(BaselineGenerator):
    """Video of row i with the audio of row i+1 (cyclic over the bench)."""

    family = "swap-audio"

    def corruption(self) -> Callable[[list[Clip], int, int], Clip]:
        return swap_audio


class FrozenVideo(BaselineGenerator):
    """The first frame held for the whole clip; audio unchanged."""

    family = "frozen-video"

    def corruption(self) -> Callable[[list[Clip], int, int], Clip]:
        return frozen_video


class NoiseVideo(BaselineGenerator):
    """Gaussian pixel noise of std ``sigma`` (in [0,1] units) on the real video; audio unchanged."""

    family = "noise-video"

    def __init__(self, preset: str = "default", bench: str | Path | None = None, sigma: float = 0.1) -> None:
        super().__init__(preset, bench)
        self.sigma = float(sigma)

    def options(self) -> dict:
        return {"sigma": self.sigma}

    def corruption(self) -> Callable[[list[Clip], int, int], Clip]:
        return video_noise(self.sigma)


class SilentAudio(BaselineGenerator):
    """The real video with all-zero audio."""

    family = "silent-audio"

    def corruption(self) -> Callable[[list[Clip], int, int], Clip]:
        return silent_audio
