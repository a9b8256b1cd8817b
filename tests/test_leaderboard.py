"""Leaderboard tables are rendered from results files and never rank across protocols."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from javisbench.cli import main
from javisbench.demo import run_demo


@pytest.fixture(scope="module")
def demo_results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("lb")
    run_demo(root / "demo", n_clips=3, weights_dir=root / "no-weights")
    return root / "demo" / "results"


def test_build_groups_and_marks_the_best(demo_results: Path, tmp_path: Path) -> None:
    lb = tmp_path / "results"
    for f in ("clean.json", "frozen_video.json"):
        assert main(["leaderboard", "add", str(demo_results / f), "--results-dir", str(lb)]) == 0
    # the same model under another protocol: its own section, never ranked with the others
    other = json.loads((demo_results / "clean.json").read_text())
    other = copy.deepcopy(other)
    other["protocol"].update(name="javisbench-fixed", fingerprint="0" * 16)
    (lb / "clean-fixed.json").write_text(json.dumps(other))
    out = tmp_path / "README.md"
    assert main(["leaderboard", "build", "--results-dir", str(lb), "--out", str(out)]) == 0
    text = out.read_text()
    sections = text.split("\n## ")[1:]
    assert len(sections) == 2 and "javisbench-fixed" in sections[0] + sections[1]
    official = next(s for s in sections if "javisbench-official" in s)
    rows = {ln.split("|")[1].strip(): ln for ln in official.splitlines() if ln.startswith("| ") and "model" not in ln}
    assert set(rows) == {"clean", "frozen video"}
    header = next(ln for ln in official.splitlines() if ln.startswith("| model")).split("|")
    col = next(i for i, h in enumerate(header) if h.strip() == "av_align ↑")
    assert "**" in rows["clean"].split("|")[col] and "**" not in rows["frozen video"].split("|")[col]
    assert "skipped" in rows["clean"]                       # metrics without weights are not numbers
    assert "av_align ↑" in official and "av_lag ↓" in official


def test_build_refuses_an_empty_folder(tmp_path: Path) -> None:
    assert main(["leaderboard", "build", "--results-dir", str(tmp_path), "--out", str(tmp_path / "x.md")]) == 2
