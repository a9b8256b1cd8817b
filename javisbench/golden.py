"""Deterministic "golden" checkpoints: the documented fill rule of the parity fixtures.

The parity fixtures (``tests/golden/<model>/``) were produced by the original evaluation code
with every parameter overwritten by a pseudo-random value that depends only on the parameter's
state-dict key, its shape and an integer seed.  This module regenerates those values so a test
(or a curious user) can write an official-format checkpoint with known contents and load it
through exactly the path a real checkpoint takes.

Rule, per parameter key ``name`` of shape ``shape`` (all arithmetic float64, then cast):

* ``rng = numpy.random.default_rng([seed, crc32(name)])``, ``z = rng.standard_normal(shape)``
* ``ndim >= 2``: ``z * (2.0**0.5 / sqrt(prod(shape[1:])))`` (He gain on the fan-in)
* ``ndim == 1`` and the name ends in ``weight``/``gamma``: ``1 + 0.02 z``
* everything else: ``0.02 z``

Buffers are not filled: they come from the fixture's ``buffers.npz``.
"""
from __future__ import annotations

import json
import zlib
from collections import OrderedDict
from pathlib import Path
from typing import Iterable

import numpy as np

HE_GAIN = 2.0 ** 0.5


def fill_value(name: str, shape: Iterable[int], seed: int) -> np.ndarray:
    """The float32 value of parameter ``name`` under the fill rule.

    Example:
        >>> fill_value("ln.bias", (3,), 0).dtype
        dtype('float32')
    """
    shape = tuple(int(s) for s in shape)
    z = np.random.default_rng([int(seed), zlib.crc32(name.encode("utf-8"))]).standard_normal(shape)
    if len(shape) >= 2:
        # the order of operations matters to the last ulp: gain / sqrt(fan_in), then times z
        return (z * (HE_GAIN / np.sqrt(int(np.prod(shape[1:]))))).astype(np.float32)
    if len(shape) == 1 and (name.endswith("weight") or name.endswith("gamma")):
        return (1.0 + 0.02 * z).astype(np.float32)
    return (0.02 * z).astype(np.float32)


def fixture_keys(fixture_dir: str | Path) -> list[tuple[str, tuple[int, ...], str]]:
    """``(key, shape, kind)`` triples of a fixture's ``keys.json``, in official order."""
    rows = json.loads(Path(fixture_dir, "keys.json").read_text())
    return [(str(k), tuple(int(s) for s in shape), str(kind)) for k, shape, kind in rows]


def fixture_seed(fixture_dir: str | Path) -> int:
    return int(Path(fixture_dir, "seed.txt").read_text().strip())


def build_state_dict(fixture_dir: str | Path, seed: int | None = None) -> "OrderedDict[str, np.ndarray]":
    """The fixture's whole checkpoint as numpy arrays in official key order.

    Parameters follow the fill rule; buffers are read from ``buffers.npz`` unchanged
    (dtype as stored).
    """
    fixture_dir = Path(fixture_dir)
    seed = fixture_seed(fixture_dir) if seed is None else int(seed)
    buffers = np.load(fixture_dir / "buffers.npz")
    out: "OrderedDict[str, np.ndarray]" = OrderedDict()
    for name, shape, kind in fixture_keys(fixture_dir):
        if kind == "param":
            out[name] = fill_value(name, shape, seed)
        else:
            if name not in buffers.files:
                raise KeyError(f"{fixture_dir}/buffers.npz has no buffer {name!r} listed in keys.json")
            out[name] = buffers[name]
    return out


def torch_state_dict(fixture_dir: str | Path, seed: int | None = None) -> "OrderedDict":
    """``build_state_dict`` as CPU torch tensors (what ``torch.save`` of a checkpoint holds)."""
    import torch

    # np.array (not ascontiguousarray) keeps 0-d buffers such as num_batches_tracked 0-d
    return OrderedDict((k, torch.from_numpy(np.array(v, copy=True))) for k, v in build_state_dict(fixture_dir, seed).items())


# ---------------------------------------------------------------------------------------------
# official-format checkpoints from the fixtures
# ---------------------------------------------------------------------------------------------
def _save_torch(fixture_dir: Path, dest: Path) -> None:
    import torch

    torch.save(torch_state_dict(fixture_dir), dest)


def _save_clip_archive(fixture_dir: Path, dest: Path) -> None:
    from javisbench.encoders.clip import save_openai_archive

    save_openai_archive(torch_state_dict(fixture_dir), dest)


def _save_hf_folder(fixture_dir: Path, dest: Path) -> None:
    """A Hugging Face snapshot folder: the fixture's ``hf/`` files plus ``pytorch_model.bin``."""
    import shutil

    import torch

    dest.mkdir(parents=True, exist_ok=True)
    for f in (fixture_dir / "hf").iterdir():
        if f.is_file():
            shutil.copy(f, dest / f.name)
    torch.save(torch_state_dict(fixture_dir), dest / "pytorch_model.bin")


def _save_safetensors_folder(fixture_dir: Path, dest: Path) -> None:
    """A hub snapshot folder: the fixture's ``hf/`` files plus ``model.safetensors``."""
    import shutil

    from safetensors.torch import save_file

    dest.mkdir(parents=True, exist_ok=True)
    for f in (fixture_dir / "hf").iterdir():
        if f.is_file():
            shutil.copy(f, dest / f.name)
    save_file({k: v.contiguous() for k, v in torch_state_dict(fixture_dir).items()}, str(dest / "model.safetensors"))


def _save_cavp(fixture_dir: Path, dest: Path) -> None:
    """Diff-Foley's training-checkpoint layout: ``{"epoch", "state_dict": {"module.<key>": ...}}``."""
    import torch

    state = {f"module.{k}": v for k, v in torch_state_dict(fixture_dir).items()}
    torch.save({"epoch": 66, "state_dict": state}, dest)


#: encoder id -> (fixture folder, official name in the weights dir, writer)
GOLDEN_WRITERS = {
    "i3d": ("i3d", "i3d_pretrained_400.pt", _save_torch),
    "audioclip": ("audioclip", "AudioCLIP-Full-Training.pt", _save_torch),
    "clip": ("clip", "ViT-B-32.pt", _save_clip_archive),
    "clap": ("clap", "clap-htsat-unfused", _save_hf_folder),
    "cavp": ("cavp", "cavp_epoch66.ckpt", _save_cavp),
    "audiobox": ("audiobox", "audiobox-aesthetics", _save_safetensors_folder),
    "synchformer": ("synchformer", "synchformer_state_dict.pth", _save_torch),
    "imagebind": ("imagebind", "imagebind_huge.pth", _save_torch),
}


def write_golden_weights(golden_root: str | Path, weights_dir: str | Path, encoders: Iterable[str]) -> Path:
    """Write the deterministic fixture checkpoints in each model's official file format.

    The result is a weights directory a user could pass as ``--weights-dir``: the same loaders
    read it as they read the real files (their hashes differ, which results record).
    """
    golden_root, weights_dir = Path(golden_root), Path(weights_dir)
    weights_dir.mkdir(parents=True, exist_ok=True)
    for enc in encoders:
        if enc not in GOLDEN_WRITERS:
            raise KeyError(f"no golden checkpoint writer for {enc!r}; have {', '.join(GOLDEN_WRITERS)}")
        fixture, name, writer = GOLDEN_WRITERS[enc]
        dest = weights_dir / name
        if not dest.exists():
            writer(golden_root / fixture, dest)
    return weights_dir
