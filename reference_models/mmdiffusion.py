"""MM-Diffusion: coupled video/audio U-Nets with random-shift multimodal attention (spec §1.5).

A re-implementation of researchmm/MM-Diffusion's ``mm_diffusion/multimodal_unet.py`` (the
``MultimodalUNet``), its DDPM training objective and its samplers, written for the suite.  Module and
parameter names follow the original, so an original checkpoint (or the golden fill) loads into
:class:`MultimodalUNet` with ``load_state_dict`` unchanged: ``input_blocks.3.1.v_qkv.weight``,
``…video_in_layers.0.GroupNorm.weight``; the generator :class:`MMDiffusion` holds it as ``unet``
(checkpoint keys ``unet.<original key>``; the ``paper`` preset has the original's 1046 keys).

Data path (shapes for the ``tiny`` preset, B = batch)::

    video (B,32,3,32,32) in [-1,1] --pixel-unshuffle x2--> (B,32,12,16,16)   (front end, no params)
    audio (B,64000)      in [-1,1] --space-to-depth x16--> (B,16,4000)
    coupled U-Net (video 2-D+1-D convs, audio dilated 1-D convs, one shared timestep FiLM per block)
      level 0 (ds 1): video 16x16, audio 4000     ResBlock
      level 1 (ds 2): video  8x8,  audio  800     ResBlock + video ST-attention + RS-MMA(window 1)
      level 2 (ds 4): video  4x4,  audio  160     ResBlock + video ST-attention + RS-MMA(window 4)
    -> epsilon for both modalities (DDPM, linear betas, 1000 steps), same t for both.

Facts from the original code that this file keeps (``../spec`` §5):

* ``GroupNorm(32, ch)`` everywhere, so every width is a multiple of 32 (checked in the config).
* ``resblock_updown=False`` (the ``model_defaults()`` value) has no decoder upsampling in the
  original and crashes on the first skip concatenation; only ``True`` (the training script's value)
  is accepted here, with a message saying why.
* RS-MMA draws one shift ``s ~ U{0..F-w}`` per cross-attention block per forward (the original uses
  Python's global ``random``; here torch's RNG or an explicit ``shifts=`` list, so recorded draws can
  be replayed).  The original caches its window indices on first use and reuses them for other
  input sizes; here they are rebuilt for every call (identical for a fixed size).
* ResBlock self-attention uses ``num_heads`` heads while RS-MMA uses ``num_head_channels`` per head
  (the original passes ``num_head_channels=-1`` to the ResBlock attention).
* The middle cross-attention (a full-window RS-MMA between the two middle ResBlocks) exists only when
  the windows are exactly ``[1, 4, 8]``, as in the original; ``middle_cross_attention`` overrides it.
* The original's ``GroupNorm32`` decides the video layout by comparing ``x.shape[1]`` (frames) with
  the channel count; when frames == channels it normalises over the wrong axis.
  ``groupnorm_frames_quirk=True`` reproduces that; the default normalises over channels always.

Extensions (labelled, off in the faithful presets): front ends (pixel-unshuffle / space-to-depth)
that make CPU training affordable; an audio down/up stride other than 4 so that samples per video
frame stay integers; ``text_cond="pooled"`` (a pooled tiny-text embedding added to the timestep
embedding, with caption dropout for CFG).  The original is unconditional.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .blocks.attention import sinusoidal_embedding
from .blocks.bridges import attend as _attend
from .blocks.bridges import rs_mma_attention, rs_mma_windows

__all__ = [
    "MMDiffusionConfig",
    "GroupNorm32",
    "VideoConv",
    "AudioConv",
    "SingleModalAtten",
    "ResBlock",
    "CrossAttentionBlock",
    "InitialBlock",
    "MultimodalUNet",
    "rs_mma_attention",
    "rs_mma_windows",
    "dpm_solver_2m",
]


# =============================================================================================
# small helpers
# =============================================================================================
def _zero(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class GroupNorm32(nn.Module):
    """``GroupNorm(32, channels)`` on ``(N, C, ...)`` or on video ``(B, F, C, H, W)`` (stats per
    group over channels-in-group × F × H × W, as the original's rearrange to ``b c f h w``).

    The submodule is called ``GroupNorm`` so that keys read ``….GroupNorm.weight`` as in the original.
    ``frames_quirk``: when True and ``F == channels``, normalise the 5-D tensor as given (frames taken
    for channels), which is what the original does in that case.
    """

    def __init__(self, channels: int, frames_quirk: bool = False, groups: int = 32) -> None:
        super().__init__()
        if channels % groups:
            raise ValueError(f"GroupNorm32: {channels} channels is not a multiple of {groups} "
                             f"(MM-Diffusion normalises with GroupNorm({groups}, ch); choose widths that are multiples of {groups})")
        self.channel = channels
        self.frames_quirk = frames_quirk
        self.GroupNorm = nn.GroupNorm(groups, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 5 and not (self.frames_quirk and x.shape[1] == self.channel):
            return self.GroupNorm(x.transpose(1, 2).float()).transpose(1, 2).to(x.dtype)
        return self.GroupNorm(x.float()).to(x.dtype)


class VideoConv(nn.Module):
    """Convolution on video ``(B, F, C, H, W)``.

    ``conv_type="2d+1d"``: a ``k×k`` spatial Conv2d per frame then a length-``k`` temporal Conv1d per
    pixel (``video_conv_spatial``, ``video_conv_temporal``); ``"3d"``: one Conv3d (``video_conv``).
    Padding "same", stride 1.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3,
                 conv_type: Literal["2d+1d", "3d"] = "2d+1d") -> None:
        super().__init__()
        self.conv_type = conv_type
        if conv_type == "2d+1d":
            self.video_conv_spatial = nn.Conv2d(in_channels, out_channels, kernel_size, padding="same")
            self.video_conv_temporal = nn.Conv1d(out_channels, out_channels, kernel_size, padding="same")
        elif conv_type == "3d":
            self.video_conv = nn.Conv3d(in_channels, out_channels, kernel_size, padding="same")
        else:
            raise ValueError(f"VideoConv: conv_type {conv_type!r} unknown; expected '2d+1d' or '3d'")

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        b, f, c, h, w = video.shape
        if self.conv_type == "2d+1d":
            x = self.video_conv_spatial(video.reshape(b * f, c, h, w))            # (B·F, C', H, W)
            c2 = x.shape[1]
            x = x.reshape(b, f, c2, h, w).permute(0, 3, 4, 2, 1).reshape(b * h * w, c2, f)
            x = self.video_conv_temporal(x)                                        # (B·H·W, C', F)
            return x.reshape(b, h, w, c2, f).permute(0, 4, 3, 1, 2)                # (B, F, C', H, W)
        x = self.video_conv(video.transpose(1, 2))                                 # (B, C', F, H, W)
        return x.transpose(1, 2)


class AudioConv(nn.Module):
    """Conv1d on audio ``(B, C, L)`` (``audio_conv``), padding "same", optional dilation."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, dilation: int = 1) -> None:
        super().__init__()
        self.audio_conv = nn.Conv1d(in_channels, out_channels, kernel_size, padding="same", dilation=dilation)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return self.audio_conv(audio)


class SingleModalAtten(nn.Module):
    """Self-attention over the last axis of ``(N, C, T)`` with a residual (the original's
    ``SingleModalAtten``): GroupNorm → 1×1 qkv → ``heads`` heads → zero-initialised 1×1 proj."""

    def __init__(self, channels: int, num_heads: int = 1, frames_quirk: bool = False) -> None:
        super().__init__()
        if channels % num_heads:
            raise ValueError(f"SingleModalAtten: {channels} channels not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.norm = GroupNorm32(channels, frames_quirk)
        self.qkv = nn.Conv1d(channels, channels * 3, 1)
        self.proj_out = _zero(nn.Conv1d(channels, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, t = x.shape
        q, k, v = self.qkv(self.norm(x)).chunk(3, dim=1)                          # (N, C, T) each
        heads = self.num_heads
        q, k, v = (z.reshape(n, heads, c // heads, t).transpose(-1, -2) for z in (q, k, v))
        h = _attend(q, k, v).transpose(-1, -2).reshape(n, c, t)
        return x + self.proj_out(h)


# =============================================================================================
# RS-MMA: random-shift windowed cross-modal attention (core in blocks.bridges)
# =============================================================================================
class CrossAttentionBlock(nn.Module):
    """RS-MMA block between a video map ``(B, F, C, h, w)`` and audio ``(B, C, L)``.

    Per modality GroupNorm and 1×1 qkv; windowed attention (:func:`rs_mma_attention`) with
    ``channels // num_head_channels`` heads (or ``num_heads`` when ``num_head_channels == -1``);
    zero-initialised 1×1 output projections into residuals.  ``window_shift``: draw a random shift per
    forward; otherwise the shift is 0.
    """

    def __init__(self, channels: int, num_heads: int = 1, num_head_channels: int = -1, local_window: int = 1,
                 window_shift: bool = False, frames_quirk: bool = False) -> None:
        super().__init__()
        if num_head_channels == -1:
            self.num_heads = num_heads
        else:
            if channels % num_head_channels:
                raise ValueError(f"CrossAttentionBlock: {channels} channels not divisible by head width {num_head_channels}")
            self.num_heads = channels // num_head_channels
        self.local_window = local_window
        self.window_shift = window_shift
        self.v_norm = GroupNorm32(channels, frames_quirk)
        self.a_norm = GroupNorm32(channels, frames_quirk)
        self.v_qkv = nn.Conv1d(channels, channels * 3, 1)
        self.a_qkv = nn.Conv1d(channels, channels * 3, 1)
        self.video_proj_out = _zero(VideoConv(channels, channels, 1, conv_type="3d"))
        self.audio_proj_out = _zero(AudioConv(channels, channels, 1))

    def draw_shift(self, frames: int, generator: torch.Generator | None = None) -> int:
        """One shift ``s ∈ [0, F − w]`` (0 when ``window_shift`` is off)."""
        if not self.window_shift:
            return 0
        hi = frames - self.local_window
        return int(torch.randint(0, hi + 1, (1,), generator=generator).item()) if hi > 0 else 0

    def forward(self, video: torch.Tensor, audio: torch.Tensor, shift: int | None = None,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """video ``(B,F,C,h,w)``, audio ``(B,C,L)`` -> same shapes; ``shift`` replays a recorded draw."""
        b, f, c, h, w = video.shape
        n_audio = audio.shape[-1]
        if shift is None:
            shift = self.draw_shift(f, generator)
        tokens = video.permute(0, 2, 1, 3, 4).reshape(b, c, f * h * w)              # (B, C, F·h·w)
        heads = self.num_heads

        def split(qkv: torch.Tensor) -> list[torch.Tensor]:
            n = qkv.shape[-1]
            return [z.reshape(b, heads, c // heads, n).transpose(-1, -2) for z in qkv.chunk(3, dim=1)]

        qv, kv, vv = split(self.v_qkv(self.v_norm(tokens)))
        qa, ka, va = split(self.a_qkv(self.a_norm(audio)))
        ov, oa = rs_mma_attention(qv, kv, vv, qa, ka, va, f, self.local_window, int(shift))
        ov = ov.transpose(-1, -2).reshape(b, c, f, h, w).transpose(1, 2)              # (B, F, C, h, w)
        oa = oa.transpose(-1, -2).reshape(b, c, n_audio)
        return video + self.video_proj_out(ov), audio + self.audio_proj_out(oa)


# =============================================================================================
# residual blocks
# =============================================================================================
class _Resample(nn.Module):
    """Parameter-free video (×2 in h, w) and audio (×stride) down- or up-sampling."""

    def __init__(self, mode: Literal["down", "up"], modality: Literal["video", "audio"], audio_stride: int) -> None:
        super().__init__()
        self.mode, self.modality, self.stride = mode, modality, audio_stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.modality == "video":
            b, f, c, h, w = x.shape
            y = x.reshape(b * f, c, h, w)
            y = F.avg_pool2d(y, 2, 2) if self.mode == "down" else F.interpolate(y, scale_factor=2, mode="nearest")
            return y.reshape(b, f, c, *y.shape[-2:])
        if self.mode == "down":
            return F.avg_pool1d(x, self.stride, self.stride)
        return F.interpolate(x, scale_factor=self.stride, mode="nearest")


class ResBlock(nn.Module):
    """Coupled residual block: video 2-D+1-D conv path and audio dilated 1-D conv path sharing one
    timestep FiLM (scale-shift norm), optional resampling, optional video spatial+temporal
    self-attention and audio self-attention after the residual sum (the original's order)."""

    def __init__(self, channels: int, emb_channels: int, dropout: float, out_channels: int | None = None,
                 audio_dilation: int = 1, use_scale_shift_norm: bool = True, up: bool = False, down: bool = False,
                 video_attention: bool = False, audio_attention: bool = False, num_heads: int = 1,
                 audio_stride: int = 4, frames_quirk: bool = False,
                 video_type: Literal["2d+1d", "3d"] = "2d+1d") -> None:
        super().__init__()
        out = out_channels or channels
        self.out_channels = out
        self.use_scale_shift_norm = use_scale_shift_norm
        self.video_in_layers = nn.Sequential(GroupNorm32(channels, frames_quirk), nn.SiLU(),
                                             VideoConv(channels, out, 3, conv_type=video_type))
        self.audio_in_layers = nn.Sequential(GroupNorm32(channels, frames_quirk), nn.SiLU(),
                                             AudioConv(channels, out, 3, dilation=audio_dilation))
        self.updown = up or down
        if self.updown:
            mode: Literal["down", "up"] = "up" if up else "down"
            self.vh_upd = _Resample(mode, "video", audio_stride)
            self.vx_upd = _Resample(mode, "video", audio_stride)
            self.ah_upd = _Resample(mode, "audio", audio_stride)
            self.ax_upd = _Resample(mode, "audio", audio_stride)
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_channels, 2 * out if use_scale_shift_norm else out))
        self.video_out_layers = nn.Sequential(GroupNorm32(out, frames_quirk), nn.SiLU(), nn.Dropout(dropout),
                                              _zero(VideoConv(out, out, 1, conv_type="3d")))
        self.audio_out_layers = nn.Sequential(GroupNorm32(out, frames_quirk), nn.SiLU(), nn.Dropout(dropout),
                                              _zero(AudioConv(out, out, 1)))
        if out == channels:
            self.video_skip_connection: nn.Module = nn.Identity()
            self.audio_skip_connection: nn.Module = nn.Identity()
        else:
            self.video_skip_connection = VideoConv(channels, out, 1, conv_type="3d")
            self.audio_skip_connection = AudioConv(channels, out, 1)
        self.video_attention = video_attention
        self.audio_attention = audio_attention
        if video_attention:
            self.spatial_attention_block = SingleModalAtten(out, num_heads, frames_quirk)
            self.temporal_attention_block = SingleModalAtten(out, num_heads, frames_quirk)
        if audio_attention:
            self.audio_attention_block = SingleModalAtten(out, num_heads, frames_quirk)

    def forward(self, video: torch.Tensor, audio: torch.Tensor, emb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """video ``(B,F,C,H,W)``, audio ``(B,C,L)``, emb ``(B,E)``."""
        video_h = self.video_in_layers(video)
        audio_h = self.audio_in_layers(audio)
        if self.updown:
            video_h, video = self.vh_upd(video_h), self.vx_upd(video)
            audio_h, audio = self.ah_upd(audio_h), self.ax_upd(audio)
        emb_out = self.emb_layers(emb).to(video.dtype)                              # (B, 2C') or (B, C')
        if self.use_scale_shift_norm:
            scale, shift = emb_out.chunk(2, dim=1)
            video_h = self.video_out_layers[0](video_h) * (1 + scale[:, None, :, None, None]) + shift[:, None, :, None, None]
            video_h = self.video_out_layers[1:](video_h)
            audio_h = self.audio_out_layers[0](audio_h) * (1 + scale[..., None]) + shift[..., None]
            audio_h = self.audio_out_layers[1:](audio_h)
        else:
            video_h = self.video_out_layers(video_h + emb_out[:, None, :, None, None])
            audio_h = self.audio_out_layers(audio_h + emb_out[..., None])
        video_out = self.video_skip_connection(video) + video_h
        audio_out = self.audio_skip_connection(audio) + audio_h
        if self.video_attention:
            b, f, c, h, w = video_out.shape
            x = video_out.reshape(b * f, c, h * w)
            x = self.spatial_attention_block(x)                                      # per frame, over h·w
            x = x.reshape(b, f, c, h, w).permute(0, 3, 4, 2, 1).reshape(b * h * w, c, f)
            x = self.temporal_attention_block(x)                                     # per pixel, over F
            video_out = x.reshape(b, h, w, c, f).permute(0, 4, 3, 1, 2)
        if self.audio_attention:
            audio_out = self.audio_attention_block(audio_out)
        return video_out, audio_out


class InitialBlock(nn.Module):
    """Input convolutions: video 3×3 2-D+1-D, audio length-3 Conv1d."""

    def __init__(self, video_in_channels: int, audio_in_channels: int, video_out_channels: int,
                 audio_out_channels: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.video_conv = VideoConv(video_in_channels, video_out_channels, kernel_size, conv_type="2d+1d")
        self.audio_conv = AudioConv(audio_in_channels, audio_out_channels, kernel_size)

    def forward(self, video: torch.Tensor, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.video_conv(video), self.audio_conv(audio)


class TimestepEmbedSequential(nn.Sequential):
    """Runs its children on ``(video, audio)``; ResBlocks also get ``emb``, RS-MMA blocks a shift."""

    def forward(self, video: torch.Tensor, audio: torch.Tensor, emb: torch.Tensor,  # type: ignore[override]
                shift_source: Callable[[CrossAttentionBlock, int], int | None] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        for layer in self:
            if isinstance(layer, ResBlock):
                video, audio = layer(video, audio, emb)
            elif isinstance(layer, CrossAttentionBlock):
                shift = shift_source(layer, video.shape[1]) if shift_source is not None else None
                video, audio = layer(video, audio, shift=shift)
            else:
                video, audio = layer(video, audio)
        return video, audio


# =============================================================================================
# the coupled U-Net
# =============================================================================================
@dataclass
class MMDiffusionConfig:
    """Constructor arguments of :class:`MultimodalUNet` (the original's names) plus the suite's
    extensions.  ``video_size`` = (frames, channels, H, W) and ``audio_size`` = (channels, length) of
    the U-Net input, i.e. after the front ends."""

    video_size: tuple[int, int, int, int] = (16, 3, 64, 64)
    audio_size: tuple[int, int] = (1, 25600)
    model_channels: int = 128
    video_out_channels: int = 3
    audio_out_channels: int = 1
    num_res_blocks: int = 2
    cross_attention_resolutions: tuple[int, ...] = (2, 4, 8)
    cross_attention_windows: tuple[int, ...] = (1, 4, 8)
    cross_attention_shift: bool = True
    video_attention_resolutions: tuple[int, ...] = (2, 4, 8)
    audio_attention_resolutions: tuple[int, ...] = (-1,)
    video_type: Literal["2d+1d", "3d"] = "2d+1d"
    dropout: float = 0.0
    channel_mult: tuple[float, ...] = (1, 2, 3, 4)
    num_heads: int = 4
    num_head_channels: int = 64
    use_scale_shift_norm: bool = True
    resblock_updown: bool = True
    # --- the suite's options ---------------------------------------------------------------
    #: audio down/up-sampling factor per level (the original: 4)
    audio_stride: int = 4
    #: None = the original rule (a middle RS-MMA only when the windows are exactly [1, 4, 8])
    middle_cross_attention: bool | None = None
    #: reproduce the original GroupNorm32's frames == channels layout confusion
    groupnorm_frames_quirk: bool = False
    #: maximum audio dilation exponent cycle (the original: 2 ** (block index % 10))
    max_dilation_exponent: int = 10

    def __post_init__(self) -> None:
        self.video_size = tuple(int(v) for v in self.video_size)  # type: ignore[assignment]
        self.audio_size = tuple(int(v) for v in self.audio_size)  # type: ignore[assignment]
        self.channel_mult = tuple(self.channel_mult)
        self.cross_attention_resolutions = tuple(int(v) for v in self.cross_attention_resolutions)
        self.cross_attention_windows = tuple(int(v) for v in self.cross_attention_windows)
        self.video_attention_resolutions = tuple(int(v) for v in self.video_attention_resolutions)
        self.audio_attention_resolutions = tuple(int(v) for v in self.audio_attention_resolutions)
        if not self.resblock_updown:
            raise ValueError("MMDiffusionConfig.resblock_updown=False: the original builds no decoder upsampling in "
                             "that mode and crashes on the first skip concatenation; use True (the training script's value)")
        if len(self.cross_attention_windows) != len(self.cross_attention_resolutions):
            raise ValueError(f"MMDiffusionConfig: {len(self.cross_attention_windows)} cross_attention_windows for "
                             f"{len(self.cross_attention_resolutions)} cross_attention_resolutions; expected one window each")
        for m in self.channel_mult:
            if int(m * self.model_channels) % 32:
                raise ValueError(f"MMDiffusionConfig: width {m}×{self.model_channels} is not a multiple of 32 "
                                 "(GroupNorm with 32 groups, as the original)")
        frames = self.video_size[0]
        for w in self.cross_attention_windows:
            if not 1 <= w <= frames:
                raise ValueError(f"MMDiffusionConfig: cross-attention window {w} must lie in [1, {frames}] frames")
        n_down = len(self.channel_mult) - 1
        h, wd = self.video_size[2], self.video_size[3]
        if h % (2 ** n_down) or wd % (2 ** n_down):
            raise ValueError(f"MMDiffusionConfig: video {h}x{wd} not divisible by 2^{n_down} (one halving per level)")
        if self.audio_size[1] % (self.audio_stride ** n_down):
            raise ValueError(f"MMDiffusionConfig: audio length {self.audio_size[1]} not divisible by "
                             f"{self.audio_stride}^{n_down} (audio_stride per level)")

    @property
    def has_middle_cross_attention(self) -> bool:
        if self.middle_cross_attention is not None:
            return bool(self.middle_cross_attention)
        return list(self.cross_attention_windows) == [1, 4, 8]


class MultimodalUNet(nn.Module):
    """The coupled U-Net (the original's ``MultimodalUNet``), same module tree and key names.

    Forward: ``video (B, F, C, H, W)``, ``audio (B, Ca, L)``, ``timesteps (B,)`` (DDPM indices) ->
    ``(video_out (B, F, video_out_channels, H, W), audio_out (B, audio_out_channels, L))``.
    ``extra_emb`` ``(B, E)`` is added to the timestep embedding (the text extension).
    """

    def __init__(self, cfg: MMDiffusionConfig) -> None:
        super().__init__()
        self.cfg = cfg
        mc = cfg.model_channels
        quirk = cfg.groupnorm_frames_quirk
        emb_dim = mc
        self.time_embed = nn.Sequential(nn.Linear(mc, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        ch = input_ch = int(cfg.channel_mult[0] * mc)
        self.input_blocks = nn.ModuleList([TimestepEmbedSequential(
            InitialBlock(cfg.video_size[1], cfg.audio_size[0], ch, ch))])
        chans = [ch]
        ds, dilation = 1, 1

        def res(cin: int, cout: int | None = None, **kw: Any) -> ResBlock:
            return ResBlock(cin, emb_dim, cfg.dropout, out_channels=cout,
                            audio_dilation=2 ** (dilation % cfg.max_dilation_exponent),
                            use_scale_shift_norm=cfg.use_scale_shift_norm, num_heads=cfg.num_heads,
                            audio_stride=cfg.audio_stride, frames_quirk=quirk, video_type=cfg.video_type, **kw)

        def cross(c: int, window: int, shift: bool) -> CrossAttentionBlock:
            return CrossAttentionBlock(c, num_heads=cfg.num_heads, num_head_channels=cfg.num_head_channels,
                                       local_window=window, window_shift=shift, frames_quirk=quirk)

        for level, mult in enumerate(cfg.channel_mult):
            for _ in range(cfg.num_res_blocks):
                out = int(mult * mc)
                layers: list[nn.Module] = [res(ch, out, video_attention=ds in cfg.video_attention_resolutions,
                                                audio_attention=ds in cfg.audio_attention_resolutions)]
                dilation += 1
                ch = out
                if ds in cfg.cross_attention_resolutions:
                    window = cfg.cross_attention_windows[cfg.cross_attention_resolutions.index(ds)]
                    layers.append(cross(ch, window, cfg.cross_attention_shift))
                self.input_blocks.append(TimestepEmbedSequential(*layers))
                chans.append(ch)
            if level != len(cfg.channel_mult) - 1:
                self.input_blocks.append(TimestepEmbedSequential(res(ch, ch, down=True)))
                dilation += 1
                chans.append(ch)
                ds *= 2
        middle: list[nn.Module] = [res(ch, video_attention=True, audio_attention=True)]
        if cfg.has_middle_cross_attention:
            middle.append(cross(ch, cfg.video_size[0], False))
        middle.append(res(ch, video_attention=True, audio_attention=True))
        self.middle_blocks = TimestepEmbedSequential(*middle)
        dilation -= 1
        self.output_blocks = nn.ModuleList([])
        for level, mult in list(enumerate(cfg.channel_mult))[::-1]:
            for block_id in range(cfg.num_res_blocks + 1):
                ich = chans.pop()
                out = int(mc * mult)
                layers = [res(ch + ich, out, video_attention=ds in cfg.video_attention_resolutions,
                              audio_attention=ds in cfg.audio_attention_resolutions)]
                dilation -= 1
                ch = out
                if ds in cfg.cross_attention_resolutions:
                    window = cfg.cross_attention_windows[cfg.cross_attention_resolutions.index(ds)]
                    layers.append(cross(ch, window, cfg.cross_attention_shift))
                if level and block_id == cfg.num_res_blocks:
                    layers.append(res(ch, ch, up=True))
                    ds //= 2
                self.output_blocks.append(TimestepEmbedSequential(*layers))
        self.audio_out = nn.Sequential(GroupNorm32(ch, quirk), nn.SiLU(),
                                       _zero(AudioConv(input_ch, cfg.audio_out_channels, 3)))
        self.video_out = nn.Sequential(GroupNorm32(ch, quirk), nn.SiLU(),
                                       _zero(VideoConv(input_ch, cfg.video_out_channels, 3, conv_type="3d")))

    def cross_attention_blocks(self) -> list[CrossAttentionBlock]:
        """The RS-MMA blocks in forward order (the order in which shifts are drawn)."""
        blocks = [m for blk in self.input_blocks for m in blk if isinstance(m, CrossAttentionBlock)]
        blocks += [m for m in self.middle_blocks if isinstance(m, CrossAttentionBlock)]
        blocks += [m for blk in self.output_blocks for m in blk if isinstance(m, CrossAttentionBlock)]
        return blocks

    def forward(self, video: torch.Tensor, audio: torch.Tensor, timesteps: torch.Tensor,
                extra_emb: torch.Tensor | None = None, shifts: Sequence[int] | None = None,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Predict the noise of both modalities.

        Args:
            video: ``(B, F, C, H, W)``; audio: ``(B, Ca, L)``; timesteps: ``(B,)``.
            extra_emb: optional ``(B, model_channels)`` added to the timestep embedding.
            shifts: one recorded RS-MMA shift per block that shifts, in forward order (see
                :meth:`cross_attention_blocks`); otherwise each shifting block draws from
                ``generator`` (torch's global RNG when None).
        Returns:
            ``(eps_video (B, F, Cout, H, W), eps_audio (B, Ca_out, L))``.
        """
        cfg = self.cfg
        if video.dim() != 5 or tuple(video.shape[1:]) != (cfg.video_size[0], cfg.video_size[1], cfg.video_size[2], cfg.video_size[3]):
            raise ValueError(f"MultimodalUNet: video of shape {tuple(video.shape)}; expected (B, {', '.join(map(str, cfg.video_size))})")
        if audio.dim() != 3 or tuple(audio.shape[1:]) != tuple(cfg.audio_size):
            raise ValueError(f"MultimodalUNet: audio of shape {tuple(audio.shape)}; expected (B, {', '.join(map(str, cfg.audio_size))})")
        emb = self.time_embed(sinusoidal_embedding(timesteps, cfg.model_channels))  # [cos | sin], as the original
        if extra_emb is not None:
            emb = emb + extra_emb
        queue = list(shifts) if shifts is not None else None

        def shift_source(block: CrossAttentionBlock, frames: int) -> int | None:
            if not block.window_shift:
                return 0
            if queue is not None:
                if not queue:
                    raise ValueError("MultimodalUNet: fewer recorded shifts than shifting RS-MMA blocks")
                return int(queue.pop(0))
            return block.draw_shift(frames, generator)

        video_hs, audio_hs = [], []
        for module in self.input_blocks:
            video, audio = module(video, audio, emb, shift_source)
            video_hs.append(video)
            audio_hs.append(audio)
        video, audio = self.middle_blocks(video, audio, emb, shift_source)
        for module in self.output_blocks:
            video = torch.cat([video, video_hs.pop()], dim=2)
            audio = torch.cat([audio, audio_hs.pop()], dim=1)
            video, audio = module(video, audio, emb, shift_source)
        if queue:
            raise ValueError(f"MultimodalUNet: {len(queue)} recorded shifts left unused")
        return self.video_out(video), self.audio_out(audio)


# =============================================================================================
# front ends (parameter-free, exact inverses)
# =============================================================================================
def video_to_unet(video: torch.Tensor, factor: int) -> torch.Tensor:
    """``(B, T, 3, H, W)`` -> ``(B, T, 3·r², H/r, W/r)`` by pixel-unshuffle (identity for r = 1)."""
    if factor == 1:
        return video
    b, t = video.shape[:2]
    x = F.pixel_unshuffle(video.flatten(0, 1), factor)
    return x.reshape(b, t, *x.shape[1:])


def video_from_unet(x: torch.Tensor, factor: int) -> torch.Tensor:
    """Inverse of :func:`video_to_unet`."""
    if factor == 1:
        return x
    b, t = x.shape[:2]
    v = F.pixel_shuffle(x.flatten(0, 1), factor)
    return v.reshape(b, t, *v.shape[1:])


def audio_to_unet(wave: torch.Tensor, fold: int) -> torch.Tensor:
    """``(B, N)`` -> ``(B, k, N/k)``: sample ``n = i·k + j`` goes to channel ``j``, position ``i``."""
    b, n = wave.shape
    return wave.reshape(b, n // fold, fold).transpose(1, 2)


def audio_from_unet(x: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`audio_to_unet`: ``(B, k, L)`` -> ``(B, k·L)``."""
    return x.transpose(1, 2).reshape(x.shape[0], -1)


# =============================================================================================
# the generator
# =============================================================================================
from .blocks.diffusion import DDPMSchedule, GuidedVelocity, ddim_sample, ddpm_sample  # noqa: E402
from .blocks.text import TinyTextEncoder  # noqa: E402
from .interface import (Batch, Capabilities, GenerationOutput, GenerationRequest, Generator,  # noqa: E402
                        derive_seed, seeded_noise)


def dpm_solver_2m(eps_fn: Callable[[Any, torch.Tensor], Any], x: Any, schedule: DDPMSchedule, num_steps: int,
                  clip_x0: float | None = None) -> Any:
    """DPM-Solver++(2M) on the discrete VP schedule (the original samples with DPM-Solver).

    Data-prediction multistep solver of the probability-flow ODE in ``λ = log(α/σ)``
    (``α = √ᾱ_t``, ``σ = √(1 − ᾱ_t)``): with ``x̂0 = (x − σ ε̂)/α`` and ``h = λ_next − λ``,
    ``x ← (σ_next/σ)·x − α_next·(e^{−h} − 1)·D``, ``D = x̂0`` on the first step and
    ``(1 + 1/2r)·x̂0 − (1/2r)·x̂0_prev`` after (``r = h_prev / h``), first order again on the step
    into t = 0 (its λ jump is large; DPM-Solver's ``lower_order_final``).  Steps follow
    ``schedule.ddim_timesteps``; the last one returns ``x̂0`` at t = 0.  NFE = ``num_steps``.
    ``x`` and ``eps_fn``'s output are tensors or dicts of tensors (same keys).
    """
    def apply(fn: Callable[..., torch.Tensor], *xs: Any) -> Any:
        if isinstance(xs[0], dict):
            return {k: fn(*(v[k] for v in xs)) for k in xs[0]}
        return fn(*xs)

    ts = schedule.ddim_timesteps(num_steps)
    first = next(iter(x.values())) if isinstance(x, dict) else x
    b, dev = first.shape[0], first.device
    x0_prev: Any = None
    h_prev = 0.0
    for i, t in enumerate(ts):
        eps = eps_fn(x, torch.full((b,), t, dtype=torch.long, device=dev))
        ab = float(schedule.alphas_cumprod[t])
        a_t, s_t = ab ** 0.5, (1 - ab) ** 0.5
        x0 = apply(lambda xi, ei: (xi - s_t * ei.to(xi.dtype)) / a_t, x, eps)
        if clip_x0 is not None:
            x0 = apply(lambda v: v.clamp(-clip_x0, clip_x0), x0)
        if i + 1 == len(ts):
            return x0
        abn = float(schedule.alphas_cumprod[ts[i + 1]])
        a_n, s_n = abn ** 0.5, (1 - abn) ** 0.5
        h = math.log(a_n / s_n) - math.log(a_t / s_t)
        if x0_prev is None or i + 2 == len(ts):       # first step, and a first-order final step
            d = x0
        else:
            r = h_prev / h
            d = apply(lambda u, v: (1 + 1 / (2 * r)) * u - (1 / (2 * r)) * v, x0, x0_prev)
        x = apply(lambda xi, di: (s_n / s_t) * xi - a_n * math.expm1(-h) * di, x, d)
        x0_prev, h_prev = x0, h
    return x


@dataclass
class MMDiffusionGenConfig:
    """Everything that rebuilds an :class:`MMDiffusion` generator.

    Clip geometry (``frames``, ``height``, ``width``, ``num_samples``, ``fps``, ``sample_rate``) and
    the front ends fix the U-Net input sizes: ``unet.video_size = (frames, 3·r², H/r, W/r)``,
    ``unet.audio_size = (k, num_samples/k)`` with ``r = video_unshuffle``, ``k = audio_fold``.
    """

    unet: MMDiffusionConfig = field(default_factory=MMDiffusionConfig)
    frames: int = 16
    height: int = 64
    width: int = 64
    fps: float = 10.0
    sample_rate: int = 16000
    num_samples: int = 25600
    video_unshuffle: int = 1
    audio_fold: int = 1
    # DDPM (the original: linear β, 1000 steps, ε-prediction, fixed-large variance)
    diffusion_steps: int = 1000
    noise_schedule: Literal["linear", "cosine"] = "linear"
    # sampling: the original samples with DDPM or DPM-Solver; DDIM-50 is the CPU default here
    # ("dpm_solver": DPM-Solver++(2M); "ddpm": ancestral over every step, unless --steps is given)
    sampler: Literal["ddim", "dpm_solver", "ddpm"] = "ddim"
    sample_steps: int = 50
    ddim_eta: float = 0.0
    clip_denoised: bool = True
    # extension (not in the original): "pooled" adds a pooled tiny-text embedding to the timestep
    text_cond: Literal["none", "pooled"] = "none"
    text_width: int = 64
    text_depth: int = 2
    caption_dropout: float = 0.1
    guidance: float = 1.0
    #: x-conditional generation: the original's zero-shot "replacement" method (the conditioned
    #: modality is replaced by q(x_t | x_0 = condition) with the sampler's own noise at every step)
    x_conditional: Literal["replacement"] = "replacement"

    def __post_init__(self) -> None:
        if isinstance(self.unet, dict):
            self.unet = MMDiffusionConfig(**self.unet)
        r, k = int(self.video_unshuffle), int(self.audio_fold)
        if r < 1 or self.height % r or self.width % r:
            raise ValueError(f"MMDiffusion: video_unshuffle {r} must divide the {self.height}x{self.width} frame")
        if k < 1 or self.num_samples % k:
            raise ValueError(f"MMDiffusion: audio_fold {k} must divide num_samples {self.num_samples}")
        if self.text_cond not in ("none", "pooled"):
            raise ValueError(f"MMDiffusion: text_cond {self.text_cond!r} unknown; expected 'none' or 'pooled'")
        if self.sampler not in ("ddim", "dpm_solver", "ddpm"):
            raise ValueError(f"MMDiffusion: sampler {self.sampler!r} unknown; expected 'ddim', 'dpm_solver' or 'ddpm'")
        u = dict(self.unet.__dict__)
        u["video_size"] = (self.frames, 3 * r * r, self.height // r, self.width // r)
        u["audio_size"] = (k, self.num_samples // k)
        u["video_out_channels"], u["audio_out_channels"] = 3 * r * r, k   # ε has the input's shape
        self.unet = MMDiffusionConfig(**u)

    @property
    def duration_s(self) -> float:
        return self.num_samples / self.sample_rate


def _tiny_unet(**kw: Any) -> dict[str, Any]:
    base = dict(model_channels=32, num_res_blocks=1, channel_mult=(1, 2, 2), cross_attention_resolutions=(2, 4),
                cross_attention_windows=(1, 4), cross_attention_shift=True, video_attention_resolutions=(2, 4),
                audio_attention_resolutions=(-1,), num_heads=1, num_head_channels=16, dropout=0.0, audio_stride=4)
    base.update(kw)
    return base


_TINY_CLIP = dict(frames=32, height=32, width=32, fps=8.0, sample_rate=16000, num_samples=64000,
                  video_unshuffle=4, audio_fold=25)


class MMDiffusion(Generator):
    """MM-Diffusion behind the generator interface (unconditional; text is a labelled extension).

    Presets: ``tiny`` (base 32, mult (1,2,2), 1 res block, RS-MMA at ds 2/4 with windows 1/4 — the
    golden-fixture U-Net — on 4 s × 8 fps × 32² and 64 000 samples through ×4 pixel-unshuffle and ×25
    space-to-depth, so samples per frame stay integers with the original ×4 audio stride: 80/20/5),
    ``tiny-matched`` (about 2 M parameters: ``tiny`` with audio self-attention at ds 2/4 and
    the pooled-text extension, so that it reads captions like the families it is compared with),
    ``tiny-text`` (``tiny`` + the pooled-text extension) and
    ``paper`` (the released training script: 16×3×64×64 video, 25 600 samples, base 128, mult
    (1,2,3,4), 2 res blocks, 64-channel heads, windows 1/4/8 at ds 2/4/8, dropout 0.1).
    """

    family = "mm-diffusion"
    presets = {
        "tiny": {**_TINY_CLIP, "unet": _tiny_unet()},
        "tiny-matched": {**_TINY_CLIP, "unet": _tiny_unet(audio_attention_resolutions=(2, 4)),
                         "text_cond": "pooled", "guidance": 3.0},
        "tiny-text": {**_TINY_CLIP, "unet": _tiny_unet(), "text_cond": "pooled", "guidance": 3.0},
        "paper": {"unet": dict(model_channels=128, num_res_blocks=2, channel_mult=(1, 2, 3, 4),
                               cross_attention_resolutions=(2, 4, 8), cross_attention_windows=(1, 4, 8),
                               cross_attention_shift=True, video_attention_resolutions=(2, 4, 8),
                               audio_attention_resolutions=(-1,), num_heads=4, num_head_channels=64, dropout=0.1),
                  "frames": 16, "height": 64, "width": 64, "fps": 10.0, "sample_rate": 16000, "num_samples": 25600},
    }
    default_preset = "tiny"
    stages = ["joint_from_scratch"]
    capabilities = Capabilities(text=False, disentangled_text=False, audio_domain="wave",
                                x_conditional=frozenset({"video", "audio"}))

    def __init__(self, preset: str = "", **options: Any) -> None:
        super().__init__(preset)
        self.cfg = MMDiffusionGenConfig(**options)
        self.unet = MultimodalUNet(self.cfg.unet)
        self.schedule = DDPMSchedule(self.cfg.diffusion_steps, self.cfg.noise_schedule, variance="fixed_large")
        if self.cfg.text_cond == "pooled":
            self.text_encoder = TinyTextEncoder(width=self.cfg.text_width, depth=self.cfg.text_depth)
            self.text_proj = nn.Linear(self.cfg.text_width, self.cfg.unet.model_channels)

    # -- helpers ----------------------------------------------------------------------------
    def _text_emb(self, captions: list[str] | None, drop: torch.Tensor | None = None) -> torch.Tensor | None:
        """Pooled caption embedding ``(B, model_channels)`` (None without the text extension);
        ``drop`` (B,) bool replaces captions by the empty (null) caption."""
        if self.cfg.text_cond == "none" or captions is None:
            return None
        caps = [("" if (drop is not None and bool(drop[i])) else c) for i, c in enumerate(captions)]
        return self.text_proj(self.text_encoder(caps).pooled)

    def encode(self, video: torch.Tensor, wave: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Clip tensors in [-1, 1] -> U-Net inputs; shape errors name the expected geometry."""
        c = self.cfg
        if video.dim() != 5 or tuple(video.shape[1:]) != (c.frames, 3, c.height, c.width):
            raise ValueError(f"{self.family}: video of shape {tuple(video.shape)}; expected (B, {c.frames}, 3, {c.height}, {c.width})")
        if wave.dim() != 2 or wave.shape[1] != c.num_samples:
            raise ValueError(f"{self.family}: audio of shape {tuple(wave.shape)}; expected (B, {c.num_samples}) "
                             f"({c.duration_s:g} s at {c.sample_rate} Hz)")
        return video_to_unet(video, c.video_unshuffle), audio_to_unet(wave, c.audio_fold)

    def decode(self, xv: torch.Tensor, xa: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """U-Net tensors -> clip tensors in [-1, 1] (no clamping)."""
        return video_from_unet(xv, self.cfg.video_unshuffle), audio_from_unet(xa)

    # -- training ---------------------------------------------------------------------------
    def training_step(self, batch: Batch, step: int) -> dict[str, torch.Tensor]:
        """DDPM ε-prediction: one t per sample for both modalities, loss = MSE_video + MSE_audio."""
        dev = self.device
        x0v, x0a = self.encode(batch["video"].to(dev), batch["wave"].to(dev))
        b = x0v.shape[0]
        t = self.schedule.sample_t(b, device=dev)
        nv, na = torch.randn_like(x0v), torch.randn_like(x0a)
        xtv, xta = self.schedule.add_noise(x0v, nv, t), self.schedule.add_noise(x0a, na, t)
        extra = None
        if self.cfg.text_cond == "pooled":
            drop = torch.rand(b) < self.cfg.caption_dropout
            extra = self._text_emb(list(batch["caption"]), drop)
        ev, ea = self.unet(xtv, xta, t, extra_emb=extra)
        loss_v = F.mse_loss(ev, nv)
        loss_a = F.mse_loss(ea, na)
        return {"loss": loss_v + loss_a, "loss_video": loss_v.detach(), "loss_audio": loss_a.detach()}

    # -- sampling ---------------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, req: GenerationRequest) -> GenerationOutput:
        """Seeded DDIM (or DDPM) sampling of both modalities; a ``condition`` of ``video`` or
        ``audio`` switches to the original's replacement-based conditional generation."""
        c = self.cfg
        if req.num_frames != c.frames or (req.height, req.width) != (c.height, c.width) \
                or req.num_samples != c.num_samples or req.sample_rate != c.sample_rate:
            raise ValueError(f"{self.name}: request asks for {req.num_frames} frames of {req.height}x{req.width} and "
                             f"{req.num_samples} samples at {req.sample_rate} Hz; this model makes {c.frames} frames of "
                             f"{c.height}x{c.width} and {c.num_samples} samples at {c.sample_rate} Hz")
        was_training = self.training
        self.eval()
        dev = self.device
        seeds = req.sample_seeds()
        b = len(req)
        uv, ua = c.unet.video_size, c.unet.audio_size
        noise = {"video": seeded_noise(tuple(uv), seeds, dev, stream="video"),
                 "audio": seeded_noise(tuple(ua), seeds, dev, stream="audio")}
        cond: dict[str, torch.Tensor] = {}
        for key, tensor in (req.condition or {}).items():
            if key == "video":
                v = tensor.to(dev, torch.float32) * 2 - 1
                cond["video"] = self.encode(v, torch.zeros(b, c.num_samples, device=dev))[0]
            elif key == "audio":
                a = tensor.to(dev, torch.float32)
                cond["audio"] = self.encode(torch.zeros(b, c.frames, 3, c.height, c.width, device=dev), a)[1]
            else:
                raise ValueError(f"{self.name}: condition {key!r} is not supported (accepted: video, audio)")
        gen = torch.Generator().manual_seed(derive_seed(0 if req.seed is None else int(req.seed), "mm-diffusion"))
        text = self._text_emb(req.prompts) if c.text_cond == "pooled" else None
        null = self._text_emb([""] * b) if c.text_cond == "pooled" else None
        w = req.guidance_for("video", c.guidance), req.guidance_for("audio", c.guidance)

        def model_fn(x: dict[str, torch.Tensor], t: torch.Tensor, extra: torch.Tensor | None) -> dict[str, torch.Tensor]:
            ev, ea = self.unet(x["video"], x["audio"], t, extra_emb=extra, generator=gen)
            return {"video": ev, "audio": ea}

        guided = GuidedVelocity(model_fn, text, null, {"video": w[0], "audio": w[1]}, mode="joint") \
            if text is not None else None

        def eps_fn(x: dict[str, torch.Tensor], t: torch.Tensor) -> dict[str, torch.Tensor]:
            x = dict(x)
            for key, x0 in cond.items():  # replacement: the known modality at the current noise level
                x[key] = self.schedule.add_noise(x0, noise[key], t)
            return guided(x, t) if guided is not None else model_fn(x, t, None)

        t0 = time.perf_counter()
        calls = {"n": 0}

        def counted(x: dict[str, torch.Tensor], t: torch.Tensor) -> dict[str, torch.Tensor]:
            calls["n"] += 1
            return eps_fn(x, t)

        clip = 1.0 if c.clip_denoised else None
        steps = int(req.num_steps or c.sample_steps)
        sampler = "ddim" if c.sampler == "ddpm" and req.num_steps is not None else c.sampler
        if sampler == "ddpm":            # the faithful ancestral sampler over all steps
            out = ddpm_sample(counted, dict(noise), self.schedule, generator=gen, clip_x0=clip)
        elif sampler == "dpm_solver":
            out = dpm_solver_2m(counted, dict(noise), self.schedule, steps, clip_x0=clip)
        else:
            out = ddim_sample(counted, dict(noise), self.schedule, steps, eta=c.ddim_eta, generator=gen, clip_x0=clip)
        for key, x0 in cond.items():
            out[key] = x0
        video, audio = self.decode(out["video"], out["audio"])
        nfe = guided.nfe if guided is not None else calls["n"]
        if was_training:
            self.train()
        return GenerationOutput(video=((video + 1) / 2).clamp(0, 1).float(), audio=audio.clamp(-1, 1).float(),
                                fps=c.fps, sample_rate=c.sample_rate,
                                extras={"nfe": nfe, "sampler": sampler,
                                        "steps": steps, "wall_s": time.perf_counter() - t0,
                                        "conditioned_on": sorted(cond)})
