"""The shared block library every reference family composes (spec §2.4).

* :mod:`.text` — the tiny text encoder (hashing word tokenizer + small Transformer);
* :mod:`.patch` — video and mel patchifiers;
* :mod:`.diffusion` — rectified flow, timestep samplers, CFG, Euler; DDPM/DDIM;
* :mod:`.ema` — exponential moving average;
* :mod:`.melwave` — log-mel with fixed normalisation, pseudo-inverse mel + Griffin-Lim;
* :mod:`.rope`, :mod:`.attention`, :mod:`.fusion` — RoPE helpers, attention and the fusion modules.
"""
