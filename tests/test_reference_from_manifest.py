"""Without --reference / a released cache / --reference-dir, FVD/KVD/FAD are computed against the
real clips the manifest's `path` / `audio_path` columns name (the original's behaviour without a
cache): the numbers equal the --reference-dir ones on the same clips, missing rows are listed, and
--reference still takes precedence."""
from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import javisbench
from fakes import FakeAudio, FakeI3D

GOLDEN = Path(__file__).resolve().parent / "golden" / "inputs"
FAKE = ["clip_00", "clip_01", "clip_02"]
REAL = ["edge_short2s", "edge_5p3s_30fps", "edge_44k_stereo"]
ENC = {"i3d": FakeI3D, "audioclip": FakeAudio}
SET = ["fvd", "kvd", "fad"]


def _bench(root: Path, real_names: list[str | None], audio: bool = True) -> Path:
    meta = {c["name"]: c for c in json.loads((GOLDEN / "clips_meta.json").read_text())}
    (root / "gt").mkdir(parents=True, exist_ok=True)
    for n in REAL:
        for ext in ("mp4", "wav"):
            shutil.copy(GOLDEN / f"{n}.{ext}", root / "gt" / f"{n}.{ext}")
    path = root / "bench.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text", "path", "audio_path"] if audio else ["text", "path"])
        for fake, real in zip(FAKE, real_names):
            r = real or "nowhere"
            w.writerow([meta[fake]["caption"], f"gt/{r}.mp4"] + ([f"gt/{r}.wav"] if audio else []))
    return path


def _folder(root: Path, names: list[str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for i, n in enumerate(names):
        for ext in ("mp4", "wav"):
            shutil.copy(GOLDEN / f"{n}.{ext}", root / f"sample_{i:04d}.{ext}")
    return root


def _run(root: Path, bench: Path, cache: str, **kw) -> javisbench.Results:  # noqa: ANN003
    return javisbench.evaluate(root / "samples", bench=bench, metrics=SET, progress="none", encoders=ENC,
                               cache_dir=root / cache, weights_dir=root / "w", workers=1, batch_size=2, **kw)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ref-manifest")
    _folder(root / "samples", FAKE)
    _folder(root / "real", REAL)
    return root


def test_manifest_paths_equal_reference_dir(root: Path) -> None:
    bench = _bench(root, REAL)
    live = _run(root, bench, "cache-a")                      # a separate store: computed independently
    folder = _run(root, bench, "cache-b", reference_dir=root / "real")
    assert not live.skipped and not folder.skipped
    for k in SET:
        assert live.overall[k]["n"] == folder.overall[k]["n"] == 3
        assert live.overall[k]["value"] == pytest.approx(folder.overall[k]["value"], rel=1e-12, abs=1e-12), k
        assert np.isfinite(live.overall[k]["value"])
    ref = live.data["reference"]
    assert ref["computed_from"] == "manifest" and ref["columns"] == ["path", "audio_path"]
    assert ref["n_found"] == 3 and ref["missing"] == []
    assert ref["rows"] == {"i3d:logits": 3, "audioclip:embedding": 3}
    assert folder.data["reference"]["computed_from"] == str((root / "real").resolve())


def test_missing_real_files_are_listed_and_left_out(root: Path) -> None:
    bench = _bench(root, [REAL[0], None, REAL[2]])
    r = _run(root, bench, "cache-c")
    missing = r.data["reference"]["missing"]
    assert [m["sample_id"] for m in missing] == ["sample_0001"]
    assert "gt/nowhere.mp4" in missing[0]["problem"] and "line 3" in missing[0]["problem"]
    assert any("reference clip missing" in w for w in r.data["warnings"]["sample_0001"])
    assert r.overall["fvd"]["n"] == 2 and r.data["reference"]["n_found"] == 2


def test_no_real_file_found_skips_with_the_reason(root: Path) -> None:
    bench = _bench(root, [None, None, None], audio=False)
    r = _run(root, bench, "cache-d")
    for k in SET:
        assert k not in r.overall
        assert "none of the 3 real clips" in r.skipped[k] and "--reference-dir" in r.skipped[k]


def test_an_explicit_reference_takes_precedence(root: Path) -> None:
    bench = _bench(root, REAL)
    live = _run(root, bench, "cache-a")
    # the generated clips as their own reference: FVD against itself is 0, so the manifest was not used
    own = _run(root, bench, "cache-a", reference_dir=root / "samples")
    assert own.data["reference"]["computed_from"] == str((root / "samples").resolve())
    assert abs(own.overall["fvd"]["value"]) < 1e-3 < live.overall["fvd"]["value"]
