"""Audio-video fusion modules, chosen by a config string through the registry :data:`FUSIONS`.

Every fusion takes the two token streams and returns them updated (residuals included):

    fusion(xv (B, Nv, Cv), xa (B, Na, Ca), ctx: FusionContext) -> (xv', xa')

``ctx`` carries what some fusions need (timestep embeddings for adaLN bridges, token grids for
frame-local windows, RoPE angles, padding masks); a fusion ignores the fields it does not use.
A fusion ablation is therefore a config change (``build_fusion(name, ...)``), not a code path.

Registered here:

* ``bi_ca`` — JavisDiT v0.1's bidirectional cross-attention (``CrossModalityBiAttentionBlock``
  around ``BiMultiHeadAttention``): **one** similarity matrix ``A = Q_v·K_aᵀ/√d`` drives both
  directions (video ← softmax_rows(A)·V_a, audio ← softmax_rows(Aᵀ)·V_v); residuals gated by
  zero-initialised per-channel ``gamma_m1`` / ``gamma_m2``, so the block starts as the identity.
* ``joint_attn`` — full joint attention with per-stream projections: each stream has its own
  q/k/v/o, one softmax runs over all ``Nv + Na`` tokens (JointDiT / AVFull-Attention style).
* ``a2v`` / ``v2a`` — unidirectional cross-attention (the query stream reads the other one).
* ``additive`` — each stream adds a gated projection of the other stream's mean token (SSVG).
* ``none`` — no interaction.

Other families register more (``dca``, ``rs_mma``, ``frame_local_ca``) with :func:`register_fusion`.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Callable, Literal, Optional

import torch
import torch.nn.functional as F
from torch import nn

from .attention import RMSNorm, key_padding_bias, layer_norm
from .rope import apply_rope

__all__ = [
    "FusionContext", "FUSIONS", "register_fusion", "build_fusion", "BiMultiHeadAttention",
    "CrossModalityBiAttentionBlock", "JointAttentionFusion", "UniCrossAttentionFusion",
    "AdditiveFusion", "NoFusion",
]


@dataclass
class FusionContext:
    """Optional side information for a fusion call (all fields may be None).

    t_v, t_a: ``(B, C)`` timestep embeddings per stream; grid_v ``(T, S)`` and grid_a ``(R, M)``:
    token grids (time-major); angles_v ``(Nv, d/2)``, angles_a ``(Na, d/2)``: RoPE angles per
    stream; mask_v ``(B, Nv)``, mask_a ``(B, Na)``: True = real token.
    """

    t_v: Optional[torch.Tensor] = None
    t_a: Optional[torch.Tensor] = None
    grid_v: Optional[tuple[int, int]] = None
    grid_a: Optional[tuple[int, int]] = None
    angles_v: Optional[torch.Tensor] = None
    angles_a: Optional[torch.Tensor] = None
    mask_v: Optional[torch.Tensor] = None
    mask_a: Optional[torch.Tensor] = None


FusionFactory = Callable[..., nn.Module]
FUSIONS: dict[str, FusionFactory] = {}


def register_fusion(name: str) -> Callable[[FusionFactory], FusionFactory]:
    """Decorator: ``@register_fusion("dca")`` on a factory ``(video_dim, audio_dim, num_heads, **opts)``."""
    def deco(factory: FusionFactory) -> FusionFactory:
        if name in FUSIONS:
            raise ValueError(f"fusion {name!r} is already registered")
        FUSIONS[name] = factory
        return factory
    return deco


def build_fusion(name: str, video_dim: int, audio_dim: int, num_heads: int, **options: object) -> nn.Module:
    """Instantiate the fusion called ``name``; an unknown name lists the close and the available ones."""
    if name not in FUSIONS:
        close = difflib.get_close_matches(name, list(FUSIONS), n=3)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise KeyError(f"Unknown fusion {name!r}.{hint} Available: {', '.join(sorted(FUSIONS))}")
    return FUSIONS[name](video_dim, audio_dim, num_heads, **options)


# ---------------------------------------------------------------------------------- bi_ca (JavisDiT)


class BiMultiHeadAttention(nn.Module):
    """JavisDiT's bidirectional multi-head attention with one shared similarity matrix.

    Parameters (original names): ``m1_proj`` (stream-1 "queries"), ``m2_proj`` (stream-2 "keys"),
    ``values_m1_proj``, ``values_m2_proj``, ``out_m1_proj``, ``out_m2_proj``.

    Args:
        attn_implementation: ``"sdpa"`` (the original default) or ``"eager"`` (explicit softmax;
            agrees with sdpa to ~2e-6). As in the original, eager refuses padding masks.
        mask_mode: how padding masks ``(B, L1)`` / ``(B, L2)`` (True = real) enter.
            ``"or"`` reproduces the original: the pair mask is ``m1[i] | m2[j]``, so a padded audio
            key is still attended whenever the video query is real (a no-op in practice, where the
            video mask is all ones). ``"key"`` masks each direction's padded keys (correct).
    """

    def __init__(self, m1_dim: int, m2_dim: int, embed_dim: int, num_heads: int,
                 attn_implementation: Literal["sdpa", "eager"] = "sdpa",
                 mask_mode: Literal["or", "key"] = "or") -> None:
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"Bi-CA width {embed_dim} is not divisible by {num_heads} heads")
        if attn_implementation not in ("sdpa", "eager"):
            raise ValueError(f"attn_implementation must be 'sdpa' or 'eager', got {attn_implementation!r}")
        if mask_mode not in ("or", "key"):
            raise ValueError(f"mask_mode must be 'or' (original) or 'key', got {mask_mode!r}")
        self.embed_dim, self.num_heads, self.head_dim = embed_dim, num_heads, embed_dim // num_heads
        self.attn_implementation, self.mask_mode = attn_implementation, mask_mode
        self.m1_proj = nn.Linear(m1_dim, embed_dim)
        self.m2_proj = nn.Linear(m2_dim, embed_dim)
        self.values_m1_proj = nn.Linear(m1_dim, embed_dim)
        self.values_m2_proj = nn.Linear(m2_dim, embed_dim)
        self.out_m1_proj = nn.Linear(embed_dim, m1_dim)
        self.out_m2_proj = nn.Linear(embed_dim, m2_dim)
        for p in (self.m1_proj, self.m2_proj, self.values_m1_proj, self.values_m2_proj,
                  self.out_m1_proj, self.out_m2_proj):
            nn.init.xavier_uniform_(p.weight)
            nn.init.zeros_(p.bias)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(x.shape[0], x.shape[1], self.num_heads, self.head_dim).transpose(1, 2)

    def _masks(self, m1: Optional[torch.Tensor], m2: Optional[torch.Tensor], B: int, L1: int, L2: int,
               device: torch.device) -> tuple[Optional[torch.Tensor], Optional[torch.Tensor]]:
        """Boolean masks (True = attend) for video←audio ``(B,1,L1,L2)`` and audio←video ``(B,1,L2,L1)``."""
        if m1 is None and m2 is None:
            return None, None
        m1 = torch.ones((B, L1), dtype=torch.bool, device=device) if m1 is None else m1.bool()
        m2 = torch.ones((B, L2), dtype=torch.bool, device=device) if m2 is None else m2.bool()
        if self.mask_mode == "or":
            pair = m1[:, None, :, None] | m2[:, None, None, :]
            return pair, pair.transpose(-1, -2)
        return (m2[:, None, None, :].expand(B, 1, L1, L2), m1[:, None, None, :].expand(B, 1, L2, L1))

    def forward(self, x1: torch.Tensor, x2: torch.Tensor, attention_mask_1: Optional[torch.Tensor] = None,
                attention_mask_2: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, torch.Tensor]:
        """x1 ``(B, L1, m1_dim)``, x2 ``(B, L2, m2_dim)`` → updates ``(B, L1, m1_dim)``, ``(B, L2, m2_dim)``."""
        B, L1, _ = x1.shape
        L2 = x2.shape[1]
        q = self._heads(self.m1_proj(x1))            # (B, h, L1, d)
        k = self._heads(self.m2_proj(x2))            # (B, h, L2, d)
        v1 = self._heads(self.values_m1_proj(x1))    # (B, h, L1, d)
        v2 = self._heads(self.values_m2_proj(x2))    # (B, h, L2, d)
        if self.attn_implementation == "eager":
            if attention_mask_1 is not None or attention_mask_2 is not None:
                raise NotImplementedError("the original eager Bi-CA path fails with padding masks; use sdpa")
            sim = (q * self.head_dim ** -0.5) @ k.transpose(-1, -2)          # (B, h, L1, L2), shared
            o1 = torch.softmax(sim, dim=-1) @ v2
            o2 = torch.softmax(sim.transpose(-1, -2), dim=-1) @ v1
        else:
            mask_21, mask_12 = self._masks(attention_mask_1, attention_mask_2, B, L1, L2, x1.device)
            o1 = F.scaled_dot_product_attention(q, k, v2, attn_mask=mask_21)
            o2 = F.scaled_dot_product_attention(k, q, v1, attn_mask=mask_12)
        o1 = o1.transpose(1, 2).reshape(B, L1, self.embed_dim)
        o2 = o2.transpose(1, 2).reshape(B, L2, self.embed_dim)
        return self.out_m1_proj(o1), self.out_m2_proj(o2)


class CrossModalityBiAttentionBlock(nn.Module):
    """JavisDiT's Bi-CA block: LayerNorm (no affine) per stream → Bi-MHA → zero-init gated residuals.

    No FFN and no timestep modulation (as released). Parameters: ``cross_attn.*``, ``gamma_m1``,
    ``gamma_m2``.
    """

    def __init__(self, m1_dim: int, m2_dim: int, hidden_size: int, num_heads: int,
                 attn_implementation: Literal["sdpa", "eager"] = "sdpa",
                 mask_mode: Literal["or", "key"] = "or") -> None:
        super().__init__()
        self.attn_norm_m1 = layer_norm(m1_dim)
        self.attn_norm_m2 = layer_norm(m2_dim)
        self.cross_attn = BiMultiHeadAttention(m1_dim, m2_dim, hidden_size, num_heads, attn_implementation, mask_mode)
        self.gamma_m1 = nn.Parameter(torch.zeros(m1_dim))
        self.gamma_m2 = nn.Parameter(torch.zeros(m2_dim))

    def forward(self, xv: torch.Tensor, xa: torch.Tensor,
                ctx: Optional[FusionContext] = None) -> tuple[torch.Tensor, torch.Tensor]:
        ctx = ctx or FusionContext()
        dv, da = self.cross_attn(self.attn_norm_m1(xv), self.attn_norm_m2(xa), ctx.mask_v, ctx.mask_a)
        return xv + self.gamma_m1 * dv, xa + self.gamma_m2 * da


@register_fusion("bi_ca")
def _bi_ca(video_dim: int, audio_dim: int, num_heads: int, **opts: object) -> nn.Module:
    """JavisDiT's sizing: inner width ``min(Cv, Ca)/2`` with ``heads/2`` heads (override with
    ``hidden_size`` / ``bi_heads``)."""
    hidden = int(opts.pop("hidden_size", min(video_dim, audio_dim) // 2))  # type: ignore[arg-type]
    heads = int(opts.pop("bi_heads", max(1, num_heads // 2)))  # type: ignore[arg-type]
    return CrossModalityBiAttentionBlock(video_dim, audio_dim, hidden, heads, **opts)  # type: ignore[arg-type]


# ------------------------------------------------------------------------- joint attention


class JointAttentionFusion(nn.Module):
    """Full joint attention over ``Nv + Na`` tokens with per-stream q/k/v/o projections.

    Each stream: LayerNorm (no affine) → its own ``*_qkv`` (to a shared inner width) → optional
    per-head RMS q/k norm and RoPE from ``ctx.angles_*`` → one softmax over the concatenation →
    its own ``*_proj`` → residual gated by a zero-initialised ``gamma_*``.
    """

    def __init__(self, video_dim: int, audio_dim: int, num_heads: int, inner_dim: Optional[int] = None,
                 qk_norm: bool = True) -> None:
        super().__init__()
        inner = inner_dim or min(video_dim, audio_dim)
        if inner % num_heads:
            raise ValueError(f"joint attention width {inner} is not divisible by {num_heads} heads")
        self.inner, self.num_heads, self.head_dim = inner, num_heads, inner // num_heads
        self.v_norm, self.a_norm = layer_norm(video_dim), layer_norm(audio_dim)
        self.v_qkv, self.a_qkv = nn.Linear(video_dim, 3 * inner), nn.Linear(audio_dim, 3 * inner)
        self.v_q_norm = RMSNorm(self.head_dim) if qk_norm else nn.Identity()
        self.v_k_norm = RMSNorm(self.head_dim) if qk_norm else nn.Identity()
        self.a_q_norm = RMSNorm(self.head_dim) if qk_norm else nn.Identity()
        self.a_k_norm = RMSNorm(self.head_dim) if qk_norm else nn.Identity()
        self.v_proj, self.a_proj = nn.Linear(inner, video_dim), nn.Linear(inner, audio_dim)
        self.gamma_v, self.gamma_a = nn.Parameter(torch.zeros(video_dim)), nn.Parameter(torch.zeros(audio_dim))

    def _qkv(self, x: torch.Tensor, lin: nn.Module, qn: nn.Module, kn: nn.Module,
             angles: Optional[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        B, N, _ = x.shape
        q, k, v = lin(x).view(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k = qn(q), kn(k)
        if angles is not None:
            q, k = apply_rope(q, angles), apply_rope(k, angles)
        return q, k, v

    def forward(self, xv: torch.Tensor, xa: torch.Tensor,
                ctx: Optional[FusionContext] = None) -> tuple[torch.Tensor, torch.Tensor]:
        ctx = ctx or FusionContext()
        B, Nv, _ = xv.shape
        Na = xa.shape[1]
        qv, kv, vv = self._qkv(self.v_norm(xv), self.v_qkv, self.v_q_norm, self.v_k_norm, ctx.angles_v)
        qa, ka, va = self._qkv(self.a_norm(xa), self.a_qkv, self.a_q_norm, self.a_k_norm, ctx.angles_a)
        mask = None
        if ctx.mask_v is not None or ctx.mask_a is not None:
            mv = ctx.mask_v if ctx.mask_v is not None else torch.ones(B, Nv, dtype=torch.bool, device=xv.device)
            ma = ctx.mask_a if ctx.mask_a is not None else torch.ones(B, Na, dtype=torch.bool, device=xa.device)
            mask = key_padding_bias(torch.cat([mv, ma], 1), qv.dtype)
        out = F.scaled_dot_product_attention(torch.cat([qv, qa], 2), torch.cat([kv, ka], 2),
                                             torch.cat([vv, va], 2), attn_mask=mask)
        out = out.transpose(1, 2).reshape(B, Nv + Na, self.inner)
        return (xv + self.gamma_v * self.v_proj(out[:, :Nv]), xa + self.gamma_a * self.a_proj(out[:, Nv:]))


@register_fusion("joint_attn")
def _joint_attn(video_dim: int, audio_dim: int, num_heads: int, **opts: object) -> nn.Module:
    return JointAttentionFusion(video_dim, audio_dim, num_heads, **opts)  # type: ignore[arg-type]


# ---------------------------------------------------------------- unidirectional cross-attention


class UniCrossAttentionFusion(nn.Module):
    """One-way cross-attention: ``direction="a2v"`` (video queries audio) or ``"v2a"``.

    Query stream: LayerNorm → ``q``; other stream: LayerNorm → ``k``, ``v`` (inner width = the query
    width); ``o`` back; gated by a zero-initialised ``gamma``. The other stream is returned unchanged.
    """

    def __init__(self, video_dim: int, audio_dim: int, num_heads: int,
                 direction: Literal["a2v", "v2a"] = "a2v") -> None:
        super().__init__()
        if direction not in ("a2v", "v2a"):
            raise ValueError(f"direction must be 'a2v' or 'v2a', got {direction!r}")
        self.direction = direction
        qd, kd = (video_dim, audio_dim) if direction == "a2v" else (audio_dim, video_dim)
        if qd % num_heads:
            raise ValueError(f"cross-attention width {qd} is not divisible by {num_heads} heads")
        self.num_heads, self.head_dim = num_heads, qd // num_heads
        self.norm_q, self.norm_kv = layer_norm(qd), layer_norm(kd)
        self.q, self.k, self.v, self.o = nn.Linear(qd, qd), nn.Linear(kd, qd), nn.Linear(kd, qd), nn.Linear(qd, qd)
        self.gamma = nn.Parameter(torch.zeros(qd))

    def forward(self, xv: torch.Tensor, xa: torch.Tensor,
                ctx: Optional[FusionContext] = None) -> tuple[torch.Tensor, torch.Tensor]:
        ctx = ctx or FusionContext()
        xq, xk, kmask = (xv, xa, ctx.mask_a) if self.direction == "a2v" else (xa, xv, ctx.mask_v)
        B, N, C = xq.shape
        h = lambda t: t.view(B, t.shape[1], self.num_heads, self.head_dim).transpose(1, 2)  # noqa: E731
        hk = self.norm_kv(xk)
        out = F.scaled_dot_product_attention(h(self.q(self.norm_q(xq))), h(self.k(hk)), h(self.v(hk)),
                                             attn_mask=key_padding_bias(kmask, xq.dtype))
        upd = xq + self.gamma * self.o(out.transpose(1, 2).reshape(B, N, C))
        return (upd, xa) if self.direction == "a2v" else (xv, upd)


@register_fusion("a2v")
def _a2v(video_dim: int, audio_dim: int, num_heads: int, **opts: object) -> nn.Module:
    return UniCrossAttentionFusion(video_dim, audio_dim, num_heads, direction="a2v")


@register_fusion("v2a")
def _v2a(video_dim: int, audio_dim: int, num_heads: int, **opts: object) -> nn.Module:
    return UniCrossAttentionFusion(video_dim, audio_dim, num_heads, direction="v2a")


# ------------------------------------------------------------------------- additive / none


class AdditiveFusion(nn.Module):
    """Each stream adds a zero-gated linear projection of the other stream's (masked) mean token."""

    def __init__(self, video_dim: int, audio_dim: int, num_heads: int = 1) -> None:
        super().__init__()
        self.v_norm, self.a_norm = layer_norm(video_dim), layer_norm(audio_dim)
        self.a_to_v, self.v_to_a = nn.Linear(audio_dim, video_dim), nn.Linear(video_dim, audio_dim)
        self.gamma_v, self.gamma_a = nn.Parameter(torch.zeros(video_dim)), nn.Parameter(torch.zeros(audio_dim))

    @staticmethod
    def _mean(x: torch.Tensor, mask: Optional[torch.Tensor]) -> torch.Tensor:
        if mask is None:
            return x.mean(1)
        m = mask.to(x.dtype).unsqueeze(-1)
        return (x * m).sum(1) / m.sum(1).clamp_min(1.0)

    def forward(self, xv: torch.Tensor, xa: torch.Tensor,
                ctx: Optional[FusionContext] = None) -> tuple[torch.Tensor, torch.Tensor]:
        ctx = ctx or FusionContext()
        pv = self._mean(self.v_norm(xv), ctx.mask_v)     # (B, Cv)
        pa = self._mean(self.a_norm(xa), ctx.mask_a)     # (B, Ca)
        return xv + self.gamma_v * self.a_to_v(pa)[:, None], xa + self.gamma_a * self.v_to_a(pv)[:, None]


@register_fusion("additive")
def _additive(video_dim: int, audio_dim: int, num_heads: int, **opts: object) -> nn.Module:
    return AdditiveFusion(video_dim, audio_dim, num_heads)


class NoFusion(nn.Module):
    """The streams do not interact (independent towers / ablation)."""

    def forward(self, xv: torch.Tensor, xa: torch.Tensor,
                ctx: Optional[FusionContext] = None) -> tuple[torch.Tensor, torch.Tensor]:
        return xv, xa


@register_fusion("none")
def _none(video_dim: int, audio_dim: int, num_heads: int, **opts: object) -> nn.Module:
    return NoFusion()


# The bridge fusions of reference generators II live in their own module (which never imports this
# one); they are registered here so FUSIONS is complete on first use.
from .bridges import make_dca, make_frame_local_ca, make_rs_mma  # noqa: E402

register_fusion("dca")(make_dca)
register_fusion("rs_mma")(make_rs_mma)
register_fusion("frame_local_ca")(make_frame_local_ca)
