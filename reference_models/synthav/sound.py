"""SynthAV audio: one stem per source (plus the ambience bed), sample-exact event onsets.

Each event's sound occupies exactly ``[audio_onset_sample, audio_onset_sample + duration·sr)``:
it starts from silence with a 3 ms linear attack whose first sample is already non-zero and ends
with a 10 ms fade-out, so the stored onset sample is the first sample the event changes.
Sounds by kind: impact = noise burst + damped modal sinusoid; note = 3-harmonic tone with ADSR on
a pentatonic step above the source's frequency; pulse = a tone and its fifth swelling at 3 Hz, its
pitch set by the source's height; call = decaying FM chirp; spin = harmonic hum with
amplitude modulation at the rotation rate; talk = glottal pulse train through two formant
resonators with a 4 syllables/s envelope; ambient = band-passed noise gust.  Every draw is seeded
by (scene seed, event index), so muting one event leaves the others' samples unchanged.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import signal

from reference_models.synthav.scene import BANDS, Scene

ATTACK_S = 0.003
RELEASE_S = 0.010
GAIN = 0.6
PHASE = np.pi / 4        # tonal partials start off zero, so an event's first sample is never silent
_VOWELS = [(730.0, 1090.0), (270.0, 2290.0), (530.0, 1840.0), (570.0, 840.0), (300.0, 870.0)]


def _edges(n: int, sr: int) -> np.ndarray:
    env = np.ones(n)
    a = min(n, max(1, int(round(ATTACK_S * sr))))
    env[:a] = np.arange(1, a + 1) / a
    r = min(n, int(round(RELEASE_S * sr)))
    if r:
        env[n - r:] *= np.linspace(1.0, 0.0, r + 1)[1:]
    return env


def _bandpass(x: np.ndarray, lo: float, hi: float, sr: int) -> np.ndarray:
    sos = signal.butter(2, [lo, min(hi, sr / 2 - 100)], btype="bandpass", fs=sr, output="sos")
    return signal.sosfilt(sos, x)


def event_sound(kind: str, n: int, freq: float, sr: int, rng: np.random.Generator, band: str) -> np.ndarray:
    """The ``n``-sample sound of one event (float64, peak ≈ 0.3–0.6, starting at full attack)."""
    t = np.arange(n) / sr
    if kind == "impact":
        x = 0.5 * np.exp(-t / 0.012) * rng.standard_normal(n) + 0.6 * np.exp(-t / 0.07) * np.sin(2 * np.pi * freq * t + PHASE)
    elif kind == "note":
        step = int(rng.choice([0, 2, 4, 7, 9]))
        f0 = freq * 2 ** (step / 12)
        adsr = np.minimum(1.0, 0.6 + 0.4 * np.exp(-t / 0.06))
        x = 0.45 * adsr * sum(a * np.sin(2 * np.pi * k * f0 * t + PHASE) for k, a in ((1, 1.0), (2, 0.5), (3, 0.25)))
    elif kind == "pulse":
        env = 0.55 + 0.45 * np.cos(2 * np.pi * 3.0 * t)          # swells three times a second
        x = 0.45 * env * (np.sin(2 * np.pi * freq * t + PHASE) + 0.3 * np.sin(2 * np.pi * 1.5 * freq * t + PHASE))
    elif kind == "call":
        sweep = freq * (1.0 + 0.6 * t / max(t[-1], 1e-9))
        ph = 2 * np.pi * np.cumsum(sweep * (1 + 0.15 * np.sin(2 * np.pi * 30 * t))) / sr
        x = 0.5 * np.sin(ph) * np.exp(-t / 0.12)
    elif kind == "spin":
        f0 = freq * 0.5
        x = 0.4 * (0.6 + 0.4 * np.cos(2 * np.pi * 6 * t)) * sum(np.sin(2 * np.pi * k * f0 * t + PHASE) / k for k in (1, 2, 3, 4))
    elif kind == "talk":
        f0 = {"low": 120.0, "mid": 170.0, "high": 230.0}[band] * (1 + 0.08 * np.sin(2 * np.pi * 1.5 * t))
        ph = np.cumsum(f0) / sr
        pulses = np.diff(np.floor(ph), prepend=0.0)
        pulses[0] = 1.0
        syl = (t * 4).astype(int)
        out = np.zeros(n)
        for k in range(int(syl.max()) + 1):
            f1, f2 = _VOWELS[int(rng.integers(len(_VOWELS)))]
            seg = syl == k
            y = pulses.copy()
            for fc, bw in ((f1, 90.0), (f2, 120.0)):
                rr = math.exp(-math.pi * bw / sr)
                y = signal.lfilter([1 - rr], [1, -2 * rr * math.cos(2 * math.pi * fc / sr), rr * rr], y)
            out[seg] = y[seg]
        env = 0.25 + 0.75 * np.abs(np.cos(np.pi * 4 * t))
        x = out * env
        x = 0.5 * x / max(np.abs(x).max(), 1e-9)
    elif kind == "ambient":
        lo, hi, _ = BANDS[band]
        noise = _bandpass(rng.standard_normal(n + 2048), lo * 0.7, hi * 1.6, sr)[2048:]
        x = 0.5 * noise / max(np.abs(noise).max(), 1e-9)
    else:
        raise ValueError(f"unknown sound kind {kind!r}")
    return x * _edges(n, sr)


def bed_sound(kind: str, n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """A faint, steady ambience bed (peak about 0.01), never an event."""
    t = np.arange(n) / sr
    noise = rng.standard_normal(n + 2048)
    if kind == "rain":
        x = signal.sosfilt(signal.butter(2, 3000, "highpass", fs=sr, output="sos"), noise)[2048:]
    elif kind == "traffic":
        x = signal.sosfilt(signal.butter(2, 250, "lowpass", fs=sr, output="sos"), noise)[2048:]
    elif kind == "machine":
        x = np.sin(2 * np.pi * 100 * t) + 0.3 * noise[2048:]
    elif kind == "pad":
        x = sum(np.sin(2 * np.pi * f * t) for f in (220.0, 277.2, 329.6))
    else:   # room
        x = signal.sosfilt(signal.butter(2, [200, 2000], "bandpass", fs=sr, output="sos"), noise)[2048:]
    return 0.01 * x / max(np.abs(x).max(), 1e-9)


def render_audio(scene: Scene, mute_audio: frozenset[int] | set[int] = frozenset()
                 ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """``(mixture (N,) float32, stems {"s0": (N,), ..., "bed": (N,)})``.

    The stems carry a fixed gain (:data:`GAIN`, independent of the content, so leaving one event
    out changes no other sample); the mixture is their sum clipped to [-1, 1] (rarely active:
    single sounds peak near 0.3).  ``mute_audio``: event indices left out (counterfactual checks)."""
    sr = scene.sample_rate
    n_total = int(round(scene.duration * sr))
    stems = {f"s{i}": np.zeros(n_total) for i in range(len(scene.sources))}
    for k, e in enumerate(scene.events):
        if k in mute_audio or e.audio_onset_sample is None:
            continue
        n0 = e.audio_onset_sample
        n = min(int(round(e.duration * sr)), n_total - n0)
        if n <= 0:
            continue
        rng = np.random.default_rng([scene.seed, 77, k])
        stems[f"s{e.source}"][n0:n0 + n] += event_sound(e.kind, n, e.freq, sr, rng, scene.sources[e.source].band)
    stems["bed"] = bed_sound(scene.bed, n_total, sr, np.random.default_rng([scene.seed, 83])) if scene.bed else np.zeros(n_total)
    stems = {k: (v * GAIN).astype(np.float32) for k, v in stems.items()}
    mix = np.clip(np.sum(list(stems.values()), axis=0), -1.0, 1.0).astype(np.float32)
    return mix, stems
