"""Train reference generators on one SynthAV split and score their samples with the suite.

Every family is trained with the same steps, seed, batch size and data; then each generates the
test split and ``javisbench evaluate`` scores it with the weight-free metrics, next to the oracle
(the real clips), pure noise and the corrupted-real baselines. The table has, per system: parameters, training FLOPs
per step (forward + backward, counted by ``torch.utils.flop_counter``), seconds per training step
(median over the run) and of one isolated step at batch 4 (``--speed-threads``), and the metrics.
On a shared machine the timings move with its load; the JSON records the load average.

    python benchmarks/reference_models_table.py                       # all five families + the cascades
    python benchmarks/reference_models_table.py --families javisdit mm-diffusion --steps 300

Writes ``benchmarks/results/reference_models_table.json`` (or ``--out``) and prints a Markdown table.
Any registered trainable family works (``javisbench ls generators``). A second call with the same
``--work`` reuses the bench, the finished checkpoints (training resumes at its last step) and the
samples.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from reference_models.interface import create_generator, derive_seed  # noqa: E402

METRICS = ("av_align", "av_lag")


def step_cost(family: str, preset: str, data_dir: Path, batch_size: int, seed: int, repeats: int = 5
              ) -> dict[str, float]:
    """FLOPs of one training step (forward + backward) and the median wall time of ``repeats`` steps
    (forward + backward + AdamW) at ``batch_size``, on a fixed batch of the bench."""
    from torch.utils.flop_counter import FlopCounterMode

    from reference_models.data import BenchData

    torch.manual_seed(derive_seed(seed, "init"))
    model = create_generator(family, preset)
    model.train()
    data = BenchData(data_dir, **model.clip_size())
    batch = data.batch(data.indices_for_step(0, batch_size, seed))
    opt = torch.optim.AdamW(list(model.trainable_parameters()), lr=1e-4)
    with FlopCounterMode(display=False) as fc:
        torch.manual_seed(0)
        model.training_step(batch, 0)["loss"].backward()
    flops = float(fc.get_total_flops())
    times = []
    for i in range(repeats + 1):
        torch.manual_seed(i)
        t0 = time.perf_counter()
        loss = model.training_step(batch, i)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    times = sorted(times[1:])            # the first step pays one-time setup
    return {"flops_per_step": flops, "step_s_isolated": times[len(times) // 2]}


def write_noise_samples(manifest: Path, out: Path, seed: int, n_frames: int = 32, size: int = 32, fps: float = 8.0,
                        sample_rate: int = 16000, seconds: float = 4.0) -> None:
    """The "noise" system: uniform-noise frames and white-noise audio (σ 0.1), one clip per bench row,
    what an untrained generator's output looks like."""
    import numpy as np

    from reference_models.data import read_bench
    from reference_models.synthav.io import write_mp4, write_wav

    tmp = out.with_name(out.name + ".tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    for r in read_bench(manifest, need_files=False):
        rng = np.random.default_rng([seed, r.index])
        write_mp4(tmp / f"sample_{r.index:04d}.mp4", rng.integers(0, 256, (n_frames, size, size, 3), dtype=np.uint8), fps)
        write_wav(tmp / f"sample_{r.index:04d}.wav",
                  np.clip(0.1 * rng.standard_normal(int(seconds * sample_rate)), -1, 1).astype(np.float32), sample_rate)
    tmp.rename(out)


def evaluate(samples: Path, manifest: Path, out: Path) -> dict[str, float]:
    """``javisbench evaluate`` with the weight-free metrics; returns ``{metric: value}``."""
    cmd = [sys.executable, "-m", "javisbench", "evaluate", str(samples), "--bench", str(manifest), "--out", str(out),
           "--metrics", *METRICS, "--quiet", "--allow-failures"]   # silent audio has no lag: not a failure here
    subprocess.run(cmd, check=True, cwd=ROOT)
    res = json.loads(out.read_text())
    out = {}
    for k in METRICS:
        v = res["overall"].get(k, {}).get("value")
        out[k] = math.nan if v is None else float(v)     # None: undefined on every clip (e.g. silent audio)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--families", nargs="*", default=["javisdit", "javisdit++", "bridgedit", "avfulldit", "mm-diffusion",
                                                      "t2v-v2a", "t2a-a2v"])
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-train", type=int, default=64)
    ap.add_argument("--n-test", type=int, default=16)
    ap.add_argument("--gen-steps", type=int, default=25, help="sampling steps (NFE = 2x with CFG)")
    ap.add_argument("--baselines", nargs="*", default=["oracle", "noise", "noise-video", "silent-audio"],
                    help='registered baselines, or "noise" (uniform-noise frames + white-noise audio)')
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads for training and generation")
    ap.add_argument("--speed-threads", type=int, default=2,
                    help="torch CPU threads for the isolated step timing (the speed target is for 2 cores)")
    ap.add_argument("--work", default=None, help="working folder (default: a temporary one)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "reference_models_table.json"))
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    from reference_models.generate import generate_bench
    from reference_models.synthav import make_bench
    from reference_models.train import TrainConfig, train

    work = Path(a.work) if a.work else Path(tempfile.mkdtemp(prefix="reftable-"))
    work.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()
    train_dir, test_dir = work / "synthav_train", work / "synthav_test"
    if not (train_dir / "manifest.csv").exists():
        make_bench(train_dir, n=a.n_train, seed=a.seed, split="train")
    if not (test_dir / "manifest.csv").exists():
        make_bench(test_dir, n=a.n_test, seed=a.seed, split="test")
    manifest = test_dir / "manifest.csv"
    rows: list[dict[str, Any]] = []
    for fam in a.baselines:
        samples = work / f"samples_{fam}"
        if not samples.exists():
            if fam == "noise":
                write_noise_samples(manifest, samples, a.seed)
            else:
                generate_bench(fam, manifest, samples, seed=a.seed)
        rows.append({"system": fam, "kind": "baseline", **evaluate(samples, manifest, work / f"results_{fam}.json")})
        print(f"[{time.perf_counter() - t_all:6.0f}s] {fam}: {rows[-1]}", file=sys.stderr)
    for fam in a.families:
        model = create_generator(fam, a.preset, device="meta")
        row: dict[str, Any] = {"system": f"{fam}-{a.preset}", "kind": "trained", "parameters": model.parameter_count()}
        torch.set_num_threads(a.speed_threads)
        row.update(step_cost(fam, a.preset, train_dir, 4, a.seed))
        torch.set_num_threads(a.threads)
        ckpt = work / f"ckpt_{fam}"
        r = train(TrainConfig(family=fam, data=str(train_dir), out=str(ckpt), preset=a.preset, steps=a.steps,
                              seed=a.seed, batch_size=a.batch_size, lr=a.lr, checkpoint_every=a.steps, progress=False))
        hist = r["history"]
        row.update(step_s_train=r["seconds_per_step"], train_steps=a.steps,
                   loss_first=hist[0]["loss"], loss_last=sum(h["loss"] for h in hist[-10:]) / min(10, len(hist)))
        samples = work / f"samples_{fam}"
        if not samples.exists():
            generate_bench(fam, manifest, samples, checkpoint=ckpt, num_steps=a.gen_steps, seed=a.seed)
        g = json.loads((samples / "generation.json").read_text())
        row.update(nfe_per_clip=g["nfe"] / max(1, len(g["requests"])), gen_s_per_clip=g["wall_time_s"] / len(g["samples"]))
        row.update(evaluate(samples, manifest, work / f"results_{fam}.json"))
        rows.append(row)
        print(f"[{time.perf_counter() - t_all:6.0f}s] {row}", file=sys.stderr)
    settings = {k: v for k, v in vars(a).items() if k not in ("work", "out")}   # no machine paths in the record
    record = {"rows": rows, "settings": settings, "torch": torch.__version__,
              "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(), "threads": a.threads,
                          "load_avg": os.getloadavg()}, "wall_s": time.perf_counter() - t_all}
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1) + "\n")
    print(markdown_table(rows))
    print(f"\nwrote {out}")
    return 0


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """The side-by-side table (Markdown)."""
    def f(v: Any, fmt: str) -> str:
        return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, fmt)

    head = ("| system | params | GFLOPs/step | s/step (B=4, isolated) | s/step (training run) | loss first → last "
            "| NFE/clip | AV-Align ↑ | AV lag (s) ↓ |\n|---|---|---|---|---|---|---|---|---|")
    lines = [head]
    for r in rows:
        params = f"{r['parameters'] / 1e6:.2f} M" if "parameters" in r else "–"
        gf = f(r.get("flops_per_step", None) and r["flops_per_step"] / 1e9, ".2f")
        loss = f"{r['loss_first']:.3f} → {r['loss_last']:.3f}" if "loss_first" in r else "–"
        lines.append(f"| {r['system']} | {params} | {gf} | {f(r.get('step_s_isolated'), '.3f')} | "
                     f"{f(r.get('step_s_train'), '.3f')} | {loss} | {f(r.get('nfe_per_clip'), '.0f')} | "
                     f"{f(r.get('av_align'), '.3f')} | "
                     f"{f(r.get('av_lag'), '.3f')} |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
