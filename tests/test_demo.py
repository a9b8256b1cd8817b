"""`javisbench demo`: offline, every corruption ranks below the clean clips on AV-Align."""
from __future__ import annotations

from pathlib import Path

from javisbench.cli import main
from javisbench.demo import demo_table, ranking_ok, run_demo


def test_demo_ranks_corruptions_below_clean(tmp_path: Path) -> None:
    results = run_demo(tmp_path / "demo", n_clips=4, weights_dir=tmp_path / "no-weights")
    assert list(results) == ["clean", "audio shifted 0.5 s", "audio swapped", "frozen video", "silent audio"]
    assert ranking_ok(results, "av_align")
    clean = results["clean"]
    assert clean["overall"]["av_align"]["n"] == 4 and not clean["failures"]
    # nothing that needs weights produced a number
    assert "fvd" in clean["skipped"] and "desync" in clean["skipped"] and "fvd" not in clean["overall"]
    # the shifted copy is found late by the weight-free lag estimate
    assert results["audio shifted 0.5 s"]["overall"]["av_lag"]["value"] > clean["overall"]["av_lag"]["value"]
    table = demo_table(results)
    assert "av_align ↑" in table and "silent audio" in table
    assert (tmp_path / "demo" / "results" / "clean.json").is_file()


def test_demo_cli(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    assert main(["demo", "--out", str(tmp_path / "d"), "--n", "3", "--weights-dir", str(tmp_path / "w")]) == 0
    out = capsys.readouterr().out
    assert "clean" in out and "frozen video" in out
