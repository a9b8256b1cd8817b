"""Rotary position embeddings shared by the reference generators.

Everything here works on *angles*: a position id times an inverse frequency, in float64. A head of
width ``d`` is rotated pair by pair, pairs taken as adjacent channels ``(x[2i], x[2i+1])`` (the
layout of OpenSora's ``rotary_embedding_torch`` and of Wan's ``view_as_complex`` RoPE).

* 1-D RoPE: :func:`rope_angles_1d` (one axis, the full head width; OpenSora's temporal RoPE).
* 3-D RoPE: :func:`band_dims_3d` splits the head into (t, h, w) bands with Wan's rule
  ``t = d − 4⌊d/6⌋, h = w = 2⌊d/6⌋``; :func:`rope_angles` rotates each band by its own coordinate
  with its own ladder ``θ_i = base^{−2i/d_band}``.
* TA-RoPE (JavisDiT++): :func:`video_position_ids`, :func:`audio_position_ids` (position types
  ``vanilla`` / ``interpolate`` / ``interleave`` / ``interleave_offset`` and the video-aligned
  time map ``code_ceil_linspace`` / ``paper_round`` / ``physical``) and
  :func:`interleave_audio_video`, the original's interleaved token order
  (``scatter_audio_to_video_by_timesteps``) with its two quirks as options.
* Seconds-based ids: :func:`seconds_position_ids` (a token's position is its time on a shared
  clock, e.g. BridgeDiT's inference wrapper or AVSyncRoPE).

Shapes: position ids ``(N, n_axes)``; angles ``(N, d/2)`` float64; rotated tensors keep their
shape and dtype.
"""
from __future__ import annotations

from typing import Literal, Sequence

import numpy as np
import torch

__all__ = [
    "TOKEN_VIDEO", "TOKEN_AUDIO", "TOKEN_SOA", "TOKEN_EOA",
    "AudioPEType", "TimeMap",
    "inv_freq", "band_dims_3d", "rope_angles", "rope_angles_1d", "apply_rope",
    "video_position_ids", "audio_time_map", "audio_position_ids", "interleave_audio_video",
    "seconds_position_ids", "wrap_angles",
]

TOKEN_VIDEO, TOKEN_AUDIO, TOKEN_SOA, TOKEN_EOA = 0, 1, 2, 3

AudioPEType = Literal["vanilla", "interpolate", "interleave", "interleave_offset"]
TimeMap = Literal["code_ceil_linspace", "paper_round", "physical"]


def inv_freq(dim: int, base: float = 10000.0, device: torch.device | str | None = None) -> torch.Tensor:
    """Inverse frequencies ``base^{−2i/dim}`` for ``i < dim/2``, float64, shape ``(dim/2,)``."""
    if dim <= 0 or dim % 2:
        raise ValueError(f"rope band width must be a positive even number, got {dim}")
    return 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float64, device=device) / dim))


def band_dims_3d(head_dim: int) -> tuple[int, int, int]:
    """Wan's (t, h, w) split of one head: ``(d − 4⌊d/6⌋, 2⌊d/6⌋, 2⌊d/6⌋)``.

    Example: ``band_dims_3d(128) == (44, 42, 42)``; ``band_dims_3d(24) == (8, 8, 8)``.
    """
    if head_dim % 2:
        raise ValueError(f"3-D RoPE needs an even head width, got {head_dim}")
    k = head_dim // 6
    dims = (head_dim - 4 * k, 2 * k, 2 * k)
    if min(dims) <= 0:
        raise ValueError(f"head width {head_dim} is too small for a 3-axis RoPE split")
    return dims


def rope_angles(position_ids: torch.Tensor, band_dims: Sequence[int], base: float = 10000.0) -> torch.Tensor:
    """Rotation angles of every token: ``cat_a(pos[:, a] ⊗ inv_freq(band_dims[a]))``.

    Args:
        position_ids: ``(N, n_axes)`` integer or fractional ids (one column per band).
        band_dims: width of each band; their sum is the head width.
    Returns:
        ``(N, sum(band_dims)/2)`` float64 angles (unwrapped; see :func:`wrap_angles`).
    """
    if position_ids.ndim != 2 or position_ids.shape[1] != len(band_dims):
        raise ValueError(f"position ids must be (N, {len(band_dims)}), got {tuple(position_ids.shape)}")
    pos = position_ids.to(torch.float64)
    parts = [torch.outer(pos[:, a], inv_freq(d, base, pos.device)) for a, d in enumerate(band_dims)]
    return torch.cat(parts, dim=-1)


def rope_angles_1d(n: int | torch.Tensor, head_dim: int, base: float = 10000.0,
                   device: torch.device | str | None = None) -> torch.Tensor:
    """1-D RoPE angles ``(N, head_dim/2)`` for positions ``0..n−1`` (or the given positions)."""
    pos = torch.arange(n, dtype=torch.float64, device=device) if isinstance(n, int) else n.to(torch.float64)
    return torch.outer(pos, inv_freq(head_dim, base, pos.device))


def wrap_angles(angles: torch.Tensor) -> torch.Tensor:
    """Angles folded into ``(−π, π]`` (what ``torch.angle`` of the complex rotation returns)."""
    return torch.atan2(torch.sin(angles), torch.cos(angles))


def apply_rope(x: torch.Tensor, angles: torch.Tensor, seq_dim: int = -2) -> torch.Tensor:
    """Rotate adjacent channel pairs of ``x`` by ``angles``.

    Args:
        x: ``(..., N, ..., D)`` with the sequence axis at ``seq_dim`` and channels last.
        angles: ``(N, D/2)`` float64; cos/sin are taken in float64, the rotation runs in ``x``'s
            dtype (the originals rotate in float64; in float32 the difference is ~1e-7 relative).
    Returns:
        a tensor like ``x``: ``(x0 + i·x1)·e^{iθ}`` per pair.
    """
    d = x.shape[-1]
    if angles.shape[-1] * 2 != d:
        raise ValueError(f"rope angles cover {angles.shape[-1] * 2} channels, tensor has {d}")
    seq_dim = seq_dim % x.ndim
    if angles.shape[0] != x.shape[seq_dim]:
        raise ValueError(f"rope angles for {angles.shape[0]} positions, tensor has {x.shape[seq_dim]}")
    view = [1] * x.ndim
    view[seq_dim] = angles.shape[0]
    view[-1] = d // 2
    cos = torch.cos(angles).to(x.dtype).view(view)
    sin = torch.sin(angles).to(x.dtype).view(view)
    xp = x.unflatten(-1, (d // 2, 2))
    x0, x1 = xp[..., 0], xp[..., 1]
    return torch.stack((x0 * cos - x1 * sin, x0 * sin + x1 * cos), dim=-1).flatten(-2)


# ---------------------------------------------------------------- TA-RoPE (JavisDiT++) position ids


def video_position_ids(T: int, H: int, W: int, device: torch.device | str | None = None) -> torch.Tensor:
    """``(T·H·W, 3)`` ids ``(t, h, w)`` in row-major (t, h, w) token order."""
    t, h, w = torch.meshgrid(torch.arange(T, device=device), torch.arange(H, device=device),
                             torch.arange(W, device=device), indexing="ij")
    return torch.stack([t, h, w], dim=-1).reshape(-1, 3)


def audio_time_map(Ta: int, Tv: int, rule: TimeMap = "code_ceil_linspace",
                   audio_step_s: float | None = None, video_step_s: float | None = None,
                   device: torch.device | str | None = None) -> torch.Tensor:
    """Video-frame index τ(k) given to audio step k (int64, shape ``(Ta,)``).

    * ``code_ceil_linspace`` (the released code): ``ceil(linspace(0, Tv−1, Ta))`` in float64;
    * ``paper_round`` (the paper): ``round(k·Tv/Ta)`` (half to even), clamped to ``Tv−1`` —
      unclamped it reaches ``Tv`` for the last steps;
    * ``physical``: the frame that holds the step's centre time,
      ``floor((k + ½)·audio_step_s / video_step_s)``, clamped to ``Tv−1``.
    """
    if rule == "code_ceil_linspace":
        return torch.ceil(torch.linspace(0, Tv - 1, Ta, dtype=torch.float64, device=device)).long()
    if rule == "paper_round":
        k = torch.arange(Ta, dtype=torch.float64, device=device)
        return torch.round(k * Tv / Ta).long().clamp(max=Tv - 1)
    if rule == "physical":
        if audio_step_s is None or video_step_s is None:
            raise ValueError("time map 'physical' needs audio_step_s and video_step_s")
        k = torch.arange(Ta, dtype=torch.float64, device=device)
        return torch.floor((k + 0.5) * audio_step_s / video_step_s).long().clamp(max=Tv - 1)
    raise ValueError(f"unknown TA-RoPE time map {rule!r}; expected code_ceil_linspace, paper_round or physical")


def audio_position_ids(Ta: int, M: int, Tv: int, H: int, W: int, pe_type: AudioPEType = "interleave_offset",
                       time_map: TimeMap = "code_ceil_linspace", audio_step_s: float | None = None,
                       video_step_s: float | None = None,
                       device: torch.device | str | None = None) -> torch.Tensor:
    """``(Ta·M, 3)`` float64 ids of audio tokens in (step, bin) order.

    * ``vanilla``: ``(k, k, m)``;
    * ``interpolate``: ``(k·(Tv−1)/(Ta−1), same, m)`` (fractional);
    * ``interleave``: ``(τ(k), k, m)``;
    * ``interleave_offset`` (JavisDiT++ default): ``(τ(k), k + H, m + W)`` — no audio id can equal a
      video id on axes 1 and 2.

    ``time_map`` picks τ (see :func:`audio_time_map`); it only matters for the interleave types.
    """
    k = torch.arange(Ta, dtype=torch.float64, device=device)
    m = torch.arange(M, dtype=torch.float64, device=device)
    if pe_type == "vanilla":
        a0, a1, a2 = k, k, m
    elif pe_type == "interpolate":
        a0 = torch.linspace(0, Tv - 1, Ta, dtype=torch.float64, device=device)
        a1, a2 = a0, m
    elif pe_type in ("interleave", "interleave_offset"):
        a0 = audio_time_map(Ta, Tv, time_map, audio_step_s, video_step_s, device).to(torch.float64)
        off_h, off_w = (H, W) if pe_type == "interleave_offset" else (0, 0)
        a1, a2 = k + off_h, m + off_w
    else:
        raise ValueError(f"unknown audio position type {pe_type!r}; expected vanilla, interpolate, "
                         "interleave or interleave_offset")
    return torch.stack([a0[:, None].expand(Ta, M), a1[:, None].expand(Ta, M),
                        a2[None, :].expand(Ta, M)], dim=-1).reshape(-1, 3)


def interleave_audio_video(Tv: int, H: int, W: int, Ta: int, M: int, audio_step_ms: float,
                           video_step_ms: float, pe_type: AudioPEType = "interleave_offset",
                           time_map: TimeMap = "code_ceil_linspace", special_tokens: bool = False,
                           special_token_path: Literal["original", "fixed"] = "original",
                           overflow: Literal["raise", "trim"] = "raise",
                           device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """JavisDiT++'s interleaved token order and its 3-axis position ids.

    Frame ``f``'s ``H·W`` video tokens come first, then every not yet placed audio step whose
    timestamp ``k·audio_step/video_step`` (in frame units, ``numpy.linspace`` as the original)
    is ``≤ f + 1``, each step's ``M`` bins in order.

    Args:
        special_tokens: put a start-/end-of-audio token around each frame's audio run.
        special_token_path: ``"original"`` reproduces the released code, where this path raises
            ``TypeError`` (``list.extend`` of an int); ``"fixed"`` inserts the tokens with ids
            ``(i, i, 0)`` and ``(i, i, 1)`` for the i-th audio window, as the code intends.
        overflow: audio steps whose timestamp lies past the last frame get no slot; ``"raise"``
            reproduces the original's failure (a shape mismatch there; a clear error here),
            ``"trim"`` drops them.
    Returns:
        ``token_types (L,)`` int64 (``TOKEN_VIDEO``/``TOKEN_AUDIO``/``TOKEN_SOA``/``TOKEN_EOA``) and
        ``position_ids (L, 3)`` float64.
    """
    if special_tokens and special_token_path == "original":
        raise TypeError("audio_special_token=True fails in the original code ('int' object is not "
                        "iterable in list.extend); use special_token_path='fixed' for a working variant")
    stamps = np.linspace(0, (Ta - 1) * audio_step_ms / video_step_ms, Ta)
    types: list[int] = []
    ptr = 0
    windows = 0
    for f in range(Tv):
        types.extend([TOKEN_VIDEO] * (H * W))
        if ptr >= Ta:
            continue
        windows += 1
        if special_tokens:
            types.append(TOKEN_SOA)
        while ptr < Ta and stamps[ptr] <= f + 1:
            types.extend([TOKEN_AUDIO] * M)
            ptr += 1
        if special_tokens:
            types.append(TOKEN_EOA)
    if ptr < Ta and overflow == "raise":
        raise ValueError(f"{Ta - ptr} of {Ta} audio steps lie past the last of {Tv} video frames and get no slot "
                         "(the original fails with a shape mismatch); trim the audio or pass overflow='trim'")
    token_types = torch.tensor(types, dtype=torch.long, device=device)
    vid = video_position_ids(Tv, H, W, device).to(torch.float64)
    aud = audio_position_ids(Ta, M, Tv, H, W, pe_type, time_map, audio_step_ms / 1000.0,
                             video_step_ms / 1000.0, device)[: ptr * M]
    pos = torch.zeros((len(types), 3), dtype=torch.float64, device=device)
    pos[token_types == TOKEN_VIDEO] = vid
    pos[token_types == TOKEN_AUDIO] = aud
    if special_tokens:
        i = torch.arange(windows, dtype=torch.float64, device=device)
        pos[token_types == TOKEN_SOA] = torch.stack([i, i, torch.zeros_like(i)], -1)
        pos[token_types == TOKEN_EOA] = torch.stack([i, i, torch.ones_like(i)], -1)
    return token_types, pos


def seconds_position_ids(num_steps: int, step_s: float, tokens_per_step: int = 1, rate: float = 1.0,
                         device: torch.device | str | None = None) -> torch.Tensor:
    """1-D ids on a shared clock: step ``k``'s tokens all get ``k·step_s·rate`` (float64, ``(num_steps·tokens_per_step,)``).

    Example: video frames at 4 Hz and audio tokens at 8 Hz with ``rate=4`` give ids in video-frame
    units (0, 1, 2, … and 0, 0.5, 1, …), so cross-modal phases line up in seconds.
    """
    t = torch.arange(num_steps, dtype=torch.float64, device=device) * (step_s * rate)
    return t.repeat_interleave(tokens_per_step)
