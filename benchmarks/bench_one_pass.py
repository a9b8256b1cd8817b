"""One pass for every metric vs one pass per metric (the original tool's structure).

Writes the deterministic fixture checkpoints (real architectures, official file formats) into a
temporary weights dir, renders N synthetic 240p clips, then times:

* ``one pass``: all requested metrics in one ``evaluate`` (each clip decoded once, each model
  loaded once, ImageBind serving all of its metrics), cold feature store;
* ``per metric``: each metric in its own ``evaluate`` with its own cold store (every metric
  decodes every clip and loads its model again, as the original's metric groups do);
* ``warm``: the one-pass run again on its filled store.

It prints samples/s, the ratios and the per-stage split (decode+prepare, encode per encoder).

    python benchmarks/bench_one_pass.py --n 8 --metrics fvd kvd fad clip_score clap_score av_align
    python benchmarks/bench_one_pass.py --n 8 --metrics fvd kvd fad --protocol javisbench-mmdiffusion
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from javisbench.config import EvalConfig
from javisbench.evaluate import evaluate
from javisbench.golden import GOLDEN_WRITERS, write_golden_weights
from javisbench.suite import get_metric

GOLDEN = Path(__file__).resolve().parent.parent / "tests" / "golden"


def _run(root: Path, samples: Path, manifest: Path, weights: Path, metrics: list[str], cache: Path, a: argparse.Namespace) -> tuple[float, dict]:
    cfg = EvalConfig(samples_dir=samples, bench=manifest, out=None, metrics=metrics, weights_dir=weights, cache_dir=cache,
                     reference_dir=samples if any(get_metric(m).kind == "set" for m in metrics) else None,
                     batch_size=a.batch_size, workers=a.workers, device=a.device, progress=False, protocol=a.protocol)
    t = time.perf_counter()
    r = evaluate(cfg)
    return time.perf_counter() - t, r


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--metrics", nargs="+", default=["fvd", "kvd", "fad", "clip_score", "clap_score", "av_align"])
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--duration", type=float, default=4.0, help="clip length in seconds")
    ap.add_argument("--skip-separate", action="store_true")
    ap.add_argument("--protocol", default="javisbench-official",
                    help="e.g. javisbench-mmdiffusion to time the MM-Diffusion loader for FVD/KVD/FAD")
    a = ap.parse_args()

    from reference_models.synthav import make_clip, write_clip, write_manifest

    root = Path(tempfile.mkdtemp(prefix="javisbench-onepass-"))
    try:
        encoders = sorted({e for m in a.metrics for e in get_metric(m).encoders if e in GOLDEN_WRITERS})
        t = time.perf_counter()
        weights = write_golden_weights(GOLDEN, root / "weights", encoders)
        print(f"fixture checkpoints for {', '.join(encoders) or 'none'} written in {time.perf_counter() - t:.1f} s")
        clips = [make_clip(i, duration=a.duration, width=426, height=240) for i in range(a.n)]
        manifest = write_manifest(root / "bench.csv", clips)
        for i, c in enumerate(clips):
            write_clip(root / "samples", f"sample_{i:04d}", c.frames, c.audio, c.fps, c.sr)

        t_one, r_one = _run(root, root / "samples", manifest, weights, a.metrics, root / "cache-one", a)
        t_warm, _ = _run(root, root / "samples", manifest, weights, a.metrics, root / "cache-one", a)
        print(f"clips: {a.n} (426x240, {a.duration:g} s, 24 fps)   metrics: {', '.join(a.metrics)}")
        print(f"one pass   : {t_one:8.1f} s  {a.n / t_one:6.3f} samples/s   split: "
              f"decode+prepare {r_one['timing'].get('decode_prepare_s', 0):.1f} s, encode "
              + ", ".join(f"{k} {v:.1f} s" for k, v in r_one["timing"].get("encode_s", {}).items()))
        if not a.skip_separate:
            t_sep = 0.0
            for m in a.metrics:
                dt, _ = _run(root, root / "samples", manifest, weights, [m], root / f"cache-{m}", a)
                print(f"  {m:<12} alone: {dt:7.1f} s")
                t_sep += dt
            print(f"per metric : {t_sep:8.1f} s  {a.n / t_sep:6.3f} samples/s")
            print(f"one pass is {t_sep / t_one:.2f}x faster than one pass per metric")
        print(f"warm rerun : {t_warm:8.2f} s  ({t_one / t_warm:.0f}x faster than the first run)")
        skipped = r_one["skipped"]
        if skipped:
            print("skipped:", "; ".join(f"{k}: {v[:80]}" for k, v in skipped.items()))
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
