"""Weights: where each encoder's official checkpoint lives, whether it is there, and its hash.

Nothing downloads silently.  A weights directory (``--weights-dir``, env ``JAVISBENCH_WEIGHTS``,
default ``~/.cache/javisbench/weights``) holds the official files under their official names.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal


@dataclass(frozen=True)
class WeightFile:
    """One file an encoder needs, under its official name (a file or a directory)."""

    name: str                           # relative path inside the weights dir
    url: str                            # where the official file comes from
    license: str
    sha256: str | None = None           # expected hash when known; None: recorded by `verify`
    size: int | None = None             # bytes, when known
    kind: Literal["file", "dir"] = "file"
    note: str = ""
    # for "dir" entries: files that must be inside
    members: tuple[str, ...] = field(default_factory=tuple)


class MissingWeightsError(FileNotFoundError):
    """Raised when a checkpoint is absent; the message names the file, the path and the fix."""

    def __init__(self, encoder: str, wf: WeightFile, path: Path, detail: str = "") -> None:
        self.encoder, self.weight_file, self.path = encoder, wf, path
        msg = (
            f"encoder {encoder!r} needs {wf.name} ({wf.license}); not found at {path}"
            f"{': ' + detail if detail else ''}. Put the official file there "
            f"(source: {wf.url}), or point --weights-dir / JAVISBENCH_WEIGHTS at the folder that "
            f"holds it, or run `javisbench weights download {encoder}` where a network exists."
        )
        super().__init__(msg)


class BadWeightsError(ValueError):
    pass


def default_weights_dir() -> Path:
    env = os.environ.get("JAVISBENCH_WEIGHTS")
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("JAVISBENCH_CACHE")
    root = Path(cache).expanduser() if cache else Path.home() / ".cache" / "javisbench"
    return root / "weights"


def resolve_weights_dir(path: str | os.PathLike | None) -> Path:
    return Path(path).expanduser() if path else default_weights_dir()


def _hash_file(path: Path, h: "hashlib._Hash") -> None:
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)


def sha256_of(path: str | os.PathLike) -> str:
    """sha256 of a file, or of a directory (sorted relative names and contents).

    Results are memoised in ``.javisbench-sha256.json`` beside the file, keyed by
    (name, size, mtime), so a 5 GB checkpoint is hashed once.
    """
    path = Path(path)
    st = path.stat()
    memo_file = path.parent / ".javisbench-sha256.json"
    key = f"{path.name}|{st.st_size}|{st.st_mtime_ns}"
    memo: dict[str, str] = {}
    try:
        memo = json.loads(memo_file.read_text())
    except (OSError, ValueError):
        memo = {}
    if key in memo:
        return memo[key]
    h = hashlib.sha256()
    if path.is_dir():
        for p in sorted(q for q in path.rglob("*") if q.is_file()):
            h.update(str(p.relative_to(path)).encode() + b"\0")
            _hash_file(p, h)
    else:
        _hash_file(path, h)
    digest = h.hexdigest()
    memo[key] = digest
    try:
        tmp = memo_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(memo, indent=1))
        os.replace(tmp, memo_file)
    except OSError:
        pass  # read-only weights dir: hash again next time
    return digest


@dataclass
class WeightStatus:
    encoder: str
    file: WeightFile
    path: Path
    status: Literal["present", "missing", "bad-hash", "incomplete"]
    sha256: str | None = None
    size: int | None = None
    detail: str = ""


def check(encoder: str, wf: WeightFile, weights_dir: Path, hash_it: bool = False) -> WeightStatus:
    path = weights_dir / wf.name
    if not path.exists():
        return WeightStatus(encoder, wf, path, "missing")
    if wf.kind == "dir":
        missing = [m for m in wf.members if not (path / m).exists()]
        if missing:
            return WeightStatus(encoder, wf, path, "incomplete", detail="missing " + ", ".join(missing))
        size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    else:
        size = path.stat().st_size
    digest = sha256_of(path) if (hash_it or wf.sha256) else None
    if wf.sha256 and digest != wf.sha256:
        return WeightStatus(encoder, wf, path, "bad-hash", digest, size, f"expected sha256 {wf.sha256}")
    return WeightStatus(encoder, wf, path, "present", digest, size)


def require(encoder: str, wf: WeightFile, weights_dir: Path) -> Path:
    """Path of a needed weight file, or MissingWeightsError explaining the fix.

    A file whose sha256 differs from the official one is used (a re-saved or fine-tuned
    checkpoint is the user's call) but the pipeline records it: results carry every hash and
    say which ones are not the official file's.
    """
    st = check(encoder, wf, weights_dir)
    if st.status in ("missing", "incomplete"):
        raise MissingWeightsError(encoder, wf, st.path, st.detail)
    return st.path


def remember_sha256(path: str | os.PathLike, digest: str) -> None:
    """Record a file's sha256 (computed while downloading it) in the memo :func:`sha256_of` reads."""
    path = Path(path)
    st = path.stat()
    memo_file = path.parent / ".javisbench-sha256.json"
    try:
        memo = json.loads(memo_file.read_text())
    except (OSError, ValueError):
        memo = {}
    memo[f"{path.name}|{st.st_size}|{st.st_mtime_ns}"] = digest
    try:
        tmp = memo_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(memo, indent=1))
        os.replace(tmp, memo_file)
    except OSError:
        pass
