"""A test-only joint rectified-flow generator built from the shared blocks.

Small enough to train a few steps in a test: the shared text encoder (pooled caption), both
patchifiers, one Transformer layer over the concatenated video+audio tokens, the RF schedule, CFG
and the Euler sampler; mel -> waveform by Griffin-Lim.  Registered as ``tiny-rf-test`` by the tests.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from reference_models.blocks.diffusion import GuidedVelocity, RectifiedFlow, euler_sample
from reference_models.blocks.melwave import MelSpec
from reference_models.blocks.patch import MelPatchifier, VideoPatchifier
from reference_models.blocks.text import TinyTextEncoder
from reference_models.interface import (Capabilities, GenerationOutput, GenerationRequest, Generator, seeded_noise)


@dataclass
class TinyRFConfig:
    width: int = 32
    depth: int = 1
    heads: int = 2
    gl_iters: int = 4
    default_steps: int = 4
    default_cfg: float = 2.0
    duration_s: float = 4.0
    fps: float = 8.0
    height: int = 32
    width_px: int = 32
    sample_rate: int = 16000


class TinyRF(Generator):
    family = "tiny-rf-test"
    presets = {"tiny": {}, "tiny-wide": {"width": 48}}
    stages = ["joint_from_scratch", "audio_only"]
    capabilities = Capabilities(text=True, audio_domain="mel")

    def __init__(self, preset: str = "tiny", **kw: object) -> None:
        super().__init__(preset)
        self.cfg = TinyRFConfig(**kw)  # type: ignore[arg-type]
        c = self.cfg.width
        self.vp, self.mp = VideoPatchifier((2, 8, 8)), MelPatchifier((8, 16))
        self.text = TinyTextEncoder(c, depth=1, heads=2)
        self.v_in, self.a_in = nn.Linear(self.vp.token_dim, c), nn.Linear(self.mp.token_dim, c)
        self.pos = nn.Parameter(torch.zeros(1, 256 + 128, c))
        self.t_mlp = nn.Sequential(nn.Linear(1, c), nn.SiLU(), nn.Linear(c, c))
        layer = nn.TransformerEncoderLayer(c, self.cfg.heads, 2 * c, dropout=0.0, batch_first=True, norm_first=True)
        self.body = nn.TransformerEncoder(layer, self.cfg.depth, enable_nested_tensor=False)
        self.v_out, self.a_out = nn.Linear(c, self.vp.token_dim), nn.Linear(c, self.mp.token_dim)
        self.flow = RectifiedFlow()
        self.mel = MelSpec()

    def clip_size(self) -> dict:
        return {"duration_s": self.cfg.duration_s, "fps": self.cfg.fps, "height": self.cfg.height,
                "width": self.cfg.width_px, "sample_rate": self.cfg.sample_rate}

    def set_stage(self, name: str) -> None:
        super().set_stage(name)
        for p in self.parameters():
            p.requires_grad_(True)
        if name == "audio_only":
            for m in (self.v_in, self.v_out):
                for p in m.parameters():
                    p.requires_grad_(False)

    def velocity(self, x: dict[str, torch.Tensor], t: torch.Tensor, cond: torch.Tensor) -> dict[str, torch.Tensor]:
        v = self.v_in(x["video"])
        a = self.a_in(x["audio"])
        h = torch.cat([v, a], 1) + self.pos + (self.t_mlp(t[:, None].float()) + cond)[:, None]
        h = self.body(h)
        return {"video": self.v_out(h[:, :256]), "audio": self.a_out(h[:, 256:])}

    def training_step(self, batch: dict, step: int) -> dict[str, torch.Tensor]:
        x0 = {"video": self.vp.patchify(batch["video"]), "audio": self.mp.patchify(batch["mel"])}
        b = x0["video"].shape[0]
        drop = torch.rand(b) < 0.1
        caps = ["" if d else c for d, c in zip(drop.tolist(), batch["caption"])]
        cond = self.text(caps).pooled
        t = self.flow.sample_t(b, device=x0["video"].device)
        noise = {k: torch.randn_like(v) for k, v in x0.items()}
        xt = {k: self.flow.add_noise(x0[k], noise[k], t) for k in x0}
        pred = self.velocity(xt, t, cond)
        lv = self.flow.loss(pred["video"], x0["video"], noise["video"])
        la = self.flow.loss(pred["audio"], x0["audio"], noise["audio"])
        return {"loss": lv + la, "loss_video": lv.detach(), "loss_audio": la.detach()}

    @torch.no_grad()
    def generate(self, req: GenerationRequest) -> GenerationOutput:
        dev = self.device
        seeds = req.sample_seeds()
        x = {"video": seeded_noise((256, self.vp.token_dim), seeds, dev, stream="video"),
             "audio": seeded_noise((128, self.mp.token_dim), seeds, dev, stream="audio")}
        w = {m: req.guidance_for(m, self.cfg.default_cfg) for m in ("video", "audio")}
        g = GuidedVelocity(lambda xx, tt, cc: self.velocity(xx, tt, cc), self.text(req.prompts).pooled,
                           self.text([""] * len(req)).pooled, w)
        x = euler_sample(g, x, self.flow.timesteps(req.num_steps or self.cfg.default_steps, dev))
        video = self.vp.unpatchify(x["video"], (16, 4, 4)).add(1).div(2).clamp(0, 1)
        mel = self.mp.unpatchify(x["audio"], (32, 4)).clamp(-4, 4)
        audio = self.mel.to_wave(mel, req.num_samples, n_iter=self.cfg.gl_iters)
        return GenerationOutput(video, audio, req.fps, req.sample_rate, mel=mel, extras={"nfe": g.nfe})
