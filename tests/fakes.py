"""Tiny deterministic stand-ins for weight-bearing encoders (tests only).

They keep the real encoders' ids and feature names, need no weights, and compute features that
depend on the content (pooled pixels / spectral band energies), so set metrics computed from
them behave like real ones (identical sets -> 0, corrupted sets -> larger).
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from javisbench.encoders.base import Encoder, SampleError


class FakeI3D(Encoder):
    id = "i3d"
    version = "fake-1"

    def load(self, weights_dir: Path) -> None:
        self.proj = np.random.default_rng(0).standard_normal((3 * 4 * 4 * 2, 16))

    def prepare(self, clip, text, audio_text):  # noqa: ANN001, ANN201
        from javisbench.views import linspace_indices

        idx = linspace_indices(clip.n_frames, 16)
        f = clip.frames[idx].astype(np.float32) / 255.0                    # (16,H,W,3)
        t, h, w, _ = f.shape
        pooled = f[:, : h // 4 * 4, : w // 4 * 4].reshape(t, 4, h // 4, 4, w // 4, 3).mean(axis=(2, 4))
        motion = np.abs(np.diff(f, axis=0)).mean(axis=0)[: h // 4 * 4, : w // 4 * 4]
        motion = motion.reshape(4, h // 4, 4, w // 4, 3).mean(axis=(1, 3))
        return {"x": np.concatenate([pooled.mean(0).ravel(), motion.ravel() * 10])}

    def encode(self, batch):  # noqa: ANN001, ANN201
        delay = float(os.environ.get("JAVISBENCH_FAKE_ENCODE_DELAY", "0"))
        if delay:
            time.sleep(delay)
        return [{"logits": np.tanh(x["x"] @ self.proj).astype(np.float32)} for x in batch]


class FakeAudio(Encoder):
    id = "audioclip"
    version = "fake-1"

    def load(self, weights_dir: Path) -> None:
        return None

    def prepare(self, clip, text, audio_text):  # noqa: ANN001, ANN201
        a = clip.audio.mean(axis=0)
        if a.size < 512:
            raise SampleError(f"{clip.sample_id}: too short for the fake audio encoder")
        spec = np.abs(np.fft.rfft(a[: a.size // 512 * 512].reshape(-1, 512), axis=1)) ** 2
        bands = np.log10(spec[:, :256].reshape(spec.shape[0], 16, 16).sum(axis=2) + 1e-8)
        return {"x": np.concatenate([bands.mean(0), bands.std(0)])}

    def encode(self, batch):  # noqa: ANN001, ANN201
        return [{"embedding": x["x"].astype(np.float32)} for x in batch]


class CrashingAudio(FakeAudio):
    """Raises SystemExit (not an Exception: nothing catches it) on its N-th encode call."""

    calls = 0
    crash_at = 2

    def encode(self, batch):  # noqa: ANN001, ANN201
        type(self).calls += 1
        if type(self).calls == self.crash_at:
            raise SystemExit("simulated kill")
        return super().encode(batch)
