"""SynthAV: determinism, the 19 categories, label semantics, event ground truth, captions, knobs."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from reference_models.blocks.text import WordTokenizer
from reference_models.synthav import (ASPECTS, N_CATEGORIES, SyncKnobs, bench_clips, build_scene, make_bench,
                                      stratified_labels)
from reference_models.synthav.render import render_video
from reference_models.synthav.scene import active_interval
from reference_models.synthav.sound import render_audio

SR, HOP = 16000, 250


@pytest.fixture(scope="module")
def clips() -> list:
    return bench_clips(64, seed=0, split="test")


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_bench(tmp_path_factory.mktemp("synthav") / "b", n=12, seed=4, split="test")


def test_same_seed_same_bytes(bench: Path, tmp_path: Path) -> None:
    again = make_bench(tmp_path / "again", n=12, seed=4, split="test")
    files = sorted(p.relative_to(bench) for p in bench.rglob("*") if p.is_file() and ".cache" not in p.parts)
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    assert len([f for f in files if f.suffix == ".mp4"]) == 12
    for f in files:
        assert (bench / f).read_bytes() == (again / f).read_bytes(), f
    other = make_bench(tmp_path / "other", n=12, seed=5, split="test")
    assert (other / "sample_0000.wav").read_bytes() != (bench / "sample_0000.wav").read_bytes()


def test_bench_folder_format(bench: Path) -> None:
    with open(bench / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["text", "audio_text", "path", "audio_path", "cat0_ind", "cat1_ind", "cat2_ind", "cat3_ind",
                             "cat4_ind", "video_text"]
    ev = json.loads((bench / "events.json").read_text())
    assert ev["n"] == 12 and len(ev["clips"]) == 12
    for i, (r, c) in enumerate(zip(rows, ev["clips"])):
        assert r["path"] == f"sample_{i:04d}.mp4" and (bench / r["audio_path"]).is_file()
        assert r["text"] == c["caption"] and r["video_text"] == c["video_caption"] and r["audio_text"] == c["audio_caption"]
        assert [int(r[f"cat{a}_ind"]) for a in range(5)] == [c["label_columns"][f"cat{a}_ind"] for a in range(5)]
        for k in range(len(c["sources"])):
            assert (bench / "stems" / f"sample_{i:04d}_s{k}.wav").is_file()
        for e in c["events"]:
            assert set(e) >= {"visual_onset_frame", "audio_onset_sample", "source", "kind", "t_visual", "t_audio"}
    with pytest.raises(ValueError, match="not an empty folder"):
        make_bench(bench, n=2)


def test_64_clips_cover_all_19_categories(clips: list) -> None:
    assert N_CATEGORIES == 19
    seen = {(a, c.scene.labels.keys()[a]) for c in clips for a, _ in ASPECTS}
    assert seen == {(a, cat) for a, cats in ASPECTS for cat in cats}
    for n in (5, 7, 64):   # every aspect balanced: counts differ by at most one
        labs = stratified_labels(n, seed=11)
        for i, (_, cats) in enumerate(ASPECTS):
            counts = np.bincount([list(l.columns().values())[i] for l in labs], minlength=len(cats))
            assert counts.max() - counts.min() <= 1 and counts.min() >= 1


def test_labels_are_realised(clips: list) -> None:
    """Each label's meaning holds in the timeline (spec §3.3)."""
    primary = {"ambient": ("ambient",), "biological": ("call",), "musical": ("note", "pulse"), "speech": ("talk",),
               "mechanical": ("impact", "spin")}
    for c in clips:
        sc, k = c.scene, c.scene.labels.keys()
        evs = sc.events
        assert sc.sources[0].kind in primary[k["sound_type"]]
        if k["temporal"] == "single_event":
            assert len(evs) == 1
        elif k["temporal"] == "sequential_events":
            assert 2 <= len(evs) <= 3
            for a, b in zip(evs, evs[1:]):
                assert b.t_visual - (a.t_visual + a.duration) >= 0.25 - 1e-9
        else:
            spans = [active_interval(sc, i) for i in range(len(sc.sources))]
            spans = [s for s in spans if s is not None]
            assert len(spans) >= 2
            best = max(min(a[1], b[1]) - max(a[0], b[0]) for i, a in enumerate(spans) for b in spans[i + 1:])
            assert best >= 1.0, (k, spans)
        sounding = {e.source for e in evs}
        if k["spatial"] == "off_screen_sound":
            assert not sc.sources[0].visible and 0 in sounding
            assert any(s.visible and not s.sounding for s in sc.sources)       # a silent on-screen distractor
        elif k["spatial"] == "single_subject":
            assert sum(1 for s in sc.sources if s.visible and s.shape != "field") == 1
        else:
            vis = [i for i, s in enumerate(sc.sources) if s.visible and s.shape != "field"]
            assert len(vis) >= 2
            assert len({sc.sources[i].band for i in vis}) == len(vis)          # distinct bands
            if k["temporal"] != "single_event":
                assert len(sounding & set(vis)) >= 2 or sc.sources[0].kind == "ambient"


def test_audio_onsets_are_sample_exact(clips: list) -> None:
    """Leaving one event out changes the mixture first at its stored onset sample."""
    n = 0
    for c in clips[:24]:
        for k, e in enumerate(c.scene.events):
            muted, _ = render_audio(c.scene, mute_audio={k})
            diff = np.flatnonzero(muted != c.audio)
            assert diff[0] == e.audio_onset_sample == round(e.t_audio * SR)
            n += 1
    assert n >= 24


def test_audio_onsets_found_by_librosa_within_one_hop(clips: list) -> None:
    """librosa's onset-strength envelope (hop 250 = one mel hop) peaks within one hop of every
    stored onset that no other sound masks (no other event active within 0.3 s before it)."""
    librosa = pytest.importorskip("librosa")
    checked = 0
    for c in clips:
        env = librosa.onset.onset_strength(y=c.audio, sr=SR, hop_length=HOP, n_fft=256, n_mels=32)
        evs = [e for e in c.scene.events if e.audio_onset_sample is not None]
        for e in evs:
            s = e.audio_onset_sample
            if any(o is not e and o.audio_onset_sample - 0.3 * SR < s < o.audio_onset_sample + (o.duration + 0.3) * SR
                   for o in evs):
                continue
            lo = max(int(s / HOP) - 6, 0)
            peak = lo + int(np.argmax(env[lo:int(s / HOP) + 7]))
            assert abs(peak * HOP - s) <= HOP, (c.scene.labels.keys(), e)
            checked += 1
    assert checked >= 40


def test_visual_onsets_at_the_stored_frame(clips: list) -> None:
    """The event's look first changes the picture at ``ceil(t_visual·fps)``: rendering the clip
    without that event's look differs from the real clip first at the stored frame."""
    n = 0
    for c in clips[:32]:
        for k, e in enumerate(c.scene.events):
            if not e.visible or e.visual_onset_frame is None:
                continue
            assert e.visual_onset_frame == int(np.ceil(e.t_visual * c.fps - 1e-9))
            muted = render_video(c.scene, mute_visual={k})
            changed = np.flatnonzero(np.any(muted != c.frames, axis=(1, 2, 3)))
            assert changed[0] == e.visual_onset_frame, (k, e)
            n += 1
    assert n >= 20


def test_captions_keep_their_modality(clips: list) -> None:
    sound_words = {"knock", "knocks", "note", "notes", "chirp", "chirps", "hum", "hums", "voice", "voices", "noise", "tone",
                   "tones",
                   "sound", "silently", "silent", "off-screen", "unseen"}
    from reference_models.synthav.scene import COLOURS

    visual_words = set(COLOURS) | {"ball", "block", "cone", "star", "face", "bird", "car", "gear", "piston", "bell",
                                   "cartoon", "camera", "rendered", "left", "right"}
    for c in clips:
        v = set(c.video_caption.lower().replace(",", " ").replace(".", " ").replace(";", " ").split())
        a = set(c.audio_caption.lower().replace(",", " ").replace(".", " ").split())
        assert not v & sound_words, c.video_caption
        assert not a & visual_words, c.audio_caption
        if c.scene.labels.keys()["spatial"] == "off_screen_sound":
            assert "off-screen" in c.caption
        for cap in (c.caption, c.video_caption, c.audio_caption):     # fits the text encoder (start token + 63)
            assert len(WordTokenizer.words(cap)) < 64, cap
    timed = bench_clips(3, seed=0, split="test", timed=True)
    assert all("at about" in c.caption for c in timed)


def test_sync_knobs_move_audio_exactly() -> None:
    labels = stratified_labels(6, seed=2)
    for lab in labels:
        base = build_scene(lab, 123)
        shifted = build_scene(lab, 123, SyncKnobs(av_offset_s=0.25))
        for a, b in zip(base.events, shifted.events):
            assert b.visual_onset_frame == a.visual_onset_frame
            if b.audio_onset_sample is not None:
                assert b.audio_onset_sample - a.audio_onset_sample == 4000
        dropped = build_scene(lab, 123, SyncKnobs(drop_sound_p=1.0))
        assert all(e.audio_onset_sample is None for e in dropped.events)
        audio, stems = render_audio(dropped)
        assert all(not np.any(v) for k, v in stems.items() if k != "bed")
        phantom = build_scene(lab, 123, SyncKnobs(phantom_sound_p=1.0))
        assert sum(e.t_visual is None for e in phantom.events) >= 1


def test_pulse_pitch_follows_height_on_mel_bin_centres() -> None:
    """``pulse`` sources: f = 200·2^(3·(1 − y)) snapped to a centre of the suite's 64 mel bins
    (the same centres the log-mel filterbank peaks at), higher on screen = higher pitch."""
    from reference_models.blocks.melwave import mel_filterbank
    from reference_models.synthav.scene import MEL_CENTRES, pitch_from_height

    fb = mel_filterbank(n_fft=16000 * 2)                       # 0.5 Hz resolution: each peak at its centre
    peaks = np.argmax(fb, axis=1) * 0.5
    assert np.allclose(MEL_CENTRES, peaks, atol=0.5)
    ys = np.linspace(0.1, 0.9, 9)
    fs = [pitch_from_height(float(y)) for y in ys]
    assert all(a >= b for a, b in zip(fs, fs[1:])) and fs[0] > 2 * fs[-1]
    assert all(f in MEL_CENTRES for f in fs)
    seen = 0
    for lab in stratified_labels(40, seed=9):
        if lab.keys()["sound_type"] != "musical":
            continue
        for seed in range(6):
            sc = build_scene(lab, seed)
            for s in sc.sources:
                if s.kind == "pulse":
                    assert s.freq == pitch_from_height(s.y)
                    seen += 1
    assert seen >= 3


def test_stems_sum_to_the_mixture(clips: list) -> None:
    for c in clips[:10]:
        total = np.sum(list(c.stems.values()), axis=0)
        assert np.allclose(np.clip(total, -1, 1), c.audio, atol=1e-6)
        assert c.frames.shape == (32, 32, 32, 3) and c.audio.shape == (64000,)


def test_synthav_lite_still_available() -> None:
    from reference_models.synthav import make_clip, write_manifest  # noqa: F401

    c = make_clip(1, duration=1.0)
    assert c.frames.shape[0] == 24 and c.audio.shape == (16000,)
