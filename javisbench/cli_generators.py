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
