"""CAVP encoder (cavp_score): checkpoint format, preprocessing and parity with the golden fixture.

The fill-rule checkpoint of ``tests/golden/cavp`` is written once per module in the layout of
Diff-Foley's training checkpoints (``{"epoch", "name", "state_dict"}`` with DDP ``module.``
prefixes, as ``Extract_CAVP_Features.init_first_from_ckpt`` expects) and loaded through
``CAVPEncoder.load`` as a user's ``cavp_epoch66.ckpt`` would be.

Tolerances (``tests/golden/cavp/README.md``): spectrogram abs 1e-5; ``cavp_score`` abs 5e-3 with an
x264 build other than the fixture's (Debian FFmpeg 5.1; ours is PyAV's bundled x264, run in
memory from the decoded RGB frames).  Not in the README, measured here: the spectrogram tower
reproduces the fixture's ``spec_feats`` exactly (0.0 difference), so it is held to 1e-5; the
video features differ from the fixture's by at most 2e-4 (codec noise; feature values are
~0.04), so they are held to 2e-3 -- a wrong layer or preprocessing step moves them by ~5e-2.

Cost on 2 CPU cores: SlowOnly-50 takes ~0.5 s per 224² frame, Cnn14 ~1 s per second of audio.
The unmarked tests encode the 1-second clip end to end and the 1- and 2-second spectrograms;
the run over all seven clips in one batch (T = 1, 2, 4, 5; ~70 s) is marked ``slow``.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
av = pytest.importorskip("av")

from javisbench.decode import DecodeError, DecodedClip, decode_sample  # noqa: E402
from javisbench.encoders.base import SampleError  # noqa: E402
from javisbench.encoders.cavp import (  # noqa: E402
    CAVP_WEIGHTS,
    CAVPEncoder,
    _cv2_rgb,
    cavp_score,
    cavp_spectrogram,
    chunk_windows,
    clip_seconds,
    resize_224,
    rgb_to_yuv420p,
    select_frames,
    x264_roundtrip,
)
from javisbench.encoders.cavp_net import TEMPORAL_RADIUS, CAVPNet  # noqa: E402
from javisbench.golden import fill_value, fixture_keys, fixture_seed, torch_state_dict  # noqa: E402
from javisbench.protocol import FIXED, OFFICIAL  # noqa: E402
from javisbench.weights import BadWeightsError, MissingWeightsError  # noqa: E402

GOLDEN = Path(__file__).resolve().parent.parent / "golden"
FIXTURE = GOLDEN / "cavp"
INPUTS = GOLDEN / "inputs"
SPEC_ABS = 1e-5
SPEC_FEAT_ABS = 1e-5
VIDEO_FEAT_ABS = 2e-3
SCORE_ABS = 5e-3
SHORT = ("edge_44k_stereo", "edge_short2s")     # T = 1 and T = 2: 12 frames in all
EXTRA_KEY = "module.spec_project_head.unused"   # a key the network does not use: ignored


# --------------------------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("cavp_weights")
    state = {f"module.{k}": v for k, v in torch_state_dict(FIXTURE).items()}
    state[EXTRA_KEY] = torch.zeros(2)
    torch.save({"epoch": 66, "name": "cavp", "state_dict": state}, d / CAVP_WEIGHTS.name)
    del state
    return d


@pytest.fixture(scope="module")
def encoder(weights_dir: Path) -> CAVPEncoder:
    enc = CAVPEncoder(OFFICIAL, device="cpu", batch_size=8)
    enc.load(weights_dir)
    return enc


@pytest.fixture(scope="module")
def expected() -> tuple[dict, dict]:
    z = np.load(FIXTURE / "expected.npz")
    meta = json.loads((FIXTURE / "expected.json").read_text())
    return {k: z[k] for k in z.files}, {c["name"]: c for c in meta["per_clip"]}


@pytest.fixture(scope="module")
def clips(expected: tuple[dict, dict]) -> dict[str, DecodedClip]:
    names = [str(n) for n in expected[0]["names"]]
    return {n: decode_sample(INPUTS / f"{n}.mp4", INPUTS / f"{n}.wav", sample_id=n) for n in names}


def _with_model(loaded: CAVPEncoder, protocol=OFFICIAL) -> CAVPEncoder:
    """An encoder under ``protocol`` sharing ``loaded``'s network (no second load)."""
    enc = CAVPEncoder(protocol, device="cpu", batch_size=8)
    enc.model = loaded.model
    return enc


def _golden_score(expected: tuple[dict, dict], name: str) -> float:
    return float(expected[1][name]["cavp_score"])


def _normalized(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


# --------------------------------------------------------------------------------------------
# checkpoint format
# --------------------------------------------------------------------------------------------
def test_state_dict_is_the_official_layout() -> None:
    got = [(k, tuple(v.shape)) for k, v in CAVPNet().state_dict().items()]
    want = [(k, shape) for k, shape, _ in fixture_keys(FIXTURE)]
    assert got == want   # same keys, shapes and order as cavp_epoch66.ckpt without "module."


def test_load_strips_module_prefix_and_ignores_unused_keys(encoder: CAVPEncoder) -> None:
    assert encoder.ignored_keys == [EXTRA_KEY[len("module."):]]
    seed = fixture_seed(FIXTURE)
    sd = encoder.model.state_dict()
    for name in ("logit_scale", "video_encoder.layer3.0.conv1.conv.weight", "spec_encoder.fc1.bias"):
        want = fill_value(name, tuple(sd[name].shape), seed)
        np.testing.assert_array_equal(sd[name].numpy(), want)
    assert not encoder.model.training
    assert len(encoder.weights_sha256[CAVP_WEIGHTS.name]) == 64


def test_missing_weights_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(MissingWeightsError, match="cavp_epoch66.ckpt"):
        CAVPEncoder(OFFICIAL).load(tmp_path)


def test_bad_checkpoint_lists_missing_and_misshaped_keys(tmp_path: Path) -> None:
    # only the spectrogram tower (small zeros, fast to write), one projection of the wrong size
    part = {f"module.{k}": torch.zeros(shape) for k, shape, _ in fixture_keys(FIXTURE) if k.startswith("spec_encoder.")}
    part["module.spec_encoder.final_project.weight"] = torch.zeros(256, 2048)
    torch.save({"state_dict": part}, tmp_path / CAVP_WEIGHTS.name)
    with pytest.raises(BadWeightsError) as err:
        CAVPEncoder(OFFICIAL).load(tmp_path)
    msg = str(err.value)
    n_missing = sum(not k.startswith("spec_encoder.") for k, _, _ in fixture_keys(FIXTURE))
    assert f"{n_missing} missing: logit_scale, video_encoder.conv1.conv.weight" in msg
    assert "spec_encoder.final_project.weight: checkpoint (256, 2048) vs model (512, 2048)" in msg


def test_protocol_must_keep_four_steps_per_second() -> None:
    with pytest.raises(ValueError, match="cavp_fps=4"):
        CAVPEncoder(OFFICIAL.replace(cavp_fps=8))


# --------------------------------------------------------------------------------------------
# preprocessing
# --------------------------------------------------------------------------------------------
def test_clip_seconds_follows_moviepy() -> None:
    assert clip_seconds(96, 24.0) == 4
    assert clip_seconds(159, 30.0) == 5          # 5.3 s
    assert clip_seconds(38, 24.0) == 1           # 1.58 s
    assert clip_seconds(3995, 1000.0) == 4       # 3.995 s prints as "00:00:04.00"
    assert clip_seconds(3994, 1000.0) == 3
    assert clip_seconds(23, 24.0) == 0


def test_spectrogram_matches_golden(clips: dict, expected: tuple[dict, dict]) -> None:
    for name, clip in clips.items():
        seconds = clip_seconds(clip.n_frames, clip.fps)
        assert seconds == expected[1][name]["truncate_second"], name
        spec = cavp_spectrogram(clip.audio, clip.sr, seconds, OFFICIAL.resample, name)
        ref = expected[0][f"spectrogram__{name}"]
        assert spec.shape == ref.shape == (128, 64 * seconds), name
        assert spec.dtype == np.float32
        np.testing.assert_allclose(spec, ref, rtol=0, atol=SPEC_ABS, err_msg=name)


def test_spectrogram_uses_the_protocol_resampler(clips: dict, expected: tuple[dict, dict]) -> None:
    clip = clips["edge_44k_stereo"]                           # 44.1 kHz: resampled
    official = cavp_spectrogram(clip.audio, clip.sr, 1, OFFICIAL.resample)
    fixed = cavp_spectrogram(clip.audio, clip.sr, 1, FIXED.resample)
    diff = np.abs(official - fixed)
    # kaiser_best vs soxr_hq: equal to ~3e-4 below 6 kHz (mel bands < 100); they differ only in
    # the top bands, near the resamplers' cut-off (soxr_hq rolls off from ~7.3 kHz)
    assert diff[:100].max() < 1e-3 and diff.max() > 1e-2
    clip16 = clips["edge_short2s"]                            # already 16 kHz: no resampler involved
    np.testing.assert_array_equal(cavp_spectrogram(clip16.audio, clip16.sr, 2, OFFICIAL.resample),
                                  cavp_spectrogram(clip16.audio, clip16.sr, 2, FIXED.resample))


def test_frame_selection_gives_four_per_second(clips: dict, expected: tuple[dict, dict]) -> None:
    for name, clip in clips.items():
        seconds = expected[1][name]["truncate_second"]
        picked = select_frames(clip.frames, clip.fps, seconds, pts=clip.pts, time_base=clip.time_base)
        assert picked.shape == (4 * seconds,) + clip.frames.shape[1:], name
    # 24 fps: slot j shows the last frame with round(t*4) <= j, i.e. frames 2, 8, 14, ...
    frames = np.arange(96, dtype=np.uint8)[:, None, None, None] * np.ones((1, 2, 2, 3), np.uint8)
    assert select_frames(frames, 24.0, 4)[:, 0, 0, 0].tolist() == list(range(2, 96, 6))


def test_frame_count_mismatch_is_a_sample_error() -> None:
    # a 4 fps clip of exactly 4 s: the stream closes at the last frame (t = 3.75), so the fps
    # filter emits 15 frames for 16 spectrogram steps (the original crashes on the shapes)
    frames = np.zeros((16, 4, 4, 3), np.uint8)
    with pytest.raises(SampleError, match=r"s7.*16 frames.*gives 15"):
        select_frames(frames, 4.0, 4, sample_id="s7")
    # with a frame at t = 4 s the trim closes the stream at 4 s: 16 frames
    frames = np.arange(17, dtype=np.uint8)[:, None, None, None] * np.ones((1, 4, 4, 3), np.uint8)
    assert select_frames(frames, 4.0, 4)[:, 0, 0, 0].tolist() == list(range(16))


def test_rgb_to_yuv420p_inverts_the_opencv_conversion(clips: dict) -> None:
    path = INPUTS / "clip_00.mp4"
    with av.open(str(path)) as container:
        src = [f for _, f in zip(range(8), container.decode(video=0))]
    h = src[0].height
    errs = []
    for i, frame in enumerate(src):
        rgb = _cv2_rgb(frame)
        np.testing.assert_array_equal(rgb, clips["clip_00"].frames[i])      # the decoder's conversion
        errs.append(np.abs(rgb_to_yuv420p(rgb).astype(np.int16) - frame.to_ndarray(format="yuv420p").astype(np.int16)))
    err = np.stack(errs)
    luma, chroma = err[:, :h], err[:, h:]
    # swscale's own rgb24 -> yuv420p is off by one luma level almost everywhere (mean 0.99)
    assert luma.mean() < 0.15 and chroma.mean() < 0.05
    assert (luma <= 1).mean() > 0.999


def test_x264_roundtrip_is_lossy_close_and_deterministic(clips: dict) -> None:
    clip = clips["clip_00"]
    picked = select_frames(clip.frames, clip.fps, 4)
    a = x264_roundtrip(picked)
    b = x264_roundtrip(picked)
    assert a.shape == picked.shape and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)                       # one x264 thread: reproducible
    d = np.abs(a.astype(np.int16) - picked.astype(np.int16))
    assert 0 < d.mean() < 1.0                                 # CRF 23 on flat synthetic content
    with pytest.raises(SampleError, match="even frame size, got 5x4"):
        x264_roundtrip(np.zeros((2, 4, 5, 3), np.uint8), sample_id="odd")


def test_prepare_official_reencodes_fixed_does_not(encoder: CAVPEncoder, clips: dict) -> None:
    clip = clips["edge_44k_stereo"]
    official = encoder.prepare(clip, "", "")
    fixed = _with_model(encoder, FIXED).prepare(clip, "", "")
    plain = resize_224(select_frames(clip.frames, clip.fps, 1, pts=clip.pts, time_base=clip.time_base))
    assert official["video"].shape == fixed["video"].shape == (4, 224, 224, 3)
    assert official["spec"].shape == (128, 64)
    np.testing.assert_array_equal(fixed["video"], plain)
    d = np.abs(official["video"].astype(np.int16) - plain.astype(np.int16))
    assert 0 < d.mean() < 2.0


def test_bad_samples_raise_sample_errors(encoder: CAVPEncoder) -> None:
    frames = np.zeros((20, 16, 16, 3), np.uint8)
    audio = np.zeros((1, 16000), np.float32)
    short = DecodedClip("s1", frames, 24.0, audio, 16000, "h")           # 0.83 s
    with pytest.raises(SampleError, match=r"s1.*at least 1 s"):
        encoder.prepare(short, "", "")
    frames = np.zeros((48, 16, 16, 3), np.uint8)
    nan = DecodedClip("s2", frames, 24.0, np.full((1, 32000), np.nan, np.float32), 16000, "h")
    with pytest.raises(SampleError, match=r"s2.*NaN"):
        encoder.prepare(nan, "", "")


def test_corrupted_file_is_a_decode_error(tmp_path: Path) -> None:
    bad = tmp_path / "sample_0000.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    wav = tmp_path / "sample_0000.wav"
    wav.write_bytes(b"RIFF0000WAVEjunk")
    with pytest.raises(DecodeError, match="sample_0000"):
        decode_sample(bad, wav, sample_id="sample_0000")


# --------------------------------------------------------------------------------------------
# encoding
# --------------------------------------------------------------------------------------------
def test_chunk_windows() -> None:
    assert chunk_windows(80) == [(0, 40, 0, 40), (40, 80, 0, 40)]
    assert chunk_windows(50, 40, 9) == [(0, 49, 0, 40), (31, 50, 9, 19)]
    assert chunk_windows(4, 40, 9) == [(0, 4, 0, 4)]


def test_chunk_context_equals_one_whole_clip_forward(encoder: CAVPEncoder) -> None:
    # 16 small frames in chunks of 12 (the official's 40, scaled down; SlowOnly runs at any size
    # >= 32): the official chunks cut the temporal context of frames 3..11 and 12..15, the fixed
    # windows with 9 frames of context on each side do not
    video = np.random.default_rng(0).integers(0, 256, (16, 32, 32, 3), dtype=np.uint8)
    chunked_enc, windowed_enc = _with_model(encoder, OFFICIAL), _with_model(encoder, FIXED)
    chunked_enc.chunk_frames = windowed_enc.chunk_frames = 12
    with torch.inference_mode():
        x = torch.from_numpy(video)[None].permute(0, 4, 1, 2, 3).float().div(255)
        whole = encoder.model.encode_video(x)[0].numpy()
        chunked = chunked_enc.video_features([video])[0]
        windowed = windowed_enc.video_features([video])[0]
    np.testing.assert_allclose(windowed, whole, rtol=0, atol=1e-5)
    border = 12 - TEMPORAL_RADIUS
    np.testing.assert_allclose(chunked[:border], whole[:border], rtol=0, atol=1e-5)
    # the cut grows towards the border (frame 3 loses only layer4's outermost tap)
    err = np.abs(chunked - whole).max(axis=1)
    assert err[border] > 1e-7 and err[11] > 1e-3 and err[12] > 1e-3


def test_spec_features_match_golden(encoder: CAVPEncoder, expected: tuple[dict, dict]) -> None:
    specs = [expected[0][f"spectrogram__{n}"] for n in SHORT]
    with torch.inference_mode():
        feats = encoder.spec_features(specs)
        raw = encoder.model.spec_encoder(torch.from_numpy(specs[0]).T[None, None])[0].numpy()
    ref_raw = expected[0][f"spec_feats__{SHORT[0]}"][0]                    # the fixture stores Cnn14's raw output
    np.testing.assert_allclose(raw, ref_raw, rtol=0, atol=SPEC_FEAT_ABS)
    for name, f in zip(SHORT, feats):
        ref = _normalized(expected[0][f"spec_feats__{name}"][0])
        assert f.shape == ref.shape and f.dtype == np.float32
        np.testing.assert_allclose(f, ref, rtol=0, atol=SPEC_FEAT_ABS, err_msg=name)


def _check_against_golden(feats: dict, name: str, expected: tuple[dict, dict]) -> float:
    seconds = expected[1][name]["truncate_second"]
    v, s = feats["video_feats"], feats["spec_feats"]
    assert v.shape == s.shape == (4 * seconds, 512) and v.dtype == s.dtype == np.float32, name
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(v, expected[0][f"video_feats__{name}"], rtol=0, atol=VIDEO_FEAT_ABS, err_msg=name)
    np.testing.assert_allclose(s, _normalized(expected[0][f"spec_feats__{name}"][0]), rtol=0, atol=SPEC_FEAT_ABS,
                               err_msg=name)
    score = cavp_score(v, s)
    assert abs(score - _golden_score(expected, name)) <= SCORE_ABS, (name, score)
    return score


def test_encoder_matches_golden_on_a_short_clip(encoder: CAVPEncoder, clips: dict, expected: tuple[dict, dict]) -> None:
    name = SHORT[0]                                                      # T = 1: 4 frames
    out = encoder.encode([encoder.prepare(clips[name], "", "")])
    assert len(out) == 1
    _check_against_golden(out[0], name, expected)


def test_cavp_score_is_mean_rowwise_cosine() -> None:
    rng = np.random.default_rng(1)
    v, s = rng.standard_normal((8, 512)).astype(np.float32), rng.standard_normal((8, 512)).astype(np.float32)
    ref = np.mean([float(a @ b) / (np.linalg.norm(a) * np.linalg.norm(b)) for a, b in zip(v.astype(np.float64), s)])
    assert abs(cavp_score(v, s) - ref) < 1e-6
    with pytest.raises(ValueError, match=r"\(8, 512\) and \(7, 512\)"):
        cavp_score(v, s[:7])


@pytest.mark.slow
def test_encoder_matches_golden_on_all_clips(encoder: CAVPEncoder, clips: dict, expected: tuple[dict, dict]) -> None:
    names = list(clips)
    out = encoder.encode([encoder.prepare(clips[n], "", "") for n in names])
    scores = [_check_against_golden(f, n, expected) for n, f in zip(names, out)]
    golden = [_golden_score(expected, n) for n in names]
    assert abs(np.mean(scores) - np.mean(golden)) <= SCORE_ABS
    # the fixed protocol (no re-encode, no chunk borders) stays within the same tolerance here
    fixed = _with_model(encoder, FIXED)
    out_fixed = fixed.encode([fixed.prepare(clips[n], "", "") for n in names])
    for n, f in zip(names, out_fixed):
        assert abs(cavp_score(f["video_feats"], f["spec_feats"]) - _golden_score(expected, n)) <= SCORE_ABS, n
