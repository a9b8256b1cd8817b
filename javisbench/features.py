"""The content-addressed feature store.

Every feature row is stored under a key made of (sample content hash, encoder id + code version +
weights sha256, protocol fingerprint, prompts when the encoder reads them).  A re-run, a resumed
run, a new breakdown or a new table reads what is stored and computes nothing twice.

Layout: ``<root>/features/<encoder id>/<key[:2]>/<key>.npz``, one small file per (sample,
encoder); a run's shard is its encoder folder, so stores from several machines merge by
copying folders.  Writes go to a temporary file in the same folder and are renamed into place,
so a killed run leaves either a whole entry or none.  Everything is stored as float32.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np


def default_cache_dir() -> Path:
    env = os.environ.get("JAVISBENCH_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "javisbench"


def feature_key(content_hash: str, encoder_fingerprint: str, protocol_fingerprint: str, prompts: tuple[str, ...] = ()) -> str:
    blob = json.dumps([content_hash, encoder_fingerprint, protocol_fingerprint, list(prompts)], ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class FeatureStore:
    """Atomic, resumable, float32 feature files under ``<cache_dir>/features``."""

    def __init__(self, cache_dir: str | Path | None = None) -> None:
        self.root = (Path(cache_dir).expanduser() if cache_dir else default_cache_dir()) / "features"
        self.hits = 0
        self.misses = 0
        self.writes = 0

    def path(self, encoder_id: str, key: str) -> Path:
        return self.root / encoder_id / key[:2] / f"{key}.npz"

    def get(self, encoder_id: str, key: str) -> dict[str, np.ndarray] | None:
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
        self.hits += 1
        return out

    def put(self, encoder_id: str, key: str, features: dict[str, np.ndarray]) -> Path:
        if not features:
            raise ValueError(f"refusing to store an empty feature dict for {encoder_id}/{key}")
        arrays = {}
        for name, v in features.items():
            a = np.asarray(v, dtype=np.float32)
            if not np.all(np.isfinite(a)):
                raise ValueError(f"{encoder_id} produced non-finite values in {name!r}; not stored")
            arrays[name] = a
        p = self.path(encoder_id, key)
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npz", dir=p.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, **arrays)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, p)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self.writes += 1
        return p

    def stats(self) -> dict[str, int]:
        return {"hits": self.hits, "misses": self.misses, "writes": self.writes}
