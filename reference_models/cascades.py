"""Cascaded baselines as generators (spec §4): ``t2v-v2a`` and ``t2a-a2v`` (and ``parallel``).

A cascade is built from one reference model's *x-conditional modes*, so both stages share weights
and the comparison with the joint model isolates error accumulation (spec §4.2):

* ``t2v_v2a`` — the MM-Diffusion thesis's sequential pipeline: stage 1 runs the **video tower
  alone** from the video caption (a text-to-video model: no bridges, no audio); the frames are
  decoded to pixels in [0, 1]; stage 2 runs the model's **v2a mode**: the decoded video is given
  clean (t = 0) and the audio is sampled from noise, conditioned on the video and the caption;
* ``t2a_a2v`` — symmetric: the audio tower alone (text-to-audio), decoded to a waveform
  (Griffin-Lim), re-analysed to a mel and given clean to the **a2v mode**;
* ``parallel`` — both towers alone, no interaction (BridgeDiT's "Wan + SDA" ablation).

A request whose ``condition`` already holds the first modality skips stage 1: the oracle upper
bound of spec §4.2 (V2A fed ground-truth video, A2V fed ground-truth audio).

Training (``training_step``) delegates to the base model with its tower-alone and x-conditional
training switched on: ``tower_only_prob`` of the batches train the stage-1 tower alone, the rest the
stage-2 x-conditional mode (``train_second_stage_on="gt"``: stage 2 sees ground-truth conditions,
the standard recipe and the error-accumulation weakness BridgeDiT argues about).  Both stages'
NFE and wall time are reported in ``extras``.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch

from .interface import Batch, Capabilities, GenerationOutput, GenerationRequest, Generator, generator_class

__all__ = ["CascadeConfig", "Cascade", "T2VThenV2A", "T2AThenA2V"]

Order = Literal["t2v_v2a", "t2a_a2v", "parallel"]


@dataclass
class CascadeConfig:
    """``base``: the registry name of the two-tower family whose modes are chained (``bridgedit`` or
    ``avfulldit``); ``base_preset`` and ``base_options`` build it; ``order``: the chain."""

    base: str = "bridgedit"
    base_preset: str = "tiny"
    base_options: dict[str, Any] = dataclasses.field(default_factory=dict)
    order: Order = "t2v_v2a"
    tower_only_prob: float = 0.5
    train_second_stage_on: Literal["gt"] = "gt"

    def __post_init__(self) -> None:
        if self.order not in ("t2v_v2a", "t2a_a2v", "parallel"):
            raise ValueError(f"cascade order {self.order!r} unknown; expected t2v_v2a, t2a_a2v or parallel")
        if self.train_second_stage_on != "gt":
            raise ValueError("cascade: train_second_stage_on='gt' is the only supported recipe")
        if not 0.0 <= self.tower_only_prob <= 1.0:
            raise ValueError(f"cascade: tower_only_prob must lie in [0, 1], got {self.tower_only_prob}")


class Cascade(Generator):
    """Two stages of one base model (see the module docstring). ``model`` is the base generator."""

    family: ClassVar[str] = "cascade"
    order: ClassVar[Order] = "parallel"
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "tiny": {"base": "bridgedit", "base_preset": "tiny"},
        "tiny-matched": {"base": "bridgedit", "base_preset": "tiny-matched"},
        "avfulldit-tiny": {"base": "avfulldit", "base_preset": "tiny"},
    }
    stages: ClassVar[list[str]] = ["joint_from_scratch"]
    capabilities: ClassVar[Capabilities] = Capabilities(text=True, disentangled_text=True, audio_domain="mel")

    def __init__(self, preset: str = "", **options: Any) -> None:
        super().__init__(preset)
        options.setdefault("order", self.order)
        cfg = self.cfg = CascadeConfig(**options)
        if cfg.order != self.order and type(self) is not Cascade:
            raise ValueError(f"{self.family}: order is fixed to {self.order!r}, got {cfg.order!r}")
        base_cls = generator_class(cfg.base)
        if not {"video", "audio"} <= set(base_cls.capabilities.x_conditional):
            raise ValueError(f"cascade: base {cfg.base!r} has no v2a/a2v x-conditional modes")
        modes = {"t2v_v2a": ("v2a",), "t2a_a2v": ("a2v",), "parallel": ("v2a", "a2v")}[cfg.order]
        base_opts = {**cfg.base_options, "x_cond_modes": modes,
                     "tower_only_prob": 1.0 if cfg.order == "parallel" else cfg.tower_only_prob,
                     "x_cond_prob": 0.0 if cfg.order == "parallel" else 1.0 - cfg.tower_only_prob}
        # built in place (no device move), so a cascade built on the meta device stays there
        self.model = base_cls(preset=cfg.base_preset, **{**base_cls.preset_config(cfg.base_preset), **base_opts})
        self.capabilities = Capabilities(text=True, disentangled_text=base_cls.capabilities.disentangled_text,
                                         audio_domain=base_cls.capabilities.audio_domain)

    def training_step(self, batch: Batch, step: int) -> dict[str, torch.Tensor]:
        """The base model's loss with stage-1 (tower alone) and stage-2 (x-conditional) batches mixed."""
        return self.model.training_step(batch, step)

    @torch.no_grad()
    def generate(self, req: GenerationRequest) -> GenerationOutput:
        """Stage 1 then stage 2 (``parallel``: both towers alone); seeds as the request says."""
        model = self.model
        was_training = model.training
        model.eval()
        t0 = time.perf_counter()
        first: Literal["video", "audio"] = "audio" if self.cfg.order == "t2a_a2v" else "video"
        if self.cfg.order == "parallel":
            x, ex = model.sample(req, towers=("video", "audio"), bridges=False)   # type: ignore[attr-defined]
            video = ((x["video"].float().clamp(-1, 1) + 1) / 2).cpu()
            mel = x["audio"].float().clamp(-4, 4).cpu()
            audio = model._mel_spec().to_wave(mel, req.num_samples, seed=int(req.seed or 0)).cpu()  # type: ignore[attr-defined]
            model.train(was_training)
            return GenerationOutput(video=video, audio=audio, fps=req.fps, sample_rate=req.sample_rate, mel=mel,
                                    extras={"order": "parallel", "nfe": ex["nfe"], "stage1": ex,
                                            "seconds_total": time.perf_counter() - t0})
        if req.condition and first in req.condition:
            # the oracle upper bound of spec §4.2: stage 2 fed the ground-truth first modality
            out = model.generate(req)
            model.train(was_training)
            return GenerationOutput(video=out.video, audio=out.audio, fps=out.fps, sample_rate=out.sample_rate,
                                    mel=out.mel, extras={"order": self.cfg.order, "nfe": out.extras.get("nfe", 0),
                                                         "stage1": {"modality": first, "given": True, "nfe": 0},
                                                         "stage2": {"mode": "v2a" if first == "video" else "a2v",
                                                                    "nfe": out.extras.get("nfe", 0)},
                                                         "seconds_total": time.perf_counter() - t0})
        x, ex1 = model.sample(req, towers=(first,), bridges=False)               # type: ignore[attr-defined]
        t1 = time.perf_counter()
        if first == "video":
            stage1 = ((x["video"].float().clamp(-1, 1) + 1) / 2)                  # decoded frames in [0, 1]
        else:
            mel1 = x["audio"].float().clamp(-4, 4).cpu()
            stage1 = model._mel_spec().to_wave(mel1, req.num_samples, seed=int(req.seed or 0))  # type: ignore[attr-defined]
        req2 = dataclasses.replace(req, condition={first: stage1})
        out = model.generate(req2)
        model.train(was_training)
        extras = {"order": self.cfg.order, "nfe": ex1["nfe"] + out.extras.get("nfe", 0),
                  "stage1": {"modality": first, "nfe": ex1["nfe"], "seconds": t1 - t0},
                  "stage2": {"mode": "v2a" if first == "video" else "a2v", "nfe": out.extras.get("nfe", 0),
                             "seconds": time.perf_counter() - t1},
                  "seconds_total": time.perf_counter() - t0}
        return GenerationOutput(video=out.video, audio=out.audio, fps=out.fps, sample_rate=out.sample_rate,
                                mel=out.mel, extras=extras)


class T2VThenV2A(Cascade):
    """``t2v-v2a``: video tower alone from text, then the v2a mode on the decoded video."""

    family: ClassVar[str] = "t2v-v2a"
    order: ClassVar[Order] = "t2v_v2a"


class T2AThenA2V(Cascade):
    """``t2a-a2v``: audio tower alone from text, then the a2v mode on the decoded audio."""

    family: ClassVar[str] = "t2a-a2v"
    order: ClassVar[Order] = "t2a_a2v"
