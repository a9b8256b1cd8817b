"""``evaluate`` end to end and per stage, against a re-implementation of the original tool's structure.

Renders N synthetic clips of JavisBench shape (4 s, 426x240, 24 fps, 16 kHz mono wav beside the mp4)
plus N different real clips (the reference side of FVD/KVD/FAD), writes the deterministic fixture
checkpoints (real architectures, official file formats) and times, in one process:

* ``ours cold``: one ``evaluate`` with an empty feature store (each clip decoded once, every
  encoder loaded once, batched);
* ``ours warm``: the same call again on the filled store;
* ``original structure``: every metric group of the original, one after the other, as its code
  does it (spec/official-javisbench.md §5 and §8c): the group's models constructed and loaded
  again, each clip decoded again with the group's own reader at the group's batch size:

  ===============  ======================  ===========================================  =====
  group            models                  readers                                      batch
  ===============  ======================  ===========================================  =====
  fvd/kvd/fad      i3d, audioclip          cv2 seek per frame (16 linspace frames),     8
                                           librosa.load(sr=16000); real clips too
  audio_quality    audiobox                full audio decode (torchaudio.load)          8
  imagebind        imagebind               full decode (decord), full audio             8
  clip_score       clip                    cv2 seek per frame (48 linspace frames)      1
  clap_score       clap                    librosa.load(sr=48000, kaiser_best)          1
  cavp_score       cavp                    duration probe (moviepy), full decode plus   1
                                           x264 re-encodes at 21.5 fps (unused) and 4
                                           fps (ffmpeg), librosa.load(sr=16000)
  av_align         (Farneback, onsets)     cv2 full decode, librosa.load(sr=None)       1
  avh/javis        imagebind (again)       cv2 full decode, full audio                  1
  desync           synchformer             full decode resampled to 25 fps (torio),     8
                                           full audio decode (torchaudio.load)
  ===============  ======================  ===========================================  =====

  The models' forward passes are this package's encoders (the same modules, the same
  preprocessing views), so the comparison isolates the structure: decoding, model loading and
  batching.  The original's waste that would only add to its time is left out (AudioCLIP's
  image tower on every FVD frame, JavisScore's three identical audio copies), so the baseline is
  a lower bound of the original's time.  Its per-sample values are checked against ours.

VideoReward (visual_quality, motion_quality) has no fixture writer; ImageBind-Huge (1.2 B
parameters; ib_*, avh_score, javis_score) is left out unless ``--with-imagebind`` (its all-frames
metrics take minutes per clip on two CPU cores).

Writes ``benchmarks/results/<name>.json`` (``speedup_cold``, ``speedup_warm``, per-stage seconds,
machine, device, torch version, commit) and prints the ratio pipeline overhead / encoder forward time.

    python benchmarks/bench_scale.py --n 4 --name scale_cpu
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "golden"
RESULTS = Path(__file__).resolve().parent / "results"

#: the official metric set with fixture checkpoints (no VideoReward); ImageBind metrics on request
DEFAULT_METRICS = ["fvd", "kvd", "fad", "audio_quality", "clip_score", "clap_score", "cavp_score", "av_align", "desync"]
IMAGEBIND_METRICS = ["ib_tv", "ib_ta", "ib_av", "avh_score", "javis_score"]


# ---------------------------------------------------------------------------------------------
# the original's readers
# ---------------------------------------------------------------------------------------------
def cv2_seek(path: Path, num: int) -> tuple[np.ndarray, float]:
    """The original's ``read_video``: ``num`` linspace frames, one seek + read each (RGB)."""
    import cv2

    from javisbench.views import linspace_indices

    cap = cv2.VideoCapture(str(path))
    try:
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        fps = float(cap.get(cv2.CAP_PROP_FPS))
        out = []
        for i in linspace_indices(n, num):
            cap.set(cv2.CAP_PROP_POS_FRAMES, int(i))
            ok, f = cap.read()
            if not ok:
                raise RuntimeError(f"{path}: cv2 cannot read frame {i}")
            out.append(cv2.cvtColor(f, cv2.COLOR_BGR2RGB))
    finally:
        cap.release()
    return np.stack(out), fps


def cv2_full(path: Path) -> tuple[np.ndarray, float]:
    """Every frame through cv2 (AV-Align's and AVH's reader), RGB."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    try:
        fps = float(cap.get(cv2.CAP_PROP_FPS))
        out = []
        while True:
            ok, f = cap.read()
            if not ok:
                break
            out.append(cv2.cvtColor(f, cv2.COLOR_BGR2RGB))
    finally:
        cap.release()
    return np.stack(out), fps


def librosa_load(path: Path, sr: int | None, res_type: str = "kaiser_best") -> tuple[np.ndarray, int]:
    """``librosa.load(path, sr=sr)`` mono, with librosa 0.9.2's default resampler (kaiser_best)."""
    import librosa

    y, got = librosa.load(str(path), sr=sr, mono=True, res_type=res_type)
    return y[None].astype(np.float32), int(got)


def full_decode(video: Path, audio: Path | None) -> Any:
    """An FFmpeg full decode (decord, torio, torchaudio: all FFmpeg underneath)."""
    from javisbench.decode import decode_sample

    return decode_sample(video, audio)


def as_clip(sid: str, frames: np.ndarray, fps: float, audio: np.ndarray, sr: int) -> Any:
    from javisbench.decode import DecodedClip

    return DecodedClip(sample_id=sid, frames=frames, fps=fps, audio=audio, sr=sr, content_hash=sid)


@dataclass
class Group:
    name: str
    encoders: tuple[str, ...]
    batch: int
    read: Callable[[str, Path, Path], Any]     # (sample id, mp4, wav) -> DecodedClip for this group
    real_too: bool = False                      # the reference side is computed live too


def _read_fvd(sid: str, mp4: Path, wav: Path) -> Any:
    frames, fps = cv2_seek(mp4, 16)
    audio, sr = librosa_load(wav, 16000)
    return as_clip(sid, frames, fps, audio, sr)


def _read_audio_only(sid: str, mp4: Path, wav: Path) -> Any:
    from javisbench.decode import _decode_audio_file

    audio, sr, _ = _decode_audio_file(wav, sid)
    return as_clip(sid, np.zeros((1, 2, 2, 3), np.uint8), 24.0, audio.mean(axis=0, keepdims=True), sr)


def _read_clip(sid: str, mp4: Path, wav: Path) -> Any:
    frames, fps = cv2_seek(mp4, 48)
    return as_clip(sid, frames, fps, np.zeros((1, 16000), np.float32), 16000)


def _read_clap(sid: str, mp4: Path, wav: Path) -> Any:
    audio, sr = librosa_load(wav, 48000)
    return as_clip(sid, np.zeros((1, 2, 2, 3), np.uint8), 24.0, audio, sr)


def _read_cavp(sid: str, mp4: Path, wav: Path) -> Any:
    from javisbench.decode import probe_sample
    from javisbench.encoders.cavp import x264_roundtrip
    from javisbench.views import fps_indices

    probe_sample(mp4, wav)                               # moviepy's duration
    clip = full_decode(mp4, wav)                         # ffmpeg's decode for the re-encodes
    idx = fps_indices(clip.n_frames, clip.fps, 21.5, eof="end")
    x264_roundtrip(clip.frames[idx], 21.5, sample_id=sid)    # the unused 21.5 fps re-encode
    audio, sr = librosa_load(wav, 16000)
    return as_clip(sid, clip.frames, clip.fps, audio, sr)   # the 4 fps re-encode happens in prepare


def _read_avalign(sid: str, mp4: Path, wav: Path) -> Any:
    frames, fps = cv2_full(mp4)
    audio, sr = librosa_load(wav, None)
    return as_clip(sid, frames, fps, audio, sr)


def _read_full(sid: str, mp4: Path, wav: Path) -> Any:
    return full_decode(mp4, wav)


def _read_avh(sid: str, mp4: Path, wav: Path) -> Any:
    from javisbench.decode import _decode_audio_file

    frames, fps = cv2_full(mp4)
    audio, sr, _ = _decode_audio_file(wav, sid)
    return as_clip(sid, frames, fps, audio, sr)


GROUPS = [
    Group("fvd_kvd_fad", ("i3d", "audioclip"), 8, _read_fvd, real_too=True),
    Group("audio_quality", ("audiobox",), 8, _read_audio_only),
    Group("imagebind", ("imagebind",), 8, _read_full),
    Group("clip_score", ("clip",), 1, _read_clip),
    Group("clap_score", ("clap",), 1, _read_clap),
    Group("cavp_score", ("cavp",), 1, _read_cavp),
    Group("av_align", ("avalign",), 1, _read_avalign),
    Group("avh_javis", ("imagebind-avh",), 1, _read_avh),
    Group("desync", ("synchformer",), 8, _read_full),
]


def run_original_structure(metrics: list[str], rows: list[Any], fake: Path, real: Path, weights: Path,
                           device: str) -> tuple[float, dict[str, dict[str, float]], dict[str, dict[str, Any]]]:
    """Every group as the original runs it.  Returns (seconds, per-group stage seconds, features
    per encoder per sample id, the fake side only)."""
    from javisbench.encoders import encoder_class
    from javisbench.protocol import get_protocol
    from javisbench.suite import get_metric

    protocol = get_protocol("javisbench-official")
    wanted = {e for m in metrics for e in get_metric(m).encoders}
    stages: dict[str, dict[str, float]] = {}
    feats: dict[str, dict[str, Any]] = {}
    t_all = time.perf_counter()
    for g in GROUPS:
        if not wanted & set(g.encoders):
            continue
        st = {"load_s": 0.0, "decode_s": 0.0, "prepare_s": 0.0, "forward_s": 0.0}
        t = time.perf_counter()
        encs = {}
        for e in (e for e in g.encoders if e in wanted):
            enc = encoder_class(e)(protocol, device=device, batch_size=g.batch)
            enc.load(weights)
            encs[e] = enc
        st["load_s"] = time.perf_counter() - t
        sides = [("fake", fake)] + ([("real", real)] if g.real_too else [])
        for side, folder in sides:
            queue: list[tuple[str, dict[str, Any]]] = []

            def flush() -> None:
                t0 = time.perf_counter()
                for e, enc in encs.items():
                    outs = enc.encode([x[e] for _, x in queue])
                    if side == "fake":
                        for (sid, _), o in zip(queue, outs):
                            feats.setdefault(e, {})[sid] = o
                st["forward_s"] += time.perf_counter() - t0
                queue.clear()

            for i, r in enumerate(rows):
                sid = f"sample_{i:04d}"
                t0 = time.perf_counter()
                clip = g.read(sid, folder / f"{sid}.mp4", folder / f"{sid}.wav")
                t1 = time.perf_counter()
                queue.append((sid, {e: enc.prepare(clip, r.text, r.audio_text) for e, enc in encs.items()}))
                st["decode_s"] += t1 - t0
                st["prepare_s"] += time.perf_counter() - t1
                del clip
                if len(queue) >= g.batch:
                    flush()
            if queue:
                flush()
        del encs
        gc.collect()
        st["total_s"] = sum(st.values())
        stages[g.name] = st
        print(f"  original structure, {g.name:<14} {st['total_s']:7.1f} s  (load {st['load_s']:.1f}, decode "
              f"{st['decode_s']:.1f}, prepare {st['prepare_s']:.1f}, forward {st['forward_s']:.1f})", flush=True)
    return time.perf_counter() - t_all, stages, feats


# ---------------------------------------------------------------------------------------------
# ours
# ---------------------------------------------------------------------------------------------
def _sum(d: Any) -> float:
    return float(sum(d.values())) if isinstance(d, dict) else float(d or 0.0)


def our_stages(timing: dict[str, Any], total: float) -> dict[str, Any]:
    """Per-stage seconds of one ``evaluate`` from its results' timing block."""
    out: dict[str, Any] = {}
    for side, p in (("samples", ""), ("reference", "reference_")):
        out[side] = {
            "hash_and_lookup_s": float(timing.get(p + "hash_and_lookup_s", 0.0)),
            "load_s": {k: float(v) for k, v in timing.get(p + "load_s", {}).items()},
            "decode_prepare_s": float(timing.get(p + "decode_prepare_s", 0.0)),
            "encode_s": {k: float(v) for k, v in timing.get(p + "encode_s", {}).items()},
        }
    side_s = sum(s["hash_and_lookup_s"] + _sum(s["load_s"]) + s["decode_prepare_s"] + _sum(s["encode_s"])
                 for s in out.values())
    out["plan_weights_metrics_breakdown_s"] = max(0.0, total - side_s)
    out["total_s"] = total
    return out


def forward_seconds(stages: dict[str, Any]) -> dict[str, float]:
    """Encoder forward seconds (samples + reference side) per encoder."""
    f: dict[str, float] = {}
    for side in ("samples", "reference"):
        for k, v in stages[side]["encode_s"].items():
            f[k] = f.get(k, 0.0) + v
    return f


def standalone_split(rows: list[Any], fake: Path, real: Path, weights: Path, metrics: list[str],
                     device: str) -> dict[str, Any]:
    """Decode and each encoder's prepare (views), timed alone on one thread over every clip."""
    from javisbench.decode import decode_sample
    from javisbench.encoders import encoder_class
    from javisbench.protocol import get_protocol
    from javisbench.suite import get_metric

    protocol = get_protocol("javisbench-official")
    encs = sorted({e for m in metrics for e in get_metric(m).encoders})
    dec = 0.0
    prep = {e: 0.0 for e in encs}
    objs = {e: encoder_class(e)(protocol, device=device) for e in encs}
    for folder in (fake, real):
        for i, r in enumerate(rows):
            sid = f"sample_{i:04d}"
            t = time.perf_counter()
            clip = decode_sample(folder / f"{sid}.mp4", folder / f"{sid}.wav", sample_id=sid)
            dec += time.perf_counter() - t
            for e, enc in objs.items():
                if folder == real and e not in ("i3d", "audioclip"):
                    continue
                if e == "clap":     # the CLAP processor is loaded with the model
                    continue
                t = time.perf_counter()
                enc.prepare(clip, r.text, r.audio_text)
                prep[e] += time.perf_counter() - t
    return {"decode_s": dec, "prepare_s": prep}


# ---------------------------------------------------------------------------------------------
def machine() -> dict[str, Any]:
    import torch

    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        load = os.getloadavg()
    except OSError:
        load = (float("nan"),) * 3
    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "load_avg_1_5_15": [round(x, 2) for x in load], "python": platform.python_version(),
            "torch": torch.__version__, "platform": platform.platform()}


def commit() -> str:
    try:
        sha = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=4, help="generated clips (and as many real clips)")
    ap.add_argument("--metrics", nargs="+", default=None)
    ap.add_argument("--with-imagebind", action="store_true", help="add ib_tv ib_ta ib_av avh_score javis_score")
    ap.add_argument("--batch-size", nargs="+", default=["8"])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--name", default="scale_cpu", help="benchmarks/results/<name>.json")
    ap.add_argument("--skip-original", action="store_true", help="time ours only")
    a = ap.parse_args()
    metrics = a.metrics or DEFAULT_METRICS + (IMAGEBIND_METRICS if a.with_imagebind else [])

    import torch

    from javisbench.config import EvalConfig
    from javisbench.evaluate import evaluate
    from javisbench.golden import GOLDEN_WRITERS, write_golden_weights
    from javisbench.manifest import load_manifest
    from javisbench.suite import get_metric
    from reference_models.synthav import make_clip, write_clip, write_manifest

    root = Path(tempfile.mkdtemp(prefix="javisbench-scale-"))
    try:
        encs = sorted({e for m in metrics for e in get_metric(m).encoders if e in GOLDEN_WRITERS})
        t = time.perf_counter()
        weights = write_golden_weights(GOLDEN, root / "weights", encs)
        print(f"fixture checkpoints ({', '.join(encs)}) written in {time.perf_counter() - t:.1f} s")
        fake, real = root / "samples", root / "real"
        clips = [make_clip(i, duration=4.0, width=426, height=240) for i in range(a.n)]
        manifest = write_manifest(root / "bench.csv", clips)
        for i, c in enumerate(clips):
            write_clip(fake, f"sample_{i:04d}", c.frames, c.audio, c.fps, c.sr)
            r = make_clip(10_000 + i, duration=4.0, width=426, height=240)
            write_clip(real, f"sample_{i:04d}", r.frames, r.audio, r.fps, r.sr)
        rows = list(load_manifest(manifest).rows)
        print(f"{a.n} generated + {a.n} real clips (426x240, 4 s, 24 fps, 16 kHz); metrics: {' '.join(metrics)}",
              flush=True)

        cfg = EvalConfig(samples_dir=fake, bench=manifest, out=None, metrics=metrics, weights_dir=weights,
                         cache_dir=root / "cache", reference_dir=real, batch_size=a.batch_size, workers=a.workers,
                         device=a.device, progress=False)
        t = time.perf_counter()
        cold = evaluate(cfg)
        t_cold = time.perf_counter() - t
        print(f"ours cold : {t_cold:8.1f} s  ({a.n / t_cold:.3f} samples/s)", flush=True)
        t = time.perf_counter()
        warm = evaluate(cfg)
        t_warm = time.perf_counter() - t
        print(f"ours warm : {t_warm:8.2f} s", flush=True)
        if cold["skipped"] or cold["failures"]:
            print("skipped:", cold["skipped"], "failures:", cold["failures"], file=sys.stderr)

        stages = our_stages(cold["timing"], t_cold)
        fwd = forward_seconds(stages)
        # AV-Align has no network: its Farneback flow and onsets run in prepare; count them as its forward
        split = standalone_split(rows, fake, real, weights, metrics, a.device)
        if "avalign" in split["prepare_s"]:
            fwd["avalign (flow+onsets, in prepare)"] = split["prepare_s"]["avalign"]
        fwd_total = sum(fwd.values())
        load_total = _sum(stages["samples"]["load_s"]) + _sum(stages["reference"]["load_s"])
        weights_hash = stages["plan_weights_metrics_breakdown_s"]
        overhead = t_cold - fwd_total
        per_clip_overhead = overhead - load_total - weights_hash

        record: dict[str, Any] = {
            "benchmark": "bench_scale", "n_clips": a.n, "n_real_clips": a.n,
            "clip": {"duration_s": 4.0, "width": 426, "height": 240, "fps": 24, "audio_sr": 16000},
            "metrics": metrics, "batch_size": a.batch_size, "workers": a.workers, "device": a.device,
            "machine": machine(), "commit": commit(), "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "ours": {"cold_s": t_cold, "warm_s": t_warm, "samples_per_s_cold": a.n / t_cold,
                     "samples_per_s_warm": a.n / t_warm, "stages_cold": stages,
                     "stages_warm": our_stages(warm["timing"], t_warm),
                     "standalone_one_thread": split, "encoder_forward_s": fwd},
            "ratio_overhead_to_forward": overhead / fwd_total if fwd_total else None,
            "ratio_overhead_to_forward_without_loading": per_clip_overhead / fwd_total if fwd_total else None,
            "skipped": cold["skipped"], "failures": cold["failures"],
        }
        print(f"encoder forward: {fwd_total:.1f} s ({', '.join(f'{k} {v:.1f}' for k, v in fwd.items())})")
        print(f"pipeline overhead / encoder forward time = {overhead:.1f} / {fwd_total:.1f} = "
              f"{record['ratio_overhead_to_forward']:.1%}  (without model loading {load_total:.1f} s and "
              f"planning/weight hashing/metrics {weights_hash:.1f} s: {record['ratio_overhead_to_forward_without_loading']:.1%})")
        RESULTS.mkdir(parents=True, exist_ok=True)
        from javisbench.files import atomic_write_text

        out = RESULTS / f"{a.name}.json"
        atomic_write_text(out, json.dumps(record, indent=1, sort_keys=True, default=float) + "\n")
        if not a.skip_original:
            t_orig, gstages, ofeats = run_original_structure(metrics, rows, fake, real, weights, a.device)
            record["original_structure"] = {"total_s": t_orig, "groups": gstages,
                                            "forward_s": sum(g["forward_s"] for g in gstages.values())}
            record["speedup_cold"] = t_orig / t_cold
            record["speedup_warm"] = t_orig / t_warm
            record["same_features_max_abs_diff"] = compare_features(cold, ofeats, rows, root / "cache", cfg)
            print(f"original structure: {t_orig:8.1f} s  ({a.n / t_orig:.3f} samples/s)")
            print(f"speedup cold {record['speedup_cold']:.2f}x, warm {record['speedup_warm']:.0f}x")
        atomic_write_text(out, json.dumps(record, indent=1, sort_keys=True, default=float) + "\n")
        print(f"wrote {out.relative_to(ROOT)}")
        del torch
    finally:
        shutil.rmtree(root, ignore_errors=True)


def compare_features(results: dict[str, Any], ofeats: dict[str, dict[str, Any]], rows: list[Any], cache: Path,
                     cfg: Any) -> dict[str, float]:
    """Max |difference| between the baseline's features and ours, per encoder output (a check that
    both sides computed the same thing; decoders differ only where the original's do)."""
    from javisbench.evaluate import extract, load_encoders, plan_run
    from javisbench.features import FeatureStore

    run, _ = plan_run(cfg)
    encs, _ = load_encoders(run)
    feats, _ = extract(run, encs, FeatureStore(cache))       # all served from the store
    out: dict[str, float] = {}
    for e, per in ofeats.items():
        for sid, o in per.items():
            ours = feats.get(sid, {}).get(e)
            if ours is None:
                continue
            for k, v in o.items():
                a, b = np.asarray(v, np.float64), np.asarray(ours[k], np.float64)
                d = float(np.max(np.abs(a - b))) if a.shape == b.shape else float("inf")
                out[f"{e}:{k}"] = max(out.get(f"{e}:{k}", 0.0), d)
    return out


if __name__ == "__main__":
    main()
