"""I3D (Inception-v1 3D, Kinetics-400) logits: the video feature of FVD and KVD.

The network is the piergiaj ``pytorch-i3d`` ``InceptionI3d`` layout as used by VideoGPT's FVD
code (and, through Open-Sora-Plan, by the official JavisBench evaluator), written here so that
the official ``i3d_pretrained_400.pt`` loads as it is (same state-dict keys and shapes,
``strict=True``).  The FVD feature is the 400-d *logits* vector, not the 1024-d pool feature::

    trunk -> AvgPool3d([2,7,7], stride 1) -> dropout (identity in eval) -> 1x1x1 conv + bias
          -> squeeze H, W -> mean over the remaining time steps            # (B, 400)

Every convolution and max-pool pads the TensorFlow "SAME" way, recomputed from the input size
at each call (see :func:`same_padding`).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from javisbench.encoders.base import Encoder, Features, Prepared, SampleError
from javisbench.encoders.checkpoints import checkpoint_state_dict, load_strict, read_checkpoint  # noqa: F401 (re-exported)
from javisbench.weights import WeightFile, sha256_of

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import nn

    from javisbench.decode import DecodedClip
    from javisbench.protocol import Protocol

I3D_WEIGHTS = WeightFile(
    name="i3d_pretrained_400.pt",
    url=(
        "https://huggingface.co/spaces/LanguageBind/Open-Sora-Plan-v1.0.0/resolve/"
        "810fa8c4bdb3a4c8eec9bd57375c29bde6fb46de/opensora/eval/fvd/videogpt/i3d_pretrained_400.pt"
    ),
    license="Apache-2.0",
    note="Kinetics-400 I3D converted from TensorFlow (VideoGPT); Google Drive id "
    "1mQK8KD8G6UWRa5t87SRMm5PVXtlpneJT",
)

#: (in_channels, [b0, b1a, b1b, b2a, b2b, b3b] out channels) of each Inception block, in order.
INCEPTION_BLOCKS: tuple[tuple[str, int, tuple[int, int, int, int, int, int]], ...] = (
    ("Mixed_3b", 192, (64, 96, 128, 16, 32, 32)),
    ("Mixed_3c", 256, (128, 128, 192, 32, 96, 64)),
    ("Mixed_4b", 480, (192, 96, 208, 16, 48, 64)),
    ("Mixed_4c", 512, (160, 112, 224, 24, 64, 64)),
    ("Mixed_4d", 512, (128, 128, 256, 24, 64, 64)),
    ("Mixed_4e", 512, (112, 144, 288, 32, 64, 64)),
    ("Mixed_4f", 528, (256, 160, 320, 32, 128, 128)),
    ("Mixed_5b", 832, (256, 160, 320, 32, 128, 128)),
    ("Mixed_5c", 832, (384, 192, 384, 48, 128, 128)),
)

#: Smallest clip length the network accepts: three stride-2 stages (ceil each time) must leave
#: at least the 2 time steps the final AvgPool3d([2,7,7]) needs.
MIN_FRAMES = 9
#: The official FVD code resizes the short side to this before cropping (``get_fvd_logits``).
FVD_RESOLUTION = 224
#: Batch-norm epsilon of the official network (VideoGPT's Unit3D: ``BatchNorm3d(eps=1e-5)``).
BN_EPS = 1e-5


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow "SAME" padding of one axis as (front, back).

    ``total = max(kernel - stride, 0)`` if ``size % stride == 0`` else
    ``max(kernel - size % stride, 0)``; ``front = total // 2``, ``back = total - front``
    (the extra element goes to the end).  The output length is then ``ceil(size / stride)``.

    Example:
        >>> same_padding(224, 7, 2), same_padding(7, 3, 1), same_padding(4, 2, 2)
        ((2, 3), (1, 1), (0, 0))
    """
    if size % stride == 0:
        total = max(kernel - stride, 0)
    else:
        total = max(kernel - size % stride, 0)
    return total // 2, total - total // 2


def _pad_same(x: "torch.Tensor", kernel: Sequence[int], stride: Sequence[int]) -> "torch.Tensor":
    """Zero-pad a (B, C, T, H, W) tensor for a SAME conv/pool of ``kernel``/``stride``."""
    import torch.nn.functional as F

    pads: list[int] = []
    for axis in (2, 1, 0):  # F.pad lists the last axis first: (W, H, T)
        pads.extend(same_padding(int(x.shape[2 + axis]), int(kernel[axis]), int(stride[axis])))
    return F.pad(x, pads) if any(pads) else x


def build_i3d(num_classes: int = 400, in_channels: int = 3, bn_eps: float = BN_EPS) -> "nn.Module":
    """The InceptionI3d network (random init); ``state_dict`` keys match the official checkpoint.

    Input (B, in_channels, T, 224, 224) float in [-1, 1] with T >= 9; output (B, num_classes)
    logits averaged over time.
    """
    import torch
    from torch import nn

    class Unit3D(nn.Module):
        """SAME-padded Conv3d (no bias unless asked), then BatchNorm3d and ReLU when enabled."""

        def __init__(self, cin: int, cout: int, kernel: Sequence[int] = (1, 1, 1),
                     stride: Sequence[int] = (1, 1, 1), bn: bool = True, relu: bool = True,
                     bias: bool = False) -> None:
            super().__init__()
            self.kernel, self.stride, self.relu = tuple(kernel), tuple(stride), relu
            # padding is always done in forward: SAME depends on the input size
            self.conv3d = nn.Conv3d(cin, cout, self.kernel, self.stride, padding=0, bias=bias)
            self.bn = nn.BatchNorm3d(cout, eps=bn_eps) if bn else None

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.conv3d(_pad_same(x, self.kernel, self.stride))
            if self.bn is not None:
                x = self.bn(x)
            return torch.relu(x) if self.relu else x

    class MaxPoolSame(nn.Module):
        """Max-pool after *zero* SAME padding (F.pad, as the original; inputs are post-ReLU >= 0)."""

        def __init__(self, kernel: Sequence[int], stride: Sequence[int]) -> None:
            super().__init__()
            self.kernel, self.stride = tuple(kernel), tuple(stride)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return nn.functional.max_pool3d(_pad_same(x, self.kernel, self.stride), self.kernel, self.stride)

    class InceptionBlock(nn.Module):
        """Four branches concatenated on channels: 1x1 | 1x1->3x3 | 1x1->3x3 | maxpool 3x3->1x1."""

        def __init__(self, cin: int, c: Sequence[int]) -> None:
            super().__init__()
            self.b0 = Unit3D(cin, c[0])
            self.b1a = Unit3D(cin, c[1])
            self.b1b = Unit3D(c[1], c[2], (3, 3, 3))
            self.b2a = Unit3D(cin, c[3])
            self.b2b = Unit3D(c[3], c[4], (3, 3, 3))
            self.b3a = MaxPoolSame((3, 3, 3), (1, 1, 1))
            self.b3b = Unit3D(cin, c[5])

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.cat(
                [self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x))], dim=1
            )

    class InceptionI3d(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            # registered first so that state_dict() lists it first, as the official file does
            self.logits = Unit3D(1024, num_classes, bn=False, relu=False, bias=True)
            trunk: list[tuple[str, nn.Module]] = [
                ("Conv3d_1a_7x7", Unit3D(in_channels, 64, (7, 7, 7), (2, 2, 2))),
                ("MaxPool3d_2a_3x3", MaxPoolSame((1, 3, 3), (1, 2, 2))),
                ("Conv3d_2b_1x1", Unit3D(64, 64)),
                ("Conv3d_2c_3x3", Unit3D(64, 192, (3, 3, 3))),
                ("MaxPool3d_3a_3x3", MaxPoolSame((1, 3, 3), (1, 2, 2))),
            ]
            for name, cin, c in INCEPTION_BLOCKS:
                if name == "Mixed_4b":
                    trunk.append(("MaxPool3d_4a_3x3", MaxPoolSame((3, 3, 3), (2, 2, 2))))
                if name == "Mixed_5b":
                    trunk.append(("MaxPool3d_5a_2x2", MaxPoolSame((2, 2, 2), (2, 2, 2))))
                trunk.append((name, InceptionBlock(cin, c)))
            self.trunk_names = [n for n, _ in trunk]
            for name, module in trunk:
                self.add_module(name, module)
            self.avg_pool = nn.AvgPool3d((2, 7, 7), stride=(1, 1, 1))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            for name in self.trunk_names:
                x = self._modules[name](x)
            # dropout sits here in the original; it is the identity in eval mode
            x = self.logits(self.avg_pool(x))          # (B, 400, T', 1, 1)
            return x.squeeze(4).squeeze(3).mean(dim=2)  # (B, 400)

    return InceptionI3d()


def fvd_input(video_u8: "torch.Tensor", resolution: int = FVD_RESOLUTION) -> "torch.Tensor":
    """The official ``get_fvd_logits`` preprocessing of uint8 clips, as an I3D input.

    ``x = u8 / 255``; short side bilinearly resized to ``resolution`` (align_corners=False,
    other side ``ceil``; skipped when already there, where it is an exact no-op); centre crop
    ``resolution``²; then ``(x - 0.5) * 2``.

    Args:
        video_u8: (B, T, 3, H, W) uint8.
    Returns:
        (B, 3, T, resolution, resolution) float32, in [-1, 1].
    """
    import torch.nn.functional as F

    b, t, c, h, w = video_u8.shape
    x = video_u8.float().reshape(b * t, c, h, w) / 255.0
    if min(h, w) != resolution:
        s = resolution / min(h, w)
        size = (resolution, math.ceil(w * s)) if h < w else (math.ceil(h * s), resolution)
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    h, w = x.shape[-2:]
    top, left = (h - resolution) // 2, (w - resolution) // 2
    x = x[..., top:top + resolution, left:left + resolution]
    x = x.reshape(b, t, c, resolution, resolution).permute(0, 2, 1, 3, 4)  # (B, 3, T, R, R)
    return ((x - 0.5) * 2.0).contiguous()


class I3DEncoder(Encoder):
    """I3D Kinetics-400 logits (400-d) of the FVD video view, for FVD and KVD.

    ``prepare`` -> ``{"video": uint8 (T, 3, S, S)}`` from ``views.fvd_video`` (T =
    ``protocol.fvd_frames`` linspace frames, S = ``protocol.image_size`` letterbox, the
    [127, 255] remap when ``protocol.fvd_uint8_remap``), or under ``fvd_mode="mmdiffusion"``
    from ``views.mmdiff_video`` (the first ``mmdiff_clip_s`` window at ``mmdiff_fps``, bicubic
    letterbox to ``mmdiff_size``; ``fvd_input`` then resizes to 224).
    ``encode`` -> ``{"logits": (400,)}``.
    """

    id = "i3d"
    protocol_fields = ('fvd_frames', 'fvd_mode', 'fvd_uint8_remap', 'image_size', 'mmdiff_clip_s', 'mmdiff_fps', 'mmdiff_size', 'mmdiff_windows')
    outputs = {'logits': '(400,), or (W, 400) under windowed protocols'}
    version = "1"
    weight_files = (I3D_WEIGHTS,)
    description = "I3D Inception-v1 Kinetics-400 logits (VideoGPT i3d_pretrained_400.pt), FVD/KVD"

    def __init__(self, protocol: "Protocol", device: str = "cpu", batch_size: int = 8) -> None:
        super().__init__(protocol, device, batch_size)
        if protocol.fvd_mode == "mmdiffusion":
            frames = int(protocol.mmdiff_fps * protocol.mmdiff_clip_s)
            what = f"int(mmdiff_fps*mmdiff_clip_s)={frames}"
        else:
            frames, what = protocol.fvd_frames, f"fvd_frames={protocol.fvd_frames}"
        if frames < MIN_FRAMES:
            raise ValueError(
                f"protocol {protocol.name!r}: {what}, but I3D needs at least "
                f"{MIN_FRAMES} frames (three stride-2 stages before a 2-frame average pool)"
            )
        self.model: "nn.Module | None" = None

    def load(self, weights_dir: Path) -> None:
        import torch

        path = self.weight_paths(Path(weights_dir))[I3D_WEIGHTS.name]
        obj = read_checkpoint(path, self.id, I3D_WEIGHTS)
        model = build_i3d()
        load_strict(model, checkpoint_state_dict(obj, path), path, self.id)
        self.model = model.to(self.device).eval()
        self.weights_sha256[I3D_WEIGHTS.name] = sha256_of(path)

    def prepare(self, clip: "DecodedClip", text: str, audio_text: str) -> Prepared:
        if clip.frames.ndim != 4 or clip.frames.shape[0] == 0:
            raise SampleError(
                f"sample {clip.sample_id}: expected video frames (T>=1, H, W, 3), got shape {clip.frames.shape}"
            )
        from javisbench import views

        p = self.protocol
        try:
            if p.windowed:
                # every window: the resampled frames once, windows cut at encode time
                win = views.mmdiff_all_windows(clip.frames.shape[0], clip.fps, p.mmdiff_fps, p.mmdiff_clip_s)
                used = np.unique(win)
                frames = views.unit_roundtrip_u8(views.letterbox_bicubic_u8(clip.frames[used], p.mmdiff_size))
                return {"frames": np.ascontiguousarray(frames), "windows": np.searchsorted(used, win)}
            if p.fvd_mode == "mmdiffusion":
                video, _ = views.mmdiff_video(clip.frames, clip.fps, p.mmdiff_fps, p.mmdiff_clip_s, p.mmdiff_size)
            else:
                video = views.fvd_video(clip.frames, num_frames=p.fvd_frames, size=p.image_size,
                                        remap_127=p.fvd_uint8_remap)
        except ValueError as err:
            raise SampleError(f"sample {clip.sample_id}: {err}") from None
        return {"video": np.ascontiguousarray(video, dtype=np.uint8)}

    def encode(self, batch: list[Prepared]) -> list[Features]:
        import torch

        if self.model is None:
            raise RuntimeError("I3DEncoder.encode called before load()")
        if not batch:
            return []
        if "windows" in batch[0]:
            return [self._encode_windows(item) for item in batch]
        shape = batch[0]["video"].shape
        for i, item in enumerate(batch):
            v = item["video"]
            if v.dtype != np.uint8 or v.ndim != 4 or v.shape[1] != 3 or v.shape != shape:
                raise ValueError(
                    f"I3D batch item {i}: expected uint8 (T, 3, H, W) like item 0 {shape}, "
                    f"got {v.dtype} {v.shape}"
                )
        if shape[0] < MIN_FRAMES:
            raise ValueError(f"I3D needs at least {MIN_FRAMES} frames per clip, got {shape[0]}")
        out: list[Features] = []
        with torch.inference_mode():
            for start in range(0, len(batch), max(self.batch_size, 1)):
                chunk = np.stack([item["video"] for item in batch[start:start + self.batch_size]])
                x = fvd_input(torch.from_numpy(chunk).to(self.device))   # (B, 3, T, 224, 224)
                logits = self.model(x).float().cpu().numpy()             # (B, 400)
                out.extend({"logits": row.astype(np.float32, copy=True)} for row in logits)
        return out

    def _encode_windows(self, item: Prepared) -> Features:
        """``{"logits": (W, 400)}`` for one clip's windows, ``batch_size`` windows per forward."""
        import torch

        frames, win = item["frames"], np.asarray(item["windows"], np.int64)
        if frames.dtype != np.uint8 or frames.ndim != 4 or win.ndim != 2 or win.shape[1] < MIN_FRAMES:
            raise ValueError(f"I3D windows: expected uint8 (T, 3, H, W) frames and (W, L>={MIN_FRAMES}) indices, "
                             f"got {frames.dtype} {frames.shape} and {win.shape}")
        rows = []
        with torch.inference_mode():
            for start in range(0, win.shape[0], max(self.batch_size, 1)):
                chunk = frames[win[start:start + self.batch_size]]                 # (b, L, 3, H, W)
                x = fvd_input(torch.from_numpy(np.ascontiguousarray(chunk)).to(self.device))
                rows.append(self.model(x).float().cpu().numpy())
        return {"logits": np.concatenate(rows).astype(np.float32, copy=False)}
