"""AV-DPO rewards and pair ranking: a hand-made table with a known answer, the CSV's z-scores
against an independent computation and against the ranking rule's own scores, candidate files,
skipped rewards with their reasons."""
from __future__ import annotations

import csv
import hashlib
import json
import shutil
import statistics
from pathlib import Path

import numpy as np
import pytest

from javisbench.cli import main
from javisbench.encoders.base import Encoder
from javisbench.rewards import GROUPS, REWARDS, compute_rewards, rank_reward_pairs, read_rewards, write_rewards

GOLDEN = Path(__file__).resolve().parent / "golden" / "inputs"
COLS = list(REWARDS)


def _row(pid: str, cand: str, video: float, audio: float, av: float) -> dict:
    """Every reward of a group moves with the group's level (different scales per reward)."""
    return {"prompt_id": pid, "candidate": cand, "sample_id": f"{pid}_{cand}", "text": pid, "video": "", "audio": "",
            "visual_quality": 2.0 * video, "motion_quality": 0.5 * video + 1, "ib_tv": 0.1 * video,
            "audio_quality": 3.0 * audio, "ib_ta": 0.2 * audio, "ib_av": 0.3 * av, "neg_desync": -1.0 + 0.1 * av}


HAND = [
    # A: a0 beats a2 in every group; a1 has the best video but the worst audio -> the one pair (a0, a2)
    _row("A", "0", 1.0, 1.0, 1.0), _row("A", "1", 2.0, -2.0, 0.5), _row("A", "2", 0.0, 0.0, 0.0),
    # B: b0 better video, b1 better audio -> no pair
    _row("B", "0", 1.0, 0.0, 0.0), _row("B", "1", 0.0, 1.0, 0.0),
    # C: c0 < c1 < c2 everywhere -> three dominating pairs, the widest (c2, c0) wins
    _row("C", "0", -1.0, -1.0, -1.0), _row("C", "1", 0.0, 0.0, 0.0), _row("C", "2", 1.5, 1.5, 1.5),
]


def test_known_pairs(tmp_path: Path) -> None:
    write_rewards(HAND, tmp_path / "r.csv")
    assert main(["rank-pairs", str(tmp_path / "r.csv"), "--out", str(tmp_path / "p.jsonl")]) == 0
    pairs = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert [(p["prompt_id"], p["chosen"], p["rejected"]) for p in pairs] == [("A", "A_0", "A_2"), ("C", "C_2", "C_0")]
    for p in pairs:
        assert all(p["scores_chosen"][g] > p["scores_rejected"][g] for g in GROUPS)
        assert p["margin"] == pytest.approx(sum(p["scores_chosen"][g] - p["scores_rejected"][g] for g in GROUPS))


def _z(values: list[float]) -> list[float]:
    m, sd = statistics.fmean(values), statistics.stdev(values)
    return [(v - m) / sd for v in values]


def test_group_scores_are_the_rules_scores(tmp_path: Path) -> None:
    rows, cols = read_rewards(write_rewards(HAND, tmp_path / "r.csv"))
    assert cols == COLS
    pairs, left = rank_reward_pairs(rows, cols)
    assert left == []
    # independent: z-score each reward over the 8 rows (statistics.stdev, n-1), average per group
    z = {c: _z([r[c] for r in HAND]) for c in COLS}
    expect = {g: [statistics.fmean(z[c][i] for c in cs) for i in range(len(HAND))] for g, cs in GROUPS.items()}
    idx = {r["sample_id"]: i for i, r in enumerate(HAND)}
    for p in pairs:
        for g in GROUPS:
            assert p["scores_chosen"][g] == pytest.approx(expect[g][idx[p["chosen"]]], abs=1e-12)
            assert p["scores_rejected"][g] == pytest.approx(expect[g][idx[p["rejected"]]], abs=1e-12)


def test_rows_with_a_missing_reward_are_left_out(tmp_path: Path) -> None:
    rows = [dict(r) for r in HAND]
    rows[0]["ib_av"] = float("nan")                  # A_0 has no ib_av: A has no pair left
    write_rewards(rows, tmp_path / "r.csv")
    got, cols = read_rewards(tmp_path / "r.csv")
    pairs, left = rank_reward_pairs(got, cols)
    assert left == ["A_0"] and [p["prompt_id"] for p in pairs] == ["C"]


def test_bad_rewards_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "r.csv").write_text("prompt_id,sample_id,ib_av\nA,A_0,high\n")
    assert main(["rank-pairs", str(tmp_path / "r.csv"), "--out", str(tmp_path / "p.jsonl")]) == 2
    err = capsys.readouterr().err
    assert "line 2: ib_av = 'high' is not a number" in err and not (tmp_path / "p.jsonl").exists()


class FakeImageBind(Encoder):
    """Content-dependent embeddings with ImageBind's feature names (no weights)."""

    id = "imagebind"
    version = "fake-1"
    uses_text = True
    outputs = {"text_video": "(D,)", "text_audio": "(D,)", "video": "(D,)", "audio": "(D,)"}

    def load(self, weights_dir: Path) -> None:
        return None

    @staticmethod
    def _text(t: str) -> np.ndarray:
        seed = int.from_bytes(hashlib.sha256(t.encode()).digest()[:4], "little")
        return np.random.default_rng(seed).standard_normal(12)

    def prepare(self, clip, text, audio_text):  # noqa: ANN001, ANN201
        f = clip.frames.astype(np.float64) / 255.0
        video = np.concatenate([f.mean(axis=(0, 1, 2)), f.std(axis=(0, 1, 2)), np.abs(np.diff(f, axis=0)).mean(axis=(0, 1, 2)),
                                f[:, : f.shape[1] // 2].mean(axis=(0, 1, 2))])
        a = clip.audio.mean(axis=0)
        spec = np.abs(np.fft.rfft(a[: a.size // 512 * 512].reshape(-1, 512), axis=1))[:, :240]
        audio = np.log10(spec.reshape(spec.shape[0], 12, 20).sum(axis=2).mean(axis=0) + 1e-8)
        return {"video": video, "audio": audio, "text_video": self._text(text), "text_audio": self._text(audio_text)}

    def encode(self, batch):  # noqa: ANN001, ANN201
        return [{k: np.asarray(v, np.float32) for k, v in x.items()} for x in batch]


def test_rewards_of_candidate_files(tmp_path: Path) -> None:
    meta = {c["name"]: c for c in json.loads((GOLDEN / "clips_meta.json").read_text())}
    names = [["clip_00", "clip_01"], ["clip_02", "clip_03"]]
    with open(tmp_path / "bench.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "text"])
        for i, cands in enumerate(names):
            w.writerow([f"p{i}", meta[cands[0]]["caption"]])
    samples = tmp_path / "samples"
    samples.mkdir()
    for i, cands in enumerate(names):
        for k, n in enumerate(cands):
            for ext in ("mp4", "wav"):
                shutil.copy(GOLDEN / f"{n}.{ext}", samples / f"sample_{i:04d}_{k}.{ext}")
    rows, skipped, failed = compute_rewards(samples, tmp_path / "bench.csv", encoders={"imagebind": FakeImageBind},
                                            cache_dir=tmp_path / "cache", weights_dir=tmp_path / "w", progress="none",
                                            workers=1)
    assert failed == {}
    # the rewards whose encoders have no weights are skipped with the file they need
    assert set(skipped) == {"visual_quality", "motion_quality", "audio_quality", "neg_desync"}
    assert "not found" in skipped["neg_desync"] and "javisbench weights download" in skipped["neg_desync"]
    assert [(r["prompt_id"], r["candidate"]) for r in rows] == [("sample_0000", "0"), ("sample_0000", "1"),
                                                                ("sample_0001", "0"), ("sample_0001", "1")]
    assert rows[3]["video"].endswith("sample_0001_1.mp4") and rows[3]["audio"].endswith("sample_0001_1.wav")
    # both candidates of a prompt are scored against that prompt's text
    assert rows[0]["text"] == rows[1]["text"] == meta["clip_00"]["caption"]
    for g, cols in {"z_video": ["ib_tv"], "z_audio": ["ib_ta"], "z_audio_video": ["ib_av"]}.items():
        z = {c: _z([r[c] for r in rows]) for c in cols}
        assert [r[g] for r in rows] == pytest.approx([statistics.fmean(z[c][i] for c in cols) for i in range(4)],
                                                     abs=1e-12)
    # ib_av is the cosine of the two embeddings the fake gives (independent of the pipeline's metric code)
    from javisbench.decode import decode_sample

    clip = decode_sample(samples / "sample_0000_1.mp4", samples / "sample_0000_1.wav")
    x = FakeImageBind(None).prepare(clip, "", "")  # type: ignore[arg-type]
    v, a = x["video"].astype(np.float32).astype(np.float64), x["audio"].astype(np.float32).astype(np.float64)
    assert rows[1]["ib_av"] == pytest.approx(float(v @ a / np.linalg.norm(v) / np.linalg.norm(a)), abs=1e-6)
    out = write_rewards(rows, tmp_path / "rewards.csv")
    head = out.read_text().splitlines()[0].split(",")
    assert head == ["prompt_id", "candidate", "sample_id", "text", "video", "audio", "ib_tv", "ib_ta", "ib_av",
                    "z_video", "z_audio", "z_audio_video"]


def test_candidate_column_groups_rows_by_prompt(tmp_path: Path) -> None:
    names = ["clip_00", "clip_01", "clip_02"]
    with open(tmp_path / "bench.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text", "candidate"])
        w.writerows([["a red square", "seed0"], ["a red square", "seed1"], ["a green disc", "seed0"]])
    samples = tmp_path / "samples"
    samples.mkdir()
    for i, n in enumerate(names):
        for ext in ("mp4", "wav"):
            shutil.copy(GOLDEN / f"{n}.{ext}", samples / f"sample_{i:04d}.{ext}")
    rows, skipped, failed = compute_rewards(samples, tmp_path / "bench.csv", encoders={"imagebind": FakeImageBind},
                                            cache_dir=tmp_path / "cache", weights_dir=tmp_path / "w", progress="none",
                                            workers=1)
    assert [(r["prompt_id"], r["candidate"], r["sample_id"]) for r in rows] == [
        ("sample_0000", "seed0", "sample_0000"), ("sample_0000", "seed1", "sample_0001"),
        ("sample_0002", "seed0", "sample_0002")]
    write_rewards(rows, tmp_path / "r.csv")
    got, cols = read_rewards(tmp_path / "r.csv")
    pairs, _ = rank_reward_pairs(got, cols)
    assert all(p["prompt_id"] == "sample_0000" for p in pairs)     # a prompt with one candidate gives no pair
