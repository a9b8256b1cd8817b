"""In-domain encoders (``@synthav`` metrics) on a SynthAV test split built here (24 clips with an
on-screen sounding source).

Done-means figures asserted: DeSync@synthav and JavisScore@synthav separate clean clips from
copies with the audio delayed 0.5 s (AUROC >= 0.9); FVD@synthav of the clean set against itself is
~0 and rises monotonically with pixel noise; text-video similarity is higher for the matching
captions than for shuffled ones.  Plus the contract: shipped weights and their hashes, official
flags, the same metric functions as the official keys, batch invariance.
"""
from __future__ import annotations

import csv
import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest

from javisbench.config import EvalConfig
from javisbench.evaluate import evaluate
from javisbench.indomain import model as M
from javisbench.indomain.nets import FILES, WEIGHTS_DIR, InDomainWeightsError, load_net
from javisbench.meta_eval import separation
from javisbench.suite import INDOMAIN_METRICS, METRICS, select_metrics

N = 24
NOISE = (0.03, 0.1, 0.3)


@pytest.fixture(scope="module")
def split(tmp_path_factory: pytest.TempPathFactory) -> dict:
    import dataclasses

    from reference_models.baselines import shift_audio, video_noise
    from reference_models.synthav import clip_seed, make_synth_clip, stratified_labels, write_bench, write_clip

    root = tmp_path_factory.mktemp("indomain")
    # SynthAV test-split clips with a visible sounding source: an off-screen sound has no visual event
    # to be in or out of sync with, so a shift of it is undetectable by any synchrony metric
    labels = [dataclasses.replace(lab, spatial=lab.spatial if lab.spatial != 2 else i % 2)
              for i, lab in enumerate(stratified_labels(N, 7 * 4 + 2))]
    clips = [make_synth_clip(lab, clip_seed(7, "test", i)) for i, lab in enumerate(labels)]
    assert {c.scene.labels.keys()["spatial"] for c in clips} == {"single_subject", "multiple_subjects"}
    bench = write_bench(root / "bench", clips)
    pairs = [(c.frames, c.audio) for c in clips]
    fps, sr = clips[0].fps, clips[0].sr
    folders = {"clean": bench}
    for name, fn in [("shift", shift_audio(0.5))] + [(f"noise{s}", video_noise(s)) for s in NOISE]:
        for i in range(N):
            f, a = fn(pairs, i, sr)
            write_clip(root / name, f"sample_{i:04d}", f, a, fps, sr)
        folders[name] = root / name
    # the same clips with every caption moved one row down (a mismatching prompt per clip)
    rows = list(csv.DictReader(open(bench / "manifest.csv", newline="", encoding="utf-8")))
    shuffled = root / "shuffled.csv"
    with open(shuffled, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        for i, r in enumerate(rows):
            w.writerow({**r, "text": rows[(i + 1) % N]["text"], "audio_text": rows[(i + 1) % N]["audio_text"]})

    def run(name: str, keys: list[str], manifest: Path | None = None, protocol: str | None = None) -> dict:
        cfg = EvalConfig(samples_dir=folders[name], bench=manifest or bench / "manifest.csv", metrics=keys,
                         cache_dir=root / "cache", reference_dir=bench, model_name=name, progress=False, workers=2,
                         protocol=protocol)
        return evaluate(cfg)

    return {"root": root, "bench": bench, "run": run, "shuffled": shuffled}


def _per_sample(r: dict, key: str) -> np.ndarray:
    return np.array([np.nan if r["per_sample"][s][key] is None else r["per_sample"][s][key] for s in r["sample_ids"]])


def test_shift_is_detected_by_desync_and_javis_score(split: dict) -> None:
    keys = ["desync@synthav", "javis_score@synthav", "avh_score@synthav"]
    clean, shifted = split["run"]("clean", keys), split["run"]("shift", keys)
    assert not clean["failures"] and not shifted["failures"]
    for key in ("desync@synthav", "javis_score@synthav"):
        s = separation(_per_sample(clean, key), _per_sample(shifted, key), METRICS[key].higher_is_better, n_boot=200)
        print(key, s)
        assert s["n"] == N and s["auroc"] >= 0.9, (key, s)
    # DeSync reads the classifier's offsets: the shifted copies are mostly found 0.4-0.6 s late
    off = _per_sample(shifted, "desync@synthav")
    assert np.mean(np.abs(off - 0.5) <= 0.1 + 1e-6) >= 0.7, off
    assert np.mean(_per_sample(clean, "desync@synthav")) < 0.15


def test_fvd_zero_on_itself_and_monotone_in_pixel_noise(split: dict) -> None:
    keys = ["fvd@synthav", "kvd@synthav"]
    clean = split["run"]("clean", keys)
    # the reference is the clean set itself: same features, FD = 0 up to the protocol's float32 square root
    f0 = clean["overall"]["fvd@synthav"]["value"]
    fvd = [split["run"](f"noise{s}", keys)["overall"]["fvd@synthav"]["value"] for s in NOISE]
    print("fvd@synthav clean", f0, "noise", dict(zip(NOISE, fvd)))
    assert abs(f0) < 1e-3 and abs(f0) < 0.1 * fvd[0]
    assert fvd[0] < fvd[1] < fvd[2]
    # in float64 (javisbench-fixed's exact square root) the clean set is at 0 to rounding
    exact = split["run"]("clean", ["fvd@synthav"], protocol="javisbench-fixed")["overall"]["fvd@synthav"]["value"]
    print("fvd@synthav clean, javisbench-fixed", exact)
    assert abs(exact) < 1e-6


def test_text_video_higher_for_matching_captions(split: dict) -> None:
    keys = ["ib_tv@synthav", "ib_ta@synthav"]
    match = split["run"]("clean", keys)
    shuf = split["run"]("clean", keys, split["shuffled"])
    for key in keys:
        a, b = _per_sample(match, key), _per_sample(shuf, key)
        print(key, a.mean(), b.mean())
        assert a.mean() > b.mean() + 0.1
        assert np.mean(a > b) >= 0.8


def test_desync_is_the_classifiers_argmax(split: dict) -> None:
    """desync@synthav per sample = |grid offset of the largest class probability| (stored probabilities)."""
    from javisbench.encoders.synthav import SynthAVSyncEncoder
    from javisbench.decode import decode_sample
    from javisbench.protocol import get_protocol

    enc = SynthAVSyncEncoder(get_protocol("javisbench-official"))
    enc.load(Path("unused"))
    bench = split["bench"]
    clips = [decode_sample(bench / f"sample_{i:04d}.mp4", bench / f"sample_{i:04d}.wav", f"sample_{i:04d}") for i in range(3)]
    feats = enc.encode([enc.prepare(c, "", "") for c in clips])
    r = split["run"]("clean", ["desync@synthav"])
    for i, f in enumerate(feats):
        assert f["group_offsets"][0] == M.GRID[int(np.argmax(f["probs"]))]
        assert r["per_sample"][f"sample_{i:04d}"]["desync@synthav"] == pytest.approx(abs(float(f["group_offsets"][0])), abs=1e-6)
        assert float(f["probs"].sum()) == pytest.approx(1.0, abs=1e-5)


def test_batch_invariance(split: dict) -> None:
    """A sample's features do not depend on the rest of its batch."""
    from javisbench.encoders.synthav import SynthAVEncoder
    from javisbench.decode import decode_sample
    from javisbench.protocol import get_protocol

    enc = SynthAVEncoder(get_protocol("javisbench-fixed"))
    enc.load(Path("unused"))
    bench = split["bench"]
    xs = [enc.prepare(decode_sample(bench / f"sample_{i:04d}.mp4", bench / f"sample_{i:04d}.wav", f"s{i}"), "", "")
          for i in range(3)]
    together = enc.encode(xs)
    for i, x in enumerate(xs):
        alone = enc.encode([x])[0]
        for k in enc.outputs:
            np.testing.assert_allclose(together[i][k], alone[k], rtol=0, atol=2e-6, err_msg=k)
        assert together[i]["frames"].shape == (32, M.LOCAL * 2 * len(M.TIME_PERIODS))
        # unit norms: cosines are inner products
        np.testing.assert_allclose(np.linalg.norm(together[i]["frames"], axis=1), 1.0, atol=1e-5)


def test_weights_shipped_hashed_and_small() -> None:
    total = 0
    for name, (fname, sha) in FILES.items():
        p = WEIGHTS_DIR / fname
        assert p.is_file(), p
        assert hashlib.sha256(p.read_bytes()).hexdigest() == sha
        total += p.stat().st_size
    assert total <= 10 * 2 ** 20


def test_tampered_weights_refused(tmp_path: Path) -> None:
    for fname, _ in FILES.values():
        shutil.copy(WEIGHTS_DIR / fname, tmp_path / fname)
    with open(tmp_path / FILES["text"][0], "r+b") as f:
        f.seek(-1, 2)
        last = f.read(1)
        f.seek(-1, 2)
        f.write(bytes([last[0] ^ 1]))
    with pytest.raises(InDomainWeightsError, match="sha256"):
        load_net("text", weights_dir=tmp_path)
    load_net("video", weights_dir=tmp_path)          # the untouched file loads
    with pytest.raises(InDomainWeightsError, match="missing"):
        load_net("sync", weights_dir=tmp_path / "nowhere")


def test_metric_table_entries() -> None:
    assert INDOMAIN_METRICS == ("fvd@synthav", "kvd@synthav", "fad@synthav", "ib_tv@synthav", "ib_ta@synthav",
                                "ib_av@synthav", "avh_score@synthav", "javis_score@synthav", "desync@synthav")
    for k in INDOMAIN_METRICS:
        m = METRICS[k]
        assert not m.official and not m.in_default and m.weights == ()
        assert all(e.startswith("synthav-") for e in m.encoders)
        assert METRICS[k.split("@")[0]].higher_is_better == m.higher_is_better
    # the same metric functions as the official keys
    for k in ("fvd", "kvd", "fad"):
        assert METRICS[f"{k}@synthav"].set_fn in (METRICS[k].set_fn, METRICS["fvd"].set_fn)
        assert METRICS[f"{k}@synthav"].resample_fn in (METRICS[k].resample_fn, METRICS["fvd"].resample_fn)
    assert not any(k.endswith("@synthav") for k in (m.key for m in select_metrics(None)))
    assert [m.key for m in select_metrics(["@synthav"])] == list(INDOMAIN_METRICS)


def test_grid_and_views() -> None:
    assert M.GRID.tolist() == [round(-2 + 0.2 * i, 1) for i in range(21)]
    # 24 fps, 2 s -> 16 frames at 8 fps: frame k is source frame floor(k * 24 / 8) = 3k
    frames = np.zeros((48, 64, 64, 3), np.uint8)
    frames[:, :, :, 0] = np.arange(48, dtype=np.uint8)[:, None, None]
    v = M.video_view(frames, 24.0)
    assert v.shape == (16, 3, 32, 32)
    np.testing.assert_allclose(v[:, 0, 0, 0] * 255, np.arange(16) * 3, atol=1e-4)
    # 48 kHz stereo -> 16 kHz mono, a 1 kHz tone keeps its frequency
    t = np.arange(48000) / 48000
    a = np.stack([np.sin(2 * np.pi * 1000 * t), np.sin(2 * np.pi * 1000 * t)])
    r = M.resample_audio(a, 48000)
    assert r.shape == (16000,)
    spec = np.abs(np.fft.rfft(r))
    assert abs(int(np.argmax(spec)) - 1000) <= 1
    # the mel filters cover the spectrum and each peaks at 1
    fb = M.mel_filterbank()
    assert fb.shape == (M.N_MELS, M.N_FFT // 2 + 1) and fb.max() <= 1.0 and (fb.max(axis=1) > 0.3).all()
    centres = (fb * np.arange(fb.shape[1])).sum(1) / fb.sum(1)
    assert (np.diff(centres) > 0).all()                      # ordered by frequency
    # a shifted mel equals the mel of the shifted audio away from the edges
    from javisbench.indomain.train import shift_mel
    import torch

    x = torch.from_numpy(np.random.default_rng(0).normal(size=(1, 16000)).astype(np.float32))
    k = 12                                       # +0.4 s
    delayed = torch.cat([torch.zeros(1, 6400), x[:, :-6400]], dim=1)
    a1 = M.log_mel(delayed)[0, :, 20:-5]
    a2 = shift_mel(M.log_mel(x), torch.tensor([k]))[0, :, 20:-5]
    torch.testing.assert_close(a1, a2, rtol=0, atol=1e-4)


def test_training_is_reproducible_from_a_seed(tmp_path: Path) -> None:
    """Two short runs with one seed write the same bytes; another seed does not."""
    from javisbench.indomain.train import train

    logs = [train(tmp_path / name, seed=seed, n_clips=12, steps=2, batch=6, log_every=1, n_val=6)
            for name, seed in (("a", 0), ("b", 0), ("c", 1))]
    assert logs[0]["sha256"] == logs[1]["sha256"]
    assert logs[0]["sha256"]["synthav_video.safetensors"] != logs[2]["sha256"]["synthav_video.safetensors"]
    for fname, _ in FILES.values():
        assert (tmp_path / "a" / fname).read_bytes() == (tmp_path / "b" / fname).read_bytes()
    assert [h["loss"] for h in logs[0]["history"]] == [h["loss"] for h in logs[1]["history"]]
