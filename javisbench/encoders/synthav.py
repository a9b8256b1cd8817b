"""In-domain encoders trained on SynthAV (weights shipped with the package, see :mod:`javisbench.indomain`).

* ``synthav-av`` — video and audio clip embeddings in the shared 64-d space (``video``, ``audio``:
  FVD/KVD/FAD@synthav, ib_av@synthav) and the time-aware frame / audio-step embeddings of
  AVHScore / JavisScore@synthav (``frames``, ``avh_audio``, ``window_audio``, ``window_frame_idx``;
  windows from :func:`metrics.avh.javis_windows` under the protocol's JavisScore window fields,
  on the 8 fps / 16 kHz view);
* ``synthav-text`` — the joint prompt and the audio prompt in the same space (ib_tv / ib_ta@synthav);
* ``synthav-sync`` — the offset classifier: per clip one group, its predicted offset in seconds
  (``group_offsets``, positive = audio late) and the 21 class probabilities (DeSync@synthav).

The weights are not official and the numbers are not comparable with the official metrics; they
exist so that every metric family can be seen working, and meta-evaluated, offline.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from javisbench.encoders.base import Encoder, Features, Prepared, SampleError

if TYPE_CHECKING:  # pragma: no cover
    from javisbench.decode import DecodedClip


def _groups(batch: list[Prepared], key: str) -> dict[tuple[int, ...], list[int]]:
    """Batch positions grouped by the shape of ``batch[i][key]`` (equal shapes are stacked)."""
    out: dict[tuple[int, ...], list[int]] = {}
    for i, x in enumerate(batch):
        out.setdefault(tuple(np.shape(x[key])), []).append(i)
    return out


class _InDomain(Encoder):
    nets: ClassVar[tuple[str, ...]] = ()
    weights_root: Path | None = None          # tests may point at other files (their hashes in weights_table)
    weights_table: dict[str, tuple[str, str]] | None = None

    def load(self, weights_dir: Path) -> None:
        """Load the shipped networks (``weights_dir`` is not used: the weights are package data)."""
        from javisbench.indomain.nets import FILES, load_net

        self._nets = {}
        table = self.weights_table or FILES
        for name in self.nets:
            net, sha = load_net(name, self.device, self.weights_root, self.weights_table)
            self._nets[name] = net
            self.weights_sha256[table[name][0]] = sha

    def _av(self, clip: "DecodedClip") -> tuple[np.ndarray, np.ndarray]:
        from javisbench.indomain.model import SR, STEPS_PER_FRAME, HOP, resample_audio, video_view

        if clip.frames.shape[0] < 1:
            raise SampleError(f"{clip.sample_id}: no video frames")
        video = video_view(clip.frames, clip.fps)
        audio = resample_audio(clip.audio, clip.sr)
        if audio.size < STEPS_PER_FRAME * HOP:
            raise SampleError(f"{clip.sample_id}: {audio.size / SR:.3f} s of audio; the in-domain encoders need "
                              f"at least {STEPS_PER_FRAME * HOP / SR:.3f} s")
        return video, audio


class SynthAVEncoder(_InDomain):
    id = "synthav-av"
    version = "2"
    nets = ("video", "audio")
    description = "in-domain SynthAV video/audio encoders (shared space) with time-aware frame embeddings"
    protocol_fields = ("javis_window_s", "javis_overlap_s", "javis_aligned_windows")
    outputs: ClassVar[dict[str, str]] = {
        "video": "(64,)", "audio": "(64,)", "frames": "(T, 352) 8 fps", "avh_audio": "(352,)",
        "window_audio": "(M, 352)", "window_frame_idx": "(M, N) exact integers"}

    def prepare(self, clip: "DecodedClip", text: str, audio_text: str) -> Prepared:
        from metrics.avh import javis_windows

        from javisbench.indomain.model import FPS, SR

        video, audio = self._av(clip)
        p = self.protocol
        win = javis_windows(video.shape[0], audio.size, float(FPS), SR, window_s=float(p.javis_window_s),
                            overlap_s=float(p.javis_overlap_s), aligned=bool(p.javis_aligned_windows))
        return {"video": video, "audio": audio, "window_frame_idx": win.frame_index(),
                "audio_bounds": np.asarray(win.audio_bounds(), np.int64).reshape(-1, 2)}

    def encode(self, batch: list[Prepared]) -> list[Features]:
        import torch

        from javisbench.indomain.model import FPS, HOP, STEPS_PER_FRAME, log_mel, timed

        step = HOP * STEPS_PER_FRAME          # audio samples per local audio step (one video frame)
        out: list[Features | None] = [None] * len(batch)
        with torch.no_grad():
            vid: dict[int, tuple[np.ndarray, np.ndarray]] = {}
            for _, idx in _groups(batch, "video").items():
                x = torch.from_numpy(np.stack([batch[i]["video"] for i in idx])).to(self.device)
                e, loc = self._nets["video"](x)
                fr = timed(loc, FPS)
                for j, i in enumerate(idx):
                    vid[i] = (e[j].cpu().numpy(), fr[j].cpu().numpy())
            for _, idx in _groups(batch, "audio").items():
                a = torch.from_numpy(np.stack([batch[i]["audio"] for i in idx])).to(self.device)
                e, loc = self._nets["audio"](log_mel(a))
                steps = timed(loc, FPS).cpu().numpy()
                for j, i in enumerate(idx):
                    st = steps[j]
                    windows = []
                    for lo, hi in batch[i]["audio_bounds"]:
                        a0 = min(int(lo) // step, st.shape[0] - 1)
                        a1 = max(a0 + 1, min(int(math.ceil(int(hi) / step)), st.shape[0]))
                        windows.append(st[a0:a1].mean(0))
                    w = np.asarray(windows, np.float64)
                    w /= np.maximum(np.linalg.norm(w, axis=1, keepdims=True), 1e-12)
                    m = st.mean(0).astype(np.float64)
                    m /= max(float(np.linalg.norm(m)), 1e-12)
                    video_e, frames = vid[i]
                    out[i] = {"video": video_e.astype(np.float32), "audio": e[j].cpu().numpy().astype(np.float32),
                              "frames": frames.astype(np.float32), "avh_audio": m.astype(np.float32),
                              "window_audio": w.astype(np.float32),
                              "window_frame_idx": np.asarray(batch[i]["window_frame_idx"], np.float32)}
        return [o for o in out if o is not None]


class SynthAVTextEncoder(_InDomain):
    id = "synthav-text"
    version = "1"
    nets = ("text",)
    uses_text = True
    description = "in-domain SynthAV text encoder (hashed word n-grams) in the synthav-av space"
    protocol_fields = ()
    outputs: ClassVar[dict[str, str]] = {"text_video": "(64,) joint prompt", "text_audio": "(64,) audio prompt"}

    def prepare(self, clip: "DecodedClip", text: str, audio_text: str) -> Prepared:
        from javisbench.indomain.model import text_tokens

        return {"text_video": text_tokens(text or ""), "text_audio": text_tokens(audio_text or text or "")}

    def encode(self, batch: list[Prepared]) -> list[Features]:
        import torch

        with torch.no_grad():
            tv = self._nets["text"]([x["text_video"] for x in batch]).cpu().numpy()
            ta = self._nets["text"]([x["text_audio"] for x in batch]).cpu().numpy()
        return [{"text_video": tv[i].astype(np.float32), "text_audio": ta[i].astype(np.float32)} for i in range(len(batch))]


class SynthAVSyncEncoder(_InDomain):
    id = "synthav-sync"
    version = "1"
    nets = ("sync",)
    description = "in-domain Synchformer-style offset classifier (−2…2 s, 0.2 s classes) trained on SynthAV"
    protocol_fields = ()
    outputs: ClassVar[dict[str, str]] = {"group_offsets": "(1,) signed seconds, audio late > 0", "probs": "(21,)"}

    def prepare(self, clip: "DecodedClip", text: str, audio_text: str) -> Prepared:
        video, audio = self._av(clip)
        return {"video": video, "audio": audio}

    def encode(self, batch: list[Prepared]) -> list[Features]:
        import torch

        from javisbench.indomain.model import GRID, log_mel

        out: list[Features | None] = [None] * len(batch)
        with torch.no_grad():
            for key, idx in _groups(batch, "video").items():
                sub = _groups([batch[i] for i in idx], "audio")
                for _, jdx in sub.items():
                    ids = [idx[j] for j in jdx]
                    x = torch.from_numpy(np.stack([batch[i]["video"] for i in ids])).to(self.device)
                    a = torch.from_numpy(np.stack([batch[i]["audio"] for i in ids])).to(self.device)
                    probs = torch.softmax(self._nets["sync"](x, log_mel(a)).double(), dim=1).cpu().numpy()
                    for j, i in enumerate(ids):
                        out[i] = {"group_offsets": np.array([GRID[int(np.argmax(probs[j]))]], np.float32),
                                  "probs": probs[j].astype(np.float32)}
        return [o for o in out if o is not None]

    @staticmethod
    def describe(features: dict[str, Any]) -> str:
        return f"offset {float(features['group_offsets'][0]):+.1f} s"
