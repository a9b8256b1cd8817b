"""The evaluation configuration: what the CLI parses and ``evaluate`` reads."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping


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
    batch_size: int = 8                   # every encoder's batch; also "8 synchformer=2" / ["8", "i3d=16"] / a mapping
    batch_sizes: dict[str, int] = field(default_factory=dict)   # encoder id -> batch size (overrides batch_size)
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

    def __post_init__(self) -> None:
        if not isinstance(self.batch_size, int) or isinstance(self.batch_size, bool) or self.batch_sizes:
            default, over = parse_batch_sizes(self.batch_size)
            extra = parse_batch_sizes(dict(self.batch_sizes))[1] if self.batch_sizes else {}
            self.batch_size, self.batch_sizes = default, {**over, **extra}
        elif self.batch_size < 1:
            raise ValueError(f"--batch-size: expected a positive integer, got {self.batch_size}")

    def batch_size_for(self, encoder_id: str) -> int:
        """The batch size of one encoder: its override, else the default."""
        return int(self.batch_sizes.get(encoder_id, self.batch_size))


def _positive_batch(value: Any, what: str) -> int:
    try:
        n = int(str(value).strip()) if not isinstance(value, bool) else -1
    except ValueError:
        n = -1
    if n < 1 or (isinstance(value, float) and value != n):
        raise ValueError(f"--batch-size {what}: expected a positive integer, got {value!r}")
    return n


def parse_batch_sizes(spec: int | str | Mapping[str, Any] | Any, default: int = 8) -> tuple[int, dict[str, int]]:
    """``--batch-size`` as (default, encoder id -> batch size).

    ``spec``: an int; a string or a sequence of tokens, each ``N`` (the default) or ``ENCODER=N``;
    or a mapping encoder id -> N (key ``"default"`` or ``"*"`` sets the default).  Encoder ids
    are checked against the registry (``javisbench ls encoders``).

    Example:
        >>> parse_batch_sizes(["4", "synchformer=2", "i3d=16"])
        (4, {'i3d': 16, 'synchformer': 2})
        >>> parse_batch_sizes("synchformer=2")
        (8, {'synchformer': 2})
    """
    from javisbench.encoders import ENCODERS

    if isinstance(spec, bool) or spec is None:
        raise ValueError(f"--batch-size: expected a positive integer or ENCODER=N tokens, got {spec!r}")
    if isinstance(spec, (int, float)) and not isinstance(spec, bool):
        return _positive_batch(spec, str(spec)), {}
    if isinstance(spec, Mapping):
        pairs = [(str(k), v) for k, v in spec.items()]
    else:
        tokens = spec.split() if isinstance(spec, str) else [str(t) for t in spec]
        pairs = []
        for t in tokens:
            for part in t.split(","):
                if not part.strip():
                    continue
                k, sep, v = part.partition("=")
                pairs.append((k.strip(), v) if sep else ("default", k))
    out: dict[str, int] = {}
    for k, v in pairs:
        if k in ("default", "*"):
            default = _positive_batch(v, str(v))
            continue
        if k not in ENCODERS:
            raise ValueError(f"--batch-size {k}={v}: unknown encoder {k!r}; expected one of {', '.join(sorted(ENCODERS))}")
        out[k] = _positive_batch(v, f"{k}={v}")
    return int(default), dict(sorted(out.items()))
