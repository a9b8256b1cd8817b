"""Synchformer encoder (DeSync): checkpoint format, preprocessing and parity with the golden fixture.

The fill-rule checkpoint of ``tests/golden/synchformer`` is written once per module in the
official file format and loaded through ``SynchformerEncoder.load`` as a user's
``synchformer_state_dict.pth`` would be.  Tolerances (``tests/golden/synchformer/README.md``):
video input abs 1e-5 given identical decoded frames, 16 kHz audio input exact, mel abs 1e-4,
features and logits abs 1e-3 (feature magnitudes ~10, logits ~2, re-run noise ~5e-6), argmax /
desync exact unless the reference's top two logits are within 1e-3.

Cost on 2 CPU cores: a MotionFormer segment (16 frames at 224²) takes 2.5-7 s, the AST part of
a whole clip ~1 s.  The unmarked tests run the AST on every clip, the offset transformer on the
fixture's own features, and the full encoder on 0.64 s protocols (one segment per clip); the
full-length parity runs (77 + 48 video segments) are marked ``slow``.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from javisbench.decode import DecodedClip, decode_sample  # noqa: E402
from javisbench.encoders.base import SampleError  # noqa: E402
from javisbench.encoders.synchformer import (  # noqa: E402
    AUDIO_SR,
    SYNCHFORMER_WEIGHTS,
    SynchformerEncoder,
    audio_segments,
    log_mel,
    mel_filterbank,
    pixels_to_unit,
)
from javisbench.encoders.synchformer_net import SynchformerNet  # noqa: E402
from javisbench.golden import fixture_keys, torch_state_dict  # noqa: E402
from javisbench.protocol import OFFICIAL  # noqa: E402
from javisbench.weights import BadWeightsError, MissingWeightsError  # noqa: E402
from metrics.desync import OFFSET_GRID, assign_group_offsets, offsets_from_logits, to_official_order  # noqa: E402

GOLDEN = Path(__file__).resolve().parent.parent / "golden"
FIXTURE = GOLDEN / "synchformer"
INPUTS = GOLDEN / "inputs"
FEAT_ABS = 1e-3
LOGIT_ABS = 1e-3
MEL_ABS = 1e-4
VIDEO_ABS = 1e-5
ONE_SEGMENT_S = 0.64          # int(25*0.64) = 16 frames, int(16000*0.64) = 10240 samples: S = 1


# --------------------------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def state() -> dict:
    return torch_state_dict(FIXTURE)


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory: pytest.TempPathFactory, state: dict) -> Path:
    d = tmp_path_factory.mktemp("synchformer_weights")
    torch.save(state, d / SYNCHFORMER_WEIGHTS.name)
    return d


@pytest.fixture(scope="module")
def encoder(weights_dir: Path) -> SynchformerEncoder:
    enc = SynchformerEncoder(OFFICIAL, device="cpu", batch_size=8)
    enc.load(weights_dir)
    return enc


@pytest.fixture(scope="module")
def expected() -> tuple[dict, dict]:
    z = np.load(FIXTURE / "expected.npz")
    return {k: z[k] for k in z.files}, json.loads((FIXTURE / "expected.json").read_text())


@pytest.fixture(scope="module")
def clips(expected: tuple[dict, dict]) -> dict[str, DecodedClip]:
    names = [str(n) for n in expected[0]["names"]]
    return {n: decode_sample(INPUTS / f"{n}.mp4", INPUTS / f"{n}.wav", sample_id=n) for n in names}


@pytest.fixture(scope="module")
def prepared(encoder: SynchformerEncoder, clips: dict[str, DecodedClip]) -> dict[str, dict]:
    return {n: encoder.prepare(c, "", "") for n, c in clips.items()}


def _encoder_for(loaded: SynchformerEncoder, length_s: float) -> SynchformerEncoder:
    """An encoder for ``max_audio_len_s=length_s`` sharing ``loaded``'s network (no second load)."""
    enc = SynchformerEncoder(OFFICIAL.replace(max_audio_len_s=length_s), device="cpu", batch_size=8)
    enc.model, enc._fbank = loaded.model, loaded._fbank
    return enc


def _check_summary(x: np.ndarray, ref: dict, tol: float, what: str) -> None:
    assert list(x.shape) == ref["shape"], what
    got = x.reshape(-1)[ref["sample_flat_index"]]
    assert np.abs(got - np.asarray(ref["sample_values"])).max() <= tol, what
    for stat in ("mean", "std", "min", "max"):
        assert abs(float(getattr(x.astype(np.float64), stat)()) - ref[stat]) <= max(tol, 1e-6), (what, stat)


def _argmax_agrees(ours: np.ndarray, ref: np.ndarray, tol: float = LOGIT_ABS) -> bool:
    """Same argmax, or the reference's best class and ours are within ``tol`` of each other there."""
    a, b = int(np.argmax(ours)), int(np.argmax(ref))
    return a == b or float(ref[b] - ref[a]) <= tol


# --------------------------------------------------------------------------------------------
# checkpoint format
# --------------------------------------------------------------------------------------------
def test_state_dict_is_the_official_layout() -> None:
    got = [(k, tuple(v.shape)) for k, v in SynchformerNet().state_dict().items()]
    want = [(k, shape) for k, shape, _ in fixture_keys(FIXTURE)]
    assert got == want   # same keys, shapes and order as synchformer_state_dict.pth


def test_missing_weights_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(MissingWeightsError, match="synchformer_state_dict.pth"):
        SynchformerEncoder(OFFICIAL).load(tmp_path)


def test_bad_checkpoint_lists_the_keys(tmp_path: Path, state: dict) -> None:
    # only the offset transformer (small to write), one extra key, a longer position embedding
    broken = {k: v for k, v in state.items() if k.startswith("transformer.")}
    broken["transformer.pos_emb_cfg.pos_emb"] = torch.zeros(1, 200, 768)
    broken["transformer.extra"] = torch.zeros(3)
    torch.save(broken, tmp_path / SYNCHFORMER_WEIGHTS.name)
    with pytest.raises(BadWeightsError) as err:
        SynchformerEncoder(OFFICIAL).load(tmp_path)
    msg = str(err.value)
    n_missing = sum(not k.startswith("transformer.") for k in state)
    assert f"{n_missing} missing: vfeat_extractor.cls_token" in msg
    assert "1 unexpected: transformer.extra" in msg
    assert "transformer.pos_emb_cfg.pos_emb: checkpoint (1, 200, 768) vs model (1, 198, 768)" in msg


def test_encode_before_load_raises(prepared: dict[str, dict]) -> None:
    with pytest.raises(RuntimeError, match="before load"):
        SynchformerEncoder(OFFICIAL).encode([prepared["clip_00"]])


# --------------------------------------------------------------------------------------------
# preprocessing
# --------------------------------------------------------------------------------------------
def test_mel_filterbank_matches_librosa_htk() -> None:
    librosa = pytest.importorskip("librosa")
    ref = librosa.filters.mel(sr=16000, n_fft=1024, n_mels=128, fmin=0.0, fmax=8000.0, htk=True, norm=None,
                              dtype=np.float64).T
    fb = mel_filterbank().numpy()
    assert fb.shape == (513, 128) and fb.dtype == np.float32
    # torchaudio computes the mel points in float32, librosa in float64: ~1e-5 on weights <= 1
    assert np.abs(fb - ref).max() < 5e-5


def test_prepare_matches_official_inputs(prepared: dict[str, dict], clips: dict[str, DecodedClip],
                                         expected: tuple[dict, dict]) -> None:
    from javisbench import views

    _, js = expected
    for pc in js["per_clip"]:
        name, p = pc["name"], prepared[pc["name"]]
        assert p["video"].dtype == np.uint8 and p["video"].shape == (100, 3, 224, 224)
        assert p["audio"].dtype == np.float32 and p["audio"].shape == (64000,)
        # torio's ffmpeg fps=25 (FFmpeg 5.1) frame count, capped at the 100-frame chunk
        c = clips[name]
        _, idx = views.video_at_fps(c.frames, c.fps, 25, pts=c.pts, time_base=c.time_base)
        assert min(len(idx), 100) == js["torio_decoded_frames"][name], name
        v = pixels_to_unit(torch.from_numpy(p["video"])).numpy()
        _check_summary(v, pc["video_input"], VIDEO_ABS, f"{name} video")
        crop = np.asarray(pc["video_input_f0_c0_y100_x100_4x4"])
        assert np.abs(v[0, 0, 100:104, 100:104] - crop).max() <= VIDEO_ABS, name
        assert abs(float(v[-1].mean()) - pc["video_input_last_frame_mean"]) <= VIDEO_ABS, name  # black pad
        # 16 kHz wavs are exact; the 44.1 kHz stereo clip goes through the sinc resampler
        tol = 0.0 if c.sr == AUDIO_SR else 1e-5
        _check_summary(p["audio"], pc["audio_input"], tol, f"{name} audio")
        assert np.abs(p["audio"][:8] - np.asarray(pc["audio_first8"])).max() <= tol, name


def test_log_mel_matches_official(prepared: dict[str, dict], expected: tuple[dict, dict]) -> None:
    _, js = expected
    for pc in js["per_clip"]:
        a = torch.from_numpy(prepared[pc["name"]]["audio"])[None]
        mel = log_mel(audio_segments(a))[0].numpy()[:, None]                   # (11, 1, 128, 66)
        _check_summary(mel, pc["mel_input"], MEL_ABS, pc["name"])
        tail = np.asarray(pc["mel_input_seg0_bins0_4_lastcols"])              # ends in the log-domain pad
        assert np.abs(mel[0, 0, :4, -tail.shape[1]:] - tail).max() <= MEL_ABS, pc["name"]


def test_prepare_rejects_bad_input(encoder: SynchformerEncoder, clips: dict[str, DecodedClip]) -> None:
    c = clips["clip_00"]
    too_short = SynchformerEncoder(OFFICIAL.replace(max_audio_len_s=0.5))
    with pytest.raises(SampleError, match="clip_00.*segments"):
        too_short.prepare(c, "", "")
    with pytest.raises(SampleError, match="clip_00.*video frames"):
        encoder.prepare(dataclasses.replace(c, frames=c.frames[..., 0]), "", "")
    bad = c.audio.copy()
    bad[0, 10] = np.nan
    with pytest.raises(SampleError, match="clip_00.*NaN"):
        encoder.prepare(dataclasses.replace(c, audio=bad), "", "")


# --------------------------------------------------------------------------------------------
# network parity, cheap parts (every clip)
# --------------------------------------------------------------------------------------------
def test_audio_features_match_fixture(encoder: SynchformerEncoder, prepared: dict[str, dict],
                                      expected: tuple[dict, dict]) -> None:
    # three clips here (plain 16 kHz, silence-padded 2 s, resampled 44.1 kHz stereo); all seven in the slow test
    npz, _ = expected
    names = [str(n) for n in npz["names"]]
    rows = [names.index(n) for n in ("clip_00", "edge_short2s", "edge_44k_stereo")]
    with torch.inference_mode():
        af = encoder.audio_features([prepared[names[i]]["audio"] for i in rows]).numpy()
    assert af.shape == (3, 11, 6, 768)
    assert np.abs(af - npz["afeats"][rows]).max() <= FEAT_ABS


def test_group_logits_on_fixture_features(encoder: SynchformerEncoder, expected: tuple[dict, dict]) -> None:
    npz, js = expected
    names = [str(n) for n in npz["names"]]
    vf = torch.from_numpy(npz["vfeats"]).view(len(names), 11, 8, 768)      # rows are (b s): clip-major
    af = torch.from_numpy(npz["afeats"])
    with torch.inference_mode():
        logits = encoder.group_logits(vf, af).numpy()                        # (7, 1, 21)
    assert logits.shape == (7, 1, 21)
    per_clip = {pc["name"]: pc for pc in js["per_clip"]}
    for i, n in enumerate(names):
        ref = npz[f"logits__{n}"]
        assert np.abs(logits[i] - ref).max() <= LOGIT_ABS, n
        assert np.abs(np.asarray(per_clip[n]["group_logits"]) - ref).max() == 0.0     # the two files agree
        assert _argmax_agrees(logits[i, 0], ref[0]), n
        if int(np.argmax(logits[i, 0])) == int(np.argmax(ref[0])):
            assert float(offsets_from_logits(logits[i]).mean()) == pytest.approx(per_clip[n]["desync"], abs=1e-7)
    if (np.argmax(logits, -1).ravel() == [int(np.argmax(npz[f"logits__{n}"])) for n in names]).all():
        desync = assign_group_offsets(offsets_from_logits(logits).ravel(), [1] * len(names), official_bug=True)
        assert desync.mean() == pytest.approx(js["desync"], abs=1e-6)
        assert np.allclose(desync, npz["desync"], atol=1e-7)


# --------------------------------------------------------------------------------------------
# the whole encoder on one-segment clips (0.64 s protocol)
# --------------------------------------------------------------------------------------------
def _audio_ahead(clip: DecodedClip, seconds: float) -> DecodedClip:
    """The clip with its audio moved ``seconds`` earlier (the start dropped, silence appended)."""
    d = int(round(seconds * clip.sr))
    audio = np.zeros_like(clip.audio)
    audio[:, :clip.audio.shape[1] - d] = clip.audio[:, d:]
    return dataclasses.replace(clip, audio=audio)


SHIFTS_S = (0.2, 0.6, 1.0)


@pytest.fixture(scope="module")
def one_segment(encoder: SynchformerEncoder, clips: dict[str, DecodedClip]) -> tuple[SynchformerEncoder, list, list]:
    """0.64 s protocol (S = 1): clip_00 and clip_00 with its audio 0.2 / 0.6 / 1.0 s ahead, prepared;
    ``encode`` run on [clip_00, audio 0.6 s ahead] in one batch."""
    enc = _encoder_for(encoder, ONE_SEGMENT_S)
    items = [clips["clip_00"]] + [_audio_ahead(clips["clip_00"], s) for s in SHIFTS_S]
    prep = [enc.prepare(c, "", "") for c in items]
    return enc, prep, enc.encode([prep[0], prep[2]])


def test_encode_one_segment_matches_fixture_features(one_segment: tuple, expected: tuple[dict, dict]) -> None:
    enc, prep, feats = one_segment
    npz, _ = expected
    assert prep[0]["video"].shape == (16, 3, 224, 224) and prep[0]["audio"].shape == (10240,)
    out = feats[0]
    assert set(out) == {"logits", "group_offsets"}
    assert out["logits"].shape == (1, 21) and out["logits"].dtype == np.float32
    assert out["group_offsets"].shape == (1,) and out["group_offsets"].dtype == np.float32
    # reference: the official group of a one-segment clip is segment 0 repeated 14 times; segment 0
    # (frames 0..15 at 25 fps, samples 0..10239) is the same as at 4 s, so its features are the fixture's
    v0 = torch.from_numpy(npz["vfeats"][0]).expand(14, 8, 768)[None]
    a0 = torch.from_numpy(npz["afeats"][0, 0]).expand(14, 6, 768)[None]
    with torch.inference_mode():
        ref = enc._model().compare_v_a(v0, a0).numpy()
    assert np.abs(out["logits"] - ref).max() <= LOGIT_ABS
    assert _argmax_agrees(out["logits"][0], ref[0])


def test_shifted_audio_plumbing(one_segment: tuple, prepared: dict[str, dict], expected: tuple[dict, dict]) -> None:
    """Audio moved 0.2 / 0.6 / 1.0 s earlier against the same video.

    With fill weights the predicted offsets carry no meaning (that needs the real checkpoint), so
    this checks the plumbing only: the video input is unchanged, the audio input is the original
    signal read exactly ``shift`` later, the logits move, and the offsets are the grid values of
    the argmax.  The per-stage path (video features once, audio features per shift) must also
    give what ``encode`` gave for the same sample inside a batch of two.
    """
    enc, prep, feats = one_segment
    npz, _ = expected
    full = prepared["clip_00"]["audio"]                 # the first 4 s of the same 16 kHz audio
    assert np.array_equal(prep[0]["audio"], full[:10240])
    with torch.inference_mode():
        vf = enc.video_features([prep[0]["video"]])                          # (1, 1, 8, 768)
        assert np.abs(vf.numpy()[0] - npz["vfeats"][0]).max() <= FEAT_ABS     # MotionFormer, segment 0
        logits = {0.0: feats[0]["logits"]}
        for shift, p in zip(SHIFTS_S, prep[1:]):
            d = int(round(shift * AUDIO_SR))
            assert np.array_equal(p["video"], prep[0]["video"])
            assert np.array_equal(p["audio"], full[d:d + 10240])
            logits[shift] = enc.group_logits(vf, enc.audio_features([p["audio"]])).numpy()[0]
    # batch composition: the 0.6 s sample alone vs. encoded next to the unshifted one
    assert np.abs(logits[0.6] - feats[1]["logits"]).max() <= 1e-5
    for shift in SHIFTS_S:
        assert np.isfinite(logits[shift]).all()
        assert np.abs(logits[shift] - logits[0.0]).max() > 10 * LOGIT_ABS, shift
    for f in feats:
        assert np.array_equal(f["group_offsets"], OFFSET_GRID[np.argmax(f["logits"], axis=-1)])
        assert np.array_equal(np.abs(f["group_offsets"]), offsets_from_logits(f["logits"]))


# --------------------------------------------------------------------------------------------
# full-length parity (slow)
# --------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_full_clips_match_fixture(encoder: SynchformerEncoder, prepared: dict[str, dict],
                                  expected: tuple[dict, dict]) -> None:
    """All 7 clips at 4 s in one batch: MotionFormer features, logits, offsets and desync."""
    npz, js = expected
    names = [str(n) for n in npz["names"]]
    with torch.inference_mode():
        vf = encoder.video_features([prepared[n]["video"] for n in names])     # (7, 11, 8, 768)
        af = encoder.audio_features([prepared[n]["audio"] for n in names])
        logits = encoder.group_logits(vf, af).numpy()                          # (7, 1, 21)
    assert np.abs(vf.numpy().reshape(77, 1, 8, 768) - npz["vfeats"]).max() <= FEAT_ABS
    assert np.abs(af.numpy() - npz["afeats"]).max() <= FEAT_ABS
    per_clip = {pc["name"]: pc for pc in js["per_clip"]}
    for i, n in enumerate(names):
        ref = npz[f"logits__{n}"]
        assert np.abs(logits[i] - ref).max() <= LOGIT_ABS, n
        assert _argmax_agrees(logits[i, 0], ref[0]), n
        if int(np.argmax(logits[i, 0])) == per_clip[n]["group_argmax"][0]:
            assert float(offsets_from_logits(logits[i])[0]) == pytest.approx(per_clip[n]["group_abs_offset"][0])


@pytest.mark.slow
def test_multigroup_8s_matches_fixture(encoder: SynchformerEncoder, clips: dict[str, DecodedClip]) -> None:
    """8 s: 24 segments, groups 0..13 and 10..23; the official per-sample scrambling (bug 8b-19)."""
    ref = json.loads((FIXTURE / "expected_multigroup_8s.json").read_text())
    enc = _encoder_for(encoder, ref["max_length_s"])
    prep = [enc.prepare(clips[n], "", "") for n in ref["clips"]]
    assert prep[0]["video"].shape == (200, 3, 224, 224) and prep[0]["audio"].shape == (128000,)
    feats = enc.encode(prep)
    group_logits = np.asarray(ref["group_logits"])                            # (G, B, 21), group-major
    assert group_logits.shape == (ref["n_groups"], len(ref["clips"]), 21)
    for b, f in enumerate(feats):
        assert f["logits"].shape == (ref["n_groups"], 21)
        assert np.abs(f["logits"] - group_logits[:, b]).max() <= LOGIT_ABS
        for g in range(ref["n_groups"]):
            assert _argmax_agrees(f["logits"][g], group_logits[g, b]), (b, g)
    if all(int(np.argmax(f["logits"][g])) == int(np.argmax(group_logits[g, b]))
           for b, f in enumerate(feats) for g in range(ref["n_groups"])):
        per_sample = [np.abs(f["group_offsets"]) for f in feats]
        official = assign_group_offsets(to_official_order(per_sample), [len(p) for p in per_sample],
                                        official_bug=True, order="official")
        fixed = assign_group_offsets(np.concatenate(per_sample), [len(p) for p in per_sample], official_bug=False)
        assert np.allclose(official, ref["official_desync_per_sample"], atol=1e-6)
        assert np.allclose(fixed, ref["per_sample_if_unscrambled"], atol=1e-6)
        assert official.mean() == pytest.approx(ref["official_desync_mean"], abs=1e-6)
