"""Benchmark definitions: the named JavisBench CSVs and unconditional *folder* benches.

``--bench javisbench`` / ``--bench javisbench-mini`` name the official CSVs (10,140 and 1,000
rows), looked up in the data folder (env ``JAVISBENCH_DATA``, default ``~/.cache/javisbench/data``)
as ``JavisBench.csv`` / ``JavisBench-mini.csv``; a path to any CSV works as well.

A folder bench has no prompts and no manifest rows of its own: every video file under the
samples folder (``.mp4``, ``.avi``, ``.gif``, found recursively in sorted order, as the
MM-Diffusion loader lists them) is one sample, its audio read from the file itself (or from a
``.wav`` of the same name beside it).  The
definition (a small YAML file) names the protocol the published numbers use and the metrics
that make sense without prompts.  Built in: ``landscape`` and ``aist++`` (the closed-set
benches on which MM-Diffusion and JavisDiT report FVD/KVD/FAD); any other folder bench can be
described by a YAML file of the same form and passed as ``--bench my-bench.yaml``.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from javisbench.manifest import Manifest

#: file extensions the MM-Diffusion loader picks up (case-insensitive)
VIDEO_EXTENSIONS = ("avi", "gif", "mp4")

_HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class FolderBench:
    name: str
    title: str
    version: str
    description: str
    protocol: str                     # the protocol its published numbers use
    metrics: tuple[str, ...]          # default metrics (none of them needs a prompt)
    path: Path                        # the definition file
    sha256: str                       # of "folder-bench:<name>:<version>": the bench's identity in results
                                      # (editing the description does not change it; bump the version
                                      # when what a sample is changes)
    reported_in: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()


class BenchError(ValueError):
    """A bench definition is malformed or names something that does not exist."""


# ---------------------------------------------------------------------------------------------
# named JavisBench CSVs
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CsvBench:
    name: str
    file: str
    rows: int
    title: str


CSV_BENCHES = {
    "javisbench": CsvBench("javisbench", "JavisBench.csv", 10140, "JavisBench (5 aspects, 19 categories)"),
    "javisbench-mini": CsvBench("javisbench-mini", "JavisBench-mini.csv", 1000, "JavisBench-mini (a 1,000-row subset)"),
}
#: where the official data comes from (it is not redistributed here)
CSV_SOURCE = "the Hugging Face dataset JavisVerse/JavisBench (formerly JavisDiT/JavisBench)"


def data_dir() -> Path:
    """Folder of the named benches' CSVs and caches: env ``JAVISBENCH_DATA``, else ``~/.cache/javisbench/data``."""
    env = os.environ.get("JAVISBENCH_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "javisbench" / "data"


def resolve_csv_bench(ref: str | Path) -> Path | None:
    """The CSV a bench name stands for (``javisbench``, ``javisbench-mini``, any case, ``.csv`` optional),
    or None when ``ref`` is not such a name (an existing file is always taken as given).

    Raises:
        ManifestError: a known name whose CSV is not in the data folder, saying where to put it.
    """
    from javisbench.manifest import ManifestError

    p = Path(ref)
    if p.is_file():
        return None
    key = str(ref).strip().lower()
    key = key[:-4] if key.endswith(".csv") else key
    bench = CSV_BENCHES.get(key)
    if bench is None or p.parent != Path("."):
        return None
    path = data_dir() / bench.file
    if not path.is_file():
        raise ManifestError(
            f"bench {bench.name}: {path} not found. Put {bench.file} ({bench.rows} rows, from {CSV_SOURCE}) in "
            f"{data_dir()} (or point JAVISBENCH_DATA at the folder that holds it), or pass the CSV's path to --bench"
        )
    return path


def official_reference(manifest_path: Path) -> Path | None:
    """The released ground-truth cache of a JavisBench CSV, where the original layout puts it:
    ``<name>-vanilla-max4s.pt`` beside the CSV or under ``cache/fvd_fad/`` next to it."""
    name = f"{manifest_path.stem}-vanilla-max4s.pt"
    for cand in (manifest_path.parent / name, manifest_path.parent / "cache" / "fvd_fad" / name):
        if cand.is_file():
            return cand
    return None


def _builtin_files() -> list[Path]:
    return sorted(_HERE.glob("*.yaml"))


def load_bench_definition(path: str | Path) -> FolderBench:
    """Read and check a folder-bench YAML (keys: name, title, version, description, protocol, metrics)."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise BenchError(f"bench definition {path} does not exist")
    raw_bytes = path.read_bytes()
    try:
        d = yaml.safe_load(raw_bytes)
    except yaml.YAMLError as e:
        raise BenchError(f"{path}: not valid YAML ({e})") from None
    if not isinstance(d, dict):
        raise BenchError(f"{path}: expected a mapping with name, protocol, metrics; got {type(d).__name__}")
    if d.get("kind", "folder") != "folder":
        raise BenchError(f"{path}: kind {d.get('kind')!r} is not supported (expected 'folder'); "
                         "prompted benches are JavisBench-style CSV files")
    missing = [k for k in ("name", "protocol", "metrics") if not d.get(k)]
    if missing:
        raise BenchError(f"{path}: missing {', '.join(missing)} (expected name, protocol and a list of metrics)")
    from javisbench.protocol import PROTOCOLS
    from javisbench.suite import METRICS

    if d["protocol"] not in PROTOCOLS:
        raise BenchError(f"{path}: protocol {d['protocol']!r} is not one of {sorted(PROTOCOLS)}")
    metrics = d["metrics"]
    if not isinstance(metrics, list) or not all(isinstance(m, str) for m in metrics):
        raise BenchError(f"{path}: metrics must be a list of metric keys, got {metrics!r}")
    for m in metrics:
        if m not in METRICS:
            raise BenchError(f"{path}: unknown metric {m!r} (see `javisbench ls metrics`)")
        if METRICS[m].needs_text:
            raise BenchError(f"{path}: metric {m!r} needs prompts, which a folder bench does not have")
    return FolderBench(
        name=str(d["name"]), title=str(d.get("title", d["name"])), version=str(d.get("version", "1")),
        description=str(d.get("description", "")).strip(), protocol=str(d["protocol"]), metrics=tuple(metrics),
        path=path, sha256=hashlib.sha256(f"folder-bench:{d['name']}:{d.get('version', '1')}".encode()).hexdigest(),
        reported_in=tuple(str(x) for x in d.get("reported_in", []) or []),
        aliases=tuple(str(x) for x in d.get("aliases", []) or []),
    )


def builtin_benches() -> dict[str, FolderBench]:
    """The shipped folder benches, by name."""
    out = {}
    for f in _builtin_files():
        b = load_bench_definition(f)
        out[b.name] = b
    return out


def find_bench(ref: str | Path) -> FolderBench | None:
    """The folder bench ``ref`` names (a built-in name or alias, or a ``.yaml`` file), else None (a CSV)."""
    p = Path(ref)
    if p.suffix.lower() in (".yaml", ".yml"):
        return load_bench_definition(p)
    if p.is_file():
        return None
    key = str(ref).strip().lower()
    for b in builtin_benches().values():
        if key == b.name.lower() or key in (a.lower() for a in b.aliases):
            return b
    return None


def list_video_files(root: str | Path) -> list[Path]:
    """Video files under ``root``: entries sorted per directory, recursing into sub-folders."""
    root = Path(root)
    out: list[Path] = []
    for entry in sorted(root.iterdir(), key=lambda p: p.name):
        ext = entry.name.rsplit(".", 1)[-1].lower() if "." in entry.name else ""
        if entry.is_file() and ext in VIDEO_EXTENSIONS:
            out.append(entry)
        elif entry.is_dir():
            out.extend(list_video_files(entry))
    return out


def folder_manifest(bench: FolderBench, samples_dir: str | Path | None, limit: int | None = None) -> Any:
    """A :class:`~javisbench.manifest.Manifest` with one row per video file of ``samples_dir``.

    Sample ids are the files' paths relative to the folder; prompts are empty.  A ``.wav`` with the
    same stem beside a video is its audio (as ``sample_0000.wav`` is for the CSV benches); otherwise
    the video file's own audio track is read.
    """
    from javisbench.manifest import Manifest, ManifestError, ManifestRow

    if samples_dir is None:
        raise ManifestError(f"bench {bench.name} is a folder bench: pass the folder of clips to score")
    d = Path(samples_dir)
    if not d.is_dir():
        raise ManifestError(f"samples folder {d} does not exist")
    files = list_video_files(d)
    if limit is not None:
        files = files[:limit]
    if not files:
        raise ManifestError(f"{d}: no video files ({', '.join('.' + e for e in VIDEO_EXTENSIONS)}) for bench {bench.name}")
    rows = []
    for i, f in enumerate(files):
        rel = f.relative_to(d).as_posix()
        wav = f.with_suffix(".wav")
        raw = {"text": "", "pred_video_path": str(f.resolve()), "pred_audio_path": str(wav.resolve()) if wav.is_file() else ""}
        rows.append(ManifestRow(index=i, line=i + 1, sample_id=rel, text="", audio_text="", raw=raw))
    return Manifest(path=bench.path, name=bench.name, sha256=bench.sha256,
                    columns=("text", "pred_video_path", "pred_audio_path"), rows=tuple(rows))


# ---------------------------------------------------------------------------------------------
# loading a bench for a run: rows, labels, selection
# ---------------------------------------------------------------------------------------------
def load_labels(manifest: "Manifest", taxonomy_ref: str | Path | None) -> tuple[Any, Any]:
    """Parse the manifest's ``cat{a}_ind`` columns against the taxonomy (fails fast with the row)."""
    if not manifest.has_labels:
        return None, None
    from taxonomy import load_taxonomy, parse_labels

    tax = load_taxonomy(taxonomy_ref or "javisbench")
    ids = [f"{manifest.path.name} line {r.line} ({r.sample_id})" for r in manifest.rows]
    return tax, parse_labels(manifest.raw_rows(), tax, row_ids=ids)


def select_rows(manifest: "Manifest", tax: Any, labels: Any, where: str | None, subset: int | None,
                subset_seed: int) -> tuple["Manifest", Any]:
    """Keep the rows matching ``--where`` and/or a seeded ``--subset`` of them.

    Rows keep their manifest index, so ``sample_{i:04d}`` and the pairing with reference rows
    are unchanged; only which rows are scored changes.
    """
    import dataclasses

    pos = np.arange(len(manifest))
    if where:
        if labels is None:
            raise ValueError(f"--where {where!r} needs category labels, but {manifest.path} has no cat{{a}}_ind columns")
        from taxonomy import apply_where, parse_where

        pos = apply_where(labels, parse_where(where, tax))
        if pos.size == 0:
            raise ValueError(f"--where {where!r} keeps no row of {manifest.path}")
    if subset is not None:
        from taxonomy import mini_split

        if subset > pos.size:
            raise ValueError(f"--subset {subset} is larger than the {pos.size} selected rows")
        pos = pos[mini_split(pos.size, subset, subset_seed)]
    if pos.size == len(manifest):
        return manifest, labels
    rows = tuple(manifest.rows[i] for i in pos)
    return dataclasses.replace(manifest, rows=rows), (None if labels is None else labels.subset(pos))


def load_bench(bench: str | Path, samples_dir: str | Path | None, limit: int | None = None) -> tuple["Manifest", Any]:
    """``(manifest, folder bench definition or None)`` for ``--bench``: a JavisBench-style CSV (a path,
    or ``javisbench`` / ``javisbench-mini`` from the data folder), or a folder bench (a built-in name
    such as ``landscape`` or a YAML definition) whose rows are the video files of ``samples_dir``."""
    from javisbench.manifest import load_manifest

    named = resolve_csv_bench(bench)
    if named is not None:
        return load_manifest(named, limit=limit), None
    bench_def = find_bench(bench)
    if bench_def is not None:
        return folder_manifest(bench_def, samples_dir, limit), bench_def
    return load_manifest(bench, limit=limit), None
