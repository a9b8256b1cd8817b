"""Patchifiers: video ``(B,T,C,H,W)`` <-> tokens and mel ``(B,Tm,F)`` (or ``(B,C,Tm,F)``) <-> tokens.

Token order is time-major (then height, then width / frequency); inside a token the features run
over (patch-t, patch-h, patch-w, channel), the layout Wan/OpenSora unpatchify with. Both directions
are pure reshapes, so a round trip is exact.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class VideoPatchifier:
    """Video patchifier with patch sizes ``(pt, ph, pw)`` and ``channels`` input channels."""

    patch: tuple[int, int, int] = (2, 8, 8)
    channels: int = 3

    @property
    def token_dim(self) -> int:
        pt, ph, pw = self.patch
        return pt * ph * pw * self.channels

    def grid(self, t: int, h: int, w: int) -> tuple[int, int, int]:
        """Token grid ``(Tv, Hv, Wv)`` of a ``T×H×W`` clip; a ValueError when a size is not divisible."""
        pt, ph, pw = self.patch
        if t % pt or h % ph or w % pw:
            raise ValueError(f"video of {t}x{h}x{w} (T×H×W) is not divisible by the patch {self.patch}")
        return t // pt, h // ph, w // pw

    def patchify(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, C, H, W) -> (B, Tv·Hv·Wv, pt·ph·pw·C)."""
        b, t, c, h, w = x.shape
        if c != self.channels:
            raise ValueError(f"video has {c} channels, the patchifier expects {self.channels}")
        gt, gh, gw = self.grid(t, h, w)
        pt, ph, pw = self.patch
        x = x.reshape(b, gt, pt, c, gh, ph, gw, pw)
        x = x.permute(0, 1, 4, 6, 2, 5, 7, 3)            # b, gt, gh, gw, pt, ph, pw, c
        return x.reshape(b, gt * gh * gw, pt * ph * pw * c)

    def unpatchify(self, tokens: torch.Tensor, grid: tuple[int, int, int]) -> torch.Tensor:
        """(B, Tv·Hv·Wv, pt·ph·pw·C) -> (B, T, C, H, W)."""
        b, n, d = tokens.shape
        gt, gh, gw = grid
        pt, ph, pw = self.patch
        c = self.channels
        if n != gt * gh * gw or d != self.token_dim:
            raise ValueError(f"tokens {tuple(tokens.shape)} do not fit grid {grid} with token dim {self.token_dim}")
        x = tokens.reshape(b, gt, gh, gw, pt, ph, pw, c)
        x = x.permute(0, 1, 4, 7, 2, 5, 3, 6)            # b, gt, pt, c, gh, ph, gw, pw
        return x.reshape(b, gt * pt, c, gh * ph, gw * pw)


@dataclass(frozen=True)
class MelPatchifier:
    """Mel / audio-latent patchifier with patch ``(pt, pf)``; ``channels`` = 1 for a plain mel
    ``(B, Tm, F)``, C for a latent ``(B, C, Tm, F)``."""

    patch: tuple[int, int] = (8, 16)
    channels: int = 1

    @property
    def token_dim(self) -> int:
        return self.patch[0] * self.patch[1] * self.channels

    def grid(self, tm: int, f: int) -> tuple[int, int]:
        pt, pf = self.patch
        if tm % pt or f % pf:
            raise ValueError(f"mel of {tm}x{f} (frames × bins) is not divisible by the patch {self.patch}")
        return tm // pt, f // pf

    def patchify(self, x: torch.Tensor) -> torch.Tensor:
        """(B, Tm, F) or (B, C, Tm, F) -> (B, Ta·Fa, pt·pf·C)."""
        if x.ndim == 3:
            x = x.unsqueeze(1)
        b, c, tm, f = x.shape
        if c != self.channels:
            raise ValueError(f"mel has {c} channels, the patchifier expects {self.channels}")
        ga, gf = self.grid(tm, f)
        pt, pf = self.patch
        x = x.reshape(b, c, ga, pt, gf, pf).permute(0, 2, 4, 3, 5, 1)   # b, ga, gf, pt, pf, c
        return x.reshape(b, ga * gf, pt * pf * c)

    def unpatchify(self, tokens: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """(B, Ta·Fa, pt·pf·C) -> (B, Tm, F) when C == 1, else (B, C, Tm, F)."""
        b, n, d = tokens.shape
        ga, gf = grid
        pt, pf = self.patch
        c = self.channels
        if n != ga * gf or d != self.token_dim:
            raise ValueError(f"tokens {tuple(tokens.shape)} do not fit grid {grid} with token dim {self.token_dim}")
        x = tokens.reshape(b, ga, gf, pt, pf, c).permute(0, 5, 1, 3, 2, 4).reshape(b, c, ga * pt, gf * pf)
        return x[:, 0] if c == 1 else x
