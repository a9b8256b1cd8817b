"""Attention, adaLN-modulated DiT blocks, spatial/temporal self-attention, text cross-attention, MLP.

Module and parameter names follow the two code bases the reference generators descend from, so a
paper-size instance has the original's state-dict layout:

* OpenSora / JavisDiT v0.1 (``STDiT3Block``): ``norm1``, ``attn.{qkv,q_norm,k_norm,proj}``,
  ``cross_attn.{q_linear,kv_linear,proj}``, ``norm2``, ``mlp.{fc1,fc2}``, ``scale_shift_table``;
  final layer ``T2IFinalLayer.{linear,scale_shift_table}``; ``TimestepEmbedder.mlp.{0,2}``;
  ``CaptionEmbedder.{y_proj.fc1,y_proj.fc2,y_embedding}``.
* Wan 2.1 / JavisDiT++ v1.0: ``WanSelfAttention.{q,k,v,o,norm_q,norm_k}``, ``WanCrossAttention``,
  ``WanLayerNorm``, ``WanRMSNorm``, ``Head.{head,modulation}``.

Attention runs through ``torch.nn.functional.scaled_dot_product_attention`` (softmax(q·kᵀ/√d)·v,
the same math as the originals' xformers / flash paths). Shapes: tokens ``(B, N, C)``.
"""
from __future__ import annotations

import math
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "RMSNorm", "WanRMSNorm", "WanLayerNorm", "layer_norm", "t2i_modulate", "Mlp", "approx_gelu",
    "Attention", "MultiHeadCrossAttention", "STDiT3Block", "T2IFinalLayer", "TimestepEmbedder",
    "SizeEmbedder", "CaptionEmbedder", "WanSelfAttention", "WanCrossAttention", "Head",
    "sinusoidal_embedding", "t_mask_select", "key_padding_bias",
]

RopeFn = Callable[[torch.Tensor], torch.Tensor]


def approx_gelu() -> nn.Module:
    """tanh-approximated GELU (the activation of every MLP in both originals)."""
    return nn.GELU(approximate="tanh")


def layer_norm(dim: int, eps: float = 1e-6, affine: bool = False) -> nn.LayerNorm:
    """LayerNorm without affine by default (adaLN supplies scale and shift)."""
    return nn.LayerNorm(dim, eps=eps, elementwise_affine=affine)


def t2i_modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """adaLN modulation ``x·(1 + scale) + shift`` (shift/scale broadcast over tokens)."""
    return x * (1 + scale) + shift


class RMSNorm(nn.Module):
    """RMS norm over the last axis with a learned ``weight`` (OpenSora's ``LlamaRMSNorm``)."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        return self.weight * (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)).to(x.dtype)


class WanRMSNorm(RMSNorm):
    """Wan's RMS norm (eps 1e-6 there, applied over the full width before the head split)."""


class WanLayerNorm(nn.LayerNorm):
    """Wan's LayerNorm: eps 1e-6, affine only where asked (the text cross-attention ``norm3``)."""

    def __init__(self, dim: int, eps: float = 1e-6, elementwise_affine: bool = False) -> None:
        super().__init__(dim, eps=eps, elementwise_affine=elementwise_affine)


class Mlp(nn.Module):
    """``fc2(act(fc1(x)))`` with timm's names; ``(B, N, in) -> (B, N, out)``."""

    def __init__(self, in_features: int, hidden_features: int, out_features: Optional[int] = None) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = approx_gelu()
        self.fc2 = nn.Linear(hidden_features, out_features or in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


def key_padding_bias(mask: Optional[torch.Tensor], dtype: torch.dtype) -> Optional[torch.Tensor]:
    """``(B, L)`` bool (True = real key) -> additive bias ``(B, 1, 1, L)`` (0 or −inf), or None."""
    if mask is None:
        return None
    bias = torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(~mask, float("-inf"))
    return bias[:, None, None, :]


class Attention(nn.Module):
    """Multi-head self-attention with fused ``qkv``, optional per-head RMS q/k norm and RoPE.

    ``rope`` is a callable applied to q and k of shape ``(B, heads, N, head_dim)`` after the norm
    (OpenSora's default order). ``(B, N, C) -> (B, N, C)``.
    """

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True, qk_norm: bool = False,
                 rope: Optional[RopeFn] = None) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"width {dim} is not divisible by {num_heads} heads")
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.q_norm = RMSNorm(self.head_dim) if qk_norm else nn.Identity()
        self.k_norm = RMSNorm(self.head_dim) if qk_norm else nn.Identity()
        self.proj = nn.Linear(dim, dim)
        self.rope = rope

    def forward(self, x: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        B, N, C = x.shape
        q, k, v = self.qkv(x).view(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k = self.q_norm(q), self.k_norm(k)
        if self.rope is not None:
            q, k = self.rope(q), self.rope(k)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=key_padding_bias(mask, q.dtype))
        return self.proj(out.transpose(1, 2).reshape(B, N, C))


class MultiHeadCrossAttention(nn.Module):
    """Cross-attention from tokens to a condition sequence (``q_linear``, fused ``kv_linear``).

    Args (forward): x ``(B, N, C)``; cond ``(B, L, C)``; mask ``(B, L)`` bool, True = real token
    (the original packs the batch and uses a block-diagonal mask: the same result).
    """

    def __init__(self, d_model: int, num_heads: int) -> None:
        super().__init__()
        if d_model % num_heads:
            raise ValueError(f"width {d_model} is not divisible by {num_heads} heads")
        self.num_heads, self.head_dim = num_heads, d_model // num_heads
        self.q_linear = nn.Linear(d_model, d_model)
        self.kv_linear = nn.Linear(d_model, d_model * 2)
        self.proj = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor, cond: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        B, N, C = x.shape
        if cond.shape[0] != B:  # a condition shared by groups of rows (e.g. per frame)
            if B % cond.shape[0]:
                raise ValueError(f"condition batch {cond.shape[0]} does not divide token batch {B}")
            rep = B // cond.shape[0]
            cond = cond.repeat_interleave(rep, 0)
            mask = None if mask is None else mask.repeat_interleave(rep, 0)
        q = self.q_linear(x).view(B, N, self.num_heads, self.head_dim).transpose(1, 2)
        k, v = self.kv_linear(cond).view(B, -1, 2, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=key_padding_bias(mask, q.dtype))
        return self.proj(out.transpose(1, 2).reshape(B, N, C))


def t_mask_select(x_mask: torch.Tensor, x: torch.Tensor, x_zero: torch.Tensor, T: int, S: int) -> torch.Tensor:
    """Per-frame choice between two ``(B, T·S, C)`` tensors: ``x`` where ``x_mask[b, t]`` else ``x_zero``.

    This is how the x-conditional mode gives clean (conditioning) frames their own t = 0 modulation.
    """
    B, N, C = x.shape
    sel = x_mask[:, :, None, None]
    return torch.where(sel, x.view(B, T, S, C), x_zero.view(B, T, S, C)).view(B, N, C)


class STDiT3Block(nn.Module):
    """OpenSora STDiT3 block: adaLN self-attention (spatial or temporal), text cross-attention, adaLN MLP.

    Spatial: attention over the ``S`` tokens of each of the ``T`` steps (``(B·T, S, C)``);
    temporal: over the ``T`` steps at each location (``(B·S, T, C)``), where ``rope`` acts.
    ``t`` is the shared ``(B, 6·C)`` adaLN-single vector; ``scale_shift_table`` is per block.
    """

    def __init__(self, hidden_size: int, num_heads: int, mlp_ratio: float = 4.0, qk_norm: bool = True,
                 temporal: bool = False, rope: Optional[RopeFn] = None) -> None:
        super().__init__()
        self.temporal = temporal
        self.norm1 = layer_norm(hidden_size)
        self.attn = Attention(hidden_size, num_heads, qkv_bias=True, qk_norm=qk_norm, rope=rope)
        self.cross_attn = MultiHeadCrossAttention(hidden_size, num_heads)
        self.norm2 = layer_norm(hidden_size)
        self.mlp = Mlp(hidden_size, int(hidden_size * mlp_ratio))
        self.scale_shift_table = nn.Parameter(torch.randn(6, hidden_size) / hidden_size ** 0.5)

    def forward(self, x: torch.Tensor, y: torch.Tensor, t: torch.Tensor, mask: Optional[torch.Tensor] = None,
                x_mask: Optional[torch.Tensor] = None, t0: Optional[torch.Tensor] = None,
                T: int = 1, S: int = 1) -> torch.Tensor:
        """x ``(B, T·S, C)``; y ``(B, L, C)`` text tokens with mask ``(B, L)``; t / t0 ``(B, 6·C)``;
        x_mask ``(B, T)`` True = noisy step (its own t), False = clean step (t0)."""
        B, N, C = x.shape
        mod = (self.scale_shift_table[None] + t.view(B, 6, C)).chunk(6, dim=1)
        mod0 = (self.scale_shift_table[None] + t0.view(B, 6, C)).chunk(6, dim=1) if x_mask is not None else None

        def sel(a: torch.Tensor, a0: Optional[torch.Tensor]) -> torch.Tensor:
            return a if x_mask is None or a0 is None else t_mask_select(x_mask, a, a0, T, S)

        h = self.norm1(x)
        x_m = sel(t2i_modulate(h, mod[0], mod[1]), t2i_modulate(h, mod0[0], mod0[1]) if mod0 else None)
        if self.temporal:
            x_m = x_m.view(B, T, S, C).transpose(1, 2).reshape(B * S, T, C)
            x_m = self.attn(x_m).view(B, S, T, C).transpose(1, 2).reshape(B, N, C)
        else:
            x_m = self.attn(x_m.view(B * T, S, C)).view(B, N, C)
        x = x + sel(mod[2] * x_m, mod0[2] * x_m if mod0 else None)
        x = x + self.cross_attn(x, y, mask)
        h = self.norm2(x)
        x_m = self.mlp(sel(t2i_modulate(h, mod[3], mod[4]), t2i_modulate(h, mod0[3], mod0[4]) if mod0 else None))
        return x + sel(mod[5] * x_m, mod0[5] * x_m if mod0 else None)


class T2IFinalLayer(nn.Module):
    """PixArt/OpenSora output layer: adaLN (2-row table + t) → linear to ``num_patch·out_channels``."""

    def __init__(self, hidden_size: int, num_patch: int, out_channels: int) -> None:
        super().__init__()
        self.norm_final = layer_norm(hidden_size)
        self.linear = nn.Linear(hidden_size, num_patch * out_channels)
        self.scale_shift_table = nn.Parameter(torch.randn(2, hidden_size) / hidden_size ** 0.5)

    def forward(self, x: torch.Tensor, t: torch.Tensor, x_mask: Optional[torch.Tensor] = None,
                t0: Optional[torch.Tensor] = None, T: int = 1, S: int = 1) -> torch.Tensor:
        """x ``(B, N, C)``, t ``(B, C)`` → ``(B, N, num_patch·out_channels)``."""
        shift, scale = (self.scale_shift_table[None] + t[:, None]).chunk(2, dim=1)
        h = self.norm_final(x)
        out = t2i_modulate(h, shift, scale)
        if x_mask is not None and t0 is not None:
            shift0, scale0 = (self.scale_shift_table[None] + t0[:, None]).chunk(2, dim=1)
            out = t_mask_select(x_mask, out, t2i_modulate(h, shift0, scale0), T, S)
        return self.linear(out)


def sinusoidal_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0,
                         order: str = "cos_sin") -> torch.Tensor:
    """Sinusoidal embedding of scalars ``t (B,)`` → ``(B, dim)``: ``[cos(t·f), sin(t·f)]``,
    ``f_i = max_period^{−i/(dim/2)}`` (GLIDE/DiT and Wan use this order)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
    return emb


class TimestepEmbedder(nn.Module):
    """Timestep (0..1000 scale, as OpenSora) → ``mlp`` (Linear, SiLU, Linear); ``(B,) -> (B, C)``."""

    def __init__(self, hidden_size: int, frequency_embedding_size: int = 256) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(frequency_embedding_size, hidden_size), nn.SiLU(),
                                 nn.Linear(hidden_size, hidden_size))
        self.frequency_embedding_size = frequency_embedding_size

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        emb = sinusoidal_embedding(t, self.frequency_embedding_size)
        return self.mlp(emb.to(self.mlp[0].weight.dtype))


class SizeEmbedder(TimestepEmbedder):
    """A scalar size (OpenSora's fps embedding) embedded like a timestep; ``(B,) -> (B, C)``."""


class CaptionEmbedder(nn.Module):
    """Caption MLP ``y_proj`` (fc1, tanh-GELU, fc2) with a learned null sequence ``y_embedding``.

    ``token_drop`` replaces whole captions by the null sequence (CFG dropout / the unconditional
    branch). The original keeps ``y_embedding`` as a buffer (persistent, hence in the state dict).
    """

    def __init__(self, in_channels: int, hidden_size: int, uncond_prob: float, token_num: int) -> None:
        super().__init__()
        self.y_proj = Mlp(in_channels, hidden_size, hidden_size)
        self.register_buffer("y_embedding", torch.randn(token_num, in_channels) / in_channels ** 0.5)
        self.uncond_prob = uncond_prob

    def forward(self, caption: torch.Tensor, drop: Optional[torch.Tensor] = None) -> torch.Tensor:
        """caption ``(B, L, in)``; drop ``(B,)`` bool → ``(B, L, hidden)``."""
        if drop is not None:
            null = self.y_embedding[None, : caption.shape[1]].to(caption.dtype)
            caption = torch.where(drop[:, None, None], null, caption)
        return self.y_proj(caption)


class WanSelfAttention(nn.Module):
    """Wan self-attention: separate ``q, k, v, o``; RMS norm on q and k over the full width;
    RoPE from precomputed angles ``(N, head_dim/2)``. ``(B, N, C) -> (B, N, C)``."""

    def __init__(self, dim: int, num_heads: int, qk_norm: bool = True, eps: float = 1e-6) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"width {dim} is not divisible by {num_heads} heads")
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.q, self.k, self.v, self.o = (nn.Linear(dim, dim) for _ in range(4))
        self.norm_q = WanRMSNorm(dim, eps) if qk_norm else nn.Identity()
        self.norm_k = WanRMSNorm(dim, eps) if qk_norm else nn.Identity()

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(x.shape[0], x.shape[1], self.num_heads, self.head_dim)

    def forward(self, x: torch.Tensor, angles: Optional[torch.Tensor] = None,
                mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        from .rope import apply_rope
        B, N, C = x.shape
        q, k, v = self._heads(self.norm_q(self.q(x))), self._heads(self.norm_k(self.k(x))), self._heads(self.v(x))
        if angles is not None:
            q, k = apply_rope(q, angles, seq_dim=1), apply_rope(k, angles, seq_dim=1)
        out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                             attn_mask=key_padding_bias(mask, q.dtype))
        return self.o(out.transpose(1, 2).reshape(B, N, C))


class WanCrossAttention(WanSelfAttention):
    """Wan text cross-attention (``t2v_cross_attn``): queries from x, keys/values from the context."""

    def forward(self, x: torch.Tensor, context: torch.Tensor,  # type: ignore[override]
                mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        B, N, C = x.shape
        q = self._heads(self.norm_q(self.q(x))).transpose(1, 2)
        k = self._heads(self.norm_k(self.k(context))).transpose(1, 2)
        v = self._heads(self.v(context)).transpose(1, 2)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=key_padding_bias(mask, q.dtype))
        return self.o(out.transpose(1, 2).reshape(B, N, C))


class Head(nn.Module):
    """Wan output head: LayerNorm, modulation ``(1, 2, C)`` + e, linear to ``prod(patch)·out_dim``."""

    def __init__(self, dim: int, out_features: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.norm = WanLayerNorm(dim, eps)
        self.head = nn.Linear(dim, out_features)
        self.modulation = nn.Parameter(torch.randn(1, 2, dim) / dim ** 0.5)

    def forward(self, x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        """x ``(B, N, C)``, e ``(B, C)`` → ``(B, N, out_features)``."""
        shift, scale = (self.modulation + e[:, None]).chunk(2, dim=1)
        return self.head(self.norm(x) * (1 + scale) + shift)
