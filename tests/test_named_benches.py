"""Named JavisBench CSVs (``--bench javisbench-mini``) and the released cache found where the original
layout puts it; results record what the set metrics were compared against."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("av")

from javisbench.benches import resolve_csv_bench  # noqa: E402
from javisbench.cli import main  # noqa: E402
from javisbench.manifest import ManifestError  # noqa: E402

GOLDEN = Path(__file__).resolve().parent / "golden"
N = 3


def test_named_bench_missing_says_where_to_put_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JAVISBENCH_DATA", str(tmp_path / "data"))
    with pytest.raises(ManifestError) as e:
        resolve_csv_bench("javisbench-mini")
    msg = str(e.value)
    assert "JavisBench-mini.csv" in msg and "1000 rows" in msg and str(tmp_path / "data") in msg
    assert "JavisVerse/JavisBench" in msg and "JAVISBENCH_DATA" in msg
    assert resolve_csv_bench("landscape") is None and resolve_csv_bench("some/other.csv") is None


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict:
    from reference_models.synthav import make_clip, write_clip, write_manifest

    from javisbench.golden import write_golden_weights

    root = tmp_path_factory.mktemp("named")
    data = root / "data"
    data.mkdir()
    clips = [make_clip(700 + i, duration=2.0, width=128, height=96) for i in range(N)]
    write_manifest(data / "JavisBench-mini.csv", clips)
    for i, c in enumerate(clips):
        write_clip(root / "samples", f"sample_{i:04d}", c.frames, c.audio, 24, 16000)
    rng = np.random.default_rng(0)
    # a released cache in the original layout: data/eval/JavisBench/cache/fvd_fad/<name>-vanilla-max4s.pt
    cache = data / "cache" / "fvd_fad" / "JavisBench-mini-vanilla-max4s.pt"
    cache.parent.mkdir(parents=True)
    torch.save({"video": torch.from_numpy(rng.normal(size=(N, 400)).astype(np.float32)),
                "audio": torch.from_numpy(rng.normal(size=(N, 1024)).astype(np.float32))}, cache)
    return {"root": root, "data": data, "cache": cache, "weights": write_golden_weights(GOLDEN, root / "w", ["i3d"])}


def _evaluate(setup: dict, out: Path, *extra: str) -> int:
    return main(["evaluate", str(setup["root"] / "samples"), "--bench", "javisbench-mini", "--metrics", "fvd",
                 "--weights-dir", str(setup["weights"]), "--cache-dir", str(setup["root"] / "cache"),
                 "--out", str(out), "--quiet", *extra])


def test_named_bench_and_released_cache_are_found(setup: dict, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    import hashlib

    monkeypatch.setenv("JAVISBENCH_DATA", str(setup["data"]))
    out = setup["root"] / "r.json"
    assert _evaluate(setup, out) == 0
    r = json.loads(out.read_text())
    assert r["bench"]["name"] == "JavisBench-mini" and r["bench"]["n_rows"] == N and r["bench"]["kind"] == "csv"
    assert r["overall"]["fvd"]["n"] == N
    ref = r["reference"]
    assert ref["path"] == str(setup["cache"].resolve()) and ref["found_beside_bench"] is True
    assert ref["sha256"] == hashlib.sha256(setup["cache"].read_bytes()).hexdigest()
    assert ref["rows"] == {"i3d:logits": N, "audioclip:embedding": N}
    # another protocol does not silently compare against the official cache
    capsys.readouterr()
    # fvd is skipped (no javisbench-fixed reference): the exit code says so, the results are written
    assert _evaluate(setup, setup["root"] / "f.json", "--protocol", "javisbench-fixed") == 3
    f = json.loads((setup["root"] / "f.json").read_text())
    assert "fvd" not in f["overall"] and "holds javisbench-official features" in f["skipped"]["fvd"]
    assert f["reference"] is None


def test_reference_dir_is_recorded(setup: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JAVISBENCH_DATA", str(setup["data"]))
    out = setup["root"] / "d.json"
    assert _evaluate(setup, out, "--reference-dir", str(setup["root"] / "samples")) == 0
    r = json.loads(out.read_text())
    assert r["reference"] == {"computed_from": str((setup["root"] / "samples").resolve()), "rows": {"i3d:logits": N}}
    assert abs(r["overall"]["fvd"]["value"]) < 1e-3          # the samples against themselves
