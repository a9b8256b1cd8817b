"""Bench folders as training data (spec §2.3) and the real clips the baselines read.

A *bench* is a JavisBench-style CSV — ``text`` (joint caption), ``audio_text``, optional
``video_text``, ``path`` / ``audio_path`` (clip files relative to the CSV's folder; else
``sample_{i:04d}.mp4`` / ``.wav`` next to it), optional ``cat0_ind`` … ``cat4_ind`` — given as the
CSV or as the folder holding ``manifest.csv`` (what ``javisbench synthav make`` writes; its
``events.json`` adds the event timelines).

:class:`BenchData` decodes every clip once to the tiny training size (default 4 s, 8 fps, 32×32,
16 kHz), keeps it in memory and caches it as ``.cache/decoded-*.npz`` in the bench folder (keyed by
the CSV's and the clips' sizes and times), so the data loader costs nothing per step.
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
import tempfile
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from reference_models.blocks.melwave import MelSpec
from reference_models.interface import Batch

LABEL_COLUMNS = [f"cat{i}_ind" for i in range(5)]
_TO_UNIT = (np.arange(256, dtype=np.float32) / np.float32(127.5) - np.float32(1.0)).astype(np.float32)


@dataclass(frozen=True)
class BenchRow:
    index: int
    text: str
    audio_text: str
    video_text: str
    video: Path
    audio: Path | None
    labels: tuple[int, ...]


def resolve_manifest(bench: str | Path) -> Path:
    """The CSV of a bench given as a CSV path or a folder with ``manifest.csv``."""
    p = Path(bench)
    if p.is_dir():
        m = p / "manifest.csv"
        if not m.is_file():
            raise FileNotFoundError(f"{p} is not a bench folder: no manifest.csv in it (expected a SynthAV/JavisBench-"
                                    "style bench: manifest.csv with text, audio_text, path, audio_path columns and the clips)")
        return m
    if not p.is_file():
        raise FileNotFoundError(f"bench {p} does not exist (expected a manifest CSV or a folder with manifest.csv)")
    return p


def read_bench(bench: str | Path, limit: int | None = None, need_files: bool = True) -> list[BenchRow]:
    """Parse and check a bench CSV; a one-line ValueError/FileNotFoundError naming the row and what
    was expected (no ``text`` column, an empty caption, a missing clip)."""
    m = resolve_manifest(bench)
    root = m.parent
    try:
        with open(m, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            header = [h.strip() for h in (reader.fieldnames or [])]
            if "text" not in header:
                raise ValueError(f"{m}: no 'text' column (got {header}); a bench needs captions: "
                                 "text, audio_text, path, audio_path, cat0_ind..cat4_ind")
            rows: list[BenchRow] = []
            for i, raw in enumerate(reader):
                raw = {(k or "").strip(): (v or "").strip() for k, v in raw.items()}
                line = i + 2
                if not raw.get("text"):
                    raise ValueError(f"{m} line {line}: empty 'text' caption (every row needs one)")
                vrel = raw.get("path") or f"sample_{i:04d}.mp4"
                arel = raw.get("audio_path") or ""
                video = root / vrel
                audio = root / arel if arel else (root / f"sample_{i:04d}.wav" if not raw.get("path") else None)
                if need_files and not video.is_file():
                    raise FileNotFoundError(f"{m} line {line}: clip {video} does not exist (column 'path', relative to {root})")
                if need_files and audio is not None and not audio.is_file():
                    raise FileNotFoundError(f"{m} line {line}: audio {audio} does not exist (column 'audio_path')")
                labels = []
                for c in LABEL_COLUMNS:
                    try:
                        labels.append(int(raw[c]) if raw.get(c, "") != "" else -1)
                    except ValueError:
                        raise ValueError(f"{m} line {line}: {c} = {raw[c]!r} is not an integer") from None
                rows.append(BenchRow(i, raw["text"], raw.get("audio_text") or raw["text"],
                                     raw.get("video_text") or raw["text"], video, audio, tuple(labels)))
                if limit is not None and len(rows) >= limit:
                    break
    except UnicodeDecodeError as e:
        raise ValueError(f"{m}: not UTF-8 text ({e})") from None
    except csv.Error as e:
        raise ValueError(f"{m}: malformed CSV ({e})") from None
    if not rows:
        raise ValueError(f"{m}: no rows after the header")
    return rows


# ---------------------------------------------------------------------------------------------
# decoding
# ---------------------------------------------------------------------------------------------
def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """PCM16 wav -> (mono float32 (N,), sample rate); int16 v maps to v / 32767 (the inverse of the
    suite's writer, so a written clip reads back exactly)."""
    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2:
            raise ValueError(f"{path}: expected 16-bit PCM, got {8 * w.getsampwidth()}-bit")
        ch, sr = w.getnchannels(), w.getframerate()
        x = np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float32) / 32767.0
    return x.reshape(-1, ch).mean(axis=1).astype(np.float32), sr


def read_video(path: str | Path) -> tuple[np.ndarray, float]:
    """All frames (T, H, W, 3) uint8 RGB and the frame rate."""
    import av

    try:
        with av.open(str(path)) as c:
            st = c.streams.video[0]
            fps = float(st.average_rate or st.guessed_rate or 0) or 8.0
            frames = [f.to_ndarray(format="rgb24") for f in c.decode(st)]
    except (av.error.FFmpegError, IndexError) as e:
        raise ValueError(f"{path}: cannot decode video ({e})") from None
    if not frames:
        raise ValueError(f"{path}: no video frames")
    return np.stack(frames), fps


def read_audio_of(row: BenchRow) -> tuple[np.ndarray, int]:
    """The row's audio: its wav, else the mp4's audio track (mono float32, rate)."""
    if row.audio is not None:
        return read_wav(row.audio)
    import av

    with av.open(str(row.video)) as c:
        if not c.streams.audio:
            raise ValueError(f"{row.video}: no audio_path and no audio track")
        st = c.streams.audio[0]
        sr = st.rate
        chunks = [f.to_ndarray().astype(np.float32).reshape(f.to_ndarray().shape[0], -1).mean(0) if f.format.is_planar
                  else f.to_ndarray().astype(np.float32).reshape(-1, st.channels).mean(1) for f in c.decode(st)]
    return np.concatenate(chunks).astype(np.float32), sr


def fit_video(frames: np.ndarray, fps: float, n_frames: int, out_fps: float, height: int, width: int) -> np.ndarray:
    """Resample to ``n_frames`` at ``out_fps`` (nearest earlier frame; the last frame repeats past the
    end) and resize to height×width (area averaging); (T,H,W,3) uint8 -> (n_frames,height,width,3) uint8."""
    idx = np.minimum(np.floor(np.arange(n_frames) / out_fps * fps + 1e-6).astype(int), len(frames) - 1)
    x = frames[idx]
    if x.shape[1:3] != (height, width):
        t = torch.from_numpy(x).permute(0, 3, 1, 2).float()
        t = torch.nn.functional.interpolate(t, size=(height, width), mode="area")
        x = t.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return np.ascontiguousarray(x)


def fit_audio(audio: np.ndarray, sr: int, n_samples: int, out_sr: int) -> np.ndarray:
    """Resample (polyphase) to ``out_sr`` and cut or zero-pad to ``n_samples``."""
    if sr != out_sr:
        from math import gcd

        from scipy.signal import resample_poly

        g = gcd(int(sr), int(out_sr))
        audio = resample_poly(audio, out_sr // g, sr // g).astype(np.float32)
    out = np.zeros(n_samples, np.float32)
    out[: min(n_samples, len(audio))] = audio[:n_samples]
    return out


class BenchData:
    """A bench decoded to tensors of one size, with the §2.3 batch.

    Args:
        bench: CSV path or bench folder; duration_s, fps, height, width, sample_rate: the size
        every clip is brought to; cache: write/read the decoded ``.npz`` cache.
    Attributes: ``video`` (N,T,H,W,3) uint8, ``wave`` (N,S) float32, ``mel`` (N,Tm,F) float32
    normalised, ``rows``, ``labels`` (N,5) int64, ``events`` (per clip, from events.json or []).
    """

    def __init__(self, bench: str | Path, duration_s: float = 4.0, fps: float = 8.0, height: int = 32,
                 width: int = 32, sample_rate: int = 16000, cache: bool = True) -> None:
        self.manifest = resolve_manifest(bench)
        self.rows = read_bench(self.manifest)
        self.duration_s, self.fps, self.height, self.width, self.sample_rate = duration_s, fps, height, width, sample_rate
        self.n_frames = int(round(duration_s * fps))
        self.n_samples = int(round(duration_s * sample_rate))
        self.manifest_sha256 = hashlib.sha256(self.manifest.read_bytes()).hexdigest()
        self.video, self.wave = self._load(cache)
        self.mel_spec = MelSpec(sample_rate=sample_rate)
        with torch.no_grad():
            self.mel = torch.cat([self.mel_spec(torch.from_numpy(self.wave[i:i + 64]))
                                  for i in range(0, len(self.wave), 64)]).numpy()
        self.labels = np.array([r.labels for r in self.rows], np.int64)
        ev = self.manifest.parent / "events.json"
        clips = json.loads(ev.read_text(encoding="utf-8")).get("clips", []) if ev.is_file() else []
        by_index = {c.get("index"): c for c in clips}
        self.events = [by_index.get(r.index, {}).get("events", []) for r in self.rows]
        self.seeds = np.array([int(by_index.get(r.index, {}).get("seed", r.index)) for r in self.rows], np.int64)

    def __len__(self) -> int:
        return len(self.rows)

    def _cache_key(self) -> str:
        h = hashlib.sha256(self.manifest_sha256.encode())
        for r in self.rows:
            for p in (r.video, r.audio):
                if p is not None:
                    st = p.stat()
                    h.update(f"{p.name}:{st.st_size}:{st.st_mtime_ns}".encode())
        h.update(f"{self.n_frames}x{self.height}x{self.width}@{self.fps}/{self.n_samples}@{self.sample_rate}".encode())
        return h.hexdigest()[:16]

    def _load(self, cache: bool) -> tuple[np.ndarray, np.ndarray]:
        path = self.manifest.parent / ".cache" / f"decoded-{self.manifest.stem}-{self._cache_key()}.npz"
        if cache and path.is_file():
            with np.load(path) as z:
                return z["video"], z["wave"]
        video = np.empty((len(self.rows), self.n_frames, self.height, self.width, 3), np.uint8)
        wav = np.empty((len(self.rows), self.n_samples), np.float32)
        for i, r in enumerate(self.rows):
            frames, fps = read_video(r.video)
            video[i] = fit_video(frames, fps, self.n_frames, self.fps, self.height, self.width)
            a, sr = read_audio_of(r)
            wav[i] = fit_audio(a, sr, self.n_samples, self.sample_rate)
        if cache:
            try:
                path.parent.mkdir(exist_ok=True)
                fd, tmp = tempfile.mkstemp(suffix=".npz", dir=path.parent)
                os.close(fd)
                np.savez(tmp, video=video, wave=wav)
                os.replace(tmp, path)
            except OSError:
                pass   # a read-only bench: decode again next time
        return video, wav

    def indices_for_step(self, step: int, batch_size: int, seed: int) -> np.ndarray:
        """The clips of training step ``step``: a seeded pass over a per-epoch permutation, so
        every clip is seen once per epoch and a resumed run draws the same batches."""
        n = len(self)
        out = []
        for k in range(step * batch_size, (step + 1) * batch_size):
            epoch, pos = divmod(k, n)
            perm = np.random.default_rng([seed, 7, epoch]).permutation(n)
            out.append(perm[pos])
        return np.array(out, np.int64)

    def batch(self, indices: np.ndarray | list[int], device: str | torch.device = "cpu") -> Batch:
        """The §2.3 batch of the given clips."""
        idx = np.asarray(indices, np.int64)
        # uint8 -> [-1, 1] through a 256-entry table in numpy: torch's threaded cast of small
        # tensors costs ~15 ms on a busy 2-core machine, the table lookup < 1 ms
        v = torch.from_numpy(np.ascontiguousarray(_TO_UNIT[self.video[idx]].transpose(0, 1, 4, 2, 3))).to(device)
        return Batch(video=v, wave=torch.from_numpy(self.wave[idx]).to(device),
                     mel=torch.from_numpy(self.mel[idx]).to(device),
                     caption=[self.rows[i].text for i in idx], caption_video=[self.rows[i].video_text for i in idx],
                     caption_audio=[self.rows[i].audio_text for i in idx],
                     labels=torch.from_numpy(self.labels[idx]).to(device), events=[self.events[i] for i in idx],
                     seed=torch.from_numpy(self.seeds[idx]).to(device), fps=self.fps, sample_rate=self.sample_rate)

    def describe(self) -> dict[str, Any]:
        return {"manifest": str(self.manifest), "manifest_sha256": self.manifest_sha256, "n": len(self),
                "size": {"duration_s": self.duration_s, "fps": self.fps, "height": self.height, "width": self.width,
                         "sample_rate": self.sample_rate}}
