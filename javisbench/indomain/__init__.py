"""In-domain encoders: small video, audio and text encoders and an offset classifier trained on SynthAV.

They give every metric family (Fréchet distances and KVD, text/audio/video similarity, AVHScore and
JavisScore windows, DeSync) a number offline, on SynthAV-like clips, with weights shipped inside the
package (``weights/*.safetensors``, a few hundred kB).  Their metric keys end in ``@synthav`` and
are never official: they measure the same things as the official metrics, in another embedding
space, and only on the domain they were trained on.

* :mod:`.model` — the networks and their input views (8 fps 32×32 frames, 16 kHz log-mel, hashed words);
* :mod:`.train` — the training script (``python -m javisbench.indomain.train --out DIR --seed 0``);
* :mod:`.weights` — the shipped files and their sha256.
"""
