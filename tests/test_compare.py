"""`javisbench compare`: pairing by sample id, the paired bootstrap, direction, refusals, JSON, CLI."""
from __future__ import annotations

import copy
import json
import random
from pathlib import Path

import numpy as np
import pytest

from javisbench import encoders as registry
from javisbench.cli import main
from javisbench.compare import compare, overlap_cell, render_comparison
from javisbench.config import EvalConfig
from javisbench.evaluate import evaluate
from javisbench.results import read_results, write_results
from metrics.bootstrap import paired_bootstrap_diff

N_CLIPS = 8
METRICS = ["av_align", "fvd", "kvd", "fad"]     # one per-sample metric (weight-free), three set metrics (fake encoders)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Results of a clean and a frozen-video run of the same synthetic bench (fake I3D/AudioCLIP)."""
    from reference_models.baselines import frozen_video
    from reference_models.synthav import make_clip, write_clip, write_manifest

    root = tmp_path_factory.mktemp("cmp")
    clips = [make_clip(300 + i, duration=2.0) for i in range(N_CLIPS)]
    pairs = [(c.frames, c.audio) for c in clips]
    manifest = write_manifest(root / "bench.csv", clips)
    dirs = {}
    for name, fn in {"clean": lambda p, i, sr: p[i], "frozen": frozen_video}.items():
        for i in range(N_CLIPS):
            f, a = fn(pairs, i, 16000)
            write_clip(root / name, f"sample_{i:04d}", f, a, 24, 16000)
        dirs[name] = root / name
    out = {"root": root, "manifest": manifest}
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(registry.ENCODERS, "i3d", "fakes:FakeI3D")
        mp.setitem(registry.ENCODERS, "audioclip", "fakes:FakeAudio")
        for name in ("clean", "frozen"):
            cfg = EvalConfig(samples_dir=dirs[name], bench=manifest, out=root / f"{name}.json", metrics=METRICS,
                             cache_dir=root / "cache", weights_dir=root / "weights", reference_dir=dirs["clean"],
                             model_name=name, progress=False, workers=2, batch_size=4)
            out[name] = evaluate(cfg)
    return out


def _shifted(r: dict, key: str, delta: float | np.ndarray) -> dict:
    """A copy of ``r`` whose per-sample ``key`` values are moved by ``delta`` (scalar or per sample)."""
    b = copy.deepcopy(r)
    d = np.broadcast_to(np.asarray(delta, np.float64), (len(b["per_sample"]),))
    for i, sid in enumerate(b["per_sample"]):
        v = b["per_sample"][sid][key]
        if v is not None:
            b["per_sample"][sid][key] = v + float(d[i])
    b["model"] = {"name": "shifted"}
    return b


def _all_cells(c: dict) -> list[tuple[str, str | None, str | None, dict]]:
    cells = [(k, None, None, m) for k, m in c["metrics"].items()]
    cells += [(k, a, cat, m) for a, cats in c["per_category"].items() for cat, row in cats.items() for k, m in row.items()]
    return cells


def _notes(c: dict) -> list[str]:
    """The comparison's notes other than the one on set-metric cells without a reliable size correction."""
    return [n for n in c["notes"] if not n.startswith("set metrics (")]


# ---------------------------------------------------------------------------------------------
def test_identical_runs_differ_by_zero_and_nothing_is_significant(runs: dict) -> None:
    a = runs["clean"]
    c = compare(a, copy.deepcopy(a), n_boot=500, seed=0)
    assert set(c["metrics"]) == set(METRICS)
    for k, asp, cat, m in _all_cells(c):
        if m["diff"] is not None:
            assert m["diff"] == 0.0, (k, asp, cat)
        assert m["significant"] is False and m["better"] is None, (k, asp, cat)
    assert c["summary"] == {"b_better": [], "b_worse": []}
    # the per-sample metric is paired overall and per category (labels re-read from the manifest)
    av = c["metrics"]["av_align"]
    assert av["method"] == "paired-bootstrap" and av["n_pairs"] == N_CLIPS and av["n_dropped"] == 0
    assert av["p_value"] == 1.0 and av["ci_low"] == av["ci_high"] == 0.0
    assert av["a"] == pytest.approx(a["overall"]["av_align"]["value"], abs=1e-12)
    methods = {m["method"] for k, asp, _c, m in _all_cells(c) if asp is not None and k == "av_align"}
    assert methods == {"paired-bootstrap"} and not _notes(c)
    # set metrics use the CI-overlap rule: identical values, identical CIs -> overlap
    fvd = c["metrics"]["fvd"]
    assert fvd["method"] == "ci-overlap" and fvd["p_value"] is None
    assert fvd["ci_low"] <= 0 <= fvd["ci_high"]


def test_constant_improvement_is_found_with_a_tight_interval(runs: dict) -> None:
    a = runs["clean"]
    b = _shifted(a, "av_align", 0.1)
    c = compare(a, b, n_boot=1000, seed=0)
    av = c["metrics"]["av_align"]
    # every per-sample difference is exactly 0.1, so every resampled mean is 0.1 (to rounding)
    assert av["diff"] == pytest.approx(0.1, abs=1e-12)
    assert av["ci_low"] == pytest.approx(0.1, abs=1e-12) and av["ci_high"] == pytest.approx(0.1, abs=1e-12)
    assert av["significant"] is True and av["better"] == "b"
    assert av["p_value"] == pytest.approx(2 / 1001)        # the +1-corrected floor: no resample lands <= 0
    assert av["b"] - av["a"] == pytest.approx(av["diff"], abs=1e-12)
    assert {"metric": "av_align", "aspect": None, "category": None, "diff": av["diff"], "p_value": av["p_value"],
            "method": "paired-bootstrap"} in c["summary"]["b_better"]
    assert c["summary"]["b_worse"] == []
    # per category: every cell with at least 2 pairs carries the same verdict; single pairs get a diff, no test
    n_checked = 0
    for asp, cats in c["per_category"].items():
        for cat, row in cats.items():
            m = row["av_align"]
            if m["n_pairs"] >= 2:
                assert m["diff"] == pytest.approx(0.1, abs=1e-12) and m["better"] == "b", (asp, cat)
                n_checked += 1
            elif m["n_pairs"] == 1:
                assert m["diff"] == pytest.approx(0.1, abs=1e-12) and m["ci_low"] is None and not m["significant"]
                assert m["flags"] == ["too-few"]
            else:
                assert m["diff"] is None and not m["significant"]
    assert n_checked >= 5
    # membership is the manifest's: the cells' pair counts equal the results' own per-category n
    for asp, cats in a["per_category"].items():
        for cat, cells in cats.items():
            assert c["per_category"][asp][cat]["av_align"]["n_pairs"] == cells["av_align"]["n"], (asp, cat)


def test_pairing_is_by_sample_id_not_by_position(runs: dict) -> None:
    a = runs["clean"]
    noise = np.random.default_rng(1).normal(0.05, 0.05, N_CLIPS)
    b = _shifted(a, "av_align", noise)
    ids = list(b["per_sample"])
    shuffled = ids[:]
    random.Random(3).shuffle(shuffled)
    assert shuffled != ids
    b_shuf = copy.deepcopy(b)
    b_shuf["per_sample"] = {sid: b["per_sample"][sid] for sid in shuffled}
    b_shuf["sample_ids"] = shuffled
    ref = compare(a, b, n_boot=400, seed=7)
    got = compare(a, b_shuf, n_boot=400, seed=7)
    assert got["metrics"] == ref["metrics"] and got["per_category"] == ref["per_category"]
    # the test can fail: pairing by position in the shuffled file would give another answer
    va = np.array([a["per_sample"][s]["av_align"] for s in ids])
    vb_pos = np.array([b_shuf["per_sample"][s]["av_align"] for s in shuffled])
    naive = paired_bootstrap_diff(vb_pos, va, n_boot=400, seed=7)
    assert naive["ci_low"] != pytest.approx(ref["metrics"]["av_align"]["ci_low"], abs=1e-9)
    assert ref["metrics"]["av_align"]["diff"] == pytest.approx(noise.mean(), abs=1e-12)


def test_failed_samples_are_dropped_and_counted(runs: dict) -> None:
    a = runs["clean"]
    b = _shifted(a, "av_align", 0.1)
    b["per_sample"]["sample_0002"]["av_align"] = None
    a2 = copy.deepcopy(a)
    a2["per_sample"]["sample_0005"]["av_align"] = None
    c = compare(a2, b, n_boot=300)
    av = c["metrics"]["av_align"]
    assert (av["n_pairs"], av["n_dropped"], av["n_a"], av["n_b"]) == (N_CLIPS - 2, 2, N_CLIPS - 1, N_CLIPS - 1)
    assert av["diff"] == pytest.approx(0.1, abs=1e-12) and av["better"] == "b"


def test_lower_is_better_flips_the_verdict(runs: dict) -> None:
    a = copy.deepcopy(runs["clean"])
    a["metrics"]["av_align"]["higher_is_better"] = False
    b = _shifted(a, "av_align", 0.1)
    c = compare(a, b, n_boot=300)
    assert c["metrics"]["av_align"]["better"] == "a"
    assert [e["metric"] for e in c["summary"]["b_worse"] if e["aspect"] is None] == ["av_align"]
    # set metric (FVD, lower is better) on real runs: frozen video is clearly worse than clean
    c = compare(runs["clean"], runs["frozen"], n_boot=300)
    fvd = c["metrics"]["fvd"]
    assert fvd["higher_is_better"] is False and fvd["diff"] > 0
    assert fvd["significant"] and fvd["better"] == "a"
    c_rev = compare(runs["frozen"], runs["clean"], n_boot=300)
    assert c_rev["metrics"]["fvd"]["better"] == "b" and c_rev["metrics"]["fvd"]["diff"] == pytest.approx(-fvd["diff"])
    # frozen video cannot stay in sync: AV-Align (higher is better) drops (not always significantly on 8 clips)
    assert c["metrics"]["av_align"]["diff"] < 0 and c["metrics"]["av_align"]["better"] in ("a", None)


def test_ci_overlap_rule() -> None:
    a = {"value": 1.0, "ci_low": 0.8, "ci_high": 1.2, "n": 10, "flags": []}
    apart = {"value": 2.0, "ci_low": 1.3, "ci_high": 2.5, "n": 10, "flags": ["rank-deficient"]}
    touching = {"value": 1.6, "ci_low": 1.2, "ci_high": 2.0, "n": 10}
    c = overlap_cell(a, apart, higher_is_better=False)
    assert c["diff"] == pytest.approx(1.0)
    assert (c["ci_low"], c["ci_high"]) == (pytest.approx(1.3 - 1.2), pytest.approx(2.5 - 0.8))
    assert c["significant"] and c["better"] == "a" and c["flags"] == ["rank-deficient"]
    assert overlap_cell(a, apart, higher_is_better=True)["better"] == "b"
    t = overlap_cell(a, touching, higher_is_better=True)
    assert not t["significant"] and t["better"] is None and t["ci_low"] == pytest.approx(0.0)
    # no interval on one side: a difference, never a verdict
    n = overlap_cell(a, {"value": 5.0, "ci_low": None, "ci_high": None, "n": 1}, higher_is_better=True)
    assert n["diff"] == pytest.approx(4.0) and n["ci_low"] is None and not n["significant"]
    assert overlap_cell(None, a, True)["diff"] is None


def test_refuses_other_protocol_bench_schema_or_sample_set(runs: dict) -> None:
    a = runs["clean"]
    b = copy.deepcopy(a)
    b["protocol"]["fingerprint"] = "0000000000000000"
    b["protocol"]["values"]["seed"] = 5
    with pytest.raises(ValueError, match=r"different protocols.*fingerprint.*seed: 0 vs 5"):
        compare(a, b)
    b = copy.deepcopy(a)
    b["protocol"]["name"] = "javisbench-fixed"
    with pytest.raises(ValueError, match="different protocols"):
        compare(a, b)
    b = copy.deepcopy(a)
    b["bench"]["manifest_sha256"] = "f" * 64
    with pytest.raises(ValueError, match="different benches"):
        compare(a, b)
    b = copy.deepcopy(a)
    b["bench"]["n_rows"] = N_CLIPS - 1
    with pytest.raises(ValueError, match="different sample sets.*--limit"):
        compare(a, b)
    b = copy.deepcopy(a)
    b["schema_version"] = "2.0"
    with pytest.raises(ValueError, match="schema_version '2.0'"):
        compare(a, b)
    with pytest.raises(ValueError, match="n_boot"):
        compare(a, a, n_boot=0)


def test_pairs_categories_from_the_results_alone(runs: dict, tmp_path: Path) -> None:
    """Category membership comes from the labels in the results: the manifest may be gone."""
    a = copy.deepcopy(runs["clean"])
    a["bench"]["path"] = str(tmp_path / "gone.csv")
    b = _shifted(a, "av_align", 0.1)
    c = compare(a, b, n_boot=300)
    assert not _notes(c)
    assert c["metrics"]["av_align"]["method"] == "paired-bootstrap"
    assert {m["method"] for k, asp, _c, m in _all_cells(c) if asp is not None and k == "av_align"} == {"paired-bootstrap"}
    # a results file without labels (schema 1.1) falls back to the stored intervals, with a note
    for r in (a, b):
        r.pop("labels")
    c = compare(a, b, n_boot=300)
    assert any("carries no category labels" in n for n in c["notes"])
    assert {m["method"] for k, asp, _c, m in _all_cells(c) if asp is not None and k == "av_align"} == {"ci-overlap"}


def test_without_per_sample_values_uses_the_stored_intervals(runs: dict) -> None:
    a = copy.deepcopy(runs["clean"])
    b = copy.deepcopy(runs["frozen"])
    b["per_sample"] = {}
    c = compare(a, b, n_boot=300)
    assert c["metrics"]["av_align"]["method"] == "ci-overlap"
    assert any("per-sample" in n for n in c["notes"])


def test_output_is_strict_json_and_renders(runs: dict) -> None:
    a, b = runs["clean"], runs["frozen"]
    b2 = copy.deepcopy(b)
    b2["per_sample"]["sample_0001"]["av_align"] = None
    c = compare(a, b2, n_boot=200)
    text = json.dumps(c, allow_nan=False)
    assert json.loads(text) == c
    # metrics present in only one run are listed, not compared
    a3 = copy.deepcopy(a)
    a3["overall"]["clip_score"] = {"value": 0.3, "ci_low": 0.2, "ci_high": 0.4, "n": 8, "n_failed": 0}
    a3["skipped"] = {"desync": "skipped: no weights"}
    b3 = copy.deepcopy(b)
    b3["skipped"] = {"clip_score": "skipped: ViT-B-32.pt not found", "desync": "skipped: no weights"}
    c3 = compare(a3, b3, n_boot=200)
    assert "clip_score" not in c3["metrics"] and "ViT-B-32.pt" in c3["not_compared"]["clip_score"]
    assert c3["not_compared"]["desync"] == "skipped in both runs: skipped: no weights"
    out = render_comparison(c3)
    for key in METRICS:
        assert key in out
    assert "B worse" in out and "▼" in out and "frozen" in out and "clean" in out
    assert "not compared: clip_score" in out and "skipped in both runs (reasons in the results files): desync" in out


def test_cli_compare(runs: dict, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    pa, pb = write_results(runs["clean"], tmp_path / "a.json"), write_results(runs["frozen"], tmp_path / "b.json")
    assert main(["compare", str(pa), str(pb), "--out", str(tmp_path / "c.json"), "--n-boot", "200", "--seed", "3"]) == 0
    printed = capsys.readouterr().out
    assert "B = frozen" in printed and "av_align" in printed
    c = json.loads((tmp_path / "c.json").read_text())
    assert c == compare(read_results(pa), read_results(pb), n_boot=200, seed=3)
    # a refusal is one clear line and exit status 2
    other = copy.deepcopy(runs["frozen"])
    other["bench"]["manifest_sha256"] = "0" * 64
    po = write_results(other, tmp_path / "o.json")
    assert main(["compare", str(pa), str(po)]) == 2
    assert "different benches" in capsys.readouterr().err
