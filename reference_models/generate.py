"""Generation over a bench: one ``sample_{i:04d}.mp4`` + ``.wav`` per manifest row.

The samples are written into a temporary sibling folder and renamed to ``out`` at the end, so a
failed or killed run leaves nothing half-written.  ``out/generation.json`` records the generator,
its config hash, the checkpoint, the bench (path, sha256), every request (prompts, steps,
guidance, seed), the per-row seeds, NFE and wall time.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from reference_models.data import read_bench, resolve_manifest
from reference_models.interface import GenerationRequest, Generator, create_generator, generator_class
from reference_models.synthav.io import write_mp4, write_wav


def build_generator(family: str, checkpoint: str | Path | None, bench: str | Path, device: str = "cpu",
                    weights: str = "ema", preset: str | None = None, options: dict[str, Any] | None = None
                    ) -> tuple[Generator, dict[str, Any]]:
    """A ready generator: a baseline reading ``bench``, or a trained model from ``checkpoint``."""
    cls = generator_class(family)
    options = dict(options or {})
    if not cls.trainable:
        if checkpoint is not None:
            raise ValueError(f"{family!r} is a baseline that reads the bench's real clips; it takes no --checkpoint")
        return create_generator(family, preset, device=device, bench=str(bench), **options), {}
    if checkpoint is None:
        raise ValueError(f"{family!r} is a trained model: give --checkpoint CKPT_DIR (from `javisbench train {family}`)")
    from reference_models.train import load_checkpoint

    model, config = load_checkpoint(checkpoint, device, weights=weights, family=family)
    return model, config


def generate_bench(family: str, bench: str | Path, out: str | Path, checkpoint: str | Path | None = None,
                   num_steps: int | None = None, guidance: float | dict[str, float] | None = None, seed: int = 0,
                   limit: int | None = None, batch_size: int = 4, device: str = "cpu", weights: str = "ema",
                   options: dict[str, Any] | None = None, progress: bool = False) -> dict[str, Any]:
    """Generate every row of ``bench`` (the first ``limit``) into ``out``; returns the generation record."""
    manifest = resolve_manifest(bench)
    rows = read_bench(manifest, limit=limit, need_files=not generator_class(family).trainable)
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"--out {out} already exists and is not empty; choose a new samples folder")
    if batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {batch_size}")
    model, ckpt_config = build_generator(family, checkpoint, manifest, device, weights, options=options)
    if not model.trainable:
        batch_size = 1          # real clips of a bench may differ in size and length
    model.eval()
    size = model.clip_size()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    record: dict[str, Any] = {
        "generator": family, "preset": model.preset, "config": model.config(), "config_hash": model.config_hash(),
        "checkpoint": None if checkpoint is None else {"path": str(checkpoint), "step": ckpt_config.get("step"),
                                                       "weights": weights},
        "bench": {"path": str(manifest), "sha256": hashlib.sha256(manifest.read_bytes()).hexdigest(), "rows": len(rows)},
        "seed": seed, "num_steps": num_steps, "guidance": guidance, "device": str(device), "torch": torch.__version__,
        "requests": [], "samples": []}
    bar = None
    if progress:
        import sys

        from tqdm import tqdm

        bar = tqdm(total=len(rows), desc=f"generate {family}", file=sys.stderr, dynamic_ncols=True)
    t_start = time.perf_counter()
    nfe = 0
    try:
        for b0 in range(0, len(rows), batch_size):
            chunk = rows[b0:b0 + batch_size]
            req = GenerationRequest(prompts=[r.text for r in chunk], video_prompts=[r.video_text for r in chunk],
                                    audio_prompts=[r.audio_text for r in chunk], num_steps=num_steps, guidance=guidance,
                                    seed=seed, rows=[r.index for r in chunk], **size)
            t0 = time.perf_counter()
            with torch.no_grad():
                res = model.generate(req)
            dt = time.perf_counter() - t0
            frames, audio = res.to_uint8_thwc(), res.audio_numpy()
            n_frames = res.extras.get("n_frames")
            n_samples = res.extras.get("n_samples")
            for i, r in enumerate(chunk):
                name = f"sample_{r.index:04d}"
                f = frames[i][: n_frames[i]] if n_frames else frames[i]
                a = audio[i][: n_samples[i]] if n_samples else audio[i]
                write_mp4(tmp / f"{name}.mp4", f, res.fps)
                write_wav(tmp / f"{name}.wav", a, res.sample_rate)
            seeds = req.sample_seeds()
            step_nfe = int(res.extras.get("nfe", 0))
            nfe += step_nfe
            record["requests"].append({**req.to_json(), "nfe": step_nfe, "wall_s": dt})
            record["samples"] += [{"row": r.index, "sample": f"sample_{r.index:04d}", "seed": s} for r, s in zip(chunk, seeds)]
            if bar is not None:
                bar.update(len(chunk))
        record["nfe"] = nfe
        record["wall_time_s"] = time.perf_counter() - t_start
        (tmp / "generation.json").write_text(json.dumps(record, indent=1, sort_keys=True, default=str) + "\n")
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        if bar is not None:
            bar.close()
    return record
