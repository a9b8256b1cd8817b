"""Checkpoint-reading helpers shared by the encoder ports: the guarded loader every weights file goes
through (size and format first, ``weights_only=True``, one clear error) and strict loads with
useful errors."""
from __future__ import annotations

import json
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from javisbench.weights import BadWeightsError

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import nn

    from javisbench.weights import WeightFile


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


# ---------------------------------------------------------------------------------------------
# The guarded loader: every weights file an encoder reads goes through here.
#
# A weights file is untrusted input.  Its size and format are checked before any byte is
# unpickled; torch.load runs with weights_only=True (tensors and plain containers only, never
# code); any failure becomes one BadWeightsError naming the file, its size and sha256, and what
# was expected.  The pipeline turns that error into "this encoder's metrics are skipped" and the
# run goes on with the others.  torch's own advice to retry with the safe loader turned off is
# never passed on.
# ---------------------------------------------------------------------------------------------
ZIP_MAGIC = b"PK\x03\x04"


def _sha256_or_note(path: Path) -> str:
    from javisbench.weights import sha256_of

    try:
        return sha256_of(path)
    except OSError as e:
        return f"unreadable ({e.strerror or e})"


def weights_problem(path: Path, encoder: str, problem: str, wf: "WeightFile | None" = None,
                    expected: str = "") -> BadWeightsError:
    """The one error for a weights file that cannot be used: file, size, sha256, problem, expected."""
    path = Path(path)
    try:
        size = f"{path.stat().st_size} bytes"
    except OSError:
        size = "size unknown"
    want = expected or "a torch checkpoint of plain tensors"
    if wf is not None:
        known = [f"{wf.size} bytes" if wf.size else "", f"sha256 {wf.sha256}" if wf.sha256 else ""]
        known = [k for k in known if k]
        want = f"the official {wf.name}{' (' + ', '.join(known) + ')' if known else ''}: {want}"
    return BadWeightsError(f"encoder {encoder!r}: weights file {path} ({size}, sha256 {_sha256_or_note(path)}) "
                           f"cannot be used: {problem}; expected {want}")


def sniff_format(path: Path) -> str:
    """``"zip"`` (torch.save / TorchScript), ``"pickle"`` (legacy torch.save), ``"safetensors"``,
    or ``"unknown"``, from the first bytes (and, for safetensors, the header length)."""
    with open(path, "rb") as f:
        head = f.read(16)
    if head.startswith(ZIP_MAGIC):
        return "zip"
    if head[:1] == b"\x80" and len(head) > 1 and 2 <= head[1] <= 5:
        return "pickle"
    if len(head) >= 9:
        n = int.from_bytes(head[:8], "little")
        if head[8:9] == b"{" and 0 < n <= path.stat().st_size - 8:
            return "safetensors"
    return "unknown"


def _clean_torch_error(e: BaseException) -> str:
    """torch's load error in one line, without its advice to disable the safe loader."""
    import pickle

    msg = str(e)
    if "WeightsUnpickler error:" in msg or isinstance(e, pickle.UnpicklingError) or "GLOBAL" in msg:
        core = msg.split("WeightsUnpickler error:", 1)[-1].strip()
        core = re.split(r"\.\s|\n", core, maxsplit=1)[0].strip().rstrip(".")
        return (f"it holds pickled objects other than tensors ({core}); code in a weights file is never run, "
                "so it cannot be read")
    lines = [ln.strip() for ln in msg.splitlines() if ln.strip()]
    keep = [ln for ln in lines if "weights_only" not in ln and "add_safe_globals" not in ln
            and "safe_globals" not in ln and "torch.load" not in ln]
    text = " ".join(keep or lines[:1]) or type(e).__name__
    return f"{type(e).__name__}: {text[:300]}"


def check_weights_file(path: Path, encoder: str, wf: "WeightFile | None" = None,
                       formats: tuple[str, ...] = ("zip", "pickle")) -> str:
    """Size and format of a weights file, before anything is read from it; returns the format.

    Raises:
        BadWeightsError: absent, not a file, empty, not the declared size, or not one of ``formats``
            (for a zip: an archive whose central directory cannot be read, e.g. a truncated copy).
    """
    import zipfile

    path = Path(path)
    if not path.is_file():
        raise weights_problem(path, encoder, "not a regular file", wf)
    size = path.stat().st_size
    if size == 0:
        raise weights_problem(path, encoder, "the file is empty", wf)
    if wf is not None and wf.size and size != wf.size:
        raise weights_problem(path, encoder, f"it has {size} bytes, the official file {wf.size} (truncated or "
                              "another file?)", wf)
    fmt = sniff_format(path)
    names = {"zip": "a torch.save zip archive", "pickle": "a legacy torch.save file", "safetensors": "a safetensors file"}
    if fmt not in formats:
        with open(path, "rb") as f:
            head = f.read(8)
        raise weights_problem(path, encoder, f"it is not {' or '.join(names[x] for x in formats)} (first bytes "
                              f"{head!r}{', detected ' + names[fmt] if fmt in names else ''})", wf)
    if fmt == "zip":
        try:
            with zipfile.ZipFile(path) as z:
                members = z.namelist()
        except (zipfile.BadZipFile, OSError, ValueError) as e:
            raise weights_problem(path, encoder, f"the zip archive is damaged or cut short ({e})", wf) from None
        if not any(m.endswith("data.pkl") for m in members):
            raise weights_problem(path, encoder, f"a zip archive without the data.pkl of a torch checkpoint "
                                  f"(members: {', '.join(members[:4])}{', ...' if len(members) > 4 else ''})", wf)
    if fmt == "safetensors":
        with open(path, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            header = f.read(n)
        try:
            json.loads(header.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            raise weights_problem(path, encoder, f"the safetensors header is not valid JSON ({e})", wf) from None
    return fmt


def read_checkpoint(path: Path, encoder: str, wf: "WeightFile | None" = None, mmap: bool = False) -> Any:
    """``torch.load(path, weights_only=True)`` of a checked file (:func:`check_weights_file`).

    ``mmap``: memory-map a zip-format file (tensors are read when used).  Every failure is a
    :class:`BadWeightsError` naming the file, its size and sha256, and what was expected.
    """
    import torch

    path = Path(path)
    fmt = check_weights_file(path, encoder, wf)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")     # torch's notes on pickle protocols: the error below says it all
            return torch.load(path, map_location="cpu", weights_only=True, mmap=bool(mmap and fmt == "zip"))
    except Exception as e:  # noqa: BLE001 - unpickling raises many types; each is this file's problem
        raise weights_problem(path, encoder, _clean_torch_error(e), wf) from None


def read_safetensors(path: Path, encoder: str, wf: "WeightFile | None" = None) -> "dict[str, torch.Tensor]":
    """Every tensor of a checked safetensors file; failures as in :func:`read_checkpoint`."""
    from safetensors.torch import load_file

    path = Path(path)
    check_weights_file(path, encoder, wf, formats=("safetensors",))
    try:
        return load_file(str(path))
    except Exception as e:  # noqa: BLE001
        raise weights_problem(path, encoder, f"{type(e).__name__}: {e}", wf) from None
