"""AVFullDiT ("Does Hearing Help Seeing?") — reconstructed from the abstract (spec §1.4).

**Reconstructed from the abstract** (arXiv 2512.02457, abstract and TL;DR only; no code or
hyperparameters are public).  What the abstract states, and how it is realised here:

* a pretrained **T2V tower** and a pretrained **T2A tower** are re-used (parameter-efficient):
  two Wan-style towers (:class:`reference_models.bridgedit.WanTower`), each with its own patch
  embedding, text path, timestep modulation, FFNs and head;
* **AVFull-Attention** couples them for joint denoising: in every ``joint_every``-th layer the two
  towers' self-attentions become one joint attention over the concatenated video+audio tokens,
  each tower projecting its own tokens with its *own* q/k/v/o (MM-DiT style, so no new attention
  weights); text cross-attention and FFNs stay per tower;
* **AVSyncRoPE** aligns positions on a shared clock: 3-D RoPE ids, axis 0 the token's time, axes
  1-2 space for video ``(τ_v, h, w)`` and ``(τ_a, m + H, W)`` for audio (frequency bin ``m`` offset
  past the video height, width axis offset past the video width, so no audio id collides with a
  video id off the time axis).  ``avsync_mode="seconds_fractional"``: time in video-latent-frame
  units, audio steps fractional (k·Δa/Δv); ``"video_frame_units_integer"``: audio step → the video
  frame holding its centre time (integer);
* the paper's central experiment compares the T2AV model with a **T2V-only counterpart** trained
  identically: ``t2v_only=True`` builds the same video tower with the audio tower removed (preset
  ``tiny-t2v-only``).

Every hyperparameter (depth, width, which layers are joint, the flow objective, CFG) is a
placeholder until the code is released.  ``fusion`` replaces AVFull-Attention by any
:data:`~reference_models.blocks.fusion.FUSIONS` bridge inserted after the joint layers (the towers
then keep separate self-attention) for fusion ablations at identical towers.

Training, sampling, x-conditional modes and tower-alone runs are those of
:class:`reference_models.bridgedit.BridgeDiT` (shared code), with the joint caption read by both
towers and rectified flow for both modalities.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Optional

import torch
import torch.nn.functional as F
from torch import nn

from .blocks.fusion import FusionContext, build_fusion
from .blocks.rope import audio_time_map, band_dims_3d, rope_angles, apply_rope, video_position_ids
from .blocks.text import TinyTextEncoder
from .bridgedit import BridgeDiT, Modality, WanTower
from .interface import Capabilities, Generator
from .javisdit_pp import AudioVideoAttentionBlock

__all__ = ["AVFullDiTConfig", "AVFullDiT", "avfull_attention_layer", "avsync_position_ids", "RECONSTRUCTED"]

RECONSTRUCTED = ("reconstructed from the abstract (arXiv 2512.02457): AVFull-Attention and AVSyncRoPE as "
                 "described there; no code released, every hyperparameter is a placeholder")


@dataclass
class AVFullDiTConfig:
    """Every setting (``config()`` records it); ``provenance`` states the reconstruction."""

    provenance: str = RECONSTRUCTED
    dim: int = 96
    heads: int = 4
    depth: int = 6
    ffn_ratio: float = 4.0
    freq_dim: int = 256
    qk_norm: bool = True
    cross_attn_norm: bool = True
    eps: float = 1e-6
    patch_size: tuple[int, int, int] = (2, 8, 8)
    in_dim: int = 3
    audio_patch_size: tuple[int, int] = (8, 16)
    audio_in_dim: int = 1
    video_step_ms: float = 250.0
    audio_step_ms: float = 125.0
    rope_base: float = 10000.0
    # coupling
    fusion: str = "avfull"                   # AVFull-Attention in the towers' own layers, or a FUSIONS name
    joint_every: int = 1                     # every k-th layer is joint (k = 1: all)
    avsync_mode: Literal["seconds_fractional", "video_frame_units_integer"] = "seconds_fractional"
    t2v_only: bool = False                   # the T2V-only counterpart (no audio tower)
    # text (one shared tiny encoder, a text MLP per tower)
    text_dim: int = 96
    text_len: int = 32
    text_depth: int = 2
    text_heads: int = 4
    unconditional_prob: float = 0.1
    # objective and sampling (placeholders: rectified flow for both, one null pass)
    objective: Literal["rf"] = "rf"
    num_sampling_steps: int = 50
    cfg_video: float = 5.0
    cfg_audio: float = 5.0
    # extension shared with BridgeDiT: x-conditional and tower-alone training (cascades)
    x_cond_prob: float = 0.0
    x_cond_modes: tuple[str, ...] = ("v2a", "a2v")
    tower_only_prob: float = 0.0

    def __post_init__(self) -> None:
        self.patch_size = tuple(self.patch_size)  # type: ignore[assignment]
        self.audio_patch_size = tuple(self.audio_patch_size)  # type: ignore[assignment]
        self.x_cond_modes = tuple(self.x_cond_modes)
        if self.dim % self.heads or (self.dim // self.heads) % 2:
            raise ValueError(f"AVFullDiT: width {self.dim} must split into {self.heads} heads of even width")
        if self.joint_every < 1:
            raise ValueError(f"AVFullDiT: joint_every must be >= 1, got {self.joint_every}")
        if self.avsync_mode not in ("seconds_fractional", "video_frame_units_integer"):
            raise ValueError(f"AVFullDiT: avsync_mode {self.avsync_mode!r} unknown; expected "
                             "'seconds_fractional' or 'video_frame_units_integer'")
        if self.objective != "rf":
            raise ValueError("AVFullDiT: only objective='rf' (the reconstruction's placeholder)")

    # BridgeDiT's shared sampler reads these
    bridge_rope: str = "none"
    bridge_rope_inference: str = "same"

    def joint_layers(self) -> list[int]:
        """Indices of the joint (coupled) layers: ``k−1, 2k−1, …``."""
        return [i for i in range(self.depth) if (i + 1) % self.joint_every == 0]


def avsync_position_ids(grid_v: tuple[int, int, int], grid_a: tuple[int, int], video_step_s: float,
                        audio_step_s: float, mode: str = "seconds_fractional",
                        device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """AVSyncRoPE ids ``(Nv, 3)`` and ``(Na, 3)`` float64 on one clock (video-latent-frame units).

    Video token (t, h, w) → ``(t, h, w)``; audio token (step k, bin m) → ``(τ(k), m + Hv, Wv)`` with
    ``τ(k) = k·Δa/Δv`` (``seconds_fractional``) or the frame holding the step's centre time
    (``video_frame_units_integer``).
    """
    tv, hv, wv = grid_v
    ta, fa = grid_a
    vid = video_position_ids(tv, hv, wv, device).double()
    if mode == "seconds_fractional":
        tau = torch.arange(ta, dtype=torch.float64, device=device) * (audio_step_s / video_step_s)
    else:
        tau = audio_time_map(ta, tv, "physical", audio_step_s, video_step_s, device).double()
    m = torch.arange(fa, dtype=torch.float64, device=device)
    aud = torch.stack([tau[:, None].expand(ta, fa), (m + hv)[None, :].expand(ta, fa),
                       torch.full((ta, fa), float(wv), dtype=torch.float64, device=device)], -1).reshape(-1, 3)
    return vid, aud


def avfull_attention_layer(bv: AudioVideoAttentionBlock, ba: AudioVideoAttentionBlock, xv: torch.Tensor,
                           xa: torch.Tensor, ev0: torch.Tensor, ea0: torch.Tensor, ang_v: torch.Tensor,
                           ang_a: torch.Tensor, ctx_v: torch.Tensor, ctx_a: torch.Tensor
                           ) -> tuple[torch.Tensor, torch.Tensor]:
    """One coupled layer: each tower's Wan block with its self-attention replaced by one joint
    softmax over ``Nv + Na`` tokens (each tower's own q/k/v/o and q/k RMS norms, RoPE with its own
    AVSyncRoPE angles); then per-tower text cross-attention and FFN, as in the tower's block."""
    mv, ma = (bv.modulation + ev0).chunk(6, dim=1), (ba.modulation + ea0).chunk(6, dim=1)
    hv, ha = bv.norm1(xv) * (1 + mv[1]) + mv[0], ba.norm1(xa) * (1 + ma[1]) + ma[0]
    sv, sa = bv.self_attn, ba.self_attn

    def qkv(s: nn.Module, h: torch.Tensor, ang: torch.Tensor) -> tuple[torch.Tensor, ...]:
        q, k, v = s._heads(s.norm_q(s.q(h))), s._heads(s.norm_k(s.k(h))), s._heads(s.v(h))   # (B, N, h, d)
        return apply_rope(q, ang, seq_dim=1), apply_rope(k, ang, seq_dim=1), v

    qv, kv, vv = qkv(sv, hv, ang_v)
    qa, ka, va = qkv(sa, ha, ang_a)
    nv = xv.shape[1]
    out = F.scaled_dot_product_attention(torch.cat([qv, qa], 1).transpose(1, 2), torch.cat([kv, ka], 1).transpose(1, 2),
                                         torch.cat([vv, va], 1).transpose(1, 2)).transpose(1, 2)     # (B, N, h, d)
    out = out.flatten(2)
    xv = xv + sv.o(out[:, :nv]) * mv[2]
    xa = xa + sa.o(out[:, nv:]) * ma[2]
    xv = xv + bv.cross_attn(bv.norm3(xv), ctx_v)
    xa = xa + ba.cross_attn(ba.norm3(xa), ctx_a)
    xv = xv + bv.ffn(bv.norm2(xv) * (1 + mv[4]) + mv[3]) * mv[5]
    xa = xa + ba.ffn(ba.norm2(xa) * (1 + ma[4]) + ma[3]) * ma[5]
    return xv, xa


class AVFullDiT(BridgeDiT):
    """AVFullDiT (reconstructed) as a :class:`Generator` (registry name ``avfulldit``)."""

    family: ClassVar[str] = "avfulldit"
    reconstructed: ClassVar[str] = RECONSTRUCTED
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        # spec §1.8: 6 layers, C 96, 4 heads, per-tower QKV/O, text CA and FFN, joint attention
        "tiny": {},
        "tiny-matched": {"depth": 5},
        # the paper's control: the same video tower without the audio tower
        "tiny-t2v-only": {"t2v_only": True},
    }
    stages: ClassVar[list[str]] = ["joint_from_scratch", "towers", "joint"]
    capabilities: ClassVar[Capabilities] = Capabilities(text=True, disentangled_text=False, audio_domain="mel",
                                                        x_conditional=frozenset({"video", "audio"}))

    def __init__(self, preset: str = "", **options: Any) -> None:  # noqa: D107
        Generator.__init__(self, preset)
        cfg = self.cfg = AVFullDiTConfig(**options)   # type: ignore[assignment]
        tower = dict(freq_dim=cfg.freq_dim, text_dim=cfg.text_dim, qk_norm=cfg.qk_norm,
                     cross_attn_norm=cfg.cross_attn_norm, eps=cfg.eps, rope_base=cfg.rope_base)
        ffn = int(cfg.dim * cfg.ffn_ratio)
        self.video_diffusion = WanTower("video", cfg.dim, cfg.heads, cfg.depth, ffn, patch=cfg.patch_size,
                                        in_dim=cfg.in_dim, **tower)
        self.audio_diffusion = None if cfg.t2v_only else WanTower(
            "audio", cfg.dim, cfg.heads, cfg.depth, ffn, patch=cfg.audio_patch_size, in_dim=cfg.audio_in_dim, **tower)
        joint = cfg.joint_layers()
        self.dual_dit_blocks = nn.ModuleList(
            [build_fusion(cfg.fusion, cfg.dim, cfg.dim, cfg.heads) for _ in joint]
            if cfg.fusion != "avfull" and not cfg.t2v_only else [])
        self.video_text_encoder = TinyTextEncoder(cfg.text_dim, cfg.text_depth, cfg.text_heads, max_len=cfg.text_len)
        self.audio_text_encoder = None
        self._mel = None
        self._noted_fallback = True            # one joint caption: nothing to fall back from
        if not any(p.is_meta for p in self.parameters()):
            self.video_diffusion.init_weights()
            if self.audio_diffusion is not None:
                self.audio_diffusion.init_weights()

    # -- captions: both towers read the joint caption ------------------------------------------------
    def _captions(self, joint: list[str], video: Optional[list[Optional[str]]], audio: Optional[list[Optional[str]]]
                  ) -> tuple[list[str], list[str], bool]:
        return list(joint), list(joint), False

    def context(self, modality: Modality, captions: list[str], drop: Optional[torch.Tensor] = None) -> torch.Tensor:
        if modality == "audio" and self.audio_diffusion is None:
            return torch.zeros(len(captions), 1, self.cfg.dim, device=self.device)   # unused placeholder
        return super().context(modality, captions, drop)

    # -- positions --------------------------------------------------------------------------------------
    def angles(self, grid_v: Optional[tuple[int, ...]], grid_a: Optional[tuple[int, ...]], device: torch.device,
               n_frames_latent: int) -> tuple[Optional[torch.Tensor], Optional[torch.Tensor]]:
        cfg = self.cfg
        gv = grid_v if grid_v is not None else (n_frames_latent, 1, 1)
        ga = grid_a if grid_a is not None else (1, 1)
        vid, aud = avsync_position_ids(gv, ga, cfg.video_step_ms / 1000, cfg.audio_step_ms / 1000,  # type: ignore[arg-type]
                                       cfg.avsync_mode, device)
        bands = band_dims_3d(cfg.dim // cfg.heads)
        return (rope_angles(vid, bands, cfg.rope_base) if grid_v is not None else None,
                rope_angles(aud, bands, cfg.rope_base) if grid_a is not None else None)

    # -- the network ----------------------------------------------------------------------------
    def forward(self, video: Optional[torch.Tensor], mel: Optional[torch.Tensor], t_video: Optional[torch.Tensor],
                t_audio: Optional[torch.Tensor], ctx_video: Optional[torch.Tensor], ctx_audio: Optional[torch.Tensor],
                bridges: bool = True, rope_mode: Optional[str] = None) -> dict[str, torch.Tensor]:
        """As :meth:`BridgeDiT.forward`; ``bridges=False`` runs the towers uncoupled (T2V / T2A)."""
        cfg = self.cfg
        vt, at = self.video_diffusion, self.audio_diffusion
        if mel is not None and at is None:
            raise ValueError("avfulldit: this is the T2V-only counterpart (t2v_only=True); it has no audio tower")
        run_v, run_a = video is not None, mel is not None
        grid_v = grid_a = None
        if run_v:
            xv, grid_v = vt.embed(video)
            ev, ev0 = vt.time(t_video)
        if run_a:
            xa, grid_a = at.embed(mel)
            ea, ea0 = at.time(t_audio)
        n_lat = max(int(round(grid_a[0] * cfg.audio_step_ms / cfg.video_step_ms)), 1) if grid_a is not None else 1
        ang_v, ang_a = self.angles(grid_v, grid_a, (xv if run_v else xa).device, n_lat)
        coupled = bridges and run_v and run_a
        joint = set(cfg.joint_layers())
        fusions = iter(self.dual_dit_blocks)
        for i in range(cfg.depth):
            if coupled and i in joint and cfg.fusion == "avfull":
                xv, xa = avfull_attention_layer(vt.blocks[i], at.blocks[i], xv, xa, ev0, ea0, ang_v, ang_a,
                                                ctx_video, ctx_audio)
                continue
            if run_v:
                xv = vt.run(xv, ev0, ang_v, ctx_video, i, i + 1)
            if run_a:
                xa = at.run(xa, ea0, ang_a, ctx_audio, i, i + 1)
            if coupled and i in joint and cfg.fusion != "avfull":
                fctx = FusionContext(t_v=ev, t_a=ea, grid_v=(grid_v[0], math.prod(grid_v[1:])),
                                     grid_a=(grid_a[0], grid_a[1]), angles_v=ang_v, angles_a=ang_a)
                xv, xa = next(fusions)(xv, xa, fctx)
        out: dict[str, torch.Tensor] = {}
        if run_v:
            out["video"] = vt.out(xv, ev, grid_v)
        if run_a:
            out["audio"] = at.out(xa, ea, grid_a)
        return out

    # -- stages ---------------------------------------------------------------------------------
    def set_stage(self, name: str) -> None:
        """``joint_from_scratch`` / ``joint``: everything trains (``joint`` keeps the text encoder
        frozen, as re-used pretrained towers would); ``towers``: towers alone (T2V + T2A pretraining)."""
        Generator.set_stage(self, name)
        for n, p in self.named_parameters():
            p.requires_grad_(name == "joint_from_scratch" or (name == "joint" and not n.startswith("video_text_encoder"))
                             or (name == "towers" and not n.startswith("dual_dit_blocks")))

    # -- training / generation for the T2V-only counterpart -------------------------------------------
    def training_step(self, batch: Any, step: int) -> dict[str, torch.Tensor]:
        if self.audio_diffusion is not None:
            return super().training_step(batch, step)
        dev = self.device
        x0 = batch["video"].to(dev).float()
        b = x0.shape[0]
        drop = (torch.rand(b) < self.cfg.unconditional_prob).to(dev) if self.training else None
        ctx = self.context("video", list(batch["caption"]), drop)
        t = torch.rand(b, device=dev)
        noise = torch.randn_like(x0)
        xt, target = self.noisy("video", x0, noise, t)
        loss = F.mse_loss(self(xt, None, t, None, ctx, None)["video"], target)
        return {"loss": loss, "loss_video": loss.detach(), "loss_audio": torch.zeros((), device=dev)}

    @torch.no_grad()
    def generate(self, req: Any) -> Any:
        if self.audio_diffusion is not None:
            return super().generate(req)
        import time as _time

        from .interface import GenerationOutput
        was_training = self.training
        self.eval()
        t0 = _time.perf_counter()
        x, extras = self.sample(req, towers=("video",), bridges=False)
        video = ((x["video"].float().clamp(-1, 1) + 1) / 2).cpu()
        self.train(was_training)
        silence = torch.zeros(len(req), req.num_samples)
        return GenerationOutput(video=video, audio=silence, fps=req.fps, sample_rate=req.sample_rate,
                                extras={**extras, "audio": "none (T2V-only counterpart: silent track)",
                                        "seconds_total": _time.perf_counter() - t0})
