"""The evaluation configuration: what the CLI parses and ``evaluate`` reads."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


def default_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


@dataclass
class EvalConfig:
    samples_dir: Path | None              # sample_XXXX.mp4 (+ .wav); None: pred_video_path column
    bench: Path                           # manifest CSV, or a folder bench (built-in name or YAML)
    out: Path | None = None               # results JSON
    protocol: str | None = None           # None: the bench's protocol (folder benches), else javisbench-official
    metrics: list[str] | None = None      # None: all
    device: str = "cpu"
    weights_dir: Path | None = None
    cache_dir: Path | None = None
    batch_size: int = 8
    workers: int = field(default_factory=default_workers)
    reference: Path | None = None         # official GT feature cache (<bench>-vanilla-max4s.pt) or .npz
    reference_dir: Path | None = None     # real clips to compute the reference features from
    model_name: str = "unnamed"
    model_meta: dict[str, str] = field(default_factory=dict)
    limit: int | None = None              # keep only the first N manifest rows
    where: str | None = None              # category filter, e.g. "sound_type=musical,temporal=simultaneous"
    subset: int | None = None             # a seeded random subset of this many rows
    subset_seed: int = 0
    taxonomy: str | Path | None = None    # taxonomy name or YAML (default: the bench's, else javisbench)
    per_sample: bool = True
    export_official: Path | None = None
    seed: int | None = None               # overrides the protocol's seed when given
    precision: str | None = None          # fp32 | bf16 | fp16: overrides the protocol's (not under javisbench-official)
    progress: bool | str = True           # auto | bar | plain | none (True: auto, False: none)
    force: bool = False                   # replace an existing --out / --export-official that is not ours
