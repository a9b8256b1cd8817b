"""SynthAV clips and benches: one clip from (labels, seed), a whole JavisBench-style folder.

A bench folder ``DIR`` holds

* ``manifest.csv`` — the official CSV columns ``text``, ``audio_text``, ``path``, ``audio_path``,
  ``cat0_ind`` … ``cat4_ind``, plus ``video_text`` (the video-only caption);
* ``sample_{i:04d}.mp4`` + ``.wav`` — the real clips (so ``DIR`` is itself a samples folder for its
  manifest: scoring it scores the oracle), named by ``path`` / ``audio_path`` relative to ``DIR``;
* ``stems/sample_{i:04d}_s{k}.wav`` (one per source) and ``stems/sample_{i:04d}_bed.wav``;
* ``events.json`` — per clip: seed, labels, sources, captions and every event's visual onset
  frame and audio onset sample.

The same (n, seed, split, knobs) give the same bytes.
"""
from __future__ import annotations

import csv
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from reference_models.synthav.captions import make_captions
from reference_models.synthav.io import write_mp4, write_wav
from reference_models.synthav.render import render_video
from reference_models.synthav.scene import (ASPECTS, GENERATOR_VERSION, Labels, Scene, SyncKnobs, build_scene,
                                            stratified_labels)
from reference_models.synthav.sound import render_audio

SPLITS = {"train": 0, "val": 1, "test": 2, "sanity": 3}
MANIFEST_COLUMNS = ["text", "audio_text", "path", "audio_path", "cat0_ind", "cat1_ind", "cat2_ind", "cat3_ind",
                    "cat4_ind", "video_text"]


@dataclass
class Clip:
    """One rendered SynthAV clip: frames (T,H,W,3) uint8, audio (N,) float32, stems name -> (N,)."""

    scene: Scene
    frames: np.ndarray = field(repr=False)
    audio: np.ndarray = field(repr=False)
    stems: dict[str, np.ndarray] = field(repr=False)
    caption: str
    video_caption: str
    audio_caption: str

    @property
    def fps(self) -> int:
        return self.scene.fps

    @property
    def sr(self) -> int:
        return self.scene.sample_rate

    def record(self) -> dict[str, Any]:
        return {**self.scene.to_json(), "caption": self.caption, "video_caption": self.video_caption,
                "audio_caption": self.audio_caption}


def clip_seed(seed: int, split: str, index: int) -> int:
    """The seed of clip ``index`` of a bench (splits never share seeds)."""
    if split not in SPLITS:
        raise ValueError(f"unknown SynthAV split {split!r} (known: {', '.join(SPLITS)})")
    return int(np.random.SeedSequence([seed, SPLITS[split], index]).generate_state(1, np.uint32)[0])


def make_synth_clip(labels: Labels, seed: int, knobs: SyncKnobs | None = None, timed: bool = False,
                    **scene_kw: Any) -> Clip:
    """Build, render and caption one clip."""
    scene = build_scene(labels, seed, knobs, **scene_kw)
    frames = render_video(scene)
    audio, stems = render_audio(scene)
    joint, video, audio_cap = make_captions(scene, timed=timed)
    return Clip(scene, frames, audio, stems, joint, video, audio_cap)


def bench_clips(n: int, seed: int = 0, split: str = "test", knobs: SyncKnobs | None = None,
                timed: bool = False) -> list[Clip]:
    """The ``n`` clips of a bench, labels stratified per aspect (n ≥ 5 covers all 19 categories)."""
    if n < 1:
        raise ValueError(f"a SynthAV bench needs n >= 1 clips, got {n}")
    labels = stratified_labels(n, seed * 4 + SPLITS.get(split, 0))
    return [make_synth_clip(lab, clip_seed(seed, split, i), knobs, timed) for i, lab in enumerate(labels)]


def write_bench(out_dir: str | Path, clips: list[Clip], meta: dict[str, Any] | None = None) -> Path:
    """Write clips as a bench folder (into a temporary sibling, renamed at the end).

    ``out_dir`` must not exist or be an empty folder."""
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"{out} already exists and is not an empty folder; choose a new output folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        (tmp / "stems").mkdir()
        records = []
        with open(tmp / "manifest.csv", "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(MANIFEST_COLUMNS)
            for i, c in enumerate(clips):
                name = f"sample_{i:04d}"
                write_mp4(tmp / f"{name}.mp4", c.frames, c.fps)
                write_wav(tmp / f"{name}.wav", c.audio, c.sr)
                for k, s in c.stems.items():
                    write_wav(tmp / "stems" / f"{name}_{k}.wav", s, c.sr)
                cols = c.scene.labels.columns()
                w.writerow([c.caption, c.audio_caption, f"{name}.mp4", f"{name}.wav",
                            *[cols[f"cat{a}_ind"] for a in range(5)], c.video_caption])
                records.append({"index": i, "sample": name, **c.record()})
        doc = {"generator": GENERATOR_VERSION, **(meta or {}), "n": len(clips),
               "aspects": [{"column": f"cat{i}_ind", "key": a, "categories": list(cats)} for i, (a, cats) in enumerate(ASPECTS)],
               "clips": records}
        (tmp / "events.json").write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def make_bench(out_dir: str | Path, n: int = 64, seed: int = 0, split: str = "test",
               knobs: SyncKnobs | None = None, timed: bool = False) -> Path:
    """``javisbench synthav make``: render ``n`` clips and write the bench folder."""
    knobs = knobs or SyncKnobs()
    clips = bench_clips(n, seed, split, knobs, timed)
    from dataclasses import asdict

    return write_bench(out_dir, clips, {"seed": seed, "split": split, "knobs": asdict(knobs), "timed": timed})


def load_events(bench_dir: str | Path) -> dict[str, Any]:
    """The parsed ``events.json`` of a bench folder."""
    p = Path(bench_dir) / "events.json"
    if not p.is_file():
        raise FileNotFoundError(f"{p} does not exist (a SynthAV bench folder has events.json)")
    return json.loads(p.read_text(encoding="utf-8"))
