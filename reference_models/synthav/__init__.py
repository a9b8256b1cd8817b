"""SynthAV: a seeded procedural sounding-video bench with an exact event timeline (spec §3).

* :mod:`.scene` — labels (the 19 JavisBench categories), sources, events, synchrony knobs;
* :mod:`.render` / :mod:`.sound` — video (3 styles × 5 scenarios) and audio with per-source stems;
* :mod:`.captions` — joint, video-only and audio-only captions;
* :mod:`.bench` — clips and bench folders (``manifest.csv``, clips, stems, ``events.json``);
* :mod:`.io` — deterministic mp4/wav writers;
* :mod:`.lite` — SynthAV-lite, the earlier simpler generator, kept for the suite's own tests.
"""
from reference_models.synthav.bench import (Clip, bench_clips, clip_seed, load_events, make_bench, make_synth_clip,
                                            write_bench)
from reference_models.synthav.io import write_clip, write_mp4, write_wav
from reference_models.synthav.lite import SynthClip, make_clip, write_manifest, write_meta
from reference_models.synthav.scene import (ASPECTS, GENERATOR_VERSION, N_CATEGORIES, Labels, Scene, SyncKnobs,
                                            build_scene, stratified_labels)

__all__ = ["ASPECTS", "GENERATOR_VERSION", "N_CATEGORIES", "Clip", "Labels", "Scene", "SyncKnobs", "SynthClip",
           "bench_clips", "build_scene", "clip_seed", "load_events", "make_bench", "make_clip", "make_synth_clip",
           "stratified_labels", "write_bench", "write_clip", "write_manifest", "write_meta", "write_mp4", "write_wav"]
