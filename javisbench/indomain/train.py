"""Train the in-domain encoders on SynthAV.

    python -m javisbench.indomain.train --out DIR --seed 0 [--clips 600 --steps 1000 --batch 32 --threads 1]

Renders ``--clips`` clips of the SynthAV ``train`` split (and 96 of ``val`` for the printed
checks), trains the four networks of :mod:`javisbench.indomain.model` jointly and writes
``DIR/synthav_{video,audio,text,sync}.safetensors`` plus ``DIR/train_log.json`` (losses, checks,
sha256 of each file, seconds, load average).  Same seed, same machine and thread count: same
bytes (each safetensors header is written in sorted order, see :func:`save_sorted`).

The shipped weights: the default command, seed 0, one thread (1000 steps of batch 32 on 600 clips)
took 1339 s (22 min) on a shared 2-core machine at load average 10-16 (other jobs running); a step
costs about 0.8 s when the cores are not shared, about 15 minutes in all with the data rendering.

Objective (one AdamW optimiser, cosine learning rate):

* clip level, symmetric InfoNCE (temperature 0.07) in the shared 64-d space: video–audio,
  video–joint caption, audio–audio caption, video–video caption (CLIP / ImageBind style);
* frame level, InfoNCE between the local content vectors of every video frame and every audio
  step of the batch (other times of the same clip are negatives), temperature 0.1;
* offsets: cross-entropy over the 21 grid classes, the audio of each clip shifted by a random
  class (log-mel steps moved by 8 per 0.2 s, filled with the log-mel of silence).

To ship new weights: copy the four files into ``javisbench/indomain/weights/`` and update
``FILES`` in :mod:`javisbench.indomain.nets` with the printed sha256.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from javisbench.indomain import model as M


def _data(n: int, seed: int, split: str) -> dict[str, Any]:
    from reference_models.synthav import bench_clips

    clips = bench_clips(n, seed, split)
    frames = np.stack([c.frames for c in clips])                           # (N, T, 32, 32, 3) uint8
    if frames.shape[2:4] != (M.SIZE, M.SIZE) or clips[0].fps != M.FPS or clips[0].sr != M.SR:
        raise ValueError(f"SynthAV clips are {frames.shape[2:4]} at {clips[0].fps} fps / {clips[0].sr} Hz; "
                         f"the in-domain views expect {M.SIZE}x{M.SIZE} at {M.FPS} fps / {M.SR} Hz")
    audio = torch.from_numpy(np.stack([c.audio for c in clips]).astype(np.float32))
    mel = torch.cat([M.log_mel(audio[i:i + 64]) for i in range(0, len(clips), 64)])
    return {"frames": torch.from_numpy(frames), "mel": mel,
            "joint": [M.text_tokens(c.caption) for c in clips],
            "video_text": [M.text_tokens(c.video_caption) for c in clips],
            "audio_text": [M.text_tokens(c.audio_caption) for c in clips]}


def _video(frames_u8: torch.Tensor) -> torch.Tensor:
    return frames_u8.permute(0, 1, 4, 2, 3).float() / 255.0


SILENCE = (math.log(M.LOG_FLOOR) + 4.0) / 4.0


def shift_mel(mel: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """Delay each row's audio by ``GRID[class]`` seconds (negative: advance), silence filled."""
    out = torch.full_like(mel, SILENCE)
    s_all = mel.shape[2]
    for i, c in enumerate(classes.tolist()):
        s = int(round(M.GRID[c] / 0.2)) * M.GRID_STEP_HOPS
        if abs(s) >= s_all:
            continue
        if s >= 0:
            out[i, :, s:] = mel[i, :, : s_all - s]
        else:
            out[i, :, : s_all + s] = mel[i, :, -s:]
    return out


def _nce(a: torch.Tensor, b: torch.Tensor, temp: float) -> torch.Tensor:
    logits = a @ b.T / temp
    target = torch.arange(a.shape[0])
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


def _checks(nets: dict[str, torch.nn.Module], val: dict[str, Any]) -> dict[str, float]:
    """Validation figures: video->audio and text->video top-1 retrieval, offset accuracy."""
    with torch.no_grad():
        x = _video(val["frames"])
        ev, _ = nets["video"](x)
        ea, _ = nets["audio"](val["mel"])
        tj = nets["text"](val["joint"])
        n = ev.shape[0]
        g = torch.Generator().manual_seed(1)
        cls = torch.randint(0, len(M.GRID), (n,), generator=g)
        pred = nets["sync"](x, shift_mel(val["mel"], cls)).argmax(1)
    tgt = torch.arange(n)
    return {"v2a_top1": float(((ev @ ea.T).argmax(1) == tgt).float().mean()),
            "t2v_top1": float(((tj @ ev.T).argmax(1) == tgt).float().mean()),
            "offset_acc": float((pred == cls).float().mean()),
            "offset_acc_pm1": float(((pred - cls).abs() <= 1).float().mean())}


def save_sorted(state: dict[str, torch.Tensor], path: Path, metadata: dict[str, str]) -> None:
    """A safetensors file whose bytes depend only on the tensors and metadata: header keys sorted
    (``safetensors.torch.save_file`` orders its header by a per-process hash map), tensors in that
    order, the header padded with spaces to a multiple of 8 bytes (as the format allows)."""
    dtypes = {torch.float32: "F32", torch.int64: "I64", torch.float64: "F64"}
    header: dict[str, Any] = {"__metadata__": dict(sorted(metadata.items()))}
    blobs, offset = [], 0
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous()
        if t.dtype not in dtypes:
            raise ValueError(f"{name}: dtype {t.dtype} not supported (expected one of {list(dtypes)})")
        b = t.numpy().astype(t.numpy().dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": dtypes[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    head = json.dumps(header, separators=(",", ":"), sort_keys=False).encode()
    head += b" " * (-len(head) % 8)
    with open(path, "wb") as f:
        f.write(len(head).to_bytes(8, "little"))
        f.write(head)
        for b in blobs:
            f.write(b)


def train(out: Path, seed: int = 0, n_clips: int = 600, steps: int = 1000, batch: int = 32,
          lr: float = 2e-3, log_every: int = 100, threads: int = 1, n_val: int = 96) -> dict[str, Any]:
    """Train and write the four weight files; returns the log (also written as ``train_log.json``)."""
    t0 = time.time()
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    data = _data(n_clips, seed, "train")
    val = _data(n_val, seed, "val")
    t_data = time.time() - t0
    nets = {k: cls() for k, cls in M.NETS.items()}
    params = [p for n in nets.values() for p in n.parameters()]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / 50) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    history = []
    for step in range(steps):
        idx = rng.choice(n_clips, size=min(batch, n_clips), replace=False)
        x = _video(data["frames"][idx])
        mel = data["mel"][idx]
        ev, cv = nets["video"](x)
        ea, ca = nets["audio"](mel)
        tj = nets["text"]([data["joint"][i] for i in idx])
        tv = nets["text"]([data["video_text"][i] for i in idx])
        ta = nets["text"]([data["audio_text"][i] for i in idx])
        l_clip = _nce(ev, ea, 0.07) + _nce(ev, tj, 0.07) + _nce(ea, ta, 0.07) + 0.5 * _nce(ev, tv, 0.07)
        t = min(cv.shape[1], ca.shape[1])
        l_local = _nce(cv[:, :t].reshape(-1, M.LOCAL), ca[:, :t].reshape(-1, M.LOCAL), 0.1)
        cls = torch.from_numpy(rng.integers(0, len(M.GRID), size=batch))
        l_sync = F.cross_entropy(nets["sync"](x, shift_mel(mel, cls)), cls)
        loss = l_clip + l_local + l_sync
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % log_every == 0 or step == steps - 1:
            rec = {"step": step, "loss": round(loss.item(), 4), "clip": round(l_clip.item(), 4),
                   "local": round(l_local.item(), 4), "sync": round(l_sync.item(), 4), "s": round(time.time() - t0, 1)}
            history.append(rec)
            print(json.dumps(rec), flush=True)
    for n in nets.values():
        n.eval()
    checks = _checks(nets, val)
    out.mkdir(parents=True, exist_ok=True)
    sha = {}
    for name, net in nets.items():
        path = out / f"synthav_{name}.safetensors"
        state = {k: v.detach().contiguous() for k, v in net.state_dict().items()}
        save_sorted(state, path, {"seed": str(seed), "clips": str(n_clips), "steps": str(steps)})
        sha[path.name] = hashlib.sha256(path.read_bytes()).hexdigest()
    log = {"seed": seed, "clips": n_clips, "steps": steps, "batch": batch, "lr": lr, "threads": torch.get_num_threads(),
           "load_average": [round(x, 2) for x in os.getloadavg()], "seconds": round(time.time() - t0, 1), "data_seconds": round(t_data, 1), "checks": checks,
           "sha256": sha, "history": history}
    (out / "train_log.json").write_text(json.dumps(log, indent=1) + "\n", encoding="utf-8")
    return log


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m javisbench.indomain.train", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, type=Path, help="output folder for the weight files")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--clips", type=int, default=600, help="SynthAV train clips rendered")
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (the shipped weights: 1)")
    ap.add_argument("--val-clips", type=int, default=96, help="SynthAV val clips of the printed checks")
    a = ap.parse_args(argv)
    log = train(a.out, a.seed, a.clips, a.steps, a.batch, a.lr, threads=a.threads, n_val=a.val_clips)
    print(json.dumps({k: log[k] for k in ("seconds", "checks", "sha256")}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
