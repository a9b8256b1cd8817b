"""Checkpoint-reading helpers shared by the encoder ports (strict loads with useful errors)."""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from javisbench.weights import BadWeightsError

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import nn


def checkpoint_state_dict(obj: Any, path: Path) -> "Mapping[str, torch.Tensor]":
    """The state dict inside a loaded checkpoint: a plain dict, or one under ``state_dict``."""
    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping):
        raise BadWeightsError(f"{path}: expected a state dict (mapping of tensors), got {type(obj).__name__}")
    return obj


def _same_shape(got: tuple[int, ...], want: tuple[int, ...]) -> bool:
    # torch itself accepts a 1-element tensor for a 0-d one (old checkpoints saved scalars so)
    return got == want or (want == () and got == (1,))


def load_strict(model: "nn.Module", state: "Mapping[str, torch.Tensor]", path: Path,
                encoder: str, key_prefix: str = "") -> None:
    """``load_state_dict(strict=True)`` whose error lists every missing/unexpected/misshaped key.

    ``key_prefix`` is prepended to key names in the message only (the names as the file has them
    when ``state`` is a sub-dict, e.g. ``audio.`` for AudioCLIP's audio head).
    """
    expected = model.state_dict()
    missing = [key_prefix + k for k in expected if k not in state]
    unexpected = [key_prefix + k for k in state if k not in expected]
    misshaped = [
        f"{key_prefix}{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items() if k in state and not _same_shape(tuple(state[k].shape), tuple(v.shape))
    ]
    if missing or unexpected or misshaped:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", misshaped)):
            if keys:
                shown = ", ".join(keys[:10]) + (f", ... ({len(keys)} in all)" if len(keys) > 10 else "")
                parts.append(f"{len(keys)} {label}: {shown}")
        raise BadWeightsError(f"{path} does not match encoder {encoder!r}: " + "; ".join(parts))
    model.load_state_dict(dict(state), strict=True)
