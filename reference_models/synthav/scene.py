"""SynthAV scene model (spec §3.2–3.3, §3.5): labels → sources → an exact event timeline.

A clip is a background (scenario × style), 1–3 sources and an optional faint ambience bed.  Each
source has a shape, a colour, a frequency band (low/mid/high, tied to its height on screen), a
visibility flag and an event kind.  Every event has one visual time and one audio time (equal
unless a synchrony knob moves them); the stored ground truth is the visual onset frame
``ceil(t_visual·fps)`` — the first frame at or after the event — and the audio onset sample
``round(t_audio·sr)``, where the event's sound starts from exact silence.

Everything is a pure function of (labels, seed, knobs).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

GENERATOR_VERSION = "synthav-2"

#: the five JavisBench aspects in label-column order (cat0_ind..cat4_ind), category keys in index order
ASPECTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("event_scenario", ("natural", "urban", "living", "industrial", "virtual")),
    ("visual_style", ("camera_shooting", "animate_2d", "animate_3d")),
    ("sound_type", ("ambient", "biological", "mechanical", "musical", "speech")),
    ("temporal", ("single_event", "sequential_events", "simultaneous_events")),
    ("spatial", ("single_subject", "multiple_subjects", "off_screen_sound")),
)
N_CATEGORIES = sum(len(c) for _, c in ASPECTS)   # 19

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (225, 45, 40), "green": (50, 185, 70), "blue": (45, 95, 225), "yellow": (235, 210, 35),
    "purple": (155, 60, 195), "orange": (245, 140, 25), "white": (240, 240, 240), "pink": (240, 120, 180),
}
#: frequency band -> (low Hz, high Hz) and the vertical centre (fraction of the height) of its sources
BANDS: dict[str, tuple[float, float, float]] = {
    "high": (1300.0, 2400.0, 0.28), "mid": (450.0, 850.0, 0.52), "low": (160.0, 320.0, 0.74),
}
#: event kinds: audible/visible length in seconds (min, max) when single, and whether they are short hits
KINDS: dict[str, tuple[float, float, bool]] = {
    "impact": (0.25, 0.25, True), "note": (0.3, 0.45, True), "call": (0.25, 0.35, True), "pulse": (0.5, 0.8, False),
    "spin": (0.7, 1.1, False), "talk": (0.7, 1.1, False), "ambient": (0.8, 1.1, False),
}
SCENARIO_SECONDARY = {"natural": "call", "urban": "impact", "living": "note", "industrial": "spin", "virtual": "note"}


@dataclass
class Labels:
    """One category index per aspect (cat0..cat4)."""

    scenario: int
    style: int
    sound_type: int
    temporal: int
    spatial: int

    def keys(self) -> dict[str, str]:
        vals = (self.scenario, self.style, self.sound_type, self.temporal, self.spatial)
        return {a: cats[v] for (a, cats), v in zip(ASPECTS, vals)}

    def columns(self) -> dict[str, int]:
        vals = (self.scenario, self.style, self.sound_type, self.temporal, self.spatial)
        return {f"cat{i}_ind": int(v) for i, v in enumerate(vals)}


@dataclass
class Source:
    kind: str                 # impact | note | pulse | call | spin | talk | ambient | silent
    shape: str                # disc, square, triangle, star, face, bird, car, gear, piston, bell, field
    colour: str
    band: str                 # low | mid | high
    visible: bool
    x: float                  # centre, fraction of the width
    y: float                  # centre, fraction of the height (the band's row)
    size: float               # radius, fraction of the width
    vx: float                 # horizontal drift, width fractions per second
    freq: float               # base frequency (Hz) of its sounds
    sounding: bool = True


@dataclass
class Event:
    source: int
    kind: str
    t_visual: float | None    # seconds; None: a phantom sound (no visual event)
    t_audio: float | None     # seconds; None: a dropped sound (visual event only)
    duration: float           # seconds, both sides
    visual_onset_frame: int | None = None
    audio_onset_sample: int | None = None
    freq: float = 0.0
    visible: bool = True


@dataclass
class SyncKnobs:
    """Controlled asynchrony (spec §3.5); the defaults are perfectly in sync."""

    av_offset_s: float = 0.0       # global audio delay
    event_jitter_s: float = 0.0    # per-event uniform misalignment in [−j, j]
    drop_sound_p: float = 0.0      # visual event without sound
    phantom_sound_p: float = 0.0   # an extra sound without a visual event, per event
    audio_speed: float = 1.0       # audio times t -> t / speed
    swap_band: bool = False        # sound bands no longer match heights

    def in_sync(self) -> bool:
        return self == SyncKnobs()


@dataclass
class Scene:
    seed: int
    labels: Labels
    sources: list[Source]
    events: list[Event]
    bed: str | None           # ambience bed kind (rain, traffic, room, machine, pad) or None
    scenario_word: str
    knobs: SyncKnobs = field(default_factory=SyncKnobs)
    duration: float = 4.0
    fps: int = 8
    sample_rate: int = 16000
    height: int = 32
    width: int = 32

    def to_json(self) -> dict[str, Any]:
        return {"seed": self.seed, "labels": self.labels.keys(), "label_columns": self.labels.columns(),
                "sources": [asdict(s) for s in self.sources], "events": [asdict(e) for e in self.events],
                "bed": self.bed, "scenario_word": self.scenario_word, "knobs": asdict(self.knobs),
                "duration": self.duration, "fps": self.fps, "sample_rate": self.sample_rate,
                "height": self.height, "width": self.width, "generator": GENERATOR_VERSION}


# ---------------------------------------------------------------------------------------------
# labels
# ---------------------------------------------------------------------------------------------
def stratified_labels(n: int, seed: int) -> list[Labels]:
    """``n`` label tuples, each aspect balanced (every category appears ⌊n/K⌋ or ⌈n/K⌉ times, so
    n ≥ 5 covers all 19 categories), aspects shuffled independently with ``seed``."""
    rng = np.random.default_rng([seed, 19])
    cols = []
    for _, cats in ASPECTS:
        k = len(cats)
        col = np.tile(np.arange(k), -(-n // k))[:n]
        cols.append(rng.permutation(col))
    return [Labels(*(int(c[i]) for c in cols)) for i in range(n)]


# ---------------------------------------------------------------------------------------------
# pitch from height (the ``pulse`` kind)
# ---------------------------------------------------------------------------------------------
PULSE_F_LO = 200.0
PULSE_OCTAVES = 3.0


def _slaney_mel(f: np.ndarray) -> np.ndarray:
    """Hz -> Slaney mel (the scale of ``reference_models.blocks.melwave``; numpy only)."""
    f = np.asarray(f, np.float64)
    return np.where(f >= 1000.0, 15.0 + np.log(np.maximum(f, 1e-10) / 1000.0) / (math.log(6.4) / 27.0), f * 3.0 / 200.0)


def _slaney_hz(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, np.float64)
    return np.where(m >= 15.0, 1000.0 * np.exp((math.log(6.4) / 27.0) * (m - 15.0)), m * 200.0 / 3.0)


#: centre frequencies of the 64 Slaney mel bins over 0–8 kHz (the suite's log-mel)
MEL_CENTRES = _slaney_hz(np.linspace(_slaney_mel(0.0), _slaney_mel(8000.0), 66))[1:-1]


def pitch_from_height(y: float) -> float:
    """``f = f_lo · 2^{octaves·(1 − y)}`` (y: centre height as a fraction of the frame, 0 = top),
    quantised to the nearest mel-bin centre so the pitch survives the mel round trip."""
    f = PULSE_F_LO * 2.0 ** (PULSE_OCTAVES * (1.0 - y))
    return float(MEL_CENTRES[int(np.argmin(np.abs(MEL_CENTRES - f)))])


# ---------------------------------------------------------------------------------------------
# scene construction
# ---------------------------------------------------------------------------------------------
_SCENARIO_WORDS = {
    "natural": ["meadow", "lake shore", "forest clearing"], "urban": ["street", "city road", "town square"],
    "living": ["living room", "kitchen", "classroom"], "industrial": ["factory floor", "workshop", "power plant"],
    "virtual": ["neon grid world", "glowing digital space", "alien planet"],
}
_BEDS = {"natural": "rain", "urban": "traffic", "living": "room", "industrial": "machine", "virtual": "pad"}


def _shape_for(kind: str, scenario: str, rng: np.random.Generator) -> str:
    if kind == "impact":
        return "piston" if scenario == "industrial" else str(rng.choice(["disc", "square"]))
    if kind == "note":
        return {"virtual": "star", "living": "bell"}.get(scenario, str(rng.choice(["bell", "triangle", "star"])))
    if kind == "pulse":
        return str(rng.choice(["disc", "star"]))
    if kind == "spin":
        return "gear"
    if kind == "call":
        return "bird"
    if kind == "talk":
        return "face"
    if kind == "ambient":
        return "field"
    return str(rng.choice(["disc", "square", "triangle", "car"]))


def _primary_kind(sound_type: str, scenario: str, rng: np.random.Generator) -> str:
    if sound_type == "ambient":
        return "ambient"
    if sound_type == "biological":
        return "call"
    if sound_type == "mechanical":
        return "spin" if (scenario == "industrial" and rng.random() < 0.5) or rng.random() < 0.25 else "impact"
    if sound_type == "musical":
        return "pulse" if rng.random() < 0.35 else "note"
    return "talk"


def _length(kind: str, rng: np.random.Generator, cap: float | None = None) -> float:
    lo, hi, _ = KINDS[kind]
    d = float(rng.uniform(lo, hi)) if hi > lo else lo
    return min(d, cap) if cap is not None else d


def _series(kind: str, start: float, end: float, rng: np.random.Generator) -> list[tuple[float, float]]:
    """Events of one source covering [start, end]: one long event, or hits at irregular intervals
    of 0.35–0.75 s (irregular, so that no audio shift lines the hits up again)."""
    if not KINDS[kind][2]:
        return [(start, end - start)]
    d = _length(kind, rng)
    out, t = [], start
    while t + d <= end + 1e-9:
        out.append((t, d))
        t += max(float(rng.uniform(0.35, 0.75)), d + 0.05)
    return out


def build_scene(labels: Labels, seed: int, knobs: SyncKnobs | None = None, duration: float = 4.0, fps: int = 8,
                sample_rate: int = 16000, height: int = 32, width: int = 32) -> Scene:
    """Instantiate content that satisfies every label (spec §3.3).

    * spatial: single subject → one visible sounding source (plus maybe a silent distractor);
      multiple → 2–3 visible sounding sources in distinct bands and colours; off-screen → the
      primary source is invisible and a visible silent distractor moves on screen.
    * temporal: single → one event; sequential → 2–3 events in disjoint intervals with gaps
      ≥ 0.25 s; simultaneous → ≥ 2 sounding sources whose active intervals overlap ≥ 1 s (with a
      single subject, the second source is the scene's ambience turned into an event).
      With a single event only one source sounds, whatever the spatial label.
    """
    knobs = knobs or SyncKnobs()
    rng = np.random.default_rng([seed, 2024])
    keys = labels.keys()
    scenario, temporal, spatial = keys["event_scenario"], keys["temporal"], keys["spatial"]
    kind = _primary_kind(keys["sound_type"], scenario, rng)
    colours = [str(c) for c in rng.permutation(list(COLOURS))]
    bands = [str(b) for b in rng.permutation(list(BANDS))]
    n_sub = 1 if spatial == "single_subject" else (int(rng.integers(2, 4)) if spatial == "multiple_subjects" else 1)

    def new_source(k: str, i: int, visible: bool, sounding: bool = True, slot: int | None = None) -> Source:
        band = bands[i % 3]
        lo, hi, yc = BANDS[band]
        shape = _shape_for(k if sounding else "silent", scenario, rng)
        if k == "ambient":
            return Source("ambient", "field", colours[i % len(colours)], band, visible, 0.5, 0.5, 0.5, 0.0,
                          float(rng.uniform(lo, hi)), sounding)
        xs = (0.5,) if n_sub == 1 else (0.25, 0.75) if n_sub == 2 else (0.2, 0.5, 0.8)
        x = xs[(i if slot is None else slot) % len(xs)] + float(rng.uniform(-0.05, 0.05))
        y = yc + float(rng.uniform(-0.03, 0.03))
        freq = pitch_from_height(y) if k == "pulse" else float(rng.uniform(lo, hi))
        return Source(k if sounding else "silent", shape, colours[i % len(colours)], band, visible, x, y,
                      float(rng.uniform(0.11, 0.15)), float(rng.uniform(-0.04, 0.04)), freq, sounding)

    sources: list[Source] = []
    if spatial == "off_screen_sound":
        sources.append(new_source(kind, 0, visible=False))
        sources.append(new_source("silent", 1, visible=True, sounding=False))
        sources[1].vx = float(rng.choice([-1, 1]) * rng.uniform(0.08, 0.15))
    else:
        for i in range(n_sub):
            sources.append(new_source(kind, i, visible=True))
    if kind == "ambient" and spatial == "multiple_subjects":
        # the ambience is the primary sound; the other subjects are visible sounding objects
        sec = SCENARIO_SECONDARY[scenario]
        sources[1:] = [new_source(sec, i + 1, visible=True, slot=i) for i in range(n_sub)]

    # ---- timeline (visual times; audio follows unless a knob moves it) ----
    timeline: list[tuple[int, float, float]] = []          # (source, onset, duration)
    lo_t, hi_t = 0.3, duration - 0.3
    if temporal == "single_event":
        d = _length(sources[0].kind, rng)
        t0 = float(rng.uniform(lo_t + 0.1, hi_t - d - 0.5))
        timeline.append((0, t0, d))
    elif temporal == "sequential_events":
        n_ev = int(rng.integers(2, 4))
        sounding = [i for i, s in enumerate(sources) if s.sounding]
        who = [sounding[k % len(sounding)] for k in range(n_ev)]
        ds = [_length(sources[w].kind, rng, cap=0.7) for w in who]
        gaps = [float(rng.uniform(0.3, 0.5)) for _ in range(n_ev - 1)]
        slack = (hi_t - lo_t) - sum(ds) - sum(gaps)
        t = lo_t + float(rng.uniform(0, max(slack, 0.0)))
        for k in range(n_ev):
            timeline.append((who[k], t, ds[k]))
            t += ds[k] + (gaps[k] if k < n_ev - 1 else 0.0)
    else:   # simultaneous
        length = float(rng.uniform(2.0, 2.6))
        w0 = float(rng.uniform(lo_t, hi_t - length))
        active = [i for i, s in enumerate(sources) if s.sounding]
        if len(active) < 2:
            # a single sounding subject: the scene's ambience becomes the second, overlapping source
            amb_kind = "ambient" if sources[active[0]].kind != "ambient" else SCENARIO_SECONDARY[scenario]
            sources.append(new_source(amb_kind, len(sources), visible=amb_kind == "ambient" or spatial != "off_screen_sound"))
            active.append(len(sources) - 1)
        for j, i in enumerate(active):
            start = w0 + (0.0 if j == 0 else float(rng.uniform(0.0, 0.12)))
            for (t, d) in _series(sources[i].kind, start, w0 + length, rng):
                timeline.append((i, t, d))
    timeline.sort(key=lambda e: (e[1], e[0]))

    # ---- synchrony knobs ----
    krng = np.random.default_rng([seed, 4242])
    events: list[Event] = []
    for (i, t, d) in timeline:
        s = sources[i]
        ta: float | None = (t + knobs.av_offset_s + float(krng.uniform(-1, 1)) * knobs.event_jitter_s) / knobs.audio_speed
        if knobs.drop_sound_p > 0 and krng.random() < knobs.drop_sound_p:
            ta = None
        events.append(Event(i, s.kind, t, ta, d, freq=s.freq, visible=s.visible))
        if knobs.phantom_sound_p > 0 and krng.random() < knobs.phantom_sound_p:
            events.append(Event(i, s.kind, None, float(krng.uniform(lo_t, hi_t - d)), d, freq=s.freq, visible=s.visible))
    if knobs.swap_band:
        perm = {"low": "high", "high": "low", "mid": "mid"}
        for e in events:
            lo, hi, _ = BANDS[perm[sources[e.source].band]]
            e.freq = float(np.clip(e.freq * (lo + hi) / sum(BANDS[sources[e.source].band][:2]), lo, hi))
    n_frames, n_samples = int(round(duration * fps)), int(round(duration * sample_rate))
    kept = []
    for e in events:
        if e.t_visual is not None:
            e.visual_onset_frame = int(math.ceil(e.t_visual * fps - 1e-9))
            if e.visual_onset_frame >= n_frames:
                e.t_visual, e.visual_onset_frame = None, None
        if e.t_audio is not None:
            e.audio_onset_sample = int(round(e.t_audio * sample_rate))
            if not 0 <= e.audio_onset_sample < n_samples:
                e.t_audio, e.audio_onset_sample = None, None
        if e.t_visual is not None or e.t_audio is not None:
            kept.append(e)
    bed = _BEDS[scenario] if rng.random() < 0.6 else None
    word = str(rng.choice(_SCENARIO_WORDS[scenario]))
    return Scene(seed, labels, sources, kept, bed, word, knobs, duration, fps, sample_rate, height, width)


def active_interval(scene: Scene, source: int, side: str = "visual") -> tuple[float, float] | None:
    """[first onset, last end] of one source's events on one side (seconds), or None."""
    key = "t_visual" if side == "visual" else "t_audio"
    spans = [(getattr(e, key), getattr(e, key) + e.duration) for e in scene.events
             if e.source == source and getattr(e, key) is not None]
    if not spans:
        return None
    return min(a for a, _ in spans), max(b for _, b in spans)
