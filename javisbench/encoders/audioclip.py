"""AudioCLIP audio head (ESResNeXt-FBSP): the 1024-d audio embedding of FAD.

Written here so that the official ``AudioCLIP-Full-Training.pt`` (a full AudioCLIP state dict:
image tower, text tower, audio head) loads as it is: the ``audio.*`` keys are loaded strictly
into this network, everything else in the file is ignored.  The embedding is the *raw,
un-normalised* ``fc`` output, as the official FAD uses it.

Forward, for a waveform batch ``x`` of shape (B, L) at 16 kHz in [-1, 1]:

1. int16-style rescale (the model was trained on int16-range audio and still applies it):
   ``x' = (x + 32768) * 2 / 65535 - 1`` in float32 (which also quantises x to 2^-8 steps);
2. frames: ``nf = 1 + ceil((L - 1654) / 561)`` (1 if L <= 1654), zero pad to
   ``(nf - 1) * 561 + 1654`` (half left, floor), frames of 1654 times the periodic
   Blackman-Harris window, zero-padded to n_fft = 2048 (197 left, 197 right);
3. FBSP: a learnt complex "Fourier basis" ``W`` (1025 x 2048, from the parameters m, fb, fc),
   ``spec = frames @ W^T`` (real and imaginary part), normalised by 1/sqrt(2048);
4. the first 3 * 341 = 1023 frequency bins are split into 3 "colour" channels of 341 bins;
   power ``re^2 + im^2``; values that are not > 0 (NaN included) -> 1e-18; ``10 log10``:
   (B, 3, 341, nf) dB;
5. ResNeXt-50 (32x4d) trunk in which each stage output is multiplied by a sigmoid attention
   map computed from the stage input; global average pool times attention; ``fc`` 2048 -> 1024.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from javisbench.encoders.base import Encoder, Features, Prepared, SampleError
from javisbench.encoders.checkpoints import checkpoint_state_dict, load_strict, read_checkpoint
from javisbench.weights import BadWeightsError, WeightFile, sha256_of

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import nn

    from javisbench.decode import DecodedClip
    from javisbench.protocol import Protocol

AUDIOCLIP_WEIGHTS = WeightFile(
    name="AudioCLIP-Full-Training.pt",
    url="https://github.com/AndreyGuzhov/AudioCLIP/releases/download/v0.1/AudioCLIP-Full-Training.pt",
    license="MIT",
    note="full AudioCLIP model; only the audio head (audio.*) is read",
)

#: The audio head's spectrogram settings in AudioCLIP (``model/audioclip.py`` defaults).
N_FFT = 2048
HOP_LENGTH = 561
WIN_LENGTH = 1654
WINDOW = "blackmanharris"
EMBED_DIM = 1024
LOG10_EPS = 1e-18
#: Prefix of the audio head's keys inside the full AudioCLIP state dict.
AUDIO_PREFIX = "audio."


def int16_rescale(x: "torch.Tensor") -> "torch.Tensor":
    """AudioCLIP's ``scale(x, -32768, 32767, -1, 1)``: ``((x + 32768) * 2) / 65535 - 1``.

    Kept in the original operation order and dtype: the float32 sum with 32768 is what
    quantises a [-1, 1] input to steps of 2^-8 before the division.
    """
    return ((x - (-32768.0)) * 2.0) / 65535.0 + (-1.0)


def frame_signal(x: "torch.Tensor", frame_length: int, hop_length: int, window: "torch.Tensor") -> "torch.Tensor":
    """Overlapping windowed frames of (B, L) signals -> (B, nf, frame_length).

    ``nf = 1`` if ``L <= frame_length`` else ``1 + ceil((L - frame_length) / hop_length)``; the
    signal is zero padded to ``(nf - 1) * hop + frame_length`` samples, ``pad // 2`` of them on
    the left and the rest on the right; each frame is multiplied by ``window``.
    """
    import torch.nn.functional as F

    length = int(x.shape[-1])
    nf = 1 if length <= frame_length else 1 + int(math.ceil((1.0 * length - frame_length) / hop_length))
    pad = (nf - 1) * hop_length + frame_length - length
    if pad > 0:
        x = F.pad(x, (pad // 2, pad - pad // 2))
    return x.unfold(-1, frame_length, hop_length) * window  # (B, nf, frame_length)


def build_audio_head(embed_dim: int = EMBED_DIM) -> "nn.Module":
    """The ESResNeXt-FBSP audio head of AudioCLIP (random init); keys match ``audio.*`` minus prefix.

    Input (B, L) or (B, 1, L) float32 waveform; output (B, embed_dim) raw embedding.
    """
    import scipy.signal
    import torch
    import torch.nn.functional as F
    from torch import nn

    class LinearFBSP(nn.Module):
        """Learnt Fourier basis: ``W[k, n] = sqrt(fb_k) * sinc(fb_k t_n / (m_k+eps))^m_k * e^{-i fc_k t_n}``.

        ``t_n = pi * linspace(-1, 1, N)_n + eps``; the window power is taken in the complex
        domain (a negative sinc lobe gets phase pi).  Normalised: ``W / sqrt(N)``.  ``bias`` is
        an empty parameter in the official model (bias=False) and is never added.
        """

        eps = 1e-8

        def __init__(self, out_features: int) -> None:
            super().__init__()
            self.out_features = out_features
            self.m = nn.Parameter(torch.zeros(out_features))
            self.fb = nn.Parameter(torch.ones(out_features))
            self.fc = nn.Parameter(torch.arange(out_features, dtype=torch.get_default_dtype()))
            self.bias = nn.Parameter(torch.empty(0))

        @staticmethod
        def _complex_power(base: torch.Tensor, expo: torch.Tensor) -> torch.Tensor:
            # z^w for z = base[...,0] + i base[...,1], w = expo[...,0] + i expo[...,1], in polar form;
            # the exact operation order of the original matters where base has zeros (NaN there).
            mag = (base[..., 0] ** 2 + base[..., 1] ** 2) ** 0.5
            phase = base[..., 1].atan2(base[..., 0])
            pr, pi_ = expo[..., 0], expo[..., 1]
            mag_out = (mag ** 2) ** (0.5 * pr) * torch.exp(-pi_ * phase)
            angle = pr * phase + 0.5 * pi_ * (mag ** 2).log()
            return mag_out.unsqueeze(-1) * torch.stack((angle.cos(), angle.sin()), dim=-1)

        def weights(self, in_features: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
            """(out_features, in_features, 2) real/imaginary basis."""
            t = np.pi * torch.linspace(-1.0, 1.0, in_features, dtype=dtype, device=device).reshape(1, -1, 1) + self.eps
            m = self.m.reshape(-1, 1, 1)
            fb = self.fb.reshape(-1, 1, 1)
            fc = self.fc.reshape(-1, 1, 1)
            kernel = torch.cat((torch.cos(fc * t), -torch.sin(fc * t)), dim=-1)      # (K, N, 2)
            scale = fb.sqrt()                                                        # NaN where fb < 0
            arg = fb * t / (m + self.eps)
            win = torch.where(arg == 0, torch.ones_like(arg), torch.sin(arg) / arg)  # sinc, (K, N, 1)
            win = self._complex_power(torch.cat((win, torch.zeros_like(win)), dim=-1),
                                      torch.cat((m, torch.zeros_like(m)), dim=-1))   # (K, N, 2)
            w = scale * torch.cat((
                win[..., :1] * kernel[..., :1] - win[..., 1:] * kernel[..., 1:],
                win[..., :1] * kernel[..., 1:] + win[..., 1:] * kernel[..., :1],
            ), dim=-1)
            return w / (in_features ** 0.5)  # normalized=True in AudioCLIP

        def forward(self, frames: torch.Tensor) -> torch.Tensor:
            w = self.weights(int(frames.shape[-1]), frames.dtype, frames.device)
            # frames are real: (re, im) = (frames @ W_re^T, frames @ W_im^T)
            return torch.stack((F.linear(frames, w[..., 0]), F.linear(frames, w[..., 1])), dim=-1)

    class Conv2d(nn.Conv2d):
        """``nn.Conv2d`` whose CPU float32 forward always runs oneDNN's convolution.

        PyTorch chooses the CPU convolution backend per call, and for 1x1 stride-1 kernels the
        choice depends on the batch: with one sample and a small input (``att5``'s point-wise
        conv on the pooled 1x1 map) or on a single thread it takes the native im2col + GEMM
        path, otherwise oneDNN.  The two round differently (3e-7 relative there), so a sample's
        embedding depended on its batch and on the thread count.  Pinned to oneDNN (what every
        other convolution here already ran), each sample's output is the same bytes in any
        batch and on any number of threads; the module and its state dict are ``nn.Conv2d``'s.
        """

        def _conv_forward(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
            if (x.device.type == "cpu" and x.dtype == torch.float32 and self.padding_mode == "zeros"
                    and torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled
                    and not isinstance(self.padding, str)):
                return torch.mkldnn_convolution(x.contiguous(), weight.contiguous(), bias, self.padding,
                                                self.stride, self.dilation, self.groups)
            return super()._conv_forward(x, weight, bias)

    class Attention2d(nn.Module):
        """sigmoid(BN(pointwise(depthwise(adaptive_max_pool(x, size))))): a gate of the stage output."""

        def __init__(self, cin: int, cout: int, kernel: tuple[int, int], padding: tuple[int, int]) -> None:
            super().__init__()
            self.conv_depth = Conv2d(cin, cin, kernel, padding=padding, groups=cin)
            self.conv_point = Conv2d(cin, cout, (1, 1))
            self.bn = nn.BatchNorm2d(cout)

        def forward(self, x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
            x = F.adaptive_max_pool2d(x, tuple(size))
            return torch.sigmoid(self.bn(self.conv_point(self.conv_depth(x))))

    class Bottleneck(nn.Module):
        """ResNeXt bottleneck (torchvision layout: stride on the grouped 3x3), expansion 4."""

        def __init__(self, cin: int, planes: int, stride: int = 1, groups: int = 32, width_per_group: int = 4) -> None:
            super().__init__()
            width = int(planes * (width_per_group / 64.0)) * groups
            cout = planes * 4
            self.conv1 = Conv2d(cin, width, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(width)
            self.conv2 = Conv2d(width, width, 3, stride=stride, padding=1, groups=groups, bias=False)
            self.bn2 = nn.BatchNorm2d(width)
            self.conv3 = Conv2d(width, cout, 1, bias=False)
            self.bn3 = nn.BatchNorm2d(cout)
            self.downsample = (
                nn.Sequential(Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))
                if stride != 1 or cin != cout else None
            )

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out = torch.relu(self.bn1(self.conv1(x)))
            out = torch.relu(self.bn2(self.conv2(out)))
            out = self.bn3(self.conv3(out))
            identity = x if self.downsample is None else self.downsample(x)
            return torch.relu(out + identity)

    class ESResNeXtFBSP(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            win = scipy.signal.get_window(WINDOW, WIN_LENGTH, fftbins=True)  # periodic, float64
            self.register_buffer("window", torch.from_numpy(win).to(torch.get_default_dtype()))
            self.conv1 = Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
            self.bn1 = nn.BatchNorm2d(64)
            cin = 64
            # (planes, blocks, stride, attention kernel, attention padding) per stage
            stages = ((64, 3, 1, (3, 1), (1, 0)), (128, 4, 2, (1, 5), (0, 2)),
                      (256, 6, 2, (3, 1), (1, 0)), (512, 3, 2, (1, 5), (0, 2)))
            for i, (planes, blocks, stride, k, p) in enumerate(stages, start=1):
                layer = [Bottleneck(cin, planes, stride)] + [Bottleneck(planes * 4, planes) for _ in range(blocks - 1)]
                self.add_module(f"layer{i}", nn.Sequential(*layer))
                self.add_module(f"att{i}", Attention2d(cin, planes * 4, k, p))
                cin = planes * 4
            self.att5 = Attention2d(2048, 2048, (3, 5), (1, 2))
            self.fc = nn.Linear(2048, embed_dim)
            self.fbsp = LinearFBSP(N_FFT // 2 + 1)

        def log_power(self, x: torch.Tensor) -> torch.Tensor:
            """(B, L) waveform -> (B, 3, 341, nf) dB spectrogram (steps 1-4 of the module doc)."""
            b = x.shape[0]
            x = int16_rescale(x)
            frames = frame_signal(x, WIN_LENGTH, HOP_LENGTH, self.window)   # (B, nf, 1654)
            left = (N_FFT - WIN_LENGTH) // 2
            frames = F.pad(frames, (left, N_FFT - WIN_LENGTH - left))     # (B, nf, 2048)
            spec = self.fbsp(frames).transpose(-2, -3)                      # (B, 1025, nf, 2)
            per_band = spec.shape[-3] // 3                                  # 341; bin 1023, 1024 dropped
            spec = spec[:, :3 * per_band].reshape(b, 3, per_band, *spec.shape[-2:])
            power = spec[..., 0] ** 2 + spec[..., 1] ** 2                   # (B, 3, 341, nf)
            # NaN (from rows with fb < 0) also fails "> 0" and becomes the floor, as in the original
            power = torch.where(power > 0.0, power, torch.full_like(power, LOG10_EPS))
            return torch.log10(power).mul(10.0)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = x.reshape(x.shape[0], -1) if x.dim() == 3 else x           # (B, 1, L) -> (B, L)
            h = self.log_power(x.to(torch.get_default_dtype()))
            h = F.max_pool2d(torch.relu(self.bn1(self.conv1(h))), 3, stride=2, padding=1)
            for i in range(1, 5):
                out = self._modules[f"layer{i}"](h)
                h = out * self._modules[f"att{i}"](h, out.shape[-2:])
            pooled = F.adaptive_avg_pool2d(h, (1, 1))
            pooled = pooled * self.att5(h, pooled.shape[-2:])
            return self.fc(torch.flatten(pooled, 1))                        # (B, 1024)

    return ESResNeXtFBSP()


def audio_head_state(state: "dict[str, Any] | Any") -> dict[str, Any]:
    """The ``audio.*`` entries of a full AudioCLIP state dict, prefix removed.

    A ``module.`` prefix (a checkpoint saved from DataParallel) is accepted too.
    """
    out: dict[str, Any] = {}
    for key, value in state.items():
        k = key[len("module."):] if key.startswith("module.") else key
        if k.startswith(AUDIO_PREFIX):
            out[k[len(AUDIO_PREFIX):]] = value
    return out


class AudioCLIPEncoder(Encoder):
    """AudioCLIP ESResNeXt-FBSP raw audio embedding (1024-d), for FAD.

    ``prepare`` -> ``{"audio": float32 (N,)}``: the clip's audio, mono (channel mean), resampled
    to ``protocol.audio_sr`` when needed (``protocol.resample``), then truncated or zero-padded to
    ``N = int(protocol.audio_sr * protocol.max_audio_len_s)`` samples (librosa reader
    semantics of the official code); under ``fvd_mode="mmdiffusion"`` the loader's window audio
    (``views.mmdiff_audio``: ffmpeg resampling to ``mmdiff_audio_sr``, 16-bit, channel 0, the video
    window's span, zero-padded to ``int(mmdiff_audio_sr*mmdiff_clip_s)``).
    ``encode`` -> ``{"embedding": (1024,)}``, un-normalised.
    """

    id = "audioclip"
    protocol_fields = ('audio_sr', 'fvd_mode', 'max_audio_len_s', 'mmdiff_audio_sr', 'mmdiff_clip_s', 'mmdiff_fps', 'mmdiff_windows', 'resample')
    outputs = {'embedding': '(1024,), or (W, 1024) under windowed protocols'}
    version = "2"   # 2: convolutions pinned to oneDNN, GEMMs in MKL strict mode (same bytes in any batch)
    weight_files = (AUDIOCLIP_WEIGHTS,)
    description = "AudioCLIP ESResNeXt-FBSP audio embedding (AudioCLIP-Full-Training.pt), FAD"

    def __init__(self, protocol: "Protocol", device: str = "cpu", batch_size: int = 8) -> None:
        super().__init__(protocol, device, batch_size)
        self.model: "nn.Module | None" = None

    @property
    def num_samples(self) -> int:
        p = self.protocol
        if p.fvd_mode == "mmdiffusion":
            return int(p.mmdiff_audio_sr * p.mmdiff_clip_s)
        return int(p.max_audio_len_s * p.audio_sr)

    def load(self, weights_dir: Path) -> None:
        import torch

        path = self.weight_paths(Path(weights_dir))[AUDIOCLIP_WEIGHTS.name]
        # memory-mapped (a zip-format file): the image and text towers (3/4 of the file) are never read
        obj = read_checkpoint(path, self.id, AUDIOCLIP_WEIGHTS, mmap=True)
        state = audio_head_state(checkpoint_state_dict(obj, path))
        if not state:
            raise BadWeightsError(
                f"{path}: no '{AUDIO_PREFIX}*' keys; expected the full AudioCLIP state dict "
                f"({AUDIOCLIP_WEIGHTS.name}) with its ESResNeXt-FBSP audio head"
            )
        model = build_audio_head()
        load_strict(model, state, path, self.id, key_prefix=AUDIO_PREFIX)
        self.model = model.to(self.device).eval()
        self.weights_sha256[AUDIOCLIP_WEIGHTS.name] = sha256_of(path)

    def prepare(self, clip: "DecodedClip", text: str, audio_text: str) -> Prepared:
        audio = np.asarray(clip.audio)
        if audio.ndim != 2 or audio.shape[1] == 0:
            raise SampleError(
                f"sample {clip.sample_id}: expected audio (channels, samples>=1), got shape {audio.shape}"
            )
        if not np.isfinite(audio).all():
            raise SampleError(f"sample {clip.sample_id}: audio has NaN/inf samples")
        from javisbench import views

        p = self.protocol
        if p.fvd_mode == "mmdiffusion":
            # the MM-Diffusion loader: moviepy (ffmpeg) audio of the video window, channel 0
            try:
                if clip.frames.ndim != 4 or clip.frames.shape[0] == 0:
                    raise ValueError(f"expected video frames to place the window, got shape {clip.frames.shape}")
                if p.windowed:
                    win = views.mmdiff_all_windows(clip.frames.shape[0], clip.fps, p.mmdiff_fps, p.mmdiff_clip_s)
                else:
                    win = views.mmdiff_window(clip.frames.shape[0], clip.fps, p.mmdiff_fps, p.mmdiff_clip_s)[None]
                reader = views.swr_s16(audio, int(clip.sr), p.mmdiff_audio_sr)[0]
                fps = float(clip.fps)
                x = np.stack([views.mmdiff_audio(audio, int(clip.sr), p.mmdiff_audio_sr, (int(w[-1]) + 1) / fps,
                                                 p.mmdiff_clip_s, start_s=int(w[0]) / fps, reader=reader) for w in win])
                if not p.windowed:
                    x = x[0]
            except ValueError as err:
                raise SampleError(f"sample {clip.sample_id}: {err}") from None
            return {"audio": np.ascontiguousarray(x, dtype=np.float32)}
        # the official librosa reader: channel mean, resample, truncate / zero-pad
        try:
            x = views.librosa_load_like(
                audio, int(clip.sr), int(self.protocol.audio_sr), self.protocol.resample,
                max_len_s=self.protocol.max_audio_len_s,
            )[0]
        except ValueError as err:
            raise SampleError(f"sample {clip.sample_id}: {err}") from None
        if x.shape != (self.num_samples,):
            raise SampleError(f"sample {clip.sample_id}: expected {self.num_samples} audio samples, got {x.shape}")
        return {"audio": np.ascontiguousarray(x, dtype=np.float32)}

    def encode(self, batch: list[Prepared]) -> list[Features]:
        import torch

        if self.model is None:
            raise RuntimeError("AudioCLIPEncoder.encode called before load()")
        n = self.num_samples
        if self.protocol.windowed:
            return [self._encode_windows(i, item["audio"]) for i, item in enumerate(batch)]
        for i, item in enumerate(batch):
            a = item["audio"]
            if a.dtype != np.float32 or a.shape != (n,):
                raise ValueError(f"AudioCLIP batch item {i}: expected float32 ({n},), got {a.dtype} {a.shape}")
        out: list[Features] = []
        with torch.inference_mode():
            for start in range(0, len(batch), max(self.batch_size, 1)):
                x = torch.from_numpy(np.stack([it["audio"] for it in batch[start:start + self.batch_size]]))
                emb = self.model(x.to(self.device)).float().cpu().numpy()   # (B, 1024)
                out.extend({"embedding": row.astype(np.float32, copy=True)} for row in emb)
        return out

    def _encode_windows(self, i: int, audio: np.ndarray) -> Features:
        """``{"embedding": (W, 1024)}`` for one clip's window audio (W, N), ``batch_size`` windows per forward."""
        import torch

        n = self.num_samples
        if audio.dtype != np.float32 or audio.ndim != 2 or audio.shape[1] != n:
            raise ValueError(f"AudioCLIP batch item {i}: expected float32 (W, {n}) window audio, got {audio.dtype} {audio.shape}")
        rows = []
        with torch.inference_mode():
            for start in range(0, audio.shape[0], max(self.batch_size, 1)):
                x = torch.from_numpy(np.ascontiguousarray(audio[start:start + self.batch_size]))
                rows.append(self.model(x.to(self.device)).float().cpu().numpy())
        return {"embedding": np.concatenate(rows).astype(np.float32, copy=False)}
