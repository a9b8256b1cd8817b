"""Reference generators, their synthetic domain and sanity baselines (never imports ``javisbench``).

* :mod:`reference_models.synthav` — SynthAV: seeded procedural sounding-video benches with an exact
  event timeline, all 19 JavisBench categories, per-source stems (SynthAV-lite in ``synthav.lite``).
* :mod:`reference_models.interface` — ``GenerationRequest`` / ``GenerationOutput``, the
  ``Generator`` base class and the lazy registry ``GENERATORS``.
* :mod:`reference_models.blocks` — the shared library every family composes (text encoder,
  patchifiers, schedules, samplers, CFG, EMA, RoPE, attention, fusion, mel <-> wave).
* one module per family (``javisdit``, ``javisdit_pp``, ``bridgedit``, ``avfulldit``,
  ``mmdiffusion``, ``cascades``).
* :mod:`reference_models.baselines` — corruptions with a known effect (torch-free), and
  :mod:`reference_models.baseline_generators` — the same behind the interface.
* :mod:`reference_models.data`, :mod:`reference_models.train`, :mod:`reference_models.generate` —
  bench folders as training data, the trainer with checkpoints, generation over a bench.
"""
