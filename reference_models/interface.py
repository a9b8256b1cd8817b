"""The common generator interface (spec: reference-models §2).

Every reference family (JavisDiT, JavisDiT++, BridgeDiT, AVFullDiT, MM-Diffusion, cascades and the
sanity baselines) implements :class:`Generator`:

* ``generate(req: GenerationRequest) -> GenerationOutput`` — batched, seeded, device-agnostic;
* ``training_step(batch, step) -> {"loss", "loss_video", "loss_audio", ...}`` on the §2.3 batch
  (see :class:`Batch`); randomness inside a step comes from torch's global RNG, which the trainer
  seeds per step so that a resumed run equals an uninterrupted one;
* ``stages`` / ``set_stage`` (freezing per the paper recipe), ``trainable_parameters()``,
  ``config()`` (JSON-serialisable, every paper-vs-code flag chosen), ``from_preset``.

Generators are found through the lazy registry :data:`GENERATORS` (name -> ``"module:Class"``),
imported only when used, like the suite's encoder registry.
"""
from __future__ import annotations

import dataclasses
import difflib
import hashlib
import importlib
import json
from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterator, Mapping, TypedDict

import numpy as np
import torch
from torch import nn

MODALITIES = ("video", "audio")
X_CONDITIONS = ("video", "audio", "first_frame")


# ---------------------------------------------------------------------------------------------
# seeds
# ---------------------------------------------------------------------------------------------
def derive_seed(*parts: int | str) -> int:
    """A 63-bit seed from any tuple of ints/strings (stable across runs and platforms).

    Per-sample seeds of a request are ``derive_seed(seed, index)``; the trainer seeds step ``s``
    with ``derive_seed(seed, "step", s)``.
    """
    h = hashlib.blake2b(repr(tuple(parts)).encode(), digest_size=8).digest()
    return int.from_bytes(h, "little") & ((1 << 63) - 1)


def seeded_noise(shape: tuple[int, ...], seeds: list[int], device: str | torch.device = "cpu",
                 dtype: torch.dtype = torch.float32, stream: str = "") -> torch.Tensor:
    """Standard normal noise ``(B, *shape)``, row ``i`` drawn from its own seed ``seeds[i]``.

    Drawn on the CPU and moved, so the same seeds give the same noise on every device and for any
    batch composition.  ``stream`` separates independent draws of one sample (e.g. "video"/"audio").
    """
    out = torch.empty((len(seeds), *shape), dtype=torch.float32)
    for i, s in enumerate(seeds):
        g = torch.Generator().manual_seed(derive_seed(s, stream) if stream else s)
        out[i] = torch.randn(shape, generator=g)
    return out.to(device=device, dtype=dtype)


# ---------------------------------------------------------------------------------------------
# requests and outputs
# ---------------------------------------------------------------------------------------------
@dataclass
class GenerationRequest:
    """One batched generation call.

    ``prompts`` is the joint caption (all models); ``video_prompts`` / ``audio_prompts`` are the
    disentangled captions (BridgeDiT reads them, others ignore them).  ``guidance`` is one CFG scale
    for both modalities or ``{"video": w_v, "audio": w_a}``; ``None`` means the family's default.
    ``condition`` holds x-conditional inputs: ``{"video": (B,T,3,H,W) in [0,1]}``,
    ``{"audio": (B,N) in [-1,1]}`` or ``{"first_frame": (B,3,H,W) in [0,1]}``.
    ``rows`` are the bench rows the prompts come from (baselines read the real clips of those rows).
    """

    prompts: list[str]
    video_prompts: list[str] | None = None
    audio_prompts: list[str] | None = None
    duration_s: float = 4.0
    fps: float = 8.0
    height: int = 32
    width: int = 32
    sample_rate: int = 16000
    num_steps: int | None = None
    guidance: float | dict[str, float] | None = None
    negative_prompts: list[str] | None = None
    seed: int | None = None
    condition: dict[str, torch.Tensor] | None = None
    rows: list[int] | None = None

    def __post_init__(self) -> None:
        self.prompts = list(self.prompts)
        n = len(self.prompts)
        if n == 0:
            raise ValueError("GenerationRequest.prompts is empty: expected at least one prompt")
        for name in ("video_prompts", "audio_prompts", "negative_prompts", "rows"):
            v = getattr(self, name)
            if v is not None and len(v) != n:
                raise ValueError(f"GenerationRequest.{name} has {len(v)} entries, expected {n} (one per prompt)")
        if isinstance(self.guidance, dict):
            bad = sorted(set(self.guidance) - set(MODALITIES))
            if bad:
                raise ValueError(f"GenerationRequest.guidance keys {bad} unknown; expected a subset of {list(MODALITIES)}")
        if self.condition:
            bad = sorted(set(self.condition) - set(X_CONDITIONS))
            if bad:
                raise ValueError(f"GenerationRequest.condition keys {bad} unknown; expected one of {list(X_CONDITIONS)}")
        if self.duration_s <= 0 or self.fps <= 0 or self.sample_rate <= 0 or self.height <= 0 or self.width <= 0:
            raise ValueError("GenerationRequest: duration_s, fps, sample_rate, height and width must be positive")

    def __len__(self) -> int:
        return len(self.prompts)

    @property
    def num_frames(self) -> int:
        return int(round(self.duration_s * self.fps))

    @property
    def num_samples(self) -> int:
        return int(round(self.duration_s * self.sample_rate))

    def sample_seeds(self) -> list[int]:
        """Per-sample seeds ``derive_seed(seed, k)`` with k the bench row (``rows[i]``) when given,
        else the index i in the request, so a bench row gets the same noise in any batch
        (seed 0 when ``seed`` is None)."""
        base = 0 if self.seed is None else int(self.seed)
        keys = self.rows if self.rows is not None else range(len(self))
        return [derive_seed(base, int(k)) for k in keys]

    def guidance_for(self, modality: str, default: float) -> float:
        """The CFG scale for one modality (``default`` when the request leaves it open)."""
        if self.guidance is None:
            return float(default)
        if isinstance(self.guidance, dict):
            return float(self.guidance.get(modality, default))
        return float(self.guidance)

    def to_json(self) -> dict[str, Any]:
        """A JSON-serialisable record (tensors in ``condition`` summarised by shape)."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "condition"}
        d["condition"] = None if not self.condition else {k: list(v.shape) for k, v in self.condition.items()}
        return d


@dataclass
class GenerationOutput:
    """Generated clips.

    ``video``: float32 ``(B, T, 3, H, W)`` in [0, 1]; ``audio``: float32 ``(B, N)`` in [-1, 1] with
    ``N = round(duration_s * sample_rate)``; ``mel``: the model's ``(B, Tm, F)`` normalised log-mel
    before vocoding, or None; ``extras``: priors, timings, ``nfe`` and the like.
    """

    video: torch.Tensor
    audio: torch.Tensor
    fps: float
    sample_rate: int
    mel: torch.Tensor | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.video.ndim != 5 or self.video.shape[2] != 3:
            raise ValueError(f"GenerationOutput.video must be (B,T,3,H,W), got {tuple(self.video.shape)}")
        if self.audio.ndim != 2 or self.audio.shape[0] != self.video.shape[0]:
            raise ValueError(f"GenerationOutput.audio must be (B,N) with B={self.video.shape[0]}, got {tuple(self.audio.shape)}")

    def __len__(self) -> int:
        return int(self.video.shape[0])

    def to_uint8_thwc(self) -> np.ndarray:
        """Video as uint8 ``(B, T, H, W, 3)`` (round half to even of ``255·clip(v, 0, 1)``)."""
        v = self.video.detach().float().clamp(0, 1).mul(255.0).round().to(torch.uint8)
        return v.permute(0, 1, 3, 4, 2).contiguous().cpu().numpy()

    def audio_numpy(self) -> np.ndarray:
        """Audio as float32 ``(B, N)`` clipped to [-1, 1]."""
        return self.audio.detach().float().clamp(-1, 1).cpu().numpy()


class Batch(TypedDict, total=False):
    """The training batch (spec §2.3), produced by :mod:`reference_models.data`.

    video (B,T,3,H,W) float in [-1,1]; wave (B,N) float in [-1,1]; mel (B,Tm,F) normalised log-mel
    (``reference_models.blocks.melwave``); caption / caption_video / caption_audio: list[str];
    labels (B,5) long (cat0..cat4, -1 when absent); events: list of per-clip event lists (dicts);
    seed (B,) long; fps float; sample_rate int.
    """

    video: torch.Tensor
    wave: torch.Tensor
    mel: torch.Tensor
    caption: list[str]
    caption_video: list[str]
    caption_audio: list[str]
    labels: torch.Tensor
    events: list[list[dict]]
    seed: torch.Tensor
    fps: float
    sample_rate: int


@dataclass(frozen=True)
class Capabilities:
    """What a generator can be asked for.

    text: reads a caption; disentangled_text: reads separate video/audio captions;
    audio_domain: "mel" or "wave"; x_conditional: the ``condition`` keys it accepts.
    """

    text: bool = True
    disentangled_text: bool = False
    audio_domain: str = "mel"
    x_conditional: frozenset[str] = frozenset()

    def to_json(self) -> dict[str, Any]:
        return {"text": self.text, "disentangled_text": self.disentangled_text, "audio_domain": self.audio_domain,
                "x_conditional": sorted(self.x_conditional)}


# ---------------------------------------------------------------------------------------------
# the protocol
# ---------------------------------------------------------------------------------------------
class Generator(nn.Module):
    """Base class of every reference generator (an ``nn.Module``, so parameters, devices and
    ``state_dict``/``load_state_dict`` come from torch).

    Subclasses set the class attributes and implement :meth:`generate`; trainable families also
    implement :meth:`training_step` and, when they have a staged recipe, :meth:`set_stage`.

    Class attributes:
        family: registry name (``"javisdit"``); presets: preset name -> keyword overrides of the
        family's config; default_preset; stages (first = default); capabilities;
        reconstructed: a note when the architecture is reconstructed rather than read from
        code ("" when faithful); trainable: False for baselines (nothing to train, no checkpoint).
    """

    family: ClassVar[str] = ""
    presets: ClassVar[dict[str, dict[str, Any]]] = {}
    default_preset: ClassVar[str] = "tiny"
    stages: ClassVar[list[str]] = ["joint_from_scratch"]
    capabilities: ClassVar[Capabilities] = Capabilities()
    reconstructed: ClassVar[str] = ""
    trainable: ClassVar[bool] = True

    def __init__(self, preset: str = "") -> None:
        super().__init__()
        self.preset = preset
        self.stage = self.stages[0] if self.stages else ""

    # -- identity ---------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return f"{self.family}-{self.preset}" if self.preset else self.family

    def config(self) -> dict[str, Any]:
        """JSON-serialisable settings that rebuild this model (every paper-vs-code flag chosen).

        Families with a config dataclass ``self.cfg`` get it for free.
        """
        cfg = getattr(self, "cfg", None)
        body = dataclasses.asdict(cfg) if dataclasses.is_dataclass(cfg) else {}
        return {"family": self.family, "preset": self.preset, "stage": self.stage, **body}

    def config_hash(self) -> str:
        """sha256 (first 16 hex) of the canonical JSON of :meth:`config`."""
        return hashlib.sha256(json.dumps(self.config(), sort_keys=True, default=str).encode()).hexdigest()[:16]

    @classmethod
    def preset_config(cls, preset: str) -> dict[str, Any]:
        """The keyword overrides of ``preset``; a did-you-mean ValueError for an unknown name."""
        if preset not in cls.presets:
            raise ValueError(unknown_name_message(f"{cls.family} preset", preset, sorted(cls.presets)))
        return dict(cls.presets[preset])

    @classmethod
    def from_preset(cls, preset: str | None = None, device: str | torch.device = "cpu", **overrides: Any) -> "Generator":
        """Build a preset (``default_preset`` when None) on ``device`` (``"meta"`` counts parameters
        without allocating).  Subclasses whose ``__init__`` takes a config may override."""
        preset = preset or cls.default_preset
        kw = cls.preset_config(preset)
        kw.update(overrides)
        if str(device) == "meta":
            with torch.device("meta"):
                model = cls(preset=preset, **kw)
        else:
            model = cls(preset=preset, **kw).to(device)
        return model

    def clip_size(self) -> dict[str, Any]:
        """The clip size this model trains on and generates: ``duration_s``, ``fps``, ``height``,
        ``width``, ``sample_rate`` (default: the tiny size, 4 s, 8 fps, 32×32, 16 kHz).  The dataset
        decodes benches to it and ``generate`` requests it."""
        cfg = getattr(self, "cfg", None)
        out: dict[str, Any] = {"duration_s": 4.0, "fps": 8.0, "height": 32, "width": 32, "sample_rate": 16000}
        for k in out:
            if cfg is not None and hasattr(cfg, k):
                out[k] = getattr(cfg, k)
        return out

    # -- generation and training ------------------------------------------------------------
    def generate(self, req: GenerationRequest) -> GenerationOutput:
        raise NotImplementedError(f"{type(self).__name__}.generate")

    def training_step(self, batch: Batch, step: int) -> dict[str, torch.Tensor]:
        """Losses of one step: at least ``loss`` (what is minimised), ``loss_video``, ``loss_audio``."""
        raise NotImplementedError(f"{self.family} has nothing to train")

    def set_stage(self, name: str) -> None:
        """Select a training stage (freezes/unfreezes parameters per the paper recipe).

        The base version accepts only names in :attr:`stages` and leaves every parameter trainable.
        """
        if name not in self.stages:
            raise ValueError(unknown_name_message(f"{self.family} stage", name, list(self.stages)))
        self.stage = name

    def trainable_parameters(self) -> Iterator[nn.Parameter]:
        return (p for p in self.parameters() if p.requires_grad)

    def parameter_count(self, trainable_only: bool = False) -> int:
        ps = self.trainable_parameters() if trainable_only else self.parameters()
        return int(sum(p.numel() for p in ps))

    @property
    def device(self) -> torch.device:
        for p in self.parameters():
            return p.device
        for b in self.buffers():
            return b.device
        return torch.device("cpu")


# ---------------------------------------------------------------------------------------------
# registry
# ---------------------------------------------------------------------------------------------
#: generator name -> "module:Class" (a :class:`Generator` subclass), imported only when used
GENERATORS: dict[str, str] = {
    "oracle": "reference_models.baseline_generators:Oracle",
    "shift-audio": "reference_models.baseline_generators:ShiftAudio",
    "swap-audio": "reference_models.baseline_generators:SwapAudio",
    "frozen-video": "reference_models.baseline_generators:FrozenVideo",
    "noise-video": "reference_models.baseline_generators:NoiseVideo",
    "silent-audio": "reference_models.baseline_generators:SilentAudio",
    # reference generators I
    "javisdit": "reference_models.javisdit:JavisDiT",
    "javisdit++": "reference_models.javisdit_pp:JavisDiTPP",
    # reference generators II
    "mm-diffusion": "reference_models.mmdiffusion:MMDiffusion",
    "bridgedit": "reference_models.bridgedit:BridgeDiT",
    "avfulldit": "reference_models.avfulldit:AVFullDiT",          # reconstructed from the abstract
    "t2v-v2a": "reference_models.cascades:T2VThenV2A",
    "t2a-a2v": "reference_models.cascades:T2AThenA2V",
}


def unknown_name_message(kind: str, name: str, known: list[str]) -> str:
    """``unknown <kind> 'x'; did you mean 'y'? (known: a, b, c)``."""
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown {kind} {name!r}{hint} (known: {', '.join(known)})"


def register(name: str, target: str) -> None:
    """Add (or replace) a registry entry ``name -> "module:Class"``."""
    if ":" not in target:
        raise ValueError(f"register({name!r}): target must be 'module:Class', got {target!r}")
    GENERATORS[name] = target


def generator_class(name: str) -> type[Generator]:
    """The class behind ``name``; a did-you-mean ValueError for an unknown name."""
    try:
        target = GENERATORS[name]
    except KeyError:
        raise ValueError(unknown_name_message("generator", name, sorted(GENERATORS))) from None
    module, _, cls = target.partition(":")
    return getattr(importlib.import_module(module), cls)


def create_generator(name: str, preset: str | None = None, device: str | torch.device = "cpu",
                     **options: Any) -> Generator:
    """``generator_class(name).from_preset(preset, device, **options)``."""
    return generator_class(name).from_preset(preset, device=device, **options)


def describe_generator(name: str) -> dict[str, Any]:
    """One listing row: name, family, presets, parameter count (default preset, built on the meta
    device), trainable parameters, stages, capabilities and the "reconstructed" note."""
    cls = generator_class(name)
    params: int | None
    if cls.trainable:
        model = cls.from_preset(cls.default_preset, device="meta")
        params = model.parameter_count()
    else:
        params = 0
    return {"name": name, "family": cls.family or name, "presets": sorted(cls.presets),
            "default_preset": cls.default_preset, "parameters": params, "stages": list(cls.stages),
            "trainable": cls.trainable, "capabilities": cls.capabilities.to_json(), "reconstructed": cls.reconstructed}


def list_generators() -> list[dict[str, Any]]:
    """:func:`describe_generator` for every registered name, sorted by name."""
    return [describe_generator(n) for n in sorted(GENERATORS)]


def load_state_dict_strict(model: nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """``load_state_dict(strict=True)`` with a one-line error naming ``source`` and the first
    missing/unexpected keys or shape mismatch (a foreign checkpoint)."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        raise ValueError(f"{source}: weights do not fit {type(model).__name__} ({len(missing)} missing, e.g. "
                         f"{missing[:3]}; {len(unexpected)} unexpected, e.g. {unexpected[:3]})")
    for k, v in state.items():
        if tuple(v.shape) != tuple(own[k].shape):
            raise ValueError(f"{source}: weight {k!r} has shape {tuple(v.shape)}, the model expects {tuple(own[k].shape)}")
    model.load_state_dict(dict(state), strict=True)
