"""Reference generators and sanity baselines for javisbench (never imports ``javisbench``).

* :mod:`reference_models.synthav` — SynthAV-lite: tiny procedural sounding videos with a known
  event timeline, written as JavisBench-style sample folders.
* :mod:`reference_models.baselines` — corruptions with a known effect (shifted or swapped audio,
  frozen video, silence, pixel noise) used as sanity anchors.
"""
