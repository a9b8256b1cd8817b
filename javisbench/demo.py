"""``javisbench demo``: every metric family working offline, in a few minutes, on SynthAV clips.

What it does (nothing is downloaded):

1. renders a SynthAV test bench (``n`` clips with captions and labels) and, as the real reference
   set of the set metrics, as many clips of the SynthAV ``val`` split;
2. writes four deliberately corrupted copies of the clean clips (audio shifted by 0.5 s, audio
   swapped between clips, frozen video, silent audio; :mod:`reference_models.baselines`);
3. trains two tiny reference generators (``javisdit`` and ``bridgedit`` by default) for a dozen
   steps on a SynthAV train bench (one torch thread: on a busy 2-core machine more threads are
   slower) and lets them generate the test bench with 8 sampling steps (``generator_steps=0``
   leaves them out).  A dozen steps keeps the demo within minutes; the generators are barely
   trained and are expected to score below the clean clips on every family;
4. scores every variant with every metric family through the in-domain encoders shipped with the
   package (``fvd/kvd/fad@synthav``, ``ib_tv/ib_ta/ib_av@synthav``, ``avh_score/javis_score@synthav``,
   ``desync@synthav``), the weight-free ones (AV-Align, AV lag), and any official metric whose
   weights are present;
5. prints one table and, per metric family, whether the expected ordering holds: the clean clips
   score better than each corruption that breaks what the family measures (and than the briefly
   trained generators); an ordering that fails is printed as such.

The in-domain keys are not the official metrics (their encoders are small networks trained on
SynthAV); they are there so that each family can be seen to work.
"""
from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_GENERATORS = ("javisdit", "bridgedit")
GENERATOR_STEPS = 12          # training steps per generator (batch 4): minutes matter more than quality here
SAMPLING_STEPS = 8


@dataclass(frozen=True)
class Family:
    name: str
    keys: tuple[str, ...]
    breaks: tuple[str, ...]         # the corruptions expected to score worse than the clean clips


#: metric families and the corruptions that break what each measures (generators always expected worse)
FAMILIES: tuple[Family, ...] = (
    Family("Fréchet / KVD, video", ("fvd@synthav", "kvd@synthav"), ("frozen video",)),
    Family("Fréchet, audio", ("fad@synthav",), ("silent audio",)),
    Family("text-video similarity", ("ib_tv@synthav",), ("frozen video",)),
    Family("text-audio similarity", ("ib_ta@synthav",), ("audio swapped", "silent audio")),
    Family("audio-video similarity", ("ib_av@synthav",), ("audio swapped", "silent audio")),
    Family("AVHScore / JavisScore", ("avh_score@synthav", "javis_score@synthav"),
           ("audio shifted 0.5 s", "audio swapped", "frozen video", "silent audio")),
    Family("offset classifier (DeSync)", ("desync@synthav",), ("audio shifted 0.5 s", "audio swapped")),
    Family("weight-free synchrony", ("av_align", "av_lag"), ("audio shifted 0.5 s", "audio swapped", "frozen video",
                                                              "silent audio")),
)


def build_demo_data(out_dir: Path, n_clips: int = 8, seed: int = 0) -> tuple[Path, dict[str, Path], Path]:
    """Write the clean bench, every corrupted variant and the reference clips.

    Returns (manifest, variant -> samples folder, reference folder)."""
    from reference_models.baselines import DEMO_VARIANTS
    from reference_models.synthav import bench_clips, write_bench, write_clip

    out_dir.mkdir(parents=True, exist_ok=True)
    clips = bench_clips(n_clips, seed, "test")
    bench = out_dir / "bench"
    if not (bench / "manifest.csv").is_file():
        write_bench(bench, clips, {"seed": seed, "split": "test"})
    # the bench's name is its manifest's: "synthav_demo" is the name the leaderboard knows
    manifest = bench / "synthav_demo.csv"
    if not manifest.is_file():
        shutil.copyfile(bench / "manifest.csv", manifest)
    pairs = [(c.frames, c.audio) for c in clips]
    sr, fps = clips[0].sr, clips[0].fps
    folders = {"clean": bench}
    for name, corrupt in DEMO_VARIANTS.items():
        if name == "clean":
            continue
        d = out_dir / "samples" / name.replace(" ", "_").replace(".", "p")
        for i in range(n_clips):
            frames, audio = corrupt(pairs, i, sr)
            write_clip(d, f"sample_{i:04d}", frames, audio, fps, sr)
        folders[name] = d
    real = out_dir / "real"
    for i, c in enumerate(bench_clips(n_clips, seed, "val")):
        write_clip(real, f"sample_{i:04d}", c.frames, c.audio, fps, sr)
    return manifest, folders, real


def train_generators(out_dir: Path, bench: Path, families: tuple[str, ...], steps: int = GENERATOR_STEPS,
                     n_train: int = 24, seed: int = 0, device: str = "cpu",
                     sampling_steps: int = SAMPLING_STEPS) -> dict[str, Path]:
    """Train each family's tiny preset for ``steps`` steps on a SynthAV train bench and generate ``bench``.

    Returns ``{family: samples folder}`` (folders already present are reused)."""
    import torch
    from reference_models.generate import generate_bench
    from reference_models.synthav import make_bench
    from reference_models.train import TrainConfig, train

    train_bench = out_dir / "train_bench"
    if not (train_bench / "manifest.csv").is_file():
        make_bench(train_bench, n=n_train, seed=seed, split="train")
    out: dict[str, Path] = {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for fam in families:
            samples = out_dir / "generated" / fam
            if not samples.is_dir() or not any(samples.glob("*.mp4")):
                ckpt_dir = out_dir / "checkpoints" / fam
                r = train(TrainConfig(family=fam, data=str(train_bench), out=str(ckpt_dir), preset="tiny", steps=steps,
                                      seed=seed, device=device, batch_size=4, checkpoint_every=steps, progress=False))
                generate_bench(fam, bench, samples, checkpoint=r["checkpoint"], num_steps=sampling_steps, seed=seed,
                               device=device)
            out[fam] = samples
    finally:
        torch.set_num_threads(threads)
    return out


def demo_metrics() -> list[str]:
    """Every default metric (those without weights are skipped) and every in-domain key."""
    from javisbench.suite import INDOMAIN_METRICS, select_metrics

    return [m.key for m in select_metrics(None)] + list(INDOMAIN_METRICS)


def run_demo(out_dir: str | Path = "javisbench-demo", n_clips: int = 8, device: str = "cpu",
             weights_dir: str | Path | None = None, metrics: list[str] | None = None,
             progress: bool = False, generators: tuple[str, ...] = DEFAULT_GENERATORS,
             generator_steps: int = GENERATOR_STEPS) -> dict[str, Any]:
    """Build the demo data, evaluate every variant, return ``{variant: results}``.

    ``timing`` of the whole run is in ``results[variant]["timing"]["demo_total_s"]`` of the clean one."""
    from javisbench.config import EvalConfig
    from javisbench.evaluate import evaluate

    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    manifest, folders, real = build_demo_data(out_dir, n_clips)
    if generators and generator_steps > 0:
        for fam, d in train_generators(out_dir, manifest.parent, tuple(generators), generator_steps,
                                       device=device).items():
            folders[f"generator {fam}"] = d
    keys = metrics or demo_metrics()
    results = {}
    for name, folder in folders.items():
        cfg = EvalConfig(samples_dir=folder, bench=manifest, out=out_dir / "results" / f"{name.replace(' ', '_')}.json",
                         metrics=keys, device=device, weights_dir=Path(weights_dir) if weights_dir else None,
                         cache_dir=out_dir / "cache", reference_dir=real, model_name=name, progress=progress,
                         workers=2, force=True)
        results[name] = evaluate(cfg)
    results["clean"]["timing"]["demo_total_s"] = round(time.perf_counter() - t0, 1)
    return results


def _value(r: dict[str, Any], key: str) -> float | None:
    c = r["overall"].get(key)
    v = None if not c else c.get("value")
    return None if v is None or not np.isfinite(v) else float(v)


def ordering(results: dict[str, dict[str, Any]], key: str, expected_worse: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """(variants that score worse than clean on ``key``, variants expected worse that do not)."""
    clean = _value(results["clean"], key)
    if clean is None:
        return [], []
    hib = results["clean"]["metrics"][key]["higher_is_better"]
    ok, bad = [], []
    for name in expected_worse:
        if name not in results:
            continue
        v = _value(results[name], key)
        if v is None:
            continue      # undefined (e.g. AV lag of silent audio): neither confirms nor contradicts
        (ok if ((v < clean) if hib else (v > clean)) else bad).append(name)
    return ok, bad


def ranking_ok(results: dict[str, dict[str, Any]], key: str) -> bool:
    """True when every corrupted variant scores worse than the clean clips on ``key`` (undefined values skipped)."""
    others = tuple(n for n in results if n != "clean")
    return not ordering(results, key, others)[1]


def ordering_report(results: dict[str, dict[str, Any]]) -> list[str]:
    """One line per metric with a value: the expected ordering and whether it holds."""
    gens = tuple(n for n in results if n.startswith("generator "))
    lines = []
    for fam in FAMILIES:
        for key in fam.keys:
            if _value(results["clean"], key) is None:
                continue
            ok, bad = ordering(results, key, fam.breaks + gens)
            hib = results["clean"]["metrics"][key]["higher_is_better"]
            word = "better" if hib else "lower"
            if bad:
                lines.append(f"FAILS  {key} [{fam.name}]: clean should score {word} than {', '.join(bad)} but does not"
                             + (f" (holds for {', '.join(ok)})" if ok else ""))
            else:
                lines.append(f"ok     {key} [{fam.name}]: clean {'above' if hib else 'below'} {', '.join(ok) or '—'}")
    return lines


def demo_table(results: dict[str, dict[str, Any]]) -> str:
    """Variants as rows, metrics as columns (value ± CI half-width), best per column marked *;
    then the ordering checks per family, skipped metrics and notes."""
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
        vals = [v for v in (_value(r, k) for r in results.values()) if v is not None]
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
    out += ["", "expected orderings (the clean clips should score better than each corruption that breaks what "
                "the family measures, and than the briefly trained generators):"]
    out += ["  " + line for line in ordering_report(results)]
    indomain = [k for k in keys if k.endswith("@synthav")]
    if indomain:
        out.append("")
        out.append("@synthav: in-domain encoders trained on SynthAV (shipped with the package), not the official "
                   "metrics; numbers are comparable only with other @synthav numbers")
    skipped = {k: v for r in results.values() for k, v in r["skipped"].items()}
    if skipped:
        out.append(f"skipped (weights not present): {', '.join(sorted(skipped))} — see `javisbench weights list`")
    warn = {w for r in results.values() for ws in r["warnings"].values() for w in ws}
    for w in sorted(warn):
        out.append(f"note: {w}")
    total = results.get("clean", {}).get("timing", {}).get("demo_total_s")
    if total is not None:
        out.append(f"demo time: {total:.0f} s")
    return "\n".join(out)
