"""CLAP HTSAT-unfused: offline snapshot loading, zero-pad quirk, seeded crop, parity with the golden fixture.

The golden fixture (``tests/golden/clap``) ships a synthetic ``laion/clap-htsat-unfused`` snapshot
(``hf/``: config, processor and a small byte-level BPE tokenizer) without weights; the test
writes the filled weights as ``pytorch_model.bin`` (the file name of the released snapshot) and
loads the folder through ``ClapEncoder.load`` as a user's copy would be.  The fixture was made
with transformers 4.49; this runs whatever transformers is installed (5.x here), which is why the
padding mode is passed explicitly.  Tolerances are those of ``tests/golden/clap/README.md``:
tokens exact; mel features abs 3e-3 dB on cells > -90 dB, abs 3e-2 dB everywhere, -100 dB exactly
where the padded signal is silent; embeddings abs 1e-5; clap_score abs 5e-5 per clip and mean.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from javisbench.decode import DecodedClip, decode_sample  # noqa: E402
from javisbench.encoders.base import SampleError  # noqa: E402
from javisbench.encoders.clap import CLAP_WEIGHTS, ClapEncoder, crop_offset  # noqa: E402
from javisbench.golden import fill_value, fixture_keys, fixture_seed  # noqa: E402
from javisbench.protocol import FIXED, OFFICIAL  # noqa: E402
from javisbench.weights import BadWeightsError, MissingWeightsError  # noqa: E402
from metrics.similarity import cosine  # noqa: E402

GOLDEN = Path(__file__).resolve().parent.parent / "golden"
FIXTURE = GOLDEN / "clap"
HF = FIXTURE / "hf"
INPUTS = GOLDEN / "inputs"
MEL_ABS_LOUD, MEL_ABS_ALL = 3e-3, 3e-2
EMB_ABS = 1e-5
SCORE_ABS = 5e-5
WAVE_ABS = 1e-6
HOP, N_FFT = 480, 1024


def golden_state() -> dict[str, "torch.Tensor"]:
    """The fixture checkpoint: fill rule for parameters, buffers.npz for buffers, official order/shapes."""
    seed = fixture_seed(FIXTURE)
    buffers = np.load(FIXTURE / "buffers.npz")
    out = {}
    for name, shape, kind in fixture_keys(FIXTURE):
        value = fill_value(name, shape, seed) if kind == "param" else buffers[name]
        out[name] = torch.from_numpy(np.array(value).reshape(shape))   # 0-d stays 0-d
    return out


def snapshot(folder: Path, config: dict | None = None) -> Path:
    """A ``clap-htsat-unfused`` folder with the fixture's processor/tokenizer files (no weights)."""
    folder.mkdir(parents=True, exist_ok=True)
    for f in HF.iterdir():
        shutil.copy(f, folder / f.name)
    if config is not None:
        (folder / "config.json").write_text(json.dumps(config))
    return folder


def tiny_config(**audio: object) -> dict:
    """The fixture config with a tiny text/audio tower (same tokenizer and mel front end)."""
    cfg = json.loads((HF / "config.json").read_text())
    cfg["text_config"].update(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)
    cfg["audio_config"].update(depths=[1, 1, 1, 1], num_attention_heads=[1, 1, 1, 1],
                               patch_embeds_hidden_size=8, hidden_size=64, **audio)
    cfg["projection_dim"] = 16
    return cfg


def tiny_weights_dir(root: Path, drop: str | None = None, **audio: object) -> Path:
    from safetensors.torch import save_file
    from transformers import ClapConfig, ClapModel

    folder = snapshot(root / CLAP_WEIGHTS.name, tiny_config(**audio))
    torch.manual_seed(0)
    model = ClapModel(ClapConfig.from_pretrained(str(folder)))
    state = {k: v.contiguous() for k, v in model.state_dict().items() if k != drop}
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    return root


@pytest.fixture(scope="module")
def expected() -> tuple[dict, dict]:
    info = json.loads((FIXTURE / "expected.json").read_text())
    npz = np.load(FIXTURE / "expected.npz")
    return info, {k: npz[k] for k in npz.files}


@pytest.fixture(scope="module")
def fill_state() -> dict[str, "torch.Tensor"]:
    return golden_state()


@pytest.fixture(scope="module")
def clap_weights_dir(tmp_path_factory: pytest.TempPathFactory, fill_state: dict) -> Path:
    root = tmp_path_factory.mktemp("clap-weights")
    folder = snapshot(root / CLAP_WEIGHTS.name)
    torch.save(fill_state, folder / "pytorch_model.bin")
    return root


@pytest.fixture(scope="module")
def clap_encoder(clap_weights_dir: Path) -> ClapEncoder:
    enc = ClapEncoder(OFFICIAL, device="cpu", batch_size=4)
    enc.load(clap_weights_dir)
    return enc


@pytest.fixture(scope="module")
def golden_clips(expected: tuple[dict, dict]) -> list[DecodedClip]:
    return [decode_sample(INPUTS / f"{c['name']}.mp4", INPUTS / f"{c['name']}.wav", sample_id=c["name"])
            for c in expected[0]["per_clip"]]


@pytest.fixture(scope="module")
def golden_prepared(clap_encoder: ClapEncoder, golden_clips: list[DecodedClip],
                    expected: tuple[dict, dict]) -> list[dict]:
    # no audio_text column in the fixture: the audio prompt is the caption
    return [clap_encoder.prepare(clip, c["caption"], "") for clip, c in zip(golden_clips, expected[0]["per_clip"])]


@pytest.fixture(scope="module")
def golden_features(clap_encoder: ClapEncoder, golden_prepared: list[dict]) -> list[dict]:
    return clap_encoder.encode(golden_prepared)   # batches of 4 + 3 clips


# ---------------------------------------------------------------------------------------------
# loading
# ---------------------------------------------------------------------------------------------
def test_loaded_weights_are_the_checkpoint(clap_encoder: ClapEncoder, fill_state: dict) -> None:
    loaded = clap_encoder.model.state_dict()
    ref = fill_state
    # same keys; transformers 5 declares some submodules in another order than 4.49 did, so the
    # state-dict *order* differs from keys.json (loading is by name, so it does not matter)
    assert sorted(loaded) == sorted(ref)
    for name, value in ref.items():
        assert torch.equal(loaded[name].to(value.dtype), value), name
    assert clap_encoder.model.config.text_config.layer_norm_eps == 1e-12   # read from hf/config.json
    assert len(clap_encoder.tokenizer) == 400 and clap_encoder.max_text_tokens == 512


def test_missing_weights_name_the_folder_and_file(tmp_path: Path) -> None:
    with pytest.raises(MissingWeightsError, match="clap-htsat-unfused"):
        ClapEncoder(OFFICIAL).load(tmp_path)
    snapshot(tmp_path / CLAP_WEIGHTS.name)
    with pytest.raises(MissingWeightsError, match="pytorch_model.bin"):
        ClapEncoder(OFFICIAL).load(tmp_path)


def test_empty_tokenizer_is_refused(tmp_path: Path, clap_weights_dir: Path) -> None:
    folder = snapshot(tmp_path / CLAP_WEIGHTS.name)
    (folder / "pytorch_model.bin").symlink_to(clap_weights_dir / CLAP_WEIGHTS.name / "pytorch_model.bin")
    # what an offline lookup of a missing vocabulary leaves: the 5 special tokens, no merges
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(specials)}))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    (folder / "tokenizer.json").unlink()
    with pytest.raises(BadWeightsError, match="5 tokens but the text model expects 400"):
        ClapEncoder(OFFICIAL).load(tmp_path)


def test_missing_parameter_and_bad_file_are_refused(tmp_path: Path) -> None:
    tiny_weights_dir(tmp_path / "a", drop="text_projection.linear1.weight")
    with pytest.raises(BadWeightsError, match="text_projection.linear1.weight"):
        ClapEncoder(OFFICIAL).load(tmp_path / "a")
    folder = snapshot(tmp_path / "b" / CLAP_WEIGHTS.name, tiny_config())
    (folder / "model.safetensors").write_bytes(b"truncated")
    with pytest.raises(BadWeightsError, match=r"model\.safetensors \(9 bytes, sha256 [0-9a-f]{64}\) cannot be used: "
                       r"it is not a safetensors file"):
        ClapEncoder(OFFICIAL).load(tmp_path / "b")


def test_fusion_checkpoint_is_refused(tmp_path: Path) -> None:
    folder = snapshot(tmp_path / CLAP_WEIGHTS.name, tiny_config(enable_fusion=True))
    (folder / "model.safetensors").write_bytes(b"")
    with pytest.raises(BadWeightsError, match="enable_fusion"):
        ClapEncoder(OFFICIAL).load(tmp_path)


# ---------------------------------------------------------------------------------------------
# inputs
# ---------------------------------------------------------------------------------------------
def test_48k_waveform_is_the_librosa_one(clap_encoder: ClapEncoder, golden_clips: list[DecodedClip],
                                         expected: tuple[dict, dict]) -> None:
    for clip, c in zip(golden_clips, expected[0]["per_clip"]):
        wave = clap_encoder.waveform(clip)
        ref = c["waveform_48k"]
        # (the fixture's waveform_48k.n_samples repeats one clip's length; the padding record has each)
        assert wave.shape == (c["effective_padding"]["n_audio_samples_48k"],), c["name"]
        np.testing.assert_allclose(wave[:8], ref["first8"], rtol=0, atol=WAVE_ABS)
        assert abs(float(wave.mean()) - ref["mean"]) < WAVE_ABS and abs(float(wave.std()) - ref["std"]) < WAVE_ABS


def test_tokens_are_exact(golden_prepared: list[dict], expected: tuple[dict, dict]) -> None:
    info, npz = expected
    for item, c in zip(golden_prepared, info["per_clip"]):
        assert item["input_ids"].tolist() == c["input_ids"] == npz[f"input_ids__{c['name']}"][0].tolist()


def test_mel_features_zero_padded(golden_prepared: list[dict], expected: tuple[dict, dict]) -> None:
    info, npz = expected
    for item, c in zip(golden_prepared, info["per_clip"]):
        ref = npz[f"input_features__{c['name']}"][0]            # (1, 1001, 64)
        got = item["input_features"]
        assert got.shape == ref.shape == (1, 1001, 64) and got.dtype == np.float32
        assert item["is_longer"].tolist() == [False]
        loud = ref > -90
        assert np.abs(got - ref)[loud].max() <= MEL_ABS_LOUD, c["name"]
        assert np.abs(got - ref).max() <= MEL_ABS_ALL, c["name"]
        # frames whose (centred) window lies wholly in the zero padding are exactly -100 dB
        n = c["effective_padding"]["n_audio_samples_48k"]
        silent_from = -(-(n + N_FFT // 2) // HOP)
        assert silent_from < 1001 and (got[0, silent_from:] == -100.0).all()


def test_repeat_pad_is_the_configured_repeatpad(clap_weights_dir: Path, golden_clips: list[DecodedClip],
                                                golden_features: list[dict], expected: tuple[dict, dict]) -> None:
    """``clap_pad="repeat"`` reproduces the fixture's diagnostic repeat-pad score (not an official number)."""
    info = expected[0]
    enc = ClapEncoder(OFFICIAL.replace(clap_pad="repeat"), batch_size=4)
    enc.load(clap_weights_dir)
    pick = [0, 4, 5]                  # 4 s (tiled twice), 2 s (tiled 5 times), 5.3 s (fits once: no tiling)
    feats = enc.encode([enc.prepare(golden_clips[i], info["per_clip"][i]["caption"], "") for i in pick])
    for i, f in zip(pick, feats):
        c = info["per_clip"][i]
        score = float(cosine(f["text_embeds"], f["audio_embeds"]))
        assert abs(score - c["diagnostic_clap_score_if_repeatpad_were_applied"]) < SCORE_ABS, c["name"]
        official = float(cosine(golden_features[i]["text_embeds"], golden_features[i]["audio_embeds"]))
        if c["effective_padding"]["repeatpad_would_tile"] > 1:
            assert abs(score - official) > 10 * SCORE_ABS, c["name"]
        else:
            assert abs(score - official) < SCORE_ABS, c["name"]


def test_long_clip_gets_a_seeded_crop(clap_encoder: ClapEncoder) -> None:
    rng = np.random.default_rng(3)
    audio = (0.1 * rng.standard_normal((2, 48000 * 12))).astype(np.float32)   # 12 s stereo at 48 kHz
    clip = DecodedClip("long", np.zeros((1, 8, 8, 3), np.uint8), 24.0, audio, 48000, "hash-a")
    a = clap_encoder.prepare(clip, "a prompt", "")
    b = clap_encoder.prepare(clip, "a prompt", "")
    assert a["is_longer"].tolist() == [True]
    np.testing.assert_array_equal(a["input_features"], b["input_features"])   # deterministic
    start = crop_offset(audio.shape[1], 480000, OFFICIAL.seed, "hash-a")
    mono = audio.mean(axis=0, dtype=np.float32)
    ref = clap_encoder.feature_extractor(mono[start:start + 480000].astype(np.float64), padding="pad",
                                         sampling_rate=48000, return_tensors="np")["input_features"][0]
    np.testing.assert_array_equal(a["input_features"], ref.astype(np.float32))


def test_crop_offset() -> None:
    assert crop_offset(480000, 480000, 0, "k") == 0 and crop_offset(1000, 480000, 0, "k") == 0
    offsets = {crop_offset(600000, 480000, s, k) for s in range(5) for k in ("a", "b", "c")}
    assert all(0 <= o <= 120000 for o in offsets) and len(offsets) > 1
    assert crop_offset(600000, 480000, 1, "a") == crop_offset(600000, 480000, 1, "a")


def test_prompt_routing_and_checks(clap_encoder: ClapEncoder, golden_clips: list[DecodedClip]) -> None:
    clip = golden_clips[4]
    with_audio_text = clap_encoder.prepare(clip, "a video prompt", "a sound")
    only_text = clap_encoder.prepare(clip, "a sound", "")
    assert with_audio_text["input_ids"].tolist() == only_text["input_ids"].tolist()
    with pytest.raises(SampleError, match="at most 512"):
        clap_encoder.prepare(clip, "a sound " * 400, "")
    for audio in (np.zeros((1, 0), np.float32), np.full((1, 100), np.nan, np.float32), np.zeros(100, np.float32)):
        bad = DecodedClip("bad_audio", clip.frames[:1], 24.0, audio, 16000, "h")
        with pytest.raises(SampleError, match="bad_audio"):
            clap_encoder.prepare(bad, "a sound", "")
    with pytest.raises(RuntimeError, match="load"):
        ClapEncoder(OFFICIAL).prepare(clip, "a sound", "")


# ---------------------------------------------------------------------------------------------
# embeddings and score
# ---------------------------------------------------------------------------------------------
def test_golden_embeddings(golden_features: list[dict], expected: tuple[dict, dict]) -> None:
    info, npz = expected
    for f, c in zip(golden_features, info["per_clip"]):
        for key in ("text_embeds", "audio_embeds"):
            assert f[key].shape == (512,) and f[key].dtype == np.float32
            np.testing.assert_allclose(f[key], npz[f"{key}__{c['name']}"][0], rtol=0, atol=EMB_ABS, err_msg=c["name"])


def test_golden_clap_score(golden_features: list[dict], expected: tuple[dict, dict]) -> None:
    info, npz = expected
    scores = np.array([float(cosine(f["text_embeds"], f["audio_embeds"])) for f in golden_features])
    np.testing.assert_allclose(scores, npz["clap_score"], rtol=0, atol=SCORE_ABS)
    np.testing.assert_allclose(scores, [c["clap_score"] for c in info["per_clip"]], rtol=0, atol=SCORE_ABS)
    assert abs(scores.mean() - info["clap_score"]) < SCORE_ABS


def test_resampler_follows_the_protocol(golden_clips: list[DecodedClip]) -> None:
    import resampy
    import soxr

    clip = golden_clips[6]                          # 44.1 kHz stereo wav: mean of channels first
    x = clip.audio.mean(axis=0, dtype=np.float32)
    n = int(np.ceil(x.shape[0] * 48000 / 44100))
    official = ClapEncoder(OFFICIAL).waveform(clip)   # the waveform view needs no weights
    fixed = ClapEncoder(FIXED).waveform(clip)
    assert official.shape == fixed.shape == (n,)
    kaiser = resampy.resample(x, 44100, 48000, filter="kaiser_best")
    np.testing.assert_allclose(official[:kaiser.shape[0]], kaiser, rtol=0, atol=1e-7)
    np.testing.assert_allclose(fixed, soxr.resample(x, 44100, 48000, quality="soxr_hq")[:n], rtol=0, atol=1e-7)
    assert np.abs(official - fixed).max() > 1e-4


def test_batch_padding_does_not_change_embeddings(tmp_path: Path, golden_clips: list[DecodedClip]) -> None:
    enc = ClapEncoder(OFFICIAL, batch_size=3)
    enc.load(tiny_weights_dir(tmp_path))
    prompts = ["a dog barks", "a red square and a blue disc bounce around while short beeps play", "hum"]
    items = [enc.prepare(clip, p, "") for clip, p in zip(golden_clips[:3], prompts)]
    together = enc.encode(items)
    for item, feats in zip(items, together):
        alone = enc.encode([item])[0]
        for key in ("text_embeds", "audio_embeds"):
            np.testing.assert_allclose(feats[key], alone[key], rtol=0, atol=1e-6)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu(clap_weights_dir: Path, golden_prepared: list[dict], golden_features: list[dict]) -> None:
    enc = ClapEncoder(OFFICIAL, device="cuda", batch_size=4)
    enc.load(clap_weights_dir)
    assert next(enc.model.parameters()).device.type == "cuda"
    for got, ref in zip(enc.encode(golden_prepared), golden_features):
        for key in ("text_embeds", "audio_embeds"):
            # TF32/cuDNN kernels: looser than the CPU parity bound
            np.testing.assert_allclose(got[key], ref[key], rtol=0, atol=1e-3)
