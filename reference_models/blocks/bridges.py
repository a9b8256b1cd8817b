"""Bridge fusions registered in :data:`reference_models.blocks.fusion.FUSIONS`: ``dca``, ``rs_mma``,
``frame_local_ca`` (spec §1.3, §1.5, §1.6, §2.4).

The factories (:func:`make_dca`, :func:`make_rs_mma`, :func:`make_frame_local_ca`) are registered by
``fusion.py`` under the names below.

* ``dca`` — BridgeDiT's bridge block (guankaisi/BridgeDiT ``bridgedit/models/dit/dit_dual_stream_clean.py``),
  with the original's module and parameter names so a golden-fill / released state dict loads as is:

  ``CrossDiTBlockAdaLN`` (``flag`` = ``bicross`` | ``a2v`` | ``v2a``): per stream an adaLN
  modulation ``adaln_modulation_{1,2}`` (SiLU → Linear to 6 vectors: shift/scale/gate for attention
  and for the MLP) from the stream's own timestep embedding; LayerNorm without affine (eps 1e-6);
  ``attn`` = :class:`CrossAttention` with per-stream ``q_proj_i, k_proj_i, v_proj_i, o_proj_i`` (QK
  width ``num_qk_channels``, default min(C1, C2)); RoPE rotates each stream's q and k with that
  stream's own positions; ``bicross`` runs A→V (video queries, audio keys) and V→A in parallel from
  the pre-update features; ``a2v`` replaces V→A by audio self-attention, ``v2a`` replaces A→V by
  video self-attention; gated residuals; then per stream adaLN → MLP (``mlp_i.fc1/fc2``, ratio 4,
  tanh-GELU) → gated residual.

  ``flag="full_attn"`` is the original's ``FullDiTBlockAdaLN`` (one softmax over both streams'
  concatenated tokens, per-stream projections); ``flag="add"`` its ``AddFusionDiTBlockAdaLN``
  (gated projection of the other stream's mean token, then the MLP; no attention).  Quirk of the
  original ``FullAttention`` kept as an option: q is multiplied by 1/√d *and* the flash kernel
  applies its default 1/√d again (``full_attn_scale="original"``: softmax(q·kᵀ/d));
  ``"fixed"`` uses 1/√d once.

  Initialisation (``init``): ``"identity"`` is the training code's ``init_weight`` (Xavier q/k/v,
  zero o-projections and zero ``mlp.fc2``); ``"zero_adaln"`` the inference wrapper's (zero adaLN
  modulation, hence zero gates); either way each bridge starts as the identity.

* ``rs_mma`` — MM-Diffusion's random-shift windowed cross-modal attention on token grids: video
  tokens frame-major ``(B, T·S, C)``, audio tokens time-major ``(B, R·M, C)``; video frame ``f``
  attends to the audio of segments ``f+s … f+s+w−1`` and audio segment ``f`` to the video frames
  ``f+s … f+s+w−1`` (wrapping), one random shift ``s ∈ [0, T−w]`` per call (training and sampling,
  as the original).  :func:`rs_mma_attention` is the core MM-Diffusion's U-Net uses too.

* ``frame_local_ca`` — UniVerse-1's frame-local audio injection ("FrameAttn"): the video tokens of
  latent frame ``f`` attend to audio chunk ``f`` only (audio split into ``T`` equal chunks), extra
  k/v projections with their own norm; the result is added to the video stream (audio unchanged).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Literal, Optional

import torch
from torch import nn

from .attention import Mlp, layer_norm
from .rope import apply_rope

if TYPE_CHECKING:   # fusion.py imports this module to register its factories (no import cycle)
    from .fusion import FusionContext

__all__ = [
    "CrossAttention", "FullAttention", "CrossDiTBlockAdaLN", "RSMMABridge", "FrameLocalCrossAttention",
    "rs_mma_attention", "rs_mma_windows", "attend", "make_dca", "make_rs_mma", "make_frame_local_ca",
]

DCAFlag = Literal["bicross", "a2v", "v2a", "full_attn", "add"]


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: Optional[float] = None) -> torch.Tensor:
    """softmax(q·kᵀ·scale)·v over the last two axes (any leading axes); scale 1/√d by default.

    Written out (matmul + softmax): on CPU, with many small batched windows, the fused kernel falls
    back to a slower masked path.
    """
    w = torch.matmul(q, k.transpose(-1, -2)) * (q.shape[-1] ** -0.5 if scale is None else scale)
    return torch.matmul(w.softmax(dim=-1), v)


# =============================================================================================
# BridgeDiT: Dual Cross-Attention (and the original's full-attention / additive variants)
# =============================================================================================
def _modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


class _TwoStreamProjections(nn.Module):
    """Per-stream q/k/v/o projections with the original's names (``q_proj_1`` … ``o_proj_2``)."""

    def __init__(self, num_heads: int, c1: int, c2: int, qk: Optional[int], vc: Optional[int]) -> None:
        super().__init__()
        qk = int(qk if qk is not None else min(c1, c2))
        vc = int(vc if vc is not None else qk)
        if qk % num_heads or vc % num_heads:
            raise ValueError(f"bridge widths qk={qk}, v={vc} must be divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.head_dim = qk // num_heads
        self.dp_scale = self.head_dim ** -0.5
        self.q_proj_1, self.k_proj_1 = nn.Linear(c1, qk), nn.Linear(c1, qk)
        self.v_proj_1, self.o_proj_1 = nn.Linear(c1, vc), nn.Linear(vc, c1)
        self.q_proj_2, self.k_proj_2 = nn.Linear(c2, qk), nn.Linear(c2, qk)
        self.v_proj_2, self.o_proj_2 = nn.Linear(c2, vc), nn.Linear(vc, c2)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        return x.view(b, n, self.num_heads, c // self.num_heads).transpose(1, 2)     # (B, h, N, d)

    def _merge(self, x: torch.Tensor) -> torch.Tensor:
        b, h, n, d = x.shape
        return x.transpose(1, 2).reshape(b, n, h * d)

    def project(self, x1: torch.Tensor, x2: torch.Tensor, angles_1: Optional[torch.Tensor],
                angles_2: Optional[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        q1, k1, v1 = (self._heads(p(x1)) for p in (self.q_proj_1, self.k_proj_1, self.v_proj_1))
        q2, k2, v2 = (self._heads(p(x2)) for p in (self.q_proj_2, self.k_proj_2, self.v_proj_2))
        if angles_1 is not None:
            q1, k1 = apply_rope(q1, angles_1), apply_rope(k1, angles_1)
        if angles_2 is not None:
            q2, k2 = apply_rope(q2, angles_2), apply_rope(k2, angles_2)
        return q1, k1, v1, q2, k2, v2

    def init_identity(self) -> None:
        """The training code's init: Xavier q/k/v, zero o-projections, zero biases."""
        for lin in (self.q_proj_1, self.k_proj_1, self.v_proj_1, self.q_proj_2, self.k_proj_2, self.v_proj_2):
            nn.init.xavier_uniform_(lin.weight)
            nn.init.zeros_(lin.bias)
        for lin in (self.o_proj_1, self.o_proj_2):
            nn.init.zeros_(lin.weight)
            nn.init.zeros_(lin.bias)


class CrossAttention(_TwoStreamProjections):
    """BridgeDiT's two-stream cross-attention: stream 1 (video) ↔ stream 2 (audio).

    ``flag="bicross"``: o1 = Attn(q1, k2, v2), o2 = Attn(q2, k1, v1); ``"a2v"``: o2 becomes audio
    self-attention; ``"v2a"``: o1 becomes video self-attention.  Softmax scale 1/√d.
    """

    def __init__(self, num_heads: int, num_input_channels_1: int, num_input_channels_2: int,
                 num_qk_channels: Optional[int] = None, num_v_channels: Optional[int] = None,
                 flag: Literal["bicross", "a2v", "v2a"] = "bicross") -> None:
        super().__init__(num_heads, num_input_channels_1, num_input_channels_2, num_qk_channels, num_v_channels)
        if flag not in ("bicross", "a2v", "v2a"):
            raise ValueError(f"CrossAttention flag {flag!r} unknown; expected bicross, a2v or v2a")
        self.flag = flag

    def forward(self, x_1: torch.Tensor, x_2: torch.Tensor, angles_1: Optional[torch.Tensor] = None,
                angles_2: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, torch.Tensor]:
        """x_1 ``(B, N1, C1)``, x_2 ``(B, N2, C2)`` -> ``(B, N1, C1)``, ``(B, N2, C2)``."""
        q1, k1, v1, q2, k2, v2 = self.project(x_1, x_2, angles_1, angles_2)
        o1 = attend(q1, k2, v2) if self.flag in ("a2v", "bicross") else attend(q1, k1, v1)
        o2 = attend(q2, k1, v1) if self.flag in ("v2a", "bicross") else attend(q2, k2, v2)
        return self.o_proj_1(self._merge(o1)), self.o_proj_2(self._merge(o2))


class FullAttention(_TwoStreamProjections):
    """BridgeDiT's full (joint) attention: one softmax over the concatenated streams, per-stream
    projections.  ``scale="original"`` reproduces the released double scaling (q·1/√d, then the
    kernel's default 1/√d: overall 1/d); ``"fixed"`` scales once."""

    def __init__(self, num_heads: int, num_input_channels_1: int, num_input_channels_2: int,
                 num_qk_channels: Optional[int] = None, num_v_channels: Optional[int] = None,
                 scale: Literal["original", "fixed"] = "original") -> None:
        super().__init__(num_heads, num_input_channels_1, num_input_channels_2, num_qk_channels, num_v_channels)
        if scale not in ("original", "fixed"):
            raise ValueError(f"FullAttention scale {scale!r} unknown; expected 'original' or 'fixed'")
        self.scale_mode = scale

    def forward(self, x_1: torch.Tensor, x_2: torch.Tensor, angles_1: Optional[torch.Tensor] = None,
                angles_2: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, torch.Tensor]:
        q1, k1, v1, q2, k2, v2 = self.project(x_1, x_2, angles_1, angles_2)
        n1 = q1.shape[2]
        scale = self.dp_scale * (self.dp_scale if self.scale_mode == "original" else 1.0)
        o = attend(torch.cat([q1, q2], 2), torch.cat([k1, k2], 2), torch.cat([v1, v2], 2), scale)
        return self.o_proj_1(self._merge(o[:, :, :n1])), self.o_proj_2(self._merge(o[:, :, n1:]))


class CrossDiTBlockAdaLN(nn.Module):
    """BridgeDiT's bridge block (DCA for ``flag`` bicross/a2v/v2a; the original's full-attention and
    additive blocks for ``full_attn`` / ``add``).

    Forward: ``sample_1 (B, N1, C1)``, ``sample_2 (B, N2, C2)``, ``emb_1 (B, E1)``, ``emb_2 (B, E2)``,
    per-stream RoPE angles ``(N_i, d/2)`` or None -> updated samples.
    """

    def __init__(self, num_input_channels_1: int, num_input_channels_2: int, num_qk_channels: Optional[int] = None,
                 num_v_channels: Optional[int] = None, num_heads: int = 4, t_emb_dim_1: Optional[int] = None,
                 t_emb_dim_2: Optional[int] = None, flag: DCAFlag = "bicross", mlp_ratio: float = 4.0,
                 full_attn_scale: Literal["original", "fixed"] = "original",
                 init: Literal["identity", "zero_adaln", "none"] = "identity") -> None:
        super().__init__()
        c1, c2 = num_input_channels_1, num_input_channels_2
        e1, e2 = t_emb_dim_1 or c1, t_emb_dim_2 or c2
        self.flag = flag
        n_mod = 4 if flag == "add" else 6
        if flag == "add":
            self.video_to_audio_proj = nn.Linear(c1, c2)
            self.audio_to_video_proj = nn.Linear(c2, c1)
        else:
            self.norm_attn_1 = layer_norm(c1)
            self.norm_attn_2 = layer_norm(c2)
            if flag == "full_attn":
                self.attn: nn.Module = FullAttention(num_heads, c1, c2, num_qk_channels, num_v_channels, full_attn_scale)
            elif flag in ("bicross", "a2v", "v2a"):
                self.attn = CrossAttention(num_heads, c1, c2, num_qk_channels, num_v_channels, flag)
            else:
                raise ValueError(f"dca flag {flag!r} unknown; expected bicross, a2v, v2a, full_attn or add")
        self.norm_mlp_1 = layer_norm(c1)
        self.norm_mlp_2 = layer_norm(c2)
        self.mlp_1 = Mlp(c1, int(c1 * mlp_ratio))
        self.mlp_2 = Mlp(c2, int(c2 * mlp_ratio))
        self.adaln_modulation_1 = nn.Sequential(nn.SiLU(), nn.Linear(e1, n_mod * c1))
        self.adaln_modulation_2 = nn.Sequential(nn.SiLU(), nn.Linear(e2, n_mod * c2))
        if init not in ("identity", "zero_adaln", "none"):
            raise ValueError(f"bridge init {init!r} unknown; expected identity, zero_adaln or none")
        if init == "identity" and not any(p.is_meta for p in self.parameters()):
            if flag != "add":
                self.attn.init_identity()  # type: ignore[operator]
            for mlp in (self.mlp_1, self.mlp_2):
                nn.init.zeros_(mlp.fc2.weight)
                nn.init.zeros_(mlp.fc2.bias)
        elif init == "zero_adaln" and not any(p.is_meta for p in self.parameters()):
            for mod in (self.adaln_modulation_1[1], self.adaln_modulation_2[1]):   # gates 0: identity
                nn.init.zeros_(mod.weight)
                nn.init.zeros_(mod.bias)

    def forward(self, sample_1: torch.Tensor, sample_2: torch.Tensor, emb_1: torch.Tensor, emb_2: torch.Tensor,
                angles_1: Optional[torch.Tensor] = None,
                angles_2: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, torch.Tensor]:
        if self.flag == "add":
            g1, sh1, sc1, gm1 = self.adaln_modulation_1(emb_1).chunk(4, dim=1)
            g2, sh2, sc2, gm2 = self.adaln_modulation_2(emb_2).chunk(4, dim=1)
            audio_info = self.audio_to_video_proj(sample_2.mean(dim=1))
            video_info = self.video_to_audio_proj(sample_1.mean(dim=1))
            sample_1 = sample_1 + g1.unsqueeze(1) * audio_info.unsqueeze(1)
            sample_2 = sample_2 + g2.unsqueeze(1) * video_info.unsqueeze(1)
        else:
            sh1, sc1, g1, sh1m, sc1m, gm1 = self.adaln_modulation_1(emb_1).chunk(6, dim=1)
            sh2, sc2, g2, sh2m, sc2m, gm2 = self.adaln_modulation_2(emb_2).chunk(6, dim=1)
            a1, a2 = self.attn(_modulate(self.norm_attn_1(sample_1), sh1, sc1),
                               _modulate(self.norm_attn_2(sample_2), sh2, sc2), angles_1, angles_2)
            sample_1 = sample_1 + g1.unsqueeze(1) * a1
            sample_2 = sample_2 + g2.unsqueeze(1) * a2
            sh1, sc1, sh2, sc2 = sh1m, sc1m, sh2m, sc2m
        sample_1 = sample_1 + gm1.unsqueeze(1) * self.mlp_1(_modulate(self.norm_mlp_1(sample_1), sh1, sc1))
        sample_2 = sample_2 + gm2.unsqueeze(1) * self.mlp_2(_modulate(self.norm_mlp_2(sample_2), sh2, sc2))
        return sample_1, sample_2


class DCAFusion(CrossDiTBlockAdaLN):
    """:class:`CrossDiTBlockAdaLN` behind the fusion interface: timestep embeddings from
    ``ctx.t_v`` / ``ctx.t_a`` (required), RoPE angles from ``ctx.angles_v`` / ``ctx.angles_a``."""

    def forward(self, xv: torch.Tensor, xa: torch.Tensor,  # type: ignore[override]
                ctx: Optional["FusionContext"] = None) -> tuple[torch.Tensor, torch.Tensor]:
        if ctx is None or ctx.t_v is None or ctx.t_a is None:
            raise ValueError("the dca bridge is adaLN-modulated: pass FusionContext(t_v=..., t_a=...) timestep embeddings")
        return super().forward(xv, xa, ctx.t_v, ctx.t_a, ctx.angles_v, ctx.angles_a)


def make_dca(video_dim: int, audio_dim: int, num_heads: int, **opts: object) -> nn.Module:
    """Options: ``flag`` (bicross | a2v | v2a | full_attn | add), ``num_qk_channels``,
    ``num_v_channels``, ``t_emb_dim_1`` / ``t_emb_dim_2`` (default: the stream widths),
    ``mlp_ratio``, ``full_attn_scale``."""
    return DCAFusion(video_dim, audio_dim, num_heads=num_heads, **opts)  # type: ignore[arg-type]


# =============================================================================================
# RS-MMA (MM-Diffusion) on token sequences
# =============================================================================================
def rs_mma_windows(frames: int, tokens_per_frame: int, audio_len: int, window: int, shift: int,
                   device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Key indices of every RS-MMA window.

    Video frame ``f`` reads audio positions ``((f+s)·A + j) mod L`` for ``j < w·A`` (``A = L // F``);
    audio segment ``f`` reads video tokens ``((f+s)·S + j) mod (F·S)`` for ``j < w·S``.

    Returns:
        ``(audio_idx (F, w·A), video_idx (F, w·S))`` long tensors.
    """
    per = audio_len // frames
    if per < 1:
        raise ValueError(f"RS-MMA: {audio_len} audio positions for {frames} frames; need at least one per frame")
    f = torch.arange(frames, device=device)[:, None]
    audio_idx = ((f + shift) * per + torch.arange(window * per, device=device)[None]) % audio_len
    n_video = frames * tokens_per_frame
    video_idx = ((f + shift) * tokens_per_frame + torch.arange(window * tokens_per_frame, device=device)[None]) % n_video
    return audio_idx, video_idx


def rs_mma_attention(qv: torch.Tensor, kv: torch.Tensor, vv: torch.Tensor,
                     qa: torch.Tensor, ka: torch.Tensor, va: torch.Tensor,
                     frames: int, window: int, shift: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Windowed bidirectional cross-modal attention (MM-Diffusion's RS-MMA core).

    Video is frame-major ``(..., F·S, d)``; audio is time-ordered ``(..., L, d)``.  Video queries of
    frame ``f`` attend to the audio of segments ``f+s … f+s+w−1``; audio queries of segment ``f``
    (``A = L // F`` positions, the remainder joining the last segment) attend to the video tokens of
    frames ``f+s … f+s+w−1`` (indices wrap).  Softmax scale ``1/√d``.

    Returns:
        ``(out_video (..., F·S, d), out_audio (..., L, d))``.
    """
    n_video, n_audio = qv.shape[-2], qa.shape[-2]
    if n_video % frames:
        raise ValueError(f"RS-MMA: {n_video} video tokens do not split into {frames} frames")
    if not 1 <= window <= frames:
        raise ValueError(f"RS-MMA: window {window} must lie in [1, {frames}]")
    s_tok = n_video // frames
    per = n_audio // frames
    lead = qv.shape[:-2]
    d = qv.shape[-1]
    audio_idx, video_idx = rs_mma_windows(frames, s_tok, n_audio, window, shift, qv.device)
    ka_w = ka[..., audio_idx.reshape(-1), :].reshape(*lead, frames, window * per, d)
    va_w = va[..., audio_idx.reshape(-1), :].reshape(*lead, frames, window * per, d)
    out_v = attend(qv.reshape(*lead, frames, s_tok, d), ka_w, va_w).reshape(*lead, n_video, d)
    kv_w = kv[..., video_idx.reshape(-1), :].reshape(*lead, frames, window * s_tok, d)
    vv_w = vv[..., video_idx.reshape(-1), :].reshape(*lead, frames, window * s_tok, d)
    main = frames * per
    out_a = attend(qa[..., :main, :].reshape(*lead, frames, per, d), kv_w, vv_w).reshape(*lead, main, d)
    if main < n_audio:  # the remainder queries use the last segment's window
        rest = attend(qa[..., main:, :], kv_w[..., -1, :, :], vv_w[..., -1, :, :])
        out_a = torch.cat([out_a, rest], dim=-2)
    return out_v, out_a


class RSMMABridge(nn.Module):
    """RS-MMA between token streams: per-stream LayerNorm (no affine) and fused ``*_qkv`` to a shared
    inner width, :func:`rs_mma_attention` over ``ctx.grid_v[0]`` frames, zero-initialised
    ``*_proj_out`` into residuals (the U-Net block's design on tokens).

    ``window`` frames per window; ``window_shift``: draw ``s ~ U{0..T−w}`` per call from torch's RNG
    (or ``generator``), as the original draws one per block per forward.
    """

    def __init__(self, video_dim: int, audio_dim: int, num_heads: int, window: int = 1, window_shift: bool = True,
                 inner_dim: Optional[int] = None) -> None:
        super().__init__()
        inner = int(inner_dim or min(video_dim, audio_dim))
        if inner % num_heads:
            raise ValueError(f"rs_mma width {inner} is not divisible by {num_heads} heads")
        self.num_heads, self.inner, self.window, self.window_shift = num_heads, inner, int(window), bool(window_shift)
        self.v_norm, self.a_norm = layer_norm(video_dim), layer_norm(audio_dim)
        self.v_qkv, self.a_qkv = nn.Linear(video_dim, 3 * inner), nn.Linear(audio_dim, 3 * inner)
        self.video_proj_out, self.audio_proj_out = nn.Linear(inner, video_dim), nn.Linear(inner, audio_dim)
        if not any(p.is_meta for p in self.parameters()):
            for lin in (self.video_proj_out, self.audio_proj_out):
                nn.init.zeros_(lin.weight)
                nn.init.zeros_(lin.bias)
        self.generator: Optional[torch.Generator] = None

    def _split(self, x: torch.Tensor) -> list[torch.Tensor]:
        b, n, _ = x.shape
        return list(x.view(b, n, 3, self.num_heads, self.inner // self.num_heads).permute(2, 0, 3, 1, 4))

    def draw_shift(self, frames: int) -> int:
        hi = frames - self.window
        if not self.window_shift or hi <= 0:
            return 0
        return int(torch.randint(0, hi + 1, (1,), generator=self.generator).item())

    def forward(self, xv: torch.Tensor, xa: torch.Tensor, ctx: Optional["FusionContext"] = None,
                shift: Optional[int] = None) -> tuple[torch.Tensor, torch.Tensor]:
        if ctx is None or ctx.grid_v is None:
            raise ValueError("the rs_mma bridge needs the video token grid: FusionContext(grid_v=(T, S))")
        frames = int(ctx.grid_v[0])
        s = self.draw_shift(frames) if shift is None else int(shift)
        qv, kv, vv = self._split(self.v_qkv(self.v_norm(xv)))
        qa, ka, va = self._split(self.a_qkv(self.a_norm(xa)))
        ov, oa = rs_mma_attention(qv, kv, vv, qa, ka, va, frames, self.window, s)
        b = xv.shape[0]
        ov = ov.transpose(1, 2).reshape(b, -1, self.inner)
        oa = oa.transpose(1, 2).reshape(b, -1, self.inner)
        return xv + self.video_proj_out(ov), xa + self.audio_proj_out(oa)


def make_rs_mma(video_dim: int, audio_dim: int, num_heads: int, **opts: object) -> nn.Module:
    """Options: ``window`` (frames, default 1), ``window_shift`` (default True), ``inner_dim``."""
    return RSMMABridge(video_dim, audio_dim, num_heads, **opts)  # type: ignore[arg-type]


# =============================================================================================
# UniVerse-1 frame-local cross-attention
# =============================================================================================
class FrameLocalCrossAttention(nn.Module):
    """Video tokens of frame ``f`` attend to audio chunk ``f`` only; added to the video stream.

    Video: LayerNorm → ``q``; audio: its own LayerNorm → ``k``, ``v`` (extra projections, as UniVerse-1
    adds to Wan's attention); ``o`` zero-initialised.  Audio tokens are split into ``T`` equal,
    contiguous (time-major) chunks; ``R·M`` must be divisible by ``T``.
    """

    def __init__(self, video_dim: int, audio_dim: int, num_heads: int) -> None:
        super().__init__()
        if video_dim % num_heads:
            raise ValueError(f"frame_local_ca width {video_dim} is not divisible by {num_heads} heads")
        self.num_heads, self.head_dim = num_heads, video_dim // num_heads
        self.norm_q, self.norm_kv = layer_norm(video_dim), layer_norm(audio_dim)
        self.q, self.k, self.v = nn.Linear(video_dim, video_dim), nn.Linear(audio_dim, video_dim), nn.Linear(audio_dim, video_dim)
        self.o = nn.Linear(video_dim, video_dim)
        if not self.o.weight.is_meta:
            nn.init.zeros_(self.o.weight)
            nn.init.zeros_(self.o.bias)

    def forward(self, xv: torch.Tensor, xa: torch.Tensor,
                ctx: Optional["FusionContext"] = None) -> tuple[torch.Tensor, torch.Tensor]:
        if ctx is None or ctx.grid_v is None:
            raise ValueError("the frame_local_ca bridge needs the video token grid: FusionContext(grid_v=(T, S))")
        frames, s_tok = int(ctx.grid_v[0]), int(ctx.grid_v[1])
        b, nv, c = xv.shape
        na = xa.shape[1]
        if na % frames:
            raise ValueError(f"frame_local_ca: {na} audio tokens do not split into {frames} equal chunks")
        h, d = self.num_heads, self.head_dim
        q = self.q(self.norm_q(xv)).view(b, frames, s_tok, h, d).permute(0, 3, 1, 2, 4)      # (B, h, T, S, d)
        ha = self.norm_kv(xa)
        k = self.k(ha).view(b, frames, na // frames, h, d).permute(0, 3, 1, 2, 4)             # (B, h, T, A, d)
        v = self.v(ha).view(b, frames, na // frames, h, d).permute(0, 3, 1, 2, 4)
        out = attend(q, k, v).permute(0, 2, 3, 1, 4).reshape(b, nv, c)
        return xv + self.o(out), xa


def make_frame_local_ca(video_dim: int, audio_dim: int, num_heads: int, **opts: object) -> nn.Module:
    """No options."""
    return FrameLocalCrossAttention(video_dim, audio_dim, num_heads)
