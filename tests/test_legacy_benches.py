"""Legacy closed-set benches: the MM-Diffusion loader (``fvd_mode="mmdiffusion"``) and folder benches.

The loader's pieces are checked against independent references: torchvision's own ``Resize`` /
``Pad`` transforms and the torch expressions the original evaluates (frame resampling, the [-1, 1]
round trip), exact integer rounding for the 16-bit audio, and hand-derived sample counts.  The
folder benches run end to end through the CLI with the I3D / AudioCLIP fixture checkpoints.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
av = pytest.importorskip("av")

from javisbench import views as V  # noqa: E402
from javisbench.benches import BenchError, builtin_benches, find_bench, folder_manifest, list_video_files  # noqa: E402
from javisbench.cli import main  # noqa: E402
from javisbench.protocol import MMDIFFUSION, MMDIFFUSION_JAVISBENCH, OFFICIAL, PROTOCOLS, reference_values  # noqa: E402

GOLDEN = Path(__file__).resolve().parent / "golden"


# ---- frame selection ---------------------------------------------------------------------------------
def _torchvision_rule(n_frames: int, fps: float, target: float) -> np.ndarray:
    """VideoClips.compute_clips_for_video + _resample_video_idx, written with torch as the original runs it."""
    total = n_frames * (float(target) / fps)
    step = float(fps) / target
    if step.is_integer():
        return torch.arange(n_frames)[slice(None, None, int(step))].numpy()
    idxs = torch.arange(int(math.floor(total)), dtype=torch.float32) * step
    return idxs.floor().to(torch.int64).numpy()


@pytest.mark.parametrize("n,fps,target", [(48, 24, 10), (48, 30, 10), (96, 25, 24), (48, 24, 24), (120, 60, 10),
                                          (300, 29.97, 10), (64, 23.976, 24), (17, 12, 10)])
def test_videoclips_resample_matches_torch_rule(n: int, fps: float, target: float) -> None:
    got = V.videoclips_resample(n, fps, target)
    np.testing.assert_array_equal(got, _torchvision_rule(n, fps, target))
    assert got.max() < n and np.all(np.diff(got) >= 0)      # upsampling repeats frames


def test_mmdiff_window_lengths_and_short_clips() -> None:
    # the original tool's defaults: int(24 * 1.6) = 38 frames at 24 fps; MM-Diffusion's: 16 at 10 fps
    np.testing.assert_array_equal(V.mmdiff_window(48, 24, 24, 1.6), np.arange(38))
    np.testing.assert_array_equal(V.mmdiff_window(48, 30, 10, 1.6), np.arange(16) * 3)
    assert V.mmdiff_window(48, 24, 10, 1.6).tolist()[:4] == [0, 2, 4, 7]
    with pytest.raises(ValueError, match=r"37 frames at 24 fps give 37 frames at 24 fps, the loader needs 38"):
        V.mmdiff_window(37, 24, 24, 1.6)


# ---- letterbox and round trip ----------------------------------------------------------------------
@pytest.mark.parametrize("h,w,size", [(240, 426, 224), (128, 160, 224), (300, 200, 224), (224, 224, 224),
                                      (240, 426, 64), (96, 128, 64)])
def test_letterbox_matches_torchvision_transforms(h: int, w: int, size: int) -> None:
    import torchvision.transforms as T
    from torchvision.transforms import InterpolationMode

    frames = np.random.default_rng(h * w + size).integers(0, 256, (2, h, w, 3), dtype=np.uint8)
    # MM-Diffusion's process_video, spelled with torchvision's transforms
    ratio = min(float(size) / h, float(size) / w)
    new = (int(h * ratio), int(w * ratio))
    pad_h, pad_w = size - new[0], size - new[1]
    tf = T.Compose([T.RandomHorizontalFlip(False), T.Resize(new, interpolation=InterpolationMode.BICUBIC),
                    T.Pad((pad_w // 2, pad_h // 2, pad_w - pad_w // 2, pad_h - pad_h // 2))])
    ref = tf(torch.from_numpy(frames).permute(0, 3, 1, 2)).numpy()
    got = V.letterbox_bicubic_u8(frames, size)
    assert got.shape == ref.shape == (2, 3, size, size)
    np.testing.assert_array_equal(got, ref)


def test_unit_roundtrip_matches_torch_and_truncates() -> None:
    x = np.arange(256, dtype=np.uint8)
    t = torch.from_numpy(x)
    ref = ((((t.float() / 127.5) - 1) + 1) * 127.5).clamp(0, 255).to(torch.uint8).numpy()
    got = V.unit_roundtrip_u8(x)
    np.testing.assert_array_equal(got, ref)
    # the truncating cast: some values come back one lower, none higher, none by more than one
    lost = x.astype(int) - got.astype(int)
    assert set(lost.tolist()) <= {0, 1} and lost.sum() > 0 and got[0] == 0 and got[255] == 255


def test_mmdiff_video_shapes_and_window_end() -> None:
    frames = np.random.default_rng(0).integers(0, 256, (48, 96, 128, 3), dtype=np.uint8)
    v, end = V.mmdiff_video(frames, 24.0, 24.0, 1.6, 224)
    assert v.shape == (38, 3, 224, 224) and v.dtype == np.uint8 and end == pytest.approx(38 / 24)
    v, end = V.mmdiff_video(frames, 30.0, 10.0, 1.6, 64)
    assert v.shape == (16, 3, 64, 64) and end == pytest.approx(46 / 30)   # last native index 45
    # the pad rows are black: 128x96 -> 64x48 inside a 64x64 square, 8 rows above and below
    assert v[:, :, :8].max() == 0 and v[:, :, -8:].max() == 0 and v[:, :, 8:56].max() > 0


# ---- audio ----------------------------------------------------------------------------------------
def test_swr_same_rate_is_exact_int16_rounding() -> None:
    rng = np.random.default_rng(1)
    x = (rng.uniform(-1.2, 1.2, (2, 4000))).astype(np.float32)
    got = V.swr_s16(x, 16000, 16000)
    ref = np.clip(np.rint(x.astype(np.float64) * 32768), -32768, 32767) / 32768
    assert got.shape == (2, 4000)
    np.testing.assert_array_equal(got, ref.astype(np.float32))


def test_swr_mono_upmix_and_resampling() -> None:
    t = np.arange(16000) / 16000
    x = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
    st = V.swr_s16(x, 16000, 16000)
    np.testing.assert_array_equal(st[0], st[1])                      # mono reaches both channels
    np.testing.assert_allclose(st[0], x[0] / np.sqrt(2), atol=1 / 32768)   # at -3 dB (ffmpeg's matrix)
    up = V.swr_s16(x, 16000, 44100)
    assert up.shape == (2, 44100)
    # a 440 Hz tone stays a 440 Hz tone of the same level (band-limited resampling)
    spec = np.abs(np.fft.rfft(up[0] * np.hanning(up.shape[1])))
    assert abs(np.argmax(spec) * 44100 / up.shape[1] - 440) < 1.5
    tt = np.arange(44100) / 44100
    ref = 0.5 / np.sqrt(2) * np.sin(2 * np.pi * 440 * tt)
    assert np.abs(up[0, 200:-200] - ref[200:-200]).max() < 3e-3


def test_moviepy_sample_count_hand_values() -> None:
    assert V.moviepy_sample_count(38 / 24, 16000) == 25334      # ceil(25333.33)
    assert V.moviepy_sample_count(46 / 30, 16000) == 24534      # ceil(24533.33)
    assert V.moviepy_sample_count(1.6, 44100) == 70560
    # past moviepy's 50000-sample buffer the chunked reader counts int(sr*t), not ceil
    assert V.moviepy_sample_count(46 / 30, 44100) == 67620        # 46/30 * 44100 = 67620 exactly
    assert V.moviepy_sample_count(37 / 24, 44100) == 67987        # 67987.5 -> int, where arange gives 67988
    assert len(np.arange(0, 37 / 24, 1 / 44100)) == 67988


def test_mmdiff_audio_channel0_window_and_padding() -> None:
    rng = np.random.default_rng(2)
    left = rng.uniform(-0.5, 0.5, 32000).astype(np.float32)
    audio = np.stack([left, np.zeros_like(left)])
    out = V.mmdiff_audio(audio, 16000, 16000, 38 / 24, 1.6)
    assert out.shape == (25600,) and out.dtype == np.float32
    np.testing.assert_array_equal(out[:25334], np.rint(left[:25334].astype(np.float64) * 32768) / 32768)
    assert not out[25334:].any()                                 # the window ends at 38/24 s; zeros after


# ---- protocols and encoder views ------------------------------------------------------------------
def test_mmdiffusion_protocols() -> None:
    assert {"javisbench-mmdiffusion", "mmdiffusion"} <= set(PROTOCOLS)
    assert len({p.fingerprint for p in PROTOCOLS.values()}) == len(PROTOCOLS)
    for p in (MMDIFFUSION, MMDIFFUSION_JAVISBENCH):
        assert p.fvd_mode == "mmdiffusion" and not p.fvd_uint8_remap
        # every other metric is scored as under the official protocol
        same = {k: v for k, v in OFFICIAL.values().items() if not k.startswith(("mmdiff_", "fvd_", "name", "description"))}
        assert {k: p.values()[k] for k in same} == same
    assert reference_values(OFFICIAL) != reference_values(MMDIFFUSION_JAVISBENCH)


def _clip(frames: np.ndarray, fps: float, audio: np.ndarray, sr: int):  # noqa: ANN202
    from javisbench.decode import DecodedClip

    return DecodedClip(sample_id="x", frames=frames, fps=fps, audio=audio, sr=sr, content_hash="0")


@pytest.mark.parametrize("proto,video_shape,audio_shape", [
    (MMDIFFUSION_JAVISBENCH, {"video": (38, 3, 224, 224)}, (25600,)),
    (MMDIFFUSION.replace(mmdiff_windows="first"), {"video": (16, 3, 64, 64)}, (70560,)),
    # every window: 48 frames at 24 fps -> 20 at 10 fps -> 5 windows of 16 over 20 distinct frames
    (MMDIFFUSION, {"frames": (20, 3, 64, 64), "windows": (5, 16)}, (5, 70560)),
])
def test_encoder_views_under_mmdiffusion(proto, video_shape: dict, audio_shape: tuple) -> None:  # noqa: ANN001
    from javisbench.encoders.audioclip import AudioCLIPEncoder
    from javisbench.encoders.base import SampleError
    from javisbench.encoders.i3d import I3DEncoder

    rng = np.random.default_rng(3)
    clip = _clip(rng.integers(0, 256, (48, 72, 96, 3), dtype=np.uint8), 24.0,
                 rng.uniform(-0.3, 0.3, (1, 32000)).astype(np.float32), 16000)
    v = I3DEncoder(proto).prepare(clip, "", "")
    assert {k: v[k].shape for k in video_shape} == video_shape
    assert AudioCLIPEncoder(proto).prepare(clip, "", "")["audio"].shape == audio_shape
    short = _clip(clip.frames[:30], 24.0, clip.audio, 16000)
    with pytest.raises(SampleError, match="too short for a 1.6 s window"):
        I3DEncoder(proto).prepare(short, "", "")
    with pytest.raises(SampleError, match="too short for a 1.6 s window"):
        AudioCLIPEncoder(proto).prepare(short, "", "")


# ---- folder benches ---------------------------------------------------------------------------------
def test_builtin_benches_and_aliases() -> None:
    b = builtin_benches()
    assert set(b) == {"landscape", "aist++"}
    assert find_bench("Landscape").name == "landscape"
    assert find_bench("aistpp").name == find_bench("AIST++").name == "aist++"
    assert find_bench("some.csv") is None
    for bench in b.values():
        assert bench.protocol == "javisbench-mmdiffusion" and {"fvd", "kvd", "fad"} <= set(bench.metrics)


@pytest.mark.parametrize("body,match", [
    ("name: x\nmetrics: [fvd]\n", "missing protocol"),
    ("name: x\nprotocol: nope\nmetrics: [fvd]\n", "protocol 'nope' is not one of"),
    ("name: x\nprotocol: javisbench-official\nmetrics: [clip_score]\n", "'clip_score' needs prompts"),
    ("name: x\nprotocol: javisbench-official\nmetrics: [fvdd]\n", "unknown metric 'fvdd'"),
    ("name: x\nkind: csv\nprotocol: javisbench-official\nmetrics: [fvd]\n", "kind 'csv' is not supported"),
    ("- a\n- b\n", "expected a mapping"),
])
def test_bad_bench_definitions(tmp_path: Path, body: str, match: str) -> None:
    f = tmp_path / "b.yaml"
    f.write_text(body)
    with pytest.raises(BenchError, match=match):
        find_bench(f)


def test_folder_listing_order_and_wav_pairing(tmp_path: Path) -> None:
    for rel in ["b.mp4", "a.MP4", "sub/c.avi", "sub/z/d.gif", "notes.txt", "a.wav", "e.mkv"]:
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")
    assert [p.relative_to(tmp_path).as_posix() for p in list_video_files(tmp_path)] == \
        ["a.MP4", "b.mp4", "sub/c.avi", "sub/z/d.gif"]
    m = folder_manifest(find_bench("landscape"), tmp_path)
    assert [r.sample_id for r in m.rows] == ["a.MP4", "b.mp4", "sub/c.avi", "sub/z/d.gif"]
    assert m.rows[0].raw["pred_audio_path"].endswith("a.wav") and m.rows[1].raw["pred_audio_path"] == ""
    assert m.name == "landscape" and m.sha256 == find_bench("landscape").sha256 and not m.has_labels
    with pytest.raises(ValueError, match="no video files"):
        folder_manifest(find_bench("landscape"), _empty(tmp_path))


def _empty(tmp_path: Path) -> Path:
    d = tmp_path / "empty_dir"
    d.mkdir(exist_ok=True)
    return d


@pytest.fixture(scope="module")
def landscape(tmp_path_factory: pytest.TempPathFactory) -> dict:
    from test_decode import write_mp4

    from javisbench.golden import write_golden_weights

    root = tmp_path_factory.mktemp("landscape")
    rng = np.random.default_rng(7)
    for split, n in (("real", 4), ("gen", 4)):
        for i in range(n):
            t = np.arange(32000) / 16000
            tone = 0.3 * np.sin(2 * np.pi * (220 + 40 * i + (7 if split == "gen" else 0)) * t)
            audio = np.stack([tone, 0.5 * tone]).astype(np.float32) + rng.normal(0, 0.01, (2, 32000)).astype(np.float32)
            sub = root / split / ("b" if i % 2 else "a")
            sub.mkdir(parents=True, exist_ok=True)
            # 2 s clips at 24 fps with an embedded AAC track, as the loader reads them
            write_mp4(sub / f"{split}{i}.mp4", n_frames=48, fps=24, w=96, h=64, audio=audio, sr=16000,
                      first_image=(1000 if split == "gen" else 0) + 100 * i)
    weights = write_golden_weights(GOLDEN, root / "w", ["i3d", "audioclip"])
    return {"root": root, "weights": weights}


def _run(landscape: dict, *args: str) -> int:
    return main([*args, "--weights-dir", str(landscape["weights"]), "--cache-dir", str(landscape["root"] / "cache")])


def test_landscape_end_to_end(landscape: dict, capsys: pytest.CaptureFixture[str]) -> None:
    root = landscape["root"]
    ref = root / "ref.pt"
    assert _run(landscape, "reference", "build", str(root / "real"), "--bench", "landscape", "--out", str(ref)) == 0
    assert "protocol javisbench-mmdiffusion" in capsys.readouterr().out
    saved = torch.load(ref, weights_only=True)
    assert saved["video"].shape == (4, 400) and saved["audio"].shape == (4, 1024)
    assert json.loads(saved["protocol"])["name"] == "javisbench-mmdiffusion"

    out_real, out_gen = root / "real.json", root / "gen.json"
    assert _run(landscape, "evaluate", str(root / "real"), "--bench", "landscape", "--reference", str(ref),
                "--out", str(out_real), "--quiet") == 0
    assert _run(landscape, "evaluate", str(root / "gen"), "--bench", "landscape", "--reference", str(ref),
                "--out", str(out_gen), "--quiet") == 0
    real, gen = json.loads(out_real.read_text()), json.loads(out_gen.read_text())
    for r in (real, gen):
        assert r["protocol"]["name"] == "javisbench-mmdiffusion"
        assert r["bench"]["name"] == "landscape" and r["bench"]["n_rows"] == 4
        assert set(r["overall"]) == {"fvd", "kvd", "fad", "av_align"}
        assert r["sample_ids"][0].startswith("a/")
    # the real set against its own reference: ~0, the generated set far from it.  The official FD runs
    # in float32 (n=4 rows of 400-d: noise ~1e-4 of the generated set's FVD); with the fill weights the
    # 1024-d audio embeddings are huge (traces ~1e9), so the cancellation leaves ~1e-4 of its FAD.
    # Every exact resample of identical paired sets is 0: the interval (moved onto the reported value)
    # has no width.
    assert abs(real["overall"]["fvd"]["value"]) < 1e-3 * gen["overall"]["fvd"]["value"]
    fad = real["overall"]["fad"]
    assert abs(fad["value"]) < 1e-3 * gen["overall"]["fad"]["value"]
    assert fad["ci_low"] == pytest.approx(fad["value"]) and fad["ci_high"] == pytest.approx(fad["value"])
    assert gen["overall"]["fad"]["ci_low"] > 1e-3 * gen["overall"]["fad"]["value"]
    assert gen["overall"]["fvd"]["n"] == 4 and not gen["failures"]


def test_landscape_refuses_prompt_metrics_and_other_protocol_references(landscape: dict,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    root = landscape["root"]
    ref = root / "ref-official.npz"
    assert _run(landscape, "reference", "build", str(root / "real"), "--bench", "landscape", "--protocol",
                "javisbench-official", "--out", str(ref)) == 0
    capsys.readouterr()
    rc = _run(landscape, "evaluate", str(root / "gen"), "--bench", "landscape", "--reference", str(ref),
              "--out", str(root / "x.json"), "--quiet")
    err = capsys.readouterr().err
    assert rc == 2 and "built under protocol 'javisbench-official'" in err and "fvd_mode: file 'vanilla'" in err
    rc = _run(landscape, "evaluate", str(root / "gen"), "--bench", "aist++", "--metrics", "fvd", "clip_score",
              "--out", str(root / "y.json"), "--quiet")
    assert rc == 2 and "has no prompts, so clip_score cannot be computed" in capsys.readouterr().err


def test_ls_benches_and_validate(landscape: dict, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ls", "benches"]) == 0
    out = capsys.readouterr().out
    assert "landscape" in out and "aist++ (also aistpp, aist)" in out and "javisbench-mmdiffusion" in out
    assert main(["validate", str(landscape["root"] / "gen"), "--bench", "landscape"]) == 0
    out = capsys.readouterr().out
    assert "folder bench landscape: 4 video files" in out and "probed 4/4 samples" in out


def test_compare_on_a_folder_bench_is_unpaired(landscape: dict, capsys: pytest.CaptureFixture[str]) -> None:
    from javisbench.compare import compare

    root = landscape["root"]
    ref = root / "ref.pt"
    if not ref.exists():
        assert _run(landscape, "reference", "build", str(root / "real"), "--bench", "landscape", "--out", str(ref)) == 0
    outs = {}
    for name, extra in (("real", []), ("gen3", ["--limit", "3"])):
        out = root / f"cmp-{name}.json"
        folder = root / ("real" if name == "real" else "gen")
        assert _run(landscape, "evaluate", str(folder), "--bench", "landscape", "--reference", str(ref),
                    "--metrics", "fvd", "av_align", "--out", str(out), "--quiet", *extra) == 0
        outs[name] = json.loads(out.read_text())
    capsys.readouterr()
    assert outs["real"]["bench"]["kind"] == "folder"
    # different clip counts and file names: still comparable, per-sample metrics unpaired
    c = compare(outs["real"], outs["gen3"], n_boot=200)
    cell = c["metrics"]["av_align"]
    assert cell["method"] == "unpaired-bootstrap" and (cell["n_a"], cell["n_b"]) == (4, 3)
    assert cell["diff"] == pytest.approx(cell["b"] - cell["a"])
    assert c["metrics"]["fvd"]["method"] == "ci-overlap"
    assert any("unpaired bootstrap" in n for n in c["notes"])


def test_report_on_a_folder_bench(landscape: dict, capsys: pytest.CaptureFixture[str]) -> None:
    root = landscape["root"]
    out = root / "av.json"
    assert _run(landscape, "evaluate", str(root / "gen"), "--bench", "landscape", "--metrics", "av_align",
                "--out", str(out), "--quiet") == 0
    capsys.readouterr()
    assert main(["report", str(out)]) == 0
    assert "landscape" in capsys.readouterr().out
    assert main(["report", str(out), "--crosstab", "sound_type", "spatial"]) == 2
    assert "folder bench: its clips carry no category labels" in capsys.readouterr().err


def _ffmpeg_binary() -> str | None:
    import shutil

    exe = shutil.which("ffmpeg")
    if exe:
        return exe
    try:
        import imageio_ffmpeg
    except ImportError:
        return None
    return imageio_ffmpeg.get_ffmpeg_exe()


@pytest.mark.parametrize("sr_in,channels", [(16000, 1), (44100, 2), (48000, 2)])
def test_swr_matches_the_ffmpeg_command_moviepy_runs(tmp_path: Path, sr_in: int, channels: int) -> None:
    """moviepy reads audio as ``ffmpeg -i F -vn -f s16le -acodec pcm_s16le -ar SR -ac 2 -``: compare bit for bit.
    Skips without an ffmpeg binary (none is installed by the project; imageio-ffmpeg ships one)."""
    import subprocess

    from test_decode import write_mp4

    from javisbench.decode import decode_sample

    exe = _ffmpeg_binary()
    if exe is None:
        pytest.skip("no ffmpeg binary (PATH or imageio-ffmpeg)")
    rng = np.random.default_rng(sr_in)
    t = np.arange(2 * sr_in) / sr_in
    audio = np.stack([0.3 * np.sin(2 * np.pi * 330 * t) + 0.05 * rng.normal(size=t.size),
                      0.2 * np.sin(2 * np.pi * 550 * t)])[:channels].astype(np.float32)
    path = write_mp4(tmp_path / "a.mp4", n_frames=48, fps=24, w=64, h=48, audio=audio, sr=sr_in)
    clip = decode_sample(path)
    for sr_out in (16000, 44100):
        raw = subprocess.run([exe, "-i", str(path), "-vn", "-loglevel", "error", "-f", "s16le", "-acodec", "pcm_s16le",
                              "-ar", str(sr_out), "-ac", "2", "-"], capture_output=True, check=True, timeout=120).stdout
        ref = np.frombuffer(raw, np.int16).reshape(-1, 2).T.astype(np.float32) / np.float32(32768)
        np.testing.assert_array_equal(V.swr_s16(clip.audio, clip.sr, sr_out), ref)


@pytest.mark.parametrize("name", ["clip_00", "edge_5p3s_30fps"])
def test_one_decode_serves_the_torchvision_loader(name: str) -> None:
    """torchvision's ``read_video`` (PyAV backend, as VideoClips reads) converts with ``to_rgb()``:
    the same pixels as the shared decode, so the MM-Diffusion view needs no second decode."""
    from javisbench.decode import decode_sample

    path = GOLDEN / "inputs" / f"{name}.mp4"
    with av.open(str(path)) as c:
        tv = np.stack([f.to_rgb().to_ndarray() for f in c.decode(video=0)])
    np.testing.assert_array_equal(decode_sample(path, GOLDEN / "inputs" / f"{name}.wav").frames, tv)


# ---- every window (MM-Diffusion's own evaluator) ------------------------------------------------------
@pytest.mark.parametrize("n,fps,target", [(48, 24, 10), (48, 30, 10), (64, 23.976, 24), (40, 10, 10)])
def test_all_windows_are_torchvision_unfold(n: int, fps: float, target: float) -> None:
    L = int(target * 1.6)
    idx = torch.from_numpy(_torchvision_rule(n, fps, target))
    ref = idx.unfold(0, L, 1).numpy()                 # VideoClips: clips = unfold(pts, L, step=1)
    got = V.mmdiff_all_windows(n, fps, target, 1.6)
    np.testing.assert_array_equal(got, ref)
    np.testing.assert_array_equal(got[0], V.mmdiff_window(n, fps, target, 1.6))


def test_moviepy_indices_for_a_later_window() -> None:
    start, end, sr = 9 / 30, 55 / 30, 44100          # window of native frames 9..54 at 30 fps
    got = V.moviepy_sample_indices(start, end, sr)
    k = np.arange(V.moviepy_sample_count(end - start, sr))
    np.testing.assert_array_equal(got, np.round(sr * (k * (1.0 / sr) + start)).astype(np.int64))
    assert got[0] == 13230 and got.size == 67620 and np.all(np.diff(got) == 1)
    x = np.arange(100000, dtype=np.float32) / 100000
    out = V.mmdiff_audio(np.stack([x, x]), sr, sr, end, 1.6, start_s=start)
    assert out.shape == (70560,)
    # the same samples the indices name (through the 16-bit reader), zero after the window
    np.testing.assert_array_equal(out[:67620], V.swr_s16(np.stack([x, x]), sr, sr)[0][got])
    assert not out[67620:].any()


def test_select_windows_is_seeded_capped_and_per_side() -> None:
    from javisbench.evaluate import select_windows

    f1, r1 = select_windows(100, 80, 0, seed=0)
    assert sorted(f1) == list(range(100)) and sorted(r1) == list(range(80))
    f2, r2 = select_windows(100, 5000, 0, seed=0)
    np.testing.assert_array_equal(f1, f2)           # more real windows do not move the fake selection
    f3, r3 = select_windows(5000, 5000, 2048, seed=0)
    assert f3.size == r3.size == 2048 and np.unique(f3).size == 2048
    assert not np.array_equal(select_windows(100, 80, 0, seed=1)[0], f1)


def test_window_encoders_agree_with_the_first_window_path(landscape: dict) -> None:
    from test_decode import write_mp4

    from javisbench.decode import decode_sample
    from javisbench.encoders.audioclip import AudioCLIPEncoder
    from javisbench.encoders.i3d import I3DEncoder

    root = landscape["root"]
    t = np.arange(40000) / 16000
    audio = np.stack([0.3 * np.sin(2 * np.pi * 300 * t)] * 2).astype(np.float32)
    path = write_mp4(root / "one.mp4", n_frames=60, fps=24, w=96, h=64, audio=audio, sr=16000)
    clip = decode_sample(path)
    first = MMDIFFUSION.replace(mmdiff_windows="first")
    for cls, key in ((I3DEncoder, "logits"), (AudioCLIPEncoder, "embedding")):
        win, one = cls(MMDIFFUSION, batch_size=2), cls(first)
        win.load(landscape["weights"])
        one.model = win.model
        w = win.encode([win.prepare(clip, "", "")])[0][key]
        f = one.encode([one.prepare(clip, "", "")])[0][key]
        assert w.shape == (60 * 10 // 24 - 16 + 1, f.shape[0])          # 25 frames at 10 fps -> 10 windows
        np.testing.assert_allclose(w[0], f, rtol=1e-5, atol=1e-5 * float(np.abs(f).max()))
        assert np.abs(w[-1] - w[0]).max() > 0                            # later windows see other frames


def test_mmdiffusion_protocol_end_to_end(landscape: dict, capsys: pytest.CaptureFixture[str]) -> None:
    root = landscape["root"]
    ref = root / "ref-windows.npz"
    assert _run(landscape, "reference", "build", str(root / "real"), "--bench", "landscape", "--protocol", "mmdiffusion",
                "--out", str(ref)) == 0
    with np.load(ref) as z:
        assert z["video"].shape == (4 * 5, 400) and z["audio"].shape == (4 * 5, 1024)   # 2 s at 10 fps: 5 windows
    outs = {}
    for split in ("real", "gen"):
        out = root / f"win-{split}.json"
        assert _run(landscape, "evaluate", str(root / split), "--bench", "landscape", "--protocol", "mmdiffusion",
                    "--reference", str(ref), "--metrics", "fvd", "fad", "--out", str(out), "--quiet") == 0
        outs[split] = json.loads(out.read_text())
    capsys.readouterr()
    real, gen = outs["real"]["overall"], outs["gen"]["overall"]
    for cell in (real["fvd"], gen["fvd"]):
        assert (cell["n"], cell["n_real"], cell["n_clips"], cell["n_failed"]) == (20, 20, 4, 0)
        assert "windows" in cell["flags"]
    # the same windows on both sides: ~0 (float32 SVD noise, ~1e-4 of the generated set's FVD here)
    assert abs(real["fvd"]["value"]) < 1e-3 * gen["fvd"]["value"]
    assert gen["fvd"]["ci_low"] < gen["fvd"]["value"] < gen["fvd"]["ci_high"] or gen["fvd"]["ci_low"] > 0
    # a first-window reference is refused under the window protocol
    if not (root / "ref.pt").exists():
        assert _run(landscape, "reference", "build", str(root / "real"), "--bench", "landscape",
                    "--out", str(root / "ref.pt")) == 0
    capsys.readouterr()
    assert _run(landscape, "evaluate", str(root / "gen"), "--bench", "landscape", "--protocol", "mmdiffusion",
                "--reference", str(root / "ref.pt"), "--metrics", "fvd", "--out", str(root / "z.json"), "--quiet") == 2
    assert "mmdiff_windows: file 'first', run 'all'" in capsys.readouterr().err
