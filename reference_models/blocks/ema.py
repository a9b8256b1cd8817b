"""Exponential moving average of a model's floating-point parameters and buffers.

``shadow ← decay·shadow + (1 − decay)·param`` after every optimiser step (JavisDiT: decay 0.99).
With ``warmup`` the effective decay is ``min(decay, (1 + n)/(10 + n))`` at update n, so early
averages are not dominated by the random initialisation.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from torch import nn


class EMA:
    """EMA of ``model``'s float state (parameters and float buffers), kept on the model's device."""

    def __init__(self, model: nn.Module, decay: float = 0.99, warmup: bool = False) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay, self.warmup = decay, warmup
        self.num_updates = 0
        self.shadow: dict[str, torch.Tensor] = {
            k: v.detach().clone() for k, v in model.state_dict().items() if v.is_floating_point()}

    def current_decay(self) -> float:
        if self.warmup:
            return min(self.decay, (1 + self.num_updates) / (10 + self.num_updates))
        return self.decay

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        d = self.current_decay()
        state = model.state_dict()
        for k, s in self.shadow.items():
            s.mul_(d).add_(state[k].detach().to(s.dtype), alpha=1.0 - d)
        self.num_updates += 1

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        """Overwrite the model's float state with the averages."""
        state = model.state_dict()
        for k, s in self.shadow.items():
            state[k].copy_(s)

    @contextlib.contextmanager
    def applied(self, model: nn.Module) -> Iterator[nn.Module]:
        """Temporarily swap the averages into ``model`` (restored on exit)."""
        backup = {k: v.detach().clone() for k, v in model.state_dict().items() if k in self.shadow}
        self.copy_to(model)
        try:
            yield model
        finally:
            state = model.state_dict()
            with torch.no_grad():
                for k, v in backup.items():
                    state[k].copy_(v)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {k: v.clone() for k, v in self.shadow.items()}

    def load_state_dict(self, state: dict[str, torch.Tensor], num_updates: int = 0) -> None:
        missing = sorted(set(self.shadow) - set(state))
        if missing:
            raise ValueError(f"EMA state lacks {len(missing)} entries, e.g. {missing[:3]}")
        for k in self.shadow:
            self.shadow[k].copy_(state[k])
        self.num_updates = num_updates
