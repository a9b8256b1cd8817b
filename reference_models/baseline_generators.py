"""The sanity baselines of :mod:`reference_models.baselines` behind the Generator interface.

:class:`BaselineGenerator` reads the real clip of each requested bench row and applies one
corruption; ``oracle`` returns it unchanged.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch

from reference_models.baselines import (Clip, frozen_video, oracle, shift_audio, silent_audio, swap_audio,
                                        video_noise)
from reference_models.interface import Capabilities, GenerationOutput, GenerationRequest, Generator


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
