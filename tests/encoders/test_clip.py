"""CLIP ViT-B/32: OpenAI checkpoint format, fp16 rounding, BGR quirk, parity with the golden fixture.

The golden fixture (``tests/golden/clip``) is the OpenAI CLIP ViT-B/32 with every parameter
overwritten by the fill rule.  The test writes it as a TorchScript archive in the layout of the
released ``ViT-B-32.pt`` (fp16 Conv/Linear/projection weights, fp32 norms and embeddings, plus the
three integer entries) and loads it through ``ClipEncoder.load`` as a user's file would be.
Tolerances are those of ``tests/golden/clip/README.md``: tokens exact, image input abs 1e-5
(given identical decoded frames), features abs 1e-3, clip_score abs 2e-4 per clip.
"""
from __future__ import annotations

import dataclasses
import json
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("open_clip")

from javisbench.decode import DecodedClip, decode_sample  # noqa: E402
from javisbench.encoders.base import SampleError  # noqa: E402
from javisbench.encoders.clip import (  # noqa: E402
    ARCHIVE_INTS,
    CLIP_MEAN,
    CLIP_STD,
    CLIP_WEIGHTS,
    ClipEncoder,
    is_torchscript_archive,
    read_openai_state_dict,
    save_openai_archive,
)
from javisbench.golden import fill_value, fixture_keys, fixture_seed  # noqa: E402
from javisbench.protocol import FIXED, OFFICIAL  # noqa: E402
from javisbench.weights import BadWeightsError, MissingWeightsError  # noqa: E402
from metrics.similarity import mean_cosine_to  # noqa: E402

GOLDEN = Path(__file__).resolve().parent.parent / "golden"
FIXTURE = GOLDEN / "clip"
INPUTS = GOLDEN / "inputs"
INPUT_ABS = 1e-5
FEATURE_ABS = 1e-3
SCORE_ABS = 2e-4


class GoldenClipEncoder(ClipEncoder):
    """The encoder with the official file's sha256 check lifted: the fixture is not that file."""

    weight_files = (dataclasses.replace(CLIP_WEIGHTS, sha256=None),)


def golden_state() -> "OrderedDict[str, torch.Tensor]":
    seed = fixture_seed(FIXTURE)
    return OrderedDict(
        (name, torch.from_numpy(np.array(fill_value(name, shape, seed))))
        for name, shape, _ in fixture_keys(FIXTURE)
    )


@pytest.fixture(scope="module")
def fill_state() -> "OrderedDict[str, torch.Tensor]":
    return golden_state()


@pytest.fixture(scope="module")
def expected() -> tuple[dict, dict]:
    info = json.loads((FIXTURE / "expected.json").read_text())
    npz = np.load(FIXTURE / "expected.npz")
    return info, {k: npz[k] for k in npz.files}


@pytest.fixture(scope="module")
def clip_weights_dir(tmp_path_factory: pytest.TempPathFactory, fill_state: dict) -> Path:
    wdir = tmp_path_factory.mktemp("clip-weights")
    save_openai_archive(fill_state, wdir / CLIP_WEIGHTS.name)
    return wdir


@pytest.fixture(scope="module")
def clip_encoder(clip_weights_dir: Path) -> GoldenClipEncoder:
    enc = GoldenClipEncoder(OFFICIAL, device="cpu", batch_size=4)
    enc.load(clip_weights_dir)
    return enc


@pytest.fixture(scope="module")
def golden_clips(expected: tuple[dict, dict]) -> list[DecodedClip]:
    return [decode_sample(INPUTS / f"{c['name']}.mp4", INPUTS / f"{c['name']}.wav", sample_id=c["name"])
            for c in expected[0]["per_clip"]]


@pytest.fixture(scope="module")
def golden_prepared(clip_encoder: GoldenClipEncoder, golden_clips: list[DecodedClip],
                    expected: tuple[dict, dict]) -> list[dict]:
    return [clip_encoder.prepare(clip, c["caption"], "") for clip, c in zip(golden_clips, expected[0]["per_clip"])]


@pytest.fixture(scope="module")
def golden_features(clip_encoder: GoldenClipEncoder, golden_prepared: list[dict]) -> list[dict]:
    # batch_size 4 over 7 clips: two forwards of 192 and 144 frames (several videos per forward)
    return clip_encoder.encode(golden_prepared)


def normalised(frames_u8: np.ndarray) -> np.ndarray:
    """ToTensor + Normalize of (F, H, W, 3) uint8 -> (F, 3, H, W), the model input."""
    x = torch.from_numpy(frames_u8).permute(0, 3, 1, 2).float().div(255)
    return x.sub(torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)).div(torch.tensor(CLIP_STD).view(1, 3, 1, 1)).numpy()


# ---------------------------------------------------------------------------------------------
# the checkpoint
# ---------------------------------------------------------------------------------------------
def test_archive_is_torchscript_in_the_official_layout(clip_weights_dir: Path) -> None:
    path = clip_weights_dir / CLIP_WEIGHTS.name
    assert is_torchscript_archive(path)
    with pytest.raises(RuntimeError):          # why the loader cannot use torch.load for it
        torch.load(path, map_location="cpu", weights_only=True)
    state = read_openai_state_dict(path)
    keys = [k for k, _, _ in fixture_keys(FIXTURE)]
    assert sorted(state) == sorted(keys + list(ARCHIVE_INTS))
    assert [int(state[k]) for k in ARCHIVE_INTS] == [224, 77, 49408]


def test_loaded_weights_are_fp16_rounded_exactly_where_the_original_rounds(
        clip_encoder: GoldenClipEncoder, expected: tuple[dict, dict], fill_state: dict) -> None:
    rounded = set(expected[0]["fp16_rounded_params"])
    assert len(rounded) == 195
    loaded = clip_encoder.model.state_dict()
    fill = fill_state
    assert set(fill) <= set(loaded)
    for name, value in fill.items():
        want = value.half().float() if name in rounded else value
        got = loaded[name]
        assert got.dtype == torch.float32, name
        assert torch.equal(got, want), name
    # the rounding is real: the fill values are not fp16-representable
    assert not torch.equal(fill["visual.proj"], fill["visual.proj"].half().float())


def test_official_hash_is_checked(clip_weights_dir: Path) -> None:
    """A file that is not the official one is reported as such (and recorded in results), not hidden."""
    from javisbench.weights import check

    assert CLIP_WEIGHTS.sha256 and len(CLIP_WEIGHTS.sha256) == 64
    st = check("clip", CLIP_WEIGHTS, clip_weights_dir)
    assert st.status == "bad-hash" and st.sha256 != CLIP_WEIGHTS.sha256 and "expected sha256" in st.detail


def test_missing_weights_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(MissingWeightsError, match="ViT-B-32.pt") as err:
        ClipEncoder(OFFICIAL).load(tmp_path)
    assert "openaipublic" in str(err.value)


def test_plain_state_dict_and_bad_files(tmp_path: Path) -> None:
    small = OrderedDict([("a.weight", torch.randn(3, 2)), ("b", torch.tensor(5))])
    torch.save(small, tmp_path / "plain.pt")
    torch.save({"state_dict": {f"module.{k}": v for k, v in small.items()}}, tmp_path / "wrapped.pt")
    for name in ("plain.pt", "wrapped.pt"):
        assert not is_torchscript_archive(tmp_path / name)
        got = read_openai_state_dict(tmp_path / name)
        assert list(got) == list(small) and all(torch.equal(got[k], small[k]) for k in small)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(BadWeightsError, match="junk.pt"):
        read_openai_state_dict(tmp_path / "junk.pt")
    # a readable file that is not a CLIP: the error names what is missing
    torch.save(small, tmp_path / GoldenClipEncoder.weight_files[0].name)
    with pytest.raises(BadWeightsError, match="visual.proj"):
        GoldenClipEncoder(OFFICIAL).load(tmp_path)


def test_misshaped_checkpoint_is_refused(tmp_path: Path, fill_state: dict) -> None:
    state = OrderedDict(fill_state)
    state["ln_final.bias"] = state["ln_final.bias"][:100]
    with pytest.raises(BadWeightsError, match="ln_final.bias"):
        from javisbench.encoders.clip import build_openai_clip

        build_openai_clip(state, tmp_path / "x.pt")


# ---------------------------------------------------------------------------------------------
# inputs
# ---------------------------------------------------------------------------------------------
def test_tokens_are_exact(golden_prepared: list[dict], expected: tuple[dict, dict]) -> None:
    for item, c in zip(golden_prepared, expected[0]["per_clip"]):
        tokens = item["tokens"]
        assert tokens.shape == (77,)
        assert tokens[tokens != 0].tolist() == c["text_tokens_nonzero"], c["name"]


def test_long_prompt_keeps_eot_last(clip_encoder: GoldenClipEncoder) -> None:
    tokens = clip_encoder._tokenize("a dog " * 100)
    assert tokens.shape == (77,) and tokens[0] == 49406 and tokens[-1] == 49407 and (tokens != 0).all()


def test_image_input_matches_the_recorded_one(golden_prepared: list[dict], expected: tuple[dict, dict]) -> None:
    for item, c in zip(golden_prepared, expected[0]["per_clip"]):
        ref = c["image_input"]
        x = normalised(item["frames"])
        assert list(x.shape) == ref["shape"]
        flat = x.ravel()
        np.testing.assert_allclose(flat[ref["sample_flat_index"]], ref["sample_values"], rtol=0, atol=INPUT_ABS)
        np.testing.assert_allclose(x[0, 0, 100:104, 100:104], c["image_input_f0_c0_y100_x100_4x4"],
                                   rtol=0, atol=INPUT_ABS)
        # plane 0 holds the blue channel normalised with the red mean/std: the BGR quirk
        np.testing.assert_allclose(x[0, :, 100, 100], c["image_input_f0_pixel_100_100_rgbplanes"],
                                   rtol=0, atol=INPUT_ABS)
        assert abs(float(x.mean()) - ref["mean"]) < INPUT_ABS and abs(float(x.std()) - ref["std"]) < INPUT_ABS
        assert abs(float(x.min()) - ref["min"]) < INPUT_ABS and abs(float(x.max()) - ref["max"]) < INPUT_ABS


def test_bgr_quirk_is_protocol_controlled(golden_clips: list[DecodedClip]) -> None:
    clip = golden_clips[0]
    off = ClipEncoder(OFFICIAL).prepare(clip, "x", "")["frames"]
    fixed = ClipEncoder(FIXED).prepare(clip, "x", "")["frames"]
    assert off.shape == fixed.shape == (48, 224, 224, 3)
    # per-pixel channel reversal commutes with the per-channel resize and crop
    np.testing.assert_array_equal(off, fixed[..., ::-1])
    assert not np.array_equal(off, fixed)


def test_prepare_rejects_bad_frames() -> None:
    enc = ClipEncoder(OFFICIAL)
    audio = np.zeros((1, 16000), np.float32)
    for frames in (np.zeros((0, 32, 32, 3), np.uint8), np.zeros((4, 32, 32), np.uint8),
                   np.zeros((4, 32, 32, 3), np.float32)):
        clip = DecodedClip("bad", frames, 24.0, audio, 16000, "h")
        with pytest.raises(SampleError, match="bad"):
            enc.prepare(clip, "a prompt", "")


def test_short_clip_repeats_frames() -> None:
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (5, 240, 320, 3), dtype=np.uint8)
    clip = DecodedClip("short", frames, 24.0, np.zeros((1, 100), np.float32), 16000, "h")
    out = ClipEncoder(FIXED).prepare(clip, "a prompt", "")["frames"]
    assert out.shape == (48, 224, 224, 3)
    assert len({out[i].tobytes() for i in range(48)}) == 5


# ---------------------------------------------------------------------------------------------
# features and score
# ---------------------------------------------------------------------------------------------
def test_golden_features(golden_features: list[dict], expected: tuple[dict, dict]) -> None:
    info, npz = expected
    for feats, c in zip(golden_features, info["per_clip"]):
        name = c["name"]
        assert feats["image_features"].shape == (48, 512) and feats["image_features"].dtype == np.float32
        assert feats["text_features"].shape == (512,) and feats["text_features"].dtype == np.float32
        np.testing.assert_allclose(feats["image_features"], npz[f"image_features__{name}"], rtol=0, atol=FEATURE_ABS)
        np.testing.assert_allclose(feats["text_features"], npz[f"text_features__{name}"][0], rtol=0, atol=FEATURE_ABS)


def test_golden_clip_score(golden_features: list[dict], expected: tuple[dict, dict]) -> None:
    info, npz = expected
    scores = np.array([mean_cosine_to(f["image_features"], f["text_features"]) for f in golden_features])
    np.testing.assert_allclose(scores, npz["clip_score"], rtol=0, atol=SCORE_ABS)
    np.testing.assert_allclose(scores, [c["clip_score"] for c in info["per_clip"]], rtol=0, atol=SCORE_ABS)
    assert abs(scores.mean() - info["clip_score"]) < SCORE_ABS


def test_batch_composition_does_not_matter(clip_encoder: GoldenClipEncoder, golden_prepared: list[dict],
                                           golden_features: list[dict]) -> None:
    # 3 frames of the 2 s clip on their own, vs inside the 4-video forward of the fixture
    item = dict(golden_prepared[4], frames=golden_prepared[4]["frames"][[0, 17, 47]])
    alone = clip_encoder.encode([item])[0]
    np.testing.assert_allclose(alone["image_features"], golden_features[4]["image_features"][[0, 17, 47]],
                               rtol=0, atol=1e-4)
    np.testing.assert_allclose(alone["text_features"], golden_features[4]["text_features"], rtol=0, atol=1e-4)


def test_encode_checks_its_input(clip_encoder: GoldenClipEncoder, golden_prepared: list[dict]) -> None:
    bad = dict(golden_prepared[0], frames=golden_prepared[0]["frames"][:, :100])
    with pytest.raises(ValueError, match="224"):
        clip_encoder.encode([bad])
    with pytest.raises(RuntimeError, match="load"):
        ClipEncoder(OFFICIAL).encode(golden_prepared[:1])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_fp16_matches_cpu(clip_weights_dir: Path, golden_prepared: list[dict],
                               golden_features: list[dict]) -> None:
    enc = GoldenClipEncoder(OFFICIAL, device="cuda", batch_size=4)
    enc.load(clip_weights_dir)
    assert enc.fp16 and enc.model.visual.conv1.weight.dtype == torch.float16
    feats = enc.encode(golden_prepared[:2])
    for got, ref in zip(feats, golden_features[:2]):
        # fp16 activations: the score moves by ~1e-3, not more
        a = mean_cosine_to(got["image_features"], got["text_features"])
        b = mean_cosine_to(ref["image_features"], ref["text_features"])
        assert abs(a - b) < 5e-3
    fixed = GoldenClipEncoder(FIXED, device="cuda", batch_size=4)
    fixed.load(clip_weights_dir)
    assert not fixed.fp16
    got = fixed.encode(golden_prepared[:1])[0]
    # fp32 weights on the GPU (cuDNN may use TF32 for the patch convolution): close to the CPU run
    a = mean_cosine_to(got["image_features"], got["text_features"])
    b = mean_cosine_to(golden_features[0]["image_features"], golden_features[0]["text_features"])
    assert abs(a - b) < 1e-3
