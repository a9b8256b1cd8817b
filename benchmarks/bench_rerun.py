"""First run vs warm re-run of ``evaluate`` on N synthetic 240p clips (prints the ratio).

The warm re-run reads every feature from the content-addressed store: no clip is decoded and
no encoder runs, so only hashing, lookups, metrics and bootstrap CIs remain.

    python benchmarks/bench_rerun.py --n 24 [--metrics av_align] [--workers 2]
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=24)
    ap.add_argument("--metrics", nargs="+", default=["av_align"])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--width", type=int, default=426)
    ap.add_argument("--height", type=int, default=240)
    a = ap.parse_args()

    from javisbench.config import EvalConfig
    from javisbench.evaluate import evaluate
    from reference_models.synthav import make_clip, write_clip, write_manifest

    root = Path(tempfile.mkdtemp(prefix="javisbench-bench-"))
    try:
        clips = [make_clip(i, width=a.width, height=a.height) for i in range(a.n)]
        manifest = write_manifest(root / "bench.csv", clips)
        for i, c in enumerate(clips):
            write_clip(root / "samples", f"sample_{i:04d}", c.frames, c.audio, c.fps, c.sr)
        cfg = EvalConfig(samples_dir=root / "samples", bench=manifest, out=root / "r.json", cache_dir=root / "cache",
                         metrics=a.metrics, workers=a.workers, progress=False)
        t0 = time.perf_counter()
        first = evaluate(cfg)
        t1 = time.perf_counter()
        second = evaluate(cfg)
        t2 = time.perf_counter()
        same = first["overall"] == second["overall"] and first["per_sample"] == second["per_sample"]
        cold, warm = t1 - t0, t2 - t1
        print(f"clips: {a.n} ({a.width}x{a.height}, 4 s, 24 fps); metrics: {', '.join(a.metrics)}; workers: {a.workers}")
        print(f"first run : {cold:8.2f} s  ({a.n / cold:.2f} samples/s)  store writes {first['timing']['feature_store']['writes']}")
        print(f"warm rerun: {warm:8.2f} s  ({a.n / warm:.2f} samples/s)  store hits {second['timing']['feature_store']['hits']}")
        print(f"speed-up  : {cold / warm:8.1f}x   identical results: {same}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
