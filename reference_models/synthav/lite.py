"""SynthAV-lite: the first, simpler generator (kept: the suite's own tests build benches with it).

Each clip: a flat, slightly graded background and 1-3 moving shapes.  At every event one shape
flashes bright for three frames and, at the same instant (sample-exact), the audio gets a
decaying tone burst or a noise click in that shape's frequency band; a quiet hum runs under it.
Everything is a pure function of the seed, so nothing large is stored.

The corruptions in :mod:`reference_models.baselines` act on these clips and have a known
effect on synchrony metrics (shifted or swapped audio, frozen video, silence).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from reference_models.synthav.io import write_clip, write_mp4, write_wav  # noqa: F401  (re-exported)

GENERATOR_VERSION = "synthav-lite-1"

_COLOURS = {
    "red": (220, 50, 40), "green": (60, 190, 70), "blue": (50, 90, 220), "yellow": (230, 210, 40),
    "purple": (150, 60, 190), "orange": (240, 140, 30), "cyan": (40, 200, 210),
}
_BANDS = {"low": (180.0, 320.0), "mid": (500.0, 900.0), "high": (1400.0, 2600.0)}


@dataclass
class Event:
    t: float            # onset, seconds (audio is sample-exact, video flashes from the next frame)
    source: int
    kind: str           # "tone" | "click"
    freq: float


@dataclass
class Source:
    shape: str          # "disc" | "square"
    colour: str
    size: int
    pos: tuple[float, float]
    vel: tuple[float, float]
    band: str


@dataclass
class SynthClip:
    seed: int
    frames: np.ndarray = field(repr=False)     # (T,H,W,3) uint8 RGB
    audio: np.ndarray = field(repr=False)      # (L,) float32 mono
    fps: int
    sr: int
    sources: list[Source]
    events: list[Event]
    caption: str
    audio_caption: str
    labels: dict[str, int]

    def meta(self) -> dict:
        return {"seed": self.seed, "fps": self.fps, "sr": self.sr, "caption": self.caption,
                "audio_caption": self.audio_caption, "labels": self.labels,
                "sources": [asdict(s) for s in self.sources], "events": [asdict(e) for e in self.events],
                "generator": GENERATOR_VERSION}


def make_clip(seed: int, duration: float = 4.0, fps: int = 24, width: int = 128, height: int = 96,
              sr: int = 16000) -> SynthClip:
    """Render one clip from its seed."""
    rng = np.random.default_rng([seed, 7919])
    n_frames = int(round(duration * fps))
    n_samples = int(round(duration * sr))
    k = int(rng.integers(1, 4))
    names = list(_COLOURS)
    sources = []
    for i in range(k):
        size = int(rng.integers(height // 8, height // 4))
        sources.append(Source(
            shape=str(rng.choice(["disc", "square"])), colour=names[int(rng.integers(len(names)))], size=size,
            pos=(float(rng.uniform(size, width - size)), float(rng.uniform(size, height - size))),
            vel=(float(rng.uniform(-40, 40)), float(rng.uniform(-30, 30))), band=list(_BANDS)[i % 3]))
    n_events = int(rng.integers(3, 7))
    # events at least 0.3 s apart so onsets and flashes are separable at 24 fps
    times = np.sort(rng.uniform(0.2, duration - 0.3, size=n_events))
    keep = [times[0]]
    for t in times[1:]:
        if t - keep[-1] >= 0.3:
            keep.append(t)
    events = []
    for t in keep:
        s = int(rng.integers(k))
        lo, hi = _BANDS[sources[s].band]
        events.append(Event(float(t), s, str(rng.choice(["tone", "click"])), float(rng.uniform(lo, hi))))

    # ---- video -------------------------------------------------------------------------------
    bg = rng.integers(10, 90, size=3).astype(np.float32)
    grad = np.linspace(0.8, 1.2, height, dtype=np.float32)[:, None, None]
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    frames = np.empty((n_frames, height, width, 3), np.uint8)
    for f in range(n_frames):
        t = f / fps
        img = np.broadcast_to(bg * grad, (height, width, 3)).copy()
        for si, s in enumerate(sources):
            p = np.array(s.pos) + np.array(s.vel) * t
            lo = np.array([s.size, s.size], np.float64)
            span = np.array([width, height], np.float64) - 2 * lo
            q = np.mod(p - lo, 2 * span)
            q = np.where(q > span, 2 * span - q, q) + lo               # bounce off the borders
            col = np.array(_COLOURS[s.colour], np.float32)
            if any(e.source == si and 0 <= t - e.t < 3.0 / fps for e in events):
                col = np.array([255, 250, 235], np.float32)            # the visible event: a flash
            if s.shape == "disc":
                m = (xx - q[0]) ** 2 + (yy - q[1]) ** 2 < s.size ** 2
            else:
                m = (np.abs(xx - q[0]) < s.size) & (np.abs(yy - q[1]) < s.size)
            img[m] = col
        frames[f] = np.clip(img, 0, 255).astype(np.uint8)

    # ---- audio -------------------------------------------------------------------------------
    ts = np.arange(n_samples) / sr
    audio = 0.01 * np.sin(2 * np.pi * 110.0 * ts)
    for e in events:
        i0 = int(round(e.t * sr))
        n = min(int(0.25 * sr), n_samples - i0)
        tt = np.arange(n) / sr
        env = np.exp(-tt / 0.04)
        if e.kind == "tone":
            burst = 0.5 * env * np.sin(2 * np.pi * e.freq * tt)
        else:
            burst = 0.5 * env * rng.standard_normal(n) * np.exp(-tt / 0.01)
        audio[i0:i0 + n] += burst
    audio = np.clip(audio, -1, 1).astype(np.float32)

    desc = " and ".join(f"a {s.colour} {s.shape}" for s in sources)
    caption = f"{desc[0].upper()}{desc[1:]} move over a plain background and flash {len(events)} times with short sounds."
    audio_caption = f"{len(events)} short beeps and clicks over a low hum."
    labels = {"cat0_ind": int(rng.integers(5)), "cat1_ind": 1, "cat2_ind": 2 if any(e.kind == "click" for e in events) else 3,
              "cat3_ind": 1 if len(events) > 1 else 0, "cat4_ind": 0 if k == 1 else 1}
    return SynthClip(seed, frames, audio, fps, sr, sources, events, caption, audio_caption, labels)


# ---------------------------------------------------------------------------------------------
# writing
# ---------------------------------------------------------------------------------------------
def write_manifest(path: str | Path, clips: list[SynthClip]) -> Path:
    """A JavisBench-style CSV (text, audio_text, path, audio_path, cat0_ind..cat4_ind)."""
    import csv

    path = Path(path)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", "text", "audio_text", "path", "audio_path", "cat0_ind", "cat1_ind", "cat2_ind", "cat3_ind", "cat4_ind"])
        for i, c in enumerate(clips):
            w.writerow([f"synthav-{c.seed}", c.caption, c.audio_caption, f"real/sample_{i:04d}.mp4", f"real/sample_{i:04d}.wav",
                        *[c.labels[f"cat{a}_ind"] for a in range(5)]])
    return path


def write_meta(path: str | Path, clips: list[SynthClip]) -> Path:
    Path(path).write_text(json.dumps([c.meta() for c in clips], indent=1))
    return Path(path)
