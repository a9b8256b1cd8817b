"""``javisbench validate``: check a manifest and a samples folder before any model is loaded."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from javisbench.manifest import ManifestError, extra_sample_files, resolve_samples


@dataclass
class ValidationReport:
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    info: list[str] = field(default_factory=list)
    probes: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors

    def render(self) -> str:
        out = list(self.info)
        out += [f"error: {e}" for e in self.errors]
        out += [f"warning: {w}" for w in self.warnings]
        out.append("OK" if self.ok else f"{len(self.errors)} error(s)")
        return "\n".join(out)


def validate(bench: Path, samples_dir: Path | None, limit: int | None = None, taxonomy: str | None = None,
             probe: bool = True) -> ValidationReport:
    from javisbench.benches import BenchError
    from javisbench.benches import load_bench

    rep = ValidationReport()
    try:
        manifest, bench_def = load_bench(bench, samples_dir, limit=limit)
    except (ManifestError, BenchError) as e:
        rep.errors.append(str(e))
        return rep
    if bench_def is not None:
        rep.info.append(f"folder bench {bench_def.name}: {len(manifest)} video files under {samples_dir}, "
                        f"protocol {bench_def.protocol}")
        samples_dir = None     # rows carry their files
    rep.info.append(f"manifest {manifest.path}: {len(manifest)} rows, columns {', '.join(manifest.columns)}")
    if manifest.has_labels:
        from javisbench.benches import load_labels

        try:
            tax, labels = load_labels(manifest, taxonomy)
            rep.info.append(f"labels: taxonomy {tax.name} v{tax.version}, {tax.n_categories} categories")
        except ValueError as e:
            rep.errors.append(str(e))
    elif bench_def is None:
        rep.warnings.append("no cat{a}_ind columns: no per-category breakdown")
    try:
        samples = resolve_samples(manifest, samples_dir)
    except ManifestError as e:
        rep.errors.append(str(e))
        return rep
    for s in samples:
        if s.problem:
            rep.errors.append(f"{s.sample_id}: {s.problem}")
    if samples_dir is not None and limit is None:
        extra = extra_sample_files(manifest, samples_dir)
        if extra:
            rep.errors.append(
                f"{len(extra)} sample file(s) beyond the manifest's {len(manifest)} rows (e.g. {extra[0]}): "
                "wrong manifest? (use --limit N to score only the first N rows on purpose)"
            )
    if probe:
        from javisbench.decode import DecodeError, probe_sample

        for s in samples:
            if s.problem:
                continue
            try:
                rep.probes[s.sample_id] = info = probe_sample(s.video, s.audio)
            except DecodeError as e:
                rep.errors.append(f"{s.sample_id}: {e}")
                continue
            if not info.get("has_audio") and s.audio is None:
                rep.errors.append(f"{s.sample_id}: {s.video.name} has no audio track and there is no {s.sample_id}.wav")
        n_ok = len(rep.probes)
        rep.info.append(f"probed {n_ok}/{len(samples)} samples")
    return rep
