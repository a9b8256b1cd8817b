"""Training and checkpoints, generic over generator families.

``train(TrainConfig(...))``: seeded (model init from ``derive_seed(seed, "init")``; step s seeds
torch's RNG with ``derive_seed(seed, "step", s)`` and draws its clips with
:meth:`BenchData.indices_for_step`), AdamW, optional linear warm-up, gradient clipping, EMA,
a tqdm bar with the per-modality losses.  A run resumes from its ``--out`` folder after a kill and
ends with the same weights as an uninterrupted run.

Checkpoint folder layout::

    CKPT/checkpoint.json            {"format", "family", "preset", "stage", "step", "latest"}
    CKPT/step_000300/model.safetensors   raw weights
    CKPT/step_000300/ema.safetensors     EMA weights (generation uses these by default)
    CKPT/step_000300/optimizer.pt        optimizer + scheduler state, step, EMA update count
    CKPT/step_000300/config.json         model config (every paper-vs-code flag), config hash, training
                                         settings, data, parameter counts
    CKPT/step_000300/history.json        per-step losses and seconds

Each step folder is written under a temporary name and renamed; ``checkpoint.json`` is replaced
atomically last, so a kill at any point leaves the previous complete checkpoint in charge.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from reference_models.blocks.ema import EMA
from reference_models.interface import (Generator, create_generator, derive_seed, generator_class,
                                        load_state_dict_strict)

FORMAT = "javisbench-reference-checkpoint"
FORMAT_VERSION = 1


@dataclass
class TrainConfig:
    """Settings of one training run (all recorded in the checkpoint's config.json)."""

    family: str
    data: str
    out: str
    preset: str | None = None
    steps: int = 300
    seed: int = 0
    device: str = "cpu"
    batch_size: int = 4
    stage: str | None = None
    lr: float = 3e-4
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    ema_decay: float = 0.99
    warmup_steps: int = 0
    checkpoint_every: int = 100
    init: str | None = None          # start from another checkpoint's weights (the next stage of a recipe)
    options: dict[str, Any] = field(default_factory=dict)   # model config overrides (paper-vs-code flags)
    progress: bool = True


# ---------------------------------------------------------------------------------------------
# checkpoint I/O
# ---------------------------------------------------------------------------------------------
def _save_tensors(path: Path, state: dict[str, torch.Tensor]) -> None:
    from safetensors.torch import save_file

    save_file({k: v.detach().cpu().contiguous().clone() for k, v in state.items()}, str(path))


def _load_tensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path))


def _write_json_atomic(path: Path, obj: Any) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1, sort_keys=True, default=str)
        f.write("\n")
    os.replace(tmp, path)


def read_checkpoint_info(ckpt: str | Path) -> dict[str, Any]:
    """``checkpoint.json`` of a checkpoint folder; FileNotFoundError / ValueError (one line) when
    the folder is missing or is not one."""
    d = Path(ckpt)
    if not d.is_dir():
        raise FileNotFoundError(f"checkpoint folder {d} does not exist (train one with `javisbench train FAMILY --out {d}`)")
    p = d / "checkpoint.json"
    if not p.is_file():
        raise FileNotFoundError(f"{d} is not a checkpoint folder: no checkpoint.json (expected what `javisbench train` writes)")
    try:
        info = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{p}: not valid JSON ({e})") from None
    if info.get("format") != FORMAT:
        raise ValueError(f"{p}: format {info.get('format')!r}, expected {FORMAT!r} (a foreign checkpoint)")
    if not (d / str(info.get("latest", "")) / "model.safetensors").is_file():
        raise FileNotFoundError(f"{d}: checkpoint.json names {info.get('latest')!r}, which has no model.safetensors")
    return info


def save_checkpoint(out: Path, model: Generator, ema: EMA, optimizer: torch.optim.Optimizer,
                    scheduler: torch.optim.lr_scheduler.LRScheduler, step: int, config: dict[str, Any],
                    history: list[dict[str, float]]) -> Path:
    """Write ``out/step_{step:06d}`` (temp name, then rename) and point ``checkpoint.json`` at it."""
    out.mkdir(parents=True, exist_ok=True)
    name = f"step_{step:06d}"
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{name}-", dir=out))
    try:
        _save_tensors(tmp / "model.safetensors", model.state_dict())
        _save_tensors(tmp / "ema.safetensors", ema.state_dict())
        torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "step": step,
                    "ema_updates": ema.num_updates}, tmp / "optimizer.pt")
        (tmp / "config.json").write_text(json.dumps({**config, "step": step}, indent=1, sort_keys=True, default=str) + "\n")
        (tmp / "history.json").write_text(json.dumps(history) + "\n")
        final = out / name
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _write_json_atomic(out / "checkpoint.json", {"format": FORMAT, "version": FORMAT_VERSION, "family": config["family"],
                                                 "preset": config["preset"], "stage": config["stage"], "step": step,
                                                 "latest": name})
    for old in out.iterdir():
        if old.is_dir() and old.name.startswith("step_") and old.name != name:
            shutil.rmtree(old, ignore_errors=True)
    return out / name


def load_checkpoint(ckpt: str | Path, device: str | torch.device = "cpu", weights: str = "ema",
                    family: str | None = None) -> tuple[Generator, dict[str, Any]]:
    """Rebuild the model of a checkpoint and load its ``ema`` (default) or ``raw`` weights.

    ``family``: the family the caller expects; another family's checkpoint is refused."""
    info = read_checkpoint_info(ckpt)
    if family is not None and info["family"] != family:
        raise ValueError(f"{ckpt} holds a {info['family']!r} checkpoint, not {family!r}")
    if weights not in ("ema", "raw"):
        raise ValueError(f"weights must be 'ema' or 'raw', got {weights!r}")
    d = Path(ckpt) / info["latest"]
    config = json.loads((d / "config.json").read_text(encoding="utf-8"))
    model = create_generator(info["family"], info["preset"], device=device, **config.get("options", {}))
    if info.get("stage"):
        model.set_stage(info["stage"])
    state = _load_tensors(d / ("ema.safetensors" if weights == "ema" else "model.safetensors"))
    if weights == "ema":      # the EMA holds float state only; integer buffers come from the raw weights
        raw = _load_tensors(d / "model.safetensors")
        state = {**{k: v for k, v in raw.items() if k not in state}, **state}
    load_state_dict_strict(model, state, str(d))
    model.to(device)
    return model, config


# ---------------------------------------------------------------------------------------------
# training
# ---------------------------------------------------------------------------------------------
def _check_out(out: Path) -> dict[str, Any] | None:
    """The checkpoint to resume, None for a fresh run; an error for a folder that is not ours."""
    if not out.exists():
        return None
    if not out.is_dir():
        raise ValueError(f"--out {out} is a file; expected a checkpoint folder (new or from an earlier run)")
    for stray in out.glob(".tmp-*"):
        shutil.rmtree(stray, ignore_errors=True)
    if (out / "checkpoint.json").is_file():
        return read_checkpoint_info(out)
    if any(p for p in out.iterdir() if not p.name.startswith(".")):
        raise ValueError(f"--out {out} exists and is not a checkpoint folder (no checkpoint.json); "
                         "choose a new folder or an earlier run's output to resume")
    return None


def train(cfg: TrainConfig, stop_after: int | None = None) -> dict[str, Any]:
    """Train (or resume) and return ``{"checkpoint", "step", "history", "seconds_per_step"}``.

    ``stop_after``: leave after this many steps of *this* call without a final save (what a kill
    does; for tests of resuming)."""
    from reference_models.data import BenchData

    out = Path(cfg.out)
    cls = generator_class(cfg.family)
    if not cls.trainable:
        raise ValueError(f"{cfg.family!r} is a baseline with nothing to train; `javisbench generate {cfg.family}` needs no checkpoint")
    preset = cfg.preset or cls.default_preset
    cls.preset_config(preset)                                   # did-you-mean for an unknown preset
    if cfg.steps < 1 or cfg.batch_size < 1:
        raise ValueError(f"--steps and --batch-size must be >= 1, got {cfg.steps} and {cfg.batch_size}")
    resume = _check_out(out)
    device = torch.device(cfg.device)

    torch.manual_seed(derive_seed(cfg.seed, "init"))
    model = create_generator(cfg.family, preset, device=device, **cfg.options)
    stage = cfg.stage or (model.stages[0] if model.stages else "")
    if stage:
        model.set_stage(stage)
    if resume is not None:
        for key, want in (("family", cfg.family), ("preset", preset), ("stage", stage)):
            if resume.get(key) != want:
                raise ValueError(f"--out {out} holds a {key} {resume.get(key)!r} checkpoint, this run asks for {want!r}; "
                                 f"to start stage {stage!r} from it use --init {out} with a new --out")
    if cfg.init and resume is None:
        init_model, _ = load_checkpoint(cfg.init, device, weights="ema", family=cfg.family)
        load_state_dict_strict(model, init_model.state_dict(), f"--init {cfg.init}")
        del init_model

    data = BenchData(cfg.data, **model.clip_size())
    params = list(model.trainable_parameters())
    if not params:
        raise ValueError(f"{cfg.family} stage {stage!r} has no trainable parameters")
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    warm = max(cfg.warmup_steps, 0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warm) if warm else 1.0)
    ema = EMA(model, cfg.ema_decay)
    start, history = 0, []
    if resume is not None:
        d = out / resume["latest"]
        load_state_dict_strict(model, _load_tensors(d / "model.safetensors"), str(d))
        st = torch.load(d / "optimizer.pt", map_location=device, weights_only=True)
        optimizer.load_state_dict(st["optimizer"])
        scheduler.load_state_dict(st["scheduler"])
        ema.load_state_dict({k: v.to(device) for k, v in _load_tensors(d / "ema.safetensors").items()}, st["ema_updates"])
        start = int(st["step"])
        history = json.loads((d / "history.json").read_text())
    config = {"family": cfg.family, "preset": preset, "stage": stage, "model_config": model.config(),
              "config_hash": model.config_hash(), "options": cfg.options, "train": asdict(cfg), "data": data.describe(),
              "parameters": model.parameter_count(), "trainable_parameters": model.parameter_count(trainable_only=True),
              "torch": torch.__version__}

    bar = None
    if cfg.progress:
        from tqdm import tqdm

        bar = tqdm(total=cfg.steps, initial=start, desc=f"train {cfg.family}-{preset}" + (f" [{stage}]" if stage else ""),
                   file=sys.stderr, dynamic_ncols=True)
    model.train()
    done_here = 0
    try:
        for step in range(start, cfg.steps):
            if stop_after is not None and done_here >= stop_after:
                return {"checkpoint": str(out), "step": step, "history": history, "stopped": True}
            t0 = time.perf_counter()
            torch.manual_seed(derive_seed(cfg.seed, "step", step))
            batch = data.batch(data.indices_for_step(step, cfg.batch_size, cfg.seed), device)
            losses = model.training_step(batch, step)
            loss = losses["loss"]
            if not torch.isfinite(loss):
                raise FloatingPointError(f"step {step}: loss is {loss.item()} (lower --lr or check the data)")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            gnorm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip) if cfg.grad_clip > 0 else torch.tensor(0.0)
            optimizer.step()
            scheduler.step()
            ema.update(model)
            rec = {k: float(v.detach()) for k, v in losses.items() if torch.is_tensor(v) and v.numel() == 1}
            rec.update(step=step, grad_norm=float(gnorm), sec=time.perf_counter() - t0)
            history.append(rec)
            done_here += 1
            if bar is not None:
                bar.update(1)
                bar.set_postfix({k.replace("loss_", ""): f"{rec[k]:.3f}" for k in ("loss", "loss_video", "loss_audio") if k in rec})
            if (step + 1) % cfg.checkpoint_every == 0 or step + 1 == cfg.steps:
                save_checkpoint(out, model, ema, optimizer, scheduler, step + 1, config, history)
    finally:
        if bar is not None:
            bar.close()
    secs = [h["sec"] for h in history[1:]] or [math.nan]
    return {"checkpoint": str(out), "step": start + done_here, "history": history,
            "seconds_per_step": sorted(secs)[len(secs) // 2]}
