"""Peak memory of ``evaluate``: does it grow with the number of clips, and what does a long clip hold?

Each measurement runs ``evaluate`` in a fresh Python process and reads that process's peak
resident set size (``VmHWM``), so the runs do not share allocator state:

* ``--counts 100 1000``: that many short SynthAV clips (1 s, 128x96, 24 fps, 16 kHz) scored with
  weight-free metrics (default ``av_align``; the rows, features, per-sample values, bootstrap
  intervals and breakdowns all grow with N, the decoded clips and batches must not);
* ``--long 60``: one clip of that many seconds at 426x240 next to a 4 s one, the same metrics:
  the decoder keeps every frame at native resolution (every view is a function of the decoded
  clip), so this reports the decoded frames' bytes and the peak.

Writes ``benchmarks/results/<name>.json`` and prints the ratio peak(1000) / peak(100).

    python benchmarks/bench_memory.py --counts 100 1000 --long 60
"""
from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"


def render(folder: Path, n: int, duration: float, width: int, height: int, seed0: int = 0) -> Path:
    """``n`` SynthAV clips in ``folder`` and their manifest; returns the manifest path."""
    from reference_models.synthav import make_clip, write_clip, write_manifest

    clips = []
    for i in range(n):
        c = make_clip(seed0 + i, duration=duration, width=width, height=height)
        write_clip(folder, f"sample_{i:04d}", c.frames, c.audio, c.fps, c.sr)
        clips.append(replace(c, frames=c.frames[:1], audio=c.audio[:1]))    # the manifest needs the captions only
    return write_manifest(folder.parent / f"{folder.name}.csv", clips)


def peak_rss_mb() -> float:
    """This process's peak resident set (``VmHWM``; unlike ``ru_maxrss`` it is not inherited
    from the parent across fork + exec, so a child does not report the renderer's peak)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024    # not Linux: may include the parent's


def child(samples: Path, manifest: Path, metrics: list[str], workers: int) -> None:
    """Run one evaluate and print {peak_rss_mb, seconds, n, failures} as JSON (a child process)."""
    from javisbench.config import EvalConfig
    from javisbench.evaluate import evaluate

    before = peak_rss_mb()
    t = time.perf_counter()
    r = evaluate(EvalConfig(samples_dir=samples, bench=manifest, out=None, metrics=metrics, workers=workers,
                            cache_dir=samples.parent / f"cache-{samples.name}", progress=False))
    peak = peak_rss_mb()
    print(json.dumps({"peak_rss_mb": peak, "rss_after_imports_mb": before,
                      "seconds": time.perf_counter() - t, "n": len(r["sample_ids"]),
                      "failures": len(r["failures"]), "skipped": r["skipped"]}))


def measure(samples: Path, manifest: Path, metrics: list[str], workers: int) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", str(samples), str(manifest), "--metrics", *metrics,
           "--workers", str(workers)]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if out.returncode != 0:
        raise RuntimeError(f"child failed ({out.returncode}): {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--counts", type=int, nargs="*", default=[100, 1000])
    ap.add_argument("--long", type=float, default=60.0, help="seconds of the long clip (0: skip)")
    ap.add_argument("--metrics", nargs="+", default=["av_align"])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--name", default="memory_cpu")
    ap.add_argument("--child", nargs=2, default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        child(Path(a.child[0]), Path(a.child[1]), a.metrics, a.workers)
        return

    root = Path(tempfile.mkdtemp(prefix="javisbench-memory-"))
    record: dict[str, Any] = {"benchmark": "bench_memory", "metrics": a.metrics, "workers": a.workers,
                              "short_clip": {"duration_s": 1.0, "width": 128, "height": 96, "fps": 24},
                              "counts": {}}
    try:
        for n in a.counts:
            folder = root / f"n{n}"
            t = time.perf_counter()
            manifest = render(folder, n, 1.0, 128, 96)
            print(f"{n} clips rendered in {time.perf_counter() - t:.0f} s", flush=True)
            record["counts"][str(n)] = m = measure(folder, manifest, a.metrics, a.workers)
            print(f"  {n:5d} clips: peak RSS {m['peak_rss_mb']:.0f} MB ({m['seconds']:.0f} s)", flush=True)
            shutil.rmtree(folder, ignore_errors=True)
        if len(a.counts) >= 2:
            lo, hi = str(min(a.counts)), str(max(a.counts))
            p_lo, p_hi = record["counts"][lo]["peak_rss_mb"], record["counts"][hi]["peak_rss_mb"]
            record["growth"] = p_hi / p_lo
            record["per_clip_kb"] = (p_hi - p_lo) * 1024 / (int(hi) - int(lo))
            print(f"peak({hi}) / peak({lo}) = {record['growth']:.3f}  ({record['per_clip_kb']:.1f} KiB per extra clip)")
        if a.long:
            for dur in (4.0, a.long):
                folder = root / f"long{int(dur)}"
                render(folder, 1, dur, 426, 240, seed0=77)
                m = measure(folder, folder.parent / f"{folder.name}.csv", a.metrics, a.workers)
                n_frames = int(round(dur * 24))
                m["decoded_frames_mb"] = n_frames * 426 * 240 * 3 / 2**20
                m["decoded_frames_1080p_mb"] = n_frames * 1920 * 1080 * 3 / 2**20
                record[f"clip_{int(dur)}s"] = m
                print(f"  one {dur:g} s 426x240 clip: decoded frames {m['decoded_frames_mb']:.0f} MB, peak RSS "
                      f"{m['peak_rss_mb']:.0f} MB (at 1080p the frames alone would be "
                      f"{m['decoded_frames_1080p_mb']:.0f} MB)", flush=True)
                shutil.rmtree(folder, ignore_errors=True)
        from bench_scale import commit, machine

        record.update(machine=machine(), commit=commit(), date_utc=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        RESULTS.mkdir(parents=True, exist_ok=True)
        from javisbench.files import atomic_write_text

        out = RESULTS / f"{a.name}.json"
        atomic_write_text(out, json.dumps(record, indent=1, sort_keys=True) + "\n")
        print(f"wrote {out.relative_to(ROOT)}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
