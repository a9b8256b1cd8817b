"""``javisbench meta-eval``: corruption parsing, AUROC / paired accuracy against naive references,
and the whole command on the golden clips with fixture checkpoints (official metrics run; the
output says the weights are not official)."""
from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from javisbench.cli import main
from javisbench.golden import write_golden_weights
from javisbench.meta_eval import meta_table, parse_corruptions, separation

GOLDEN = Path(__file__).resolve().parent / "golden"
FAKE = ["clip_00", "clip_01"]


def test_parse_corruptions() -> None:
    names = [c.name for c in parse_corruptions(None)]
    assert names == ["shift 0.2 s", "shift 0.5 s", "shift 1 s", "swap", "frozen", "noise 0.1", "silent"]
    assert [c.folder for c in parse_corruptions(["shift:0.25", "noise:0.05,0.2"])] == ["shift_0p25s", "noise_0p05", "noise_0p2"]
    for bad, msg in [(["wobble"], "unknown corruption"), (["shift:x"], "expected numbers"), (["shift:-1"], "> 0"),
                     (["swap:2"], "unknown corruption"), (["swap", "swap"], "given twice")]:
        with pytest.raises(ValueError, match=msg):
            parse_corruptions(bad)


def _naive_auroc(pos: np.ndarray, neg: np.ndarray) -> float:
    """Mann-Whitney: P(pos > neg) + P(pos == neg) / 2 over every pair."""
    s = 0.0
    for p in pos:
        for q in neg:
            s += 1.0 if p > q else 0.5 if p == q else 0.0
    return s / (len(pos) * len(neg))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_separation_matches_naive_counts(seed: int) -> None:
    rng = np.random.default_rng(seed)
    clean = np.round(rng.normal(1.0, 1.0, 30), 1)            # rounded: ties happen
    bad = np.round(rng.normal(0.0, 1.0, 30), 1)
    r = separation(clean, bad, True, n_boot=200, seed=seed)
    assert r["auroc"] == pytest.approx(_naive_auroc(clean, bad), abs=1e-6)
    paired = np.mean([1.0 if a > b else 0.5 if a == b else 0.0 for a, b in zip(clean, bad)])
    assert r["paired_accuracy"] == pytest.approx(paired, abs=1e-6)
    lo, hi = r["auroc_ci"]
    assert lo <= r["auroc"] <= hi and 0.5 < lo
    plo, phi = r["paired_accuracy_ci"]
    assert plo <= r["paired_accuracy"] <= phi
    # lower-is-better metrics are oriented: the same numbers negated give the same separation
    r2 = separation(-clean, -bad, False, n_boot=200, seed=seed)
    assert r2["auroc"] == r["auroc"] and r2["paired_accuracy"] == r["paired_accuracy"]
    # NaN pairs are dropped, not counted
    c2, b2 = clean.copy(), bad.copy()
    c2[0], b2[1] = np.nan, np.nan
    r3 = separation(c2, b2, True, n_boot=50)
    assert r3["n"] == 28 and r3["n_dropped"] == 2
    assert r3["auroc"] == pytest.approx(_naive_auroc(clean[2:], bad[2:]), abs=1e-6)


def test_identical_values_are_chance() -> None:
    r = separation(np.ones(5), np.ones(5), True, n_boot=20)
    assert r["auroc"] == 0.5 and r["paired_accuracy"] == 0.5


@pytest.fixture(scope="module")
def golden_meta(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("meta-golden")
    meta = {c["name"]: c for c in json.loads((GOLDEN / "inputs" / "clips_meta.json").read_text())}
    samples = root / "samples"
    samples.mkdir()
    bench = root / "bench.csv"
    with open(bench, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text", "path"])
        for i, n in enumerate(FAKE):
            w.writerow([meta[n]["caption"], f"{n}.mp4"])
            shutil.copy(GOLDEN / "inputs" / f"{n}.mp4", samples / f"sample_{i:04d}.mp4")
            shutil.copy(GOLDEN / "inputs" / f"{n}.wav", samples / f"sample_{i:04d}.wav")
    weights = write_golden_weights(GOLDEN, root / "weights", ["clip", "audioclip"])
    out = root / "meta.json"
    # two clips keep it short; CLIP has a published sha256 (the fixture is "not official"), AudioCLIP has none
    args = ["meta-eval", str(samples), "--bench", str(bench), "--out", str(out), "--weights-dir", str(weights),
            "--corruptions", "shift:0.5", "silent", "--metrics", "clip_score", "av_align", "desync@synthav",
            "javis_score@synthav", "--n-boot", "100"]
    return {"args": args, "out": out, "root": root}


def test_meta_eval_on_golden_clips(golden_meta: dict, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(golden_meta["args"]) == 0
    printed = capsys.readouterr().out
    doc = json.loads(golden_meta["out"].read_text())
    assert doc["kind"] == "meta-eval 1" and doc["corruptions"] == ["shift 0.5 s", "silent"]
    assert set(doc["meta_eval"]) == {"clip_score", "av_align", "desync@synthav", "javis_score@synthav"}
    # the official CLIP score ran with the fixture checkpoint, and the output says those weights are not official
    assert doc["weights_status"]["clip:ViT-B-32.pt"].startswith("not official")
    assert "clip:ViT-B-32.pt" in doc["unofficial_weights"]
    assert any(n.startswith("weights not official: clip:ViT-B-32.pt") for n in doc["notes"])
    assert "weights not official" in printed and "clip_score ↑" in printed
    # sample metrics: AUROC and paired accuracy over the clips, with bootstrap intervals
    for key in ("clip_score", "av_align", "desync@synthav", "javis_score@synthav"):
        for c in ("shift 0.5 s", "silent"):
            x = doc["meta_eval"][key][c]
            assert x["kind"] == "sample" and x["n"] == 2 and 0.0 <= x["auroc"] <= 1.0, (key, c, x)
            assert 0.0 <= x["paired_accuracy"] <= 1.0 and len(x["auroc_ci"]) == 2
    # the shift does not touch the video: CLIP's per-sample values are the clean ones (AUROC 0.5)
    assert doc["meta_eval"]["clip_score"]["shift 0.5 s"]["auroc"] == 0.5
    assert "(not official)" in meta_table(doc)
    # every variant's results file is kept, in the results schema
    for name, path in doc["variants"].items():
        r = json.loads(Path(path).read_text())
        assert r["model"]["name"] == f"meta-eval {name}" and len(r["sample_ids"]) == 2


def test_meta_eval_bad_input(tmp_path: Path) -> None:
    assert main(["meta-eval", str(tmp_path), "--bench", str(tmp_path / "none.csv"), "--out", str(tmp_path / "m.json"),
                 "--corruptions", "wobble"]) != 0
