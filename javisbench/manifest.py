"""Benchmark manifests: the official JavisBench CSV (and our own benches in the same form).

Row *i* (0-based, in file order) is scored from ``SAMPLES_DIR/sample_{i:04d}.mp4`` (plus an
optional ``sample_{i:04d}.wav``; the mp4's own audio track is used when there is no wav), or
from the ``pred_video_path`` / ``pred_audio_path`` columns when no samples folder is given.

Everything here runs before any model loads: a manifest problem is an error naming the row and
the expected form; a problem with one sample's files is reported per sample.
"""
from __future__ import annotations

import csv
import hashlib
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

TEXT_COLUMN = "text"
AUDIO_TEXT_COLUMN = "audio_text"


class ManifestError(ValueError):
    """The manifest itself is wrong (the run stops before any model is loaded)."""


@dataclass(frozen=True)
class ManifestRow:
    index: int                     # 0-based position in the manifest (after --limit)
    line: int                      # 1-based line number in the CSV file (header is line 1)
    sample_id: str                 # sample_{index:04d}
    text: str                      # the video prompt
    audio_text: str                # the audio prompt (audio_text, else text)
    raw: dict[str, str] = field(repr=False, compare=False, default_factory=dict)


@dataclass(frozen=True)
class Manifest:
    path: Path
    name: str
    sha256: str
    columns: tuple[str, ...]
    rows: tuple[ManifestRow, ...]

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def has_labels(self) -> bool:
        return any(re.fullmatch(r"cat\d+_ind", c) for c in self.columns)

    def raw_rows(self) -> list[dict[str, str]]:
        return [r.raw for r in self.rows]


def sample_id(index: int) -> str:
    return f"sample_{index:04d}"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_manifest(path: str | Path, limit: int | None = None) -> Manifest:
    """Read and check a benchmark CSV.

    Raises:
        ManifestError: missing file, no header, a missing ``text`` column, an empty prompt,
            a ragged row, or duplicate ``id`` values, each naming the line and what was expected.
    """
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"manifest {path} does not exist (expected a JavisBench-style CSV with a 'text' column)")
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            try:
                header = next(reader)
            except StopIteration:
                raise ManifestError(f"{path} is empty: expected a header line with at least a 'text' column") from None
            header = [h.strip() for h in header]
            if header and header[0].startswith("\ufeff"):
                header[0] = header[0][1:]
            if TEXT_COLUMN not in header:
                raise ManifestError(
                    f"{path}: no '{TEXT_COLUMN}' column; got columns {header}. The official JavisBench CSV has "
                    "text, audio_text, path, audio_path, cat0_ind..cat4_ind"
                )
            dupes = sorted({h for h in header if header.count(h) > 1})
            if dupes:
                raise ManifestError(f"{path}: duplicate column names {dupes}")
            rows: list[ManifestRow] = []
            seen_ids: dict[str, int] = {}
            for lineno, values in enumerate(reader, start=2):
                if not values or all(not v.strip() for v in values):
                    continue  # blank line
                if len(values) != len(header):
                    raise ManifestError(
                        f"{path} line {lineno}: expected {len(header)} fields ({', '.join(header)}), got {len(values)}"
                    )
                raw = dict(zip(header, values))
                text = raw[TEXT_COLUMN].strip()
                if not text:
                    raise ManifestError(f"{path} line {lineno}: empty '{TEXT_COLUMN}' (every row needs a video prompt)")
                rid = raw.get("id", "").strip()
                if rid:
                    if rid in seen_ids:
                        raise ManifestError(
                            f"{path} line {lineno}: duplicate id {rid!r} (first seen on line {seen_ids[rid]}); "
                            "every row must be a distinct sample"
                        )
                    seen_ids[rid] = lineno
                audio_text = raw.get(AUDIO_TEXT_COLUMN, "").strip() or text
                idx = len(rows)
                rows.append(ManifestRow(idx, lineno, sample_id(idx), text, audio_text, raw))
                if limit is not None and len(rows) >= limit:
                    break
    except UnicodeDecodeError as e:
        raise ManifestError(f"{path}: not UTF-8 text ({e})") from None
    except csv.Error as e:
        raise ManifestError(f"{path}: malformed CSV ({e})") from None
    if not rows:
        raise ManifestError(f"{path}: no data rows after the header")
    return Manifest(path=path, name=path.stem, sha256=_sha256(path), columns=tuple(header), rows=tuple(rows))


# ---------------------------------------------------------------------------------------------
# sample files
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SampleFiles:
    sample_id: str
    video: Path
    audio: Path | None              # a separate wav; None: use the mp4's audio track
    problem: str | None = None      # why this sample cannot be read (missing file, ...)


_SAMPLE_RE = re.compile(r"sample_(\d{4,})\.(mp4|wav)$")


def resolve_samples(manifest: Manifest, samples_dir: str | Path | None) -> list[SampleFiles]:
    """Map manifest rows to files; per-sample problems are recorded, not raised."""
    out: list[SampleFiles] = []
    if samples_dir is None:
        if "pred_video_path" not in manifest.columns:
            raise ManifestError(
                f"{manifest.path}: no samples folder given and no 'pred_video_path' column: pass SAMPLES_DIR "
                "holding sample_0000.mp4, sample_0001.mp4, ..."
            )
        base = manifest.path.parent
        for r in manifest.rows:
            v = Path(r.raw["pred_video_path"].strip())
            v = v if v.is_absolute() else base / v
            a_raw = r.raw.get("pred_audio_path", "").strip()
            a = (Path(a_raw) if Path(a_raw).is_absolute() else base / a_raw) if a_raw else None
            out.append(_check_files(r.sample_id, v, a, explicit_audio=bool(a_raw)))
        return out
    d = Path(samples_dir)
    if not d.is_dir():
        raise ManifestError(f"samples folder {d} does not exist")
    for r in manifest.rows:
        v = d / f"{r.sample_id}.mp4"
        a = d / f"{r.sample_id}.wav"
        out.append(_check_files(r.sample_id, v, a if a.exists() else None, explicit_audio=False))
    return out


def real_samples(manifest: Manifest, real_dir: str | Path) -> list[SampleFiles]:
    """The real clips of the manifest's rows in ``real_dir``: ``sample_{i:04d}.mp4`` (+ ``.wav``)
    when the folder is laid out like a samples folder, else the ``path`` / ``audio_path`` columns
    taken relative to it (the original's layout)."""
    d = Path(real_dir)
    if (not manifest.rows or (d / "sample_0000.mp4").exists() or (d / f"{manifest.rows[0].sample_id}.mp4").exists()
            or "path" not in manifest.columns):
        return resolve_samples(manifest, d)
    if not d.is_dir():
        raise ManifestError(f"real clips folder {d} does not exist")
    out = []
    for r in manifest.rows:
        v_raw = r.raw["path"].strip()
        a_raw = r.raw.get("audio_path", "").strip()
        a = d / a_raw if a_raw and a_raw != v_raw else None
        out.append(_check_files(r.sample_id, d / v_raw, a, explicit_audio=a is not None))
    return out


def manifest_real_samples(manifest: Manifest) -> list[SampleFiles]:
    """The real (ground-truth) clips the manifest's ``path`` / ``audio_path`` columns name, as the
    original tool reads them when no feature cache is given (``audio_path`` absent or equal to
    ``path``: the video's own audio track).

    A relative path is taken relative to the manifest's folder, else to the working directory
    (the original's convention).  A row whose file is missing carries its ``problem``.
    """
    if "path" not in manifest.columns:
        raise ManifestError(f"{manifest.path}: no 'path' column: the manifest names no real clips")
    base = manifest.path.parent

    def find(raw: str) -> Path:
        p = Path(raw).expanduser()
        if p.is_absolute():
            return p
        return base / p if (base / p).exists() or not p.exists() else p

    out = []
    for r in manifest.rows:
        v_raw = r.raw["path"].strip()
        a_raw = r.raw.get("audio_path", "").strip()
        if not v_raw:
            out.append(SampleFiles(r.sample_id, base, None, f"line {r.line}: empty 'path' (no real clip for this row)"))
            continue
        a = find(a_raw) if a_raw and a_raw != v_raw else None
        files = _check_files(r.sample_id, find(v_raw), a, explicit_audio=a is not None)
        if files.problem:
            files = replace(files, problem=f"line {r.line}: {files.problem.replace('named in pred_audio_path', 'named in audio_path')}")
        out.append(files)
    return out


def _check_files(sid: str, video: Path, audio: Path | None, explicit_audio: bool) -> SampleFiles:
    if not video.is_file():
        return SampleFiles(sid, video, audio, f"missing video file {video} (expected {video.name} for this row)")
    if video.stat().st_size == 0:
        return SampleFiles(sid, video, audio, f"empty video file {video} (0 bytes)")
    if explicit_audio and audio is not None and not audio.is_file():
        return SampleFiles(sid, video, audio, f"missing audio file {audio} named in pred_audio_path")
    return SampleFiles(sid, video, audio)


def extra_sample_files(manifest: Manifest, samples_dir: str | Path) -> list[str]:
    """Files named like samples beyond the manifest's rows (a sign of the wrong manifest)."""
    n = len(manifest)
    extra = []
    for p in sorted(Path(samples_dir).iterdir()):
        m = _SAMPLE_RE.match(p.name)
        if m and int(m.group(1)) >= n:
            extra.append(p.name)
    return extra


def summary(manifest: Manifest) -> dict[str, Any]:
    return {"name": manifest.name, "path": str(manifest.path), "manifest_sha256": manifest.sha256, "n_rows": len(manifest)}
