"""Views: golden parity (I3D, CLIP, AVH, AudioCLIP, Synchformer readers) and independent references."""
from __future__ import annotations

import ast
import json
import math
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("av")

from javisbench import views as V  # noqa: E402
from javisbench.decode import DecodedClip, decode_sample  # noqa: E402

GOLDEN = Path(__file__).resolve().parent / "golden"
INPUTS = GOLDEN / "inputs"
CLIPS = ["clip_00", "clip_01", "clip_02", "clip_03", "edge_short2s", "edge_5p3s_30fps", "edge_44k_stereo"]


@lru_cache(maxsize=None)
def clip(name: str) -> DecodedClip:
    return decode_sample(INPUTS / f"{name}.mp4", INPUTS / f"{name}.wav")


@lru_cache(maxsize=None)
def golden_json(rel: str) -> Any:
    return json.loads((GOLDEN / rel).read_text())


def per_clip(rel: str) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in golden_json(rel)["per_clip"]}


def summary(v: Any) -> dict[str, Any]:
    return ast.literal_eval(v) if isinstance(v, str) else v


def check_summary(x: np.ndarray, s: dict[str, Any], atol: float) -> None:
    """shape, mean/std/min/max (float64) and the recorded flat samples within ``atol``."""
    assert list(x.shape) == s["shape"]
    assert abs(float(x.mean(dtype=np.float64)) - s["mean"]) <= atol
    assert abs(float(x.std(dtype=np.float64)) - s["std"]) <= atol
    assert abs(float(x.min()) - s["min"]) <= atol and abs(float(x.max()) - s["max"]) <= atol
    np.testing.assert_allclose(x.reshape(-1)[s["sample_flat_index"]], s["sample_values"], rtol=0, atol=atol)


def rand_frames(t: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (t, h, w, 3), dtype=np.uint8)


# ---- frame indices ------------------------------------------------------------------------------------------
def test_linspace_indices_equal_torch_float32_linspace_rounded() -> None:
    for count in list(range(1, 200)) + [239, 240, 241, 480, 719, 1000, 2999]:
        for num in (1, 2, 3, 5, 8, 16, 24, 48, 100):
            ref = torch.linspace(0, count - 1, num).round().long().numpy()
            np.testing.assert_array_equal(V.linspace_indices(count, num), ref, err_msg=f"{count=} {num=}")


def test_linspace_indices_half_to_even_and_golden() -> None:
    assert V.linspace_indices(4, 3).tolist() == [0, 2, 3]      # 1.5 -> 2
    assert V.linspace_indices(6, 3).tolist() == [0, 2, 5]      # 2.5 -> 2
    assert V.linspace_indices(3, 5).tolist() == [0, 0, 1, 2, 2]  # repeats for short videos
    for name, c in per_clip("i3d/expected.json").items():
        assert V.linspace_indices(c["cv2_frame_count"], 16).tolist() == c["frame_indices"], name
    with pytest.raises(ValueError, match="count: expected a positive integer, got 0"):
        V.linspace_indices(0, 16)


def test_sample_and_pad_frames() -> None:
    f = rand_frames(10, 4, 6)
    np.testing.assert_array_equal(V.sample_frames(f, 4), f[[0, 3, 6, 9]])
    p = V.pad_frames(f, 13)
    assert p.shape == (13, 4, 6, 3) and p.dtype == np.uint8
    np.testing.assert_array_equal(p[:10], f)
    assert not p[10:].any()
    assert V.pad_frames(f, 5) is f


# ---- letterbox / FVD ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("h,w", [(240, 426), (426, 240), (100, 100), (37, 301), (224, 224), (480, 640)])
def test_letterbox_equals_torchvision_resize_and_pad(h: int, w: int) -> None:
    tvf = pytest.importorskip("torchvision.transforms.functional")
    frames = rand_frames(2, h, w, seed=h * w)
    out = V.letterbox(frames, 224)
    assert out.shape == (2, 3, 224, 224) and out.dtype == np.float32
    for k in range(2):
        img = torch.from_numpy(frames[k]).permute(2, 0, 1).float().div(255)
        nh, nw = (224, int(224 * w / h)) if h >= w else (int(224 * h / w), 224)
        r = tvf.resize(img, [nh, nw], interpolation=tvf.InterpolationMode.BILINEAR, antialias=True)
        ref = torch.zeros(3, 224, 224)
        top, left = (224 - nh) // 2, (224 - nw) // 2
        ref[:, top:top + nh, left:left + nw] = r
        np.testing.assert_array_equal(out[k], ref.numpy())


@pytest.mark.parametrize("name", CLIPS)
def test_fvd_video_matches_i3d_golden(name: str) -> None:
    """README tolerance: mean within 0.05; none at all with torchvision's antialiased Resize (ours)."""
    c = per_clip("i3d/expected.json")[name]
    u8 = V.fvd_video(clip(name).frames, num_frames=16, size=224, remap_127=True)
    assert u8.dtype == np.uint8
    check_summary(u8, c["dataset_video_uint8"], atol=1e-9)
    i3d_in = (u8.transpose(1, 0, 2, 3).astype(np.float32) / 255 - 0.5) * 2
    check_summary(i3d_in, c["i3d_input"], atol=1e-6)
    np.testing.assert_allclose(i3d_in[0, 0, 100:104, 100:104], c["i3d_input_crop_c0_t0_y100_x100_4x4"], rtol=0, atol=1e-7)


def test_fvd_video_clip0_equals_recorded_i3d_input_pixel_for_pixel() -> None:
    ref = np.load(GOLDEN / "i3d" / "expected.npz")["i3d_input_clip0"].astype(np.float32)   # (3,16,224,224) f16
    u8_ref = np.round((ref / 2 + 0.5) * 255).astype(np.int16)   # f16 error << one u8 step (2/255)
    u8 = V.fvd_video(clip("clip_00").frames).transpose(1, 0, 2, 3).astype(np.int16)
    assert int((u8 != u8_ref).sum()) == 0


def test_fvd_video_without_the_remap_quirk() -> None:
    frames = clip("clip_01").frames
    quirk = V.fvd_video(frames, 8, 64, remap_127=True)
    fixed = V.fvd_video(frames, 8, 64, remap_127=False)
    x = V.letterbox(V.sample_frames(frames, 8), 64)
    np.testing.assert_array_equal(fixed, np.round(x * 255).astype(np.uint8))
    assert quirk.min() >= 127 and fixed.min() == 0  # letterbox bars: 127 with the quirk, 0 without
    np.testing.assert_array_equal(quirk, np.floor((x + 1) * np.float32(127.5)).astype(np.uint8))


# ---- PIL resize + crop, CLIP normalisation ---------------------------------------------------------------------
@pytest.mark.parametrize("h,w", [(240, 426), (426, 240), (240, 320), (224, 300), (150, 150), (97, 451)])
def test_resize_short_crop_equals_torchvision_pil_transform(h: int, w: int) -> None:
    T = pytest.importorskip("torchvision.transforms")
    from PIL import Image

    frames = rand_frames(2, h, w, seed=h + w)
    tf = T.Compose([T.Resize(224, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(224)])
    out = V.resize_short_crop_pil(frames, 224)
    assert out.shape == (2, 224, 224, 3) and out.dtype == np.uint8
    for k in range(2):
        np.testing.assert_array_equal(out[k], np.asarray(tf(Image.fromarray(frames[k]))))
    tfb = T.Compose([T.Resize(100, interpolation=T.InterpolationMode.BILINEAR), T.CenterCrop(100)])
    np.testing.assert_array_equal(V.resize_short_crop_pil(frames, 100, "bilinear")[0], np.asarray(tfb(Image.fromarray(frames[0]))))


def test_normalize_clip_equals_totensor_normalize() -> None:
    T = pytest.importorskip("torchvision.transforms")
    from PIL import Image

    frames = rand_frames(2, 8, 10)
    tf = T.Compose([T.ToTensor(), T.Normalize(V.CLIP_MEAN, V.CLIP_STD)])
    out = V.normalize_clip(frames)
    assert out.shape == (2, 3, 8, 10) and out.dtype == np.float32
    for k in range(2):
        np.testing.assert_array_equal(out[k], tf(Image.fromarray(frames[k])).numpy())


def test_to_bgr() -> None:
    f = rand_frames(1, 3, 4)
    b = V.to_bgr(f)
    np.testing.assert_array_equal(b[..., 0], f[..., 2])
    assert b.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(V.to_bgr(b), f)


@pytest.mark.parametrize("name", CLIPS)
def test_clip_image_input_matches_golden(name: str) -> None:
    """CLIP sees BGR (quirk 8a.7): 48 linspace frames, PIL bicubic 224 + crop, CLIP mean/std. README: abs 1e-5."""
    c = per_clip("clip/expected.json")[name]
    x = V.normalize_clip(V.resize_short_crop_pil(V.to_bgr(V.sample_frames(clip(name).frames, 48))))
    check_summary(x, summary(c["image_input"]), atol=1e-5)
    np.testing.assert_allclose(x[0, 0, 100:104, 100:104], summary(c["image_input_f0_c0_y100_x100_4x4"]), rtol=0, atol=1e-5)
    np.testing.assert_allclose(x[0, :, 100, 100], summary(c["image_input_f0_pixel_100_100_rgbplanes"]), rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", CLIPS)
def test_avh_vision_input_matches_golden(name: str) -> None:
    """AVH/JavisScore: every frame, RGB, PIL bicubic 224 + crop, CLIP mean/std."""
    c = per_clip("math/avh_javis_stub_expected.json")[name]
    x = V.normalize_clip(V.resize_short_crop_pil(clip(name).frames))
    check_summary(x, c["avh_vision_input"], atol=1e-5)


# ---- fps conversion -------------------------------------------------------------------------------------------
def _graph_fps(path: Path, fps: int) -> list[np.ndarray]:
    """Frames out of PyAV's own filter graph ``buffer -> fps -> buffersink``."""
    import av
    import av.filter

    frames: list[np.ndarray] = []
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        g = av.filter.Graph()
        src = g.add_buffer(template=s)
        f = g.add("fps", f"fps={fps}")
        sink = g.add("buffersink")
        src.link_to(f)
        f.link_to(sink)
        g.configure()

        def drain() -> None:
            while True:
                try:
                    o = g.pull()
                except (av.error.BlockingIOError, av.error.EOFError):
                    return
                frames.append(o.to_ndarray(format="rgb24"))

        for fr in c.decode(s):
            g.push(fr)
            drain()
        g.push(None)
        drain()
    return frames


@pytest.mark.parametrize("name,target", [("clip_00", 25), ("edge_5p3s_30fps", 25), ("edge_44k_stereo", 25),
                                         ("clip_01", 4), ("edge_5p3s_30fps", 4)])
def test_video_at_fps_equals_ffmpeg_fps_filter(name: str, target: int) -> None:
    """PyAV's graph closes at the last frame's end: our eof="end" must pick the same frames."""
    cl = clip(name)
    ref = _graph_fps(INPUTS / f"{name}.mp4", target)
    out, idx = V.video_at_fps(cl.frames, cl.fps, target, pts=cl.pts, time_base=cl.time_base, eof="end")
    assert len(ref) == len(idx) and out.shape[0] == len(idx)
    for j, r in enumerate(ref):
        np.testing.assert_array_equal(out[j], r, err_msg=f"output frame {j} (input {idx[j]})")
    # without pts (constant frame rate assumed) the selection is the same on these CFR files
    np.testing.assert_array_equal(V.fps_indices(cl.n_frames, cl.fps, target, eof="end"), idx)


def test_video_at_fps_last_pts_matches_torio_counts_and_desync_input() -> None:
    """torio (official DeSync reader) yields 99 frames for 4 s @ 24 fps -> one black pad frame."""
    tv = pytest.importorskip("torchvision.transforms.v2")
    sj = golden_json("synchformer/expected.json")
    counts = sj["torio_decoded_frames"]
    pcs = per_clip("synchformer/expected.json")
    tf = tv.Compose([tv.Resize(224, interpolation=tv.InterpolationMode.BICUBIC, antialias=True), tv.CenterCrop(224),
                     tv.ToDtype(torch.float32, scale=True), tv.Normalize((0.5,) * 3, (0.5,) * 3)])
    for name in CLIPS:
        cl = clip(name)
        out, idx = V.video_at_fps(cl.frames, cl.fps, 25, pts=cl.pts, time_base=cl.time_base, eof="last_pts")
        assert min(len(idx), 100) == counts[name], name
        if name in ("clip_00", "edge_short2s", "edge_5p3s_30fps"):   # the full summary costs ~1 s per clip
            v = V.pad_frames(out[:100], 100)
            x = tf(torch.from_numpy(v).permute(0, 3, 1, 2)).numpy()
            check_summary(x, summary(pcs[name]["video_input"]), atol=1e-5)
            assert float(x[-1].mean()) == pytest.approx(pcs[name]["video_input_last_frame_mean"], abs=1e-5)


def test_fps_indices_rounding_and_ntsc_rates() -> None:
    # 24 -> 25: input 12 lands at 12.5 -> 13 (FFmpeg rounds half away from zero), so output 12 repeats input 11
    idx = V.fps_indices(48, 24, 25, eof="end")
    assert len(idx) == 50 and idx[11] == 11 and idx[12] == 11 and idx[13] == 12
    # 30 -> 4: input i lands at round(i*4/30); output j shows the last input landing at <= j,
    # i.e. inputs 0-3 land on 0 and output 0 shows input 3 (the frame nearest before 0.125 s)
    assert V.fps_indices(30, 30, 4, eof="end").tolist() == [3, 11, 18, 26]
    # NTSC 29.97 as a float and as exact pts/time_base give the same selection
    n = 300
    a = V.fps_indices(n, 30000 / 1001, 25, eof="end")
    b = V.fps_indices(n, 30000 / 1001, 25, pts=np.arange(n) * 1001, time_base=__import__("fractions").Fraction(1, 30000), eof="end")
    np.testing.assert_array_equal(a, b)
    assert len(a) == round(n * 1001 / 30000 * 25)
    assert np.all(np.diff(a) >= 0) and a[0] == 0 and a[-1] == n - 1
    with pytest.raises(ValueError, match="eof"):
        V.fps_indices(10, 24, 25, eof="later")  # type: ignore[arg-type]


# ---- audio ----------------------------------------------------------------------------------------------------
def test_mono_channel0_fixed_length() -> None:
    x = np.stack([np.arange(6, dtype=np.float32), 2 * np.arange(6, dtype=np.float32)])
    np.testing.assert_array_equal(V.mono(x), 1.5 * np.arange(6, dtype=np.float32))
    np.testing.assert_array_equal(V.channel0(x), x[0])
    np.testing.assert_array_equal(V.fixed_length(x, 4), x[:, :4])
    y = V.fixed_length(x[0], 9)
    assert y.shape == (9,) and not y[6:].any()
    with pytest.raises(ValueError, match=r"expected shape \(C, L\), got \(6,\)"):
        V.mono(x[0])
    with pytest.raises(ValueError, match="floating dtype"):
        V.mono(x.astype(np.int16))


@pytest.mark.parametrize("kind", ["kaiser_best", "soxr_hq", "sinc_hann"])
def test_resample_identity(kind: str) -> None:
    x = np.random.default_rng(1).standard_normal((2, 1000)).astype(np.float32)
    y = V.resample(x, 16000, 16000, kind)  # type: ignore[arg-type]
    np.testing.assert_array_equal(y, x)
    assert y is not x


@pytest.mark.parametrize("name", CLIPS)
def test_librosa_load_like_kaiser_best_matches_audioclip_input(name: str) -> None:
    """librosa 0.9.2 reader: mono, resampy kaiser_best to 16 kHz, 4 s, zero pad (the 44.1 kHz stereo clip resamples)."""
    ac = np.load(GOLDEN / "audioclip" / "expected.npz")
    ref = ac["audio_input"][list(ac["names"]).index(name)]
    cl = clip(name)
    y = V.librosa_load_like(cl.audio, cl.sr, 16000, "kaiser_best", max_len_s=4.0)
    assert y.shape == (1, 64000) and y.dtype == np.float32
    np.testing.assert_allclose(y[0], ref, rtol=0, atol=1e-6)


def test_kaiser_best_and_soxr_hq_equal_librosa_resample() -> None:
    librosa = pytest.importorskip("librosa")
    pytest.importorskip("resampy")
    cl = clip("edge_44k_stereo")
    for kind in ("kaiser_best", "soxr_hq"):
        for sr_out in (16000, 48000):
            ref = librosa.resample(cl.audio, orig_sr=cl.sr, target_sr=sr_out, res_type=kind)
            y = V.resample(cl.audio, cl.sr, sr_out, kind)  # type: ignore[arg-type]
            assert y.shape == (2, math.ceil(cl.audio.shape[1] * sr_out / cl.sr))
            np.testing.assert_allclose(y, ref, rtol=0, atol=1e-7)
    y = V.librosa_load_like(cl.audio, cl.sr, 16000, "soxr_hq", max_len_s=1.0, pad=False)
    assert y.shape == (1, 16000)
    assert V.librosa_load_like(cl.audio, cl.sr, 16000, "soxr_hq", max_len_s=3.0, pad=False).shape == (1, 25600)


@pytest.mark.parametrize("name", CLIPS)
def test_sinc_hann_matches_synchformer_audio_input(name: str) -> None:
    """torchaudio reader of the DeSync path: channel mean, torchaudio resample (sinc-Hann), 4 s."""
    c = per_clip("synchformer/expected.json")[name]
    cl = clip(name)
    a = V.fixed_length(V.resample(V.mono(cl.audio), cl.sr, 16000, "sinc_hann"), 64000)
    np.testing.assert_allclose(a[:8], c["audio_first8"], rtol=0, atol=1e-6)
    check_summary(a, summary(c["audio_input"]), atol=1e-6)


def _sinc_hann_reference(x: np.ndarray, sr_in: int, sr_out: int, w: int = 6, rolloff: float = 0.99) -> np.ndarray:
    """Direct evaluation of torchaudio's definition in float64, one output sample at a time."""
    g = math.gcd(sr_in, sr_out)
    orig, new = sr_in // g, sr_out // g
    base = min(orig, new) * rolloff
    n_out = math.ceil(new * len(x) / orig)
    i = np.arange(len(x))
    y = np.empty(n_out)
    for j in range(n_out):
        t = np.clip((i / orig - j / new) * base, -w, w)
        win = np.cos(t * np.pi / w / 2) ** 2
        s = np.where(t == 0, 1.0, np.sin(np.pi * t) / np.where(t == 0, 1.0, np.pi * t))
        y[j] = np.sum(x * s * win) * base / orig
    return y


@pytest.mark.parametrize("sr_in,sr_out", [(44100, 16000), (16000, 48000), (22050, 16000), (48000, 16000)])
def test_sinc_hann_equals_direct_formula(sr_in: int, sr_out: int) -> None:
    x = np.random.default_rng(sr_in).standard_normal(700).astype(np.float32) * 0.3
    y = V.resample(x, sr_in, sr_out, "sinc_hann")
    ref = _sinc_hann_reference(x.astype(np.float64), sr_in, sr_out)
    assert y.shape == ref.shape
    np.testing.assert_allclose(y, ref, rtol=0, atol=2e-5)


def test_sinc_hann_keeps_tones_and_rejects_aliases() -> None:
    sr_in, sr_out, n = 44100, 16000, 44100
    t = np.arange(n) / sr_in

    def level(f: float) -> tuple[float, float]:
        y = V.resample((0.5 * np.sin(2 * np.pi * f * t)).astype(np.float32), sr_in, sr_out, "sinc_hann")
        seg = y[2000:-2000].astype(np.float64)
        spec = np.abs(np.fft.rfft(seg * np.hanning(len(seg))))
        return float(np.fft.rfftfreq(len(seg), 1 / sr_out)[np.argmax(spec)]), float(np.sqrt(np.mean(seg**2)))

    f_peak, rms = level(1000.0)
    assert abs(f_peak - 1000.0) < 2.0 and rms == pytest.approx(0.5 / np.sqrt(2), rel=1e-3)
    _, rms_alias = level(11000.0)       # above the new Nyquist (8 kHz): must not fold back to 5 kHz
    assert 20 * np.log10(rms_alias / (0.5 / np.sqrt(2))) < -40


def test_sinc_hann_then_kaldi_fbank_matches_javis_window_input() -> None:
    """ImageBind audio path on the 1.6 s 44.1 kHz stereo clip: resample all channels, fbank of channel 0."""
    kaldi = pytest.importorskip("javisbench.kaldi")
    ref = np.load(GOLDEN / "math" / "avh_javis_stub_embeddings.npz")["edge_44k_stereo__javis_audio_input"][0, 0, 0]
    cl = clip("edge_44k_stereo")
    y = V.resample(cl.audio, cl.sr, 16000, "sinc_hann")
    y = y - y.mean()
    f = kaldi.fbank(torch.from_numpy(np.ascontiguousarray(y)), sample_frequency=16000, num_mel_bins=128,
                    window_type="hanning", htk_compat=True, dither=0.0, frame_shift=10).T.numpy()
    assert f.shape == (128, 158)
    f = (np.pad(f, ((0, 0), (0, 204 - f.shape[1]))) + 4.268) / 9.138
    np.testing.assert_allclose(f, ref, rtol=0, atol=1e-4)   # README: abs 1e-4 for fbank


def test_resample_validation() -> None:
    x = np.zeros((1, 100), np.float32)
    with pytest.raises(ValueError, match="kind: expected"):
        V.resample(x, 16000, 8000, "linear")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="sr_out: expected a positive integer"):
        V.resample(x, 16000, 0, "sinc_hann")
    with pytest.raises(ValueError, match="max_len_s"):
        V.librosa_load_like(x, 16000, 16000, max_len_s=0)


def test_frame_validation_messages() -> None:
    with pytest.raises(ValueError, match=r"expected shape \(T, H, W, 3\), got \(4, 4, 3\)"):
        V.letterbox(np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="expected dtype uint8, got float32"):
        V.resize_short_crop_pil(np.zeros((1, 4, 4, 3), np.float32))
    with pytest.raises(ValueError, match="expected a numpy array"):
        V.sample_frames([[1, 2]], 2)  # type: ignore[arg-type]
