"""BridgeDiT: a video tower and an audio tower joined by Dual Cross-Attention bridge blocks (spec §1.3).

Original code: guankaisi/BridgeDiT — ``bridgedit/models/dit/dit_dual_stream_clean.py`` (the bridge
blocks, in :mod:`reference_models.blocks.bridges` as the ``dca`` fusion), ``bridgedit/train_joint.py``
(``JointDiT_T2AV``: segments, objective, trainable blocks) and ``bridgedit/config/*.yaml``.  The bridge
blocks keep the original's parameter names; the container is ``dual_dit_blocks`` as there.

Layout (tiny preset, B = batch)::

    video (B,32,3,32,32) --patch (2,8,8)--> 256 tokens (16 x 4 x 4) --Wan blocks, 3-D RoPE--+
    mel   (B,256,64)     --patch (8,16)---> 128 tokens (32 x 4)     --Wan blocks, 2-D RoPE--+
       video blocks [0..1] | audio blocks [0..1]  -> bridge 0 (DCA: A→V ∥ V→A, per-stream adaLN)
       video blocks [2..3] | audio blocks [2..3]  -> bridge 1
       video blocks [4..5] | audio blocks [4..5]  -> heads
    video tower text: video_text (T_V); audio tower text: audio_text (T_A) — each its own encoder.

The towers are Wan-style blocks (the released video tower is Wan2.1-T2V-1.3B; the released audio
tower, Stable Audio Open's DiT, is represented by the same block type on mel tokens at tiny scale).

Objective (``objective="mixed"``, the training code): one t ~ U(0, 1) for both towers; video is
flow matching ``x_t = (1−t)x + tε``, target ``ε − x``; audio is v-prediction with
``α = cos(πt/2)``, ``σ = sin(πt/2)``, ``x_t = αx + σε``, target ``αε − σx``; loss = L_video + L_audio.
``objective="rf"`` uses the flow for both (for controlled fusion comparisons).  Sampling integrates
both from t = 1 to 0 on one grid: Euler for the flow, the deterministic DDIM step for the v-model.
CFG is separate per modality (video 6, audio 7 in the released config) with one null pass in
which both towers see their null caption.

Paper-vs-code options (spec §5), each defaulting to the code:

* ``trainable_tower_blocks``: ``"first"`` (config ``from_shallow: True``, ``idx < 5``) | ``"last"``
  (the paper's "last 5 blocks"); ``tower_train_num`` blocks per tower, stage ``bridge``.
* ``bridge_rope``: ``"index"`` (training code: 1-D RoPE on flattened token indices per modality) |
  ``"seconds"`` (inference wrapper: token time in seconds) | ``"none"``;
  ``bridge_rope_inference``: ``"same"`` | ``"seconds"`` (the released wrapper's train/test switch) |
  ``"index"`` | ``"none"``.
* ``cfg_video`` 6.0 (paper and config) / ``cfg_audio`` 7.0 (config only).
* ``bridge_init``: ``"identity"`` (training code: zero o-projections and MLP outputs) |
  ``"zero_adaln"`` (inference wrapper: zero adaLN modulation); both start each bridge as the identity.
* ``bridge`` (fusion ablation, any :data:`~reference_models.blocks.fusion.FUSIONS` name; ``dca`` by
  default) with ``dca_flag`` ``bicross`` (default) | ``a2v`` | ``v2a`` | ``full_attn`` | ``add`` (the
  original's ``fusion_type`` values; ``full_attn_scale`` keeps its double scaling by default).

Disentangled captions: the video tower reads ``caption_video`` / ``video_prompts`` and the audio
tower ``caption_audio`` / ``audio_prompts``; when a bench has none (missing, empty or equal to the
joint caption) the joint caption is used and a note is logged once.

Extension (off by default, used by the cascades): x-conditional training (``x_cond_prob``) where
one modality is given clean at t = 0 and only the other is learnt, so ``generate`` accepts a
``condition`` of ``video`` (v2a) or ``audio`` (a2v); ``tower_only_prob`` trains the towers alone
(bridges skipped), which is what running a tower alone (T2V / T2A) needs.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Optional

import torch
import torch.nn.functional as F
from torch import nn

from .blocks.attention import Head, sinusoidal_embedding
from .blocks.fusion import FusionContext, build_fusion
from .blocks.melwave import MelSpec
from .blocks.patch import MelPatchifier, VideoPatchifier
from .blocks.rope import band_dims_3d, inv_freq, rope_angles, seconds_position_ids, video_position_ids
from .blocks.text import TinyTextEncoder
from .interface import Batch, Capabilities, GenerationOutput, GenerationRequest, Generator, seeded_noise
from .javisdit_pp import AudioVideoAttentionBlock

__all__ = ["BridgeDiTConfig", "BridgeDiT", "WanTower", "caption_pairs"]

log = logging.getLogger(__name__)

Modality = Literal["video", "audio"]


@dataclass
class BridgeDiTConfig:
    """Every setting of the model (``config()`` records it with each checkpoint)."""

    # towers
    dim_video: int = 96
    dim_audio: int = 96
    heads_video: int = 4
    heads_audio: int = 4
    depth_video: int = 6
    depth_audio: int = 6
    ffn_ratio: float = 4.0
    freq_dim: int = 256
    qk_norm: bool = True
    cross_attn_norm: bool = True
    eps: float = 1e-6
    patch_size: tuple[int, int, int] = (2, 8, 8)
    in_dim: int = 3
    audio_patch_size: tuple[int, int] = (8, 16)
    audio_in_dim: int = 1
    video_step_ms: float = 250.0            # one video token step (patch-t frames at fps)
    audio_step_ms: float = 125.0            # one audio token step (patch-t mel hops)
    rope_base: float = 10000.0
    # bridges
    bridge: str = "dca"
    dca_flag: Literal["bicross", "a2v", "v2a", "full_attn", "add"] = "bicross"
    full_attn_scale: Literal["original", "fixed"] = "original"
    bridge_init: Literal["identity", "zero_adaln"] = "identity"
    video_bridge_points: tuple[int, ...] = (1, 3)
    audio_bridge_points: tuple[int, ...] = (1, 3)
    bridge_heads: int = 4
    bridge_qk_channels: Optional[int] = None
    bridge_rope: Literal["index", "seconds", "none"] = "index"
    bridge_rope_inference: Literal["same", "index", "seconds", "none"] = "same"
    rs_mma_window: int = 1
    # text
    text_dim: int = 96
    text_len: int = 32
    text_depth: int = 2
    text_heads: int = 4
    shared_text_encoder: bool = False
    unconditional_prob: float = 0.1
    # objective and sampling
    objective: Literal["mixed", "rf"] = "mixed"
    num_sampling_steps: int = 50
    cfg_video: float = 6.0
    cfg_audio: float = 7.0
    # stages
    trainable_tower_blocks: Literal["first", "last"] = "first"
    tower_train_num: int = 5
    # extension: x-conditional modes and tower-alone training (cascades)
    x_cond_prob: float = 0.0
    x_cond_modes: tuple[str, ...] = ("v2a", "a2v")
    tower_only_prob: float = 0.0

    def __post_init__(self) -> None:
        self.patch_size = tuple(self.patch_size)  # type: ignore[assignment]
        self.audio_patch_size = tuple(self.audio_patch_size)  # type: ignore[assignment]
        self.video_bridge_points = tuple(int(p) for p in self.video_bridge_points)
        self.audio_bridge_points = tuple(int(p) for p in self.audio_bridge_points)
        if len(self.video_bridge_points) != len(self.audio_bridge_points):
            raise ValueError(f"BridgeDiT: {len(self.video_bridge_points)} video bridge points but "
                             f"{len(self.audio_bridge_points)} audio bridge points; expected one of each per bridge")
        for name, pts, depth in (("video", self.video_bridge_points, self.depth_video),
                                 ("audio", self.audio_bridge_points, self.depth_audio)):
            if list(pts) != sorted(set(pts)) or (pts and (pts[0] < 0 or pts[-1] >= depth)):
                raise ValueError(f"BridgeDiT: {name}_bridge_points {list(pts)} must increase within [0, {depth - 1}]")
        for name, dim, heads in (("video", self.dim_video, self.heads_video), ("audio", self.dim_audio, self.heads_audio)):
            if dim % heads or (dim // heads) % 2:
                raise ValueError(f"BridgeDiT: {name} width {dim} must split into {heads} heads of even width")
        self.x_cond_modes = tuple(self.x_cond_modes)
        if not self.x_cond_modes or set(self.x_cond_modes) - {"v2a", "a2v"}:
            raise ValueError(f"x_cond_modes {list(self.x_cond_modes)} must be a non-empty subset of ['v2a', 'a2v']")
        if self.objective not in ("mixed", "rf"):
            raise ValueError(f"BridgeDiT: objective {self.objective!r} unknown; expected 'mixed' or 'rf'")
        for name, val, ok in (("bridge_rope", self.bridge_rope, ("index", "seconds", "none")),
                              ("bridge_rope_inference", self.bridge_rope_inference, ("same", "index", "seconds", "none")),
                              ("trainable_tower_blocks", self.trainable_tower_blocks, ("first", "last"))):
            if val not in ok:
                raise ValueError(f"BridgeDiT: {name} {val!r} unknown; expected one of {', '.join(ok)}")

    @property
    def num_bridges(self) -> int:
        return len(self.video_bridge_points)


# ---------------------------------------------------------------------------------------------
# one tower
# ---------------------------------------------------------------------------------------------
class WanTower(nn.Module):
    """A Wan-style single-modality DiT: patch embedding, text MLP, time embedding/projection, blocks
    (``AudioVideoAttentionBlock`` with one FFN = Wan's block), output head.

    ``kind="video"``: Conv3d patches of ``(B, T, C, H, W)``, 3-D RoPE ids ``(t, h, w)``;
    ``kind="audio"``: Conv2d patches of a mel ``(B, Tm, F)``, 2-D RoPE ids ``(step, bin)`` with the
    head split into two equal bands.
    """

    def __init__(self, kind: Modality, dim: int, heads: int, depth: int, ffn_dim: int, freq_dim: int,
                 patch: tuple[int, ...], in_dim: int, text_dim: int, qk_norm: bool, cross_attn_norm: bool,
                 eps: float, rope_base: float) -> None:
        super().__init__()
        self.kind, self.dim, self.heads, self.rope_base = kind, dim, heads, rope_base
        conv = nn.Conv3d if kind == "video" else nn.Conv2d
        self.patch_embedding = conv(in_dim, dim, kernel_size=patch, stride=patch)
        self.text_embedding = nn.Sequential(nn.Linear(text_dim, dim), nn.GELU(approximate="tanh"), nn.Linear(dim, dim))
        self.time_embedding = nn.Sequential(nn.Linear(freq_dim, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.time_projection = nn.Sequential(nn.SiLU(), nn.Linear(dim, dim * 6))
        self.blocks = nn.ModuleList([AudioVideoAttentionBlock(dim, ffn_dim, heads, qk_norm, cross_attn_norm, eps,
                                                              dual_ffn=False) for _ in range(depth)])
        self.head = Head(dim, math.prod(patch) * in_dim, eps)
        self.patchifier = (VideoPatchifier(patch, in_dim) if kind == "video"  # type: ignore[arg-type]
                           else MelPatchifier(patch, in_dim))  # type: ignore[arg-type]
        self.freq_dim = freq_dim

    def init_weights(self) -> None:
        """Wan's init: Xavier linears, Xavier patch conv, N(0, 0.02) text/time MLPs, zero head."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        nn.init.xavier_uniform_(self.patch_embedding.weight.flatten(1))
        for seq in (self.text_embedding, self.time_embedding):
            for m in seq.modules():
                if isinstance(m, nn.Linear):
                    nn.init.normal_(m.weight, std=0.02)
        nn.init.zeros_(self.head.head.weight)

    def embed(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, ...]]:
        """Input -> tokens ``(B, N, dim)`` (time-major) and the token grid."""
        if self.kind == "video":
            h = self.patch_embedding(x.transpose(1, 2))                    # (B, C, Tv, Hv, Wv)
        else:
            h = self.patch_embedding(x.unsqueeze(1) if x.ndim == 3 else x)   # (B, C, Ta, Fa)
        return h.flatten(2).transpose(1, 2), tuple(h.shape[2:])

    def time(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Flow time ``(B,)`` in [0, 1] -> ``e (B, dim)``, ``e0 (B, 6, dim)`` (Wan scales t by 1000)."""
        e = self.time_embedding(sinusoidal_embedding(t * 1000.0, self.freq_dim).to(self.head.head.weight.dtype))
        return e, self.time_projection(e).unflatten(1, (6, self.dim))

    def angles(self, grid: tuple[int, ...], device: torch.device) -> torch.Tensor:
        """Self-attention RoPE angles ``(N, head/2)``."""
        hd = self.dim // self.heads
        if self.kind == "video":
            ids = video_position_ids(*grid, device=device).double()
            return rope_angles(ids, band_dims_3d(hd), self.rope_base)
        ta, fa = grid
        k = torch.arange(ta, dtype=torch.float64, device=device)[:, None].expand(ta, fa)
        m = torch.arange(fa, dtype=torch.float64, device=device)[None, :].expand(ta, fa)
        half = hd // 2 if (hd // 2) % 2 == 0 else hd // 2 + 1
        return rope_angles(torch.stack([k, m], -1).reshape(-1, 2), (half, hd - half), self.rope_base)

    def run(self, x: torch.Tensor, e0: torch.Tensor, angles: torch.Tensor, context: torch.Tensor,
            start: int, end: int) -> torch.Tensor:
        for block in self.blocks[start:end]:
            x = block(x, e0, None, angles, context, x.shape[1])
        return x

    def out(self, x: torch.Tensor, e: torch.Tensor, grid: tuple[int, ...]) -> torch.Tensor:
        return self.patchifier.unpatchify(self.head(x, e), grid)  # type: ignore[arg-type]


def _segments(points: tuple[int, ...], depth: int) -> list[tuple[int, int]]:
    """The training code's split: blocks up to and including each bridge point, then the rest."""
    segs, last = [], -1
    for p in points:
        segs.append((last + 1, p + 1))
        last = p
    segs.append((last + 1, depth))
    return segs


def caption_pairs(joint: list[str], video: Optional[list[Optional[str]]], audio: Optional[list[Optional[str]]]
                  ) -> tuple[list[str], list[str], bool]:
    """(video captions, audio captions, fell_back): a missing/empty disentangled caption, or one
    equal to the joint caption, means the bench has none and the joint caption is used."""
    fell_back = False
    out: list[list[str]] = []
    for sub in (video, audio):
        caps = []
        for i, j in enumerate(joint):
            s = None if sub is None else sub[i]
            if not s or s == j:
                fell_back = True
                s = j
            caps.append(s)
        out.append(caps)
    return out[0], out[1], fell_back


# ---------------------------------------------------------------------------------------------
# the model
# ---------------------------------------------------------------------------------------------
class BridgeDiT(Generator):
    """BridgeDiT as a :class:`Generator` (registry name ``bridgedit``)."""

    family: ClassVar[str] = "bridgedit"
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        # spec §1.8: two towers of 6 blocks (C 96, 4 heads), 2 DCA bridges after layers [1, 3]
        "tiny": {},
        # about 2 M parameters (text encoders included), for fusion comparisons at matched size
        "tiny-matched": {"dim_video": 80, "dim_audio": 80, "text_dim": 64, "depth_video": 5, "depth_audio": 5},
    }
    stages: ClassVar[list[str]] = ["joint_from_scratch", "towers", "bridge"]
    capabilities: ClassVar[Capabilities] = Capabilities(text=True, disentangled_text=True, audio_domain="mel",
                                                        x_conditional=frozenset({"video", "audio"}))

    def __init__(self, preset: str = "", **options: Any) -> None:
        super().__init__(preset)
        cfg = self.cfg = BridgeDiTConfig(**options)
        tower = dict(freq_dim=cfg.freq_dim, text_dim=cfg.text_dim, qk_norm=cfg.qk_norm,
                     cross_attn_norm=cfg.cross_attn_norm, eps=cfg.eps, rope_base=cfg.rope_base)
        self.video_diffusion = WanTower("video", cfg.dim_video, cfg.heads_video, cfg.depth_video,
                                        int(cfg.dim_video * cfg.ffn_ratio), patch=cfg.patch_size, in_dim=cfg.in_dim, **tower)
        self.audio_diffusion = WanTower("audio", cfg.dim_audio, cfg.heads_audio, cfg.depth_audio,
                                        int(cfg.dim_audio * cfg.ffn_ratio), patch=cfg.audio_patch_size,
                                        in_dim=cfg.audio_in_dim, **tower)
        opts: dict[str, Any] = {}
        if cfg.bridge == "dca":
            opts = dict(flag=cfg.dca_flag, num_qk_channels=cfg.bridge_qk_channels, full_attn_scale=cfg.full_attn_scale,
                        init=cfg.bridge_init)
        elif cfg.bridge == "rs_mma":
            opts = dict(window=cfg.rs_mma_window)
        self.dual_dit_blocks = nn.ModuleList([build_fusion(cfg.bridge, cfg.dim_video, cfg.dim_audio, cfg.bridge_heads, **opts)
                                              for _ in range(cfg.num_bridges)])
        self.video_text_encoder = TinyTextEncoder(cfg.text_dim, cfg.text_depth, cfg.text_heads, max_len=cfg.text_len)
        self.audio_text_encoder = (None if cfg.shared_text_encoder else
                                   TinyTextEncoder(cfg.text_dim, cfg.text_depth, cfg.text_heads, max_len=cfg.text_len))
        self.v_segments = _segments(cfg.video_bridge_points, cfg.depth_video)
        self.a_segments = _segments(cfg.audio_bridge_points, cfg.depth_audio)
        self._mel: Optional[MelSpec] = None
        self._noted_fallback = False
        if not any(p.is_meta for p in self.parameters()):
            self.video_diffusion.init_weights()
            self.audio_diffusion.init_weights()

    # -- text -----------------------------------------------------------------------------------
    def _encoder(self, modality: Modality) -> TinyTextEncoder:
        enc = self.video_text_encoder if modality == "video" or self.audio_text_encoder is None else self.audio_text_encoder
        return enc

    def context(self, modality: Modality, captions: list[str], drop: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Caption -> the tower's text context ``(B, L, dim)``; padded and dropped positions zeroed
        before ``text_embedding`` (Wan's path, as in :mod:`reference_models.javisdit_pp`)."""
        enc = self._encoder(modality)(captions)
        keep = enc.mask.clone()
        if drop is not None:
            keep &= ~drop[:, None]
        tower = self.video_diffusion if modality == "video" else self.audio_diffusion
        return tower.text_embedding(enc.tokens * keep[..., None].to(enc.tokens.dtype))

    def _captions(self, joint: list[str], video: Optional[list[Optional[str]]], audio: Optional[list[Optional[str]]]
                  ) -> tuple[list[str], list[str], bool]:
        v, a, fell_back = caption_pairs(joint, video, audio)
        if fell_back and not self._noted_fallback:
            log.info("bridgedit: no disentangled video/audio caption for some rows; those towers read the joint caption")
            self._noted_fallback = True
        return v, a, fell_back

    # -- bridge RoPE ----------------------------------------------------------------------------
    def bridge_angles(self, grid_v: tuple[int, ...], grid_a: tuple[int, ...], device: torch.device,
                      mode: str) -> tuple[Optional[torch.Tensor], Optional[torch.Tensor]]:
        """Per-stream 1-D RoPE angles for the bridges: ``index`` (flattened token index) or
        ``seconds`` (a token's step time in seconds on the shared clock)."""
        if mode == "none":
            return None, None
        inner = self.cfg.bridge_qk_channels or min(self.cfg.dim_video, self.cfg.dim_audio)
        hd = inner // self.cfg.bridge_heads
        nv, na = math.prod(grid_v), math.prod(grid_a)
        if mode == "index":
            pv = torch.arange(nv, dtype=torch.float64, device=device)
            pa = torch.arange(na, dtype=torch.float64, device=device)
        else:
            pv = seconds_position_ids(grid_v[0], self.cfg.video_step_ms / 1000, nv // grid_v[0], device=device)
            pa = seconds_position_ids(grid_a[0], self.cfg.audio_step_ms / 1000, na // grid_a[0], device=device)
        f = inv_freq(hd, self.cfg.rope_base, device)
        return torch.outer(pv, f), torch.outer(pa, f)

    # -- the network ----------------------------------------------------------------------------
    def forward(self, video: Optional[torch.Tensor], mel: Optional[torch.Tensor], t_video: Optional[torch.Tensor],
                t_audio: Optional[torch.Tensor], ctx_video: Optional[torch.Tensor], ctx_audio: Optional[torch.Tensor],
                bridges: bool = True, rope_mode: Optional[str] = None) -> dict[str, torch.Tensor]:
        """Predictions of both towers.

        Args:
            video ``(B, T, C, H, W)`` / mel ``(B, Tm, F)``: noisy inputs (either may be None: that
            tower does not run, nor do the bridges); t_video / t_audio ``(B,)``: each tower's time
            (0 for a clean conditioning modality); ctx_*: text contexts from :meth:`context`;
            bridges: False runs the towers alone; rope_mode: the bridge RoPE (default ``bridge_rope``).
        Returns:
            ``{"video": flow velocity like video, "audio": prediction like mel}`` for the towers run.
        """
        cfg = self.cfg
        vt, at = self.video_diffusion, self.audio_diffusion
        out: dict[str, torch.Tensor] = {}
        run_v, run_a = video is not None, mel is not None
        if run_v:
            xv, grid_v = vt.embed(video)                                          # (B, Nv, Cv)
            ev, ev0 = vt.time(t_video)
            ang_v = vt.angles(grid_v, xv.device)
        if run_a:
            xa, grid_a = at.embed(mel)                                            # (B, Na, Ca)
            ea, ea0 = at.time(t_audio)
            ang_a = at.angles(grid_a, xa.device)
        use_bridges = bridges and run_v and run_a and cfg.bridge != "none"
        if use_bridges:
            bv, ba = self.bridge_angles(grid_v, grid_a, xv.device, rope_mode or cfg.bridge_rope)
            fctx = FusionContext(t_v=ev, t_a=ea, grid_v=(grid_v[0], math.prod(grid_v[1:])),
                                 grid_a=(grid_a[0], grid_a[1]), angles_v=bv, angles_a=ba)
        for i in range(cfg.num_bridges + 1):
            if run_v:
                xv = vt.run(xv, ev0, ang_v, ctx_video, *self.v_segments[i])
            if run_a:
                xa = at.run(xa, ea0, ang_a, ctx_audio, *self.a_segments[i])
            if use_bridges and i < cfg.num_bridges:
                xv, xa = self.dual_dit_blocks[i](xv, xa, fctx)
        if run_v:
            out["video"] = vt.out(xv, ev, grid_v)
        if run_a:
            out["audio"] = at.out(xa, ea, grid_a)
        return out

    # -- objective ------------------------------------------------------------------------------
    def noisy(self, modality: Modality, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor
              ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x_t, target)``: flow for video (and for audio under ``objective="rf"``), cosine
        v-parameterisation for audio under ``"mixed"``."""
        tb = t.to(x0.dtype).reshape(-1, *([1] * (x0.ndim - 1)))
        if modality == "video" or self.cfg.objective == "rf":
            return (1 - tb) * x0 + tb * noise, noise - x0
        a, s = torch.cos(tb * math.pi / 2), torch.sin(tb * math.pi / 2)
        return a * x0 + s * noise, a * noise - s * x0

    def step(self, modality: Modality, x: torch.Tensor, pred: torch.Tensor, t: float, t_next: float) -> torch.Tensor:
        """One sampler step from t to t_next: Euler on the flow, deterministic DDIM on the v-model."""
        if modality == "video" or self.cfg.objective == "rf":
            return x + (t_next - t) * pred
        a, s = math.cos(t * math.pi / 2), math.sin(t * math.pi / 2)
        x0, eps = a * x - s * pred, s * x + a * pred
        a2, s2 = math.cos(t_next * math.pi / 2), math.sin(t_next * math.pi / 2)
        return a2 * x0 + s2 * eps

    # -- stages ---------------------------------------------------------------------------------
    def set_stage(self, name: str) -> None:
        """``joint_from_scratch``: everything trains; ``towers``: the towers alone (bridges skipped and
        frozen; T2V + T2A pretraining); ``bridge``: the released recipe — bridges plus
        ``tower_train_num`` tower blocks (``first`` or ``last``) train, text encoders and the rest frozen."""
        super().set_stage(name)
        for p in self.parameters():
            p.requires_grad_(name == "joint_from_scratch")
        if name == "towers":
            for tower in (self.video_diffusion, self.audio_diffusion, self.video_text_encoder, self.audio_text_encoder):
                if tower is not None:
                    tower.requires_grad_(True)
        elif name == "bridge":
            self.dual_dit_blocks.requires_grad_(True)
            for tower in (self.video_diffusion, self.audio_diffusion):
                n = len(tower.blocks)
                k = min(self.cfg.tower_train_num, n)
                idx = range(k) if self.cfg.trainable_tower_blocks == "first" else range(n - k, n)
                for i in idx:
                    tower.blocks[i].requires_grad_(True)

    # -- training -------------------------------------------------------------------------------
    def training_step(self, batch: Batch, step: int) -> dict[str, torch.Tensor]:
        """Joint loss (shared t); stage ``towers`` (and ``tower_only_prob``) runs the towers alone;
        ``x_cond_prob`` gives one modality clean at t = 0 and learns the other."""
        dev = self.device
        x0 = {"video": batch["video"].to(dev).float(), "audio": batch["mel"].to(dev).float()}
        b = x0["video"].shape[0]
        cap_v, cap_a, _ = self._captions(list(batch["caption"]), batch.get("caption_video"), batch.get("caption_audio"))
        drop = (torch.rand(b) < self.cfg.unconditional_prob).to(dev) if self.training else None
        ctx = {"video": self.context("video", cap_v, drop), "audio": self.context("audio", cap_a, drop)}
        t = torch.rand(b, device=dev)
        noise = {k: torch.randn_like(v) for k, v in x0.items()}
        mode = "joint"
        u = float(torch.rand(()))
        if self.stage == "towers" or u < self.cfg.tower_only_prob:
            mode = "towers"
        elif u < self.cfg.tower_only_prob + self.cfg.x_cond_prob:
            modes = self.cfg.x_cond_modes
            mode = modes[int(torch.randint(len(modes), ()))]
        xt, target, tt = {}, {}, {}
        for k in ("video", "audio"):
            clean = (mode == "v2a" and k == "video") or (mode == "a2v" and k == "audio")
            tt[k] = torch.zeros_like(t) if clean else t
            xt[k], target[k] = (x0[k], None) if clean else self.noisy(k, x0[k], noise[k], t)  # type: ignore[assignment]
        pred = self(xt["video"], xt["audio"], tt["video"], tt["audio"], ctx["video"], ctx["audio"],
                    bridges=mode != "towers")
        zero = torch.zeros((), device=dev)
        losses = {k: F.mse_loss(pred[k], target[k]) if target[k] is not None else zero for k in ("video", "audio")}
        return {"loss": losses["video"] + losses["audio"], "loss_video": losses["video"].detach(),
                "loss_audio": losses["audio"].detach()}

    # -- generation -----------------------------------------------------------------------------
    def _mel_spec(self) -> MelSpec:
        if self._mel is None:
            self._mel = MelSpec()
        return self._mel

    @torch.no_grad()
    def sample(self, req: GenerationRequest, towers: tuple[Modality, ...] = ("video", "audio"),
               bridges: bool = True) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Seeded sampling in model space: ``{"video": (B,T,3,H,W) in [-1,1], "audio": mel (B,Tm,F)}``.

        ``towers`` restricts sampling to one tower run alone (T2V / T2A, no bridges); a request
        ``condition`` fixes that modality clean at t = 0 (v2a / a2v)."""
        cfg = self.cfg
        dev = self.device
        mel_spec = self._mel_spec()
        T, H, W, Tm = req.num_frames, req.height, req.width, mel_spec.num_frames(req.num_samples)
        seeds = req.sample_seeds()
        x: dict[str, torch.Tensor] = {}
        if "video" in towers:
            x["video"] = seeded_noise((T, cfg.in_dim, H, W), seeds, dev, stream="video")
        if "audio" in towers:
            x["audio"] = seeded_noise((Tm, mel_spec.n_mels), seeds, dev, stream="audio")
        cond: dict[str, torch.Tensor] = {}
        for key, val in (req.condition or {}).items():
            if key == "video":
                cond["video"] = val.to(dev, torch.float32) * 2 - 1                     # (B,T,3,H,W) in [-1,1]
                if tuple(cond["video"].shape[1:]) != (T, cfg.in_dim, H, W):
                    raise ValueError(f"bridgedit: condition video of shape {tuple(val.shape)}; expected (B, {T}, 3, {H}, {W})")
            elif key == "audio":
                cond["audio"] = mel_spec(val.to(dev, torch.float32).cpu()).to(dev)   # (B,Tm,F) normalised
            else:
                raise ValueError(f"bridgedit: condition {key!r} is not supported (accepted: video, audio)")
            x.pop(key, None)
        cap_v, cap_a, fell_back = self._captions(list(req.prompts), req.video_prompts, req.audio_prompts)
        b = len(req)
        ctx = {"video": self.context("video", cap_v), "audio": self.context("audio", cap_a)}
        if req.negative_prompts is not None:
            null = {"video": self.context("video", list(req.negative_prompts)),
                    "audio": self.context("audio", list(req.negative_prompts))}
        else:
            every = torch.ones(b, dtype=torch.bool, device=dev)
            null = {"video": self.context("video", cap_v, every), "audio": self.context("audio", cap_a, every)}
        scales = {"video": req.guidance_for("video", cfg.cfg_video), "audio": req.guidance_for("audio", cfg.cfg_audio)}
        rope = cfg.bridge_rope if cfg.bridge_rope_inference == "same" else cfg.bridge_rope_inference
        nfe = 0

        def predict(state: dict[str, torch.Tensor], t: float, context: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
            nonlocal nfe
            nfe += 1
            tv = torch.full((b,), 0.0 if "video" in cond else t, device=dev)
            ta = torch.full((b,), 0.0 if "audio" in cond else t, device=dev)
            v_in = cond.get("video", state.get("video"))
            a_in = cond.get("audio", state.get("audio"))
            return self(v_in, a_in, tv, ta, context["video"], context["audio"], bridges=bridges, rope_mode=rope)

        steps = int(req.num_steps or cfg.num_sampling_steps)
        grid = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64).tolist()
        for i in range(steps):
            t, t_next = grid[i], grid[i + 1]
            pc = predict(x, t, ctx)
            guided = {m: scales[m] for m in x if scales[m] != 1.0}
            if guided:
                pu = predict(x, t, null)
                for m in guided:
                    pc[m] = pu[m] + scales[m] * (pc[m] - pu[m])
            x = {m: self.step(m, x[m], pc[m], t, t_next) for m in x}  # type: ignore[arg-type]
        x.update(cond)
        return x, {"nfe": nfe, "num_steps": steps, "guidance": scales, "caption_fallback": fell_back,
                   "bridge_rope": rope if bridges else "off"}

    @torch.no_grad()
    def generate(self, req: GenerationRequest) -> GenerationOutput:
        """Seeded joint sampling (separate CFG per tower), then mel → waveform (Griffin-Lim)."""
        was_training = self.training
        self.eval()
        t0 = time.perf_counter()
        x, extras = self.sample(req)
        t_model = time.perf_counter() - t0
        video = ((x["video"].float().clamp(-1, 1) + 1) / 2).cpu()
        mel = x["audio"].float().clamp(-4, 4).cpu()
        if req.condition and "audio" in req.condition:
            audio = req.condition["audio"].float().cpu().clamp(-1, 1)
        else:
            audio = self._mel_spec().to_wave(mel, req.num_samples, seed=int(req.seed or 0)).cpu()
        self.train(was_training)
        return GenerationOutput(video=video, audio=audio, fps=req.fps, sample_rate=req.sample_rate, mel=mel,
                                extras={**extras, "seconds_model": t_model, "seconds_total": time.perf_counter() - t0})
