"""The user path for the five ImageBind metrics on a golden clip (full-size ImageBind-Huge:
a 4.8 GB checkpoint written in the official format, ~10 GB peak memory, minutes on a CPU)."""
from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from javisbench.cli import main
from javisbench.golden import write_golden_weights

GOLDEN = Path(__file__).resolve().parent / "golden"
CLIP = "edge_short2s"          # 2 s, 48 frames: the cheapest clip with AVH/JavisScore expectations


@pytest.mark.slow
def test_imagebind_metrics_through_evaluate(tmp_path: Path) -> None:
    meta = {c["name"]: c for c in json.loads((GOLDEN / "inputs" / "clips_meta.json").read_text())}
    bench = tmp_path / "bench.csv"
    with open(bench, "w", newline="") as f:
        csv.writer(f).writerows([["text", "path"], [meta[CLIP]["caption"], f"{CLIP}.mp4"]])
    samples = tmp_path / "samples"
    samples.mkdir()
    shutil.copy(GOLDEN / "inputs" / f"{CLIP}.mp4", samples / "sample_0000.mp4")
    shutil.copy(GOLDEN / "inputs" / f"{CLIP}.wav", samples / "sample_0000.wav")
    weights = write_golden_weights(GOLDEN, tmp_path / "weights", ["imagebind"])
    out = tmp_path / "r.json"
    assert main(["evaluate", str(samples), "--bench", str(bench), "--out", str(out), "--weights-dir", str(weights),
                 "--cache-dir", str(tmp_path / "cache"), "--metrics", "ib_tv", "ib_ta", "ib_av", "avh_score",
                 "javis_score", "--quiet"]) == 0
    r = json.loads(out.read_text())
    exp = json.loads((GOLDEN / "imagebind" / "expected.json").read_text())
    npz = np.load(GOLDEN / "imagebind" / "expected.npz")
    i = list(npz["names"]).index(CLIP)
    got = r["per_sample"]["sample_0000"]
    for key in ("ib_tv", "ib_ta", "ib_av"):
        assert got[key] == pytest.approx(float(npz[key][i]), abs=1e-3), key
    avh = {c["name"]: c for c in exp["avh_javis_per_clip"]}[CLIP]
    assert got["avh_score"] == pytest.approx(avh["avh_score"], abs=1e-3)
    assert got["javis_score"] == pytest.approx(avh["javis_score"], abs=1e-3)
    assert not r["skipped"] and not r["failures"]
