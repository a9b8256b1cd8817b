"""VideoReward (VideoAlign): raw VQ / MQ / TA rewards, the ``visual_quality`` / ``motion_quality`` features.

The official evaluator (``calc_video_quality_score``) scores each video with VideoAlign's
``VideoVLMRewardInference`` built from the ``KwaiVGI/VideoReward`` snapshot: Qwen2-VL-2B-Instruct
plus a LoRA on the language model (r 64, alpha 128) and a reward head ``rm_head =
Linear(1536, 3, bias=False)`` read at three special tokens ``<|VQ_reward|>``, ``<|MQ_reward|>``,
``<|TA_reward|>``.  It reports the **raw** VQ and MQ (``post_process(use_norm=False)``, spec 8a.8),
each averaged over the clips.

Per sample (``prepare``), with the snapshot's ``data_config`` (fps 2.0, ``max_frame_pixels``
200,704) and ``T`` frames at the stream's average rate ``r``::

    n      = even_round(clamp(T / r * 2.0, 4, floor_even(min(768, T))))   # smart_nframes
    idx    = round_half_even(linspace(0, T-1, n, float32))                # decord reader
    (h, w) = smart_resize(H, W, factor 28, pixels in [128*28^2, 200704])  # multiples of 28
    x      = uint8(round(clamp(bicubic_antialias(frames[idx], (h, w)), 0, 255)))   # torchvision
    chat   = Qwen2-VL chat template: one user turn <|vision_start|><|video_pad|><|vision_end|>
             + the ``detailed_special`` question with the prompt inserted; generation prompt
    ids    = tokenize(chat with <|video_pad|> repeated n/2 * h/14 * w/14 / 4 times)

and in ``encode`` (batched across samples, right padding)::

    rows   = patchify((float32(x * (1/255)) - mean) / std)   # (n/2 * h/14 * w/14, 3*2*14*14)
    e      = embed(ids);  e[<|video_pad|>] = visual(rows)     # Qwen2-VL vision tower + merger
    H      = LLM(e, positions 0..L-1 on all three M-RoPE axes, causal + padding mask)
    raw    = diag(rm_head(H[reward-token positions]))         # (3,) = [VQ, MQ, TA]
    normalized = (raw - mean) / std                           # model_config.json inference_config

The language model receives no ``position_ids``: VideoAlign's reward model calls the inner
language model directly, which then numbers the tokens 0..L-1 on all three M-RoPE axes (the
3-D vision positions of Qwen2-VL's own ``forward`` are never computed).  Right padding therefore
leaves every real token's result unchanged.

Weights (``weights_dir``): ``VideoReward/`` as the hub snapshot (``model_config.json``,
``checkpoint-11352/{adapter_model.safetensors, non_lora_state_dict.pth}``) and
``Qwen2-VL-2B-Instruct/`` as the hub snapshot (config, tokenizer, chat template,
``model.safetensors`` or shards with ``model.safetensors.index.json``).  They are combined as the
official loader does: base weights, token embeddings cut to the tokenizer length (the reward
tokens are appended to it), then the checkpoint's non-LoRA tensors replace base ones (for tied
embeddings an ``lm_head.weight`` there wins, as ``load_state_dict`` copies it last), then every
LoRA pair is merged, ``W + (alpha / r) * B @ A`` (``alpha / sqrt(r)`` under rsLoRA).

Precision: float32 with PyTorch SDPA attention on the CPU (the parity fixture's deviation from
the original); on CUDA bfloat16 like the original unless ``protocol.videoreward_bf16_cuda`` is
false.  The original uses flash-attention 2 on CUDA; the attention is the same function.
"""
from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from javisbench.encoders.base import Encoder, Features, Prepared, SampleError
from javisbench.encoders.videoreward_prompt import REWARD_TOKENS, build_prompt
from javisbench.weights import BadWeightsError, MissingWeightsError, WeightFile, sha256_of

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import nn

    from javisbench.decode import DecodedClip
    from javisbench.protocol import Protocol

__all__ = [
    "VIDEOREWARD_WEIGHTS", "QWEN2VL_WEIGHTS", "VideoRewardConfig", "RewardTokenizer",
    "VideoRewardEncoder", "smart_nframes", "smart_resize", "sample_video", "patchify",
    "render_chat", "expand_video_tokens", "read_model_config", "latest_checkpoint",
    "build_videoreward_net", "REWARD_NAMES",
]

CHECKPOINT_DIR = "checkpoint-11352"
VIDEOREWARD_WEIGHTS = WeightFile(
    name="VideoReward",
    url="https://huggingface.co/KwaiVGI/VideoReward",
    license="Apache-2.0 (model card; base model Qwen2-VL-2B-Instruct, Apache-2.0)",
    kind="dir",
    members=("model_config.json", f"{CHECKPOINT_DIR}/adapter_model.safetensors",
             f"{CHECKPOINT_DIR}/non_lora_state_dict.pth"),
    note="the hub snapshot (now also at KlingTeam/VideoReward) as the official code fetches it into "
    "./checkpoints/VideoReward; the highest checkpoint-<step>/ folder is used",
)
QWEN2VL_WEIGHTS = WeightFile(
    name="Qwen2-VL-2B-Instruct",
    url="https://huggingface.co/Qwen/Qwen2-VL-2B-Instruct",
    license="Apache-2.0",
    kind="dir",
    members=("config.json", "tokenizer.json"),
    note="the hub snapshot: config.json, tokenizer files, chat_template.json, and model.safetensors "
    "or model-*.safetensors with model.safetensors.index.json",
)

#: Output order of the reward head and of the ``raw`` / ``normalized`` features.
REWARD_NAMES = ("VQ", "MQ", "TA")
#: qwen-vl-utils constants used by VideoAlign's ``vision_process``.
IMAGE_FACTOR = 28
FRAME_FACTOR = 2
FPS_MIN_FRAMES = 4
FPS_MAX_FRAMES = 768
VIDEO_MIN_PIXELS = 128 * 28 * 28
MAX_RATIO = 200
#: Qwen2-VL special tokens the chat layout needs.
VIDEO_PAD = "<|video_pad|>"
DEFAULT_PAD = "<|endoftext|>"
CHAT_SPECIALS = ("<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", VIDEO_PAD)
PEFT_PREFIX = "base_model.model."


# ---------------------------------------------------------------------------------------------
# frames: sampling, resizing, patchifying
# ---------------------------------------------------------------------------------------------
def _round_by(x: float, f: int) -> int:
    return round(x / f) * f          # Python round: half to even, as qwen-vl-utils


def _ceil_by(x: float, f: int) -> int:
    return math.ceil(x / f) * f


def _floor_by(x: float, f: int) -> int:
    return math.floor(x / f) * f


def smart_nframes(total_frames: int, video_fps: float, fps: float | None = 2.0,
                  num_frames: int | None = None) -> int:
    """Number of frames VideoAlign samples from a video (qwen-vl-utils ``smart_nframes``).

    With ``num_frames`` given: ``even_round(num_frames)``.  Otherwise
    ``even_round(min(max(T / video_fps * fps, 4), floor_even(min(768, T))))``, ``even_round``
    rounding half to even.  The result must lie in ``[2, T]``; a video with fewer than 2 frames
    has none.

    Example:
        >>> smart_nframes(96, 24.0), smart_nframes(159, 30.0), smart_nframes(3, 24.0)
        (8, 10, 2)
    """
    total_frames = int(total_frames)
    if num_frames is not None:
        n = _round_by(int(num_frames), FRAME_FACTOR)
    else:
        if not (video_fps > 0 and math.isfinite(video_fps)):
            raise ValueError(f"video frame rate must be positive and finite, got {video_fps}")
        min_frames = _ceil_by(FPS_MIN_FRAMES, FRAME_FACTOR)
        max_frames = _floor_by(min(FPS_MAX_FRAMES, total_frames), FRAME_FACTOR)
        n = total_frames / float(video_fps) * float(fps if fps is not None else 2.0)
        n = min(max(n, min_frames), max_frames)
        n = _round_by(n, FRAME_FACTOR)
    if not FRAME_FACTOR <= n <= total_frames:
        raise ValueError(f"VideoReward needs between {FRAME_FACTOR} and {total_frames} frames "
                         f"(the video has {total_frames}), got nframes={n}")
    return int(n)


def smart_resize(height: int, width: int, factor: int = IMAGE_FACTOR, min_pixels: int = VIDEO_MIN_PIXELS,
                 max_pixels: int = 200704) -> tuple[int, int]:
    """Frame size for Qwen2-VL: both sides multiples of ``factor``, area in [min, max] pixels.

    Each side is rounded (half to even) to a multiple of ``factor``; if the area exceeds
    ``max_pixels`` both sides are scaled by ``beta = sqrt(H W / max)`` and floored to multiples,
    if under ``min_pixels`` scaled by ``sqrt(min / (H W))`` and ceiled.  Raises ValueError for an
    aspect ratio above 200.

    Example:
        >>> smart_resize(240, 426), smart_resize(240, 320)
        ((252, 420), (280, 392))
    """
    if height < 1 or width < 1:
        raise ValueError(f"frame size must be positive, got {height}x{width}")
    if max(height, width) / min(height, width) > MAX_RATIO:
        raise ValueError(f"aspect ratio must be at most {MAX_RATIO}, got {max(height, width) / min(height, width):.1f} "
                         f"({height}x{width})")
    h = max(factor, _round_by(height, factor))
    w = max(factor, _round_by(width, factor))
    if h * w > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h = _floor_by(height / beta, factor)
        w = _floor_by(width / beta, factor)
    elif h * w < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h = _ceil_by(height * beta, factor)
        w = _ceil_by(width * beta, factor)
    return int(h), int(w)


def sample_video(frames: np.ndarray, video_fps: float, fps: float | None = 2.0, num_frames: int | None = None,
                 max_pixels: int = 200704, min_pixels: int = VIDEO_MIN_PIXELS) -> tuple[np.ndarray, np.ndarray]:
    """VideoAlign's ``fetch_video``: the sampled, resized frames as uint8 ``(n, h, w, 3)`` and their indices.

    Indices ``round_half_even(linspace(0, T-1, n))`` (float32, torch order), then torchvision
    ``resize(..., BICUBIC, antialias=True)`` on the uint8 ``TCHW`` tensor, which rounds and clamps
    back to uint8 (the original then casts to float: the values stay integers).
    """
    import torch
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as TF

    from javisbench import views

    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or frames.shape[0] < 1:
        raise ValueError(f"expected uint8 frames (T>=1, H, W, 3), got {frames.dtype} {frames.shape}")
    n = smart_nframes(frames.shape[0], video_fps, fps, num_frames)
    idx = views.linspace_indices(frames.shape[0], n)
    h, w = smart_resize(frames.shape[1], frames.shape[2], IMAGE_FACTOR, min_pixels, max_pixels)
    x = torch.from_numpy(np.ascontiguousarray(frames[idx])).permute(0, 3, 1, 2)
    x = TF.resize(x, [h, w], interpolation=InterpolationMode.BICUBIC, antialias=True)
    return np.ascontiguousarray(x.permute(0, 2, 3, 1).numpy()), idx


def patchify(frames: np.ndarray, mean: tuple[float, ...], std: tuple[float, ...], patch_size: int = 14,
             temporal_patch_size: int = 2, merge_size: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """The Qwen2-VL image processor on a video: flattened patch rows and the ``(t, h, w)`` grid.

    ``x = float32(u8 * (1/255))`` (float64 product, as ``rescale``), ``x = (x - mean) / std`` in
    float32, the last frame repeated up to a multiple of ``temporal_patch_size``, then rows of
    ``C * tp * p * p`` values in the order (channel, temporal, patch row, patch col), ordered by
    (t, merge-block row, merge-block col, row in block, col in block).

    Returns ``rows`` float32 ``(t*h*w, C*tp*p*p)`` and ``grid`` int64 ``(3,)``.
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"expected uint8 frames (T, H, W, 3), got {frames.dtype} {frames.shape}")
    t, height, width, c = frames.shape
    unit = patch_size * merge_size
    if height % unit or width % unit:
        raise ValueError(f"frame size {height}x{width} is not a multiple of {unit}")
    x = (frames.astype(np.float64) * (1 / 255)).astype(np.float32)
    x = (x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)        # (T, H, W, C)
    x = x.transpose(0, 3, 1, 2)                                                 # (T, C, H, W)
    if t % temporal_patch_size:
        rep = np.repeat(x[-1:], temporal_patch_size - t % temporal_patch_size, axis=0)
        x = np.concatenate([x, rep], axis=0)
    gt, gh, gw = x.shape[0] // temporal_patch_size, height // patch_size, width // patch_size
    x = x.reshape(gt, temporal_patch_size, c, gh // merge_size, merge_size, patch_size,
                  gw // merge_size, merge_size, patch_size)
    x = x.transpose(0, 3, 6, 4, 7, 2, 1, 5, 8)
    rows = np.ascontiguousarray(x.reshape(gt * gh * gw, c * temporal_patch_size * patch_size * patch_size))
    return rows, np.array([gt, gh, gw], np.int64)


# ---------------------------------------------------------------------------------------------
# text: chat template and tokenizer
# ---------------------------------------------------------------------------------------------
def read_chat_template(folder: str | Path) -> str:
    """The Qwen2-VL chat template of a snapshot (``chat_template.json``, else ``tokenizer_config.json``)."""
    folder = Path(folder)
    for name in ("chat_template.json", "tokenizer_config.json"):
        p = folder / name
        if p.is_file():
            try:
                tpl = json.loads(p.read_text(encoding="utf-8")).get("chat_template")
            except ValueError as exc:
                raise BadWeightsError(f"{p}: not valid JSON ({exc})") from exc
            if isinstance(tpl, str) and tpl:
                return tpl
    raise BadWeightsError(f"{folder}: no chat template (expected 'chat_template' in chat_template.json "
                          "or tokenizer_config.json)")


def render_chat(template: str, question: str) -> str:
    """One user turn (a video, then ``question``) rendered with ``template``, generation prompt appended.

    Rendered as transformers renders chat templates (sandboxed Jinja, ``trim_blocks``,
    ``lstrip_blocks``).  With the Qwen2-VL template this is
    ``<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n<|im_start|>user\\n``
    ``<|vision_start|><|video_pad|><|vision_end|>{question}<|im_end|>\\n<|im_start|>assistant\\n``.
    """
    from jinja2.ext import loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise BadWeightsError(f"chat template error: {message}")

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.globals["raise_exception"] = raise_exception
    messages = [{"role": "user", "content": [{"type": "video", "video": ""}, {"type": "text", "text": question}]}]
    return env.from_string(template).render(messages=messages, add_generation_prompt=True)


def expand_video_tokens(text: str, n_tokens: int) -> str:
    """Replace the single ``<|video_pad|>`` by ``n_tokens`` of them (one per merged visual token)."""
    if text.count(VIDEO_PAD) != 1:
        raise ValueError(f"expected exactly one {VIDEO_PAD} in the chat text, got {text.count(VIDEO_PAD)}")
    return text.replace(VIDEO_PAD, VIDEO_PAD * int(n_tokens))


class RewardTokenizer:
    """The snapshot's byte-level BPE (``tokenizer.json``) with the three reward tokens appended.

    As VideoAlign's ``add_special_tokens``: the reward tokens get the next ids
    (``len(tokenizer)``, +1, +2) and are matched as whole special tokens.  ``encode`` adds no
    BOS/EOS (Qwen2 has no template post-processor).
    """

    def __init__(self, folder: str | Path) -> None:
        from tokenizers import AddedToken, Tokenizer

        folder = Path(folder)
        path = folder / "tokenizer.json"
        try:
            tok = Tokenizer.from_file(str(path))
        except Exception as exc:  # noqa: BLE001  (the Rust side raises plain Exceptions)
            raise BadWeightsError(f"{path}: not a tokenizers file ({exc})") from exc
        # offline, an empty or foreign tokenizer gives silent garbage: check what the layout needs
        base = tok.get_vocab_size(with_added_tokens=False)
        if base < 256:
            raise BadWeightsError(f"{path}: {base} ordinary tokens; a byte-level BPE has at least 256")
        missing = [t for t in CHAT_SPECIALS if tok.token_to_id(t) is None]
        if missing:
            raise BadWeightsError(f"{path}: not a Qwen2-VL tokenizer, missing {', '.join(missing)}")
        already = [t for t in REWARD_TOKENS if tok.token_to_id(t) is not None]
        n_before = tok.get_vocab_size(with_added_tokens=True)
        tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in REWARD_TOKENS])
        self.tokenizer = tok
        self.reward_ids = tuple(int(tok.token_to_id(t)) for t in REWARD_TOKENS)
        if not already and self.reward_ids != tuple(range(n_before, n_before + 3)):
            raise BadWeightsError(f"{path}: reward tokens got ids {self.reward_ids}, expected "
                                  f"{n_before}..{n_before + 2}")
        self.video_pad_id = int(tok.token_to_id(VIDEO_PAD))
        pad = _pad_token(folder)
        pad_id = tok.token_to_id(pad)
        if pad_id is None:
            raise BadWeightsError(f"{folder}: pad token {pad!r} is not in the tokenizer")
        self.pad_id = int(pad_id)

    def __len__(self) -> int:
        return int(self.tokenizer.get_vocab_size(with_added_tokens=True))

    def encode(self, text: str) -> np.ndarray:
        """Token ids of ``text`` (special tokens matched as such), int64 ``(L,)``."""
        return np.asarray(self.tokenizer.encode(text, add_special_tokens=False).ids, dtype=np.int64)


def _pad_token(folder: Path) -> str:
    """The pad token named by the snapshot (``tokenizer_config.json``/``special_tokens_map.json``)."""
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        p = folder / name
        if p.is_file():
            try:
                pad = json.loads(p.read_text(encoding="utf-8")).get("pad_token")
            except ValueError:
                continue
            if isinstance(pad, Mapping):
                pad = pad.get("content")
            if isinstance(pad, str) and pad:
                return pad
    return DEFAULT_PAD


# ---------------------------------------------------------------------------------------------
# the checkpoint: configuration, weights, LoRA merge
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class VideoRewardConfig:
    """What inference reads from the snapshot's ``model_config.json``."""

    fps: float | None = 2.0
    num_frames: int | None = None
    max_frame_pixels: int = 200704
    lora_enable: bool = True
    lora_r: int = 64
    lora_alpha: float = 128.0
    use_rslora: bool = False
    output_dim: int = 3
    norm_mean: tuple[float, ...] | None = None     # VQ, MQ, TA (inference_config)
    norm_std: tuple[float, ...] | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def lora_scale(self) -> float:
        """``alpha / r``, or ``alpha / sqrt(r)`` under rsLoRA (PEFT's scaling)."""
        return self.lora_alpha / (math.sqrt(self.lora_r) if self.use_rslora else self.lora_r)


def read_model_config(path: str | Path) -> VideoRewardConfig:
    """Parse and check ``model_config.json``: only the setup JavisBench runs is accepted.

    Raises BadWeightsError for another prompt template, evaluation dimensions other than
    [VQ, MQ, TA], a non-``special`` reward token, an output size other than 3, or a
    ``sample_type`` other than ``uniform``.
    """
    path = Path(path)
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
        data, model, lora = cfg["data_config"], cfg["model_config"], cfg["peft_lora_config"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BadWeightsError(f"{path}: expected VideoAlign's model_config.json with data_config, "
                              f"model_config and peft_lora_config ({exc})") from exc
    checks = {
        "data_config.prompt_template_type": (data.get("prompt_template_type"), "detailed_special"),
        "data_config.eval_dim": (list(data.get("eval_dim") or []), list(REWARD_NAMES)),
        "data_config.sample_type": (data.get("sample_type", "uniform"), "uniform"),
        "model_config.output_dim": (model.get("output_dim"), 3),
        "model_config.use_special_tokens": (bool(model.get("use_special_tokens")), True),
    }
    for key, (got, want) in checks.items():
        if got != want:
            raise BadWeightsError(f"{path}: {key} is {got!r}; this encoder implements {want!r} "
                                  "(the released VideoReward setup)")
    if data.get("fps") is not None and data.get("num_frames") is not None:
        raise BadWeightsError(f"{path}: data_config sets both fps and num_frames")
    inf = cfg.get("inference_config")
    mean = std = None
    if inf is not None:
        try:
            mean = tuple(float(inf[f"{k}_mean"]) for k in REWARD_NAMES)
            std = tuple(float(inf[f"{k}_std"]) for k in REWARD_NAMES)
        except (KeyError, TypeError, ValueError) as exc:
            raise BadWeightsError(f"{path}: inference_config needs VQ/MQ/TA _mean and _std ({exc})") from exc
    return VideoRewardConfig(
        fps=None if data.get("fps") is None else float(data["fps"]),
        num_frames=None if data.get("num_frames") is None else int(data["num_frames"]),
        max_frame_pixels=int(data.get("max_frame_pixels") or 200704),
        lora_enable=bool(lora.get("lora_enable", False)),
        lora_r=int(lora.get("lora_r", 64)),
        lora_alpha=float(lora.get("lora_alpha", 128)),
        use_rslora=bool(lora.get("use_rslora", False)),
        output_dim=int(model["output_dim"]),
        norm_mean=mean,
        norm_std=std,
        raw=cfg,
    )


def latest_checkpoint(folder: str | Path) -> Path:
    """The ``checkpoint-<step>`` folder with the highest step (the official loader's default)."""
    folder = Path(folder)
    found = []
    for p in folder.glob("checkpoint-*"):
        m = re.fullmatch(r"checkpoint-(\d+)", p.name)
        if m and p.is_dir():
            found.append((int(m.group(1)), p))
    if not found:
        raise MissingWeightsError("videoreward", VIDEOREWARD_WEIGHTS, folder, "no checkpoint-<step> folder inside")
    return max(found)[1]


def _hub_target(name: str) -> tuple[str, str] | None:
    """Map a Qwen2-VL parameter name (hub layout of transformers 4.x or 5.x) to (part, local name)."""
    for prefix in ("model.visual.", "visual."):
        if name.startswith(prefix):
            return "visual", name[len(prefix):]
    for prefix in ("model.language_model.", "model."):
        if name.startswith(prefix):
            return "language_model", name[len(prefix):]
    if name == "lm_head.weight":
        return "lm_head", "weight"
    if name == "rm_head.weight":
        return "rm_head", "weight"
    return None


def _peft_target(name: str) -> tuple[str, str] | None:
    """Map a PEFT-wrapped name (``base_model.model.<name>``, LoRA base layers) to (part, local name)."""
    if not name.startswith(PEFT_PREFIX):
        return None
    return _hub_target(name[len(PEFT_PREFIX):].replace(".base_layer.", "."))


_LORA_RE = re.compile(r"^(?P<module>.+)\.lora_(?P<ab>[AB])(?:\.[^.]+)?\.weight$")


class _Sources:
    """Lazy access to the tensors of the base snapshot and the checkpoint, by (part, local name).

    Each entry records where the tensor comes from (``"base"`` or ``"checkpoint"``) and a label
    (file and key) for error messages; the tensor is read only when it is assigned.
    """

    def __init__(self) -> None:
        self.entries: dict[tuple[str, str], tuple[str, str, Callable[[], "torch.Tensor"]]] = {}

    def put(self, key: tuple[str, str], kind: str, label: str, getter: Callable[[], "torch.Tensor"]) -> None:
        self.entries[key] = (kind, label, getter)


def _base_shards(folder: Path) -> list[Path]:
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        try:
            names = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        except (ValueError, KeyError, TypeError) as exc:
            raise BadWeightsError(f"{index}: expected a safetensors index with a weight_map ({exc})") from exc
        missing = [n for n in names if not (folder / n).is_file()]
        if missing:
            raise MissingWeightsError("videoreward", QWEN2VL_WEIGHTS, folder, "missing shard " + ", ".join(missing))
        return [folder / n for n in names]
    single = folder / "model.safetensors"
    if single.is_file():
        return [single]
    raise MissingWeightsError("videoreward", QWEN2VL_WEIGHTS, folder,
                              "no model.safetensors or model.safetensors.index.json inside")


def build_videoreward_net(qwen_dir: str | Path, checkpoint_dir: str | Path, cfg: VideoRewardConfig,
                          n_tokens: int, device: str = "cpu", dtype: "torch.dtype | None" = None) -> "nn.Module":
    """The VideoReward network with the official weights combined as VideoAlign's loader combines them.

    Modules are built on the meta device and every parameter is assigned once, on ``device``,
    in ``dtype`` (default float32): no random initialisation and no second copy of the model.
    ``n_tokens`` is the tokenizer length including the reward tokens (the embedding is cut to it).

    Raises:
        MissingWeightsError: a file is absent.
        BadWeightsError: a parameter is covered by no file, a tensor has the wrong shape, or a
            checkpoint key belongs to no parameter (the original loads strictly).
    """
    import torch
    from safetensors import safe_open
    from transformers import Qwen2VLConfig

    dtype = torch.float32 if dtype is None else dtype
    qwen_dir, checkpoint_dir = Path(qwen_dir), Path(checkpoint_dir)
    try:
        config = Qwen2VLConfig.from_pretrained(str(qwen_dir), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise BadWeightsError(f"{qwen_dir}/config.json: not a Qwen2-VL config ({exc})") from exc
    text_cfg, vision_cfg = config.text_config, config.vision_config
    tied = bool(getattr(config, "tie_word_embeddings", False) or getattr(text_cfg, "tie_word_embeddings", False))
    text_cfg.vocab_size = int(n_tokens)

    src = _Sources()
    # 1. base snapshot (lazy: safetensors are memory-mapped and read one tensor at a time)
    from javisbench.encoders.checkpoints import check_weights_file, read_checkpoint

    for shard in _base_shards(qwen_dir):
        check_weights_file(shard, "videoreward", QWEN2VL_WEIGHTS, formats=("safetensors",))
        handle = safe_open(str(shard), framework="pt", device="cpu")
        for name in handle.keys():
            key = _hub_target(name)
            if key is None:
                continue
            if key[0] == "lm_head" and tied:
                continue   # tied: the base output embedding *is* the input embedding
            src.put(key, "base", f"{shard.name}:{name}", (lambda h=handle, n=name: h.get_tensor(n)))
    # 2. the checkpoint's non-LoRA tensors (PEFT names) replace base ones
    non_lora_path = checkpoint_dir / "non_lora_state_dict.pth"
    adapter_path = checkpoint_dir / "adapter_model.safetensors"
    lora: dict[str, dict[str, "torch.Tensor"]] = {}
    unknown: list[str] = []
    if not non_lora_path.is_file():
        # the official loader's adapter branch always reads it (the trained vision tower, rm_head, ...)
        raise MissingWeightsError("videoreward", VIDEOREWARD_WEIGHTS, non_lora_path, "non_lora_state_dict.pth missing")
    non_lora = read_checkpoint(non_lora_path, "videoreward", VIDEOREWARD_WEIGHTS, mmap=True)
    if not isinstance(non_lora, Mapping):
        raise BadWeightsError(f"{non_lora_path}: expected a mapping of tensors, got {type(non_lora).__name__}")
    for name, value in non_lora.items():
        m = _LORA_RE.match(name)
        if m:
            lora.setdefault(m.group("module"), {})[m.group("ab")] = value
            continue
        key = _peft_target(name)
        if key is None:
            unknown.append(name)
            continue
        src.put(key, "checkpoint", f"{non_lora_path.name}:{name}", (lambda v=value: v))
    if tied and ("lm_head", "weight") in src.entries:
        # load_state_dict copies lm_head.weight after embed_tokens.weight into the one tied tensor
        src.entries[("language_model", "embed_tokens.weight")] = src.entries.pop(("lm_head", "weight"))
    # 3. the LoRA pairs (names without the adapter name; the adapter file wins over the other)
    if cfg.lora_enable:
        if not adapter_path.is_file():
            raise MissingWeightsError("videoreward", VIDEOREWARD_WEIGHTS, adapter_path, "adapter_model.safetensors missing")
        with safe_open(str(adapter_path), framework="pt", device="cpu") as handle:
            for name in handle.keys():
                m = _LORA_RE.match(name)
                if not m:
                    unknown.append(name)
                    continue
                lora.setdefault(m.group("module"), {})[m.group("ab")] = handle.get_tensor(name)
    merges: dict[tuple[str, str], tuple["torch.Tensor", "torch.Tensor"]] = {}
    for module, pair in lora.items():
        key = _peft_target(module + ".weight")
        if key is None or set(pair) != {"A", "B"}:
            unknown.append(f"{module}.lora_{'/'.join(sorted(pair))}")
            continue
        merges[key] = (pair["A"], pair["B"])
    if unknown:
        raise BadWeightsError(f"{checkpoint_dir}: {len(unknown)} checkpoint keys match no VideoReward parameter, "
                              f"e.g. {', '.join(unknown[:5])}")

    # 4. build on the meta device, then assign every parameter
    from transformers.models.qwen2_vl import modeling_qwen2_vl as mq

    with torch.device("meta"):
        visual = mq.Qwen2VisionTransformerPretrainedModel._from_config(vision_cfg, attn_implementation="sdpa")
        language_model = mq.Qwen2VLTextModel._from_config(text_cfg, attn_implementation="sdpa")
    net = _net_class()(visual, language_model, int(text_cfg.hidden_size), cfg.output_dim,
                         video_token_id=int(config.video_token_id))
    missing: list[str] = []
    used: set[tuple[str, str]] = set()
    used_merges: set[tuple[str, str]] = set()
    scale = cfg.lora_scale
    for full, param in list(net.named_parameters()):
        part, _, local = full.partition(".")
        key = (part, local)
        entry = src.entries.get(key)
        if entry is None:
            missing.append(full)
            continue
        kind, origin, getter = entry
        used.add(key)
        value = getter()
        shape = tuple(param.shape)
        if key == ("language_model", "embed_tokens.weight") and kind == "base":
            # base embeddings: cut (never grown) to the tokenizer length, as resize_token_embeddings
            if value.shape[0] < shape[0]:
                raise BadWeightsError(f"{origin}: {value.shape[0]} embedding rows but the tokenizer has {shape[0]} "
                                      "tokens, and the checkpoint supplies no embedding")
            value = value[: shape[0]]
        if tuple(value.shape) != shape:
            raise BadWeightsError(f"{origin}: shape {tuple(value.shape)}, expected {shape} for {full}")
        value = value.to(torch.float32)
        if key in merges:
            a, b = merges[key]
            if tuple(a.shape) != (a.shape[0], shape[1]) or tuple(b.shape) != (shape[0], a.shape[0]):
                raise BadWeightsError(f"{checkpoint_dir}: LoRA shapes A {tuple(a.shape)}, B {tuple(b.shape)} do not "
                                      f"fit {full} {shape}")
            value = value + scale * (b.to(torch.float32) @ a.to(torch.float32))
            used_merges.add(key)
        _assign(net, full, torch.nn.Parameter(value.to(device=device, dtype=dtype), requires_grad=False))
    if missing:
        raise BadWeightsError(f"{qwen_dir} + {checkpoint_dir}: no weights for {len(missing)} parameters, "
                              f"e.g. {', '.join(missing[:5])}")
    # the original loads strictly: a checkpoint tensor that fits no parameter is an error
    extra = [label for key, (kind, label, _) in src.entries.items()
             if kind == "checkpoint" and key not in used and key[0] != "lm_head"]
    extra += [f"LoRA of {part}.{local}" for part, local in sorted(set(merges) - used_merges)]
    if extra:
        raise BadWeightsError(f"{checkpoint_dir}: {len(extra)} checkpoint tensors match no VideoReward parameter, "
                              f"e.g. {', '.join(extra[:5])}")
    # non-persistent rotary tables: rebuilt (they are functions of the config only)
    net.visual.rotary_pos_emb = type(net.visual.rotary_pos_emb)(vision_cfg).to(device)
    net.language_model.rotary_emb = type(net.language_model.rotary_emb)(config=text_cfg).to(device)
    left = [n for n, t in list(net.named_parameters()) + list(net.named_buffers()) if t.device.type == "meta"]
    if left:
        raise BadWeightsError(f"VideoReward: tensors left unset: {left[:5]}")
    return net.eval()


def _assign(root: "nn.Module", name: str, value: "nn.Parameter") -> None:
    *path, leaf = name.split(".")
    mod = root
    for p in path:
        mod = getattr(mod, p)
    setattr(mod, leaf, value)


@functools.lru_cache(maxsize=None)
def _net_class() -> type:
    """The reward network class (defined on first use, so that importing this module needs no torch)."""
    import torch
    from torch import nn

    class _VideoRewardNet(nn.Module):
        """Qwen2-VL vision tower + language model + ``rm_head``, VideoAlign's reward forward.

        ``forward(input_ids (B, L), attention_mask (B, L), pixel_values_videos (N, 1176),
        video_grid_thw (B, 3), reward_positions (B, 3))`` -> ``(rewards (B, 3) float32,
        hidden (B, 3, D))``: the final-norm hidden states at the three reward tokens and
        ``diag(rm_head(hidden))``.
        """

        def __init__(self, visual: nn.Module, language_model: nn.Module, hidden: int, output_dim: int,
                     video_token_id: int) -> None:
            super().__init__()
            self.visual = visual
            self.language_model = language_model
            with torch.device("meta"):
                self.rm_head = nn.Linear(hidden, output_dim, bias=False)
            self.video_token_id = video_token_id

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, pixel_values_videos: torch.Tensor,
                    video_grid_thw: torch.Tensor, reward_positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            dtype = self.rm_head.weight.dtype
            embeds = self.language_model.embed_tokens(input_ids)
            out = self.visual(pixel_values_videos.to(dtype), grid_thw=video_grid_thw)
            video = out if isinstance(out, torch.Tensor) else out.pooler_output
            mask = input_ids == self.video_token_id
            if int(mask.sum()) != video.shape[0]:
                raise ValueError(f"{int(mask.sum())} {VIDEO_PAD} tokens but {video.shape[0]} visual tokens")
            embeds = embeds.masked_scatter(mask.unsqueeze(-1).expand_as(embeds), video.to(embeds.dtype))
            b, n = input_ids.shape
            # VideoAlign passes no position ids: 0..L-1 on all three M-RoPE axes
            pos = torch.arange(n, device=input_ids.device).view(1, 1, n).expand(3, b, n)
            hidden = self.language_model(inputs_embeds=embeds, attention_mask=attention_mask, position_ids=pos,
                                         use_cache=False).last_hidden_state                 # (B, L, D)
            picked = hidden[torch.arange(b, device=hidden.device)[:, None], reward_positions]   # (B, 3, D)
            rewards = self.rm_head(picked).diagonal(dim1=1, dim2=2)                            # (B, 3)
            return rewards.float(), picked.float()

    return _VideoRewardNet


# ---------------------------------------------------------------------------------------------
# the encoder
# ---------------------------------------------------------------------------------------------
def bf16_on_cuda(protocol: "Protocol") -> bool:
    """Whether CUDA runs use bfloat16 as the original (``protocol.videoreward_bf16_cuda``)."""
    return bool(protocol.videoreward_bf16_cuda)


class VideoRewardEncoder(Encoder):
    """VideoReward raw and normalised [VQ, MQ, TA] rewards of a video and its prompt.

    ``prepare`` -> ``{"frames": uint8 (n, h, w, 3), "input_ids": int64 (L,), "grid_thw": int64 (3,),
    "reward_positions": int64 (3,)}``; ``encode`` -> ``{"raw": float32 (3,), "normalized":
    float32 (3,)}`` in the order VQ, MQ, TA.  ``visual_quality`` / ``motion_quality`` are
    ``raw[0]`` / ``raw[1]`` averaged over samples (the original reports raw values).
    """

    id = "videoreward"
    protocol_fields = ('videoreward_bf16_cuda',)
    outputs = {'raw': '(3,) VQ, MQ, TA', 'normalized': '(3,)'}
    version = "1"
    weight_files = (VIDEOREWARD_WEIGHTS, QWEN2VL_WEIGHTS)
    uses_text = True
    description = "VideoAlign VideoReward (Qwen2-VL-2B + LoRA + reward head): raw VQ, MQ, TA"

    def __init__(self, protocol: Any, device: str = "cpu", batch_size: int = 8) -> None:
        super().__init__(protocol, device, batch_size)
        self.net: "nn.Module | None" = None
        self.tokenizer: RewardTokenizer | None = None
        self.cfg: VideoRewardConfig | None = None
        self.chat_template: str | None = None
        from javisbench.views import CLIP_MEAN, CLIP_STD

        self.image_mean: tuple[float, ...] = CLIP_MEAN
        self.image_std: tuple[float, ...] = CLIP_STD
        self.patch_size, self.temporal_patch_size, self.merge_size = 14, 2, 2
        self.dtype: Any = None
        self._dirs: tuple[Path, Path] | None = None

    # -- loading ----------------------------------------------------------------------------------
    def load_text(self, weights_dir: Path) -> None:
        """Everything ``prepare`` needs (configuration, tokenizer, chat template), without the network."""
        paths = self.weight_paths(Path(weights_dir))
        vr_dir, qwen_dir = paths[VIDEOREWARD_WEIGHTS.name], paths[QWEN2VL_WEIGHTS.name]
        self.cfg = read_model_config(vr_dir / "model_config.json")
        self.tokenizer = RewardTokenizer(qwen_dir)
        self.chat_template = read_chat_template(qwen_dir)
        pre = qwen_dir / "preprocessor_config.json"
        if pre.is_file():
            p = json.loads(pre.read_text(encoding="utf-8"))
            self.image_mean = tuple(float(v) for v in p.get("image_mean", self.image_mean))
            self.image_std = tuple(float(v) for v in p.get("image_std", self.image_std))
            self.patch_size = int(p.get("patch_size", 14))
            self.temporal_patch_size = int(p.get("temporal_patch_size", 2))
            self.merge_size = int(p.get("merge_size", 2))
        self._dirs = (vr_dir, qwen_dir)

    def load(self, weights_dir: Path) -> None:
        import torch

        self.load_text(weights_dir)
        assert self.cfg is not None and self.tokenizer is not None and self._dirs is not None
        vr_dir, qwen_dir = self._dirs
        cuda = str(self.device).startswith("cuda")
        self.dtype = torch.bfloat16 if cuda and bf16_on_cuda(self.protocol) else torch.float32
        self.net = build_videoreward_net(qwen_dir, latest_checkpoint(vr_dir), self.cfg, len(self.tokenizer),
                                         device=self.device, dtype=self.dtype)
        self.weights_sha256[VIDEOREWARD_WEIGHTS.name] = sha256_of(vr_dir)
        self.weights_sha256[QWEN2VL_WEIGHTS.name] = sha256_of(qwen_dir)

    # -- data -------------------------------------------------------------------------------------
    def prepare(self, clip: "DecodedClip", text: str, audio_text: str) -> Prepared:
        if self.tokenizer is None or self.cfg is None or self.chat_template is None:
            raise RuntimeError("VideoRewardEncoder.prepare called before load() (the tokenizer comes with the weights)")
        if not isinstance(text, str):
            raise SampleError(f"sample {clip.sample_id}: expected a video prompt string, got {type(text).__name__}")
        frames = np.asarray(clip.frames)
        if frames.ndim != 4 or frames.shape[0] == 0 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise SampleError(f"sample {clip.sample_id}: expected uint8 video frames (T>=1, H, W, 3), "
                              f"got {frames.dtype} {frames.shape}")
        # decord's get_avg_fps() is the stream's average frame rate
        fps = clip.avg_fps if getattr(clip, "avg_fps", None) else clip.fps
        try:
            video, _ = sample_video(frames, float(fps), self.cfg.fps, self.cfg.num_frames, self.cfg.max_frame_pixels)
        except ValueError as exc:
            raise SampleError(f"sample {clip.sample_id}: {exc}") from exc
        unit = self.patch_size * self.merge_size
        n, h, w = video.shape[0], video.shape[1], video.shape[2]
        if h % unit or w % unit:
            raise SampleError(f"sample {clip.sample_id}: resized to {h}x{w}, not a multiple of {unit}")
        t = -(-n // self.temporal_patch_size)
        grid = np.array([t, h // self.patch_size, w // self.patch_size], np.int64)
        n_video_tokens = int(grid.prod()) // (self.merge_size ** 2)
        chat = render_chat(self.chat_template, build_prompt(text))
        ids = self.tokenizer.encode(expand_video_tokens(chat, n_video_tokens))
        positions = np.flatnonzero(np.isin(ids, self.tokenizer.reward_ids))
        if positions.size != 3 or tuple(ids[positions]) != self.tokenizer.reward_ids:
            raise SampleError(f"sample {clip.sample_id}: expected the reward tokens {REWARD_TOKENS} once each, in "
                              f"order, got {positions.size} (does the prompt contain reward-token text?)")
        return {"frames": video, "input_ids": ids, "grid_thw": grid, "reward_positions": positions.astype(np.int64)}

    def batch_inputs(self, batch: list[Prepared]) -> dict[str, np.ndarray]:
        """Model inputs of several prepared samples: patch rows, right-padded ids and mask, grids."""
        if self.tokenizer is None:
            raise RuntimeError("VideoRewardEncoder.batch_inputs called before load()")
        rows, grids = [], []
        for i, item in enumerate(batch):
            r, g = patchify(item["frames"], self.image_mean, self.image_std, self.patch_size,
                            self.temporal_patch_size, self.merge_size)
            if not np.array_equal(g, item["grid_thw"]):
                raise ValueError(f"VideoReward batch item {i}: frames give grid {g.tolist()}, prepared "
                                 f"{np.asarray(item['grid_thw']).tolist()}")
            rows.append(r)
            grids.append(g)
        lengths = [len(item["input_ids"]) for item in batch]
        ids = np.full((len(batch), max(lengths)), self.tokenizer.pad_id, np.int64)
        mask = np.zeros_like(ids)
        for i, item in enumerate(batch):
            ids[i, : lengths[i]] = item["input_ids"]
            mask[i, : lengths[i]] = 1
        return {"pixel_values_videos": np.concatenate(rows), "video_grid_thw": np.stack(grids), "input_ids": ids,
                "attention_mask": mask, "reward_positions": np.stack([item["reward_positions"] for item in batch])}

    def forward(self, batch: list[Prepared]) -> tuple[np.ndarray, np.ndarray]:
        """Raw rewards ``(B, 3)`` and reward-token hidden states ``(B, 3, D)`` of one batch (one forward)."""
        import torch

        if self.net is None:
            raise RuntimeError("VideoRewardEncoder.encode called before load()")
        x = self.batch_inputs(batch)
        t = {k: torch.from_numpy(v).to(self.device) for k, v in x.items()}
        with torch.inference_mode():
            rewards, hidden = self.net(t["input_ids"], t["attention_mask"], t["pixel_values_videos"],
                                       t["video_grid_thw"], t["reward_positions"])
        return rewards.cpu().numpy(), hidden.cpu().numpy()

    def encode(self, batch: list[Prepared]) -> list[Features]:
        out: list[Features] = []
        step = max(self.batch_size, 1)
        for start in range(0, len(batch), step):
            raw, _ = self.forward(batch[start:start + step])
            for r in raw:
                r = np.ascontiguousarray(r, dtype=np.float32)
                if self.cfg is not None and self.cfg.norm_mean is not None and self.cfg.norm_std is not None:
                    norm = (r - np.asarray(self.cfg.norm_mean, np.float32)) / np.asarray(self.cfg.norm_std, np.float32)
                else:
                    norm = r.copy()   # the original's _norm without an inference_config: unchanged
                out.append({"raw": r, "normalized": np.ascontiguousarray(norm, dtype=np.float32)})
        return out
