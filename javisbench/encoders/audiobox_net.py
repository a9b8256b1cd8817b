"""The Audiobox-Aesthetics network: WavLM base (fairseq layout) plus four per-axis heads.

Written here from the model's definition (the ``audiobox-aesthetics`` package's ``AesMultiOutput``
over Microsoft's WavLM), with the checkpoint's fairseq-style parameter names, so that the
released ``model.safetensors`` / ``checkpoint.pt`` loads with ``strict=True``.  Inference only.

Forward, per 10 s window ``w`` (160,000 samples at 16 kHz) with a sample mask ``m`` (True on
the samples that came from the clip)::

    f   = conv stack (7 convs, 512 ch; GroupNorm(512, 512) after the first; exact GELU)  # (B, 512, 499)
    f   = LayerNorm_512(f^T) @ W_proj + b                                                # (B, 499, 768)
    pad = frame i is padding iff all of samples [320 i, 320 i + 320) are padding          # (B, 499)
    x   = f with padded frames set to 0;  x += GELU(SamePad(pos_conv(x)))   (weight norm)
    h_0 = LayerNorm(x);  h_l = post-LN transformer layer l (h_{l-1}),  l = 1..12
          attention: softmax(q k^T / 8 + g * P - inf * pad_key) v,  P = bucketed relative
          position bias (320 buckets, max distance 800, layer 0's table, shared), g = gated by
          the layer *input* (gru_rel_pos: g = a (b * grep_a - 1) + 2, a, b = sigmoid of grep_linear)
    e_a = normalize( sum_l softmax(layer_weights[a])_l * masked_mean_t(h_l) )            # (B, 768)
    y_a = proj_layer[a](e_a)                                                            # (B,)

for the axes ``a`` in CE, CU, PC, PQ.  De-normalisation (``y * std + mean``) and the window
aggregation live in :mod:`javisbench.encoders.audiobox`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

AXES: tuple[str, ...] = ("CE", "CU", "PC", "PQ")
SAMPLE_RATE = 16000
#: (channels, kernel, stride) of the conv feature extractor: 320x downsampling, 400-sample field.
CONV_LAYERS: tuple[tuple[int, int, int], ...] = ((512, 10, 5),) + ((512, 3, 2),) * 4 + ((512, 2, 2),) * 2
CONV_DIM = 512
EMBED_DIM = 768
FFN_DIM = 3072
HEADS = 12
LAYERS = 12
POS_CONV_KERNEL = 128
POS_CONV_GROUPS = 16
NUM_BUCKETS = 320
MAX_DISTANCE = 800
LN_EPS = 1e-5


class BadConfigError(ValueError):
    """A checkpoint config this network cannot represent."""


@dataclass(frozen=True)
class AesConfig:
    """The checkpoint's ``AesMultiOutput`` fields that change the network or its outputs.

    ``target_transform`` maps each axis to ``(mean, std)``: the model predicts
    ``(score - mean) / std``.  The WavLM encoder itself is not configurable (the package always
    builds WavLM base); ``precision`` is recorded but never used (autocast stays off in the
    original, see ``tests/golden/audiobox/README.md``).
    """

    target_transform: Mapping[str, tuple[float, float]]
    proj_num_layer: int = 1
    proj_ln: bool = False
    proj_act_fn: str = "gelu"
    nth_layer: int = 13
    use_weighted_layer_sum: bool = True
    normalize_embed: bool = True
    output_dim: int = 1
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, cfg: Mapping[str, Any], source: str = "config") -> "AesConfig":
        """Validate a ``config.json`` / ``model_cfg`` mapping; raises BadConfigError naming the field."""
        if not isinstance(cfg, Mapping):
            raise BadConfigError(f"{source}: expected a mapping, got {type(cfg).__name__}")
        tt = cfg.get("target_transform")
        if not isinstance(tt, Mapping):
            raise BadConfigError(f"{source}: 'target_transform' must map {', '.join(AXES)} to "
                                 f"{{'mean': .., 'std': ..}}, got {tt!r}")
        transform: dict[str, tuple[float, float]] = {}
        for axis in AXES:
            entry = tt.get(axis)
            try:
                mean, std = float(entry["mean"]), float(entry["std"])  # type: ignore[index]
            except (TypeError, KeyError, ValueError):
                raise BadConfigError(f"{source}: target_transform[{axis!r}] must be {{'mean': float, "
                                     f"'std': float}}, got {entry!r}") from None
            if not (math.isfinite(mean) and math.isfinite(std)):
                raise BadConfigError(f"{source}: target_transform[{axis!r}] is not finite: {entry!r}")
            transform[axis] = (mean, std)
        known = {f for f in cls.__dataclass_fields__ if f not in ("target_transform", "extra")}
        kwargs = {k: cfg[k] for k in known if k in cfg}
        out = cls(target_transform=transform, extra={k: v for k, v in cfg.items() if k not in known}, **kwargs)
        out.validate(source)
        return out

    def validate(self, source: str = "config") -> None:
        # the original's only working layout: weighted sum over all 13 layer results, scalar heads
        if not self.use_weighted_layer_sum or int(self.nth_layer) != LAYERS + 1:
            raise BadConfigError(
                f"{source}: expected use_weighted_layer_sum=true and nth_layer={LAYERS + 1} (the released "
                f"model), got {self.use_weighted_layer_sum} and {self.nth_layer}"
            )
        if int(self.output_dim) != 1:
            raise BadConfigError(f"{source}: expected output_dim=1 (one score per axis), got {self.output_dim}")
        if int(self.proj_num_layer) < 1:
            raise BadConfigError(f"{source}: expected proj_num_layer >= 1, got {self.proj_num_layer}")
        if int(self.proj_num_layer) > 1 and self.proj_act_fn != "gelu":
            raise BadConfigError(f"{source}: proj_act_fn must be 'gelu', got {self.proj_act_fn!r}")


# ---------------------------------------------------------------------------------------------
# feature extractor
# ---------------------------------------------------------------------------------------------
def _conv_block(n_in: int, n_out: int, k: int, stride: int, group_norm: bool) -> nn.Sequential:
    # index 1 is the checkpoint's (parameter-free) dropout slot, kept so the names line up
    mods: list[nn.Module] = [nn.Conv1d(n_in, n_out, k, stride=stride, bias=False), nn.Identity()]
    if group_norm:
        mods.append(nn.GroupNorm(n_out, n_out, eps=LN_EPS, affine=True))
    mods.append(nn.GELU())
    return nn.Sequential(*mods)


class FeatureExtractor(nn.Module):
    """Raw waveform (B, L) -> (B, 512, T) with ``T = 499`` for ``L = 160000``."""

    def __init__(self) -> None:
        super().__init__()
        blocks, n_in = [], 1
        for i, (dim, k, stride) in enumerate(CONV_LAYERS):
            blocks.append(_conv_block(n_in, dim, k, stride, group_norm=(i == 0)))
            n_in = dim
        self.conv_layers = nn.ModuleList(blocks)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        x = wav.unsqueeze(1)
        for block in self.conv_layers:
            x = block(x)
        return x


# ---------------------------------------------------------------------------------------------
# transformer
# ---------------------------------------------------------------------------------------------
class WeightNormConv1d(nn.Module):
    """Grouped Conv1d with legacy ``weight_norm(dim=2)``: ``W = g * v / ||v||_(0,1)`` per tap.

    Parameters ``weight_g`` (1, 1, K), ``weight_v`` (C, C/groups, K), ``bias`` (C,).
    """

    def __init__(self, channels: int, kernel: int, groups: int) -> None:
        super().__init__()
        self.padding, self.groups = kernel // 2, groups
        # registration order = the checkpoint's key order (weight_norm re-registers g, v after bias)
        self.bias = nn.Parameter(torch.zeros(channels))
        self.weight_g = nn.Parameter(torch.ones(1, 1, kernel))
        self.weight_v = nn.Parameter(torch.zeros(channels, channels // groups, kernel))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = torch._weight_norm(self.weight_v, self.weight_g, 2)
        return F.conv1d(x, weight, self.bias, padding=self.padding, groups=self.groups)


def relative_position_buckets(length: int, num_buckets: int = NUM_BUCKETS,
                              max_distance: int = MAX_DISTANCE) -> torch.Tensor:
    """T5-style bidirectional buckets of ``key - query`` (length, length) int64, as WavLM has them.

    Half the buckets per sign; within a half, ``|d| < n/4`` is exact and larger distances are
    log-spaced up to ``max_distance``: ``n/4 + int(log(|d| / (n/4)) / log(max/(n/4)) * n/4)``,
    capped at ``n/2 - 1``; positive distances are offset by ``n/2``.
    """
    pos = torch.arange(length, dtype=torch.long)
    rel = pos[None, :] - pos[:, None]
    half = num_buckets // 2
    buckets = (rel > 0).to(torch.long) * half
    rel = rel.abs()
    max_exact = half // 2
    # log(0) is never selected below; clamp keeps the float->long cast defined
    large = max_exact + (
        torch.log(rel.clamp(min=1).float() / max_exact) / math.log(max_distance / max_exact) * (half - max_exact)
    ).to(torch.long)
    large = torch.minimum(large, torch.full_like(large, half - 1))
    return buckets + torch.where(rel < max_exact, rel, large)


class SelfAttention(nn.Module):
    """Multi-head self-attention with WavLM's gated relative position bias (fairseq names)."""

    def __init__(self, has_relative_attention_bias: bool) -> None:
        super().__init__()
        self.head_dim = EMBED_DIM // HEADS
        if has_relative_attention_bias:
            self.relative_attention_bias = nn.Embedding(NUM_BUCKETS, HEADS)
        self.k_proj = nn.Linear(EMBED_DIM, EMBED_DIM)
        self.v_proj = nn.Linear(EMBED_DIM, EMBED_DIM)
        self.q_proj = nn.Linear(EMBED_DIM, EMBED_DIM)
        self.out_proj = nn.Linear(EMBED_DIM, EMBED_DIM)
        self.grep_linear = nn.Linear(self.head_dim, 8)
        self.grep_a = nn.Parameter(torch.ones(1, HEADS, 1, 1))

    def position_bias(self, length: int) -> torch.Tensor:
        """(H, T, T) relative position bias from this layer's bucket table."""
        buckets = relative_position_buckets(length).to(self.relative_attention_bias.weight.device)
        return self.relative_attention_bias(buckets).permute(2, 0, 1)

    def forward(self, x: torch.Tensor, key_padding: torch.Tensor, pos_bias: torch.Tensor) -> torch.Tensor:
        """x (B, T, C), key_padding (B, T) bool (True = padding), pos_bias (H, T, T) -> (B, T, C)."""
        b, t, c = x.shape

        def heads(y: torch.Tensor) -> torch.Tensor:
            return y.view(b, t, HEADS, self.head_dim).transpose(1, 2)        # (B, H, T, D)

        # gru_rel_pos: the gate reads the layer input split into heads (not the projected query)
        gates = torch.sigmoid(self.grep_linear(heads(x)).view(b, HEADS, t, 2, 4).sum(-1))
        gate_a, gate_b = gates.chunk(2, dim=-1)                               # (B, H, T, 1) each
        gate = gate_a * (gate_b * self.grep_a - 1.0) + 2.0
        bias = gate * pos_bias.unsqueeze(0)                                   # (B, H, T, T)
        bias = bias.masked_fill(key_padding[:, None, None, :], float("-inf"))
        q, k, v = heads(self.q_proj(x)), heads(self.k_proj(x)), heads(self.v_proj(x))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)        # scale 1/sqrt(64)
        return self.out_proj(out.transpose(1, 2).reshape(b, t, c))


class EncoderLayer(nn.Module):
    """Post-LN transformer layer: ``x = LN(x + attn(x)); x = LN(x + fc2(gelu(fc1(x))))``."""

    def __init__(self, has_relative_attention_bias: bool) -> None:
        super().__init__()
        self.self_attn = SelfAttention(has_relative_attention_bias)
        self.self_attn_layer_norm = nn.LayerNorm(EMBED_DIM, eps=LN_EPS)
        self.fc1 = nn.Linear(EMBED_DIM, FFN_DIM)
        self.fc2 = nn.Linear(FFN_DIM, EMBED_DIM)
        self.final_layer_norm = nn.LayerNorm(EMBED_DIM, eps=LN_EPS)

    def forward(self, x: torch.Tensor, key_padding: torch.Tensor, pos_bias: torch.Tensor) -> torch.Tensor:
        x = self.self_attn_layer_norm(x + self.self_attn(x, key_padding, pos_bias))
        return self.final_layer_norm(x + self.fc2(F.gelu(self.fc1(x))))


class TransformerEncoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.pos_conv = nn.ModuleList([WeightNormConv1d(EMBED_DIM, POS_CONV_KERNEL, POS_CONV_GROUPS)])
        self.layers = nn.ModuleList([EncoderLayer(i == 0) for i in range(LAYERS)])
        self.layer_norm = nn.LayerNorm(EMBED_DIM, eps=LN_EPS)

    def forward(self, x: torch.Tensor, padding: torch.Tensor) -> list[torch.Tensor]:
        """x (B, T, C), padding (B, T) -> the 13 layer results [h_0, ..., h_12], each (B, T, C)."""
        x = x.masked_fill(padding.unsqueeze(-1), 0.0)
        conv = self.pos_conv[0](x.transpose(1, 2))
        if POS_CONV_KERNEL % 2 == 0:   # SamePad: an even kernel with k//2 padding yields one extra frame
            conv = conv[:, :, :-1]
        x = self.layer_norm(x + F.gelu(conv).transpose(1, 2))
        pos_bias = self.layers[0].self_attn.position_bias(x.shape[1])   # layer 0's table, shared by all
        results = [x]
        for layer in self.layers:
            x = layer(x, padding, pos_bias)
            results.append(x)
        return results


class WavLM(nn.Module):
    """WavLM base as the Audiobox checkpoint holds it (``wavlm_model.*``)."""

    def __init__(self) -> None:
        super().__init__()
        self.feature_extractor = FeatureExtractor()
        self.post_extract_proj = nn.Linear(CONV_DIM, EMBED_DIM)
        self.mask_emb = nn.Parameter(torch.zeros(EMBED_DIM))   # pre-training only; kept for strict loading
        self.encoder = TransformerEncoder()
        self.layer_norm = nn.LayerNorm(CONV_DIM, eps=LN_EPS)

    @staticmethod
    def frame_padding(sample_padding: torch.Tensor, n_frames: int) -> torch.Tensor:
        """(B, L) sample padding -> (B, T) frame padding: drop ``L % T`` tail samples, reshape, ``all``."""
        extra = sample_padding.shape[1] % n_frames
        if extra:
            sample_padding = sample_padding[:, :-extra]
        return sample_padding.reshape(sample_padding.shape[0], n_frames, -1).all(-1)

    def forward(self, wav: torch.Tensor, sample_padding: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        feats = self.layer_norm(self.feature_extractor(wav).transpose(1, 2))  # (B, T, 512)
        padding = self.frame_padding(sample_padding, feats.shape[1])
        x = self.post_extract_proj(feats)
        return self.encoder(x, padding), padding


def _head(cfg: AesConfig) -> nn.Sequential:
    mods: list[nn.Module] = []
    for _ in range(int(cfg.proj_num_layer) - 1):
        mods.append(nn.Linear(EMBED_DIM, EMBED_DIM))
        if cfg.proj_ln:
            mods.append(nn.LayerNorm(EMBED_DIM))
        mods.append(nn.GELU())
        # dropout (if configured) adds no parameters and is the identity in eval
    mods.append(nn.Linear(EMBED_DIM, int(cfg.output_dim)))
    return nn.Sequential(*mods)


class AesNet(nn.Module):
    """``AesMultiOutput``: WavLM + per-axis softmax layer weights, masked mean, L2 norm, linear heads."""

    def __init__(self, cfg: AesConfig) -> None:
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.wavlm_model = WavLM()
        self.proj_layer = nn.ModuleDict({a: _head(cfg) for a in AXES})
        self.layer_weights = nn.ParameterDict({a: nn.Parameter(torch.ones(LAYERS + 1) / (LAYERS + 1)) for a in AXES})

    def forward(self, wav: torch.Tensor, sample_mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """Normalised per-axis predictions of windows.

        Args:
            wav: (B, L) float32 windows (L = 160000 in use).
            sample_mask: (B, L) bool, True on samples that count as audio.
        Returns:
            ``pred`` (B, 4) normalised outputs in CE, CU, PC, PQ order, ``pooled`` (B, 4, 768)
            the L2-normalised embeddings fed to the heads, ``n_frames`` (B,) valid frames.
        """
        results, padding = self.wavlm_model(wav, ~sample_mask)
        valid = (~padding).unsqueeze(-1).to(results[0].dtype)                 # (B, T, 1)
        count = valid.sum(dim=1).clamp(min=1)                                  # (B, 1)
        # masked mean per layer first: linear, so equal to pooling the weighted layer sum
        pooled_layers = torch.stack([(h * valid).sum(dim=1) / count for h in results], dim=1)  # (B, 13, C)
        pooled, preds = [], []
        for axis in AXES:
            w = torch.softmax(self.layer_weights[axis], dim=-1)               # (13,)
            e = torch.einsum("blc,l->bc", pooled_layers, w)
            if self.cfg.normalize_embed:
                e = F.normalize(e, dim=-1)
            pooled.append(e)
            preds.append(self.proj_layer[axis](e).squeeze(-1))
        return {"pred": torch.stack(preds, dim=1), "pooled": torch.stack(pooled, dim=1),
                "n_frames": (~padding).sum(dim=1)}


#: Newer torch's ``parametrizations.weight_norm`` names, mapped to the checkpoint's legacy names.
_PARAMETRIZATION_NAMES = {
    "parametrizations.weight.original0": "weight_g",
    "parametrizations.weight.original1": "weight_v",
}


def canonical_key(key: str) -> str:
    """Checkpoint key -> this module's name (strips the torch checkpoint's ``model.`` prefix)."""
    if key.startswith("model."):
        key = key[len("model."):]
    for new, old in _PARAMETRIZATION_NAMES.items():
        if key.endswith(new):
            key = key[: -len(new)] + old
    return key
