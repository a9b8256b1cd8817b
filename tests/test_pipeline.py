"""End to end: evaluate on synthetic clips, the feature store, resume, failures, exports."""
from __future__ import annotations

import json
import math
import shutil
import wave
from pathlib import Path

import numpy as np
import pytest

from javisbench import encoders as registry
from javisbench.config import EvalConfig
from javisbench.evaluate import evaluate
from javisbench.results import read_results

N_CLIPS = 6


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> dict:
    from reference_models.baselines import frozen_video, shift_audio
    from reference_models.synthav import make_clip, write_clip, write_manifest

    root = tmp_path_factory.mktemp("synth")
    clips = [make_clip(100 + i) for i in range(N_CLIPS)]
    pairs = [(c.frames, c.audio) for c in clips]
    manifest = write_manifest(root / "bench.csv", clips)
    dirs = {}
    for name, fn in {"clean": lambda p, i, sr: p[i], "shifted": shift_audio(0.5), "frozen": frozen_video}.items():
        d = root / name
        for i in range(N_CLIPS):
            f, a = fn(pairs, i, 16000)
            write_clip(d, f"sample_{i:04d}", f, a, 24, 16000)
        dirs[name] = d
    return {"root": root, "manifest": manifest, "dirs": dirs, "clips": clips}


@pytest.fixture()
def fake_encoders(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(registry.ENCODERS, "i3d", "fakes:FakeI3D")
    monkeypatch.setitem(registry.ENCODERS, "audioclip", "fakes:FakeAudio")


def _cfg(synth: dict, variant: str, tmp_path: Path, **kw) -> EvalConfig:  # noqa: ANN003
    base = dict(samples_dir=synth["dirs"][variant], bench=synth["manifest"], out=tmp_path / f"{variant}.json",
                cache_dir=tmp_path / "cache", weights_dir=tmp_path / "weights", progress=False, workers=2, batch_size=4)
    base.update(kw)
    return EvalConfig(**base)


def _numbers(r: dict) -> dict:
    """Everything that must be identical between two runs (not timing, dates or store counters)."""
    return {k: r[k] for k in ("overall", "per_category", "per_sample", "failures", "skipped", "encoders", "protocol")}


def test_weight_free_run_reports_skips_and_av_align(synth: dict, tmp_path: Path) -> None:
    r = evaluate(_cfg(synth, "clean", tmp_path))
    assert set(r["overall"]) == {"av_align", "av_lag"}
    cell = r["overall"]["av_align"]
    assert cell["n"] == N_CLIPS and cell["n_failed"] == 0
    assert 0 < cell["value"] <= 1.5 and cell["ci_low"] <= cell["value"] <= cell["ci_high"]
    # every metric that needs weights is skipped with the file it needs, never a number
    for key in ("fvd", "fad", "ib_tv", "clip_score", "clap_score", "desync", "javis_score"):
        assert key in r["skipped"] and key not in r["overall"]
    assert "i3d_pretrained_400.pt" in r["skipped"]["fvd"]
    assert "imagebind_huge.pth" in r["skipped"]["ib_tv"]
    # the file on disk is valid JSON and round-trips through the reader
    assert read_results(tmp_path / "clean.json")["overall"]["av_align"] == cell
    # per-category cells exist for the labelled bench, with n
    cats = r["per_category"]
    assert set(cats) == {"event_scenario", "visual_style", "sound_type", "temporal", "spatial"}
    n_spatial = sum(c.get("av_align", {}).get("n", 0) for c in cats["spatial"].values())
    assert n_spatial == N_CLIPS  # spatial is single-labelled in this synthetic bench


def test_shifted_and_frozen_rank_below_clean(synth: dict, tmp_path: Path) -> None:
    vals = {v: evaluate(_cfg(synth, v, tmp_path, metrics=["av_align"]))["overall"]["av_align"]["value"]
            for v in ("clean", "shifted", "frozen")}
    assert vals["shifted"] < vals["clean"]
    assert vals["frozen"] < vals["clean"]


def test_set_metrics_with_reference_dir(synth: dict, tmp_path: Path, fake_encoders: None) -> None:
    clean = evaluate(_cfg(synth, "clean", tmp_path, metrics=["fvd", "kvd", "fad"], reference_dir=synth["dirs"]["clean"]))
    frozen = evaluate(_cfg(synth, "frozen", tmp_path, metrics=["fvd", "kvd", "fad"], reference_dir=synth["dirs"]["clean"]))
    assert abs(clean["overall"]["fvd"]["value"]) < 1e-3          # a set against itself
    assert abs(clean["overall"]["fad"]["value"]) < 1e-3 * 1e4
    assert frozen["overall"]["fvd"]["value"] > 100 * max(abs(clean["overall"]["fvd"]["value"]), 1e-6)
    # frozen video leaves the audio untouched: FAD stays ~0
    assert abs(frozen["overall"]["fad"]["value"]) < 1e-3 * 1e4
    assert "rank-deficient" in clean["overall"]["fvd"]["flags"]    # 6 samples < 16 dims


def test_rerun_is_served_from_the_store(synth: dict, tmp_path: Path, fake_encoders: None) -> None:
    cfg = _cfg(synth, "shifted", tmp_path, metrics=["av_align", "fvd"], reference_dir=synth["dirs"]["clean"])
    first = evaluate(cfg)
    second = evaluate(cfg)
    assert _numbers(first) == _numbers(second)
    st = second["timing"]["feature_store"]
    assert st["writes"] == 0 and st["misses"] == 0 and st["hits"] >= 2 * N_CLIPS


def test_killed_run_resumes_with_identical_results(synth: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import fakes

    monkeypatch.setitem(registry.ENCODERS, "i3d", "fakes:FakeI3D")
    monkeypatch.setitem(registry.ENCODERS, "audioclip", "fakes:FakeAudio")
    ref = evaluate(_cfg(synth, "clean", tmp_path / "a", metrics=["av_align", "fad"], reference_dir=synth["dirs"]["clean"],
                        batch_size=2, out=None))
    monkeypatch.setitem(registry.ENCODERS, "audioclip", "fakes:CrashingAudio")
    fakes.CrashingAudio.calls = 0
    cfg = _cfg(synth, "clean", tmp_path / "b", metrics=["av_align", "fad"], reference_dir=synth["dirs"]["clean"], batch_size=2)
    with pytest.raises(SystemExit):
        evaluate(cfg)
    stored = list((tmp_path / "b" / "cache" / "features" / "audioclip").rglob("*.npz"))
    assert 0 < len(stored) < 2 * N_CLIPS       # some work was finished and kept
    fakes.CrashingAudio.calls = 100            # no more crashes
    resumed = evaluate(cfg)
    assert resumed["timing"]["feature_store"]["hits"] >= len(stored)
    a, b = _numbers(ref), _numbers(resumed)
    a["encoders"] = b["encoders"] = None       # CrashingAudio has another class name but the same id/version
    assert a == b


def _write_wav(path: Path, data: np.ndarray, sr: int) -> None:
    pcm = (np.clip(data, -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sr)
        w.writeframes(pcm.tobytes())


def test_bad_samples_are_recorded_and_the_run_continues(synth: dict, tmp_path: Path) -> None:
    from reference_models.synthav import write_mp4

    d = tmp_path / "bad"
    shutil.copytree(synth["dirs"]["clean"], d)
    (d / "sample_0000.mp4").unlink()                                  # missing file
    data = (d / "sample_0001.mp4").read_bytes()
    (d / "sample_0001.mp4").write_bytes(data[: len(data) // 3])       # truncated mp4
    (d / "sample_0002.mp4").write_bytes(b"not a video at all")         # unreadable
    _write_wav(d / "sample_0003.wav", np.zeros(0), 16000)             # zero-length audio
    write_mp4(d / "sample_0004.mp4", synth["clips"][4].frames[:1], 24)  # one frame: too short for AV-Align
    r = evaluate(EvalConfig(samples_dir=d, bench=synth["manifest"], out=tmp_path / "bad.json", cache_dir=tmp_path / "c",
                            weights_dir=tmp_path / "w", metrics=["av_align"], progress=False, workers=2))
    f = r["failures"]
    assert "missing video file" in f["sample_0000"]["input"] and "sample_0000.mp4" in f["sample_0000"]["input"]
    assert "sample_0001" in f and "sample_0002" in f
    assert any("sample_0002.mp4" in m for m in f["sample_0002"].values())
    assert "sample_0003" in f and any("audio" in m for m in f["sample_0003"].values())
    assert "sample_0004" in f and any("2 video frames" in m or "frame" in m for m in f["sample_0004"].values())
    cell = r["overall"]["av_align"]
    assert cell["n"] == 1 and cell["n_failed"] == N_CLIPS - 1         # only sample_0005 survives, and it is counted
    assert r["per_sample"]["sample_0000"]["av_align"] is None


def test_silent_audio_is_scored_not_excluded(synth: dict, tmp_path: Path) -> None:
    d = tmp_path / "silent"
    shutil.copytree(synth["dirs"]["clean"], d)
    _write_wav(d / "sample_0000.wav", np.zeros(64000), 16000)
    r = evaluate(EvalConfig(samples_dir=d, bench=synth["manifest"], out=None, cache_dir=tmp_path / "c",
                            weights_dir=tmp_path / "w", metrics=["av_align"], progress=False, workers=2))
    assert r["per_sample"]["sample_0000"]["av_align"] == 0.0
    assert any("silent" in w for w in r["warnings"]["sample_0000"])
    assert r["overall"]["av_align"]["n"] == N_CLIPS


def test_manifest_errors_fail_before_any_model(synth: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from javisbench.manifest import ManifestError

    loaded = []
    monkeypatch.setattr("javisbench.encoders.avalign.AVAlignEncoder.load", lambda self, w: loaded.append(1))
    rows = synth["manifest"].read_text().splitlines()
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join(rows[:3] + [rows[3].rsplit(",", 1)[0] + ",7"] + rows[4:]) + "\n")  # cat4_ind = 7
    with pytest.raises(ValueError, match=r"(?s)cat4_ind.*7"):
        evaluate(_cfg(synth, "clean", tmp_path, bench=bad))
    dup = tmp_path / "dup.csv"
    dup.write_text("\n".join(rows + [rows[1]]) + "\n")
    with pytest.raises(ManifestError, match="duplicate id"):
        evaluate(_cfg(synth, "clean", tmp_path, bench=dup))
    nan = tmp_path / "nan.csv"
    nan.write_text("\n".join(rows[:2] + [rows[2].rsplit(",", 1)[0] + ",nan"] + rows[3:]) + "\n")
    with pytest.raises(ValueError, match="nan|NaN|missing"):
        evaluate(_cfg(synth, "clean", tmp_path, bench=nan))
    assert loaded == []


def test_export_official_layout_is_valid_json(synth: dict, tmp_path: Path) -> None:
    out = tmp_path / "official.json"
    evaluate(_cfg(synth, "clean", tmp_path, metrics=["av_align"], export_official=out))
    data = json.loads(out.read_text())                 # strict JSON: no bare NaN
    e = data["av_align"]
    assert set(e) == {"overall", "all", "0", "1", "2", "3", "4"}
    assert len(e["all"]) == N_CLIPS and [len(e[str(a)]) for a in range(5)] == [5, 3, 5, 3, 3]
    assert math.isclose(e["overall"], float(np.mean(e["all"])), rel_tol=1e-12)
    # categories with no sample are null where the original wrote NaN
    assert any(v is None for a in range(5) for v in e[str(a)])


def test_sigkill_mid_run_then_resume(synth: dict, tmp_path: Path, fake_encoders: None) -> None:
    """A real kill -9 of a running evaluation: finished features survive, the re-run completes them
    and the results equal an uninterrupted run's."""
    import os
    import signal
    import subprocess
    import sys
    import time

    cache = tmp_path / "cache"
    args = ["evaluate", str(synth["dirs"]["shifted"]), "--bench", str(synth["manifest"]), "--out", str(tmp_path / "k.json"),
            "--cache-dir", str(cache), "--weights-dir", str(tmp_path / "w"), "--metrics", "fvd", "--batch-size", "1",
            "--reference-dir", str(synth["dirs"]["clean"]), "--quiet", "--workers", "1"]
    script = ("import sys; sys.path.insert(0, %r); from javisbench import encoders as r; "
              "r.ENCODERS['i3d'] = 'fakes:FakeI3D'; from javisbench.cli import main; sys.exit(main(%r))"
              % (str(Path(__file__).parent), args))
    env = dict(os.environ, JAVISBENCH_FAKE_ENCODE_DELAY="0.5")
    proc = subprocess.Popen([sys.executable, "-c", script], env=env, cwd=str(Path(__file__).parent.parent))
    feat_dir = cache / "features" / "i3d"
    deadline = time.time() + 120
    while time.time() < deadline and len(list(feat_dir.rglob("*.npz"))) < 2:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    # a write cut by the kill leaves a temporary file, never an entry: count entries only
    n_kept = len([f for f in feat_dir.rglob("*.npz") if not f.name.startswith(".tmp-")])
    assert 2 <= n_kept < 2 * N_CLIPS and not (tmp_path / "k.json").exists()
    resumed = evaluate(_cfg(synth, "shifted", tmp_path, metrics=["fvd"], reference_dir=synth["dirs"]["clean"], cache_dir=cache))
    assert resumed["timing"]["feature_store"]["hits"] >= n_kept
    fresh = evaluate(_cfg(synth, "shifted", tmp_path / "fresh", metrics=["fvd"], reference_dir=synth["dirs"]["clean"]))
    assert _numbers(resumed) == _numbers(fresh)


def test_where_and_subset_keep_row_identity(synth: dict, tmp_path: Path, fake_encoders: None) -> None:
    full = evaluate(_cfg(synth, "shifted", tmp_path, metrics=["av_align", "fvd"], reference_dir=synth["dirs"]["clean"]))
    labels = [c.labels for c in synth["clips"]]
    keep = [i for i, lab in enumerate(labels) if lab["cat4_ind"] == 1]
    assert 0 < len(keep) < N_CLIPS
    sub = evaluate(_cfg(synth, "shifted", tmp_path, metrics=["av_align", "fvd"], reference_dir=synth["dirs"]["clean"],
                        where="spatial=multiple_subjects"))
    assert sub["sample_ids"] == [f"sample_{i:04d}" for i in keep]
    for sid in sub["sample_ids"]:
        assert sub["per_sample"][sid] == full["per_sample"][sid]       # same sample, same value
    # the per-category cell of the full run is the filtered run's overall value
    assert math.isclose(sub["overall"]["av_align"]["value"],
                        full["per_category"]["spatial"]["multiple_subjects"]["av_align"]["value"], rel_tol=1e-12)
    if len(keep) >= 2:
        assert math.isclose(sub["overall"]["fvd"]["value"],
                            full["per_category"]["spatial"]["multiple_subjects"]["fvd"]["value"], rel_tol=1e-6)
    s1 = evaluate(_cfg(synth, "shifted", tmp_path, metrics=["av_align"], subset=3, subset_seed=1))
    s2 = evaluate(_cfg(synth, "shifted", tmp_path, metrics=["av_align"], subset=3, subset_seed=1))
    assert s1["sample_ids"] == s2["sample_ids"] and len(s1["sample_ids"]) == 3
    with pytest.raises(ValueError, match="keeps no row|Unknown|unknown"):
        evaluate(_cfg(synth, "shifted", tmp_path, metrics=["av_align"], where="sound_type=speech"))
