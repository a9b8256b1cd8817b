"""ImageBind encoder: preprocessing against the golden fixtures (no model), plumbing with a tiny
ImageBind, and (slow) full-size parity with the filled ImageBind-Huge checkpoint."""
from __future__ import annotations

import gc
import importlib.util
import json
import math
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
if importlib.util.find_spec("imagebind") is None:  # importing it would run its dead imagebind.data
    pytest.skip("imagebind-unofficial is not installed", allow_module_level=True)

from javisbench.decode import DecodedClip, decode_sample  # noqa: E402
from javisbench.encoders import imagebind as ib  # noqa: E402
from javisbench.encoders.base import SampleError  # noqa: E402
from javisbench.protocol import FIXED, OFFICIAL  # noqa: E402
from javisbench.weights import BadWeightsError, MissingWeightsError  # noqa: E402

GOLDEN = Path(__file__).resolve().parent.parent / "golden"
IB = GOLDEN / "imagebind"
STUB = GOLDEN / "math"
CLIPS = ["clip_00", "clip_01", "clip_02", "clip_03", "edge_short2s", "edge_5p3s_30fps", "edge_44k_stereo"]

#: A 3.7 M-parameter ImageBind with the real preprocessors and heads (64-d, 2-block trunks).
TINY = dict(
    vision_embed_dim=64, vision_num_blocks=2, vision_num_heads=4,
    text_embed_dim=64, text_num_blocks=2, text_num_heads=4, out_embed_dim=32,
    audio_embed_dim=64, audio_num_blocks=2, audio_num_heads=4,
    depth_embed_dim=32, depth_num_blocks=1, depth_num_heads=2,
    thermal_embed_dim=32, thermal_num_blocks=1, thermal_num_heads=2,
    imu_embed_dim=32, imu_num_blocks=1, imu_num_heads=2,
)


def _meta() -> dict[str, dict]:
    return {c["name"]: c for c in json.loads((GOLDEN / "inputs" / "clips_meta.json").read_text())}


def _ib_expected() -> dict[str, dict]:
    return {c["name"]: c for c in json.loads((IB / "expected.json").read_text())["per_clip"]}


_DECODED: dict[str, DecodedClip] = {}


def _clip(name: str) -> DecodedClip:
    if name not in _DECODED:
        _DECODED[name] = decode_sample(GOLDEN / "inputs" / f"{name}.mp4", GOLDEN / "inputs" / f"{name}.wav", name)
    return _DECODED[name]


def _check_summary(x: np.ndarray, ref: dict, atol: float) -> None:
    assert list(x.shape) == ref["shape"]
    flat = x.reshape(-1)
    np.testing.assert_allclose(flat[ref["sample_flat_index"]], ref["sample_values"], rtol=0, atol=atol)
    assert float(x.astype(np.float64).mean()) == pytest.approx(ref["mean"], abs=atol)
    assert float(x.astype(np.float64).std()) == pytest.approx(ref["std"], abs=atol)
    assert float(x.min()) == pytest.approx(ref["min"], abs=atol)
    assert float(x.max()) == pytest.approx(ref["max"], abs=atol)


# ---- text ------------------------------------------------------------------------------------
def test_text_tokens_match_golden() -> None:
    exp = np.load(IB / "expected.npz")
    meta = _meta()
    captions = [meta[str(n)]["caption"] for n in exp["names"]]
    tokens = ib.get_tokenizer()(captions + captions)       # fixture order: video prompts, then audio prompts
    np.testing.assert_array_equal(tokens, exp["text_tokens"])


def test_long_text_is_cut_without_restoring_eot() -> None:
    tok = ib.get_tokenizer()
    short, long_ = tok(["a dog barks", "word " * 200])
    n = int((short != 0).sum())
    assert short[0] == tok.sot and short[n - 1] == tok.eot and not short[n:].any()
    assert (long_ != 0).all() and long_[0] == tok.sot
    assert tok.eot not in long_                              # the official quirk (spec 4.4)
    assert long_.shape == (77,) and long_.dtype == np.int64


# ---- clip timing ------------------------------------------------------------------------------
def test_clip_spans_are_exact_fractions_of_the_float_duration() -> None:
    spans = ib.clip_spans(159 / 30, 2, 5)
    step = Fraction(159 / 30 - 2) / 4
    assert spans == [(step * i, step * i + 2) for i in range(5)]
    assert ib.clip_spans(1.5, 2, 3) == [(Fraction(0), Fraction(2))] * 3


def test_video_clip_frame_indices() -> None:
    # 4 s at 24 fps: clips start every 0.5 s (12 frames); first and last frame of 48
    np.testing.assert_array_equal(ib.video_clip_frame_indices(96, 24.0),
                                  [[12 * i, 12 * i + 47] for i in range(5)])
    # 2 s: every clip is the whole video
    np.testing.assert_array_equal(ib.video_clip_frame_indices(48, 24.0), [[0, 47]] * 5)
    # 1 frame: linspace(0, 0, 2) -> the same frame twice
    np.testing.assert_array_equal(ib.video_clip_frame_indices(1, 24.0), [[0, 0]] * 5)
    # 5.3 s at 30 fps: starts 0.825 s apart; ceil(30 s) and the clip end clamped to the last frame
    idx = ib.video_clip_frame_indices(159, 30.0)
    assert idx[:, 0].tolist() == [0, 25, 50, 75, math.ceil(30.0 * float(Fraction(159 / 30 - 2)))]
    assert idx[-1, 1] == 158
    with pytest.raises(ValueError):
        ib.video_clip_frame_indices(0, 24.0)


# ---- vision / audio inputs vs the ImageBind fixture (decoded with our PyAV decoder) ---------------
@pytest.mark.parametrize("name", CLIPS)
def test_vision_input_matches_golden(name: str) -> None:
    """abs 1e-5 given identical decoded frames (README). Measured: 0.0 on every clip -- our PyAV
    frames equal decord's here, and the resize/normalise/crop arithmetic is the same."""
    ref = _ib_expected()[name]
    clip = _clip(name)
    x = ib.vision_clips(clip.frames, clip.fps)
    assert x.dtype == np.float32
    np.testing.assert_allclose(x[0, 0, 0, 100:104, 100:104], ref["vision_input_clip0_c0_t0_y100_x100_4x4"], rtol=0, atol=1e-5)
    _check_summary(x, ref["vision_input"], atol=1e-5)


@pytest.mark.parametrize("name", CLIPS)
def test_audio_input_matches_golden(name: str) -> None:
    """abs 1e-4 (README); includes the 44.1 kHz stereo clip (sinc-Hann resampling, channel 0).
    Measured: 0.0 on every clip."""
    ref = _ib_expected()[name]
    clip = _clip(name)
    x = ib.audio_input(clip.audio, clip.sr, channel0=OFFICIAL.imagebind_audio_channel0)
    assert x.shape == (3, 1, 128, 204) and x.dtype == np.float32
    np.testing.assert_allclose(x[0, 0, :8, :8], ref["audio_input_clip0_mel0_8x8"], rtol=0, atol=1e-4)
    np.testing.assert_allclose(x[1, 0, 60, -14:], ref["audio_input_clip1_last_cols"], rtol=0, atol=1e-4)
    _check_summary(x, ref["audio_input"], atol=1e-4)


# ---- AVH / JavisScore inputs vs the stub-encoder fixture (math/ section 2) ----------------------
def _stub_vision(frames_u8: np.ndarray) -> np.ndarray:
    x = ib.normalize_frames(frames_u8)
    y = torch.nn.functional.adaptive_avg_pool2d(x, (4, 4)).reshape(x.shape[0], -1)
    return torch.nn.functional.normalize(y, dim=-1).numpy()


def _stub_audio(x: np.ndarray) -> np.ndarray:
    """(B, K, 1, 128, 204) -> per clip pool (8, 6), L2, x20, mean over the K clips."""
    b, k = x.shape[:2]
    y = torch.nn.functional.adaptive_avg_pool2d(torch.from_numpy(x).reshape(b * k, 1, 128, 204), (8, 6))
    y = torch.nn.functional.normalize(y.reshape(b * k, -1), dim=-1) * 20
    return y.reshape(b, k, -1).mean(dim=1).numpy()


def _window_audio_compatible(name: str) -> np.ndarray:
    """``window_audio`` of the AVH view of a golden clip, computed in a fresh process whose MKL runs
    in its CPU-independent mode (``MKL_CBWR=COMPATIBLE``)."""
    import os
    import subprocess
    import sys
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "w.npy"
        code = ("import importlib.util, numpy as np; "
                f"spec = importlib.util.spec_from_file_location('tib', {str(Path(__file__))!r}); "
                "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m); "
                f"p = m.ib.ImageBindAVHEncoder(m.OFFICIAL).prepare(m._clip({name!r}), '', ''); "
                f"np.save({str(out)!r}, p['window_audio'])")
        r = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, MKL_CBWR="COMPATIBLE"),
                           capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr[-2000:]
        return np.load(out)


@pytest.mark.parametrize("name", CLIPS)
def test_avh_inputs_match_stub_fixture(name: str) -> None:
    """The official AVH/JavisScore path with a weight-free stub model: frame inputs, whole-clip
    audio, window enumeration and per-window audio (in-place quirk included), computed ONCE per
    window instead of 3 times. Embeddings abs 1e-4, scores abs 2e-4 (README). Measured: frames and
    whole audio 0.0, window audio <= 1e-6 (the 3 official copies differ by float rounding of the
    repeated in-place mean subtraction), scores <= 1e-7."""
    from metrics.avh import avh_score, javis_score

    stub = np.load(STUB / "avh_javis_stub_embeddings.npz")
    exp = {c["name"]: c for c in json.loads((STUB / "avh_javis_stub_expected.json").read_text())["per_clip"]}[name]
    enc = ib.ImageBindAVHEncoder(OFFICIAL)
    p = enc.prepare(_clip(name), "", "")
    assert p["frames"].dtype == np.uint8 and p["frames"].shape == (exp["n_frames"], 224, 224, 3)
    _check_summary(ib.normalize_frames(p["frames"]).numpy(), exp["avh_vision_input"], atol=1e-5)
    _check_summary(p["audio"][None], exp["avh_audio_input"], atol=1e-4)
    np.testing.assert_array_equal(p["window_frame_idx"], stub[f"{name}__window_frame_idx"])
    assert p["window_frame_idx"][:, 0].tolist() == exp["window_frame_starts"]
    m = exp["n_windows"]
    assert p["window_audio"].shape == (m, 1, 1, 128, 204)          # K = 1: each window embedded once
    recorded = stub[f"{name}__javis_audio_input"]                   # (M, 3, 1, 128, 204) when stored
    if recorded.size:
        # MKL picks its FFT code path by CPU: on AVX-512 machines 2 of 130,560 log-fbank values of
        # near-silent bins differ from the fixture machine's by up to 2.1e-4 (the log amplifies the
        # rounding).  The parity of our preprocessing is checked in MKL's CPU-independent mode
        # (MKL_CBWR=COMPATIBLE, read before MKL's first call: a fresh process), where it is 2.4e-7.
        window_audio = _window_audio_compatible(name)
        for k in range(3):
            np.testing.assert_allclose(window_audio[:, 0], recorded[:, k], rtol=0, atol=1e-4)

    frame_emb = _stub_vision(p["frames"])
    audio_emb = _stub_audio(p["audio"][None])
    win_emb = _stub_audio(p["window_audio"])
    np.testing.assert_allclose(frame_emb, stub[f"{name}__frame_emb"], rtol=0, atol=1e-4)
    np.testing.assert_allclose(audio_emb, stub[f"{name}__audio_emb"], rtol=0, atol=1e-4)
    np.testing.assert_allclose(win_emb, stub[f"{name}__window_audio_emb"], rtol=0, atol=1e-4)
    assert avh_score(frame_emb, audio_emb[0]) == pytest.approx(exp["avh_score"], abs=2e-4)
    assert javis_score(frame_emb, win_emb, p["window_frame_idx"], topk=OFFICIAL.javis_topk) == \
        pytest.approx(exp["javis_score"], abs=2e-4)


def test_inplace_quirk_only_under_official_protocol() -> None:
    """Official windows are views of one waveform, so window m's mean subtraction shifts the
    overlap of window m+1; the fixed protocol transforms each window on its own."""
    clip = _clip("clip_01")
    wave = ib.audio_16k(clip.audio, clip.sr)
    starts, length = [0, 8000, 16000], 32000
    official = ib.window_audio_inputs(wave, starts, length, channel0=True)
    fixed = ib.window_audio_inputs(wave, starts, length, channel0=False)
    alone = [ib.window_audio_inputs(wave[:, s:s + length], [0], length, channel0=True)[0] for s in starts]
    np.testing.assert_array_equal(official[0], alone[0])           # nothing precedes window 0
    assert np.abs(official[1] - alone[1]).max() > 1e-3             # the quirk is visible ...
    for m in range(3):                                             # ... and gone when fixed (mono file)
        np.testing.assert_allclose(fixed[m], alone[m], rtol=0, atol=1e-5)
    np.testing.assert_array_equal(wave, ib.audio_16k(clip.audio, clip.sr))   # caller's array untouched


def test_fixed_protocol_uses_the_channel_mean() -> None:
    clip = _clip("edge_44k_stereo")
    wave = ib.audio_16k(clip.audio, clip.sr)
    assert wave.shape[0] == 2
    fixed = ib.audio_input(wave, 16000, channel0=False)
    mixed = ib.audio_input(wave.mean(axis=0, keepdims=True), 16000, channel0=False)
    np.testing.assert_allclose(fixed, mixed, rtol=0, atol=1e-5)
    left = ib.audio_input(wave[:1], 16000, channel0=True)
    official = ib.audio_input(wave, 16000, channel0=True)
    np.testing.assert_allclose(official, left, rtol=0, atol=1e-4)   # channel 0 (right = 0.8 x left)
    assert np.abs(fixed - official).max() > 1e-2


def test_bad_samples_raise_sample_error_naming_the_sample() -> None:
    good = _clip("edge_short2s")

    def variant(**kw: object) -> DecodedClip:
        base = dict(sample_id="sample_0042", frames=good.frames, fps=good.fps, audio=good.audio, sr=good.sr, content_hash="x")
        base.update(kw)
        return DecodedClip(**base)  # type: ignore[arg-type]

    enc = ib.ImageBindEncoder(OFFICIAL)
    avh = ib.ImageBindAVHEncoder(OFFICIAL)
    nan = good.audio.copy()
    nan[0, 5] = np.nan
    for e in (enc, avh):
        with pytest.raises(SampleError, match="sample_0042.*NaN"):
            e.prepare(variant(audio=nan), "t", "t")
        with pytest.raises(SampleError, match="sample_0042.*>= 400"):
            e.prepare(variant(audio=good.audio[:, :300]), "t", "t")
        with pytest.raises(SampleError, match="sample_0042.*frames"):
            e.prepare(variant(frames=good.frames[:0]), "t", "t")


# ---- tiny model: encode plumbing ----------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_model() -> "torch.nn.Module":
    torch.manual_seed(0)
    return ib.build_model(TINY)


@pytest.fixture(scope="module")
def prepared_pair() -> tuple[list[dict], list[dict]]:
    names = ["edge_short2s", "edge_44k_stereo"]
    e, a = ib.ImageBindEncoder(OFFICIAL), ib.ImageBindAVHEncoder(OFFICIAL)
    clips = [_clip(n) for n in names]
    return ([e.prepare(c, _meta()[c.sample_id]["caption"], "a beep") for c in clips],
            [a.prepare(c, "", "") for c in clips])


def _encoders(model: "torch.nn.Module", batch_size: int) -> tuple[ib.ImageBindEncoder, ib.ImageBindAVHEncoder]:
    e, a = ib.ImageBindEncoder(OFFICIAL, batch_size=batch_size), ib.ImageBindAVHEncoder(OFFICIAL, batch_size=batch_size)
    e.attach(model)
    a.attach(model)
    return e, a


def test_encode_shapes_and_postprocessing(tiny_model: "torch.nn.Module", prepared_pair: tuple) -> None:
    e, a = _encoders(tiny_model, 8)
    feats = e.encode(prepared_pair[0])
    avh = a.encode(prepared_pair[1])
    scale = float(tiny_model.modality_postprocessors["text"][1].log_logit_scale.exp())
    for f, g, p in zip(feats, avh, prepared_pair[1]):
        assert set(f) == {"text_video", "text_audio", "video", "audio"}
        assert all(v.shape == (32,) and v.dtype == np.float32 for v in f.values())
        assert np.linalg.norm(f["text_video"]) == pytest.approx(scale, rel=1e-5)   # exp(s) t/|t|
        assert np.linalg.norm(f["video"]) <= 1 + 1e-6                           # mean of unit vectors
        assert np.linalg.norm(f["audio"]) <= 20 * (1 + 1e-6)
        assert set(g) == {"audio", "frames", "window_audio", "window_frame_idx"}
        t, m = p["frames"].shape[0], p["window_audio"].shape[0]
        assert g["frames"].shape == (t, 32) and g["window_audio"].shape == (m, 32)
        np.testing.assert_allclose(np.linalg.norm(g["frames"], axis=1), 1, rtol=1e-5)
        np.testing.assert_allclose(np.linalg.norm(g["window_audio"], axis=1), 20, rtol=1e-5)  # one clip
        assert g["window_frame_idx"].dtype == np.float32
        np.testing.assert_array_equal(g["window_frame_idx"], p["window_frame_idx"])
        np.testing.assert_allclose(g["audio"], f["audio"], rtol=0, atol=1e-5)   # same whole-clip audio
    assert not np.allclose(feats[0]["text_video"], feats[0]["text_audio"])     # two prompts, two rows


def test_encode_is_batch_invariant(tiny_model: "torch.nn.Module", prepared_pair: tuple) -> None:
    """A sample's features do not depend on its batch mates or on how forwards are split
    (batch_size=1 forces one sample's items per forward)."""
    e8, a8 = _encoders(tiny_model, 8)
    e1, a1 = _encoders(tiny_model, 1)
    together = e8.encode(prepared_pair[0]) + a8.encode(prepared_pair[1])
    alone = [e1.encode([p])[0] for p in prepared_pair[0]] + [a1.encode([p])[0] for p in prepared_pair[1]]
    for f, g in zip(together, alone):
        assert f.keys() == g.keys()
        for k in f:
            np.testing.assert_allclose(f[k], g[k], rtol=0, atol=1e-5, err_msg=k)


def test_embedding_a_window_once_equals_averaging_three_copies(tiny_model: "torch.nn.Module", prepared_pair: tuple) -> None:
    """The original feeds each <= 2 s window as 3 identical clips and averages the post-processed
    embeddings; the mean of 3 equal vectors is the vector (to float rounding), so one clip suffices."""
    _, a = _encoders(tiny_model, 8)
    once = prepared_pair[1][0]["window_audio"]                       # (M, 1, 1, 128, 204)
    three = np.repeat(once, 3, axis=1)                               # (M, 3, 1, 128, 204), as the original
    np.testing.assert_allclose(a.embed_audio(once), a.embed_audio(three), rtol=1e-6, atol=1e-6)


def test_load_checkpoint_shares_model_and_drops_unused_towers(tiny_model: "torch.nn.Module", prepared_pair: tuple,
                                                              tmp_path: Path) -> None:
    torch.save(tiny_model.state_dict(), tmp_path / "imagebind_huge.pth")
    e = ib.ImageBindEncoder(OFFICIAL, arch=TINY)
    a = ib.ImageBindAVHEncoder(OFFICIAL, arch=TINY)
    e.load(tmp_path)
    a.load(tmp_path)
    assert e.model is a.model                                       # one ImageBind for both ids
    assert set(e.model.modality_trunks.keys()) == {"vision", "text", "audio"}
    assert len(e.weights_sha256[ib.IMAGEBIND_HUGE_WEIGHTS.name]) == 64
    assert e.weights_sha256[ib.BPE_NAME] == ib.BPE_SHA256
    ref, _ = _encoders(tiny_model, 8)
    for f, g in zip(e.encode(prepared_pair[0][:1]), ref.encode(prepared_pair[0][:1])):
        for k in f:
            np.testing.assert_array_equal(f[k], g[k])


def test_load_errors(tiny_model: "torch.nn.Module", tmp_path: Path) -> None:
    with pytest.raises(MissingWeightsError, match="imagebind_huge.pth"):
        ib.ImageBindEncoder(OFFICIAL, arch=TINY).load(tmp_path)
    state = tiny_model.state_dict()
    state.pop("modality_heads.vision.2.weight")
    torch.save(state, tmp_path / "imagebind_huge.pth")
    with pytest.raises(BadWeightsError, match="1 missing"):
        ib.ImageBindEncoder(OFFICIAL, arch=TINY).load(tmp_path)
    with pytest.raises(RuntimeError, match="load"):
        ib.ImageBindEncoder(OFFICIAL).encode([{"tokens": np.zeros((2, 77), np.int64)}])


def test_fixed_protocol_prepares_too() -> None:
    p = ib.ImageBindAVHEncoder(FIXED).prepare(_clip("edge_5p3s_30fps"), "", "")
    assert p["window_audio"].shape[1:] == (1, 1, 128, 204)
    assert p["window_frame_idx"].shape[1] == 60


# ---- full size (slow) ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def huge_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The filled ImageBind-Huge written as an official checkpoint file (4.8 GB)."""
    from javisbench.golden import fixture_keys, torch_state_dict

    d = tmp_path_factory.mktemp("imagebind_weights")
    state = torch_state_dict(IB)
    # keys.json shapes: the 0-d logit scales must stay 0-d (np.ascontiguousarray makes them (1,))
    for key, shape, _ in fixture_keys(IB):
        state[key] = state[key].reshape(shape)
    torch.save(state, d / ib.IMAGEBIND_HUGE_WEIGHTS.name)
    del state
    gc.collect()
    return d


@pytest.mark.slow
def test_full_size_parity(huge_weights: Path) -> None:
    """Text and audio embeddings of every clip, video (and so ib_tv/ib_ta/ib_av) of one clip
    (a ViT-H video is 15 clips: ~1 min on a CPU); abs 2e-3 per element, 1e-3 per cosine."""
    from metrics.similarity import cosine

    exp = np.load(IB / "expected.npz")
    names = [str(n) for n in exp["names"]]
    meta = _meta()
    enc = ib.ImageBindEncoder(OFFICIAL, batch_size=8)
    enc.load(huge_weights)

    captions = [meta[n]["caption"] for n in names]
    tokens = ib.get_tokenizer()(captions + captions)
    np.testing.assert_allclose(enc.embed_text(tokens), exp["text_emb"], rtol=0, atol=2e-3)
    audio = np.stack([ib.audio_input(_clip(n).audio, _clip(n).sr, True) for n in names])
    np.testing.assert_allclose(enc.embed_audio(audio), exp["audio_emb"], rtol=0, atol=2e-3)

    i = names.index("clip_01")                                        # the 4:3 clip
    f = enc.encode([enc.prepare(_clip("clip_01"), captions[i], "")])[0]
    np.testing.assert_allclose(f["video"], exp["vision_emb"][i], rtol=0, atol=2e-3)
    np.testing.assert_allclose(f["text_video"], exp["text_emb"][i], rtol=0, atol=2e-3)
    np.testing.assert_allclose(f["audio"], exp["audio_emb"][i], rtol=0, atol=2e-3)
    assert float(cosine(f["text_video"], f["video"])) == pytest.approx(float(exp["ib_tv"][i]), abs=1e-3)
    assert float(cosine(f["text_audio"], f["audio"])) == pytest.approx(float(exp["ib_ta"][i]), abs=1e-3)
    assert float(cosine(f["audio"], f["video"])) == pytest.approx(float(exp["ib_av"][i]), abs=1e-3)


@pytest.mark.slow
def test_full_size_avh_subset(huge_weights: Path) -> None:
    """AVH path on clip_00 with a subset of frames (ViT-H on all 96 frames is ~10 min on a CPU):
    8 frame embeddings, the whole-clip audio and all 5 window audio embeddings; abs 2e-3."""
    exp = np.load(IB / "expected.npz")
    enc = ib.ImageBindAVHEncoder(OFFICIAL, batch_size=8)
    enc.load(huge_weights)
    p = enc.prepare(_clip("clip_00"), "", "")
    sel = np.linspace(0, p["frames"].shape[0] - 1, 8).round().astype(int)
    np.testing.assert_allclose(enc.embed_frames(p["frames"][sel]), exp["avh_frame_emb__clip_00"][sel], rtol=0, atol=2e-3)
    np.testing.assert_allclose(enc.embed_audio(p["audio"][None]), exp["avh_audio_emb__clip_00"], rtol=0, atol=2e-3)
    np.testing.assert_allclose(enc.embed_audio(p["window_audio"]), exp["javis_window_audio_emb__clip_00"], rtol=0, atol=2e-3)
    np.testing.assert_array_equal(p["window_frame_idx"], exp["javis_window_frame_idx__clip_00"])
