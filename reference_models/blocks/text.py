"""The one tiny text encoder every family uses (spec §2.4, §1.8).

A deterministic word tokenizer (no download, nothing fitted): lower-cased words and punctuation;
the SynthAV caption vocabulary gets one id per word (sorted order), any other word is hashed with
blake2b into the remaining ids.  Then a small pre-norm Transformer.
Id 0 is padding, id 1 a leading ``[CLS]``-like start token that every sequence has, so the empty
caption (the null condition) is one valid token, never an all-masked row.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

import torch
from torch import nn

PAD_ID = 0
START_ID = 1
_N_SPECIAL = 2
_WORD_RE = re.compile(r"[a-z0-9]+|[^\sa-z0-9]")


def default_words() -> list[str]:
    """The SynthAV caption vocabulary (the closed word list the tiny presets are trained on)."""
    from reference_models.synthav.captions import vocabulary

    return vocabulary()


class WordTokenizer:
    """Word tokenizer: ``words[k] -> 2 + k``; any other word ``-> 2 + K + blake2b(word) mod (vocab_size − 2 − K)``.

    Args:
        vocab_size: number of ids including the two special ones.
        max_len: sequence length including the start token; longer captions are cut.
        words: the known words (default: the SynthAV caption vocabulary); ``[]`` hashes everything.
    """

    def __init__(self, vocab_size: int = 512, max_len: int = 64, words: list[str] | None = None) -> None:
        words = default_words() if words is None else list(words)
        if vocab_size <= _N_SPECIAL + len(words) or max_len < 1:
            raise ValueError(f"WordTokenizer needs vocab_size > {_N_SPECIAL + len(words)} (2 special ids + "
                             f"{len(words)} known words) and max_len >= 1, got {vocab_size}, {max_len}")
        self.vocab_size = vocab_size
        self.max_len = max_len
        self.known = {w: _N_SPECIAL + k for k, w in enumerate(words)}

    @staticmethod
    def words(text: str) -> list[str]:
        return _WORD_RE.findall(text.lower())

    def word_id(self, word: str) -> int:
        if word in self.known:
            return self.known[word]
        base = _N_SPECIAL + len(self.known)
        h = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")
        return base + h % (self.vocab_size - base)

    def __call__(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(ids (B, max_len) long, mask (B, max_len) bool)``; mask True on real tokens."""
        ids = torch.full((len(texts), self.max_len), PAD_ID, dtype=torch.long)
        for i, t in enumerate(texts):
            seq = [START_ID] + [self.word_id(w) for w in self.words(t)]
            seq = seq[: self.max_len]
            ids[i, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        return ids, ids != PAD_ID


@dataclass
class TextEncoding:
    """tokens (B, L, D); mask (B, L) bool, True = real token; pooled (B, D) masked mean."""

    tokens: torch.Tensor
    mask: torch.Tensor
    pooled: torch.Tensor

    def to(self, device: torch.device | str) -> "TextEncoding":
        return TextEncoding(self.tokens.to(device), self.mask.to(device), self.pooled.to(device))


class TinyTextEncoder(nn.Module):
    """Token + learned position embedding, ``depth`` pre-norm Transformer layers, final LayerNorm.

    Args:
        width: model width D; heads: attention heads; depth: layers; mlp_ratio: FFN width / D;
        vocab_size / max_len: the tokenizer's.
    Returns (forward): :class:`TextEncoding` with tokens ``(B, max_len, width)``.
    """

    def __init__(self, width: int = 64, depth: int = 2, heads: int = 4, mlp_ratio: float = 4.0,
                 vocab_size: int = 512, max_len: int = 64) -> None:
        super().__init__()
        self.tokenizer = WordTokenizer(vocab_size, max_len)
        self.width = width
        self.token_embedding = nn.Embedding(vocab_size, width)
        self.position_embedding = nn.Parameter(torch.zeros(1, max_len, width))
        layer = nn.TransformerEncoderLayer(width, heads, int(width * mlp_ratio), dropout=0.0, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.layers = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.position_embedding, std=0.02)

    def encode_ids(self, ids: torch.Tensor, mask: torch.Tensor) -> TextEncoding:
        """ids, mask (B, L) on the module's device -> :class:`TextEncoding`."""
        x = self.token_embedding(ids) + self.position_embedding[:, : ids.shape[1]]
        x = self.layers(x, src_key_padding_mask=~mask)
        x = self.norm(x)
        m = mask.unsqueeze(-1).to(x.dtype)
        pooled = (x * m).sum(1) / m.sum(1).clamp_min(1.0)
        return TextEncoding(x, mask, pooled)

    def forward(self, texts: list[str]) -> TextEncoding:
        ids, mask = self.tokenizer(list(texts))
        dev = self.token_embedding.weight.device
        return self.encode_ids(ids.to(dev), mask.to(dev))
