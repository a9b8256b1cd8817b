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


# ---- published (reported) tables ----------------------------------------------------------------------
REPO = Path(__file__).resolve().parent.parent
REPORTED = REPO / "leaderboard" / "reported"


def test_every_published_table_loads_and_keeps_the_printed_digits() -> None:
    from javisbench.leaderboard import load_reported

    tables = [load_reported(f) for f in sorted(REPORTED.glob("*.yaml"))]
    assert {t.bench for t in tables} == {"JavisBench", "landscape", "aist++", "AVSync15", "VGGSound-SS"}
    t2 = next(t for t in tables if t.source.startswith("JavisDiT (") and "Table 2" in t.source)
    assert len(t2.rows) == 7 and t2.higher_is_better["fvd"] is False and t2.higher_is_better["javis_score"] is True
    foley = next(r for r in t2.rows if r[1] == "FoleyCrafter")
    assert foley[t2.columns.index("cavp_score")] == "0.800"         # as printed, trailing zero kept


def test_reported_tables_render_apart_and_rank_within_themselves(demo_results: Path, tmp_path: Path) -> None:
    lb = tmp_path / "lb" / "results"
    assert main(["leaderboard", "add", str(demo_results / "clean.json"), "--results-dir", str(lb)]) == 0
    out = tmp_path / "README.md"
    assert main(["leaderboard", "build", "--results-dir", str(lb), "--out", str(out), "--reported-dir", str(REPORTED)]) == 0
    text = out.read_text()
    measured, reported = text.split("## Reported in papers")
    assert "clean" in measured and "JavisDiT" not in measured        # never ranked with measured rows
    sec = reported.split("### JavisBench — JavisDiT (arXiv 2503.23377), Table 2")[1].split("###")[0]
    rows = {ln.split("|")[2].strip(): ln.split("|") for ln in sec.splitlines() if ln.startswith("| T")}
    head = next(ln for ln in sec.splitlines() if ln.startswith("| family")).split("|")
    col = {h.strip(): i for i, h in enumerate(head)}
    assert rows["JavisDiT"][col["fvd ↓"]].strip() == "**203.2**"         # lowest FVD
    assert rows["FoleyCrafter"][col["ib_av ↑"]].strip() == "**0.204**"   # highest AV-IB
    assert rows["MM-Diffusion"][col["fvd ↓"]].strip() == "2311.9"
    assert rows["ReWaS"][col["fvd ↓"]].strip() == "-"
    # the two JavisBench tables of different papers stay separate sections
    assert reported.count("### JavisBench — ") == 2
    # --no-reported: measured results only
    assert main(["leaderboard", "build", "--results-dir", str(lb), "--out", str(out), "--no-reported"]) == 0
    assert "Reported in papers" not in out.read_text()


def test_committed_leaderboard_is_generated(tmp_path: Path) -> None:
    out = tmp_path / "README.md"
    assert main(["leaderboard", "build", "--results-dir", str(REPO / "leaderboard" / "results"), "--out", str(out),
                 "--reported-dir", str(REPORTED)]) == 0
    assert out.read_text() == (REPO / "leaderboard" / "README.md").read_text()


@pytest.mark.parametrize("body,match", [
    ("source: s\nbench: b\ncolumns: [method, fvd]\nrows:\n  - ['x', '1.0', '2.0']\n", "row 1: expected 2 values"),
    ("source: s\nbench: b\ncolumns: [method, zzz]\nrows:\n  - ['x', '1.0']\n", "'zzz' is neither a javisbench metric"),
    ("source: s\nbench: b\ncolumns: [method, fvd]\nrows:\n  - ['x', 'abc']\n", "row 1: fvd must be a number"),
    ("source: s\nbench: b\ncolumns: [method, zzz]\ndirections: {zzz: up}\nrows:\n  - ['x', '1']\n", "must be 'higher' or 'lower'"),
    ("bench: b\ncolumns: [method, fvd]\nrows:\n  - ['x', '1']\n", "missing source"),
])
def test_bad_published_tables_name_file_and_row(tmp_path: Path, capsys: pytest.CaptureFixture, body: str, match: str) -> None:
    rep = tmp_path / "reported"
    rep.mkdir()
    (rep / "t.yaml").write_text(body)
    rc = main(["leaderboard", "build", "--results-dir", str(tmp_path / "results"), "--out", str(tmp_path / "x.md"),
               "--reported-dir", str(rep)])
    err = capsys.readouterr().err
    assert rc == 2 and "t.yaml" in err and match in err
