"""Audiobox-Aesthetics: per-axis audio aesthetics (CE, CU, PC, PQ), the ``audio_quality`` feature.

The official evaluator (``calc_audio_quality_score``) reads each clip with its torchaudio reader,
hands the tensors to the ``audiobox-aesthetics`` predictor (Meta's WavLM-base regressor with four
linear heads, HF ``facebook/audiobox-aesthetics``) and reports, per clip, the mean of the four
axes.  The network is :mod:`javisbench.encoders.audiobox_net`; this module reproduces the reader,
the predictor's windowing and the de-normalisation.

Per sample (``prepare``), with ``N = int(16000 * protocol.max_audio_len_s)`` [64000]:

* official reader (``audiobox_official_reader``, the default):

  * ``x`` = channel mean of the audio;
  * **quirk (spec 8a.15)**: for a rate ``sr != 16000`` the torchaudio resampler runs on the
    length-1 channel axis of the ``(L, 1)`` array: the samples are kept as they are (and later
    read as 16 kHz) and each becomes ``ceil(new/orig)`` values ``x * k_j``, ``k_j`` the
    sinc-Hann kernel's tap at the sample for phase ``j`` (for 44.1 kHz one value,
    ``x * 0.99 * 160/441``); the predictor then averages those "channels";
  * truncate to ``N`` samples, right zero-pad to ``N``; **quirk**: the zeros count as audio;

* fixed reader: channel mean, resampled along time to 16 kHz with the predictor's own
  resampler (``torchaudio.functional.resample`` defaults, Hann-windowed sinc), truncated to
  ``N``, not padded (the window mask then covers only real audio).

``encode`` (the predictor, batched across samples): each waveform ``w`` is cut into 10 s windows
with a 10 s hop; a window is zero-padded to 160,000 samples, its mask is True on the samples
taken from ``w`` and its weight is ``valid / 160000``.  All windows of the batch go through the
network together (``batch_size`` windows per forward); per axis
``score = (sum_w weight_w * (pred_w * std + mean)) / sum_w weight_w`` in float32, with
``(mean, std)`` the checkpoint's ``target_transform``.  The metric is the mean of the four.

Outputs per sample: ``axes`` (4,) CE, CU, PC, PQ; ``axes_windows`` (W, 4) de-normalised per
window; ``window_weights`` (W,).  :meth:`AudioboxEncoder.embed` also gives the L2-normalised
pooled embeddings (W, 4, 768) fed to the heads.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from javisbench.encoders.base import Encoder, Features, Prepared, SampleError
from javisbench.weights import BadWeightsError, WeightFile, sha256_of

if TYPE_CHECKING:  # pragma: no cover
    from javisbench.decode import DecodedClip
    from javisbench.encoders.audiobox_net import AesNet
    from javisbench.protocol import Protocol

AUDIOBOX_WEIGHTS = WeightFile(
    name="audiobox-aesthetics",
    url="https://huggingface.co/facebook/audiobox-aesthetics",
    license="CC-BY-4.0",
    kind="dir",
    members=("config.json", "model.safetensors"),
    note="a local copy of the Hugging Face snapshot (config.json + model.safetensors, ~380 MB); "
    "alternatively the same folder holding only the package's torch checkpoint 'checkpoint.pt' "
    "(https://dl.fbaipublicfiles.com/audiobox-aesthetics/checkpoint.pt: state_dict, model_cfg, "
    "target_transform)",
)
TORCH_CHECKPOINT = "checkpoint.pt"

SAMPLE_RATE = 16000
WINDOW_SAMPLES = 10 * SAMPLE_RATE     # the predictor's 10 s window
HOP_SAMPLES = 10 * SAMPLE_RATE        # ... and 10 s hop
AXES: tuple[str, ...] = ("CE", "CU", "PC", "PQ")
#: torchaudio.transforms.Resample defaults (the official reader's resampler).
SINC_WIDTH = 6
SINC_ROLLOFF = 0.99
#: The ``AesMultiOutput`` fields a checkpoint's ``model_cfg`` carries (the package's own list).
MODEL_CFG_FIELDS = ("proj_num_layer", "proj_ln", "proj_act_fn", "proj_dropout", "nth_layer",
                    "use_weighted_layer_sum", "precision", "normalize_embed", "output_dim")


def official_reader(protocol: "Protocol") -> bool:
    """Whether the official reader's quirks apply under ``protocol`` (``audiobox_official_reader``)."""
    return bool(protocol.audiobox_official_reader)


def wrong_axis_gains(sr_in: int, sr_out: int = SAMPLE_RATE) -> np.ndarray:
    """What ``torchaudio.transforms.Resample(sr_in, sr_out)`` does to a length-1 signal: (P,) float32.

    With ``g = gcd``, ``orig = sr_in/g``, ``new = sr_out/g``, ``base = min(orig, new) * 0.99`` and
    ``w = 6``, a single sample ``x`` becomes ``P = ceil(new/orig)`` values ``x * k_j``, where
    ``k_j`` is the kernel tap at the sample for output phase ``j``::

        t_j = float32(-j / new) * base      (clamped to +-w)
        k_j = sinc(pi t_j) * cos(pi t_j / (2 w))**2 * base / orig

    computed in float64 and rounded to float32, as the transform builds its kernel.  For
    44.1 kHz -> 16 kHz: ``P = 1``, ``k_0 = 0.99 * 160/441``.

    Example:
        >>> wrong_axis_gains(44100).tolist() == [np.float32(0.99 * 160 / 441)]
        True
        >>> wrong_axis_gains(8000).shape
        (2,)
    """
    if sr_in < 1 or sr_out < 1:
        raise ValueError(f"sample rates must be positive, got {sr_in} -> {sr_out}")
    if int(sr_in) == int(sr_out):       # the transform returns its input unchanged
        return np.ones(1, np.float32)
    g = math.gcd(int(sr_in), int(sr_out))
    orig, new = int(sr_in) // g, int(sr_out) // g
    base = min(orig, new) * SINC_ROLLOFF
    n_out = -(-new // orig)
    # the transform's phase offsets come from an integer arange divided in float32
    t = -(np.arange(n_out, dtype=np.float32) / np.float32(new)).astype(np.float64)
    t = np.clip(t * base, -SINC_WIDTH, SINC_WIDTH)
    window = np.cos(t * math.pi / SINC_WIDTH / 2) ** 2
    t = t * math.pi
    sinc = np.where(t == 0, 1.0, np.sin(t) / np.where(t == 0, 1.0, t))
    return (sinc * (window * (base / orig))).astype(np.float32)


def official_waveform(audio: np.ndarray, sr: int, n_samples: int) -> np.ndarray:
    """The official reader + predictor input for one clip: (n_samples,) float32.

    Channel mean; for ``sr != 16000`` the wrong-axis resampler (:func:`wrong_axis_gains`; the
    samples keep their positions); truncate / right zero-pad to ``n_samples``; the predictor's
    mean over the resulting rows.  The zero padding is part of the returned waveform (it counts as
    audio in the official predictor).
    """
    import torch

    from javisbench import views

    x = views.mono(audio)                                           # (L,)
    x = views.fixed_length(x, n_samples)
    if int(sr) == SAMPLE_RATE:
        return x
    gains = wrong_axis_gains(int(sr))
    rows = torch.from_numpy(gains)[:, None] * torch.from_numpy(x)[None, :]   # (P, N) float32
    # the predictor's wav.mean(dim=0): a no-op for the usual P = 1 (downsampling rates)
    return rows.mean(dim=0).numpy() if rows.shape[0] > 1 else rows[0].numpy()


def fixed_waveform(audio: np.ndarray, sr: int, n_samples: int) -> np.ndarray:
    """Channel mean, resampled along time to 16 kHz (Hann-windowed sinc), first ``n_samples``: (<= n,) float32."""
    from javisbench import views

    x = views.mono(audio)
    if int(sr) != SAMPLE_RATE:
        x = views.resample(x, int(sr), SAMPLE_RATE, "sinc_hann")
    return np.ascontiguousarray(x[:n_samples], dtype=np.float32)


def make_windows(wave: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The predictor's windows of one waveform (L,): 10 s windows, 10 s hop, zero-padded.

    Returns ``windows`` (W, 160000) float32, ``valid`` (W,) int64 samples taken from ``wave``,
    ``weights`` (W,) float32 ``valid / 160000``.  ``W = ceil(L / 160000)``.

    Example:
        >>> _, valid, weights = make_windows(np.ones(170000, np.float32))
        >>> valid.tolist(), weights.tolist()
        ([160000, 10000], [1.0, 0.0625])
    """
    n = int(wave.shape[0])
    starts = range(0, n, HOP_SAMPLES)
    windows = np.zeros((len(starts), WINDOW_SAMPLES), np.float32)
    valid = np.zeros(len(starts), np.int64)
    for i, s in enumerate(starts):
        chunk = wave[s:s + WINDOW_SAMPLES]
        windows[i, :chunk.shape[0]] = chunk
        valid[i] = chunk.shape[0]
    # the original builds the weights as python floats and then a float32 tensor
    weights = np.array([v / WINDOW_SAMPLES for v in valid.tolist()], dtype=np.float32)
    return windows, valid, weights


def _config_from_json(path: Path) -> Any:
    from javisbench.encoders.audiobox_net import AesConfig, BadConfigError

    try:
        raw = json.loads(path.read_text())
        return AesConfig.from_dict(raw, source=str(path))
    except (OSError, ValueError) as exc:
        if isinstance(exc, BadConfigError):
            raise BadWeightsError(str(exc)) from exc
        raise BadWeightsError(f"{path}: not a readable Audiobox config.json ({exc})") from exc


def _read_hub_snapshot(folder: Path) -> tuple[Any, dict[str, Any]]:
    from javisbench.encoders.checkpoints import read_safetensors

    cfg = _config_from_json(folder / "config.json")
    return cfg, read_safetensors(folder / "model.safetensors", "audiobox", AUDIOBOX_WEIGHTS)


def _read_torch_checkpoint(path: Path) -> tuple[Any, dict[str, Any]]:
    from javisbench.encoders.audiobox_net import AesConfig, BadConfigError
    from javisbench.encoders.checkpoints import read_checkpoint

    obj = read_checkpoint(path, "audiobox", AUDIOBOX_WEIGHTS)
    if not isinstance(obj, Mapping) or not all(k in obj for k in ("state_dict", "model_cfg", "target_transform")):
        got = sorted(obj) if isinstance(obj, Mapping) else type(obj).__name__
        raise BadWeightsError(f"{path}: expected a mapping with state_dict, model_cfg and target_transform, got {got}")
    model_cfg = obj["model_cfg"]
    if not isinstance(model_cfg, Mapping):
        raise BadWeightsError(f"{path}: model_cfg must be a mapping, got {type(model_cfg).__name__}")
    raw = {k: model_cfg[k] for k in MODEL_CFG_FIELDS if k in model_cfg}
    raw["target_transform"] = obj["target_transform"]
    try:
        cfg = AesConfig.from_dict(raw, source=str(path))
    except BadConfigError as exc:
        raise BadWeightsError(str(exc)) from exc
    return cfg, dict(obj["state_dict"])


class AudioboxEncoder(Encoder):
    """Audiobox-Aesthetics CE/CU/PC/PQ of the clip's first ``max_audio_len_s`` seconds.

    ``prepare`` -> ``{"wave": float32 (N,)}`` (the 16 kHz waveform handed to the predictor, N =
    ``int(16000 * max_audio_len_s)`` under the official reader, up to N under the fixed one);
    ``encode`` -> ``{"axes": (4,), "axes_windows": (W, 4), "window_weights": (W,)}`` float32.
    """

    id = "audiobox"
    protocol_fields = ('audiobox_official_reader', 'max_audio_len_s', 'resample')
    outputs = {'axes': '(4,)', 'axes_windows': '(W, 4)', 'window_weights': '(W,)'}
    version = "1"
    weight_files = (AUDIOBOX_WEIGHTS,)
    uses_text = False
    description = "Audiobox-Aesthetics (WavLM base + 4 heads) CE, CU, PC, PQ; audio_quality is their mean"

    def __init__(self, protocol: "Protocol", device: str = "cpu", batch_size: int = 8) -> None:
        super().__init__(protocol, device, batch_size)
        self.model: "AesNet | None" = None
        self.official = official_reader(protocol)
        length = float(protocol.max_audio_len_s)
        if not (length > 0 and math.isfinite(length)):
            raise ValueError(f"protocol {protocol.name}: max_audio_len_s must be a positive number, got {length!r}")
        self.n_samples = int(SAMPLE_RATE * length)
        if self.n_samples < 1:
            raise ValueError(f"protocol {protocol.name}: max_audio_len_s={length} gives no 16 kHz sample")

    # -- weights ------------------------------------------------------------------------------
    def load(self, weights_dir: Path) -> None:
        """Read the hub snapshot (config.json + model.safetensors) or the package's checkpoint.pt, strictly."""
        import torch

        from javisbench.encoders.audiobox_net import AesNet, canonical_key
        from javisbench.encoders.checkpoints import load_strict

        folder = Path(weights_dir) / AUDIOBOX_WEIGHTS.name
        alt = folder / TORCH_CHECKPOINT
        if alt.is_file() and not (folder / "model.safetensors").is_file():
            cfg, state = _read_torch_checkpoint(alt)
            source = alt
        else:
            folder = self.weight_paths(Path(weights_dir))[AUDIOBOX_WEIGHTS.name]
            cfg, state = _read_hub_snapshot(folder)
            source = folder / "model.safetensors"
        renamed: dict[str, Any] = {}
        for key, value in state.items():
            name = canonical_key(key)
            if name in renamed:
                raise BadWeightsError(f"{source}: key {key!r} duplicates {name!r}")
            if not isinstance(value, torch.Tensor):
                raise BadWeightsError(f"{source}: {key!r} is a {type(value).__name__}, not a tensor")
            renamed[name] = value.float()
        model = AesNet(cfg)
        load_strict(model, renamed, source, self.id)
        self.model = model.to(self.device).eval()
        self.weights_sha256[AUDIOBOX_WEIGHTS.name] = sha256_of(folder)

    @property
    def target_transform(self) -> dict[str, tuple[float, float]]:
        if self.model is None:
            raise RuntimeError("AudioboxEncoder: load() first (target_transform comes from the checkpoint)")
        return dict(self.model.cfg.target_transform)

    # -- data -----------------------------------------------------------------------------------
    def prepare(self, clip: "DecodedClip", text: str, audio_text: str) -> Prepared:
        audio = np.asarray(clip.audio)
        if audio.ndim != 2 or audio.shape[0] < 1 or audio.shape[1] < 1:
            raise SampleError(f"sample {clip.sample_id}: expected audio (channels>=1, samples>=1), got shape {audio.shape}")
        if not np.issubdtype(audio.dtype, np.floating):
            raise SampleError(f"sample {clip.sample_id}: expected float audio in [-1, 1], got dtype {audio.dtype}")
        if not np.isfinite(audio).all():
            raise SampleError(f"sample {clip.sample_id}: audio has NaN/inf samples")
        if int(clip.sr) < 1:
            raise SampleError(f"sample {clip.sample_id}: expected a positive sample rate, got {clip.sr}")
        if self.official:
            wave = official_waveform(audio, int(clip.sr), self.n_samples)
        else:
            wave = fixed_waveform(audio, int(clip.sr), self.n_samples)
        return {"wave": np.ascontiguousarray(wave, dtype=np.float32)}

    def embed(self, batch: list[Prepared]) -> list[dict[str, np.ndarray]]:
        """Per sample: ``pred_norm`` (W, 4), ``pooled`` (W, 4, 768), ``valid`` (W,), ``weights`` (W,),
        ``axes_windows`` (W, 4) and ``axes`` (4,), all float32 except ``valid`` (int64)."""
        import torch

        if self.model is None:
            raise RuntimeError("AudioboxEncoder.encode called before load()")
        windows, valid, weights, owner = [], [], [], []
        for i, item in enumerate(batch):
            wave = np.asarray(item.get("wave"))
            if wave.ndim != 1 or wave.shape[0] < 1 or wave.dtype != np.float32:
                raise ValueError(f"Audiobox batch item {i}: expected 'wave' float32 (L>=1,), got "
                                 f"{wave.dtype} {wave.shape}")
            w, v, wt = make_windows(wave)
            windows.append(w)
            valid.append(v)
            weights.append(wt)
            owner.extend([i] * len(v))
        all_windows = np.concatenate(windows)
        all_valid = np.concatenate(valid)
        preds, pooled = [], []
        step = max(self.batch_size, 1)
        positions = torch.arange(WINDOW_SAMPLES)
        with torch.inference_mode():
            for s in range(0, all_windows.shape[0], step):
                wav = torch.from_numpy(all_windows[s:s + step]).to(self.device)
                mask = (positions[None, :] < torch.from_numpy(all_valid[s:s + step])[:, None]).to(self.device)
                out = self.model(wav, mask)
                preds.append(out["pred"].float().cpu())
                pooled.append(out["pooled"].float().cpu())
            pred = torch.cat(preds)                                            # (sum W, 4)
            pooled_all = torch.cat(pooled)                                     # (sum W, 4, 768)
            tt = self.model.cfg.target_transform
            # Normalize.inverse per axis with the config's python floats: x * std + mean, float32
            denorm = torch.stack([pred[:, j] * tt[a][1] + tt[a][0] for j, a in enumerate(AXES)], dim=1)
            owner_t = torch.tensor(owner)
            out_rows: list[dict[str, np.ndarray]] = []
            for i in range(len(batch)):
                sel = owner_t == i
                w = torch.from_numpy(weights[i])
                axes = torch.stack([(denorm[sel, j] * w).sum() / w.sum() for j in range(len(AXES))])
                out_rows.append({
                    "pred_norm": pred[sel].numpy().astype(np.float32),
                    "pooled": pooled_all[sel].numpy().astype(np.float32),
                    "valid": valid[i],
                    "weights": weights[i],
                    "axes_windows": denorm[sel].numpy().astype(np.float32),
                    "axes": axes.numpy().astype(np.float32),
                })
        return out_rows

    def encode(self, batch: list[Prepared]) -> list[Features]:
        rows = self.embed(batch)
        return [{"axes": r["axes"], "axes_windows": r["axes_windows"], "window_weights": r["weights"]} for r in rows]
