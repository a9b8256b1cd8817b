"""Synchformer (Iashin et al., 2024) as used by the JavisBench DeSync metric, written for inference.

Three parts, with module names chosen so that ``state_dict()`` has exactly the keys and shapes of
the released ``synchformer_state_dict.pth`` (MMAudio v0.1), in the same order, and the file loads
with ``strict=True``:

* ``vfeat_extractor``: MotionFormer, a divided space-time ViT-B/16 over one 16-frame segment
  (tubelets 2x16x16 -> 8x14x14 tokens + CLS, 12 blocks), followed by a one-layer CLS-pooling
  transformer over the 196 patches of each of the 8 token frames -> ``(8, 768)`` per segment.
* ``afeat_extractor``: AST (ViT-B over a 128x66 log-mel, patches 16x16 with stride 10 -> 12x6
  tokens + CLS + distillation token, 12 layers), followed by a CLS-pooling layer over the 12
  frequency tokens of each of the 6 time tokens -> ``(6, 768)`` per segment.
* ``vproj``/``aproj`` + ``transformer``: a 3-layer, 8-head GPT-style encoder over
  ``[OFF, 14x8 visual, MOD, 14x6 audio]`` = 198 tokens; the OFF token's output gives 21 logits,
  one per offset in ``linspace(-2, 2, 21)`` seconds.

Segments are encoded independently of each other and of the other samples in a batch, so the
features of a segment do not depend on batch composition.  Dropout layers of the original are
omitted (inference only; they hold no parameters).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

DIM = 768
MF_HEADS = 12          # MotionFormer (divided_224_16x4) and AST heads
MF_DEPTH = 12
MF_PATCH = 16
MF_TUBELET = 2         # frames per tubelet: 16 frames -> 8 token frames
MF_FRAMES = 16         # frames per video segment
MF_TOKEN_FRAMES = MF_FRAMES // MF_TUBELET
IMG = 224
GRID = IMG // MF_PATCH             # 14
N_PATCH = GRID * GRID              # 196
AST_MELS = 128
AST_FRAMES = 66                    # max_spec_t
AST_STRIDE = 10
AST_F = (AST_MELS - MF_PATCH) // AST_STRIDE + 1     # 12 frequency tokens
AST_T = (AST_FRAMES - MF_PATCH) // AST_STRIDE + 1   # 6 time tokens
AST_DEPTH = 12
AST_EPS = 1e-12                    # HF ASTConfig.layer_norm_eps
POOL_EPS = 1e-6                    # CLS-pooling layers and MotionFormer norms
GT_HEADS = 8
GT_DEPTH = 3
N_SEGMENTS = 14                    # segments per offset-classification window (4.8 s)
N_TOKENS = 1 + N_SEGMENTS * MF_TOKEN_FRAMES + 1 + N_SEGMENTS * AST_T   # 198
N_OFFSETS = 21


def _heads(x: torch.Tensor, n_heads: int) -> torch.Tensor:
    """(B, L, H*Dh) -> (B, H, L, Dh)."""
    b, n, d = x.shape
    return x.view(b, n, n_heads, d // n_heads).transpose(1, 2)


def _merge(x: torch.Tensor) -> torch.Tensor:
    """(B, H, L, Dh) -> (B, L, H*Dh)."""
    b, h, n, dh = x.shape
    return x.transpose(1, 2).reshape(b, n, h * dh)


# ---------------------------------------------------------------------------------------------
# CLS-pooling encoder layer (torch.nn.TransformerEncoderLayer, norm_first, GELU, batch_first,
# with a learned CLS token prepended; only the CLS output is kept)
# ---------------------------------------------------------------------------------------------
class _InProjAttention(nn.Module):
    """Multi-head self-attention with ``nn.MultiheadAttention``'s parameter layout."""

    def __init__(self, dim: int, n_heads: int) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.empty(3 * dim))
        self.out_proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = F.linear(x, self.in_proj_weight, self.in_proj_bias).chunk(3, dim=-1)
        y = F.scaled_dot_product_attention(*(_heads(t, self.n_heads) for t in (q, k, v)))
        return self.out_proj(_merge(y))


class ClsPoolLayer(nn.Module):
    """Pre-norm transformer layer over ``[CLS, x_1..x_n]`` returning the CLS output.

    ``y = x + MHA(LN1(x)); y = y + W2 GELU(W1 LN2(y))`` with x = cat(cls, tokens); returns y[:, 0].
    Shapes: (N, n, D) -> (N, D).
    """

    def __init__(self, dim: int = DIM, n_heads: int = MF_HEADS, ff: int = 4 * DIM) -> None:
        super().__init__()
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.self_attn = _InProjAttention(dim, n_heads)
        self.linear1 = nn.Linear(dim, ff)
        self.linear2 = nn.Linear(ff, dim)
        self.norm1 = nn.LayerNorm(dim, eps=POOL_EPS)
        self.norm2 = nn.LayerNorm(dim, eps=POOL_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1)
        x = x + self.self_attn(self.norm1(x))
        x = x + self.linear2(F.gelu(self.linear1(self.norm2(x))))
        return x[:, 0]


# ---------------------------------------------------------------------------------------------
# MotionFormer (divided space-time attention)
# ---------------------------------------------------------------------------------------------
class _PatchEmbed(nn.Module):
    def __init__(self, conv: nn.Module) -> None:
        super().__init__()
        self.proj = conv


class _Mlp(nn.Module):
    def __init__(self, dim: int = DIM, hidden: int = 4 * DIM) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class DividedAttention(nn.Module):
    """Attention along one axis of the (frame, patch) token grid, plus a global CLS query.

    Tokens are ``[CLS, (f n)]`` with f frames and n patches.  The CLS query attends to every
    token.  Each patch token attends to the CLS token and to the tokens that share its patch
    position (``axis="time"``, f keys) or its frame (``axis="space"``, n keys).
    Shapes: (B, 1 + f*n, D) -> (B, 1 + f*n, D).
    """

    def __init__(self, dim: int = DIM, n_heads: int = MF_HEADS) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, axis: str, n_frames: int) -> torch.Tensor:
        b, length, d = x.shape
        h, dh = self.n_heads, d // self.n_heads
        q, k, v = (_heads(t, h) for t in self.qkv(x).chunk(3, dim=-1))      # (B, H, L, Dh)
        cls_out = F.scaled_dot_product_attention(q[:, :, :1], k, v)         # (B, H, 1, Dh)
        n = (length - 1) // n_frames

        def grid(t: torch.Tensor) -> torch.Tensor:
            t = t[:, :, 1:].reshape(b, h, n_frames, n, dh)
            if axis == "time":
                t = t.transpose(2, 3)                                        # (B, H, n, f, Dh)
            return t.reshape(-1, t.shape[3], dh)                             # (B*H*groups, len, Dh)

        qg, kg, vg = grid(q), grid(k), grid(v)
        groups = qg.shape[0] // (b * h)
        # every group also sees the CLS key/value of its own sample and head
        cls_k = k[:, :, :1].unsqueeze(2).expand(b, h, groups, 1, dh).reshape(-1, 1, dh)
        cls_v = v[:, :, :1].unsqueeze(2).expand(b, h, groups, 1, dh).reshape(-1, 1, dh)
        out = F.scaled_dot_product_attention(qg, torch.cat((cls_k, kg), 1), torch.cat((cls_v, vg), 1))
        out = out.view(b, h, groups, -1, dh)
        if axis == "time":
            out = out.transpose(2, 3)                                        # back to (B, H, f, n, Dh)
        out = torch.cat((cls_out, out.reshape(b, h, n_frames * n, dh)), dim=2)
        return self.proj(_merge(out))


class DividedSpaceTimeBlock(nn.Module):
    """``x += TimeAttn(LN3(x)); x += SpaceAttn(LN1(x)); x += MLP(LN2(x))`` (TimeSformer order)."""

    def __init__(self, dim: int = DIM, n_heads: int = MF_HEADS) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=POOL_EPS)
        self.attn = DividedAttention(dim, n_heads)
        self.timeattn = DividedAttention(dim, n_heads)
        self.norm2 = nn.LayerNorm(dim, eps=POOL_EPS)
        self.mlp = _Mlp(dim)
        self.norm3 = nn.LayerNorm(dim, eps=POOL_EPS)

    def forward(self, x: torch.Tensor, n_frames: int) -> torch.Tensor:
        x = x + self.timeattn(self.norm3(x), "time", n_frames)
        x = x + self.attn(self.norm1(x), "space", n_frames)
        return x + self.mlp(self.norm2(x))


class MotionFormer(nn.Module):
    """Segment video encoder: (N, 3, 16, 224, 224) in [-1, 1] -> (N, 8, 768).

    Tubelet embedding (Conv3d 2x16x16) -> + [CLS] -> + (spatial pos + temporal pos) ->
    12 divided space-time blocks -> LayerNorm on the patch tokens -> per token frame, a CLS
    pooling layer over its 14x14 patches.
    """

    def __init__(self) -> None:
        super().__init__()
        self.cls_token = nn.Parameter(torch.zeros(1, 1, DIM))
        self.pos_embed = nn.Parameter(torch.zeros(1, N_PATCH + 1, DIM))
        self.temp_embed = nn.Parameter(torch.zeros(1, MF_TOKEN_FRAMES, DIM))
        # the 2-D patch embedding is part of the checkpoint but unused (tubelets are 3-D)
        self.patch_embed = _PatchEmbed(nn.Conv2d(3, DIM, MF_PATCH, MF_PATCH))
        self.patch_embed_3d = _PatchEmbed(
            nn.Conv3d(3, DIM, (MF_TUBELET, MF_PATCH, MF_PATCH), (MF_TUBELET, MF_PATCH, MF_PATCH))
        )
        self.blocks = nn.ModuleList(DividedSpaceTimeBlock() for _ in range(MF_DEPTH))
        self.norm = nn.LayerNorm(DIM, eps=POOL_EPS)
        self.spatial_attn_agg = ClsPoolLayer(DIM, MF_HEADS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        x = self.patch_embed_3d.proj(x)                         # (N, D, t, h, w)
        t, h, w = x.shape[2:]
        x = x.flatten(2).transpose(1, 2)                        # (N, t*h*w, D), frame-major
        pos = self.pos_embed[:, 1:].repeat(1, t, 1) + self.temp_embed[:, :t].repeat_interleave(h * w, 1)
        pos = torch.cat((self.pos_embed[:, :1], pos), dim=1)
        x = torch.cat((self.cls_token.expand(n, -1, -1), x), dim=1) + pos
        for blk in self.blocks:
            x = blk(x, t)
        x = self.norm(x[:, 1:])                                 # (N, t*h*w, D)
        x = self.spatial_attn_agg(x.reshape(n * t, h * w, DIM))  # (N*t, D)
        return x.view(n, t, DIM)


# ---------------------------------------------------------------------------------------------
# AST (Hugging Face layout)
# ---------------------------------------------------------------------------------------------
class _ASTSelfAttention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.query = nn.Linear(DIM, DIM)
        self.key = nn.Linear(DIM, DIM)
        self.value = nn.Linear(DIM, DIM)


class _Dense(nn.Module):
    def __init__(self, d_in: int, d_out: int) -> None:
        super().__init__()
        self.dense = nn.Linear(d_in, d_out)


class _ASTAttention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.attention = _ASTSelfAttention()
        self.output = _Dense(DIM, DIM)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.attention
        q, k, v = (_heads(f(x), MF_HEADS) for f in (a.query, a.key, a.value))
        return self.output.dense(_merge(F.scaled_dot_product_attention(q, k, v)))


class _ASTLayer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.attention = _ASTAttention()
        self.intermediate = _Dense(DIM, 4 * DIM)
        self.output = _Dense(4 * DIM, DIM)
        self.layernorm_before = nn.LayerNorm(DIM, eps=AST_EPS)
        self.layernorm_after = nn.LayerNorm(DIM, eps=AST_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.layernorm_before(x))
        return x + self.output.dense(F.gelu(self.intermediate.dense(self.layernorm_after(x))))


class _ASTPatch(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.projection = nn.Conv2d(1, DIM, MF_PATCH, AST_STRIDE)


class _ASTEmbeddings(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.cls_token = nn.Parameter(torch.zeros(1, 1, DIM))
        self.distillation_token = nn.Parameter(torch.zeros(1, 1, DIM))
        self.position_embeddings = nn.Parameter(torch.zeros(1, AST_F * AST_T + 2, DIM))
        self.patch_embeddings = _ASTPatch()


class _ASTEncoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.ModuleList(_ASTLayer() for _ in range(AST_DEPTH))


class _ASTModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embeddings = _ASTEmbeddings()
        self.encoder = _ASTEncoder()
        self.layernorm = nn.LayerNorm(DIM, eps=AST_EPS)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """(N, 128, 66) log-mel (mel bins first) -> (N, 2 + 12*6, D)."""
        e = self.embeddings
        x = e.patch_embeddings.projection(mel.unsqueeze(1)).flatten(2).transpose(1, 2)   # (N, f*t, D)
        n = x.shape[0]
        x = torch.cat((e.cls_token.expand(n, -1, -1), e.distillation_token.expand(n, -1, -1), x), dim=1)
        x = x + e.position_embeddings
        for layer in self.encoder.layer:
            x = layer(x)
        return self.layernorm(x)


class ASTFeatures(nn.Module):
    """Segment audio encoder: (N, 128, 66) normalised log-mel -> (N, 6, 768).

    AST over 12x6 patch tokens, then per time token a CLS pooling layer over its 12 frequency
    tokens.
    """

    def __init__(self) -> None:
        super().__init__()
        self.ast = _ASTModel()
        self.freq_attn_agg = ClsPoolLayer(DIM, MF_HEADS)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        n = mel.shape[0]
        x = self.ast(mel)[:, 2:]                                    # (N, f*t, D), frequency-major
        x = x.view(n, AST_F, AST_T, DIM).transpose(1, 2)            # (N, t, f, D)
        x = self.freq_attn_agg(x.reshape(n * AST_T, AST_F, DIM))     # (N*t, D)
        return x.view(n, AST_T, DIM)


# ---------------------------------------------------------------------------------------------
# Global (offset) transformer
# ---------------------------------------------------------------------------------------------
class _GPTAttention(nn.Module):
    def __init__(self, dim: int = DIM, n_heads: int = GT_HEADS) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.key = nn.Linear(dim, dim)
        self.query = nn.Linear(dim, dim)
        self.value = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = (_heads(f(x), self.n_heads) for f in (self.query, self.key, self.value))
        return self.proj(_merge(F.scaled_dot_product_attention(q, k, v)))


class _GPTBlock(nn.Module):
    def __init__(self, dim: int = DIM) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(dim)
        self.ln2 = nn.LayerNorm(dim)
        self.attn = _GPTAttention(dim)
        # indices 1 (GELU) and 3 (Dropout) hold no parameters; keys are mlp.0 and mlp.2
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class _PosEmb(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.pos_emb = nn.Parameter(torch.zeros(1, N_TOKENS, DIM))


class GlobalTransformer(nn.Module):
    """Offset classifier: v (G, 112, D), a (G, 84, D) -> logits (G, 21).

    ``x = [OFF, LN_v(v), MOD, LN_a(a)] + pos``; 3 pre-norm blocks; ``off_head(LN_f(x)[:, 0])``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.OFF_tok = nn.Parameter(torch.zeros(1, 1, DIM))
        self.MOD_tok = nn.Parameter(torch.zeros(1, 1, DIM))
        self.vis_in_lnorm = nn.LayerNorm(DIM)
        self.aud_in_lnorm = nn.LayerNorm(DIM)
        self.pos_emb_cfg = _PosEmb()
        self.blocks = nn.Sequential(*(_GPTBlock() for _ in range(GT_DEPTH)))
        self.ln_f = nn.LayerNorm(DIM)
        self.off_head = nn.Linear(DIM, N_OFFSETS)

    def forward(self, v: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        g = v.shape[0]
        off, mod = self.OFF_tok.expand(g, -1, -1), self.MOD_tok.expand(g, -1, -1)
        x = torch.cat((off, self.vis_in_lnorm(v), mod, self.aud_in_lnorm(a)), dim=1)     # (G, 198, D)
        if x.shape[1] != N_TOKENS:
            raise ValueError(f"global transformer expects {N_TOKENS} tokens (14 segments), got {x.shape[1]}")
        x = self.blocks(x + self.pos_emb_cfg.pos_emb)
        return self.off_head(self.ln_f(x[:, 0]))


class SynchformerNet(nn.Module):
    """The whole network; ``state_dict()`` matches ``synchformer_state_dict.pth`` key for key."""

    def __init__(self) -> None:
        super().__init__()
        self.vfeat_extractor = MotionFormer()
        self.afeat_extractor = ASTFeatures()
        self.vproj = nn.Linear(DIM, DIM)
        self.aproj = nn.Linear(DIM, DIM)
        self.transformer = GlobalTransformer()

    def extract_vfeats(self, segments: torch.Tensor) -> torch.Tensor:
        """(N, 16, 3, 224, 224) video segments in [-1, 1] -> (N, 8, 768)."""
        return self.vfeat_extractor(segments.permute(0, 2, 1, 3, 4))

    def extract_afeats(self, mel: torch.Tensor) -> torch.Tensor:
        """(N, 128, 66) normalised log-mel segments -> (N, 6, 768)."""
        return self.afeat_extractor(mel)

    def compare_v_a(self, vfeats: torch.Tensor, afeats: torch.Tensor) -> torch.Tensor:
        """(G, 14, 8, D) and (G, 14, 6, D) segment features -> (G, 21) offset logits."""
        v = self.vproj(vfeats).flatten(1, 2)        # (G, 112, D)
        a = self.aproj(afeats).flatten(1, 2)        # (G, 84, D)
        return self.transformer(v, a)
