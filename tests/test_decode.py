"""decode_sample / probe_sample: parity with cv2 and libsndfile, AAC trimming, bad input."""
from __future__ import annotations

import hashlib
import json
import struct
import wave
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

av = pytest.importorskip("av")

from javisbench.decode import DecodeError, DecodedClip, content_hash, decode_sample, probe_sample  # noqa: E402

GOLDEN = Path(__file__).resolve().parent / "golden"
INPUTS = GOLDEN / "inputs"
CLIPS = ["clip_00", "clip_01", "clip_02", "clip_03", "edge_short2s", "edge_5p3s_30fps", "edge_44k_stereo"]


# ---- synthetic media helpers ----------------------------------------------------------------------
def _frame_img(i: int, w: int, h: int) -> np.ndarray:
    rng = np.random.default_rng(i)
    img = np.kron(rng.integers(0, 256, (h // 8 + 1, w // 8 + 1, 3)).astype(np.uint8), np.ones((8, 8, 1), np.uint8))
    return np.ascontiguousarray(img[:h, :w])


def write_mp4(path: Path, n_frames: int = 24, fps: int = 24, w: int = 64, h: int = 48, audio: np.ndarray | None = None,
              sr: int = 16000, faststart: bool = False, colorspace: int | None = None, video: bool = True,
              rotation: int = 0, first_image: int = 0) -> Path:
    """H.264 (+ AAC) mp4 written with PyAV; ``audio`` is (C, L) float32; frame i shows block image
    ``first_image + i``."""
    out = av.open(str(path), "w", options={"movflags": "+faststart"} if faststart else {})
    vs = None
    if video:
        vs = out.add_stream("libx264", rate=fps)
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        if colorspace is not None:
            vs.codec_context.colorspace = colorspace
        if rotation:
            vs.set_display_rotation(rotation)
    as_ = None
    if audio is not None:
        as_ = out.add_stream("aac", rate=sr)
        as_.layout = "mono" if audio.shape[0] == 1 else "stereo"
    if vs is not None:
        for i in range(n_frames):
            fr = av.VideoFrame.from_ndarray(_frame_img(first_image + i, w, h), format="rgb24")
            fr.pts = i
            for p in vs.encode(fr):
                out.mux(p)
        for p in vs.encode():
            out.mux(p)
    if as_ is not None:
        fs = as_.codec_context.frame_size or 1024
        for pos in range(0, audio.shape[1], fs):
            chunk = np.ascontiguousarray(audio[:, pos:pos + fs], np.float32)
            fr = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=as_.layout.name)
            fr.sample_rate, fr.pts = sr, pos
            for p in as_.encode(fr):
                out.mux(p)
        for p in as_.encode():
            out.mux(p)
    out.close()
    return path


def write_wav_pcm16(path: Path, x: np.ndarray, sr: int) -> Path:
    """(C, L) float in [-1,1) -> PCM16 wav with the stdlib."""
    q = np.clip(np.round(x * 32768), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as f:
        f.setnchannels(x.shape[0])
        f.setsampwidth(2)
        f.setframerate(sr)
        f.writeframes(q.T.tobytes())
    return path


def write_wav_float(path: Path, x: np.ndarray, sr: int) -> Path:
    """(C, L) float32 IEEE-float wav (format tag 3), written by hand: may hold NaN/inf."""
    data = np.ascontiguousarray(x.T, "<f4").tobytes()
    c = x.shape[0]
    fmt = struct.pack("<HHIIHH", 3, c, sr, sr * 4 * c, 4 * c, 32)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return path


def tone(sr: int, n: int, channels: int = 1) -> np.ndarray:
    t = np.arange(n) / sr
    x = 0.3 * np.sin(2 * np.pi * 440.0 * t)
    return np.tile(x.astype(np.float32), (channels, 1))


def cv2_frames(path: Path) -> tuple[np.ndarray, float]:
    cv2 = pytest.importorskip("cv2")
    cap = cv2.VideoCapture(str(path))
    fps = cap.get(cv2.CAP_PROP_FPS)
    frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(f[..., ::-1])
    cap.release()
    return np.stack(frames), fps


# ---- golden clips -------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", CLIPS)
def test_frames_equal_cv2_bit_for_bit(name: str) -> None:
    """The official reader is cv2; every frame must be identical (max |diff| = 0)."""
    clip = decode_sample(INPUTS / f"{name}.mp4", INPUTS / f"{name}.wav")
    ref, fps = cv2_frames(INPUTS / f"{name}.mp4")
    assert clip.frames.dtype == np.uint8 and clip.frames.shape == ref.shape
    assert int(np.abs(clip.frames.astype(np.int16) - ref).max()) == 0
    assert clip.fps == fps
    assert clip.duration_s == pytest.approx(clip.n_frames / fps)
    assert clip.warnings == ()


def test_threading_does_not_change_frames() -> None:
    a = decode_sample(INPUTS / "clip_01.mp4", INPUTS / "clip_01.wav", threads=1)
    b = decode_sample(INPUTS / "clip_01.mp4", INPUTS / "clip_01.wav", threads=2)
    np.testing.assert_array_equal(a.frames, b.frames)


def test_frame_counts_match_golden_cv2_counts() -> None:
    per_clip = json.loads((GOLDEN / "i3d" / "expected.json").read_text())["per_clip"]
    for c in per_clip:
        clip = decode_sample(INPUTS / f"{c['name']}.mp4", INPUTS / f"{c['name']}.wav")
        assert clip.n_frames == c["cv2_frame_count"], c["name"]
        assert clip.pts is not None and clip.pts.shape == (clip.n_frames,) and np.all(np.diff(clip.pts) > 0)
        assert isinstance(clip.time_base, Fraction)


@pytest.mark.parametrize("name", ["clip_00", "edge_44k_stereo", "edge_5p3s_30fps"])
def test_wav_equals_pcm16_over_32768(name: str) -> None:
    wav = INPUTS / f"{name}.wav"
    clip = decode_sample(INPUTS / f"{name}.mp4", wav)
    with wave.open(str(wav), "rb") as f:
        assert f.getsampwidth() == 2
        raw = np.frombuffer(f.readframes(f.getnframes()), "<i2").reshape(-1, f.getnchannels()).T
        sr = f.getframerate()
    assert clip.sr == sr and clip.audio.dtype == np.float32
    np.testing.assert_array_equal(clip.audio, raw.astype(np.float32) / 32768.0)
    sf = pytest.importorskip("soundfile")
    ref, sr2 = sf.read(str(wav), dtype="float32", always_2d=True)
    assert sr2 == sr
    np.testing.assert_array_equal(clip.audio, ref.T)
    assert clip.audio_source == "wav" and clip.audio_duration_s == pytest.approx(ref.shape[0] / sr)


def test_content_hash_is_sha256_of_video_then_audio_bytes(tmp_path: Path) -> None:
    v, a = INPUTS / "clip_00.mp4", INPUTS / "clip_00.wav"
    clip = decode_sample(v, a)
    assert clip.content_hash == hashlib.sha256(v.read_bytes() + a.read_bytes()).hexdigest()
    assert content_hash(v) == hashlib.sha256(v.read_bytes()).hexdigest()
    other = tmp_path / "other.wav"
    other.write_bytes(a.read_bytes()[:-2] + b"\x01\x00")
    assert decode_sample(v, other).content_hash != clip.content_hash


def test_sample_id_defaults_to_stem_and_repr_is_short() -> None:
    clip = decode_sample(INPUTS / "edge_short2s.mp4", INPUTS / "edge_short2s.wav")
    assert clip.sample_id == "edge_short2s"
    assert decode_sample(INPUTS / "edge_short2s.mp4", INPUTS / "edge_short2s.wav", sample_id="row7").sample_id == "row7"
    assert len(repr(clip)) < 200


def test_probe_matches_decode_without_full_decode() -> None:
    for name in CLIPS:
        info = probe_sample(INPUTS / f"{name}.mp4", INPUTS / f"{name}.wav")
        clip = decode_sample(INPUTS / f"{name}.mp4", INPUTS / f"{name}.wav")
        assert info["n_frames"] == clip.n_frames
        assert info["fps"] == clip.fps
        assert (info["height"], info["width"]) == clip.frames.shape[1:3]
        assert info["has_audio"] and info["audio_source"] == "wav"
        assert info["audio_sr"] == clip.sr and info["audio_channels"] == clip.n_channels
        assert info["audio_duration_s"] == pytest.approx(clip.audio_duration_s)
        assert info["duration_s"] == pytest.approx(clip.duration_s, abs=1.0 / clip.fps)


# ---- container audio ------------------------------------------------------------------------------------
@pytest.mark.parametrize("sr,channels", [(16000, 1), (44100, 2), (48000, 1)])
def test_container_aac_is_trimmed_to_stream_duration(tmp_path: Path, sr: int, channels: int) -> None:
    """AAC decodes whole 1024-sample frames (64512 for 4 s @16k); the clip keeps exactly 4 s, priming removed."""
    n = 4 * sr
    x = np.tile((0.25 * np.random.default_rng(sr).standard_normal(n)).astype(np.float32), (channels, 1))
    path = write_mp4(tmp_path / "av.mp4", n_frames=96, audio=x, sr=sr)
    clip = decode_sample(path)
    assert clip.audio_source == "container" and clip.audio_path is None
    assert clip.sr == sr and clip.audio.shape == (channels, n)
    # A/V alignment: the cross-correlation with what was written peaks at lag 0 (no priming left).
    y = clip.audio[0].astype(np.float64)
    spec = np.fft.rfft(y, 2 * n) * np.conj(np.fft.rfft(x[0].astype(np.float64), 2 * n))
    xc = np.fft.irfft(spec, 2 * n)
    lags = np.r_[np.arange(0, 4096), np.arange(-4096, 0)]
    assert int(lags[np.argmax(np.r_[xc[:4096], xc[-4096:]])]) == 0
    assert np.all(np.isfinite(clip.audio))
    info = probe_sample(path)
    assert info["audio_source"] == "container" and info["audio_sr"] == sr and info["audio_channels"] == channels
    assert info["audio_duration_s"] == pytest.approx(4.0)


def test_wav_takes_precedence_over_container_audio(tmp_path: Path) -> None:
    path = write_mp4(tmp_path / "av.mp4", audio=tone(48000, 48000), sr=48000)
    wav = write_wav_pcm16(tmp_path / "a.wav", tone(16000, 8000), 16000)
    clip = decode_sample(path, wav)
    assert clip.sr == 16000 and clip.audio.shape == (1, 8000) and clip.audio_source == "wav"


# ---- colour conversion ------------------------------------------------------------------------------------
def test_color_matrix_bt601_ignores_tags_and_tagged_follows_them(tmp_path: Path) -> None:
    """OpenCV 4.x converts with BT.601 whatever the tag; OpenCV 5 follows the tag."""
    cv2 = pytest.importorskip("cv2")
    path = write_mp4(tmp_path / "bt709.mp4", n_frames=6, w=96, h=64, colorspace=1)  # AVCOL_SPC_BT709
    wav = write_wav_pcm16(tmp_path / "a.wav", tone(16000, 4000), 16000)
    a = decode_sample(path, wav, color_matrix="bt601").frames.astype(np.int16)
    b = decode_sample(path, wav, color_matrix="tagged").frames.astype(np.int16)
    assert np.abs(a - b).max() > 10  # the matrices really differ on this content
    ref, _ = cv2_frames(path)
    major = int(cv2.__version__.split(".")[0])
    expected = a if major < 5 else b
    assert int(np.abs(expected - ref).max()) == 0
    plain = write_mp4(tmp_path / "plain.mp4", n_frames=6, w=96, h=64)
    np.testing.assert_array_equal(decode_sample(plain, wav, color_matrix="bt601").frames,
                                  decode_sample(plain, wav, color_matrix="tagged").frames)
    with pytest.raises(ValueError, match="color_matrix"):
        decode_sample(plain, wav, color_matrix="bt2020")  # type: ignore[arg-type]


@pytest.mark.parametrize("degrees", [90, 180, -90])
def test_display_rotation(tmp_path: Path, degrees: int) -> None:
    """OpenCV 4.11 returns frames as coded; OpenCV 5 applies the display matrix (apply_rotation=True)."""
    cv2 = pytest.importorskip("cv2")
    path = write_mp4(tmp_path / "rot.mp4", n_frames=4, w=64, h=48, rotation=degrees)
    wav = write_wav_pcm16(tmp_path / "a.wav", tone(16000, 4000), 16000)
    coded = decode_sample(path, wav)
    assert coded.frames.shape[1:3] == (48, 64) and coded.rotation == 0
    assert any("display rotation" in w for w in coded.warnings)
    turned = decode_sample(path, wav, apply_rotation=True)
    assert turned.rotation == degrees % 360 and turned.warnings == ()
    np.testing.assert_array_equal(turned.frames, np.rot90(coded.frames, (degrees // 90) % 4, axes=(1, 2)))
    assert probe_sample(path, wav)["rotation"] == degrees % 360
    ref, _ = cv2_frames(path)
    expected = coded.frames if int(cv2.__version__.split(".")[0]) < 5 else turned.frames
    np.testing.assert_array_equal(expected, ref)


# ---- truncated and bad files --------------------------------------------------------------------------------
def test_truncated_faststart_file_keeps_the_frames_it_has(tmp_path: Path) -> None:
    full = write_mp4(tmp_path / "full.mp4", n_frames=48, w=64, h=48, audio=tone(16000, 32000), faststart=True)
    ref = decode_sample(full)
    cut = tmp_path / "cut.mp4"
    data = full.read_bytes()
    cut.write_bytes(data[: int(len(data) * 0.6)])
    clip = decode_sample(cut)
    assert 0 < clip.n_frames < ref.n_frames
    np.testing.assert_array_equal(clip.frames, ref.frames[: clip.n_frames])
    assert any("truncated" in w for w in clip.warnings)


def test_truncated_file_without_index_is_an_error(tmp_path: Path) -> None:
    full = write_mp4(tmp_path / "full.mp4", n_frames=24, audio=tone(16000, 16000))  # moov at the end
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(full.read_bytes()[: len(full.read_bytes()) // 2])
    with pytest.raises(DecodeError, match=r"cut\.mp4"):
        decode_sample(cut)
    with pytest.raises(DecodeError, match=r"cut\.mp4"):
        probe_sample(cut)


def test_missing_files(tmp_path: Path) -> None:
    with pytest.raises(DecodeError, match=r"not found.*nope\.mp4|nope\.mp4.*not found"):
        decode_sample(tmp_path / "nope.mp4")
    with pytest.raises(DecodeError, match=r"missing\.wav"):
        decode_sample(INPUTS / "clip_00.mp4", tmp_path / "missing.wav")
    with pytest.raises(DecodeError, match=r"nope\.mp4"):
        probe_sample(tmp_path / "nope.mp4")


def test_garbage_and_empty_files(tmp_path: Path) -> None:
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(DecodeError, match=r"junk\.mp4.*expected"):
        decode_sample(junk, INPUTS / "clip_00.wav")
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(DecodeError, match=r"empty\.mp4.*empty"):
        decode_sample(empty)


def test_no_video_stream(tmp_path: Path) -> None:
    with pytest.raises(DecodeError, match=r"no video stream.*expected 1 video stream"):
        decode_sample(INPUTS / "clip_00.wav")
    audio_only = write_mp4(tmp_path / "audio_only.mp4", audio=tone(16000, 16000), video=False)
    with pytest.raises(DecodeError, match=r"audio_only\.mp4.*no video stream"):
        probe_sample(audio_only)


def test_audioless_mp4_without_wav(tmp_path: Path) -> None:
    silent = write_mp4(tmp_path / "silent.mp4")
    with pytest.raises(DecodeError, match=r"silent\.mp4.*no audio stream and no wav"):
        decode_sample(silent)
    with pytest.raises(DecodeError, match=r"no audio"):
        probe_sample(silent)
    info = probe_sample(silent, require_audio=False)
    assert info["has_audio"] is False and info["audio_sr"] is None
    assert decode_sample(silent, write_wav_pcm16(tmp_path / "a.wav", tone(16000, 1600), 16000)).n_samples == 1600


def test_zero_length_wav(tmp_path: Path) -> None:
    wav = write_wav_pcm16(tmp_path / "zero.wav", np.zeros((1, 0), np.float32), 16000)
    with pytest.raises(DecodeError, match=r"zero\.wav.*(zero-length|no decodable samples).*expected"):
        decode_sample(INPUTS / "clip_00.mp4", wav)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_audio(tmp_path: Path, bad: float) -> None:
    x = tone(16000, 4000)
    x[0, 100] = bad
    wav = write_wav_float(tmp_path / "bad.wav", x, 16000)
    with pytest.raises(DecodeError, match=r"bad\.wav.*1 NaN/inf.*expected finite"):
        decode_sample(INPUTS / "clip_00.mp4", wav)


def test_float_wav_is_read_as_stored(tmp_path: Path) -> None:
    x = tone(22050, 5000, channels=2) * np.array([[1.0], [0.5]], np.float32)
    clip = decode_sample(INPUTS / "clip_00.mp4", write_wav_float(tmp_path / "f.wav", x, 22050))
    assert clip.sr == 22050
    np.testing.assert_array_equal(clip.audio, x)


def test_decodedclip_from_arrays() -> None:
    clip = DecodedClip("s", np.zeros((10, 4, 6, 3), np.uint8), 5.0, np.zeros((2, 800), np.float32), 400, "h")
    assert (clip.n_frames, clip.height, clip.width, clip.n_channels, clip.n_samples) == (10, 4, 6, 2, 800)
    assert clip.duration_s == 2.0 and clip.audio_duration_s == 2.0
