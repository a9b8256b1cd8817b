"""A corpus of bad inputs and faults, each run as a user would run it.

Every case checks the same five things: the message (one line, naming the file / option, no
traceback), the exit code, that the other samples were scored, that the results file (when one
is due) is valid, and that no input file changed (sha256 of every input before and after).

Inputs are tiny (four 2 s SynthAV clips); metrics are the weight-free AV-Align, plus FVD where a
weights file is the fault (the load fails before any model runs).  One feature store is shared
by the cases whose fault is not the store, so most clips are served from it.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import pickle
import shutil
import subprocess
import sys
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from javisbench.cli import main
from javisbench.summary import EXIT_INCOMPLETE, EXIT_OK, EXIT_USAGE, EXIT_WRITE

N = 4
IDS = [f"sample_{i:04d}" for i in range(N)]
REPO = Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------------------------------------
# fixtures and helpers
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> dict:
    from reference_models.synthav import make_clip, write_clip, write_manifest

    root = tmp_path_factory.mktemp("faults")
    clips = [make_clip(300 + i, duration=2.0) for i in range(N)]
    manifest = write_manifest(root / "bench.csv", clips)
    for sid, c in zip(IDS, clips):
        write_clip(root / "samples", sid, c.frames, c.audio, c.fps, c.sr)
    cache = root / "cache"
    clean = root / "clean.json"
    assert main(["evaluate", str(root / "samples"), "--bench", str(manifest), "--out", str(clean), "--quiet",
                 "--cache-dir", str(cache), "--weights-dir", str(root / "w"), "--metrics", "av_align"]) == EXIT_OK
    return {"root": root, "manifest": manifest, "samples": root / "samples", "cache": cache, "clips": clips,
            "clean": json.loads(clean.read_text())}


@dataclass
class Case:
    root: Path
    samples: Path
    manifest: Path
    weights: Path
    cache: Path
    out: Path

    def snapshot(self) -> dict[str, str]:
        """sha256 of every input file (samples, manifest, weights, anything else the case wrote
        before the run), outputs and the store excluded."""
        skip = {self.out.resolve(), self.cache.resolve()}
        got = {}
        for p in sorted(self.root.rglob("*")):
            if not p.is_file() or p.name == ".javisbench-sha256.json" or any(
                    p.resolve() == s or s in p.resolve().parents for s in skip):
                continue
            got[str(p.relative_to(self.root))] = hashlib.sha256(p.read_bytes()).hexdigest()
        return got


@pytest.fixture()
def case(base: dict, tmp_path: Path) -> Case:
    shutil.copytree(base["samples"], tmp_path / "samples")
    shutil.copy(base["manifest"], tmp_path / "bench.csv")
    (tmp_path / "weights").mkdir()
    return Case(tmp_path, tmp_path / "samples", tmp_path / "bench.csv", tmp_path / "weights", base["cache"],
                tmp_path / "out" / "r.json")


def run(c: Case, capsys: pytest.CaptureFixture, *extra: str, metrics: tuple[str, ...] = ("av_align",),
        samples: Path | None = None, out: Path | None = None) -> tuple[int, str, str]:
    args = ["evaluate", str(samples or c.samples), "--bench", str(c.manifest), "--out", str(out or c.out), "--quiet",
            "--cache-dir", str(c.cache), "--weights-dir", str(c.weights), "--metrics", *metrics, *extra]
    capsys.readouterr()
    rc = main(args)
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def strict_json(path: Path) -> dict:
    def no_constant(x: str) -> None:
        raise ValueError(f"bare {x} in {path}")

    return json.loads(path.read_text(encoding="utf-8"), parse_constant=no_constant)


def check(c: Case, before: dict[str, str], rc: int, want_rc: int, text: str, *needles: str,
          scored: list[str] | None = None, failed: list[str] | None = None, results: bool = True) -> dict | None:
    """The five checks of every case; returns the results (or None when none are due)."""
    assert rc == want_rc, text
    for n in needles:
        assert n in text, (n, text)
    assert "Traceback" not in text
    after = c.snapshot()
    for f, h in before.items():
        assert after.get(f) == h, f"input {f} changed or disappeared"
    if not results:
        assert not c.out.exists()
        return None
    from javisbench.leaderboard.submission import check_results

    r = strict_json(c.out)
    assert check_results(r) == []
    for sid in scored or []:
        v = r["per_sample"][sid]["av_align"]
        assert v is not None and math.isfinite(v), sid
    for sid in failed or []:
        assert sid in r["failures"] and r["per_sample"][sid]["av_align"] is None, sid
    cell = r["overall"].get("av_align")
    if scored is not None and cell is not None:
        assert cell["n"] == len(scored)
    return r


def write_wav(path: Path, data: np.ndarray, sr: int, sampwidth: int = 2) -> None:
    data = np.atleast_2d(np.asarray(data, np.float64))
    with wave.open(str(path), "wb") as w:
        w.setnchannels(data.shape[0])
        w.setsampwidth(sampwidth)
        w.setframerate(sr)
        w.writeframes((np.clip(data.T, -1, 1) * 32767).astype("<i2").tobytes())


def write_float_wav(path: Path, data: np.ndarray, sr: int) -> None:
    """IEEE-float wav (format 3), which can hold NaN."""
    import struct

    a = np.asarray(data, "<f4")
    body = a.tobytes()
    fmt = struct.pack("<HHIIHH", 3, 1, sr, sr * 4, 4, 32)
    riff = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(body)) + body
    path.write_bytes(b"RIFF" + struct.pack("<I", len(riff)) + riff)


def write_faststart_mp4(path: Path, frames: np.ndarray, fps: int) -> None:
    """H.264 mp4 with its index (moov) at the front, as web uploads are written."""
    from fractions import Fraction

    import av

    with av.open(str(path), mode="w", options={"movflags": "faststart"}) as c:
        st = c.add_stream("libx264", rate=Fraction(fps))
        st.width, st.height, st.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        st.options = {"crf": "18", "preset": "veryfast", "threads": "1", "x264-params": "mbtree=0"}
        for i, fr in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(fr), format="rgb24")
            vf.pts = i
            for pkt in st.encode(vf):
                c.mux(pkt)
        for pkt in st.encode():
            c.mux(pkt)


def truncate_faststart(base: dict, c: Case, sid: str) -> None:
    """Rewrite ``sid`` with its index in front, then cut the file at half: the container declares
    every frame, only the first part decodes."""
    i = IDS.index(sid)
    clip = base["clips"][i]
    p = c.samples / f"{sid}.mp4"
    write_faststart_mp4(p, clip.frames, clip.fps)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])


# ---------------------------------------------------------------------------------------------
# data lost: outputs that are inputs, folders, read-only places (exit 2, before any work)
# ---------------------------------------------------------------------------------------------
def test_out_equal_to_the_manifest_is_refused(case: Case, capsys: pytest.CaptureFixture) -> None:
    before = case.snapshot()
    rc, out, err = run(case, capsys, out=case.manifest)
    check(case, before, rc, EXIT_USAGE, err, "--out", str(case.manifest), "is an input of this run", results=False)
    assert err.count("\n") == 1


def test_out_equal_to_a_sample_file_is_refused_even_with_force(case: Case, capsys: pytest.CaptureFixture) -> None:
    before = case.snapshot()
    target = case.samples / "sample_0001.mp4"
    rc, out, err = run(case, capsys, "--force", out=target)
    check(case, before, rc, EXIT_USAGE, err, "sample_0001.mp4", "is an input of this run", results=False)


def test_out_over_another_file_in_the_samples_folder_is_refused(case: Case, capsys: pytest.CaptureFixture) -> None:
    (case.samples / "notes.txt").write_text("prompt notes\n")
    before = case.snapshot()
    rc, out, err = run(case, capsys, "--force", out=case.samples / "notes.txt")
    check(case, before, rc, EXIT_USAGE, err, "inside the input folder", "a text file starting 'prompt notes'",
          results=False)


def test_out_equal_to_export_official_is_refused(case: Case, capsys: pytest.CaptureFixture) -> None:
    before = case.snapshot()
    rc, out, err = run(case, capsys, "--export-official", str(case.out))
    check(case, before, rc, EXIT_USAGE, err, "--export-official and --out are the same file", results=False)


def test_out_that_is_a_folder_is_refused(case: Case, capsys: pytest.CaptureFixture) -> None:
    case.out.mkdir(parents=True)
    before = case.snapshot()
    rc, out, err = run(case, capsys)
    assert rc == EXIT_USAGE and "is a folder (expected a file path" in err and "Traceback" not in err
    assert case.snapshot() == before and case.out.is_dir()


def test_out_whose_parent_is_a_file_is_refused(case: Case, capsys: pytest.CaptureFixture) -> None:
    (case.root / "blocker").write_text("x")
    before = case.snapshot()
    rc, out, err = run(case, capsys, out=case.root / "blocker" / "r.json")
    assert rc == EXIT_USAGE and "blocker is a file, not a folder" in err and "Traceback" not in err
    assert case.snapshot() == before


def test_existing_foreign_file_is_kept_unless_forced(case: Case, capsys: pytest.CaptureFixture) -> None:
    case.out.parent.mkdir(parents=True)
    case.out.write_text("id,score\n1,0.5\n")
    before = case.snapshot()
    rc, out, err = run(case, capsys)
    assert rc == EXIT_USAGE and "exists and is not a javisbench results file" in err and "--force" in err
    assert case.out.read_text() == "id,score\n1,0.5\n"
    rc, out, err = run(case, capsys, "--force")
    check(case, before, rc, EXIT_OK, out, "results written to", scored=IDS)


def test_rerun_replaces_its_own_results(case: Case, capsys: pytest.CaptureFixture) -> None:
    before = case.snapshot()
    assert run(case, capsys)[0] == EXIT_OK
    first = strict_json(case.out)
    rc, out, err = run(case, capsys)
    r = check(case, before, rc, EXIT_OK, out, "results written to", scored=IDS)
    assert r["per_sample"] == first["per_sample"]


def test_out_in_a_place_that_cannot_be_written(case: Case, capsys: pytest.CaptureFixture) -> None:
    # /proc accepts no new files, whoever runs the test (root included)
    before = case.snapshot()
    rc, out, err = run(case, capsys, out=Path("/proc/javisbench-test/r.json"))
    assert rc == EXIT_USAGE and "cannot write into /proc/javisbench-test" in err and "Traceback" not in err
    assert case.snapshot() == before


def test_cache_dir_that_is_a_file_or_read_only(case: Case, capsys: pytest.CaptureFixture) -> None:
    blocker = case.root / "cache-file"
    blocker.write_text("not a folder")
    case.cache = blocker
    before = case.snapshot()
    rc, out, err = run(case, capsys)
    check(case, before, rc, EXIT_USAGE, err, "feature store", "cache-file is a file, not a folder", results=False)
    assert blocker.read_text() == "not a folder"
    case.cache = Path("/proc/javisbench-cache")
    rc, out, err = run(case, capsys)
    check(case, before, rc, EXIT_USAGE, err, "feature store", "cannot write into", results=False)


def test_out_equal_to_a_weights_file_or_the_reference(case: Case, capsys: pytest.CaptureFixture) -> None:
    w = case.weights / "i3d_pretrained_400.pt"
    w.write_bytes(b"PK\x03\x04 pretend checkpoint")
    ref = case.root / "ref.npz"
    np.savez(ref, video=np.zeros((4, 400), np.float32))
    before = case.snapshot()
    rc, out, err = run(case, capsys, "--force", out=w, metrics=("av_align", "fvd"))
    check(case, before, rc, EXIT_USAGE, err, "i3d_pretrained_400.pt", "is an input of this run", results=False)
    rc, out, err = run(case, capsys, "--force", "--reference", str(ref), out=ref, metrics=("av_align", "fvd"))
    check(case, before, rc, EXIT_USAGE, err, "ref.npz", "is an input of this run", results=False)


def test_disk_full_while_writing_results(case: Case, capsys: pytest.CaptureFixture,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    import javisbench.results as results_mod

    def full(*a: object, **k: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(results_mod, "atomic_open", full)
    before = case.snapshot()
    rc, out, err = run(case, capsys)
    check(case, before, rc, EXIT_WRITE, err, "could not write --out", "No space left on device",
          "run the same command again", results=False)


# ---------------------------------------------------------------------------------------------
# a bad weights file skips only its metrics (exit 3; av_align scored on every sample)
# ---------------------------------------------------------------------------------------------
def _weights_case(case: Case, capsys: pytest.CaptureFixture, payload: bytes | None, *needles: str,
                  writer=None) -> dict:  # noqa: ANN001
    w = case.weights / "i3d_pretrained_400.pt"
    if writer is not None:
        writer(w)
    else:
        w.write_bytes(payload or b"")
    before = case.snapshot()
    rc, out, err = run(case, capsys, metrics=("av_align", "fvd"))
    r = check(case, before, rc, EXIT_INCOMPLETE, out + err, "fvd: skipped", *needles, scored=IDS)
    assert r is not None
    reason = r["skipped"]["fvd"]
    digest = hashlib.sha256(w.read_bytes()).hexdigest()
    assert str(w) in reason and f"{w.stat().st_size} bytes" in reason and digest in reason
    assert "expected the official i3d_pretrained_400.pt" in reason
    assert "weights_only=False" not in out + err + json.dumps(r)
    return r


def test_truncated_weights_file(case: Case, capsys: pytest.CaptureFixture) -> None:
    import torch

    full = case.root / "full.pt"
    torch.save({"w": torch.zeros(4096)}, full)
    data = full.read_bytes()
    _weights_case(case, capsys, data[: len(data) // 2], "damaged or cut short")


def test_weights_file_with_code_in_it_is_never_run(case: Case, capsys: pytest.CaptureFixture) -> None:
    import torch

    marker = case.root / "code-ran"

    class Payload:
        def __reduce__(self):  # noqa: ANN204
            return (open, (str(marker), "w"))

    _weights_case(case, capsys, None, "pickled objects other than tensors", "never run",
                  writer=lambda p: torch.save({"state_dict": Payload()}, p))
    assert not marker.exists()
    # a bare pickle (no torch container) is refused the same way
    (case.weights / "i3d_pretrained_400.pt").write_bytes(pickle.dumps(Payload(), protocol=2))
    rc, out, err = run(case, capsys, metrics=("av_align", "fvd"))
    assert rc == EXIT_INCOMPLETE and "pickled objects other than tensors" in out and not marker.exists()


def test_weights_file_of_another_kind(case: Case, capsys: pytest.CaptureFixture) -> None:
    _weights_case(case, capsys, b"<html>404 not found</html>", "is not a torch.save zip archive",
                  "first bytes b'<html>40'")


def test_empty_weights_file(case: Case, capsys: pytest.CaptureFixture) -> None:
    _weights_case(case, capsys, b"", "the file is empty")


def test_weights_of_another_model(case: Case, capsys: pytest.CaptureFixture) -> None:
    import torch

    w = case.weights / "i3d_pretrained_400.pt"
    torch.save({"layer.weight": torch.zeros(3, 3)}, w)
    before = case.snapshot()
    rc, out, err = run(case, capsys, metrics=("av_align", "fvd"))
    r = check(case, before, rc, EXIT_INCOMPLETE, out, "fvd: skipped", "does not match encoder 'i3d'", scored=IDS)
    assert "missing" in r["skipped"]["fvd"] and "layer.weight" in r["skipped"]["fvd"]


def test_encoder_load_crash_skips_only_its_metrics(base: dict, tmp_path: Path) -> None:
    """Any exception from a load (not only a bad file) skips that encoder's metrics."""
    from fakes import FakeI3D

    from javisbench.config import EvalConfig
    from javisbench.evaluate import evaluate
    from javisbench.summary import summarize

    class Crashing(FakeI3D):
        def load(self, weights_dir: Path) -> None:
            raise TypeError("unexpected keyword argument 'mmap'")

    r = evaluate(EvalConfig(samples_dir=base["samples"], bench=base["manifest"], out=tmp_path / "r.json",
                            cache_dir=base["cache"], weights_dir=tmp_path / "w", metrics=["av_align", "fvd"],
                            progress=False, workers=2), encoders={"i3d": Crashing})
    assert "could not be loaded" in r["skipped"]["fvd"] and "TypeError: unexpected keyword" in r["skipped"]["fvd"]
    assert r["overall"]["av_align"]["n"] == N
    assert summarize(r).exit_code == EXIT_INCOMPLETE


# ---------------------------------------------------------------------------------------------
# sample faults: recorded, printed, the others scored
# ---------------------------------------------------------------------------------------------
def test_missing_sample(case: Case, capsys: pytest.CaptureFixture) -> None:
    (case.samples / "sample_0002.mp4").unlink()
    before = case.snapshot()
    rc, out, err = run(case, capsys)
    check(case, before, rc, EXIT_INCOMPLETE, out, "failed samples: 1 of 4", "missing video file", "sample_0002",
          'under "failures"', scored=["sample_0000", "sample_0001", "sample_0003"], failed=["sample_0002"])
    rc, out, err = run(case, capsys, "--allow-failures")
    assert rc == EXIT_OK and "failed samples: 1 of 4" in out


def test_every_sample_misnamed_gets_a_naming_hint(case: Case, capsys: pytest.CaptureFixture) -> None:
    for i, sid in enumerate(IDS):
        for ext in ("mp4", "wav"):
            (case.samples / f"{sid}.{ext}").rename(case.samples / f"sample_{i + 1}.{ext}")
    before = case.snapshot()
    rc, out, err = run(case, capsys)
    r = check(case, before, rc, EXIT_INCOMPLETE, out, "failed samples: 4 of 4", "hint: 4 of 4 samples have no video",
              "sample_1.mp4", "zero-padded to 4 digits", scored=[], failed=IDS)
    assert "av_align" in r["skipped"] or r["overall"]["av_align"]["value"] is None


def test_garbage_and_cut_mp4(case: Case, capsys: pytest.CaptureFixture) -> None:
    (case.samples / "sample_0000.mp4").write_bytes(b"this is not a video")
    data = (case.samples / "sample_0001.mp4").read_bytes()
    (case.samples / "sample_0001.mp4").write_bytes(data[: len(data) // 3])
    before = case.snapshot()
    rc, out, err = run(case, capsys)
    check(case, before, rc, EXIT_INCOMPLETE, out, "failed samples: 2 of 4", "[decode]",
          scored=["sample_0002", "sample_0003"], failed=["sample_0000", "sample_0001"])


def test_truncated_upload_with_index_in_front_official_warns(base: dict, case: Case,
                                                             capsys: pytest.CaptureFixture) -> None:
    truncate_faststart(base, case, "sample_0001")
    before = case.snapshot()
    rc, out, err = run(case, capsys)
    r = check(case, before, rc, EXIT_OK, out, "warned samples:", "frames the container declares (truncated file?)",
              "sample_0001", scored=IDS)
    assert any("of the 48 frames" in w for w in r["warnings"]["sample_0001"])
    rc, out, err = run(case, capsys, "--strict")            # served from the store: same warning, now an error
    assert rc == EXIT_INCOMPLETE and "frames the container declares" in out


def test_truncated_upload_fails_under_fixed(base: dict, case: Case, capsys: pytest.CaptureFixture) -> None:
    truncate_faststart(base, case, "sample_0001")
    before = case.snapshot()
    rc, out, err = run(case, capsys, "--protocol", "javisbench-fixed")
    r = check(case, before, rc, EXIT_INCOMPLETE, out, "failed samples: 1 of 4", "incomplete decode",
              scored=["sample_0000", "sample_0002", "sample_0003"], failed=["sample_0001"])
    assert "javisbench-fixed fails incomplete decodes" in r["failures"]["sample_0001"]["decode"]


def test_most_decodes_short_gives_a_truncation_hint(base: dict, case: Case, capsys: pytest.CaptureFixture) -> None:
    for sid in IDS[:3]:
        truncate_faststart(base, case, sid)
    before = case.snapshot()
    rc, out, err = run(case, capsys, "--protocol", "javisbench-fixed")
    check(case, before, rc, EXIT_INCOMPLETE, out, "hint: 3 of 4 clips decode shorter than their container declares",
          "truncated uploads", scored=["sample_0003"], failed=IDS[:3])


def test_zero_length_and_nan_audio(case: Case, capsys: pytest.CaptureFixture) -> None:
    write_wav(case.samples / "sample_0000.wav", np.zeros(0), 16000)
    a = np.zeros(32000, np.float32)
    a[100:200] = np.nan
    write_float_wav(case.samples / "sample_0001.wav", a, 16000)
    before = case.snapshot()
    rc, out, err = run(case, capsys)
    r = check(case, before, rc, EXIT_INCOMPLETE, out, "failed samples: 2 of 4",
              scored=["sample_0002", "sample_0003"], failed=["sample_0000", "sample_0001"])
    assert "NaN" in json.dumps(r["failures"]["sample_0001"])


def test_silent_audio_is_a_printed_warning(case: Case, capsys: pytest.CaptureFixture) -> None:
    write_wav(case.samples / "sample_0003.wav", np.zeros(32000), 16000)
    before = case.snapshot()
    rc, out, err = run(case, capsys)
    check(case, before, rc, EXIT_OK, out, "warned samples: 1 of 4", "silent audio", "sample_0003", scored=IDS)
    rc, out, err = run(case, capsys, "--strict")
    assert rc == EXIT_INCOMPLETE and "warnings (--strict)" in err


def test_unusual_rate_short_audio_and_low_fps_are_printed(base: dict, case: Case, capsys: pytest.CaptureFixture) -> None:
    from reference_models.synthav import write_mp4

    clip = base["clips"][2]
    stereo = np.stack([clip.audio, clip.audio]) if clip.audio.ndim == 1 else clip.audio
    up = np.repeat(stereo, 3, axis=-1)[..., : int(stereo.shape[-1] * 44100 / 16000)]
    write_wav(case.samples / "sample_0000.wav", up, 44100)                       # 44.1 kHz stereo
    write_wav(case.samples / "sample_0001.wav", clip.audio[..., :4000], 16000)    # 0.25 s of audio, 2 s video
    write_mp4(case.samples / "sample_0002.mp4", clip.frames[::12], 2)            # 2 fps
    before = case.snapshot()
    rc, out, err = run(case, capsys)
    check(case, before, rc, EXIT_OK, out, "44100 Hz with 2 channel(s)", "audio much shorter than the video",
          "very low frame rate: 2 fps", scored=IDS)


def test_two_frame_clip_warns_in_our_words_not_librosa(base: dict, case: Case, capsys: pytest.CaptureFixture,
                                                       recwarn: pytest.WarningsRecorder) -> None:
    from reference_models.synthav import write_mp4

    clip = base["clips"][0]
    write_mp4(case.samples / "sample_0000.mp4", clip.frames[:2], clip.fps)
    write_wav(case.samples / "sample_0000.wav", clip.audio[..., : 2 * clip.sr // clip.fps], clip.sr)
    before = case.snapshot()
    rc, out, err = run(case, capsys)
    check(case, before, rc, EXIT_OK, out, "audio has only 1333 samples", "less than one 2048-sample analysis window",
          scored=IDS)
    assert not [w for w in recwarn if "n_fft" in str(w.message)] and "n_fft" not in err


def test_extra_sample_files_are_a_printed_warning(case: Case, capsys: pytest.CaptureFixture) -> None:
    shutil.copy(case.samples / "sample_0000.mp4", case.samples / "sample_0011.mp4")
    before = case.snapshot()
    rc, out, err = run(case, capsys)
    check(case, before, rc, EXIT_OK, out, "1 sample file(s)", "sample_0011.mp4", "wrong manifest?", scored=IDS)
    rc, out, err = run(case, capsys, "--strict")
    assert rc == EXIT_INCOMPLETE
    rc, out, err = run(case, capsys, "--limit", "2")           # fewer rows on purpose: no warning
    assert rc == EXIT_OK and "sample_0011" not in out


# ---------------------------------------------------------------------------------------------
# the feature store: entries with valid structure and wrong contents are recomputed
# ---------------------------------------------------------------------------------------------
def _private_store(base: dict, case: Case) -> None:
    shutil.copytree(base["cache"], case.root / "cache")
    case.cache = case.root / "cache"


def test_cached_features_out_of_range_or_missing_a_key_are_recomputed(base: dict, case: Case,
                                                                     capsys: pytest.CaptureFixture) -> None:
    _private_store(base, case)
    entries = sorted((case.cache / "features" / "avalign").rglob("*.npz"))
    assert len(entries) >= N
    edited = 0
    for i, p in enumerate(entries):
        with np.load(p) as z:
            d = {k: z[k] for k in z.files}
        if i % 2 == 0:
            d["rates"] = -np.abs(d["rates"])                        # a rate below its declared range
        else:
            d.pop("onset_env")                                      # a declared output missing
        np.savez(p, **d)
        edited += 1
    before = case.snapshot()
    rc, out, err = run(case, capsys)
    r = check(case, before, rc, EXIT_OK, out, "results written to", scored=IDS)
    assert r["per_sample"] == base["clean"]["per_sample"]
    st = r["timing"]["feature_store"]
    assert st["rejected"] == N and st["writes"] == N and st["hits"] == 0


def test_damaged_memo_entries_are_recomputed(base: dict, tmp_path: Path) -> None:
    from fakes import FakeI3D

    from javisbench.config import EvalConfig
    from javisbench.evaluate import evaluate

    cfg = EvalConfig(samples_dir=base["samples"], bench=base["manifest"], out=None, cache_dir=tmp_path / "c",
                     weights_dir=tmp_path / "w", metrics=["fvd"], reference_dir=base["samples"], progress=False,
                     workers=2)
    first = evaluate(cfg, encoders={"i3d": FakeI3D})
    memos = sorted((tmp_path / "c" / "memo").rglob("*.json"))
    assert memos
    for i, p in enumerate(memos):
        d = json.loads(p.read_text())
        if isinstance(d, dict) and "value" in d:
            d["value"] = "abc" if i % 2 else 1e9
            del d["n"]
        else:
            d = {"broken": True}
        p.write_text(json.dumps(d))
    again = evaluate(cfg, encoders={"i3d": FakeI3D})
    assert again["overall"] == first["overall"] and again["per_category"] == first["per_category"]


# ---------------------------------------------------------------------------------------------
# messages that used to name an internal key
# ---------------------------------------------------------------------------------------------
def test_results_without_bench(base: dict, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    r = dict(base["clean"])
    del r["bench"]
    p = tmp_path / "r.json"
    p.write_text(json.dumps(r))
    h = hashlib.sha256(p.read_bytes()).hexdigest()
    for args in (["report", str(p)], ["compare", str(p), str(p)]):
        assert main(args) == EXIT_USAGE
        err = capsys.readouterr().err
        assert "the 'bench' block is missing" in err and str(p) in err and "Traceback" not in err
        assert err.count("\n") == 1
    assert hashlib.sha256(p.read_bytes()).hexdigest() == h


def test_model_meta_without_equals(case: Case, capsys: pytest.CaptureFixture) -> None:
    before = case.snapshot()
    rc, out, err = run(case, capsys, "--model-meta", "steps=30", "foo")
    check(case, before, rc, EXIT_USAGE, err, "--model-meta 'foo': expected KEY=VALUE", results=False)
    rc, out, err = run(case, capsys, "--model-meta", "name=x")
    check(case, before, rc, EXIT_USAGE, err, "--model-name", results=False)


def test_bad_manifest_and_names_fail_before_any_work(case: Case, capsys: pytest.CaptureFixture) -> None:
    rows = case.manifest.read_text().splitlines()
    case.manifest.write_text("\n".join(rows[:2] + [rows[2].rsplit(",", 1)[0] + ",7"] + rows[3:]) + "\n")
    before = case.snapshot()
    rc, out, err = run(case, capsys)
    check(case, before, rc, EXIT_USAGE, err, "cat4_ind", "7", results=False)
    case.manifest.write_text("\n".join(rows) + "\n")
    before = case.snapshot()
    rc, out, err = run(case, capsys, metrics=("av_allign",))
    check(case, before, rc, EXIT_USAGE, err, "Did you mean: av_align", results=False)


def test_debug_shows_the_traceback(case: Case, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(ValueError, match="expected KEY=VALUE"):
        run(case, capsys, "--model-meta", "foo", "--debug")


def test_internal_error_is_one_line_with_the_debug_hint(case: Case, capsys: pytest.CaptureFixture,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*a: object, **k: object) -> None:
        raise KeyError("bench")

    monkeypatch.setattr("javisbench.report.overall_table", boom)
    before = case.snapshot()
    rc, out, err = run(case, capsys)
    assert rc == 1 and "internal error: KeyError: 'bench'" in err and "--debug" in err and "Traceback" not in err
    assert case.snapshot() == before


def test_every_sample_failing_at_one_encoder_gets_a_hint(base: dict, tmp_path: Path) -> None:
    from fakes import FakeI3D

    from javisbench.config import EvalConfig
    from javisbench.evaluate import evaluate
    from javisbench.summary import render, summarize

    class Broken(FakeI3D):
        version = "broken-1"

        def encode(self, batch):  # noqa: ANN001, ANN201
            raise RuntimeError("CUDA error: device-side assert triggered")

    r = evaluate(EvalConfig(samples_dir=base["samples"], bench=base["manifest"], out=tmp_path / "r.json",
                            cache_dir=tmp_path / "c", weights_dir=tmp_path / "w", metrics=["av_align", "fvd"],
                            reference_dir=base["samples"], progress=False, workers=2), encoders={"i3d": Broken})
    s = summarize(r)
    text = render(s, out=tmp_path / "r.json")
    assert s.exit_code == EXIT_INCOMPLETE and "hint: every sample failed at encode:i3d" in text
    assert f"{N} x [encode:i3d] RuntimeError: CUDA error" in text
    assert r["overall"]["av_align"]["n"] == N
    assert strict_json(tmp_path / "r.json")["failures"] == r["failures"]


# ---------------------------------------------------------------------------------------------
# two runs on one store at once
# ---------------------------------------------------------------------------------------------
def test_two_concurrent_runs_on_one_store_agree(base: dict, tmp_path: Path) -> None:
    samples = tmp_path / "samples"
    shutil.copytree(base["samples"], samples)
    write_wav(samples / "sample_0002.wav", np.zeros(32000), 16000)     # new content: both runs compute it
    cache = tmp_path / "cache"
    procs = []
    for k in range(2):
        args = ["evaluate", str(samples), "--bench", str(base["manifest"]), "--out", str(tmp_path / f"r{k}.json"),
                "--quiet", "--cache-dir", str(cache), "--weights-dir", str(tmp_path / "w"), "--metrics", "av_align",
                "--workers", "1"]
        procs.append(subprocess.Popen([sys.executable, "-m", "javisbench", *args], cwd=str(REPO),
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(os.environ)))
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [EXIT_OK, EXIT_OK], outs
    a, b = (strict_json(tmp_path / f"r{k}.json") for k in range(2))
    for key in ("overall", "per_category", "per_sample", "failures", "warnings", "skipped"):
        assert a[key] == b[key], key
    assert "silent audio" in a["warnings"]["sample_0002"][0]


# ---------------------------------------------------------------------------------------------
# the other commands' outputs are checked the same way
# ---------------------------------------------------------------------------------------------
def test_other_commands_never_overwrite_their_inputs(base: dict, case: Case, capsys: pytest.CaptureFixture) -> None:
    res = case.root / "r.json"
    res.write_text(json.dumps(base["clean"]))
    notes = case.root / "notes.md"
    notes.write_text("# my notes\n")
    before = case.snapshot()
    for args, needle in (
            (["compare", str(res), str(res), "--out", str(res)], "is an input of this run"),
            (["compare", str(res), str(res), "--out", str(notes)], "refusing to replace it"),
            (["report", str(res), "--html", str(res)], "is an input of this run"),
            (["report", str(res), "--html", str(case.root)], "is a folder"),
            (["reference", "build", str(case.samples), "--bench", str(case.manifest), "--out", str(case.manifest),
              "--metrics", "fvd"], "is an input of this run"),
            (["reference", "build", str(case.samples), "--bench", str(case.manifest), "--out",
              str(case.samples / "sample_0000.wav"), "--metrics", "fvd"], "inside the input folder")):
        capsys.readouterr()
        assert main(args) == EXIT_USAGE, args
        err = capsys.readouterr().err
        assert needle in err and err.count("\n") == 1 and "Traceback" not in err, (args, err)
    assert case.snapshot() == before


def test_reasons_group_across_ids_paths_and_numbers() -> None:
    from javisbench.summary import reason_key

    a = reason_key("decode", "sample 'sample_0001' (/x/a/sample_0001.mp4): decoded 24 of the 48 frames", "sample_0001")
    b = reason_key("decode", "sample 'sample_0007' (/y/sample_0007.mp4): decoded 3 of the 96 frames", "sample_0007")
    c = reason_key("input", "sample 'sample_0007' (/y/sample_0007.mp4): decoded 3 of the 96 frames", "sample_0007")
    d = reason_key("decode", "sample 'sample_0007' (/y/sample_0007.mp4): no video stream", "sample_0007")
    assert a == b and a != c and a != d
