"""The content-addressed feature store.

Every feature row is stored under a key made of (sample content hash, encoder id + code version +
weights sha256, the protocol values *that encoder reads* (``Encoder.feature_protocol``), prompts
when the encoder reads them).  Statistics settings are not part of it, so changing a seed, a
bootstrap count or another encoder's protocol field never re-runs a model.  A re-run, a resumed
run, a new breakdown or a new table reads what is stored and computes nothing twice.

Layout: ``<root>/features/<encoder id>/<key[:2]>/<key>.npz``, one small file per (sample,
encoder); a run's shard is its encoder folder, so stores from several machines merge by
copying folders.  Writes go to a temporary file in the same folder and are renamed into place,
so a killed run leaves either a whole entry or none.  Everything is stored as float32, except the
outputs an encoder declares exact (``float64_outputs``).  An entry that cannot be read, misses a
declared output or holds non-finite values is recomputed, and so is one that breaks its encoder's
declared contract (names, dtype, shapes, ranges: :func:`output_problem`).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import zipfile
from pathlib import Path
from typing import Any, Callable

import numpy as np

from javisbench.files import atomic_open


def default_cache_dir() -> Path:
    env = os.environ.get("JAVISBENCH_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "javisbench"


def memo_key(*parts: Any) -> str:
    """sha256 over strings, numbers and arrays (dtype, shape and bytes)."""
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, np.ndarray):
            a = np.ascontiguousarray(part)
            h.update(f"array:{a.dtype.str}:{a.shape}".encode())
            h.update(a.tobytes())
        else:
            h.update(b"\0" + json.dumps(part, sort_keys=True, default=str).encode())
    return h.hexdigest()


def feature_key(content_hash: str, encoder_fingerprint: str, protocol_fingerprint: str, prompts: tuple[str, ...] = ()) -> str:
    """The store key of one (sample, encoder) entry; ``protocol_fingerprint`` is the encoder's own
    (``Encoder.feature_fingerprint``: the protocol values it reads), never the whole protocol's."""
    blob = json.dumps([content_hash, encoder_fingerprint, protocol_fingerprint, list(prompts)], ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


_SHAPE = re.compile(r"\(([^()]*)\)")


def declared_shapes(spec: str) -> list[tuple[int | None, ...]]:
    """The shapes an ``Encoder.outputs`` entry allows: ``"(1024,), or (W, 1024) under ..."`` ->
    ``[(1024,), (None, 1024)]`` (a letter is a per-clip length; prose between shapes is ignored)."""
    shapes = []
    for m in _SHAPE.finditer(spec):
        parts = [p.strip() for p in m.group(1).split(",") if p.strip()]
        if parts and all(p.isdigit() or re.fullmatch(r"[A-Za-z_]\w*", p) for p in parts):
            shapes.append(tuple(int(p) if p.isdigit() else None for p in parts))
    return shapes


def output_problem(encoder: Any, features: dict[str, np.ndarray]) -> str | None:
    """Why ``features`` do not satisfy ``encoder``'s declared contract, or None.

    Checks every declared output (``outputs``): present, float dtype as stored (float64 for
    ``float64_outputs``, float32 otherwise), a declared shape, finite, and inside the encoder's
    ``output_ranges`` (name -> (low, high), inclusive) when it declares some.
    """
    outputs = getattr(encoder, "outputs", {}) or {}
    wide = set(getattr(encoder, "float64_outputs", ()) or ())
    ranges = getattr(encoder, "output_ranges", {}) or {}
    for name, spec in outputs.items():
        if name not in features:
            return f"no {name!r} (declared outputs: {', '.join(outputs)})"
        a = np.asarray(features[name])
        want = np.float64 if name in wide else np.float32
        if a.dtype != want:
            return f"{name!r} is {a.dtype}, expected {np.dtype(want).name}"
        shapes = declared_shapes(spec)
        if shapes and not any(len(s) == a.ndim and all(d is None or d == n for d, n in zip(s, a.shape)) for s in shapes):
            return f"{name!r} has shape {a.shape}, expected {spec}"
        if not np.all(np.isfinite(a)):
            return f"{name!r} holds NaN or infinite values"
    for name, (lo, hi) in ranges.items():
        if name in features and np.asarray(features[name]).size:
            a = np.asarray(features[name])
            if float(a.min()) < lo or float(a.max()) > hi:
                return f"{name!r} spans [{float(a.min()):g}, {float(a.max()):g}], outside its range [{lo:g}, {hi:g}]"
    return None


class FeatureStore:
    """Atomic, resumable, float32 feature files under ``<cache_dir>/features``."""

    def __init__(self, cache_dir: str | Path | None = None) -> None:
        self.root = (Path(cache_dir).expanduser() if cache_dir else default_cache_dir()) / "features"
        self.hits = 0
        self.misses = 0
        self.writes = 0
        self.rejected = 0      # entries that were read but failed validation (recomputed)

    def path(self, encoder_id: str, key: str) -> Path:
        return self.root / encoder_id / key[:2] / f"{key}.npz"

    def get(self, encoder_id: str, key: str, expect: tuple[str, ...] = (),
            validate: Callable[[dict[str, np.ndarray]], str | None] | None = None) -> dict[str, np.ndarray] | None:
        """The stored features, or None (absent, damaged, missing one of ``expect``, non-finite, or
        refused by ``validate``, which returns a problem or None; see :func:`output_problem`)."""
        p = self.path(encoder_id, key)
        if not p.is_file():
            self.misses += 1
            return None
        try:
            with np.load(p, allow_pickle=False) as z:
                out = {k: z[k] for k in z.files}
        except (OSError, ValueError, zipfile.BadZipFile, EOFError):
            # a damaged entry (e.g. the disk filled up mid-write on another tool): recompute it
            self.misses += 1
            return None
        if any(name not in out for name in expect) or not all(
                np.issubdtype(a.dtype, np.floating) and np.all(np.isfinite(a)) for a in out.values()):
            self.misses += 1
            self.rejected += 1
            return None
        if validate is not None and validate(out) is not None:
            self.misses += 1
            self.rejected += 1
            return None
        self.hits += 1
        return out

    def put(self, encoder_id: str, key: str, features: dict[str, np.ndarray],
            float64: tuple[str, ...] = ()) -> Path:
        if not features:
            raise ValueError(f"refusing to store an empty feature dict for {encoder_id}/{key}")
        arrays = {}
        for name, v in features.items():
            a = np.asarray(v, dtype=np.float64 if name in float64 else np.float32)
            if not np.all(np.isfinite(a)):
                raise ValueError(f"{encoder_id} produced non-finite values in {name!r}; not stored")
            arrays[name] = a
        p = self.path(encoder_id, key)
        with atomic_open(p, "wb") as f:
            np.savez(f, **arrays)
        self.writes += 1
        return p

    # -- memoised set-metric values -------------------------------------------------------------
    # A set metric (FVD/KVD/FAD and their per-category cells and bootstrap CIs) is a pure function
    # of its input rows; on 1024-d features the official float32 rule costs seconds per cell, so
    # its results are kept too, keyed by a hash of everything they depend on.
    def memo_path(self, key: str) -> Path:
        return self.root.parent / "memo" / key[:2] / f"{key}.json"

    def memo_get(self, key: str) -> Any:
        p = self.memo_path(key)
        try:
            return json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def memo_put(self, key: str, value: Any) -> None:
        with atomic_open(self.memo_path(key), "w") as f:
            json.dump(value, f)

    def stats(self) -> dict[str, int]:
        return {"hits": self.hits, "misses": self.misses, "writes": self.writes, "rejected": self.rejected}
