"""The Python API: evaluate -> Results -> save -> load_results -> frames with the right shapes
and labels; the CLI's evaluate writes the same numbers."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

import javisbench
from fakes import FakeAudio, FakeI3D
from javisbench.cli import main
from javisbench.frames import CELL_COLUMNS

N = 4
ENC = {"i3d": FakeI3D, "audioclip": FakeAudio}
METRICS = ["av_align", "fvd", "fad"]


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> dict:
    from reference_models.baselines import shift_audio
    from reference_models.synthav import make_clip, write_clip, write_manifest

    root = tmp_path_factory.mktemp("api")
    clips = [make_clip(300 + i) for i in range(N)]
    manifest = write_manifest(root / "bench.csv", clips)      # path/audio_path: real/sample_i.*
    pairs = [(c.frames, c.audio) for c in clips]
    for i, c in enumerate(clips):
        write_clip(root / "real", f"sample_{i:04d}", c.frames, c.audio, 24, 16000)
        f, a = shift_audio(0.5)(pairs, i, 16000)
        write_clip(root / "samples", f"sample_{i:04d}", f, a, 24, 16000)
    return {"root": root, "manifest": manifest}


@pytest.fixture(scope="module")
def run(bench: dict) -> javisbench.Results:
    root = bench["root"]
    return javisbench.evaluate(root / "samples", bench=bench["manifest"], metrics=METRICS, device="cpu",
                               encoders=ENC, progress="none", cache_dir=root / "cache", weights_dir=root / "w",
                               workers=1, batch_size=2, model_name="shifted")


def test_results_object(run: javisbench.Results, bench: dict) -> None:
    assert isinstance(run, javisbench.Results)
    assert set(run.overall) == set(METRICS) and not run.skipped
    assert run.sample_ids == [f"sample_{i:04d}" for i in range(N)]
    assert run.value("av_align") == run.overall["av_align"]["value"]
    # the reference came from the manifest's path columns (no --reference given)
    assert run.data["reference"]["computed_from"] == "manifest"
    assert set(run.per_category) == {"event_scenario", "visual_style", "sound_type", "temporal", "spatial"}
    assert "Results(4 samples" in repr(run)


def test_round_trip_and_frames(run: javisbench.Results, tmp_path: Path) -> None:
    path = run.save(tmp_path / "r.json")
    back = javisbench.load_results(path)
    assert back.data == json.loads(json.dumps(run.data))
    df = back.to_pandas()
    per_sample_keys = [k for k in back.metrics if back.data["metrics"][k]["kind"] == "sample"]
    assert per_sample_keys == ["av_align"]
    assert df.shape == (N * len(per_sample_keys), 3 + 5)
    assert list(df.columns[:3]) == ["sample_id", "metric", "value"]
    assert list(df.columns[3:]) == ["event_scenario", "visual_style", "sound_type", "temporal", "spatial"]
    for sid in back.sample_ids:
        row = df[(df.sample_id == sid) & (df.metric == "av_align")]
        assert len(row) == 1 and row.value.iloc[0] == pytest.approx(back.per_sample[sid]["av_align"], abs=0)
    # the label columns are the per_category keys the sample counts in
    aspect = "spatial"
    for cat, cells in back.per_category[aspect].items():
        if "av_align" not in cells:
            continue
        members = df[(df.metric == "av_align") & df[aspect].str.split("|").apply(lambda ks: cat in ks)]
        assert cells["av_align"]["n"] == len(members)
        if len(members):
            assert cells["av_align"]["value"] == pytest.approx(float(np.mean(members.value)), rel=1e-12)
    cells = back.cells_frame()
    n_cells = len(back.overall) + sum(len(m) for cats in back.per_category.values() for m in cats.values())
    assert cells.shape == (n_cells, len(CELL_COLUMNS))
    o = cells[cells.aspect == "overall"].set_index("metric")
    for k, cell in back.overall.items():
        assert o.loc[k, "value"] == cell["value"] and o.loc[k, "n"] == cell["n"]
        assert o.loc[k, "ci_low"] <= o.loc[k, "value"] <= o.loc[k, "ci_high"]
    assert str(cells.n.dtype) == "int64" and str(cells.value.dtype) == "float64"


def test_cli_is_the_same_call(run: javisbench.Results, bench: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                              ) -> None:
    from javisbench import encoders as registry

    monkeypatch.setitem(registry.ENCODERS, "i3d", "fakes:FakeI3D")
    monkeypatch.setitem(registry.ENCODERS, "audioclip", "fakes:FakeAudio")
    root = bench["root"]
    rc = main(["evaluate", str(root / "samples"), "--bench", str(bench["manifest"]), "--out", str(tmp_path / "c.json"),
               "--metrics", *METRICS, "--cache-dir", str(root / "cache"), "--weights-dir", str(root / "w"),
               "--workers", "1", "--batch-size", "2", "--model-name", "shifted", "--progress", "none"])
    assert rc == 0
    cli = javisbench.load_results(tmp_path / "c.json")
    assert cli.overall == run.overall and cli.per_category == run.per_category


def test_bad_options_fail_before_work(bench: dict) -> None:
    with pytest.raises(TypeError, match="unknown option.*refrence"):
        javisbench.evaluate(bench["root"] / "samples", bench=bench["manifest"], refrence="x.pt")
    with pytest.raises(ValueError, match="--progress 'fancy'"):
        javisbench.evaluate(bench["root"] / "samples", bench=bench["manifest"], progress="fancy")
