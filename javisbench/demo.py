"""``javisbench demo``: the whole pipeline offline, in a minute, on synthetic clips.

It renders a few SynthAV-lite clips (known event timeline), writes them and four deliberately
corrupted copies (audio shifted by 0.5 s, audio swapped between clips, frozen video, silent
audio) as JavisBench-style sample folders with one manifest, evaluates every variant with every
metric whose weights are present (with no weights downloaded: the weight-free ones), and prints
one table.  The corruptions should rank below the clean clips.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def build_demo_data(out_dir: Path, n_clips: int = 6, seed: int = 0) -> tuple[Path, dict[str, Path]]:
    """Write the clean clips and every corrupted variant; returns (manifest, variant -> folder)."""
    from reference_models.baselines import DEMO_VARIANTS
    from reference_models.synthav import make_clip, write_clip, write_manifest, write_meta

    clips = [make_clip(seed * 1000 + i) for i in range(n_clips)]
    pairs = [(c.frames, c.audio) for c in clips]
    sr, fps = clips[0].sr, clips[0].fps
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = write_manifest(out_dir / "synthav_demo.csv", clips)
    write_meta(out_dir / "synthav_demo_meta.json", clips)
    folders = {}
    for name, corrupt in DEMO_VARIANTS.items():
        d = out_dir / "samples" / name.replace(" ", "_").replace(".", "p")
        for i in range(n_clips):
            frames, audio = corrupt(pairs, i, sr)
            write_clip(d, f"sample_{i:04d}", frames, audio, fps, sr)
        folders[name] = d
    # the clean clips double as the "real" reference set (for set metrics, when their weights exist)
    real = out_dir / "real"
    for i, (frames, audio) in enumerate(pairs):
        write_clip(real, f"sample_{i:04d}", frames, audio, fps, sr)
    return manifest, folders


def run_demo(out_dir: str | Path = "javisbench-demo", n_clips: int = 6, device: str = "cpu",
             weights_dir: str | Path | None = None, metrics: list[str] | None = None,
             progress: bool = False) -> dict[str, Any]:
    """Build the demo data, evaluate every variant, return ``{variant: results}``.

    Every metric is requested (or only ``metrics``): those whose weights are present are
    computed, the others are listed as skipped with the file they need.
    """
    from javisbench.config import EvalConfig
    from javisbench.evaluate import evaluate

    out_dir = Path(out_dir)
    manifest, folders = build_demo_data(out_dir, n_clips)
    results = {}
    for name, folder in folders.items():
        cfg = EvalConfig(samples_dir=folder, bench=manifest, out=out_dir / "results" / f"{folder.name}.json",
                         metrics=metrics, device=device, weights_dir=Path(weights_dir) if weights_dir else None,
                         cache_dir=out_dir / "cache", reference_dir=out_dir / "real", model_name=name, progress=progress,
                         workers=2)
        results[name] = evaluate(cfg)
    return results


def demo_table(results: dict[str, dict[str, Any]]) -> str:
    """Variants as rows, metrics as columns (value ± CI half-width), best per column marked *."""
    names = list(results)
    keys: list[str] = []
    for r in results.values():
        for k in r["overall"]:
            if k not in keys:
                keys.append(k)
    first = results[names[0]]
    head = ["variant"] + [f"{k} {'↑' if first['metrics'][k]['higher_is_better'] else '↓'}" for k in keys] + ["failed"]
    best: dict[str, float] = {}
    for k in keys:
        vals = [r["overall"].get(k, {}).get("value") for r in results.values()]
        vals = [v for v in vals if v is not None]
        if vals:
            best[k] = max(vals) if first["metrics"][k]["higher_is_better"] else min(vals)
    lines = []
    for name, r in results.items():
        cells = [name]
        for k in keys:
            c = r["overall"].get(k)
            if not c or c["value"] is None:
                cells.append("—")
                continue
            v = c["value"]
            hw = None if c["ci_low"] is None else (c["ci_high"] - c["ci_low"]) / 2
            mark = "*" if best.get(k) == v else " "
            cells.append(f"{v:.3f}{'' if hw is None else f' ±{hw:.3f}'}{mark}")
        cells.append(str(len(r["failures"])))
        lines.append(cells)
    widths = [max(len(str(x[i])) for x in [head] + lines) for i in range(len(head))]
    fmt = lambda row: "  ".join(str(c).ljust(w) for c, w in zip(row, widths))  # noqa: E731
    out = [fmt(head), "  ".join("-" * w for w in widths)] + [fmt(r) for r in lines]
    skipped = {k: v for r in results.values() for k, v in r["skipped"].items()}
    if skipped:
        out.append("")
        out.append(f"skipped (weights not present): {', '.join(sorted(skipped))} — see `javisbench weights list`")
    warn = {w for r in results.values() for ws in r["warnings"].values() for w in ws}
    for w in sorted(warn):
        out.append(f"note: {w}")
    return "\n".join(out)


def ranking_ok(results: dict[str, dict[str, Any]], key: str) -> bool:
    """True when every corrupted variant scores worse than the clean clips on ``key``."""
    clean = results["clean"]["overall"][key]["value"]
    hib = results["clean"]["metrics"][key]["higher_is_better"]
    for name, r in results.items():
        if name == "clean":
            continue
        v = r["overall"][key]["value"]
        if v is None or not np.isfinite(v):
            continue
        if (v >= clean) if hib else (v <= clean):
            return False
    return True
