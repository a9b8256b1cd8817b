"""JavisDiT++ (JavisDiT v1.0): a single-stream Wan-style DiT with modality-specific FFNs, TA-RoPE and AV-DPO.

Spec: reference-models §1.2; original code: JavisVerse/JavisDiT ``javisdit/models/wan/modules/model.py``
(``WanModel`` with ``model_type='t2av'``, ``dual_ffn=True``), ``javisdit/schedulers/rf/rectified_flow.py``
(the DPO loss) and ``tools/datasets/process_dpo.py`` (pair mining, in :mod:`reference_models.dpo`).
Module and parameter names follow the original, so the ``paper`` preset has its state-dict layout.

One layer (``AudioVideoAttentionBlock``), on ``x = concat(video tokens, audio tokens)``:

    x  += gate · SelfAttn(LN(x)·(1+scale)+shift)          shared; 3-D RoPE with TA-RoPE ids
    x  += CrossAttn(LN_affine(x), text)                   shared text cross-attention
    xv += gate_v · FFN_v(LN(xv)·(1+scale_v)+shift_v)      video FFN, video modulation (Wan's)
    xa += gate_a · FFN_a(LN(xa)·(1+scale_a)+shift_a)      audio FFN, ``audio_time_projection``

"MS-MoE" is therefore a fixed, modality-routed FFN pair (no router, no top-k, no balancing loss).

TA-RoPE: video token (t, h, w) gets ids (t, h, w); audio token (step k, bin m) gets
(τ(k), k + Hv, m + Wv) with τ the video-aligned time map (``ta_time_map``). Tokens are processed
in concatenated order, as the original ``forward`` does; only the ids carry alignment (the
interleaved order the original also defines is in :func:`reference_models.blocks.rope.interleave_audio_video`).

Tiny scale: no VAE. Video in pixels (B, T, 3, H, W) in [−1, 1] with patch (2, 8, 8); audio as the
suite's normalised log-mel (B, Tm, 64) with patch (8, 16) → 256 video + 128 audio tokens. The
network predicts the suite's rectified-flow velocity ε − x0 (the original predicts x0 − ε through
its internal sign flip; the same flow).

Sizes: the ``paper`` preset has 2.098 Gi parameters (the paper's "2.1 B" is in binary units), 794.8 Mi
trained in audio pretraining ("794 M") and 121.9 Mi of LoRA in SFT ("121 M"). Its audio patch (2, 2)
on AudioLDM2's 8-channel latents is the paper's "8×8 compression" (4×4 VAE × 2×2 patch).

Paper-vs-code options (spec §5), each defaulting to the code:

* ``ta_time_map``: ``"code_ceil_linspace"`` (code) | ``"paper_round"`` (paper, clamped) | ``"physical"``.
* ``audio_pe_type``: ``"interleave_offset"`` (code default) | ``"interleave"`` | ``"interpolate"`` | ``"vanilla"``.
* ``dpo_loss``: ``"code"`` (per-modality ``−log σ(−½β_k(Δπ_k − Δref_k))`` + ``dpo_sft_weight``·winner flow
  loss, summed) | ``"paper"`` (one sigmoid over the β-weighted sum of both modalities, eq. 6).
* ``beta_video`` 3000 / ``beta_audio`` 1000: the released config (the paper's text swaps them).
* ``timestep_shift``: ``"code"`` shifts training times with JavisDiT's resolution rule × 5
  (``transform_scale``) but samples with the rule × 1 (``RFLOW.sample`` does not pass the scale);
  ``"none"`` uses no shift in either phase.
* ``sft_lora_rank``: the released SFT/DPO recipe trains LoRA r = 64, α = 16 on self/cross-attention
  q,k,v,o and both FFNs (the ``paper`` preset); the tiny presets (0) fine-tune the full weights.
* ``audio_special_token`` is refused: the released code path raises (see rope.interleave_audio_video).
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Optional

import torch
import torch.nn.functional as F
from torch import nn

from .blocks.attention import Head, WanCrossAttention, WanLayerNorm, WanSelfAttention, sinusoidal_embedding
from .blocks.diffusion import GuidedVelocity, RectifiedFlow, euler_sample, javisdit_resolution_shift
from .blocks.melwave import MelSpec
from .blocks.patch import MelPatchifier, VideoPatchifier
from .blocks.rope import audio_position_ids, band_dims_3d, rope_angles, video_position_ids
from .blocks.text import TinyTextEncoder
from .interface import Batch, Capabilities, GenerationOutput, GenerationRequest, Generator, seeded_noise

__all__ = ["JavisDiTPPConfig", "JavisDiTPP", "AudioVideoAttentionBlock", "LoRALinear"]


@dataclass
class JavisDiTPPConfig:
    """Every setting of the model (``config()`` records it with each checkpoint)."""

    dim: int = 96
    ffn_dim: int = 384
    num_heads: int = 4
    num_layers: int = 4
    freq_dim: int = 256
    qk_norm: bool = True
    cross_attn_norm: bool = True
    eps: float = 1e-6
    dual_ffn: bool = True                     # MS-MoE (False: one shared FFN, plain Wan)
    # video / audio inputs
    patch_size: tuple[int, int, int] = (2, 8, 8)
    in_dim: int = 3
    out_dim: int = 3
    audio_patch_size: tuple[int, int] = (8, 16)
    audio_in_dim: int = 1
    audio_out_dim: int = 1
    video_step_ms: float = 250.0              # one video token step (patch-t frames at fps)
    audio_step_ms: float = 125.0              # one audio token step (patch-t mel hops)
    # TA-RoPE
    audio_pe_type: Literal["vanilla", "interpolate", "interleave", "interleave_offset"] = "interleave_offset"
    ta_time_map: Literal["code_ceil_linspace", "paper_round", "physical"] = "code_ceil_linspace"
    rope_base: float = 10000.0
    audio_special_token: bool = False
    # text
    text_encoder: Literal["tiny", "external"] = "tiny"
    text_dim: int = 96
    text_len: int = 32
    text_depth: int = 2
    text_heads: int = 4
    class_drop_prob: float = 0.1
    # flow and sampling
    timestep_sampler: Literal["logit_normal", "uniform"] = "logit_normal"
    timestep_shift: Literal["code", "none"] = "code"
    transform_scale: float = 5.0
    num_sampling_steps: int = 50
    cfg_scale: float = 5.0
    # stages
    sft_lora_rank: int = 0
    sft_lora_alpha: float = 16.0
    # AV-DPO
    dpo_loss: Literal["code", "paper"] = "code"
    beta_video: float = 3000.0
    beta_audio: float = 1000.0
    dpo_sft_weight: float = 0.1
    dpo_rejected: str = ""                    # rejected.csv of a pair bench (reference_models.dpo.write_pair_bench)
    lr: float = 1e-4

    def __post_init__(self) -> None:
        self.patch_size = tuple(self.patch_size)  # type: ignore[assignment]
        self.audio_patch_size = tuple(self.audio_patch_size)  # type: ignore[assignment]
        if self.dim % self.num_heads or (self.dim // self.num_heads) % 2:
            raise ValueError(f"dim {self.dim} must split into {self.num_heads} heads of even width")
        if self.audio_special_token:
            raise ValueError("audio_special_token=True is broken in the original code (list.extend of an int); "
                             "the reference keeps it off")
        if self.dpo_loss not in ("code", "paper"):
            raise ValueError(f"dpo_loss must be 'code' or 'paper', got {self.dpo_loss!r}")
        if self.timestep_shift not in ("code", "none"):
            raise ValueError(f"timestep_shift must be 'code' or 'none', got {self.timestep_shift!r}")


# ------------------------------------------------------------------------------------------- LoRA


class LoRALinear(nn.Module):
    """``base(x) + (α/r)·B(A(x))`` with ``A`` Kaiming-initialised and ``B`` zero (peft's layout:
    ``base_layer``, ``lora_A``, ``lora_B``); the base layer is frozen."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float) -> None:
        super().__init__()
        self.base_layer = base
        self.lora_A = nn.Linear(base.in_features, rank, bias=False)
        self.lora_B = nn.Linear(rank, base.out_features, bias=False)
        nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5))
        nn.init.zeros_(self.lora_B.weight)
        self.scaling = alpha / rank
        for p in base.parameters():
            p.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base_layer(x) + self.lora_B(self.lora_A(x)) * self.scaling

    def merged(self) -> nn.Linear:
        """A plain Linear with the update folded in."""
        lin = nn.Linear(self.base_layer.in_features, self.base_layer.out_features,
                        bias=self.base_layer.bias is not None).to(self.base_layer.weight)
        with torch.no_grad():
            lin.weight.copy_(self.base_layer.weight + self.scaling * self.lora_B.weight @ self.lora_A.weight)
            if self.base_layer.bias is not None:
                lin.bias.copy_(self.base_layer.bias)
        return lin


# The released SFT/DPO LoRA targets (configs/javisdit-v1-0/train/stage2_audio_video.py).
LORA_TARGETS = ("self_attn.q", "self_attn.k", "self_attn.v", "self_attn.o", "cross_attn.q", "cross_attn.k",
                "cross_attn.v", "cross_attn.o", "ffn.0", "ffn.2", "audio_ffn.0", "audio_ffn.2")


# ------------------------------------------------------------------------------------------ blocks


class ParameterWrapper(nn.Module):
    """Holds one parameter as ``.param`` (the original's ``audio_modulation`` layout)."""

    def __init__(self, param: nn.Parameter) -> None:
        super().__init__()
        self.param = param

    def forward(self) -> torch.Tensor:
        return self.param


def _ffn(dim: int, hidden: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(dim, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, dim))


class AudioVideoAttentionBlock(nn.Module):
    """Shared self-attention + shared text cross-attention, then a video FFN and an audio FFN."""

    def __init__(self, dim: int, ffn_dim: int, num_heads: int, qk_norm: bool = True, cross_attn_norm: bool = True,
                 eps: float = 1e-6, dual_ffn: bool = True) -> None:
        super().__init__()
        self.dual_ffn = dual_ffn
        self.norm1 = WanLayerNorm(dim, eps)
        self.self_attn = WanSelfAttention(dim, num_heads, qk_norm, eps)
        self.norm3 = WanLayerNorm(dim, eps, elementwise_affine=True) if cross_attn_norm else nn.Identity()
        self.cross_attn = WanCrossAttention(dim, num_heads, qk_norm, eps)
        self.norm2 = WanLayerNorm(dim, eps)
        self.ffn = _ffn(dim, ffn_dim)
        if dual_ffn:
            self.audio_norm2 = WanLayerNorm(dim, eps)
            self.audio_ffn = _ffn(dim, ffn_dim)
        self.modulation = nn.Parameter(torch.randn(1, 6, dim) / dim ** 0.5)
        if dual_ffn:
            self.audio_modulation = ParameterWrapper(nn.Parameter(torch.randn(1, 3, dim) / dim ** 0.5))

    def forward(self, x: torch.Tensor, e: torch.Tensor, audio_e: Optional[torch.Tensor], angles: torch.Tensor,
                context: torch.Tensor, n_video: int) -> torch.Tensor:
        """x ``(B, Nv+Na, C)``; e ``(B, 6, C)``; audio_e ``(B, 3, C)``; angles ``(Nv+Na, d/2)``;
        context ``(B, L, C)``; the first ``n_video`` tokens are video."""
        m = (self.modulation + e).chunk(6, dim=1)
        x = x + self.self_attn(self.norm1(x) * (1 + m[1]) + m[0], angles) * m[2]
        x = x + self.cross_attn(self.norm3(x), context)
        if not self.dual_ffn:
            return x + self.ffn(self.norm2(x) * (1 + m[4]) + m[3]) * m[5]
        vx, ax = x[:, :n_video], x[:, n_video:]
        if n_video:
            vx = vx + self.ffn(self.norm2(vx) * (1 + m[4]) + m[3]) * m[5]
        if ax.shape[1]:
            am = (self.audio_modulation() + audio_e).chunk(3, dim=1)
            ax = ax + self.audio_ffn(self.audio_norm2(ax) * (1 + am[1]) + am[0]) * am[2]
        return torch.cat((vx, ax), dim=1)


# ------------------------------------------------------------------------------------------- model


class JavisDiTPP(Generator):
    """JavisDiT++ as a :class:`Generator` (registry name ``javisdit++``)."""

    family: ClassVar[str] = "javisdit++"
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        # spec §1.8: C 96, depth 4, 4 heads (head 24: t/h/w bands 8/8/8), FFNs 4C
        "tiny": {},
        # about 2 M parameters (with the text encoder), for fusion comparisons at matched size
        "tiny-matched": {"num_layers": 7},
        # Wan2.1-T2V-1.3B + audio branch (configs/javisdit-v1-0/train/stage2_audio_video.py)
        "paper": {"dim": 1536, "ffn_dim": 8960, "num_heads": 12, "num_layers": 30, "freq_dim": 256,
                  "patch_size": (1, 2, 2), "in_dim": 16, "out_dim": 16, "audio_patch_size": (2, 2),
                  "audio_in_dim": 8, "audio_out_dim": 8, "text_encoder": "external", "text_dim": 4096,
                  "text_len": 512, "video_step_ms": 250.0, "audio_step_ms": 80.0, "sft_lora_rank": 64},
    }
    stages: ClassVar[list[str]] = ["joint_from_scratch", "audio_pretrain", "sft", "dpo"]
    capabilities: ClassVar[Capabilities] = Capabilities(text=True, disentangled_text=False, audio_domain="mel")

    def __init__(self, preset: str = "", **options: Any) -> None:
        super().__init__(preset)
        cfg = self.cfg = JavisDiTPPConfig(**options)
        d = cfg.dim
        # modality-specific in/out
        self.patch_embedding = nn.Conv3d(cfg.in_dim, d, kernel_size=cfg.patch_size, stride=cfg.patch_size)
        self.head = Head(d, math.prod(cfg.patch_size) * cfg.out_dim, cfg.eps)
        self.audio_patch_embedding = nn.Conv2d(cfg.audio_in_dim, d, kernel_size=cfg.audio_patch_size,
                                               stride=cfg.audio_patch_size)
        self.audio_head = Head(d, math.prod(cfg.audio_patch_size) * cfg.audio_out_dim, cfg.eps)
        # shared
        self.text_embedding = nn.Sequential(nn.Linear(cfg.text_dim, d), nn.GELU(approximate="tanh"), nn.Linear(d, d))
        self.time_embedding = nn.Sequential(nn.Linear(cfg.freq_dim, d), nn.SiLU(), nn.Linear(d, d))
        self.time_projection = nn.Sequential(nn.SiLU(), nn.Linear(d, d * 6))
        if cfg.dual_ffn:
            self.audio_time_projection = nn.Sequential(nn.SiLU(), nn.Linear(d, d * 3))
        self.blocks = nn.ModuleList([
            AudioVideoAttentionBlock(d, cfg.ffn_dim, cfg.num_heads, cfg.qk_norm, cfg.cross_attn_norm, cfg.eps,
                                     cfg.dual_ffn) for _ in range(cfg.num_layers)])
        self.text_encoder = (TinyTextEncoder(cfg.text_dim, cfg.text_depth, cfg.text_heads, max_len=cfg.text_len)
                             if cfg.text_encoder == "tiny" else None)
        self.video_patch = VideoPatchifier(cfg.patch_size, cfg.out_dim)
        self.mel_patch = MelPatchifier(cfg.audio_patch_size, cfg.audio_out_dim)
        self._mel: Optional[MelSpec] = None
        object.__setattr__(self, "_ref", None)   # the frozen DPO reference (set_stage("dpo"))
        if not any(p.is_meta for p in self.parameters()):
            self._init_weights()

    # -- initialisation (the original's init_weights) ----------------------------------------
    def _init_weights(self) -> None:
        for name, m in self.named_modules():
            if isinstance(m, nn.Linear) and not name.startswith("text_encoder"):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        for conv in (self.patch_embedding, self.audio_patch_embedding):
            nn.init.xavier_uniform_(conv.weight.flatten(1))
        nn.init.zeros_(self.head.head.weight)
        nn.init.zeros_(self.audio_head.head.weight)
        for seq in (self.text_embedding, self.time_embedding):
            for m in seq.modules():
                if isinstance(m, nn.Linear):
                    nn.init.normal_(m.weight, std=0.02)

    # -- flow schedule ------------------------------------------------------------------------
    def flow(self, num_frames: int, height: int, width: int) -> RectifiedFlow:
        """The RF schedule for a clip size (the code's train/sample shift rule, or none)."""
        if self.cfg.timestep_shift == "none":
            return RectifiedFlow(self.cfg.timestep_sampler)
        s = javisdit_resolution_shift(height, width, num_frames)
        return RectifiedFlow(self.cfg.timestep_sampler, train_shift=s * self.cfg.transform_scale, sample_shift=s)

    # -- conditioning -------------------------------------------------------------------------
    def encode_text(self, captions: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Tiny text encoder → ``(B, L, text_dim)`` features and ``(B, L)`` mask."""
        if self.text_encoder is None:
            raise RuntimeError(f"{self.name} has no built-in text encoder (text_encoder='external'); "
                               "pass text features to forward()")
        enc = self.text_encoder(captions)
        return enc.tokens, enc.mask

    def context(self, y: torch.Tensor, mask: torch.Tensor, drop: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The original's text path: padded positions (and dropped captions) zeroed, then
        ``text_embedding``; cross-attention sees every position (``context_lens=None``)."""
        keep = mask.clone()
        if drop is not None:
            keep &= ~drop[:, None]
        return self.text_embedding(y * keep[..., None].to(y.dtype))

    def _angles(self, grid_v: Optional[tuple[int, int, int]], grid_a: Optional[tuple[int, int]],
                device: torch.device, n_frames_latent: int) -> torch.Tensor:
        cfg = self.cfg
        Tv, H, W = grid_v if grid_v is not None else (n_frames_latent, 0, 0)
        ids = []
        if grid_v is not None:
            ids.append(video_position_ids(Tv, H, W, device).double())
        if grid_a is not None:
            ids.append(audio_position_ids(grid_a[0], grid_a[1], Tv, H, W, cfg.audio_pe_type, cfg.ta_time_map,
                                          cfg.audio_step_ms / 1000, cfg.video_step_ms / 1000, device))
        return rope_angles(torch.cat(ids), band_dims_3d(cfg.dim // cfg.num_heads), cfg.rope_base)

    # -- the network ----------------------------------------------------------------------------
    def forward(self, video: Optional[torch.Tensor], mel: Optional[torch.Tensor], t: torch.Tensor,
                context: torch.Tensor, num_frames: int = 32) -> dict[str, torch.Tensor]:
        """Velocity of the noisy inputs.

        Args:
            video: ``(B, T, C, H, W)`` or None (audio-only pretraining); mel: ``(B, Tm, F)`` (or
            ``(B, C, Tm, F)``) or None; t: ``(B,)`` flow time in [0, 1]; context: ``(B, L, dim)``
            from :meth:`context`; num_frames: video frames when ``video`` is None (sets τ's range).
        Returns:
            ``{"video": like video, "audio": like mel}`` (only the modalities given).
        """
        cfg = self.cfg
        B = t.shape[0]
        toks, grid_v, grid_a = [], None, None
        if video is not None:
            vx = self.patch_embedding(video.transpose(1, 2))              # (B, C, Tv, Hv, Wv)
            grid_v = tuple(vx.shape[2:])
            toks.append(vx.flatten(2).transpose(1, 2))                     # (B, Nv, C)
        if mel is not None:
            ax = self.audio_patch_embedding(mel.unsqueeze(1) if mel.ndim == 3 else mel)   # (B, C, Ta, Fa)
            grid_a = tuple(ax.shape[2:])
            toks.append(ax.flatten(2).transpose(1, 2))                     # (B, Na, C)
        if not toks:
            raise ValueError("forward needs video, mel or both")
        x = torch.cat(toks, dim=1)
        n_video = 0 if grid_v is None else math.prod(grid_v)
        angles = self._angles(grid_v, grid_a, x.device, max(num_frames // cfg.patch_size[0], 1))
        e = self.time_embedding(sinusoidal_embedding(t * 1000.0, cfg.freq_dim).to(x.dtype))   # (B, C)
        e0 = self.time_projection(e).unflatten(1, (6, cfg.dim))
        audio_e0 = self.audio_time_projection(e).unflatten(1, (3, cfg.dim)) if cfg.dual_ffn else None
        for block in self.blocks:
            x = block(x, e0, audio_e0, angles, context, n_video)
        out: dict[str, torch.Tensor] = {}
        if grid_v is not None:
            out["video"] = self.video_patch.unpatchify(self.head(x[:, :n_video], e), grid_v)   # (B,T,C,H,W)
        if grid_a is not None:
            out["audio"] = self.mel_patch.unpatchify(self.audio_head(x[:, n_video:], e), grid_a)   # (B,Tm,F)
        return out

    # -- stages ---------------------------------------------------------------------------------
    def audio_specific_modules(self) -> list[nn.Module]:
        """What the original's ``train_audio_specific_blocks`` trains (S1 audio pretraining)."""
        mods: list[nn.Module] = [self.audio_patch_embedding, self.audio_head]
        if self.cfg.dual_ffn:
            mods.append(self.audio_time_projection)
            for b in self.blocks:
                mods += [b.audio_norm2, b.audio_ffn, b.audio_modulation]
        return mods

    def add_lora(self, rank: int, alpha: float) -> None:
        """Wrap the released LoRA targets (idempotent); everything else frozen."""
        for p in self.parameters():
            p.requires_grad_(False)
        for block in self.blocks:
            for target in LORA_TARGETS:
                parent_name, _, child = target.rpartition(".")
                parent = block.get_submodule(parent_name)
                if not hasattr(parent, child):
                    continue
                lin = getattr(parent, child)
                if isinstance(lin, nn.Linear):
                    setattr(parent, child, LoRALinear(lin, rank, alpha).to(lin.weight.device))
                elif isinstance(lin, LoRALinear):
                    for p in (*lin.lora_A.parameters(), *lin.lora_B.parameters()):
                        p.requires_grad_(True)

    def set_stage(self, name: str) -> None:
        """``joint_from_scratch``: everything trains; ``audio_pretrain``: audio-specific modules only,
        audio tokens only; ``sft`` / ``dpo``: LoRA (``sft_lora_rank``) or full fine-tuning. In ``dpo`` the
        first preference step freezes a copy of the current weights as the reference (the SFT model
        loaded with ``--init``); the copy is not saved, so a resumed DPO run re-anchors it at the
        resumed weights."""
        super().set_stage(name)
        for p in self.parameters():
            p.requires_grad_(name in ("joint_from_scratch",))
        if name == "audio_pretrain":
            for m in self.audio_specific_modules():
                for p in m.parameters():
                    p.requires_grad_(True)
        elif name in ("sft", "dpo"):
            if self.cfg.sft_lora_rank > 0:
                self.add_lora(self.cfg.sft_lora_rank, self.cfg.sft_lora_alpha)
            else:
                for n, p in self.named_parameters():
                    p.requires_grad_(not n.startswith("text_encoder"))
        # stage dpo: the frozen reference is taken at the first preference step (after any --init load)
        object.__setattr__(self, "_ref", None)
        if self.text_encoder is not None:
            for p in self.text_encoder.parameters():
                p.requires_grad_(name == "joint_from_scratch")

    def load_state_dict(self, state: Any, strict: bool = True, assign: bool = False) -> Any:  # type: ignore[override]
        """A checkpoint saved with LoRA adapters (peft layout) loads into a model without them."""
        if any(".lora_A." in k for k in state) and not any(isinstance(m, LoRALinear) for m in self.modules()):
            trainable = {n for n, p in self.named_parameters() if p.requires_grad}
            self.add_lora(self.cfg.sft_lora_rank or 64, self.cfg.sft_lora_alpha)
            for n, p in self.named_parameters():
                p.requires_grad_(n in trainable or "lora_" in n)
        return super().load_state_dict(state, strict, assign)

    # -- training -------------------------------------------------------------------------------
    def _prepare(self, batch: Batch) -> dict[str, torch.Tensor]:
        dev = self.device
        out = {"mel": batch["mel"].to(dev).float()}
        if self.stage != "audio_pretrain":
            out["video"] = batch["video"].to(dev).float()
        y, mask = self.encode_text(list(batch["caption"]))
        out["y"], out["mask"] = y, mask
        return out

    def _flow_losses(self, x0: dict[str, torch.Tensor], context: torch.Tensor, t: torch.Tensor,
                     noise: dict[str, torch.Tensor], model: Optional["JavisDiTPP"] = None,
                     num_frames: int = 32) -> dict[str, torch.Tensor]:
        """Per-sample flow-matching MSE per modality, ``{"video": (B,), "audio": (B,)}``."""
        model = model or self
        xt = {k: RectifiedFlow.add_noise(x0[k], noise[k], t) for k in x0}
        pred = model(xt.get("video"), xt.get("audio"), t, context, num_frames)
        return {k: ((pred[k] - (noise[k] - x0[k])) ** 2).flatten(1).mean(1) for k in x0}

    def training_step(self, batch: Batch, step: int) -> dict[str, torch.Tensor]:
        """Flow-matching losses (stages joint_from_scratch / audio_pretrain / sft); in stage ``dpo``
        the batch must also carry the losers as ``video_lose`` / ``mel_lose``."""
        if self.stage == "dpo":
            if ("video_lose" not in batch or "mel_lose" not in batch) and self.cfg.dpo_rejected:
                batch = {**batch, **self._losers(batch)}
            if "video_lose" not in batch or "mel_lose" not in batch:
                raise ValueError("stage 'dpo' needs preference pairs: batch keys video_lose and mel_lose, or a pair "
                                 "bench (--data PAIRS --option dpo_rejected=PAIRS/rejected.csv; see reference_models.dpo)")
            lose = {"video": batch["video_lose"], "mel": batch["mel_lose"], "caption": batch["caption"]}
            return self.preference_step(batch, lose, None)  # type: ignore[arg-type]
        d = self._prepare(batch)
        B = d["mel"].shape[0]
        drop = torch.rand(B) < self.cfg.class_drop_prob if self.training else None
        context = self.context(d["y"], d["mask"], None if drop is None else drop.to(self.device))
        x0 = {"audio": d["mel"]}
        if "video" in d:
            x0["video"] = d["video"]
        T, H, W = (batch["video"].shape[1], batch["video"].shape[3], batch["video"].shape[4]) \
            if "video" in batch else (32, 32, 32)
        t = self.flow(T, H, W).sample_t(B, device=self.device)
        noise = {k: torch.randn_like(v) for k, v in x0.items()}
        losses = self._flow_losses(x0, context, t, noise, num_frames=T)
        out = {f"loss_{k}": v.mean() for k, v in losses.items()}
        out.setdefault("loss_video", torch.zeros((), device=self.device))
        out["loss"] = sum(v.mean() for v in losses.values())  # type: ignore[assignment]
        return out

    def _losers(self, batch: Batch) -> dict[str, torch.Tensor]:
        """The rejected clips of a pair bench, matched to the chosen ones by manifest row (``seed``)."""
        from .data import BenchData

        if getattr(self, "_lose_data", None) is None:
            object.__setattr__(self, "_lose_data", BenchData(self.cfg.dpo_rejected, **self.clip_size()))
        data = self._lose_data
        rows = [int(s) for s in batch["seed"].tolist()]
        if max(rows) >= len(data):
            raise ValueError(f"{self.cfg.dpo_rejected} has {len(data)} rows; the chosen bench asks for row {max(rows)} "
                             "(chosen and rejected manifests must be row-aligned)")
        lose = data.batch(rows, self.device)
        if list(lose["caption"]) != list(batch["caption"]):
            raise ValueError(f"{self.cfg.dpo_rejected}: captions differ from the chosen rows (not a pair bench)")
        return {"video_lose": lose["video"], "mel_lose": lose["mel"]}

    def preference_step(self, batch_win: Batch, batch_lose: Batch, ref: Optional["JavisDiTPP"]) -> dict[str, torch.Tensor]:
        """AV-DPO loss on (winner, loser) pairs for the same prompts.

        Winner and loser share the text, the time t and the noise. Per modality k:
        ``Δπ_k = ‖v_θ(x_t^w) − u^w‖² − ‖v_θ(x_t^l) − u^l‖²`` (per-sample means), ``Δref_k`` the same
        under ``ref`` (None in stage ``dpo``: a frozen copy taken at the first preference step).
        ``dpo_loss="code"``: ``Σ_k [−log σ(−½β_k(Δπ_k − Δref_k)) + dpo_sft_weight·‖v_θ(x_t^w) − u^w‖²]``;
        ``"paper"``: ``−log σ(−½ Σ_k β_k(Δπ_k − Δref_k))`` (+ the same SFT term when its weight > 0).
        Returns ``loss`` (batch mean), per-modality DPO losses and implicit accuracies.
        """
        if ref is None and self._ref is None and self.stage == "dpo":
            snap = copy.deepcopy(self)
            snap.requires_grad_(False)
            snap.eval()
            object.__setattr__(self, "_ref", snap)   # not a submodule: no parameters, no state-dict keys
        ref = ref or self._ref
        if ref is None:
            raise RuntimeError("preference_step needs a reference model: pass ref or call set_stage('dpo') first")
        if list(batch_win["caption"]) != list(batch_lose["caption"]):
            raise ValueError("preference pairs must share their prompts (batch_win/batch_lose captions differ)")
        dev = self.device
        y, mask = self.encode_text(list(batch_win["caption"]))
        context = self.context(y, mask)
        ref_context = ref.context(*ref.encode_text(list(batch_win["caption"]))) if ref is not self else context
        x_w = {"video": batch_win["video"].to(dev).float(), "audio": batch_win["mel"].to(dev).float()}
        x_l = {"video": batch_lose["video"].to(dev).float(), "audio": batch_lose["mel"].to(dev).float()}
        B = x_w["audio"].shape[0]
        T, H, W = x_w["video"].shape[1], x_w["video"].shape[3], x_w["video"].shape[4]
        t = self.flow(T, H, W).sample_t(B, device=dev)
        noise = {k: torch.randn_like(v) for k, v in x_w.items()}
        two = lambda a, b: torch.cat([a, b], 0)  # noqa: E731  (winner rows first, as the original)
        x0 = {k: two(x_w[k], x_l[k]) for k in x_w}
        nz = {k: two(noise[k], noise[k]) for k in noise}
        tt = two(t, t)
        pol = self._flow_losses(x0, two(context, context), tt, nz, num_frames=T)
        with torch.no_grad():
            rl = self._flow_losses(x0, two(ref_context, ref_context), tt, nz, model=ref, num_frames=T)
        beta = {"video": self.cfg.beta_video, "audio": self.cfg.beta_audio}
        out: dict[str, torch.Tensor] = {}
        margins = {}
        for k in ("video", "audio"):
            lw, ll = pol[k][:B], pol[k][B:]
            rw, rlo = rl[k][:B], rl[k][B:]
            margins[k] = (lw - ll) - (rw - rlo)                       # Δπ − Δref, (B,)
            out[f"policy_loss_{k}"] = lw.detach().mean()
            out[f"implicit_acc_{k}"] = (margins[k] < 0).float().mean()
        sft = self.cfg.dpo_sft_weight * (pol["video"][:B] + pol["audio"][:B])
        if self.cfg.dpo_loss == "code":
            per = {k: -F.logsigmoid(-0.5 * beta[k] * margins[k]) for k in margins}
            total = per["video"] + per["audio"] + sft
            for k in per:
                out[f"dpo_loss_{k}"] = per[k].detach().mean()
        else:
            joint = -F.logsigmoid(-0.5 * (beta["video"] * margins["video"] + beta["audio"] * margins["audio"]))
            total = joint + sft
            out["dpo_loss_joint"] = joint.detach().mean()
        out["loss_video"] = pol["video"][:B].detach().mean()
        out["loss_audio"] = pol["audio"][:B].detach().mean()
        out["loss"] = total.mean()
        return out

    # -- generation -------------------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, req: GenerationRequest) -> GenerationOutput:
        """Seeded RF-Euler sampling with CFG (one unconditional pass: zeroed text, or the negative
        prompts when given), then mel → waveform (pseudo-inverse mel + Griffin-Lim)."""
        was_training = self.training
        self.eval()
        t0 = time.perf_counter()
        dev = self.device
        B, T, H, W = len(req), req.num_frames, req.height, req.width
        mel_spec = self._mel or MelSpec()
        self._mel = mel_spec
        Tm = mel_spec.num_frames(req.num_samples)
        seeds = req.sample_seeds()
        x = {"video": seeded_noise((T, self.cfg.out_dim, H, W), seeds, dev, stream="video"),
             "audio": seeded_noise((Tm, mel_spec.n_mels), seeds, dev, stream="audio")}
        y, mask = self.encode_text(list(req.prompts))
        cond = self.context(y, mask)
        if req.negative_prompts is not None:
            null = self.context(*self.encode_text(list(req.negative_prompts)))
        else:
            null = self.context(y, mask, torch.ones(B, dtype=torch.bool, device=dev))
        scales = {m: req.guidance_for(m, self.cfg.cfg_scale) for m in ("video", "audio")}
        guided = GuidedVelocity(lambda xx, tt, c: self(xx["video"], xx["audio"], tt, c, T), cond, null, scales)
        steps = req.num_steps or self.cfg.num_sampling_steps
        x = euler_sample(guided, x, self.flow(T, H, W).timesteps(steps, device=dev))
        t_model = time.perf_counter() - t0
        video = ((x["video"].float().clamp(-1, 1) + 1) / 2).cpu()
        mel = x["audio"].float().clamp(-4, 4)
        audio = mel_spec.to_wave(mel.cpu(), req.num_samples, seed=int(req.seed or 0)).cpu()
        self.train(was_training)
        return GenerationOutput(video=video, audio=audio, fps=req.fps, sample_rate=req.sample_rate, mel=mel.cpu(),
                                extras={"nfe": guided.nfe, "num_steps": steps, "guidance": scales,
                                        "seconds_model": t_model, "seconds_total": time.perf_counter() - t0})
