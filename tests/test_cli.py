"""The command line as a user runs it (in-process through cli.main, and one real subprocess)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from javisbench.cli import main

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict:
    from reference_models.synthav import make_clip, write_clip, write_manifest

    root = tmp_path_factory.mktemp("cli")
    clips = [make_clip(200 + i, duration=2.0) for i in range(3)]
    m = write_manifest(root / "b.csv", clips)
    for i, c in enumerate(clips):
        write_clip(root / "s", f"sample_{i:04d}", c.frames, c.audio, c.fps, c.sr)
    return {"root": root, "manifest": m, "samples": root / "s"}


def test_ls(capsys: pytest.CaptureFixture) -> None:
    assert main(["ls", "metrics"]) == 0
    out = capsys.readouterr().out
    official = ("fvd", "kvd", "fad", "visual_quality", "motion_quality", "audio_quality", "ib_tv", "ib_ta", "ib_av",
                "clip_score", "clap_score", "cavp_score", "av_align", "avh_score", "javis_score", "desync")
    lines = {ln.split()[0]: ln.split() for ln in out.splitlines()[1:] if ln.strip()}
    for key in official:           # all sixteen official keys, with direction, kind and weights file
        assert key in lines and lines[key][3] == "yes", key
    assert lines["fvd"][1] == "↓" and lines["fvd"][2] == "set" and lines["fvd"][5] == "i3d_pretrained_400.pt"
    assert lines["clip_score"][1] == "↑" and lines["clip_score"][2] == "sample"
    assert sum(1 for v in lines.values() if v[3] == "yes") == 16
    assert main(["ls", "protocols", "-v"]) == 0
    out = capsys.readouterr().out
    assert "javisbench-official" in out and "javisbench-fixed" in out and "fvd_uint8_remap = True" in out
    assert main(["ls", "encoders"]) == 0
    assert "imagebind" in capsys.readouterr().out


def test_evaluate_validate_report(tiny: dict, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "r.json"
    rc = main(["evaluate", str(tiny["samples"]), "--bench", str(tiny["manifest"]), "--out", str(out), "--quiet",
               "--cache-dir", str(tmp_path / "c"), "--weights-dir", str(tmp_path / "w"), "--metrics", "av_align", "fvd",
               "--model-name", "synthetic", "--model-meta", "steps=30"])
    assert rc == 3             # fvd has no weights: skipped, and the exit code says so (results still written)
    text = capsys.readouterr().out
    assert "av_align ↑" in text and "fvd: skipped" in text and "i3d_pretrained_400.pt" in text
    assert "metrics without a value: 1: fvd (skipped)" in text
    r = json.loads(out.read_text())
    assert r["model"] == {"name": "synthetic", "steps": "30"}
    assert main(["report", str(out)]) == 0
    assert "[sound_type]" in capsys.readouterr().out
    assert main(["validate", str(tiny["samples"]), "--bench", str(tiny["manifest"])]) == 0
    assert "OK" in capsys.readouterr().out


def test_validate_reports_problems(tiny: dict, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    import shutil

    d = tmp_path / "s"
    shutil.copytree(tiny["samples"], d)
    (d / "sample_0001.mp4").unlink()
    (d / "sample_0002.mp4").write_bytes(b"garbage")
    shutil.copy(d / "sample_0000.mp4", d / "sample_0007.mp4")
    assert main(["validate", str(d), "--bench", str(tiny["manifest"])]) == 1
    out = capsys.readouterr().out
    assert "sample_0001" in out and "missing video file" in out
    assert "sample_0002" in out
    assert "beyond the manifest" in out and "sample_0007.mp4" in out


def test_bad_input_is_one_clear_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    rc = main(["evaluate", str(tmp_path), "--bench", str(tmp_path / "missing.csv"), "--out", str(tmp_path / "o.json")])
    assert rc == 2
    err = capsys.readouterr().err
    assert err.startswith("javisbench: error:") and "missing.csv" in err and "Traceback" not in err
    assert main(["evaluate", str(tmp_path), "--bench", str(tmp_path / "missing.csv"), "--out", "o", "--protocol", "javisbench-offical"]) == 2
    assert "Did you mean: javisbench-official" in capsys.readouterr().err


def test_weights_list_and_path(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["weights", "path", "--weights-dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path)
    assert main(["weights", "list", "avalign", "--weights-dir", str(tmp_path)]) == 0


def test_console_script_subprocess(tiny: dict) -> None:
    env = dict(os.environ)
    r = subprocess.run([sys.executable, "-m", "javisbench", "ls", "protocols"], capture_output=True, text=True, env=env,
                       cwd=REPO, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "javisbench-official" in r.stdout


def test_report_crosstab(tiny: dict, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "r.json"
    assert main(["evaluate", str(tiny["samples"]), "--bench", str(tiny["manifest"]), "--out", str(out), "--quiet",
                 "--cache-dir", str(tmp_path / "c"), "--weights-dir", str(tmp_path / "w"), "--metrics", "av_align"]) == 0
    capsys.readouterr()
    assert main(["report", str(out), "--crosstab", "sound_type", "spatial"]) == 0
    text = capsys.readouterr().out
    assert "[av_align: sound_type x spatial]" in text and "multiple_subjects" in text
    r = json.loads(out.read_text())
    from javisbench.breakdown import crosstab_cells
    from javisbench.results import labels_from_results

    tabs = crosstab_cells(r, labels_from_results(r), "sound_type", "spatial")
    cells = [c for row in tabs["av_align"].values() for c in row.values()]
    assert sum(c["n"] for c in cells) == 3            # every sample in exactly one (single-label here) pair


def test_weights_verify_records_hashes(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from javisbench.golden import write_golden_weights

    assert main(["weights", "verify", "i3d", "--weights-dir", str(tmp_path)]) == 1      # missing
    assert "missing" in capsys.readouterr().out
    write_golden_weights(Path(__file__).resolve().parent / "golden", tmp_path, ["i3d"])
    assert main(["weights", "verify", "i3d", "--weights-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    import hashlib

    digest = hashlib.sha256((tmp_path / "i3d_pretrained_400.pt").read_bytes()).hexdigest()
    assert "present" in out and f"sha256 {digest}" in out


def test_unknown_or_absent_device_fails_fast(tiny: dict, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    import torch

    args = ["evaluate", str(tiny["samples"]), "--bench", str(tiny["manifest"]), "--out", str(tmp_path / "o.json")]
    assert main(args + ["--device", "tpu"]) == 2
    assert "expected 'cpu', 'cuda'" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert main(args + ["--device", "cuda"]) == 2
        assert "no CUDA device" in capsys.readouterr().err
    assert not (tmp_path / "o.json").exists()
