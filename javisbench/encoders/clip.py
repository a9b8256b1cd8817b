"""CLIP ViT-B/32 (OpenAI weights): frame and prompt features for ``clip_score``.

The official evaluator calls the OpenAI ``clip`` package, ``clip.load("ViT-B/32")``, which reads
the TorchScript archive ``ViT-B-32.pt`` and rebuilds a plain module from its state dict
(``build_model``).  We build the same network with ``open_clip`` from the same file:
``open_clip.model.build_model_from_openai_state_dict`` is the same procedure, including the
detail that decides the numbers under deterministic weights: the OpenAI weights are *partially*
fp16 -- every Conv/Linear weight and bias, every attention ``in_proj`` and the two projections
(``text_projection``, ``visual.proj``) are cast to fp16 when the model is built, while
LayerNorms, embeddings and ``logit_scale`` stay fp32.  On the CPU the original then calls
``.float()``, so those weights are fp16-*rounded* fp32 values; on CUDA it keeps fp16 weights and
fp16 activations (``protocol.clip_fp16_cuda``).

Per sample (``prepare``)::

    idx    = round_half_even(linspace(0, T-1, 48, float32))        # cv2 reader of the original
    frames = frames[idx][..., ::-1] if protocol.clip_bgr           # quirk: CLIP sees BGR
    x      = centre_crop_224(PIL_bicubic_resize_short_side_224(frames))   # (48, 224, 224, 3) uint8
    tokens = clip_tokenize(prompt, context 77, truncate=True)      # EOT kept as the last token

and in ``encode`` (batched across samples)::

    x = (x / 255 - mean) / std,  mean = (0.48145466, 0.4578275, 0.40821073),
                                 std  = (0.26862954, 0.26130258, 0.27577711)
    image_features = encode_image(x)       # (48, 512), not normalised
    text_features  = encode_text(tokens)   # (512,),    not normalised

The metric (``metrics.similarity.mean_cosine_to``) L2-normalises both and averages the 48
cosines: ``clip_score = mean_t cos(image_features[t], text_features)`` (no x100, no clipping).
"""
from __future__ import annotations

import warnings
import zipfile
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from javisbench.encoders.base import Encoder, Features, Prepared, SampleError
from javisbench.weights import BadWeightsError, WeightFile, sha256_of

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import nn

    from javisbench.decode import DecodedClip

CLIP_WEIGHTS = WeightFile(
    name="ViT-B-32.pt",
    url=(
        "https://openaipublic.azureedge.net/clip/models/"
        "40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af/ViT-B-32.pt"
    ),
    license="MIT",
    # the OpenAI download URL embeds the file's sha256 (the `clip` package checks it)
    sha256="40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af",
    note="OpenAI CLIP ViT-B/32 TorchScript archive, as `clip.load('ViT-B/32')` caches it in "
    "~/.cache/clip/; a plain state dict with the same keys is accepted too",
)

#: CLIP's image normalisation (``clip.clip._transform``), RGB order.
from javisbench.views import CLIP_MEAN, CLIP_STD  # noqa: E402  (OpenAI CLIP normalisation, one copy)
#: Input resolution and text context of ViT-B/32.
IMAGE_SIZE = 224
CONTEXT_LENGTH = 77
#: Extra integer entries of the OpenAI archive that are not module state (``build_model`` drops them).
ARCHIVE_INTS = ("input_resolution", "context_length", "vocab_size")


# ---------------------------------------------------------------------------------------------
# checkpoint files
# ---------------------------------------------------------------------------------------------
def is_torchscript_archive(path: str | Path) -> bool:
    """True when ``path`` is a TorchScript zip (it holds ``constants.pkl`` or ``code/`` entries)."""
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
    except (zipfile.BadZipFile, OSError):
        return False
    return any(n.split("/", 1)[-1] == "constants.pkl" or "/code/" in n for n in names)


def read_openai_state_dict(path: str | Path) -> "OrderedDict[str, torch.Tensor]":
    """The tensors of an OpenAI CLIP checkpoint: a TorchScript archive or a plain state dict.

    The official ``ViT-B-32.pt`` is a TorchScript archive, which ``torch.load(weights_only=True)``
    refuses; it is opened with ``torch.jit.load`` (the archive's graph is never run, only its
    state dict is read).  Anything else goes through ``torch.load(weights_only=True)`` and may be
    a mapping of tensors or one under ``"state_dict"`` (a ``module.`` prefix is stripped).

    Raises:
        BadWeightsError: the file is neither, or holds no tensors.
    """
    import torch

    from javisbench.encoders.checkpoints import check_weights_file, read_checkpoint, weights_problem

    path = Path(path)
    if is_torchscript_archive(path):
        check_weights_file(path, "clip", CLIP_WEIGHTS, formats=("zip",))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.jit.load's deprecation notice
            try:
                archive = torch.jit.load(str(path), map_location="cpu")
            except Exception as exc:  # noqa: BLE001
                raise weights_problem(path, "clip", f"unreadable TorchScript archive ({type(exc).__name__}: "
                                      f"{str(exc).splitlines()[0] if str(exc) else ''})", CLIP_WEIGHTS) from None
        state: Any = archive.state_dict()
    else:
        state = read_checkpoint(path, "clip", CLIP_WEIGHTS)
        if isinstance(state, Mapping) and isinstance(state.get("state_dict"), Mapping):
            state = state["state_dict"]
            if all(str(k).startswith("module.") for k in state):
                state = {str(k)[len("module."):]: v for k, v in state.items()}
    if not isinstance(state, Mapping) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise BadWeightsError(f"{path}: expected a mapping of tensors (a CLIP state dict), got {type(state).__name__}")
    return OrderedDict((str(k), v) for k, v in state.items())


def build_openai_clip(state: Mapping[str, "torch.Tensor"], path: str | Path = "<state dict>") -> "nn.Module":
    """The CLIP network of an OpenAI state dict, built as the ``clip`` package builds it.

    Sizes are read from the tensors; the fp16 weights (Conv/Linear/attention in_proj,
    ``text_projection``, ``visual.proj``) are stored as fp16, the rest fp32 -- so loading fp32
    values rounds exactly those to fp16, as the original does.  Returns the module in eval mode,
    on the CPU, with those weights still fp16 (``.float()`` it for fp32 inference).

    Raises:
        BadWeightsError: keys or shapes do not describe a ViT CLIP (message lists them).
    """
    import torch
    from open_clip.model import build_model_from_openai_state_dict

    needed = ("visual.proj", "visual.conv1.weight", "visual.positional_embedding", "text_projection",
              "positional_embedding", "token_embedding.weight", "ln_final.weight")
    absent = [k for k in needed if k not in state]
    if absent:
        raise BadWeightsError(
            f"{path}: not an OpenAI CLIP ViT checkpoint; missing {', '.join(absent)} "
            f"(got {len(state)} keys, e.g. {', '.join(list(state)[:5])})"
        )
    try:
        model = build_model_from_openai_state_dict(dict(state), quick_gelu=True, cast_dtype=torch.float16)
    except RuntimeError as exc:  # load_state_dict(strict=True): missing / unexpected / misshaped keys
        raise BadWeightsError(f"{path} does not match the OpenAI CLIP layout: {exc}") from exc
    return model.eval()


def save_openai_archive(state: Mapping[str, "torch.Tensor"], path: str | Path) -> Path:
    """Write an OpenAI-format CLIP checkpoint: a TorchScript archive like the released files.

    The network is built from ``state`` (:func:`build_openai_clip`: fp16 Conv/Linear/projection
    weights, fp32 norms and embeddings, as in the released archives), the three integers
    ``input_resolution``, ``context_length`` and ``vocab_size`` are stored as 0-d buffers as the
    released archives do, and the module is scripted and saved.  Used to write deterministic
    parity checkpoints; ``read_openai_state_dict(path)`` gives back ``state`` (fp16-rounded where
    the original rounds) plus those three entries.
    """
    import torch

    model = build_openai_clip(state)
    # open_clip keeps the causal mask as a non-persistent buffer; the released archives hold it
    # as a plain attribute, so it must not appear in the saved state dict
    mask = model._buffers.pop("attn_mask", None)
    if mask is not None:
        model.attn_mask = mask
    size = model.visual.image_size
    image_size = int(size[0]) if isinstance(size, (tuple, list)) else int(size)
    ints = {"input_resolution": image_size, "context_length": int(state["positional_embedding"].shape[0]),
            "vocab_size": int(state["token_embedding.weight"].shape[0])}
    for name, value in ints.items():
        model.__dict__.pop(name, None)      # open_clip stores two of them as plain ints
        model.register_buffer(name, torch.tensor(value))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.jit.script(model).save(str(path))
    return path


# ---------------------------------------------------------------------------------------------
# the encoder
# ---------------------------------------------------------------------------------------------
class ClipEncoder(Encoder):
    """CLIP ViT-B/32 features of 48 frames and of the video prompt, for ``clip_score``.

    ``prepare`` -> ``{"frames": uint8 (F, 224, 224, 3), "tokens": int64 (77,)}`` with
    F = ``protocol.clip_frames`` linspace frames (BGR under ``protocol.clip_bgr``), PIL bicubic
    short-side resize and centre crop.  ``encode`` -> ``{"image_features": float32 (F, 512),
    "text_features": float32 (512,)}``, both *un-normalised* as ``encode_image`` /
    ``encode_text`` return them (the metric normalises).  On CUDA under
    ``protocol.clip_fp16_cuda`` the model runs in the original's fp16; otherwise fp32 with the
    fp16-rounded weights.
    """

    id = "clip"
    protocol_fields = ('clip_bgr', 'clip_fp16_cuda', 'clip_frames', 'image_size')
    outputs = {'image_features': '(F, 512)', 'text_features': '(512,)'}
    version = "1"
    weight_files = (CLIP_WEIGHTS,)
    uses_text = True
    description = "OpenAI CLIP ViT-B/32 frame (48 linspace) and prompt features, clip_score"

    def __init__(self, protocol: Any, device: str = "cpu", batch_size: int = 8) -> None:
        super().__init__(protocol, device, batch_size)
        self.model: "nn.Module | None" = None
        self._tokenizer: Any = None
        self.fp16 = False

    def _tokenize(self, text: str) -> np.ndarray:
        if self._tokenizer is None:
            # the BPE vocabulary ships inside open_clip: no network
            from open_clip.tokenizer import SimpleTokenizer

            self._tokenizer = SimpleTokenizer(context_length=CONTEXT_LENGTH)
        # SimpleTokenizer truncates to the context and puts EOT last, like clip.tokenize(truncate=True)
        return self._tokenizer([text])[0].numpy().astype(np.int64)

    def load(self, weights_dir: Path) -> None:
        path = self.weight_paths(Path(weights_dir))[CLIP_WEIGHTS.name]
        model = build_openai_clip(read_openai_state_dict(path), path)
        self.fp16 = str(self.device).startswith("cuda") and bool(self.protocol.clip_fp16_cuda)
        if not self.fp16:
            model = model.float()   # the original's CPU path: fp16-rounded weights, fp32 compute
        self.model = model.to(self.device).eval()
        self.weights_sha256[CLIP_WEIGHTS.name] = sha256_of(path)

    def prepare(self, clip: "DecodedClip", text: str, audio_text: str) -> Prepared:
        from javisbench import views

        frames = np.asarray(clip.frames)
        if frames.ndim != 4 or frames.shape[0] == 0 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise SampleError(
                f"sample {clip.sample_id}: expected uint8 video frames (T>=1, H, W, 3), "
                f"got {frames.dtype} {frames.shape}"
            )
        if not isinstance(text, str):
            raise SampleError(f"sample {clip.sample_id}: expected a video prompt string, got {type(text).__name__}")
        idx = views.linspace_indices(frames.shape[0], int(self.protocol.clip_frames))
        picked = frames[idx]                                   # (F, H, W, 3) RGB
        if self.protocol.clip_bgr:
            # quirk of the original: the reader returns RGB and the CLIP transform swaps again
            picked = picked[..., ::-1]
        crops = views.resize_short_crop_pil(np.ascontiguousarray(picked), size=IMAGE_SIZE)
        return {
            "frames": np.ascontiguousarray(crops, dtype=np.uint8),   # (F, 224, 224, 3)
            "tokens": self._tokenize(text),                           # (77,)
        }

    def encode(self, batch: list[Prepared]) -> list[Features]:
        import torch

        if self.model is None:
            raise RuntimeError("ClipEncoder.encode called before load()")
        for i, item in enumerate(batch):
            f, t = item["frames"], item["tokens"]
            if f.dtype != np.uint8 or f.ndim != 4 or f.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE, 3) or f.shape[0] == 0:
                raise ValueError(
                    f"CLIP batch item {i}: expected uint8 frames (F>=1, 224, 224, 3), got {f.dtype} {f.shape}"
                )
            if t.shape != (CONTEXT_LENGTH,):
                raise ValueError(f"CLIP batch item {i}: expected tokens ({CONTEXT_LENGTH},), got {t.shape}")
        dtype = torch.float16 if self.fp16 else torch.float32
        mean = torch.tensor(CLIP_MEAN, device=self.device).view(1, 3, 1, 1)
        std = torch.tensor(CLIP_STD, device=self.device).view(1, 3, 1, 1)
        out: list[Features] = []
        step = max(self.batch_size, 1)
        with torch.inference_mode():
            for start in range(0, len(batch), step):
                chunk = batch[start:start + step]
                counts = [item["frames"].shape[0] for item in chunk]
                frames = torch.from_numpy(np.concatenate([item["frames"] for item in chunk])).to(self.device)
                # ToTensor then Normalize, in fp32 as torchvision does, then the model's dtype
                x = frames.permute(0, 3, 1, 2).float().div(255).sub(mean).div(std).to(dtype)   # (N, 3, 224, 224)
                img = self.model.encode_image(x).float().cpu().numpy()                          # (N, 512)
                tokens = torch.from_numpy(np.stack([item["tokens"] for item in chunk])).to(self.device)
                txt = self.model.encode_text(tokens).float().cpu().numpy()                      # (B, 512)
                for j, part in enumerate(np.split(img, np.cumsum(counts)[:-1])):
                    out.append({
                        "image_features": np.ascontiguousarray(part, dtype=np.float32),
                        "text_features": np.ascontiguousarray(txt[j], dtype=np.float32),
                    })
        return out
