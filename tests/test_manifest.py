"""Manifest parsing and sample resolution: clear errors naming the line, expected vs got."""
from __future__ import annotations

from pathlib import Path

import pytest

from javisbench.manifest import ManifestError, extra_sample_files, load_manifest, resolve_samples

HEADER = "text,audio_text,path,audio_path,cat0_ind,cat1_ind,cat2_ind,cat3_ind,cat4_ind"


def _csv(tmp_path: Path, body: str, name: str = "bench.csv") -> Path:
    p = tmp_path / name
    p.write_text(body)
    return p


def test_official_layout_prompts_and_ids(tmp_path: Path) -> None:
    p = _csv(tmp_path, f'{HEADER}\n"a dog, barking",dog barks,v0.mp4,v0.wav,0,0,"1,4",0,0\nbirds sing,,v1.mp4,,1,2,1,1,"0,2"\n')
    m = load_manifest(p)
    assert len(m) == 2 and m.has_labels
    assert [r.sample_id for r in m.rows] == ["sample_0000", "sample_0001"]
    assert m.rows[0].text == "a dog, barking" and m.rows[0].audio_text == "dog barks"
    assert m.rows[1].audio_text == "birds sing"            # falls back to text, as the original
    assert m.rows[1].line == 3
    assert len(m.sha256) == 64
    assert len(load_manifest(p, limit=1)) == 1


def test_sample_ids_grow_past_four_digits() -> None:
    from javisbench.manifest import sample_id

    assert sample_id(7) == "sample_0007" and sample_id(10140) == "sample_10140"


@pytest.mark.parametrize(
    "body, match",
    [
        ("", "empty"),
        ("caption,path\nx,y\n", r"no 'text' column; got columns \['caption', 'path'\]"),
        ("text,path\nhello,a.mp4,extra\n", "line 2: expected 2 fields"),
        ("text,path\n,a.mp4\n", "line 2: empty 'text'"),
        ("id,text\nx1,a\nx1,b\n", "line 3: duplicate id 'x1' \\(first seen on line 2\\)"),
        ("text\n", "no data rows"),
        ("text,text\na,b\n", "duplicate column"),
    ],
)
def test_bad_manifests(tmp_path: Path, body: str, match: str) -> None:
    with pytest.raises(ManifestError, match=match):
        load_manifest(_csv(tmp_path, body))


def test_missing_manifest_file(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="does not exist"):
        load_manifest(tmp_path / "nope.csv")


def test_resolve_samples_records_problems(tmp_path: Path) -> None:
    m = load_manifest(_csv(tmp_path, "text\na\nb\nc\n"))
    d = tmp_path / "s"
    d.mkdir()
    (d / "sample_0000.mp4").write_bytes(b"x")
    (d / "sample_0000.wav").write_bytes(b"x")
    (d / "sample_0001.mp4").write_bytes(b"")
    (d / "sample_0005.mp4").write_bytes(b"x")
    s = resolve_samples(m, d)
    assert s[0].problem is None and s[0].audio == d / "sample_0000.wav"
    assert "empty video file" in s[1].problem
    assert "missing video file" in s[2].problem and "sample_0002.mp4" in s[2].problem
    assert extra_sample_files(m, d) == ["sample_0005.mp4"]
    with pytest.raises(ManifestError, match="does not exist"):
        resolve_samples(m, tmp_path / "nowhere")


def test_pred_path_columns(tmp_path: Path) -> None:
    (tmp_path / "v.mp4").write_bytes(b"x")
    m = load_manifest(_csv(tmp_path, "text,pred_video_path,pred_audio_path\na,v.mp4,missing.wav\n"))
    s = resolve_samples(m, None)
    assert "missing audio file" in s[0].problem
    m2 = load_manifest(_csv(tmp_path, "text\na\n", "b2.csv"))
    with pytest.raises(ManifestError, match="pred_video_path"):
        resolve_samples(m2, None)
