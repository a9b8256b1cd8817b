"""JavisDiT (v0.1): dual-branch ST-DiT + HiST-Sypo spatio-temporal prior + bidirectional cross-attention.

Spec: reference-models §1.1; original code: JavisVerse/JavisDiT ``javisdit/models/stdit/vastdit3.py``
(``VASTDiT3``, ``CrossSTDiT3Block``, ``CrossModalityBiAttentionBlock``), ``stdit3.py`` (``STDiT3Block``),
``layers/blocks.py`` and ``prior_encoder/base_model.py`` (``STPriorExtractor``). Module and
parameter names follow the original, so the ``paper`` preset has its state-dict layout
(the prior estimator sits under ``prior_encoder.``; the original keeps it as a separate model).

One layer, in the order the released code runs it (``block_order="code"``):

    video spatial STDiT3 block → video temporal STDiT3 block (1-D RoPE on the frame index)
    audio spatial STDiT3 block → audio temporal STDiT3 block (1-D RoPE on the step index)
    video ST-prior block (spatial-prior CA per frame, temporal-prior CA per location, MLP; adaLN, 9 vectors)
    audio ST-prior block (the same prior tokens)
    Bi-CA: one similarity matrix for both directions (``blocks.fusion``'s ``bi_ca``)

``block_order="paper"`` follows Appendix C.1 instead: S-SA → S-prior-CA → Bi-CA → FFN, then
T-SA → T-prior-CA → Bi-CA → FFN, i.e. two Bi-CA per layer; it reuses the same modules, with the
spatial/temporal prior cross-attentions run right after their self-attention and a second Bi-CA
block (``va_cross_blocks_t``) per layer.

HiST-Sypo prior estimator (``STPriorExtractor``): text hidden states → ``in_proj`` → encoder-decoder
Transformer whose decoder reads ``Ns + Nt`` learned queries → ``out_proj`` to (mean, log-variance)
→ a sample ``μ + σ·ε`` (so one caption yields varied priors). Trained contrastively
(:meth:`JavisDiT.prior_step`) against a small VA encoder of (video, audio) pairs, with negatives:
token-level cosine hinge + attention-discriminator BCE + L2 pull to the positive + VA margin +
1e-6·KL. At tiny scale the prior reads the shared tiny text encoder (ImageBind's text tower in
the original).

Tiny scale: no VAE; video in pixels (B, T, 3, H, W) ∈ [−1, 1], patch (2, 8, 8); audio the suite's
normalised log-mel (B, Tm, 64), patch (8, 16). The network predicts the suite's velocity ε − x0.

Sizes: the ``paper`` preset has 1.114 Gi parameters in the audio branch (S1; the paper's "1.11 B" is
in binary units) and 29.2 Mi in the prior estimator (S2: "29.3 M"). The DiT totals 3.46 Gi, not the
paper's 3.14 B: the released prior-CA + Bi-CA + time/prior-embedder set (S3) counts 1.25 Gi where the
paper lists 923.8 M; the modules follow ``vastdit3.py`` as released.

Paper-vs-code options (spec §5), each defaulting to the code:

* ``block_order``: ``"code"`` | ``"paper"`` (above).
* ``bica_mask_mode``: ``"or"`` (the original's OR-combined padding masks, a no-op when the video
  mask is all ones) | ``"key"`` (padded keys masked per direction). Inputs here are never padded.
* ``timestep_shift``: ``"code"`` (JavisDiT's resolution/length rule ``sqrt(HW/512²)·sqrt(⌊F/17⌋·5)``
  in training and sampling) | ``"none"``.
* ``st_prior_utilize``: ``"cross_attn"`` (used) | ``"modulate"`` | ``"addition"`` (the paper's ablations,
  kept in the code as ``Modulator`` / ``Additor``).
* ``fusion``: ``"bi_ca"``; any name of ``blocks.fusion.FUSIONS`` swaps the cross-modal block (ablation).
* ``x_cond_prob_v2a`` / ``x_cond_prob_a2v`` (0.05 each in the released config): fraction of training
  samples whose video (resp. audio) is clean and runs with its own t = 0 modulation; the other
  mask kinds of the config (image, prefix, random) are not reproduced.
"""
from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Optional

import torch
import torch.nn.functional as F
from torch import nn

from .blocks.attention import (Attention, CaptionEmbedder, Mlp, MultiHeadCrossAttention, SizeEmbedder, STDiT3Block,
                               T2IFinalLayer, TimestepEmbedder, approx_gelu, layer_norm, t2i_modulate, t_mask_select)
from .blocks.diffusion import GuidedVelocity, RectifiedFlow, euler_sample, javisdit_resolution_shift
from .blocks.fusion import BiMultiHeadAttention, FusionContext, build_fusion
from .blocks.melwave import MelSpec
from .blocks.patch import MelPatchifier, VideoPatchifier
from .blocks.rope import apply_rope, rope_angles_1d
from .blocks.text import TinyTextEncoder
from .interface import Batch, Capabilities, GenerationOutput, GenerationRequest, Generator, seeded_noise

__all__ = ["JavisDiTConfig", "JavisDiT", "CrossSTDiT3Block", "STPriorExtractor", "make_prior_negatives"]


@dataclass
class JavisDiTConfig:
    """Every setting of the model (``config()`` records it with each checkpoint)."""

    hidden_size: int = 64
    depth: int = 3
    num_heads: int = 4
    mlp_ratio: float = 4.0
    qk_norm: bool = True
    input_sq_size: int = 512
    # inputs
    patch_size: tuple[int, int, int] = (2, 8, 8)
    in_channels: int = 3
    audio_patch_size: tuple[int, int] = (8, 16)
    audio_in_channels: int = 1
    pred_sigma: bool = False                 # True in the original (the σ half is unused by RF)
    # text
    text_encoder: Literal["tiny", "external"] = "tiny"
    caption_channels: int = 64               # text feature width (T5: 4096)
    model_max_length: int = 32               # text tokens (T5: 300)
    text_depth: int = 2
    text_heads: int = 4
    class_dropout_prob: float = 0.1
    # spatio-temporal prior (DiT side)
    spatial_prior_len: int = 8
    temporal_prior_len: int = 8
    st_prior_channel: int = 32
    st_prior_utilize: Literal["cross_attn", "modulate", "addition"] = "cross_attn"
    # prior estimator
    prior_hidden_size: int = 64
    prior_nhead: int = 4
    prior_num_encoder_layers: int = 2
    prior_num_decoder_layers: int = 2
    prior_feedforward_scale: int = 4
    prior_text_emb_dim: int = 64             # ImageBind text hidden width (1024) in the original
    prior_apply_sampling: bool = True
    prior_va_num_heads: int = 4
    prior_num_negatives: int = 1             # per negative family in the automatic negatives
    # cross-modal block and quirks
    fusion: str = "bi_ca"
    bica_mask_mode: Literal["or", "key"] = "or"
    block_order: Literal["code", "paper"] = "code"
    # flow and sampling
    timestep_sampler: Literal["logit_normal", "uniform"] = "logit_normal"
    timestep_shift: Literal["code", "none"] = "code"
    x_cond_prob_v2a: float = 0.05
    x_cond_prob_a2v: float = 0.05
    num_sampling_steps: int = 30
    cfg_scale: float = 7.0
    fps: float = 8.0

    def __post_init__(self) -> None:
        self.patch_size = tuple(self.patch_size)  # type: ignore[assignment]
        self.audio_patch_size = tuple(self.audio_patch_size)  # type: ignore[assignment]
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not divisible by {self.num_heads} heads")
        for name, allowed in (("block_order", ("code", "paper")), ("bica_mask_mode", ("or", "key")),
                              ("timestep_shift", ("code", "none")),
                              ("st_prior_utilize", ("cross_attn", "modulate", "addition"))):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")


# --------------------------------------------------------------------------- positions (OpenSora)


class PositionEmbedding2D(nn.Module):
    """OpenSora's 2-D sin-cos embedding of (h, w), resolution-scaled: ``(1, H·W, dim)``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        half = dim // 2
        self.register_buffer("inv_freq", 1.0 / (10000 ** (torch.arange(0, half, 2).float() / half)), persistent=False)

    def _emb(self, t: torch.Tensor) -> torch.Tensor:
        out = torch.einsum("i,d->id", t, self.inv_freq.to(t.device))
        return torch.cat((torch.sin(out), torch.cos(out)), dim=-1)

    def forward(self, h: int, w: int, scale: float, base_size: int, device: torch.device) -> torch.Tensor:
        gh = torch.arange(h, device=device) / scale * (base_size / h)
        gw = torch.arange(w, device=device) / scale * (base_size / w)
        grid_h, grid_w = torch.meshgrid(gw, gh, indexing="ij")      # w first, as the original
        grid_h, grid_w = grid_h.t().reshape(-1), grid_w.t().reshape(-1)
        return torch.cat([self._emb(grid_h), self._emb(grid_w)], dim=-1)[None]


class PositionEmbedding(nn.Module):
    """OpenSora-style 1-D sin-cos embedding of ``0..L−1`` (the audio frequency index): ``(1, L, dim)``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        half = dim // 2
        self.register_buffer("inv_freq", 1.0 / (10000 ** (torch.arange(0, half).float() / half)), persistent=False)

    def forward(self, length: int, device: torch.device) -> torch.Tensor:
        out = torch.einsum("i,d->id", torch.arange(length, device=device).float(), self.inv_freq.to(device))
        return torch.cat((torch.sin(out), torch.cos(out)), dim=-1)[None]


class RotaryEmbedding(nn.Module):
    """1-D RoPE over a sequence axis with ``freqs`` kept as a frozen parameter (the layout of
    ``rotary_embedding_torch.RotaryEmbedding`` in the original state dict)."""

    def __init__(self, dim: int, theta: float = 10000.0) -> None:
        super().__init__()
        self.dim, self.theta = dim, theta
        self.freqs = nn.Parameter(1.0 / (theta ** (torch.arange(0, dim, 2)[: dim // 2].float() / dim)),
                                  requires_grad=False)

    def rotate_queries_or_keys(self, x: torch.Tensor) -> torch.Tensor:
        """x ``(..., N, head_dim)``: rotate position n by ``n·θ_i`` (adjacent channel pairs)."""
        return apply_rope(x, rope_angles_1d(x.shape[-2], self.dim, self.theta, x.device), seq_dim=-2)


class PatchEmbed3D(nn.Module):
    """Video → tokens with a strided ``proj`` Conv3d: ``(B, C, T, H, W) → (B, T'·H'·W', D)``."""

    def __init__(self, patch_size: tuple[int, int, int], in_chans: int, embed_dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv3d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class PatchEmbed2D(nn.Module):
    """Audio → tokens with a strided ``proj`` Conv2d: ``(B, C, Tm, F) → (B, R·M, D)``."""

    def __init__(self, patch_size: tuple[int, int], in_chans: int, embed_dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


# ------------------------------------------------------------------------------ prior utilisation


def _interp_to(kv: torch.Tensor, n: int) -> torch.Tensor:
    """Nearest-neighbour interpolation of ``(B, L, C)`` along L to ``n`` (the original's ada_interpolate1d)."""
    return F.interpolate(kv.transpose(1, 2), size=n, mode="nearest").transpose(1, 2)


class Modulator(nn.Module):
    """Prior as FiLM: ``q·scale + shift`` from the prior interpolated to the query length (ablation)."""

    def __init__(self, hidden_size: int, num_heads: int = 1) -> None:
        super().__init__()
        self.proj = nn.Linear(hidden_size, hidden_size * 2)

    def forward(self, q: torch.Tensor, kv: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        shift, scale = self.proj(_interp_to(kv, q.shape[1])).chunk(2, dim=-1)
        return q * scale + shift


class Additor(nn.Module):
    """Prior added after interpolation to the query length (ablation)."""

    def __init__(self, hidden_size: int, num_heads: int = 1) -> None:
        super().__init__()
        self.proj = nn.Linear(hidden_size, hidden_size)

    def forward(self, q: torch.Tensor, kv: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        return self.proj(_interp_to(kv, q.shape[1]))


_PRIOR_CA = {"cross_attn": MultiHeadCrossAttention, "modulate": Modulator, "addition": Additor}


class CrossSTDiT3Block(nn.Module):
    """ST-prior block: adaLN spatial-prior CA (per step), temporal-prior CA (per location), MLP.

    Modulation: 9 vectors from ``st_t_block`` plus this block's ``scale_shift_table`` (9, C).
    """

    def __init__(self, hidden_size: int, num_heads: int, mlp_ratio: float = 4.0,
                 mode: Literal["cross_attn", "modulate", "addition"] = "cross_attn") -> None:
        super().__init__()
        ca = _PRIOR_CA[mode]
        self.norm1s = layer_norm(hidden_size)
        self.spatial_cross_attn = ca(hidden_size, num_heads)
        self.norm1t = layer_norm(hidden_size)
        self.temporal_cross_attn = ca(hidden_size, num_heads)
        self.norm2 = layer_norm(hidden_size)
        self.mlp = Mlp(hidden_size, int(hidden_size * mlp_ratio))
        self.scale_shift_table = nn.Parameter(torch.randn(9, hidden_size) / hidden_size ** 0.5)

    def _mods(self, t: torch.Tensor) -> tuple[torch.Tensor, ...]:
        B = t.shape[0]
        return (self.scale_shift_table[None] + t.view(B, 9, -1)).chunk(9, dim=1)

    def spatial(self, x: torch.Tensor, prior: torch.Tensor, m: tuple, m0: Optional[tuple],
                x_mask: Optional[torch.Tensor], T: int, S: int) -> torch.Tensor:
        """Spatial-prior sub-layer (modulation rows 0–2)."""
        return self._sub(x, prior, m, m0, x_mask, T, S, 0, self.norm1s, self.spatial_cross_attn, temporal=False)

    def temporal(self, x: torch.Tensor, prior: torch.Tensor, m: tuple, m0: Optional[tuple],
                 x_mask: Optional[torch.Tensor], T: int, S: int) -> torch.Tensor:
        """Temporal-prior sub-layer (modulation rows 3–5)."""
        return self._sub(x, prior, m, m0, x_mask, T, S, 3, self.norm1t, self.temporal_cross_attn, temporal=True)

    @staticmethod
    def _sub(x: torch.Tensor, prior: torch.Tensor, m: tuple, m0: Optional[tuple], x_mask: Optional[torch.Tensor],
             T: int, S: int, r: int, norm: nn.Module, ca: nn.Module, temporal: bool) -> torch.Tensor:
        B, N, C = x.shape
        h = norm(x)
        x_m = t2i_modulate(h, m[r], m[r + 1])
        if x_mask is not None and m0 is not None:
            x_m = t_mask_select(x_mask, x_m, t2i_modulate(h, m0[r], m0[r + 1]), T, S)
        if temporal:   # queries: the T steps of each location; keys: the Nt temporal prior tokens
            q = x_m.view(B, T, S, C).transpose(1, 2).reshape(B * S, T, C)
            out = ca(q, prior.repeat_interleave(S, 0)).view(B, S, T, C).transpose(1, 2).reshape(B, N, C)
        else:          # queries: the S tokens of each step; keys: the Ns spatial prior tokens
            out = ca(x_m.reshape(B * T, S, C), prior.repeat_interleave(T, 0)).view(B, N, C)
        g = m[r + 2] * out
        if x_mask is not None and m0 is not None:
            g = t_mask_select(x_mask, g, m0[r + 2] * out, T, S)
        return x + g

    def ffn(self, x: torch.Tensor, m: tuple, m0: Optional[tuple], x_mask: Optional[torch.Tensor],
            T: int, S: int) -> torch.Tensor:
        h = self.norm2(x)
        x_m = t2i_modulate(h, m[6], m[7])
        if x_mask is not None and m0 is not None:
            x_m = t_mask_select(x_mask, x_m, t2i_modulate(h, m0[6], m0[7]), T, S)
        out = self.mlp(x_m)
        g = m[8] * out
        if x_mask is not None and m0 is not None:
            g = t_mask_select(x_mask, g, m0[8] * out, T, S)
        return x + g

    def forward(self, x: torch.Tensor, spatial_prior: torch.Tensor, temporal_prior: torch.Tensor, t: torch.Tensor,
                x_mask: Optional[torch.Tensor] = None, t0: Optional[torch.Tensor] = None,
                T: int = 1, S: int = 1) -> torch.Tensor:
        """x ``(B, T·S, C)``; priors ``(B, Ns, C)``, ``(B, Nt, C)``; t / t0 ``(B, 9·C)``."""
        m = self._mods(t)
        m0 = self._mods(t0) if x_mask is not None and t0 is not None else None
        x = self.spatial(x, spatial_prior, m, m0, x_mask, T, S)
        x = self.temporal(x, temporal_prior, m, m0, x_mask, T, S)
        return self.ffn(x, m, m0, x_mask, T, S)


# --------------------------------------------------------------------------- HiST-Sypo estimator


class CrossModalityMergingBlock(nn.Module):
    """VA encoder block: Bi-MHA between aligned video/audio grids, merge by mean, MLP (residual)."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, temporal: bool = False) -> None:
        super().__init__()
        self.temporal = temporal
        self.attn_norm_m1, self.attn_norm_m2 = layer_norm(dim), layer_norm(dim)
        self.cross_attn = BiMultiHeadAttention(dim, dim, dim, num_heads)
        self.mlp_norm = layer_norm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        """x1, x2 ``(B, T, S, C)`` sharing T (temporal) or S (spatial) → ``(B, N, C)``, N = that axis."""
        if not self.temporal:
            x1, x2 = x1.transpose(1, 2), x2.transpose(1, 2)
        B, N, _, C = x1.shape
        x1, x2 = x1.flatten(0, 1), x2.flatten(0, 1)
        d1, d2 = self.cross_attn(self.attn_norm_m1(x1), self.attn_norm_m2(x2))
        x = (x1 + d1).mean(dim=1) + (x2 + d2).mean(dim=1)
        x = x.view(B, N, C)
        return x + self.mlp(self.mlp_norm(x))


class AttentionDiscriminator(nn.Module):
    """A [CLS] token self-attends over (prior ‖ VA embedding) tokens → one logit."""

    def __init__(self, hidden_size: int, num_heads: int = 4) -> None:
        super().__init__()
        self.cls_token = nn.Parameter(torch.randn(1, 1, hidden_size))
        self.attn = Attention(hidden_size, num_heads, qkv_bias=True, qk_norm=False)
        self.classifier = nn.Linear(hidden_size, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1)
        return self.classifier(self.attn(x)[:, 0]).squeeze(-1)


def _hinge(logits: torch.Tensor) -> torch.Tensor:
    """Column 0 positive, the rest negative: ``½(mean relu(1 − pos) + mean relu(1 + neg))``."""
    return 0.5 * (F.relu(1.0 - logits[:, :1]).mean() + F.relu(1.0 + logits[:, 1:]).mean())


class STPriorExtractor(nn.Module):
    """The ST-prior estimator with its VA encoder and discriminator (training only).

    ``encode(text_hidden (B, L, text_emb_dim))`` → spatial ``(B, Ns, out_dim)``, temporal
    ``(B, Nt, out_dim)`` priors (sampled from the predicted diagonal Gaussian when
    ``apply_sampling``), plus the (mean, log-variance) pair for the KL term.
    """

    def __init__(self, text_emb_dim: int, spatial_token_num: int, temporal_token_num: int, hidden_size: int,
                 out_dim: int, nhead: int, num_encoder_layers: int, num_decoder_layers: int, feedforward_scale: int,
                 apply_sampling: bool, video_patch_size: tuple[int, int, int], video_in_channel: int,
                 audio_patch_size: tuple[int, int], audio_in_channel: int, va_num_heads: int,
                 video_input_sq_size: int = 512, encode_va: bool = True) -> None:
        super().__init__()
        self.spatial_token_num, self.temporal_token_num = spatial_token_num, temporal_token_num
        self.apply_sampling, self.out_dim, self.video_input_sq_size = apply_sampling, out_dim, video_input_sq_size
        self.spatial_query_emb = nn.Parameter(torch.randn(1, spatial_token_num, hidden_size))
        self.temporal_query_emb = nn.Parameter(torch.randn(1, temporal_token_num, hidden_size))
        self.in_proj = nn.Linear(text_emb_dim, hidden_size)
        with warnings.catch_warnings():   # nn.Transformer asks for nested tensors, which pre-norm layers never use
            warnings.filterwarnings("ignore", message="enable_nested_tensor is True")
            self.prior_extractor = nn.Transformer(d_model=hidden_size, nhead=nhead,
                                                  num_encoder_layers=num_encoder_layers,
                                                  num_decoder_layers=num_decoder_layers,
                                                  dim_feedforward=hidden_size * feedforward_scale, dropout=0.0,
                                                  activation=approx_gelu(), batch_first=True, norm_first=True)
        self.out_proj = nn.Linear(hidden_size, out_dim * 2 if apply_sampling else out_dim)
        self.encode_va = encode_va
        if encode_va:
            self.video_pos_embed = PositionEmbedding2D(out_dim)
            self.video_embedder = PatchEmbed3D(video_patch_size, video_in_channel, out_dim)
            self.audio_pos_embed = PositionEmbedding(out_dim)
            self.audio_embedder = nn.Conv2d(audio_in_channel, out_dim, kernel_size=audio_patch_size,
                                            stride=audio_patch_size)
            self.va_spatial_encoder = CrossModalityMergingBlock(out_dim, va_num_heads, temporal=False)
            self.va_temporal_encoder = CrossModalityMergingBlock(out_dim, va_num_heads, temporal=True)
            self.discriminator = AttentionDiscriminator(out_dim, va_num_heads)

    def encode(self, text_hidden: torch.Tensor, noise: Optional[torch.Tensor] = None
               ) -> tuple[torch.Tensor, torch.Tensor, Optional[tuple[torch.Tensor, torch.Tensor]]]:
        """→ spatial prior, temporal prior, and (mean, logvar) when sampling. ``noise`` ``(B, Ns+Nt, out)``
        fixes the Gaussian draw (seeded generation); None draws from the global RNG."""
        B = text_hidden.shape[0]
        queries = torch.cat((self.spatial_query_emb, self.temporal_query_emb), dim=1).expand(B, -1, -1)
        st = self.out_proj(self.prior_extractor(self.in_proj(text_hidden), queries))
        post = None
        if self.apply_sampling:
            mean, logvar = st.chunk(2, dim=-1)
            logvar = logvar.clamp(-30.0, 20.0)
            eps = torch.randn_like(mean) if noise is None else noise.to(mean)
            st = mean + torch.exp(0.5 * logvar) * eps
            post = (mean, logvar)
        return st[:, : self.spatial_token_num], st[:, self.spatial_token_num:], post

    def _align(self, x: torch.Tensor, mode: str) -> torch.Tensor:
        """Linear interpolation of ``(B, T, S, C)`` along S (spatial) or T (temporal) to the token count."""
        B, T, S, C = x.shape
        if mode == "spatial":
            y = F.interpolate(x.reshape(B * T, S, C).transpose(1, 2), size=self.spatial_token_num, mode="linear",
                              align_corners=False)
            return y.transpose(1, 2).reshape(B, T, self.spatial_token_num, C)
        y = F.interpolate(x.permute(0, 2, 3, 1).reshape(B * S, C, T), size=self.temporal_token_num, mode="linear",
                          align_corners=False)
        return y.reshape(B, S, C, self.temporal_token_num).permute(0, 3, 1, 2)

    def pre_encode_video(self, video: torch.Tensor, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
        """video ``(B, C, T, H, W)`` → spatially and temporally aligned grids ``(B, T', Ns, C)``, ``(B, Nt, S, C)``."""
        vx = self.video_embedder.proj(video)                    # (B, C, T', H', W')
        _, C, Tv, H, W = vx.shape
        vx = vx.flatten(3).permute(0, 2, 3, 1)                  # (B, T', S, C)
        scale = (height * width) ** 0.5 / self.video_input_sq_size
        vx = vx + self.video_pos_embed(H, W, scale, round((H * W) ** 0.5), vx.device)[:, None]
        return self._align(vx, "spatial"), self._align(vx, "temporal")

    def pre_encode_audio(self, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """audio ``(B, C, Tm, F)`` → ``(B, R, Ns, C)``, ``(B, Nt, M, C)``."""
        ax = self.audio_embedder(audio).permute(0, 2, 3, 1)     # (B, R, M, C)
        ax = ax + self.audio_pos_embed(ax.shape[2], ax.device)[:, None]
        return self._align(ax, "spatial"), self._align(ax, "temporal")

    def contrastive_loss(self, embed: torch.Tensor, prior: torch.Tensor, mode: str,
                         log: dict[str, torch.Tensor]) -> torch.Tensor:
        """embed ``(B, X, N, C)`` (column 0 positive), prior ``(B, N, C)``."""
        prior = prior.unsqueeze(1)
        en, pn = F.normalize(embed, dim=-1), F.normalize(prior, dim=-1)
        sim = (en * pn).sum(-1)                                   # (B, X, N)
        parts = {"token_loss": _hinge(sim.transpose(1, 2).flatten(0, 1))}
        B, X = embed.shape[:2]
        logit = self.discriminator(torch.cat((prior.expand(-1, X, -1, -1), embed), dim=-2).flatten(0, 1))
        label = torch.zeros(B, X, device=embed.device)
        label[:, 0] = 1.0
        parts["disc_loss"] = F.binary_cross_entropy_with_logits(logit, label.view(-1))
        parts["mse_loss"] = F.mse_loss(prior, embed[:, :1])
        parts["va_loss"] = ((en[:, :1] * en[:, 1:]).sum(-1) + 1.0).relu().mean()
        total = sum(parts.values())
        for k, v in parts.items():
            log[f"{mode}_{k}"] = v.detach()
        return total  # type: ignore[return-value]

    def prior_loss(self, spatial_prior: torch.Tensor, temporal_prior: torch.Tensor,
                   post: Optional[tuple[torch.Tensor, torch.Tensor]], video: torch.Tensor, audio: torch.Tensor,
                   neg: dict[str, torch.Tensor], height: int, width: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The original's ``calc_prior_loss``: video ``(B, C, T, H, W)``, audio ``(B, C, Tm, F)``, negatives
        ``neg["video_spatial"|"video_temporal"]`` ``(B, K, C, T, H, W)`` and ``neg["audio_*"]`` ``(B, K, C, Tm, F)``."""
        B = video.shape[0]
        empty_v = video.new_zeros((B, 0, *video.shape[1:]))
        empty_a = audio.new_zeros((B, 0, *audio.shape[1:]))
        nv = {k: neg.get(f"video_{k}", empty_v) for k in ("spatial", "temporal")}
        na = {k: neg.get(f"audio_{k}", empty_a) for k in ("spatial", "temporal")}
        kv = {k: v.shape[1] for k, v in nv.items()}
        ka = {k: v.shape[1] for k, v in na.items()}
        v_all = torch.cat([video[:, None], nv["spatial"], nv["temporal"]], 1)
        a_all = torch.cat([audio[:, None], na["spatial"], na["temporal"]], 1)
        vs, vt = self.pre_encode_video(v_all.flatten(0, 1), height, width)
        as_, at = self.pre_encode_audio(a_all.flatten(0, 1))
        nvid, naud = v_all.shape[1], a_all.shape[1]
        vs, vt = vs.view(B, nvid, *vs.shape[1:]), vt.view(B, nvid, *vt.shape[1:])
        as_, at = as_.view(B, naud, *as_.shape[1:]), at.view(B, naud, *at.shape[1:])
        log: dict[str, torch.Tensor] = {}
        total = video.new_zeros(())
        for mode, (gv, ga, prior, enc) in {"spatial": (vs, as_, spatial_prior, self.va_spatial_encoder),
                                           "temporal": (vt, at, temporal_prior, self.va_temporal_encoder)}.items():
            pos_v, neg_sv, neg_tv = gv.split([1, kv["spatial"], kv["temporal"]], 1)
            pos_a, neg_sa, neg_ta = ga.split([1, ka["spatial"], ka["temporal"]], 1)
            neg_v, neg_a = (neg_sv, neg_sa) if mode == "spatial" else (neg_tv, neg_ta)
            # pairs: (pos, pos), (pos video, each audio negative), (each video negative, pos audio)
            v_pairs = torch.cat([pos_v, pos_v.expand(-1, neg_a.shape[1], *pos_v.shape[2:]), neg_v], 1)
            a_pairs = torch.cat([pos_a, neg_a, pos_a.expand(-1, neg_v.shape[1], *pos_a.shape[2:])], 1)
            X = v_pairs.shape[1]
            embed = enc(v_pairs.flatten(0, 1), a_pairs.flatten(0, 1)).view(B, X, *prior.shape[-2:])
            total = total + self.contrastive_loss(embed, prior, mode, log)
        if post is not None:
            mean, logvar = post
            kl = 1e-6 * (0.5 * (mean ** 2 + logvar.exp() - 1.0 - logvar).sum(dim=[1, 2])).mean()
            total = total + kl
            log["kl_loss"] = kl.detach()
        return total, log


def make_prior_negatives(video: torch.Tensor, mel: torch.Tensor, k: int = 1,
                         generator: Optional[torch.Generator] = None) -> dict[str, torch.Tensor]:
    """Synthetic asynchronous negatives for the prior's contrastive training (paper §C.2.4 families).

    * ``video_spatial``: random grid masking (half of a 4×4 grid of cells blanked to −1);
    * ``audio_spatial``: source addition — another clip's mel mixed in (elementwise max of the
      normalised log-mels, i.e. the louder source per bin);
    * ``audio_temporal``: a circular time shift by 1/4–3/4 of the clip, then a silent quarter inserted
      at a random place (shift + inserted silence).

    Args: video ``(B, T, 3, H, W)`` ∈ [−1, 1]; mel ``(B, Tm, F)`` normalised. Returns tensors with a
    negatives axis ``(B, k, ...)`` in the model's channel-first layout (video ``(B, k, 3, T, H, W)``,
    audio ``(B, k, 1, Tm, F)``).
    """
    B, T, C, H, W = video.shape
    Tm = mel.shape[1]
    vs, as_, at = [], [], []
    for _ in range(k):
        cells = (torch.rand(B, 1, 1, 4, 4, generator=generator) < 0.5).to(video)
        mask = F.interpolate(cells.view(B, 1, 4, 4), size=(H, W), mode="nearest").view(B, 1, 1, H, W)
        vs.append(torch.where(mask.bool(), torch.full_like(video, -1.0), video))
        perm = torch.roll(torch.arange(B), 1) if B > 1 else torch.arange(B)
        other = torch.roll(mel[perm], shifts=Tm // 3, dims=1) if B == 1 else mel[perm]
        as_.append(torch.maximum(mel, other))
        shift = int(torch.randint(Tm // 4, 3 * Tm // 4 + 1, (1,), generator=generator))
        m = torch.roll(mel, shifts=shift, dims=1).clone()
        start = int(torch.randint(0, Tm - Tm // 4 + 1, (1,), generator=generator))
        m[:, start:start + Tm // 4] = mel.min()
        at.append(m)
    return {"video_spatial": torch.stack(vs, 1).transpose(2, 3),
            "audio_spatial": torch.stack(as_, 1)[:, :, None], "audio_temporal": torch.stack(at, 1)[:, :, None]}


# ------------------------------------------------------------------------------------------- model


class JavisDiT(Generator):
    """JavisDiT v0.1 as a :class:`Generator` (registry name ``javisdit``)."""

    family: ClassVar[str] = "javisdit"
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        # spec §1.8: C 64, depth 3, 4 heads, Ns = Nt = 8 prior tokens of width 32, prior d 64, 2+2 layers
        "tiny": {},
        # about 2 M parameters with the text encoder (fusion comparisons at matched size): 16 + 16
        # prior tokens (the paper's token ablation improves monotonically with the count)
        "tiny-matched": {"spatial_prior_len": 16, "temporal_prior_len": 16, "prior_hidden_size": 80},
        # VASTDiT3-XL/2 with the ST-prior estimator (configs/javisdit-v0-1/train/stage3_jav.py)
        "paper": {"hidden_size": 1152, "depth": 28, "num_heads": 16, "patch_size": (1, 2, 2), "in_channels": 4,
                  "audio_patch_size": (4, 1), "audio_in_channels": 8, "pred_sigma": True,
                  "text_encoder": "external", "caption_channels": 4096, "model_max_length": 300,
                  "spatial_prior_len": 32, "temporal_prior_len": 32, "st_prior_channel": 128,
                  "prior_hidden_size": 512, "prior_nhead": 4, "prior_num_encoder_layers": 4,
                  "prior_num_decoder_layers": 4, "prior_text_emb_dim": 1024, "prior_va_num_heads": 4,
                  "fps": 24.0},
    }
    stages: ClassVar[list[str]] = ["joint_from_scratch", "audio_pretrain", "prior", "joint"]
    capabilities: ClassVar[Capabilities] = Capabilities(text=True, disentangled_text=False, audio_domain="mel",
                                                        x_conditional=frozenset({"video", "audio"}))

    def __init__(self, preset: str = "", **options: Any) -> None:
        super().__init__(preset)
        cfg = self.cfg = JavisDiTConfig(**options)
        C, h = cfg.hidden_size, cfg.num_heads
        self.out_channels = cfg.in_channels * (2 if cfg.pred_sigma else 1)
        self.audio_out_channels = cfg.audio_in_channels * (2 if cfg.pred_sigma else 1)
        # --- shared embedders (STDiT3)
        self.pos_embed = PositionEmbedding2D(C)
        self.rope = RotaryEmbedding(C // h)
        self.x_embedder = PatchEmbed3D(cfg.patch_size, cfg.in_channels, C)
        self.t_embedder = TimestepEmbedder(C)
        self.fps_embedder = SizeEmbedder(C)
        self.t_block = nn.Sequential(nn.SiLU(), nn.Linear(C, 6 * C))
        self.y_embedder = CaptionEmbedder(cfg.caption_channels, C, cfg.class_dropout_prob, cfg.model_max_length)
        rope_fn = self.rope.rotate_queries_or_keys
        self.spatial_blocks = nn.ModuleList([STDiT3Block(C, h, cfg.mlp_ratio, cfg.qk_norm) for _ in range(cfg.depth)])
        self.temporal_blocks = nn.ModuleList([STDiT3Block(C, h, cfg.mlp_ratio, cfg.qk_norm, temporal=True, rope=rope_fn)
                                              for _ in range(cfg.depth)])
        self.final_layer = T2IFinalLayer(C, math.prod(cfg.patch_size), self.out_channels)
        # --- audio branch, prior and cross-modal blocks (VASTDiT3)
        self.audio_pos_embed = PositionEmbedding(C)
        self.ax_embedder = PatchEmbed2D(cfg.audio_patch_size, cfg.audio_in_channels, C)
        self.audio_y_embedder = CaptionEmbedder(cfg.caption_channels, C, cfg.class_dropout_prob, cfg.model_max_length)
        self.st_t_block = nn.Sequential(nn.SiLU(), nn.Linear(C, 9 * C))
        self.st_prior_embedder = CaptionEmbedder(cfg.st_prior_channel, C, cfg.class_dropout_prob,
                                                 cfg.spatial_prior_len + cfg.temporal_prior_len)
        self.audio_spatial_blocks = nn.ModuleList([STDiT3Block(C, h, cfg.mlp_ratio, cfg.qk_norm)
                                                   for _ in range(cfg.depth)])
        self.audio_temporal_blocks = nn.ModuleList([STDiT3Block(C, h, cfg.mlp_ratio, cfg.qk_norm, temporal=True,
                                                                rope=rope_fn) for _ in range(cfg.depth)])
        self.video_st_prior_blocks = nn.ModuleList([CrossSTDiT3Block(C, h, cfg.mlp_ratio, cfg.st_prior_utilize)
                                                    for _ in range(cfg.depth)])
        self.audio_st_prior_blocks = nn.ModuleList([CrossSTDiT3Block(C, h, cfg.mlp_ratio, cfg.st_prior_utilize)
                                                    for _ in range(cfg.depth)])
        fusion_opts: dict[str, Any] = {"mask_mode": cfg.bica_mask_mode} if cfg.fusion == "bi_ca" else {}
        self.va_cross_blocks = nn.ModuleList([build_fusion(cfg.fusion, C, C, h, **fusion_opts)
                                              for _ in range(cfg.depth)])
        if cfg.block_order == "paper":
            self.va_cross_blocks_t = nn.ModuleList([build_fusion(cfg.fusion, C, C, h, **fusion_opts)
                                                    for _ in range(cfg.depth)])
        self.audio_final_layer = T2IFinalLayer(C, math.prod(cfg.audio_patch_size), self.audio_out_channels)
        # --- the prior estimator and the text encoder
        self.prior_encoder = STPriorExtractor(
            cfg.prior_text_emb_dim, cfg.spatial_prior_len, cfg.temporal_prior_len, cfg.prior_hidden_size,
            cfg.st_prior_channel, cfg.prior_nhead, cfg.prior_num_encoder_layers, cfg.prior_num_decoder_layers,
            cfg.prior_feedforward_scale, cfg.prior_apply_sampling, cfg.patch_size, cfg.in_channels,
            cfg.audio_patch_size, cfg.audio_in_channels, cfg.prior_va_num_heads, cfg.input_sq_size)
        if cfg.text_encoder == "tiny":
            if cfg.prior_text_emb_dim != cfg.caption_channels:
                raise ValueError("with the tiny text encoder, prior_text_emb_dim must equal caption_channels "
                                 f"(got {cfg.prior_text_emb_dim} and {cfg.caption_channels})")
            self.text_encoder: Optional[TinyTextEncoder] = TinyTextEncoder(cfg.caption_channels, cfg.text_depth,
                                                                            cfg.text_heads, max_len=cfg.model_max_length)
        else:
            self.text_encoder = None
        self.video_patch = VideoPatchifier(cfg.patch_size, self.out_channels)
        self.mel_patch = MelPatchifier(cfg.audio_patch_size, self.audio_out_channels)
        self._mel: Optional[MelSpec] = None
        if not any(p.is_meta for p in self.parameters()):
            self._init_weights()

    # -- initialisation (STDiT3.initialize_weights + VASTDiT3.initialize_va_weights) ---------------
    def _init_weights(self) -> None:
        skip = ("text_encoder", "prior_encoder")
        for name, m in self.named_modules():
            if isinstance(m, nn.Linear) and not name.startswith(skip) and not name.startswith("va_cross_blocks"):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        nn.init.normal_(self.fps_embedder.mlp[0].weight, std=0.02)
        nn.init.zeros_(self.fps_embedder.mlp[0].bias)
        nn.init.zeros_(self.fps_embedder.mlp[2].weight)
        nn.init.zeros_(self.fps_embedder.mlp[2].bias)
        for blk in [*self.temporal_blocks, *self.audio_temporal_blocks]:
            nn.init.zeros_(blk.attn.proj.weight)
            nn.init.zeros_(blk.cross_attn.proj.weight)
            nn.init.zeros_(blk.mlp.fc2.weight)
        for blk in [*self.video_st_prior_blocks, *self.audio_st_prior_blocks]:
            nn.init.zeros_(blk.spatial_cross_attn.proj.weight)
            nn.init.zeros_(blk.temporal_cross_attn.proj.weight)
            nn.init.zeros_(blk.mlp.fc2.weight)
        # the original shares the null caption between the two branches
        self.audio_y_embedder.y_embedding.data.copy_(self.y_embedder.y_embedding.data)

    # -- flow schedule ------------------------------------------------------------------------------
    def flow(self, num_frames: int, height: int, width: int) -> RectifiedFlow:
        """RF schedule; the code's shift rule in both phases (or none)."""
        if self.cfg.timestep_shift == "none":
            return RectifiedFlow(self.cfg.timestep_sampler)
        s = javisdit_resolution_shift(height, width, num_frames)
        return RectifiedFlow(self.cfg.timestep_sampler, train_shift=s, sample_shift=s)

    # -- conditioning -------------------------------------------------------------------------------
    def encode_text(self, captions: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Tiny text encoder → features ``(B, L, caption_channels)`` and mask ``(B, L)``."""
        if self.text_encoder is None:
            raise RuntimeError(f"{self.name} has no built-in text encoder (text_encoder='external')")
        enc = self.text_encoder(captions)
        return enc.tokens, enc.mask

    def conditions(self, y: torch.Tensor, mask: torch.Tensor, drop: Optional[torch.Tensor] = None,
                   prior_noise: Optional[torch.Tensor] = None, prior: Optional[tuple[torch.Tensor, torch.Tensor]] = None
                   ) -> dict[str, torch.Tensor]:
        """Text tokens for both branches and the embedded ST priors.

        ``drop`` ``(B,)`` replaces the caption **and** the prior by their learned null sequences
        (CFG's unconditional branch / caption dropout). The prior comes from the estimator (without
        gradient into it, as in stages joint / joint_from_scratch) unless ``prior`` is given.
        """
        if prior is None:
            with torch.no_grad():
                sp, tp, _ = self.prior_encoder.encode(y, prior_noise)
        else:
            sp, tp = prior
        st = torch.cat((sp, tp), dim=1)
        ymask = mask if drop is None else mask | drop[:, None]    # a null caption is all real tokens
        return {"y": self.y_embedder(y, drop), "ay": self.audio_y_embedder(y, drop), "mask": ymask,
                "st_prior": self.st_prior_embedder(st, drop)}

    # -- the network ----------------------------------------------------------------------------------
    def forward(self, video: Optional[torch.Tensor], mel: torch.Tensor, t: torch.Tensor, cond: dict[str, torch.Tensor],
                height: int = 32, width: int = 32, x_mask: Optional[torch.Tensor] = None,
                ax_mask: Optional[torch.Tensor] = None) -> dict[str, torch.Tensor]:
        """Velocity of the noisy inputs.

        Args:
            video: ``(B, T, C, H, W)`` or None (audio pretraining: the video branch is skipped, as the
            original's ``only_train_audio``); mel: ``(B, Tm, F)``; t: ``(B,)`` in [0, 1];
            cond: from :meth:`conditions`; x_mask ``(B, T')`` / ax_mask ``(B, R)``: True = noisy token
            step, False = clean conditioning step (runs with t = 0 modulation).
        """
        cfg = self.cfg
        B = t.shape[0]
        C = cfg.hidden_size
        audio_only = video is None
        te = self.t_embedder(t * 1000.0) + self.fps_embedder(torch.full((B,), cfg.fps, device=t.device))
        t_mlp, t_st = self.t_block(te), self.st_t_block(te)
        t0 = t0_mlp = t0_st = None
        if x_mask is not None or ax_mask is not None:
            t0 = self.t_embedder(torch.zeros_like(t)) + self.fps_embedder(torch.full((B,), cfg.fps, device=t.device))
            t0_mlp, t0_st = self.t_block(t0), self.st_t_block(t0)
        # tokens
        ax = self.ax_embedder(mel.unsqueeze(1) if mel.ndim == 3 else mel)
        R, M = mel.shape[-2] // cfg.audio_patch_size[0], mel.shape[-1] // cfg.audio_patch_size[1]
        ax = (ax.view(B, R, M, C) + self.audio_pos_embed(M, ax.device)[:, None]).view(B, R * M, C)
        if not audio_only:
            vx = self.x_embedder(video.transpose(1, 2))                          # (B, T·S, C)
            T = video.shape[1] // cfg.patch_size[0]
            Hp, Wp = video.shape[3] // cfg.patch_size[1], video.shape[4] // cfg.patch_size[2]
            S = Hp * Wp
            scale = (height * width) ** 0.5 / cfg.input_sq_size
            vx = (vx.view(B, T, S, C) + self.pos_embed(Hp, Wp, scale, round(S ** 0.5), vx.device)[:, None]).view(B, T * S, C)
        sp, tp = cond["st_prior"].split([cfg.spatial_prior_len, cfg.temporal_prior_len], dim=1)
        y, ay, ymask = cond["y"], cond["ay"], cond["mask"]
        for i in range(cfg.depth):
            if audio_only:
                ax = self.audio_spatial_blocks[i](ax, ay, t_mlp, ymask, ax_mask, t0_mlp, R, M)
                ax = self.audio_temporal_blocks[i](ax, ay, t_mlp, ymask, ax_mask, t0_mlp, R, M)
                continue
            ctx = FusionContext(t_v=te, t_a=te, grid_v=(T, S), grid_a=(R, M))
            if cfg.block_order == "code":
                vx = self.spatial_blocks[i](vx, y, t_mlp, ymask, x_mask, t0_mlp, T, S)
                vx = self.temporal_blocks[i](vx, y, t_mlp, ymask, x_mask, t0_mlp, T, S)
                ax = self.audio_spatial_blocks[i](ax, ay, t_mlp, ymask, ax_mask, t0_mlp, R, M)
                ax = self.audio_temporal_blocks[i](ax, ay, t_mlp, ymask, ax_mask, t0_mlp, R, M)
                vx = self.video_st_prior_blocks[i](vx, sp, tp, t_st, x_mask, t0_st, T, S)
                ax = self.audio_st_prior_blocks[i](ax, sp, tp, t_st, ax_mask, t0_st, R, M)
                vx, ax = self.va_cross_blocks[i](vx, ax, ctx)
            else:
                vx, ax = self._paper_layer(i, vx, ax, y, ay, ymask, t_mlp, t_st, t0_mlp, t0_st, x_mask, ax_mask,
                                           sp, tp, (T, S), (R, M), ctx)
        out = {}
        a = self.mel_patch.unpatchify(self.audio_final_layer(ax, te, ax_mask, t0, R, M), (R, M))
        out["audio"] = a[:, : cfg.audio_in_channels] if a.ndim == 4 else a       # drop the σ half (pred_sigma)
        if not audio_only:
            v = self.video_patch.unpatchify(self.final_layer(vx, te, x_mask, t0, T, S), (T, Hp, Wp))
            out["video"] = v[:, :, : cfg.in_channels]
        return out

    def _paper_layer(self, i: int, vx: torch.Tensor, ax: torch.Tensor, y: torch.Tensor, ay: torch.Tensor,
                     ymask: torch.Tensor, t_mlp: torch.Tensor, t_st: torch.Tensor, t0_mlp: Optional[torch.Tensor],
                     t0_st: Optional[torch.Tensor], x_mask: Optional[torch.Tensor], ax_mask: Optional[torch.Tensor],
                     sp: torch.Tensor, tp: torch.Tensor, gv: tuple[int, int], ga: tuple[int, int],
                     ctx: FusionContext) -> tuple[torch.Tensor, torch.Tensor]:
        """Appendix C.1 order: S-SA → CA → S-prior-CA → Bi-CA → FFN, then the same with T."""
        (T, S), (R, M) = gv, ga
        pv, pa = self.video_st_prior_blocks[i], self.audio_st_prior_blocks[i]
        mv, ma = pv._mods(t_st), pa._mods(t_st)
        mv0 = pv._mods(t0_st) if x_mask is not None and t0_st is not None else None
        ma0 = pa._mods(t0_st) if ax_mask is not None and t0_st is not None else None
        vx = self.spatial_blocks[i](vx, y, t_mlp, ymask, x_mask, t0_mlp, T, S)
        ax = self.audio_spatial_blocks[i](ax, ay, t_mlp, ymask, ax_mask, t0_mlp, R, M)
        vx, ax = pv.spatial(vx, sp, mv, mv0, x_mask, T, S), pa.spatial(ax, sp, ma, ma0, ax_mask, R, M)
        vx, ax = self.va_cross_blocks[i](vx, ax, ctx)
        vx = self.temporal_blocks[i](vx, y, t_mlp, ymask, x_mask, t0_mlp, T, S)
        ax = self.audio_temporal_blocks[i](ax, ay, t_mlp, ymask, ax_mask, t0_mlp, R, M)
        vx, ax = pv.temporal(vx, tp, mv, mv0, x_mask, T, S), pa.temporal(ax, tp, ma, ma0, ax_mask, R, M)
        vx, ax = self.va_cross_blocks_t[i](vx, ax, ctx)
        return pv.ffn(vx, mv, mv0, x_mask, T, S), pa.ffn(ax, ma, ma0, ax_mask, R, M)

    # -- stages -------------------------------------------------------------------------------------
    def dit_modules(self) -> list[nn.Module]:
        return [m for n, m in self.named_children() if n not in ("prior_encoder", "text_encoder")]

    def set_stage(self, name: str) -> None:
        """``joint_from_scratch``: everything (the prior by its contrastive loss in the same step);
        ``audio_pretrain``: the audio branch (video branch skipped); ``prior``: the estimator only;
        ``joint``: prior-CA blocks, Bi-CA, ``st_t_block``, ``st_prior_embedder`` (branches, captions
        and estimator frozen; the released config also freezes the caption embedders)."""
        super().set_stage(name)
        for p in self.parameters():
            p.requires_grad_(name == "joint_from_scratch")
        groups: dict[str, list[nn.Module]] = {
            "audio_pretrain": [self.ax_embedder, self.audio_y_embedder, self.audio_spatial_blocks,
                               self.audio_temporal_blocks, self.audio_final_layer],
            "prior": [self.prior_encoder],
            "joint": [self.st_t_block, self.st_prior_embedder, self.video_st_prior_blocks, self.audio_st_prior_blocks,
                      self.va_cross_blocks] + ([self.va_cross_blocks_t] if self.cfg.block_order == "paper" else []),
        }
        for m in groups.get(name, []):
            for p in m.parameters():
                p.requires_grad_(True)
        self.rope.freqs.requires_grad_(False)

    # -- training -----------------------------------------------------------------------------------
    def prior_step(self, batch_pos: Batch, batch_neg: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Contrastive loss of the ST-prior estimator on positives and their negatives.

        batch_pos: the §2.3 batch (video, mel, caption); batch_neg: ``video_spatial`` /
        ``video_temporal`` ``(B, K, 3, T, H, W)`` and ``audio_spatial`` / ``audio_temporal``
        ``(B, K, 1, Tm, F)`` (any subset; see :func:`make_prior_negatives`).
        """
        dev = self.device
        video = batch_pos["video"].to(dev).float()
        mel = batch_pos["mel"].to(dev).float()
        y, _ = self.encode_text(list(batch_pos["caption"]))
        sp, tp, post = self.prior_encoder.encode(y)
        neg = {k: v.to(dev).float() for k, v in batch_neg.items()}
        loss, log = self.prior_encoder.prior_loss(sp, tp, post, video.transpose(1, 2), mel[:, None], neg,
                                                  video.shape[3], video.shape[4])
        return {"loss": loss, "loss_prior": loss.detach(), **log}

    def _x_masks(self, B: int, T: int, R: int) -> tuple[Optional[torch.Tensor], Optional[torch.Tensor]]:
        """The code's v2a / a2v masking of a few training samples (False = clean, conditioning)."""
        pv, pa = self.cfg.x_cond_prob_v2a, self.cfg.x_cond_prob_a2v
        if pv <= 0 and pa <= 0:
            return None, None
        u = torch.rand(B)
        v2a, a2v = u < pv, (u >= pv) & (u < pv + pa)
        if not (v2a.any() or a2v.any()):
            return None, None
        dev = self.device
        return (~v2a[:, None].expand(B, T)).to(dev), (~a2v[:, None].expand(B, R)).to(dev)

    def training_step(self, batch: Batch, step: int) -> dict[str, torch.Tensor]:
        """Flow losses per modality (+ the prior loss in ``joint_from_scratch``; only it in ``prior``)."""
        if self.stage == "prior":
            neg = make_prior_negatives(batch["video"], batch["mel"], self.cfg.prior_num_negatives)
            out = self.prior_step(batch, neg)
            out.update(loss_video=torch.zeros((), device=self.device), loss_audio=torch.zeros((), device=self.device))
            return out
        dev = self.device
        cfg = self.cfg
        mel = batch["mel"].to(dev).float()
        video = None if self.stage == "audio_pretrain" else batch["video"].to(dev).float()
        B = mel.shape[0]
        Tf, H, W = batch["video"].shape[1], batch["video"].shape[3], batch["video"].shape[4]
        y, mask = self.encode_text(list(batch["caption"]))
        drop = (torch.rand(B) < cfg.class_dropout_prob).to(dev) if self.training else None
        cond = self.conditions(y, mask, drop)
        t = self.flow(Tf, H, W).sample_t(B, device=dev)
        x0 = {"audio": mel} if video is None else {"audio": mel, "video": video}
        noise = {k: torch.randn_like(v) for k, v in x0.items()}
        xt = {k: RectifiedFlow.add_noise(x0[k], noise[k], t) for k in x0}
        R = mel.shape[1] // cfg.audio_patch_size[0]
        T = Tf // cfg.patch_size[0]
        x_mask = ax_mask = None
        if video is not None and self.training:
            x_mask, ax_mask = self._x_masks(B, T, R)
            if x_mask is not None:     # clean steps take x0 (t = 0), as the original's add_noise(t0)
                vm = x_mask.repeat_interleave(cfg.patch_size[0], 1)[:, :, None, None, None]
                am = ax_mask.repeat_interleave(cfg.audio_patch_size[0], 1)[:, :, None]
                xt = {"video": torch.where(vm, xt["video"], x0["video"]), "audio": torch.where(am, xt["audio"], x0["audio"])}
        pred = self(xt.get("video"), xt["audio"], t, cond, H, W, x_mask, ax_mask)
        out: dict[str, torch.Tensor] = {}
        total = torch.zeros((), device=dev)
        for k in x0:
            w = None
            if x_mask is not None:
                w = (x_mask.repeat_interleave(cfg.patch_size[0], 1)[:, :, None, None, None] if k == "video"
                     else ax_mask.repeat_interleave(cfg.audio_patch_size[0], 1)[:, :, None])  # type: ignore[union-attr]
            loss = RectifiedFlow.loss(pred[k], x0[k], noise[k], w)
            out[f"loss_{k}"] = loss.detach()
            total = total + loss
        out.setdefault("loss_video", torch.zeros((), device=dev))
        if self.stage == "joint_from_scratch":
            neg = make_prior_negatives(batch["video"], batch["mel"], cfg.prior_num_negatives)
            pr = self.prior_step(batch, neg)
            total = total + pr["loss"]
            out["loss_prior"] = pr["loss"].detach()
        out["loss"] = total
        return out

    # -- generation -----------------------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, req: GenerationRequest) -> GenerationOutput:
        """Seeded RF-Euler sampling with CFG (the unconditional pass uses the null caption **and** the
        null prior), optional x-conditioning (``condition={"video": ...}`` → v2a, ``{"audio": ...}`` → a2v),
        then mel → waveform."""
        was_training = self.training
        self.eval()
        t_start = time.perf_counter()
        cfg, dev = self.cfg, self.device
        B, T, H, W = len(req), req.num_frames, req.height, req.width
        mel_spec = self._mel or MelSpec()
        self._mel = mel_spec
        Tm = mel_spec.num_frames(req.num_samples)
        seeds = req.sample_seeds()
        x = {"video": seeded_noise((T, cfg.in_channels, H, W), seeds, dev, stream="video"),
             "audio": seeded_noise((Tm, mel_spec.n_mels), seeds, dev, stream="audio")}
        prior_noise = seeded_noise((cfg.spatial_prior_len + cfg.temporal_prior_len, cfg.st_prior_channel), seeds, dev,
                                   stream="prior")
        y, mask = self.encode_text(list(req.prompts))
        cond = self.conditions(y, mask, None, prior_noise)
        if req.negative_prompts is not None:
            yn, mn = self.encode_text(list(req.negative_prompts))
            null = self.conditions(yn, mn, None, prior_noise)
        else:
            null = self.conditions(y, mask, torch.ones(B, dtype=torch.bool, device=dev), prior_noise)
        clean: dict[str, torch.Tensor] = {}
        if req.condition and "video" in req.condition:
            clean["video"] = req.condition["video"].to(dev).float() * 2 - 1
        if req.condition and "audio" in req.condition:
            clean["audio"] = mel_spec(req.condition["audio"].to(dev).float())[:, :Tm]
        if "first_frame" in (req.condition or {}):
            raise ValueError("javisdit: condition 'first_frame' is not supported (x-conditional keys: video, audio)")
        x_mask = torch.zeros(B, T // cfg.patch_size[0], dtype=torch.bool, device=dev) if "video" in clean else None
        ax_mask = torch.zeros(B, Tm // cfg.audio_patch_size[0], dtype=torch.bool, device=dev) if "audio" in clean else None
        if x_mask is not None and ax_mask is None:
            ax_mask = torch.ones(B, Tm // cfg.audio_patch_size[0], dtype=torch.bool, device=dev)
        if ax_mask is not None and x_mask is None:
            x_mask = torch.ones(B, T // cfg.patch_size[0], dtype=torch.bool, device=dev)
        for k, v in clean.items():
            x[k] = v

        def model_fn(xx: dict[str, torch.Tensor], tt: torch.Tensor, c: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
            xx = {k: clean.get(k, v) for k, v in xx.items()}
            v = self(xx["video"], xx["audio"], tt, c, H, W, x_mask, ax_mask)
            return {k: torch.zeros_like(val) if k in clean else val for k, val in v.items()}

        scales = {m: req.guidance_for(m, cfg.cfg_scale) for m in ("video", "audio")}
        guided = GuidedVelocity(model_fn, cond, null, scales)
        steps = req.num_steps or cfg.num_sampling_steps
        x = euler_sample(guided, x, self.flow(T, H, W).timesteps(steps, device=dev))
        t_model = time.perf_counter() - t_start
        video = ((x["video"].float().clamp(-1, 1) + 1) / 2).cpu()
        mel = x["audio"].float().clamp(-4, 4)
        audio = mel_spec.to_wave(mel.cpu(), req.num_samples, seed=int(req.seed or 0)).cpu()
        if "audio" in clean:
            audio = req.condition["audio"].float().cpu()  # type: ignore[index]
        self.train(was_training)
        return GenerationOutput(video=video, audio=audio, fps=req.fps, sample_rate=req.sample_rate, mel=mel.cpu(),
                                extras={"nfe": guided.nfe, "num_steps": steps, "guidance": scales,
                                        "seconds_model": t_model, "seconds_total": time.perf_counter() - t_start,
                                        "x_conditional": sorted(clean)})
