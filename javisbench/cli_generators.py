"""CLI for the reference generators: ``synthav make``, ``train``, ``generate``, ``ls generators``.

A thin layer over :mod:`reference_models` (which never imports ``javisbench``).  Bad input raises
ValueError / FileNotFoundError with one line; ``javisbench.cli.main`` prints it.
"""
from __future__ import annotations

import argparse
import json
from typing import Any


def _parse_options(items: list[str] | None) -> dict[str, Any]:
    """``KEY=VALUE`` pairs; values parsed as JSON when they are (numbers, true/false, lists), else strings."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, val = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--option {item!r}: expected KEY=VALUE")
        try:
            out[key] = json.loads(val)
        except json.JSONDecodeError:
            out[key] = val
    return out


def _guidance(value: str | None) -> float | dict[str, float] | None:
    """``5`` or ``video=6,audio=7``."""
    if value is None:
        return None
    if "=" not in value:
        try:
            return float(value)
        except ValueError:
            raise ValueError(f"--cfg {value!r}: expected a number or video=W,audio=W") from None
    out = {}
    for part in value.split(","):
        k, _, v = part.partition("=")
        try:
            out[k.strip()] = float(v)
        except ValueError:
            raise ValueError(f"--cfg {value!r}: expected a number or video=W,audio=W") from None
    return out


def cmd_synthav_make(a: argparse.Namespace) -> int:
    from dataclasses import fields

    from reference_models.synthav import SyncKnobs, make_bench

    knobs = SyncKnobs(**{f.name: getattr(a, f.name) for f in fields(SyncKnobs)})
    out = make_bench(a.dir, n=a.n, seed=a.seed, split=a.split, knobs=knobs, timed=a.timed)
    print(f"wrote {a.n} clips, manifest.csv, stems/ and events.json to {out}")
    return 0


def cmd_train(a: argparse.Namespace) -> int:
    from reference_models.train import TrainConfig, train

    cfg = TrainConfig(family=a.family, data=a.data, out=a.out, preset=a.preset, steps=a.steps, seed=a.seed, device=a.device,
                      batch_size=a.batch_size, stage=a.stage, lr=a.lr, checkpoint_every=a.checkpoint_every,
                      warmup_steps=a.warmup, ema_decay=a.ema_decay, grad_clip=a.grad_clip, init=a.init,
                      options=_parse_options(a.option), progress=not a.quiet)
    if a.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ValueError(f"--device {a.device}: CUDA is not available here (use --device cpu)")
    r = train(cfg)
    last = r["history"][-1] if r["history"] else {}
    losses = ", ".join(f"{k} {last[k]:.4f}" for k in ("loss", "loss_video", "loss_audio") if k in last)
    print(f"checkpoint {r['checkpoint']} at step {r['step']}" + (f" ({losses}; median {r['seconds_per_step']:.3f} s/step)" if last else ""))
    return 0


def cmd_generate(a: argparse.Namespace) -> int:
    from reference_models.generate import generate_bench

    rec = generate_bench(a.family, a.bench, a.out, checkpoint=a.checkpoint, num_steps=a.steps, guidance=_guidance(a.cfg),
                         seed=a.seed, limit=a.limit, batch_size=a.batch_size, device=a.device, weights=a.weights,
                         options=_parse_options(a.option), progress=not a.quiet)
    print(f"wrote {len(rec['samples'])} samples to {a.out} (NFE {rec['nfe']}, {rec['wall_time_s']:.1f} s); "
          f"score them with: javisbench evaluate {a.out} --bench {rec['bench']['path']}")
    return 0


def ls_generators(verbose: bool = False) -> int:
    """``javisbench ls generators``: name, family, presets, parameters, capabilities."""
    from reference_models.interface import list_generators

    rows = []
    for g in list_generators():
        caps = g["capabilities"]
        cap = ",".join([c for c in ("text", "disentangled_text") if caps[c]] + [f"x:{x}" for x in caps["x_conditional"]]) or "-"
        params = f"{g['parameters'] / 1e6:.2f}M" if g["parameters"] else "-"
        rows.append((g["name"], ",".join(g["presets"]), params, cap, caps["audio_domain"], ",".join(g["stages"]) or "-",
                     g["reconstructed"] or ("baseline" if not g["trainable"] else "")))
    head = ("name", "presets", "params", "capabilities", "audio", "stages", "note")
    widths = [max(len(r[i]) for r in rows + [head]) for i in range(len(head) - 1)]
    for r in [head] + rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1])
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``synthav``, ``train`` and ``generate`` to the main parser's subcommands."""
    s = sub.add_parser("synthav", help="SynthAV: procedural sounding-video benches with exact event timelines")
    ss = s.add_subparsers(dest="synthav_cmd", required=True)
    mk = ss.add_parser("make", help="write a SynthAV bench folder (manifest.csv, clips, stems, events.json)")
    mk.add_argument("dir")
    mk.add_argument("--n", type=int, default=64, help="number of clips (>= 5 covers all 19 categories)")
    mk.add_argument("--seed", type=int, default=0)
    mk.add_argument("--split", default="test", choices=["train", "val", "test", "sanity"])
    mk.add_argument("--timed", action="store_true", help="captions say 'at about 1.5 s'")
    mk.add_argument("--av-offset-s", dest="av_offset_s", type=float, default=0.0, help="global audio delay (s)")
    mk.add_argument("--event-jitter-s", dest="event_jitter_s", type=float, default=0.0)
    mk.add_argument("--drop-sound-p", dest="drop_sound_p", type=float, default=0.0)
    mk.add_argument("--phantom-sound-p", dest="phantom_sound_p", type=float, default=0.0)
    mk.add_argument("--audio-speed", dest="audio_speed", type=float, default=1.0)
    mk.add_argument("--swap-band", dest="swap_band", action="store_true")
    mk.set_defaults(func=cmd_synthav_make)

    t = sub.add_parser("train", help="train a reference generator on a bench folder")
    t.add_argument("family", help="see `javisbench ls generators`")
    t.add_argument("--preset", default=None)
    t.add_argument("--data", required=True, help="bench folder (manifest.csv + clips) or manifest CSV")
    t.add_argument("--steps", type=int, default=300)
    t.add_argument("--out", required=True, help="checkpoint folder (an earlier run's folder resumes it)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--device", default="cpu")
    t.add_argument("--batch-size", type=int, default=4)
    t.add_argument("--stage", default=None, help="training stage (default: the family's first)")
    t.add_argument("--init", default=None, help="start from this checkpoint's weights (next stage of a recipe)")
    t.add_argument("--lr", type=float, default=3e-4)
    t.add_argument("--warmup", type=int, default=0, help="linear learning-rate warm-up steps")
    t.add_argument("--ema-decay", type=float, default=0.99)
    t.add_argument("--grad-clip", type=float, default=1.0)
    t.add_argument("--checkpoint-every", type=int, default=100)
    t.add_argument("--option", action="append", metavar="KEY=VALUE", help="model config override (repeatable)")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.set_defaults(func=cmd_train)

    g = sub.add_parser("generate", help="generate one clip per bench row with a trained model or a baseline")
    g.add_argument("family", help="see `javisbench ls generators`")
    g.add_argument("--checkpoint", default=None, help="checkpoint folder (baselines need none)")
    g.add_argument("--bench", required=True, help="manifest CSV (or bench folder)")
    g.add_argument("--out", required=True, help="new samples folder")
    g.add_argument("--steps", type=int, default=None, help="sampling steps (default: the family's)")
    g.add_argument("--cfg", default=None, help="CFG scale, or video=W,audio=W (default: the family's)")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--limit", type=int, default=None)
    g.add_argument("--batch-size", type=int, default=4)
    g.add_argument("--device", default="cpu")
    g.add_argument("--weights", default="ema", choices=["ema", "raw"])
    g.add_argument("--option", action="append", metavar="KEY=VALUE",
                   help="generator option, e.g. seconds=0.25 (shift-audio), sigma=0.2 (noise-video)")
    g.add_argument("--quiet", action="store_true")
    g.set_defaults(func=cmd_generate)

    register_dpo_pairs(sub)


# ---------------------------------------------------------------------------------------------
# AV-DPO pair mining for the JavisDiT++ ``dpo`` stage: the suite's per-sample metrics are the
# reward, ``reference_models.dpo`` the ranking rule.
# ---------------------------------------------------------------------------------------------
def cmd_dpo_pairs(a: argparse.Namespace) -> int:
    """``javisbench dpo-pairs``: score candidate sample folders (and the real clips) per sample, mine
    Pareto-dominant pairs per prompt, write a pair bench (manifest.csv chosen, rejected.csv)."""
    import math
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    from javisbench.suite import get_metric
    from reference_models.data import read_bench, resolve_manifest
    from reference_models.dpo import rank_pairs, write_pair_bench

    manifest = resolve_manifest(a.bench)
    rows = read_bench(manifest)
    groups: dict[str, tuple[str, ...]] = {}
    for item in a.group or ["audio_video=av_align,av_lag"]:
        name, sep, ms = item.partition("=")
        if not sep or not ms:
            raise ValueError(f"--group {item!r}: expected NAME=metric,metric")
        groups[name] = tuple(m.strip() for m in ms.split(",") if m.strip())
    metrics = sorted({m for ms in groups.values() for m in ms})
    lower = {m for m in metrics if not get_metric(m).higher_is_better}
    sources: list[tuple[str, Path]] = [(Path(d).name, Path(d)) for d in a.candidates]
    if not a.no_real:
        sources.append(("real", manifest.parent))
    table, clips = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for k, (name, folder) in enumerate(sources):
            res_path = Path(tmp) / f"results_{k}.json"
            cmd = [sys.executable, "-m", "javisbench", "evaluate", str(folder), "--bench", str(manifest), "--out",
                   str(res_path), "--metrics", *metrics, "--quiet", "--device", a.device]
            subprocess.run(cmd, check=True)
            per_sample = json.loads(res_path.read_text())["per_sample"]
            for r in rows:
                sid = f"sample_{r.index:04d}"
                vals = per_sample.get(sid, {})
                if any(vals.get(m) is None or not math.isfinite(float(vals[m])) for m in metrics):
                    continue                    # a failed score: this candidate does not compete
                cid = f"{name}:{sid}"
                table.append({"prompt": str(r.index), "id": cid, **{m: float(vals[m]) for m in metrics}})
                real = name == "real" and folder == manifest.parent
                clips[cid] = {"text": r.text, "audio_text": r.audio_text, "video_text": r.video_text, "labels": r.labels,
                              "video": r.video if real else folder / f"{sid}.mp4",
                              "audio": r.audio if real else folder / f"{sid}.wav"}
    pairs = rank_pairs(table, groups, lower, prompt_key="prompt", id_key="id", mode=a.mode)
    out = write_pair_bench(pairs, clips, a.out)
    print(f"{len(pairs)} preference pairs from {len(rows)} prompts x {len(sources)} candidates -> {out} "
          f"(train: javisbench train javisdit++ --stage dpo --init SFT_CKPT --data {out} "
          f"--option dpo_rejected={out / 'rejected.csv'})")
    return 0


def register_dpo_pairs(sub: argparse._SubParsersAction) -> None:
    """Add ``dpo-pairs`` to the main parser's subcommands."""
    d = sub.add_parser("dpo-pairs", help="mine AV-DPO preference pairs from generated samples, scored by the suite")
    d.add_argument("--bench", required=True, help="manifest CSV (or bench folder) the candidates were generated for")
    d.add_argument("--candidates", nargs="+", required=True, help="samples folders (javisbench generate outputs)")
    d.add_argument("--out", required=True, help="pair bench folder to write")
    d.add_argument("--group", action="append", metavar="NAME=METRIC,METRIC",
                   help="a reward dimension (repeatable; default audio_video=av_align,av_lag)")
    d.add_argument("--mode", default="micro", choices=["micro", "macro"])
    d.add_argument("--no-real", action="store_true", help="leave the bench's real clips out of the candidates")
    d.add_argument("--device", default="cpu")
    d.set_defaults(func=cmd_dpo_pairs)
