"""CLAP (LAION ``clap-htsat-unfused``): audio and audio-prompt embeddings for ``clap_score``.

The official evaluator loads ``ClapModel`` and ``AutoProcessor`` from the Hugging Face snapshot
``laion/clap-htsat-unfused`` (HTSAT-tiny audio tower, RoBERTa-base text tower, no fusion, 512-d
projections) and scores one sample at a time in fp32.  We load the same classes from a local
copy of that snapshot, strictly offline, and batch across samples.

Per sample (``prepare``)::

    a   = mean over channels of the audio, resampled to 48 kHz         # librosa.load(sr=48000)
          (protocol.resample: "kaiser_best" = librosa 0.9.2 / resampy)  # untruncated
    if len(a) > 480000:  a = a[o : o + 480000],  o ~ U{0 .. len(a)-480000}   # seeded, see below
    if len(a) < 480000:  zero-pad to 480000      (protocol.clap_pad == "zero", the official)
                         or tile int(480000/len(a)) times, then zero-pad  ("repeat": the
                         checkpoint's configured "repeatpad")
    mel = 10 log10(max(|STFT|^2 @ slaney_mel, 1e-10))    # Hann 1024, hop 480, 64 bins 50-14000 Hz
                                                         # (1001, 64), float64 numpy -> float32
    ids = RoBERTa BPE of the audio prompt, <s> ... </s>, no truncation

and ``encode`` runs ``ClapModel`` on a batch (prompts padded with ``<pad>`` + attention mask):
``text_embeds``, ``audio_embeds`` (512,) each, L2-normalised as ``ClapModel.forward`` returns
them.  The metric is ``clap_score = cos(text_embeds, audio_embeds)``.

Official behaviour reproduced, and checks:

* **Zero padding.**  The original calls the processor with ``padding=True``, which transformers
  4.49 forwards to the feature extractor, where it *replaces* the configured ``"repeatpad"``
  and selects plain zero padding (``protocol.clap_pad == "zero"``).  transformers 5 maps
  ``padding=True`` back to the configured value instead, so we always pass the padding mode
  explicitly ("pad" or "repeatpad") and never rely on either version's default.
* **Random crop of clips over 10 s.**  The original crops with the unseeded global
  ``np.random.randint`` inside the feature extractor, so its numbers for such clips are not
  reproducible.  We crop before the feature extractor with a generator seeded from
  ``protocol.clap_crop_seed`` and the sample's content hash, under both protocols (the crop *rule* is the
  original's; the offset cannot match a particular official run).  ``protocol.clap_crop_seeded``
  (false under ``javisbench-official``) records that the original is unseeded; it does not
  switch our seeding off.
* **Model files.**  Only the unfused model is accepted (a fusion config is refused), absent
  parameters are refused (transformers would initialise them at random and only log it), and the
  tokenizer must have the text model's vocabulary size (offline, a missing vocabulary can load as
  a silently empty 5-token tokenizer).
"""
from __future__ import annotations

import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from javisbench.encoders.base import Encoder, Features, Prepared, SampleError
from javisbench.weights import BadWeightsError, MissingWeightsError, WeightFile, sha256_of

if TYPE_CHECKING:  # pragma: no cover
    from javisbench.decode import DecodedClip

CLAP_WEIGHTS = WeightFile(
    name="clap-htsat-unfused",
    url="https://huggingface.co/laion/clap-htsat-unfused",
    license="Apache-2.0",
    kind="dir",
    members=("config.json", "preprocessor_config.json", "tokenizer_config.json", "vocab.json", "merges.txt"),
    note="a local copy of the Hugging Face snapshot (revision 8fa0f1c6d0433df6e97c127f64b2a1d6c0dcda8a): "
    "config, processor and tokenizer files plus pytorch_model.bin or model.safetensors",
)

#: Checkpoint files transformers reads, in its order of preference.
MODEL_FILES = ("model.safetensors", "pytorch_model.bin")
#: Padding mode of the feature extractor for each ``protocol.clap_pad``.
PAD_MODES = {"zero": "pad", "repeat": "repeatpad"}


def crop_offset(n_samples: int, max_samples: int, seed: int, key: str) -> int:
    """Start of the 10 s crop of an over-long clip: ``U{0 .. n - max}``, seeded by (seed, key).

    The original draws ``np.random.randint(0, n - max + 1)`` from the unseeded global generator;
    here the draw comes from ``default_rng([seed, crc32(key)])`` so a sample always gets the same
    crop.  Returns 0 when the clip is not longer than ``max_samples``.

    Example:
        >>> crop_offset(100, 200, 0, "a"), crop_offset(300, 200, 0, "a") == crop_offset(300, 200, 0, "a")
        (0, True)
    """
    overflow = int(n_samples) - int(max_samples)
    if overflow <= 0:
        return 0
    rng = np.random.default_rng([int(seed), zlib.crc32(key.encode("utf-8"))])
    return int(rng.integers(0, overflow + 1))


class ClapEncoder(Encoder):
    """CLAP HTSAT-unfused embeddings of the 48 kHz audio and of the audio prompt, for ``clap_score``.

    ``prepare`` -> ``{"input_features": float32 (1, 1001, 64), "is_longer": bool (1,),
    "input_ids": int64 (L,)}``; ``encode`` -> ``{"text_embeds": float32 (512,),
    "audio_embeds": float32 (512,)}``, L2-normalised as ``ClapModel.forward`` gives them.
    """

    id = "clap"
    protocol_fields = ('clap_pad', 'clap_sr', 'clap_crop_seed', 'resample')
    outputs = {'text_embeds': '(512,)', 'audio_embeds': '(512,)'}
    version = "1"
    weight_files = (CLAP_WEIGHTS,)
    uses_text = True
    description = "LAION CLAP HTSAT-unfused audio and audio-prompt embeddings (transformers ClapModel), clap_score"

    def __init__(self, protocol: Any, device: str = "cpu", batch_size: int = 8) -> None:
        super().__init__(protocol, device, batch_size)
        self.model: Any = None
        self.tokenizer: Any = None
        self.feature_extractor: Any = None
        self.max_text_tokens = 0
        if protocol.clap_pad not in PAD_MODES:
            raise ValueError(
                f"protocol {protocol.name}: clap_pad must be one of {sorted(PAD_MODES)}, got {protocol.clap_pad!r}"
            )

    # -- weights ------------------------------------------------------------------------------
    def load(self, weights_dir: Path) -> None:
        import torch
        from transformers import AutoTokenizer, ClapConfig, ClapFeatureExtractor, ClapModel

        folder = self.weight_paths(Path(weights_dir))[CLAP_WEIGHTS.name]
        if not any((folder / f).is_file() for f in MODEL_FILES):
            raise MissingWeightsError(self.id, CLAP_WEIGHTS, folder, f"no {' or '.join(MODEL_FILES)} inside")
        try:
            config = ClapConfig.from_pretrained(str(folder), local_files_only=True)
        except (OSError, ValueError) as exc:
            raise BadWeightsError(f"{folder}/config.json: not a CLAP config ({exc})") from exc
        audio_cfg, text_cfg = config.audio_config, config.text_config
        if audio_cfg.enable_fusion:
            raise BadWeightsError(f"{folder}: a fusion CLAP checkpoint (audio_config.enable_fusion=true); "
                                  "clap_score uses laion/clap-htsat-unfused (enable_fusion=false)")
        # cheap checks first: tokenizer and feature extractor, then the weights
        tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        # offline, a missing vocabulary can yield a silently empty tokenizer (5 special tokens)
        vocab = int(text_cfg.vocab_size)
        if len(tokenizer) != vocab:
            raise BadWeightsError(
                f"{folder}: the tokenizer has {len(tokenizer)} tokens but the text model expects {vocab} "
                "(vocab.json / merges.txt / tokenizer.json missing or from another model?)"
            )
        if tokenizer.pad_token_id != text_cfg.pad_token_id:
            raise BadWeightsError(f"{folder}: tokenizer pad id {tokenizer.pad_token_id} != config pad id "
                                  f"{text_cfg.pad_token_id}")
        fe = ClapFeatureExtractor.from_pretrained(str(folder), local_files_only=True)
        n_mels = int(audio_cfg.num_mel_bins)
        if int(fe.sampling_rate) != int(self.protocol.clap_sr) or int(fe.feature_size) != n_mels:
            raise BadWeightsError(
                f"{folder}/preprocessor_config.json: expected sampling_rate {self.protocol.clap_sr} and "
                f"feature_size {n_mels}, got {fe.sampling_rate} and {fe.feature_size}"
            )
        if fe.truncation != "rand_trunc":
            raise BadWeightsError(f"{folder}/preprocessor_config.json: expected truncation 'rand_trunc' "
                                  f"(unfused model), got {fe.truncation!r}")
        from javisbench.encoders.checkpoints import check_weights_file

        for name in MODEL_FILES:     # size and format first: transformers' own errors are less clear
            if (folder / name).is_file():
                check_weights_file(folder / name, self.id, CLAP_WEIGHTS,
                                   formats=("safetensors",) if name.endswith(".safetensors") else ("zip", "pickle"))
        try:
            model, info = ClapModel.from_pretrained(
                str(folder), config=config, local_files_only=True, output_loading_info=True, dtype=torch.float32
            )
        except Exception as exc:  # noqa: BLE001  (torch, safetensors and transformers raise many types)
            raise BadWeightsError(f"{folder}: could not load the CLAP weights ({exc})") from exc
        # transformers fills absent weights with random init and only logs it: refuse instead
        params = {name for name, _ in model.named_parameters()}
        missing = sorted(k for k in info.get("missing_keys", ()) if k in params)
        unexpected = sorted(info.get("unexpected_keys", ()))
        misshaped = [str(k) for k in info.get("mismatched_keys", ())]
        problems = [f"{len(keys)} {label} ({', '.join(keys[:5])}{', ...' if len(keys) > 5 else ''})"
                    for label, keys in (("missing parameters", missing), ("unexpected keys", unexpected),
                                        ("wrong shapes", misshaped)) if keys]
        if problems:
            raise BadWeightsError(f"{folder} does not match ClapModel: " + "; ".join(problems))

        self.model = model.to(self.device).eval()
        self.tokenizer, self.feature_extractor = tokenizer, fe
        # RoBERTa positions start after the pad id: 514 positions hold 512 tokens
        self.max_text_tokens = int(model.config.text_config.max_position_embeddings) - int(tokenizer.pad_token_id) - 1
        self.weights_sha256[CLAP_WEIGHTS.name] = sha256_of(folder)

    # -- data -----------------------------------------------------------------------------------
    def waveform(self, clip: "DecodedClip") -> np.ndarray:
        """The 48 kHz mono float32 waveform the original feeds CLAP (L,), untruncated."""
        from javisbench import views

        audio = np.asarray(clip.audio)
        if audio.ndim != 2 or audio.shape[1] == 0:
            raise SampleError(
                f"sample {clip.sample_id}: expected audio (channels, samples>=1), got shape {audio.shape}"
            )
        if not np.isfinite(audio).all():
            raise SampleError(f"sample {clip.sample_id}: audio has NaN/inf samples")
        x = np.asarray(views.mono(audio), dtype=np.float32).reshape(-1)
        sr = int(self.protocol.clap_sr)
        if int(clip.sr) != sr:
            x = np.asarray(views.resample(x, int(clip.sr), sr, self.protocol.resample), dtype=np.float32).reshape(-1)
        return x

    def prepare(self, clip: "DecodedClip", text: str, audio_text: str) -> Prepared:
        if self.feature_extractor is None or self.tokenizer is None:
            raise RuntimeError("ClapEncoder.prepare called before load() (the processor files live in the weights dir)")
        prompt = audio_text if audio_text else text
        if not isinstance(prompt, str):
            raise SampleError(f"sample {clip.sample_id}: expected an audio prompt string, got {type(prompt).__name__}")
        wave = self.waveform(clip)
        fe = self.feature_extractor
        max_samples = int(fe.nb_max_samples)
        key = clip.content_hash or clip.sample_id
        start = crop_offset(wave.shape[0], max_samples, self.protocol.clap_crop_seed, key)
        longer = wave.shape[0] > max_samples
        wave = wave[start:start + max_samples]
        # the original's processor computes the mel in float64 from the float32 samples
        feats = fe(wave.astype(np.float64), padding=PAD_MODES[self.protocol.clap_pad], max_length=max_samples,
                   sampling_rate=int(self.protocol.clap_sr), return_tensors="np")
        mel = np.asarray(feats["input_features"], dtype=np.float32)[0]     # (1, 1001, 64)
        ids = np.asarray(self.tokenizer(prompt)["input_ids"], dtype=np.int64)
        if ids.shape[0] > self.max_text_tokens:
            raise SampleError(
                f"sample {clip.sample_id}: the audio prompt has {ids.shape[0]} tokens; CLAP's text encoder "
                f"takes at most {self.max_text_tokens} (the original does not truncate and fails too)"
            )
        return {"input_features": mel, "is_longer": np.array([longer]), "input_ids": ids}

    def encode(self, batch: list[Prepared]) -> list[Features]:
        import torch

        if self.model is None:
            raise RuntimeError("ClapEncoder.encode called before load()")
        shape = batch[0]["input_features"].shape if batch else None
        for i, item in enumerate(batch):
            if item["input_features"].shape != shape or item["input_features"].ndim != 3:
                raise ValueError(f"CLAP batch item {i}: expected input_features like item 0 {shape}, "
                                 f"got {item['input_features'].shape}")
        pad = int(self.tokenizer.pad_token_id)
        out: list[Features] = []
        step = max(self.batch_size, 1)
        with torch.inference_mode():
            for start in range(0, len(batch), step):
                chunk = batch[start:start + step]
                width = max(item["input_ids"].shape[0] for item in chunk)
                ids = np.full((len(chunk), width), pad, dtype=np.int64)
                mask = np.zeros((len(chunk), width), dtype=np.int64)
                for j, item in enumerate(chunk):
                    ids[j, :item["input_ids"].shape[0]] = item["input_ids"]
                    mask[j, :item["input_ids"].shape[0]] = 1
                res = self.model(
                    input_ids=torch.from_numpy(ids).to(self.device),
                    attention_mask=torch.from_numpy(mask).to(self.device),
                    input_features=torch.from_numpy(np.stack([it["input_features"] for it in chunk])).to(self.device),
                    is_longer=torch.from_numpy(np.stack([it["is_longer"] for it in chunk])).to(self.device),
                )
                text = res.text_embeds.float().cpu().numpy()     # (B, 512), unit norm
                audio = res.audio_embeds.float().cpu().numpy()   # (B, 512), unit norm
                out.extend({"text_embeds": np.ascontiguousarray(t, dtype=np.float32),
                            "audio_embeds": np.ascontiguousarray(a, dtype=np.float32)}
                           for t, a in zip(text, audio))
        return out
