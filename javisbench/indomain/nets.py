"""The shipped in-domain weights: file names, sha256 (checked on every load), cached loading.

The files live in ``javisbench/indomain/weights/`` (package data) and come from
``python -m javisbench.indomain.train --out DIR --seed 0`` (see :mod:`javisbench.indomain.train`).
"""
from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"

#: network name -> (file name, sha256)
FILES: dict[str, tuple[str, str]] = {
    "video": ("synthav_video.safetensors", "cb176ac3d4a2649e93361e0cd7d82497b0c4fb05d56074617980b9b85ea6a701"),
    "audio": ("synthav_audio.safetensors", "92723b4fe41ac2924871330b36843c0e743d1cada2a5e2e0963d8e1b967709af"),
    "text": ("synthav_text.safetensors", "a8eaaac9ccda091669b52b56c7f800cd7bc3461a0c2cd3fd5153dab52cfbe2df"),
    "sync": ("synthav_sync.safetensors", "3c4bf80169c13c0fe460ddd9e7c1292872efcd9e0e7a425dcef17640d58f224a"),
}


class InDomainWeightsError(RuntimeError):
    """A shipped weight file is missing or is not the file this code was released with."""


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


_CACHE: dict[tuple[str, str, str], "nn.Module"] = {}
_LOCK = threading.Lock()


def load_net(name: str, device: str = "cpu", weights_dir: Path | None = None,
             expected: dict[str, tuple[str, str]] | None = None) -> tuple["nn.Module", str]:
    """The network ``name`` (video|audio|text|sync) in eval mode on ``device`` and its file's sha256.

    The file's sha256 must equal the one in :data:`FILES` (or ``expected``); a mismatch raises
    :class:`InDomainWeightsError` naming the file, expected and actual hashes."""
    from safetensors.torch import load_file

    from javisbench.indomain.model import NETS

    table = expected or FILES
    if name not in table:
        raise ValueError(f"unknown in-domain network {name!r} (known: {', '.join(table)})")
    fname, want = table[name]
    path = Path(weights_dir or WEIGHTS_DIR) / fname
    key = (name, str(path), device)
    with _LOCK:
        if key in _CACHE:
            return _CACHE[key], want
        if not path.is_file():
            raise InDomainWeightsError(f"{path} is missing (the in-domain weights ship with the package; "
                                       f"reinstall javisbench or rebuild them with python -m javisbench.indomain.train)")
        got = file_sha256(path)
        if got != want:
            raise InDomainWeightsError(f"{path}: sha256 {got}, expected {want} (not the released in-domain weights)")
        net = NETS[name]()
        net.load_state_dict(load_file(str(path)))
        net.eval().to(device)
        for p in net.parameters():
            p.requires_grad_(False)
        _CACHE[key] = net
        return net, got
