"""Audiobox-Aesthetics: the official reader's quirks, windowing, strict loading, golden parity.

The golden fixture (``tests/golden/audiobox``) was made by the real ``audiobox-aesthetics`` 0.0.4
predictor inside the official ``calc_audio_quality_score`` (``max_audio_len_s=4.0``, 7 clips in
one forward, fp32 CPU).  The test writes the filled weights as a hub snapshot
(``config.json`` from ``hf/`` + ``model.safetensors``) and loads it through
``AudioboxEncoder.load`` as a user's copy would be.  Tolerances are those of
``tests/golden/audiobox/README.md``: waveform exact at 16 kHz and abs 1e-7 for the 44.1 kHz
clip; pooled embeddings and normalised predictions abs 1e-5; axes abs 2e-5; audio_quality abs
1e-5 per clip and for the mean.  The fixed-protocol checks compare with the effects the README
documents for each quirk (measured there with the original code, quoted to two digits).
"""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")

from javisbench import views  # noqa: E402
from javisbench.decode import DecodedClip, decode_sample  # noqa: E402
from javisbench.encoders.audiobox import (  # noqa: E402
    AUDIOBOX_WEIGHTS,
    AXES,
    AudioboxEncoder,
    fixed_waveform,
    make_windows,
    official_reader,
    official_waveform,
    wrong_axis_gains,
)
from javisbench.encoders.audiobox_net import (  # noqa: E402
    AesConfig,
    BadConfigError,
    WavLM,
    canonical_key,
    relative_position_buckets,
)
from javisbench.encoders.base import SampleError  # noqa: E402
from javisbench.golden import torch_state_dict  # noqa: E402
from javisbench.protocol import FIXED, OFFICIAL  # noqa: E402
from javisbench.weights import BadWeightsError, MissingWeightsError  # noqa: E402

GOLDEN = Path(__file__).resolve().parent.parent / "golden"
FIXTURE = GOLDEN / "audiobox"
INPUTS = GOLDEN / "inputs"
EMB_ABS, PRED_ABS, AXES_ABS, AQ_ABS, WAVE_44K_ABS = 1e-5, 1e-5, 2e-5, 1e-5, 1e-7


def clip_from(audio: np.ndarray, sr: int, sample_id: str = "synthetic") -> DecodedClip:
    frames = np.zeros((1, 8, 8, 3), np.uint8)
    return DecodedClip(sample_id=sample_id, frames=frames, fps=24.0, audio=audio.astype(np.float32), sr=sr,
                       content_hash=sample_id)


# ------------------------------------------------------------------------------------------------
# reader, windows, buckets: no model
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("sr", [44100, 48000, 32000, 22050, 8000, 11025])
def test_wrong_axis_gains_are_the_resampler_on_a_length_one_axis(sr: int) -> None:
    """The torchaudio resampler run on an (L, 1) array keeps every sample, scaled per output phase."""
    x = np.random.default_rng(0).uniform(-1, 1, size=(37, 1)).astype(np.float32)
    literal = views.resample(x, sr, 16000, "sinc_hann")            # resamples the length-1 last axis
    gains = wrong_axis_gains(sr)
    assert literal.shape == (37, gains.shape[0])
    if gains.shape[0] == 1:   # downsampling: the sample times the kernel's centre tap, bit for bit
        np.testing.assert_array_equal(literal, x * gains[None, :])
    else:                     # views builds the kernel in float32, the transform in float64
        np.testing.assert_allclose(literal, x * gains[None, :], rtol=2e-6, atol=1e-7)


def test_wrong_axis_gain_44k_is_the_documented_constant() -> None:
    assert wrong_axis_gains(44100).tolist() == [np.float32(0.99 * 16000 / 44100)]
    assert abs(float(wrong_axis_gains(44100)[0]) - 0.3591837) < 1e-7
    assert wrong_axis_gains(16000).tolist() == [1.0]


def test_official_waveform_44k_stereo_truncates_without_resampling() -> None:
    rng = np.random.default_rng(1)
    left = rng.uniform(-0.5, 0.5, 70560).astype(np.float32)              # 1.6 s at 44.1 kHz
    audio = np.stack([left, 0.8 * left]).astype(np.float32)
    wave = official_waveform(audio, 44100, 64000)
    expect = views.mono(audio)[:64000] * np.float32(0.99 * 16000 / 44100)
    assert wave.shape == (64000,) and wave.dtype == np.float32
    np.testing.assert_array_equal(wave, expect)


def test_official_pads_with_counted_zeros_fixed_does_not() -> None:
    audio = np.full((1, 32000), 0.25, np.float32)                          # 2 s at 16 kHz
    off = official_waveform(audio, 16000, 64000)
    fix = fixed_waveform(audio, 16000, 64000)
    assert off.shape == (64000,) and np.all(off[:32000] == 0.25) and np.all(off[32000:] == 0)
    assert fix.shape == (32000,) and np.all(fix == 0.25)
    # fixed: resampled along time (length ceil(L*160/441)), truncated to N
    fix44 = fixed_waveform(np.ones((2, 44100 * 5), np.float32), 44100, 64000)
    assert fix44.shape == (64000,)
    assert abs(float(fix44[32000]) - 1.0) < 1e-3


def test_prepare_follows_the_protocol() -> None:
    clip = clip_from(np.full((2, 20000), 0.5, np.float32), 16000)
    off = AudioboxEncoder(OFFICIAL).prepare(clip, "", "")["wave"]
    fix = AudioboxEncoder(FIXED).prepare(clip, "", "")["wave"]
    assert official_reader(OFFICIAL) and not official_reader(FIXED)
    assert off.shape == (64000,) and fix.shape == (20000,)
    longer = AudioboxEncoder(OFFICIAL.replace(max_audio_len_s=12.0)).prepare(clip, "", "")["wave"]
    assert longer.shape == (192000,)


@pytest.mark.parametrize("audio, why", [
    (np.full((1, 100), np.nan, np.float32), "NaN"),
    (np.zeros((1, 0), np.float32), "samples>=1"),
    (np.zeros((0, 100), np.float32), "channels>=1"),
])
def test_bad_audio_is_a_sample_error(audio: np.ndarray, why: str) -> None:
    enc = AudioboxEncoder(OFFICIAL)
    clip = DecodedClip(sample_id="s7", frames=np.zeros((1, 8, 8, 3), np.uint8), fps=24.0, audio=audio,
                       sr=16000, content_hash="x")
    with pytest.raises(SampleError, match=rf"s7.*{why}"):
        enc.prepare(clip, "", "")


def test_bad_protocol_length_raises() -> None:
    with pytest.raises(ValueError, match="max_audio_len_s"):
        AudioboxEncoder(OFFICIAL.replace(max_audio_len_s=0.0))


def test_make_windows() -> None:
    w, valid, weights = make_windows(np.ones(64000, np.float32))
    assert w.shape == (1, 160000) and valid.tolist() == [64000] and weights.tolist() == [np.float32(0.4)]
    assert np.all(w[0, :64000] == 1) and np.all(w[0, 64000:] == 0)
    w, valid, weights = make_windows(np.arange(160001, dtype=np.float32))
    assert w.shape == (2, 160000) and valid.tolist() == [160000, 1]
    assert w[1, 0] == 160000 and np.all(w[1, 1:] == 0)
    assert weights.tolist() == [1.0, np.float32(1 / 160000)]


def test_frame_padding_counts_a_frame_with_any_real_sample() -> None:
    """499 frames of 320 samples (the last 320 samples are dropped); a frame is padding iff all its samples are."""
    pos = torch.arange(160000)
    for valid, frames in [(64000, 200), (64001, 201), (1, 1), (159680, 499), (160000, 499)]:
        pad = WavLM.frame_padding((pos >= valid)[None], 499)
        assert pad.shape == (1, 499)
        assert int((~pad).sum()) == frames, valid
        assert not bool(pad[0, :frames].any())


def test_relative_position_buckets_against_the_formula() -> None:
    def bucket(d: int) -> int:     # WavLM/T5 bidirectional bucket, 320 buckets, max distance 800
        half, exact = 160, 80
        base = half if d > 0 else 0
        a = abs(d)
        if a < exact:
            return base + a
        return base + min(half - 1, exact + int(math.log(a / exact) / math.log(800 / exact) * (half - exact)))

    n = 499
    got = relative_position_buckets(n)
    assert got.shape == (n, n) and got.dtype == torch.int64
    diffs = {d: int(got[0, d]) if d >= 0 else int(got[-d, 0]) for d in range(-(n - 1), n)}
    # the float32 log in the model may round differently from float64 right at a bucket edge
    mismatched = [d for d, b in diffs.items() if b != bucket(d)]
    assert len(mismatched) <= 2, mismatched
    assert diffs[0] == 0 and diffs[1] == 161 and diffs[-1] == 1 and diffs[79] == 239 and diffs[-498] < 160
    assert bool((got == got.diagonal(offset=5)[0]).diagonal(offset=5).all())   # Toeplitz


def test_config_validation() -> None:
    cfg = json.loads((FIXTURE / "hf" / "config.json").read_text())
    parsed = AesConfig.from_dict(cfg)
    assert parsed.target_transform["PC"] == (4.5, 1.75) and parsed.proj_num_layer == 1
    bad = dict(cfg, target_transform={"CE": {"mean": 1.0, "std": 2.0}})
    with pytest.raises(BadConfigError, match="target_transform.*'CU'"):
        AesConfig.from_dict(bad)
    with pytest.raises(BadConfigError, match="nth_layer=13"):
        AesConfig.from_dict(dict(cfg, nth_layer=12))
    with pytest.raises(BadConfigError, match="output_dim=1"):
        AesConfig.from_dict(dict(cfg, output_dim=2))


def test_checkpoint_key_names() -> None:
    assert canonical_key("model.proj_layer.CE.0.weight") == "proj_layer.CE.0.weight"
    assert canonical_key("wavlm_model.encoder.pos_conv.0.parametrizations.weight.original0") == \
        "wavlm_model.encoder.pos_conv.0.weight_g"
    assert canonical_key("wavlm_model.encoder.pos_conv.0.parametrizations.weight.original1") == \
        "wavlm_model.encoder.pos_conv.0.weight_v"


def test_missing_weights(tmp_path: Path) -> None:
    enc = AudioboxEncoder(OFFICIAL)
    with pytest.raises(MissingWeightsError, match="audiobox-aesthetics"):
        enc.load(tmp_path)
    (tmp_path / AUDIOBOX_WEIGHTS.name).mkdir()
    shutil.copy(FIXTURE / "hf" / "config.json", tmp_path / AUDIOBOX_WEIGHTS.name / "config.json")
    with pytest.raises(MissingWeightsError, match="model.safetensors"):
        enc.load(tmp_path)
    with pytest.raises(RuntimeError, match="load"):
        enc.encode([{"wave": np.zeros(10, np.float32)}])


def test_incomplete_checkpoint_lists_the_keys(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    folder = tmp_path / AUDIOBOX_WEIGHTS.name
    folder.mkdir()
    shutil.copy(FIXTURE / "hf" / "config.json", folder / "config.json")
    save_file({"layer_weights.CE": torch.zeros(13), "extra.weight": torch.zeros(2)}, str(folder / "model.safetensors"))
    with pytest.raises(BadWeightsError, match=r"259 missing: wavlm_model\.mask_emb.*1 unexpected: extra\.weight"):
        AudioboxEncoder(OFFICIAL).load(tmp_path)


# ------------------------------------------------------------------------------------------------
# golden parity (full-size WavLM base on CPU: ~3-7 s per clip on 2 busy cores)
# ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def expected() -> tuple[dict, dict]:
    info = json.loads((FIXTURE / "expected.json").read_text())
    npz = np.load(FIXTURE / "expected.npz")
    return info, {k: npz[k] for k in npz.files}


@pytest.fixture(scope="module")
def fill_state() -> dict:
    return {k: v.contiguous() for k, v in torch_state_dict(FIXTURE).items()}


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory: pytest.TempPathFactory, fill_state: dict) -> Path:
    """The fixture checkpoint as a hub snapshot: hf/config.json + model.safetensors."""
    from safetensors.torch import save_file

    root = tmp_path_factory.mktemp("audiobox-weights")
    folder = root / AUDIOBOX_WEIGHTS.name
    folder.mkdir()
    shutil.copy(FIXTURE / "hf" / "config.json", folder / "config.json")
    save_file(fill_state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    return root


@pytest.fixture(scope="module")
def encoder(weights_dir: Path) -> AudioboxEncoder:
    enc = AudioboxEncoder(OFFICIAL, device="cpu", batch_size=8)
    enc.load(weights_dir)
    return enc


@pytest.fixture(scope="module")
def golden_clips(expected: tuple[dict, dict]) -> dict[str, DecodedClip]:
    return {c["name"]: decode_sample(INPUTS / f"{c['name']}.mp4", INPUTS / f"{c['name']}.wav", sample_id=c["name"])
            for c in expected[0]["per_clip"]}


@pytest.fixture(scope="module")
def golden_rows(encoder: AudioboxEncoder, golden_clips: dict[str, DecodedClip]) -> dict[str, dict]:
    """All 7 clips in one forward, as the official call ran them."""
    prepared = {name: encoder.prepare(clip, "", "") for name, clip in golden_clips.items()}
    rows = encoder.embed(list(prepared.values()))
    return {name: dict(row, wave=prepared[name]["wave"]) for name, row in zip(prepared, rows)}


def test_loaded_weights_are_the_fixture(encoder: AudioboxEncoder, fill_state: dict) -> None:
    state = encoder.model.state_dict()
    assert list(state) == list(fill_state)          # the official key order (keys.json)
    for k, v in fill_state.items():
        assert torch.equal(state[k].cpu(), v), k
    assert encoder.target_transform == {"CE": (5.5, 1.25), "CU": (6.0, 1.5), "PC": (4.5, 1.75), "PQ": (6.5, 1.0)}
    assert len(encoder.weights_sha256[AUDIOBOX_WEIGHTS.name]) == 64


def test_waveforms_match_golden(golden_rows: dict, expected: tuple[dict, dict]) -> None:
    info, npz = expected
    for c in info["per_clip"]:
        name = c["name"]
        want = npz[f"waveform__{name}"][0]
        got = golden_rows[name]["wave"]
        assert got.shape == want.shape == (64000,)
        if name == "edge_44k_stereo":      # the wrong-axis resampler's 0.3591837 scale
            np.testing.assert_allclose(got, want, rtol=0, atol=WAVE_44K_ABS)
        else:
            np.testing.assert_array_equal(got, want, err_msg=name)
        assert int(np.sum(np.cumprod((got == 0)[::-1]))) == c["waveform"]["n_trailing_zeros"]


def test_embeddings_and_axes_match_golden(golden_rows: dict, expected: tuple[dict, dict]) -> None:
    info, npz = expected
    for c in info["per_clip"]:
        name, row = c["name"], golden_rows[c["name"]]
        assert row["pooled"].shape == (c["n_windows"], 4, 768)
        assert row["valid"].tolist() == [w["valid_samples"] for w in c["windows"]]
        np.testing.assert_allclose(row["weights"], [w["weight"] for w in c["windows"]], rtol=1e-7)
        for j, axis in enumerate(AXES):
            np.testing.assert_allclose(row["pooled"][:, j], npz[f"pooled_embed_{axis}__{name}"], rtol=0, atol=EMB_ABS,
                                       err_msg=f"{name} {axis}")
            np.testing.assert_allclose(row["pred_norm"][:, j], npz[f"pred_norm_{axis}__{name}"], rtol=0,
                                       atol=PRED_ABS, err_msg=f"{name} {axis}")
        np.testing.assert_allclose(row["axes"].astype(np.float64), npz[f"axes__{name}"], rtol=0, atol=AXES_ABS,
                                   err_msg=name)
        np.testing.assert_allclose([c["axes"][a] for a in AXES], npz[f"axes__{name}"], rtol=0, atol=0)


def test_audio_quality_matches_golden(golden_rows: dict, expected: tuple[dict, dict]) -> None:
    info, npz = expected
    names = [str(n) for n in npz["names"]]
    per_clip = np.array([np.mean(golden_rows[n]["axes"].astype(np.float64)) for n in names])
    np.testing.assert_allclose(per_clip, npz["audio_quality"], rtol=0, atol=AQ_ABS)
    assert abs(float(per_clip.mean()) - info["audio_quality"]) < AQ_ABS


def test_fixed_protocol_corrects_the_reader(golden_clips: dict, expected: tuple[dict, dict],
                                            encoder: AudioboxEncoder) -> None:
    """Fixed reader vs official on the two quirk clips, against the effects the fixture README documents.

    * ``edge_short2s``: the reader's zero padding masked out moves the axes by 3.8e-2 (max) and
      audio_quality by 1.2e-2;
    * ``edge_44k_stereo`` resampled correctly (and still zero-padded, as the README measured it):
      up to 9.1e-2 and 6.0e-2.
    """
    info, npz = expected
    aq = {c["name"]: c["audio_quality"] for c in info["per_clip"]}
    fixed = AudioboxEncoder(FIXED, device="cpu", batch_size=8)
    fixed.model = encoder.model      # the same loaded weights (loading is tested above); only the reader differs
    short, c44 = golden_clips["edge_short2s"], golden_clips["edge_44k_stereo"]
    items = [fixed.prepare(short, "", ""), fixed.prepare(c44, "", "")]
    assert items[0]["wave"].shape == (32000,) and items[1]["wave"].shape == (25600,)   # ceil(70560*160/441)
    np.testing.assert_array_equal(items[0]["wave"], encoder.prepare(short, "", "")["wave"][:32000])
    resampled_padded = {"wave": views.fixed_length(items[1]["wave"], 64000)}
    feats = fixed.encode([items[0], resampled_padded])
    for f in feats:
        assert set(f) == {"axes", "axes_windows", "window_weights"}
        assert f["axes"].shape == (4,) and f["axes"].dtype == np.float32 and f["axes_windows"].shape == (1, 4)
    assert feats[0]["window_weights"].tolist() == [np.float32(0.2)]
    assert feats[1]["window_weights"].tolist() == [np.float32(0.4)]
    for f, name, axes_move, aq_move in [(feats[0], "edge_short2s", 0.038, 0.012),
                                        (feats[1], "edge_44k_stereo", 0.091, 0.060)]:
        d_axes = float(np.abs(f["axes"].astype(np.float64) - npz[f"axes__{name}"]).max())
        d_aq = abs(float(np.mean(f["axes"].astype(np.float64))) - aq[name])
        assert abs(d_axes - axes_move) < 5e-4, (name, d_axes)
        assert abs(d_aq - aq_move) < 5e-4, (name, d_aq)


def test_torch_checkpoint_form_loads_the_same(tmp_path: Path, fill_state: dict, encoder: AudioboxEncoder) -> None:
    """The package's checkpoint.pt (``model.``-prefixed state_dict, model_cfg, target_transform)."""
    cfg = json.loads((FIXTURE / "hf" / "config.json").read_text())
    folder = tmp_path / AUDIOBOX_WEIGHTS.name
    folder.mkdir()
    torch.save({"state_dict": {f"model.{k}": v for k, v in fill_state.items()},
                "model_cfg": {k: v for k, v in cfg.items() if k != "target_transform"},
                "target_transform": cfg["target_transform"]}, folder / "checkpoint.pt")
    enc = AudioboxEncoder(OFFICIAL)
    enc.load(tmp_path)
    assert enc.target_transform == encoder.target_transform
    ref = encoder.model.state_dict()
    for k, v in enc.model.state_dict().items():
        assert torch.equal(v, ref[k]), k


# ------------------------------------------------------------------------------------------------
# slow: batching and multi-window aggregation
# ------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_batch_composition_and_windows(encoder: AudioboxEncoder, golden_rows: dict, golden_clips: dict) -> None:
    """A clip alone gives what it gave in the 7-clip batch; a 12 s clip is the weighted mean of 2 windows."""
    alone = encoder.embed([encoder.prepare(golden_clips["clip_01"], "", "")])[0]
    np.testing.assert_allclose(alone["pooled"], golden_rows["clip_01"]["pooled"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(alone["axes"], golden_rows["clip_01"]["axes"], rtol=0, atol=1e-6)

    long_enc = AudioboxEncoder(OFFICIAL.replace(max_audio_len_s=12.0), batch_size=1)
    long_enc.model = encoder.model        # same weights; only the reader length differs
    rng = np.random.default_rng(3)
    audio = (0.1 * rng.standard_normal((1, 16000 * 13))).astype(np.float32)
    f = long_enc.encode([long_enc.prepare(clip_from(audio, 16000), "", "")])[0]
    assert f["window_weights"].tolist() == [1.0, np.float32(0.2)]
    w = f["window_weights"].astype(np.float64)
    np.testing.assert_allclose(f["axes"], (f["axes_windows"] * w[:, None]).sum(0) / w.sum(), rtol=1e-6)
    assert np.all(np.isfinite(f["axes"]))
